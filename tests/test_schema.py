"""One spec schema for every door: the form, the API and `manage.py submit` refuse each
spec error with the same message and store nothing; /api/schema/ describes the spec with
runners.engine.schema's own JSON Schema; the engine applies the same rules."""

import html
import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from jsonschema import Draft202012Validator
from test_views import form_data

from experiments.models import Experiment, Run
from runners.engine import schema
from runners.engine.fields import Invalid


def form_refusal(client, user, team, changes):
    """The new-experiment page's answer to a form with these changes: the page again, with
    its messages (unescaped), and nothing stored."""
    client.force_login(user)
    response = client.post(reverse("experiment_new"), form_data(team, **changes))
    assert response.status_code in (200, 400), "the form was accepted"
    return html.unescape(response.content.decode())


def api_refusal(api, user, spec):
    # As JSON text with escapes, as a script sends it: a lone surrogate stays "\ud800".
    response = api(user).post("/api/experiments/", json.dumps(spec),
                              content_type="application/json")
    assert response.status_code == 400, response.content
    return response.json()


def submit_refusal(tmp_path, user, spec):
    path = tmp_path / "spec.json"
    # ensure_ascii: a lone surrogate is written as the \ud800 escape a user's file would hold.
    path.write_text(json.dumps(spec, ensure_ascii=True))
    with pytest.raises(CommandError) as info:
        call_command("submit", str(path), "--user", user.username)
    return str(info.value)


def refused_at_every_door(*, client, api, tmp_path, user, team, spec, path, message,
                          form_changes=None):
    """The API answers 400 with the message under the spec path, `manage.py submit` prints
    it under that path, the form (where it can say this at all) shows it; no experiment or
    run is stored by any of them."""
    assert message in api_refusal(api, user, spec).get(path, []), path
    assert f"  {path}: {message}" in submit_refusal(tmp_path, user, spec)
    if form_changes is not None:
        assert message in form_refusal(client, user, team, form_changes)
    assert not Experiment.objects.exists()
    assert not Run.objects.exists()


TWICE = [{"name": "twice", "steps": [{"technique": "xla"}, {"technique": "xla"}]}]
TYPO_STEP = [{"name": "pruned", "steps": [{"technique": "pruning", "target_sparsty": 0.5}]}]
CLASH = [{"name": "clash", "steps": [{"technique": "qat"}, {"technique": "ptq"}]}]

CASES = {
    "a typo in training": (
        {"training": {"epoch": 3}}, "training",
        "Unknown setting 'epoch' for training (did you mean 'epochs'?); it takes epochs, "
        "batch_size, optimizer, learning_rate, seed, repeats.", None),
    "an unknown top-level key": (
        {"colour": "red"}, "colour",
        "Unknown setting 'colour'; a spec takes name, model, dataset, training, hardware, "
        "gpu_model, accuracy_budget, recipes, benchmark.", None),
    "a technique twice in a recipe": (
        {"recipes": TWICE}, "recipes.0.steps",
        "Technique 'xla' appears twice in the recipe; use it once.",
        {"recipes_json": json.dumps(TWICE)}),
    "a typo in a step": (
        {"recipes": TYPO_STEP}, "recipes.0.steps.0",
        "Unknown setting 'target_sparsty' for pruning (did you mean 'target_sparsity'?); it "
        "takes target_sparsity, schedule, structure, begin, end, begin_step, end_step, power, "
        "fine_tune_epochs.",
        {"recipes_json": json.dumps(TYPO_STEP)}),
    "two techniques that exclude each other": (
        {"recipes": CLASH}, "recipes.0.steps",
        "The qat step converts to an int8 .tflite itself; remove ptq from the recipe.",
        {"recipes_json": json.dumps(CLASH)}),
    "a branching zoo model for a chain-only technique": (
        {"model": {"arch": "resnet"}, "dataset": {"name": "synthetic", "shape": [8, 8, 3],
                                                  "samples": 200},
         "recipes": [{"name": "bn", "steps": [{"technique": "model_parallel"}]}]},
        "recipes.0.steps.0", "The model_parallel step rebuilds models layer by layer and needs "
                             "a straight chain of layers; resnet has branches.",
        {"arch": "resnet", "resnet_depth": 3, "resnet_width": 16, "dataset": "synthetic",
         "synthetic_samples": 200, "synthetic_height": 8, "synthetic_width": 8,
         "synthetic_channels": 3, "synthetic_classes": 10,
         "recipes_json": json.dumps([{"name": "bn", "steps": [
             {"technique": "model_parallel"}]}])}),
    "a lone surrogate in the name": (
        {"name": "bad \ud800 name"}, "name",
        "Text cannot contain NUL characters or lone surrogates (invalid Unicode).", None),
}


