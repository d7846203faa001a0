"""Property tests: whatever a user types or uploads, the forms and the spec gate answer
with a validation message, never an exception, and the pages never answer 500.

Hypothesis feeds arbitrary JSON (and JSON shaped like a spec with wild values) to
experiments.spec.validate_spec, and arbitrary field values, recipe JSON and uploaded bytes
to the forms, both directly and POSTed through the test client. Its text has NULs mixed in,
and lone surrogates where JSON carries it; a few @example cases post a 10 MB string. Nothing
stored may hold what plain_json_problems refuses.
"""

import io
import json
import math

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from experiments import spec as specs
from experiments.forms import DatasetUploadForm, ExperimentForm, RecipeForm
from experiments.models import Comment, Experiment, Membership, Recipe, SignOff
from runners.engine import schema
from runners.engine.fields import plain_json_problems
from runners.engine.techniques import TECHNIQUES
from runners.engine.zoo import ARCHS

FUZZ = settings(deadline=None, max_examples=40,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])



def mixed(*bad):
    """Ordinary text with these characters mixed in."""
    return st.lists(st.text(max_size=4) | st.sampled_from(bad), min_size=1,
                    max_size=6).map("".join)


# Text a form post can carry: Django decodes the body with errors="replace", so a NUL
# arrives but a lone surrogate never does.
posted_text = st.text(max_size=12) | mixed("\x00")
# Text JSON can carry: a lone surrogate too ("\ud800" in JSON text, plain ASCII).
json_text = st.text(max_size=20) | mixed("\x00", "\ud800", "\udfff")
# The 10 MB string, drawn only in the @example cases: few, so the suite stays fast.
HUGE = "x" * 10_000_000

scalars = (st.none() | st.booleans() | st.integers()
           | st.floats(allow_nan=True, allow_infinity=True) | json_text)
json_values = st.recursive(
    scalars,
    lambda children: (st.lists(children, max_size=4)
                      | st.dictionaries(json_text, children, max_size=4)),
    max_leaves=12,
)


def near(*choices):
    """Mostly the names the code knows, sometimes anything at all."""
    return st.sampled_from(choices) | json_values


def key(*choices):
    return st.sampled_from(choices) | st.text(max_size=8)


numbers = st.integers(-10, 10**7) | st.floats(allow_nan=True, allow_infinity=True) | json_values
steps = st.fixed_dictionaries(
    {"technique": near(*TECHNIQUES)},
    optional={name: json_values | st.sampled_from([0, 1, 2, 0.5, None, True])
              for technique in TECHNIQUES.values() for name in technique.defaults},
) | json_values
recipes = st.fixed_dictionaries(
    {"steps": st.lists(steps, max_size=3) | json_values},
    optional={"name": st.text(max_size=30) | json_text | json_values},
) | json_values
spec_shaped = st.fixed_dictionaries({}, optional={
    "name": st.text(max_size=250) | json_text | json_values,
    "model": st.fixed_dictionaries({}, optional={
        "arch": near(*ARCHS),
        "params": st.dictionaries(key("units", "dropout", "filters", "dense", "depth",
                                      "width", "batch_norm"),
                                  numbers, max_size=4)
                  | json_values,
    }) | json_values,
    "dataset": st.fixed_dictionaries({}, optional={
        "name": near("digits", "synthetic", "npz"),
        "samples": numbers, "classes": numbers, "seed": numbers,
        "shape": st.lists(numbers, max_size=4) | json_values,
        "dataset_id": numbers, "path": json_values,
    }) | json_values,
    "training": st.fixed_dictionaries({}, optional={
        key: numbers for key in ("epochs", "batch_size", "learning_rate", "seed")
    } | {"optimizer": near(*schema.OPTIMIZERS)}) | json_values,
    "hardware": near("cpu", "gpu", "tpu"),
    "gpu_model": json_values,
    "accuracy_budget": numbers,
    "recipes": st.lists(recipes, max_size=4) | json_values,
    "benchmark": st.dictionaries(key(*schema.BENCHMARK_LIMITS), numbers, max_size=3)
                 | json_values,
})