@pytest.mark.parametrize("case", CASES)
def test_each_spec_error_is_refused_alike_at_every_door(case, client, api, tmp_path, alice,
                                                        alice_team, tiny_spec):
    changes, path, message, form_changes = CASES[case]
    refused_at_every_door(client=client, api=api, tmp_path=tmp_path, user=alice,
                          team=alice_team, spec=tiny_spec(**changes), path=path,
                          message=message, form_changes=form_changes)


def test_a_dataset_shape_that_does_not_fit_the_model_is_refused_at_every_door(
        client, api, tmp_path, alice, alice_team, tiny_spec, make_dataset):
    flat = make_dataset(team=alice_team, name="flat", input_shape=(64,), num_classes=3)
    spec = tiny_spec(model={"arch": "seed_cnn"}, dataset={"name": "npz", "dataset_id": flat.pk})

    refused_at_every_door(
        client=client, api=api, tmp_path=tmp_path, user=alice, team=alice_team, spec=spec,
        path="model.arch", message="seed_cnn needs image samples shaped (height, width, "
                                   "channels), but the data has samples of shape [64]; use "
                                   "seed_mlp for flat feature vectors",
        form_changes={"arch": "seed_cnn", "cnn_filters": 8, "cnn_dense": 16,
                      "cnn_dropout": 0.5, "dataset": "npz", "npz_dataset": flat.pk})


def test_the_api_schema_of_a_spec_is_the_schemas_own(client):
    document = client.get("/api/schema/?format=json").json()
    body = document["paths"]["/api/experiments/"]["post"]["requestBody"]
    described = body["content"]["application/json"]["schema"]

    own = schema.json_schema()
    assert described["properties"]["team"]["type"] == "integer"
    assert {key: value for key, value in described["properties"].items() if key != "team"} \
        == json.loads(json.dumps(own["properties"]))
    assert described["additionalProperties"] is False
    assert described["required"] == own["required"] == ["name", "model"]


def test_the_json_schema_is_valid_and_takes_what_the_schema_normalizes(tiny_spec):
    described = schema.json_schema()
    Draft202012Validator.check_schema(described)
    validator = Draft202012Validator(described)
    specs = [
        tiny_spec(),
        tiny_spec(model={"arch": "resnet", "params": {"depth": 2}},
                  dataset={"name": "synthetic", "shape": [16, 16, 3], "samples": 300},
                  recipes=[{"name": "int8", "steps": [{"technique": "ptq"}]},
                           {"steps": [{"technique": "pruning", "target_sparsity": 0.5},
                                      {"technique": "mixed_precision"}]}],
                  benchmark={"executions": 3}, hardware="gpu", gpu_model="NVIDIA H200"),
    ]
    for spec in specs:
        validator.validate(spec)
        validator.validate(schema.check_spec(spec))
    # What the schema refuses, the JSON Schema refuses too.
    for bad in [tiny_spec(colour="red"), tiny_spec(training={"epoch": 3}),
                tiny_spec(recipes=[{"steps": [{"technique": "ptq", "mode": "int3"}]}]),
                tiny_spec(model={"arch": "vgg"})]:
        with pytest.raises(Invalid):
            schema.check_spec(bad)
        assert not validator.is_valid(bad)


def test_the_engine_refuses_what_the_doors_refuse():
    engine = {"model": {"arch": "seed_mlp"}, "dataset": {"name": "digits"},
              "steps": [{"technique": "xla"}, {"technique": "xla"}],
              "training": {"epoch": 3}}

    with pytest.raises(Invalid) as info:
        schema.check_engine_spec(engine)

    assert info.value.messages == {
        "training": ["Unknown setting 'epoch' for training (did you mean 'epochs'?); it takes "
                     "epochs, batch_size, optimizer, learning_rate, seed."],
        "steps": ["Technique 'xla' appears twice in the recipe; use it once."],
    }


def test_an_engine_spec_gets_the_same_defaults_as_a_submitted_one(tiny_spec):
    submitted = schema.check_spec(tiny_spec(training={}))
    engine = schema.check_engine_spec({"model": {"arch": "seed_mlp"},
                                       "dataset": {"name": "digits"}})

    assert engine["training"] == {key: value for key, value in submitted["training"].items()
                                  if key != "repeats"}
    assert engine["model"] == submitted["model"]
    assert engine["benchmark"]["batch_size"] == submitted["training"]["batch_size"]


@pytest.mark.parametrize("steps, message", [
    ([{"technique": "xla"}, {"technique": "xla"}],
     "Technique 'xla' appears twice in the recipe; use it once."),
    ([{"technique": "pruning", "target_sparsty": 0.5}],
     "Step 1: Unknown setting 'target_sparsty' for pruning (did you mean 'target_sparsity'?); "
     "it takes target_sparsity, schedule, structure, begin, end, begin_step, end_step, power, "
     "fine_tune_epochs."),
])
def test_the_recipe_library_refuses_alike_on_its_page_and_through_the_api(
        client, api, alice, alice_team, steps, message):
    client.force_login(alice)
    page = client.post(reverse("recipe_list"), {"name": "mine", "team": alice_team.pk,
                                                "steps_json": json.dumps(steps)})
    answer = api(alice).post("/api/recipes/", {"name": "mine", "steps": steps}, format="json")

    assert message in html.unescape(page.content.decode())
    assert answer.status_code == 400
    assert answer.json() == {"steps": [message]}
    assert not alice_team.recipes.exists()


def test_null_stands_for_a_setting_left_out(tiny_spec):
    spec = schema.check_spec(tiny_spec(gpu_model=None, model={"arch": "seed_mlp",
                                                              "params": None}))

    assert "gpu_model" not in spec
    assert spec["model"]["params"] == {"units": 64, "dropout": 0.2}


def test_a_stored_spec_from_before_the_schema_still_makes_an_engine_spec(tiny_spec):
    from experiments.spec import engine_spec

    # Stored when the gate kept keys it did not check: a re-run must still run.
    stored = {**tiny_spec(), "description": "notes", "gpu_model": None,
              "model": {"arch": "seed_mlp", "params": {}, "model_id": None},
              "training": {"epochs": 1, "batch_size": 64, "epoch": 3, "repeats": 2}}

    engine = schema.check_engine_spec(engine_spec(stored, [{"technique": "xla"}],
                                                  replicate=1))

    assert engine["training"]["epochs"] == 1 and engine["training"]["seed"] == 1
    assert engine["model"] == {"arch": "seed_mlp", "params": {"units": 64, "dropout": 0.2}}


def test_a_crafted_body_gets_a_short_answer(tiny_spec):
    # 31 levels of 10,000-character keys over 1,000 leaves: one message per leaf, each
    # keyed by a 310 KB path, would make a 300 MB answer of a 300 KB body.
    inner = {f"k{i}": "a\x00" for i in range(1000)}
    for level in range(31):
        inner = {f"{level:02d}" + "x" * 9_998: inner}

    with pytest.raises(Invalid) as info:
        schema.check_spec(tiny_spec(training=inner))

    assert len(info.value.messages) <= 20
    assert len(json.dumps(info.value.messages)) < 50_000


def test_a_huge_number_is_not_repeated_back(tiny_spec):
    with pytest.raises(Invalid) as info:
        schema.check_spec(tiny_spec(training={"epochs": 10**400}))

    assert info.value.messages == {"training.epochs": [
        "Epochs must be between 1 and 500 (got an integer of 401 digits)."]}


def test_the_json_schema_counts_text_as_the_checks_do(tiny_spec):
    spaced = tiny_spec(recipes=[{"name": "a" * 199 + "  ", "steps": [{"technique": "xla"}]}])

    with pytest.raises(Invalid):
        schema.check_spec(spaced)
    assert not Draft202012Validator(schema.json_schema()).is_valid(spaced)