def check_spec(raw, team=None):
    try:
        spec = specs.validate_spec(raw, team=team)
    except ValidationError as exc:
        # Every message is keyed by a spec path and reads as text.
        assert exc.message_dict
        assert all(isinstance(m, str) and m for ms in exc.message_dict.values() for m in ms)
        return None
    # What passes can be stored in a JSON column (no NaN, NUL, lone surrogate or runaway
    # text), and is normalized: it passes again, unchanged.
    json.dumps(spec, allow_nan=False)
    assert not plain_json_problems(spec)
    assert specs.validate_spec(spec, team=team) == spec
    return spec


@FUZZ
@given(raw=json_values)
def test_validate_spec_refuses_any_json_with_messages(raw):
    check_spec(raw)


@FUZZ
@given(raw=spec_shaped)
def test_validate_spec_refuses_wild_specs_with_messages(db, alice_team, make_dataset, raw):
    dataset = make_dataset(team=alice_team)
    if isinstance(raw.get("dataset"), dict) and raw["dataset"].get("dataset_id") == 0:
        raw["dataset"]["dataset_id"] = dataset.pk
    check_spec(raw, team=alice_team)


def as_posted(value):
    """A value as a form post delivers it: text, with no lone surrogate (see posted_text)."""
    return str(value).encode("utf-8", "replace").decode("utf-8")


# Form fields arrive as text; these are the values a browser (or anyone) can send.
form_text = (posted_text
             | st.integers(-10**12, 10**12).map(str)
             | st.floats(allow_nan=True, allow_infinity=True).map(str)
             | st.sampled_from(["", "on", "1e309", "-0", " 5 ", "0x10", "１２"]))
experiment_data = st.fixed_dictionaries({
    "name": st.text(max_size=210) | posted_text,
    "arch": near("seed_mlp", "seed_cnn", "resnet", "uploaded").map(as_posted),
    "dataset": near("digits", "synthetic", "npz").map(as_posted),
    "optimizer": near(*schema.OPTIMIZERS).map(as_posted),
    "hardware": near("cpu", "gpu", "gpu:A100", "tpu").map(as_posted),
    "recipes_json": st.one_of(st.lists(recipes, max_size=3).map(json.dumps),
                              json_values.map(json.dumps), posted_text),
    # In range often enough that many examples reach the spec gate, wild otherwise.
    "epochs": st.integers(1, 3).map(str) | form_text,
    "batch_size": st.integers(1, 2000).map(str) | form_text,
    "learning_rate": st.floats(1e-7, 10).map(str) | form_text,
    "seed": st.integers(0, 2**31 - 1).map(str) | form_text,
    "synthetic_samples": st.integers(100, 200_000).map(str) | form_text,
    "synthetic_classes": st.integers(2, 1000).map(str) | form_text,
}, optional={field: st.integers(0, 600).map(str) | form_text for field in (
    "team", "mlp_units", "mlp_dropout", "cnn_filters", "cnn_dense", "cnn_dropout",
    "resnet_depth", "resnet_width", "resnet_batch_norm", "synthetic_height",
    "synthetic_width", "synthetic_channels", "npz_dataset", "library")})


def with_team(data, team):
    # Most examples name the user's team, so validation gets past the team field.
    return {"team": str(team.pk), **data} if "team" not in data else data


def stored_problems(model, *fields):
    """What plain_json_problems finds in the rows' text: nothing, for any row stored."""
    return plain_json_problems([list(row) for row in model.objects.values_list(*fields)])


EXPERIMENT_FORM = {"name": "x", "arch": "seed_mlp", "dataset": "digits", "optimizer": "adam",
                   "hardware": "cpu", "recipes_json": "", "epochs": "1", "batch_size": "64",
                   "learning_rate": "0.001", "seed": "0", "synthetic_samples": "2000",
                   "synthetic_classes": "10"}


def recipes_named(name):
    return json.dumps([{"name": name, "steps": [{"technique": "xla"}]}])


@FUZZ
@given(data=experiment_data)
def test_experiment_form_answers_with_errors(alice, alice_team, data):
    form = ExperimentForm(with_team(data, alice_team), user=alice)

    valid = form.is_valid()
    event(f"form valid: {valid}")
    if valid:
        check_spec(form.spec, team=alice_team)
    else:
        assert form.errors


@FUZZ
@given(data=experiment_data)
@example(data={**EXPERIMENT_FORM, "name": HUGE})
@example(data={**EXPERIMENT_FORM, "recipes_json": recipes_named(HUGE)})
@example(data={**EXPERIMENT_FORM, "recipes_json": recipes_named("a\ud800")})
def test_the_new_experiment_page_never_fails(client, alice, alice_team, data):
    client.force_login(alice)

    response = client.post(reverse("experiment_new"), with_team(data, alice_team))

    assert response.status_code in (302, 400)
    assert not stored_problems(Experiment, "name", "spec")


recipe_data = st.fixed_dictionaries({
    "name": st.text(max_size=210) | posted_text,
    "steps_json": st.one_of(st.lists(steps, max_size=3).map(json.dumps),
                            json_values.map(json.dumps), posted_text),
}, optional={"team": form_text, "description": st.text(max_size=30) | posted_text})


@FUZZ
@given(data=recipe_data)
def test_recipe_form_answers_with_errors(alice, alice_team, data):
    form = RecipeForm(with_team(data, alice_team), user=alice)

    if form.is_valid():
        assert form.cleaned_data["steps_json"]
        # Steps the form accepts are steps a spec accepts.
        check_spec({"name": "x", "recipes": [{"name": "r",
                                               "steps": form.cleaned_data["steps_json"]}]})
    else:
        assert form.errors


@FUZZ
@given(data=recipe_data)
@example(data={"name": HUGE, "steps_json": '[{"technique": "xla"}]'})
@example(data={"name": "r", "description": HUGE, "steps_json": '[{"technique": "xla"}]'})
@example(data={"name": "r", "steps_json": json.dumps([{"technique": HUGE}])})
@example(data={"name": "r", "steps_json": json.dumps([{"technique": "xla\ud800"}])})
def test_the_recipe_page_never_fails(client, alice, alice_team, data):
    client.force_login(alice)

    response = client.post(reverse("recipe_list"), with_team(data, alice_team))

    assert response.status_code in (302, 400)
    assert not stored_problems(Recipe, "name", "description", "steps")


def npz_bytes(arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


dtypes = st.sampled_from(["int8", "uint8", "int64", "float16", "float32", "float64",
                          "bool", "complex64", "U3", "S2", "datetime64[s]"]).map(np.dtype)
arrays = dtypes.flatmap(lambda dtype: hnp.arrays(
    dtype, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)))
npz_files = st.dictionaries(key("x_train", "y_train", "x_test", "y_test")
                            .filter(lambda k: k.isidentifier()),
                            arrays, max_size=5).map(npz_bytes)
upload_bytes = st.binary(max_size=2000) | npz_files


@FUZZ
@given(content=upload_bytes, name=st.sampled_from(["d.npz", "D.NPZ", "d.zip", ".npz"]))
def test_dataset_upload_form_answers_with_errors(alice, alice_team, content, name):
    upload = SimpleUploadedFile(name, content)
    form = DatasetUploadForm({"name": "d", "team": alice_team.pk}, {"file": upload},
                             user=alice, max_bytes=1500)

    if form.is_valid():
        described = form.description
        assert described["train_samples"] > 0 and described["num_classes"] >= 1
        assert all(isinstance(side, int) and side > 0 for side in described["input_shape"])
        assert not any(isinstance(v, float) and not math.isfinite(v)
                       for v in described.values())
    else:
        assert form.errors


@settings(FUZZ, max_examples=30)
@given(content=upload_bytes)
def test_the_dataset_page_never_fails(client, alice, alice_team, content):
    client.force_login(alice)

    response = client.post(reverse("dataset_list"), {
        "name": "fuzzed", "team": alice_team.pk,
        "file": SimpleUploadedFile("fuzzed.npz", content),
    })

    assert response.status_code in (302, 400)


@pytest.mark.parametrize("values", [
    {"samples": [500], "classes": 3},
    {"samples": 500, "classes": 3, "shape": [8, float("inf"), 1]},
    {"samples": 500, "classes": 3, "shape": [8, 8, 1], "extra": 1},
])
def test_validate_spec_refuses_these_synthetic_datasets(values):
    with pytest.raises(ValidationError):
        specs.validate_spec({"name": "x", "model": {"arch": "seed_mlp"},
                             "dataset": {"name": "synthetic", **values}})


def test_the_new_experiment_page_refuses_too_few_samples_per_class(client, alice, alice_team):
    # Found by the properties above: the engine's own check (5 samples per class) raised
    # ValueError through validate_spec, and the page answered 500.
    client.force_login(alice)

    response = client.post(reverse("experiment_new"), {
        "name": "tiny", "team": alice_team.pk, "arch": "seed_mlp", "dataset": "synthetic",
        "synthetic_samples": 100, "synthetic_classes": 1000, "synthetic_height": 8,
        "synthetic_width": 8, "synthetic_channels": 1, "epochs": 1, "batch_size": 16,
        "optimizer": "adam", "learning_rate": 0.001, "seed": 0, "hardware": "cpu",
    })

    assert response.status_code == 400
    assert "Synthetic data needs at least 5 samples per class: 5,000 for 1000 classes." in (
        response.content.decode())


def test_validate_spec_refuses_a_model_arch_that_is_not_a_name():
    with pytest.raises(ValidationError) as info:
        specs.validate_spec({"name": "x", "model": {"arch": {"seed_mlp": 1}}})

    assert "model.arch" in info.value.message_dict


def test_validate_spec_refuses_numbers_no_json_column_stores():
    # Found by the properties above: json.loads reads NaN and Infinity (as `manage.py
    # submit` does), keys the spec keeps unchecked passed them on, and PostgreSQL refused
    # the row.
    with pytest.raises(ValidationError) as info:
        specs.validate_spec(json.loads(
            '{"name": "x", "model": {"arch": "seed_mlp"}, "note": NaN,'
            ' "training": {"epochs": 1, "extra": [1, Infinity]}}'))

    assert info.value.message_dict["note"] == ["Numbers must be finite (not NaN or Infinity)."]
    assert "training.extra.1" in info.value.message_dict


discussion_data = st.fixed_dictionaries({}, optional={
    "body": st.text(max_size=300) | form_text,
    "run": form_text,
    "return_to": st.sampled_from(["run", "experiment"]) | form_text,
    "note": st.text(max_size=2100) | form_text,
    # Never "remove": the member must still be there for the next example.
    "role": st.sampled_from(["viewer", "member", "admin"]) | form_text.filter(
        lambda text: text != "remove"),
})


@pytest.fixture
def fuzzed_experiment(alice, alice_team, make_experiment):
    experiment = make_experiment(team=alice_team, user=alice,
                                 recipes=[{"name": "XLA", "steps": [{"technique": "xla"}]}])
    member = Membership.objects.create(
        team=alice_team, role=Membership.Role.VIEWER,
        user=get_user_model().objects.create_user("fuzzy"))
    return experiment, member


@settings(FUZZ, max_examples=25)
@given(data=discussion_data, username=form_text)
# One 10 MB value a request: two are over the body limit, refused before any form.
@example(data={"body": HUGE, "role": "member"}, username=HUGE)
@example(data={"note": HUGE}, username="fuzzy")
@example(data={"role": HUGE}, username="fuzzy")
def test_the_discussion_and_team_forms_never_fail(client, alice, alice_team, fuzzed_experiment,
                                                  data, username):
    experiment, member = fuzzed_experiment
    run = experiment.runs.get(name="XLA")
    client.force_login(alice)
    team = f"team{alice_team.pk}"

    answers = [
        client.post(reverse("comment_add", args=[experiment.pk]), data),
        client.post(reverse("run_signoff", args=[run.pk]), data),
        client.post(reverse("team_member_add", args=[alice_team.pk]),
                    {f"{team}-username": username, f"{team}-role": data.get("role", "")}),
        client.post(reverse("team_member_update", args=[alice_team.pk, member.pk]), data),
    ]

    assert [response.status_code in (302, 400) for response in answers] == [True] * 4
    assert not stored_problems(Comment, "body")
    assert not stored_problems(SignOff, "note")
    # A refusal shown as a message is kept in the session until shown: never the value.
    assert not [str(message)[:80] for response in answers
                for message in get_messages(response.wsgi_request) if len(str(message)) > 20_000]
