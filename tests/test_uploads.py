""".keras uploads: what is refused and why, who may upload and see, and a run that trains one.

The .keras files are built once per session in a child process (Keras stays out of the test
process, as it stays out of the web); the good upload is then checked by the form's own
`python -m runners inspect-model` child, the refusals by the archive check before any Keras
is involved.
"""

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from engine_runs import BENCHMARK, ROOT, EngineRun
from test_data import MIB, deflated_zeros, npy, small_arrays, stored, write_zip
from test_schema import refused_at_every_door

from experiments.forms import ExperimentForm, ModelUploadForm
from experiments.models import Dataset, Run, UploadedModel
from experiments.spec import engine_spec, validate_spec
from runners import process as engine_process
from runners.engine import modelfile
from runners.tasks import execute_run

pytestmark = pytest.mark.timeout(300)
MAX_UPLOAD = 10 * 1024 * 1024
KERAS_QUANTIZE_REFUSAL = ("The keras_quantize int8 step quantizes only Dense, EinsumDense or "
                          "Embedding layers; “Pooled” has none.")
LAMBDA_MESSAGE = "This model contains a Lambda layer, which AccelWeb refuses to load: "

BUILD = textwrap.dedent("""
    import sys
    import keras

    out = sys.argv[1]
    layers = keras.layers

    def save(name, inputs, outputs):
        keras.Model(inputs, outputs).save(f"{out}/{name}.keras")

    keras.Sequential([keras.Input((8, 8, 1)), layers.Flatten(), layers.Dense(16, "relu"),
                      layers.Dense(10, "softmax")]).save(f"{out}/digits.keras")
    inputs = keras.Input((8, 8, 1))
    save("logits", inputs, layers.Dense(10)(layers.Dense(16, "relu")(layers.Flatten()(inputs))))
    # A classifier without a Dense layer: nothing for keras_quantize to quantize.
    inputs = keras.Input((8, 8, 1))
    save("pooled", inputs, layers.Activation("softmax")(
        layers.GlobalAveragePooling2D()(layers.Conv2D(10, 3)(inputs))))
    inputs = keras.Input((4,))
    save("sigmoid", inputs, layers.Dense(1, "sigmoid")(inputs))
    # The classic exploit: Python bytecode in a Lambda, run when the model loads.
    save("lambda", inputs, layers.Dense(3)(layers.Lambda(
        lambda x: __import__("os").system("touch " + out + "/pwned") or x)(inputs)))
    # Keras's safe_mode lets a Lambda around a Keras function through; AccelWeb does not.
    save("lambda_fn", inputs, layers.Dense(3)(layers.Lambda(keras.activations.relu)(inputs)))

    @keras.saving.register_keras_serializable(package="evil")
    class Evil(layers.Layer):
        def call(self, x):
            return x

    save("custom", inputs, layers.Dense(3)(Evil()(inputs)))

    # Building the Lambda model ran its function once; only a load may leave this mark now.
    import os
    os.remove(f"{out}/pwned")
""")


@pytest.fixture(scope="session")
def keras_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("keras")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "-1"}
    subprocess.run([sys.executable, "-c", BUILD, str(out)], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=180)
    return out


def upload_of(keras_files, name, filename=None):
    content = (keras_files / f"{name}.keras").read_bytes()
    return SimpleUploadedFile(filename or f"{name}.keras", content)


def upload_form(user, team, upload, name="Digits MLP", max_bytes=MAX_UPLOAD):
    return ModelUploadForm({"name": name, "team": team.pk}, {"file": upload}, user=user,
                           max_bytes=max_bytes)


@pytest.fixture
def make_uploaded_model():
    """An UploadedModel row as an upload leaves it; planning a run needs no file."""

    def make(*, team, name="digits mlp", input_shape=(8, 8, 1), num_classes=10, params=1210):
        return UploadedModel.objects.create(
            team=team, name=name, file=f"models/{name}.keras", input_shape=list(input_shape),
            num_classes=num_classes, params=params, layers=3, size_bytes=1234,
        )

    return make


def test_it_uploads_and_lists_a_keras_model(client, alice, alice_team, keras_files):
    client.force_login(alice)

    response = client.post(reverse("model_list"), {
        "name": "Digits MLP", "team": alice_team.pk,
        "file": upload_of(keras_files, "digits", "my model.keras"),
    })

    assert response.status_code == 302, response.content.decode()[-2000:]
    uploaded = UploadedModel.objects.get()
    assert (uploaded.team, uploaded.uploaded_by, uploaded.name) == (alice_team, alice,
                                                                    "Digits MLP")
    assert uploaded.input_shape == [8, 8, 1]
    assert uploaded.num_classes == 10
    assert uploaded.params == 64 * 16 + 16 + 16 * 10 + 10
    assert uploaded.layers == 3
    assert uploaded.facts == {"arch": "uploaded", "layers": {"Flatten": 1, "Dense": 2},
                              "chain": True, "nested": False}
    assert uploaded.size_bytes == (keras_files / "digits.keras").stat().st_size
    # Stored as uploaded: the engine loads this very file.
    with uploaded.file.open("rb") as stored:
        assert stored.read() == (keras_files / "digits.keras").read_bytes()
    page = client.get(reverse("model_list")).content.decode()
    assert "Digits MLP" in page and "8x8x1" in page


def test_a_technique_the_uploaded_model_cannot_take_is_refused_at_every_door(
        client, api, tmp_path, alice, alice_team, keras_files, make_dataset, tiny_spec):
    client.force_login(alice)
    response = client.post(reverse("model_list"), {
        "name": "Pooled", "team": alice_team.pk, "file": upload_of(keras_files, "pooled")})
    assert response.status_code == 302, response.content.decode()[-2000:]
    pooled = UploadedModel.objects.get()
    assert pooled.facts["layers"] == {"Conv2D": 1, "GlobalAveragePooling2D": 1,
                                      "Activation": 1}
    digits = make_dataset(team=alice_team, name="digits", num_classes=10)
    recipes = [{"name": "int8", "steps": [{"technique": "keras_quantize"}]}]

    refused_at_every_door(
        client=client, api=api, tmp_path=tmp_path, user=alice, team=alice_team,
        spec=tiny_spec(model={"arch": "uploaded", "model_id": pooled.pk},
                       dataset={"name": "npz", "dataset_id": digits.pk}, recipes=recipes),
        path="recipes.0.steps.0", message=KERAS_QUANTIZE_REFUSAL,
        form_changes={"arch": "uploaded", "uploaded_model": pooled.pk, "dataset": "npz",
                      "npz_dataset": digits.pk, "recipes_json": json.dumps(recipes)})


def test_it_refuses_a_lambda_layer(alice, alice_team, keras_files):
    form = upload_form(alice, alice_team, upload_of(keras_files, "lambda"))

    assert not form.is_valid()
    [message] = form.errors["file"]
    assert message.startswith(LAMBDA_MESSAGE)
    assert "(layer 'lambda')" in message
    assert not (keras_files / "pwned").exists()
    assert not UploadedModel.objects.exists()


def test_it_refuses_a_lambda_that_keras_safe_mode_would_load(alice, alice_team, keras_files):
    form = upload_form(alice, alice_team, upload_of(keras_files, "lambda_fn"))

    assert not form.is_valid()
    assert form.errors["file"][0].startswith(LAMBDA_MESSAGE)


def test_it_refuses_an_unknown_custom_layer(alice, alice_team, keras_files):
    form = upload_form(alice, alice_team, upload_of(keras_files, "custom"))

    assert not form.is_valid()
    assert form.errors["file"] == [
        "This model uses 'Evil' (evil>Evil), which is not a built-in Keras object; AccelWeb "
        "refuses to load custom code. Rebuild the model from built-in Keras layers, "
        "activations and initializers."
    ]


def test_it_refuses_a_custom_module_even_without_a_registered_name(tmp_path):
    # A hand-edited config naming a module of its own (a path Keras would import from).
    config = {"module": "os", "class_name": "system", "config": {"command": "true"}}
    path = tmp_path / "edited.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))

    with pytest.raises(modelfile.ModelFileError, match=r"uses 'system' \(os\), which is not"):
        modelfile.check_archive(str(path))


def test_it_refuses_a_model_that_is_not_a_classifier(alice, alice_team, keras_files):
    form = upload_form(alice, alice_team, upload_of(keras_files, "sigmoid"))

    assert not form.is_valid()
    assert form.errors["file"] == [
        "The model's output has shape 1; AccelWeb trains classifiers, whose output is one "
        "score per class (at least 2 units)."
    ]


def renamed_zip():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "not a model")
    return buffer.getvalue()


@pytest.mark.parametrize(("filename", "content", "message"), [
    ("weights.keras", b"\x89HDF\r\n\x1a\n garbage", "weights.keras is not a .keras model: "
                                                   "it is not a zip archive."),
    ("archive.keras", renamed_zip(), "archive.keras is not a native .keras model: the "
                                     "archive has no config.json."),
    ("model.h5", b"\x89HDF\r\n\x1a\n", "Upload a model in the native .keras format"),
])
def test_it_refuses_files_that_are_not_keras_models(alice, alice_team, filename, content,
                                                    message):
    form = upload_form(alice, alice_team, SimpleUploadedFile(filename, content))

    assert not form.is_valid()
    assert form.errors["file"][0].startswith(message)


def model_members(keras_files):
    with zipfile.ZipFile(keras_files / "digits.keras") as model:
        return {info.filename: stored(model.read(info)) for info in model.infolist()}


def bomb_with_one_asset(keras_files, tmp_path):
    path = tmp_path / "bomb.keras"
    shutil.copy(keras_files / "digits.keras", path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("assets/zeros.bin", bytes(128 * MIB), zipfile.ZIP_DEFLATED, 9)
    return path


def bomb_with_assets(count):
    def build(keras_files, tmp_path):
        # The bomb: assets of 60 MiB of zeros, each under the per-member limit.
        zeros = deflated_zeros(60 * MIB)
        members = {**model_members(keras_files),
                   **{f"assets/zeros{i}.bin": zeros for i in range(count)}}
        return write_zip(tmp_path / "bomb.keras", members)

    return build


def many_members(keras_files, tmp_path):
    members = {**model_members(keras_files),
               **{f"assets/{i}.txt": stored(b"") for i in range(100_000)}}
    return write_zip(tmp_path / "many.keras", members)


@pytest.mark.parametrize("build, message", [
    (bomb_with_one_asset, r"bomb.keras: assets/zeros.bin unpacks to 134,217,728 bytes from "
                          r"[\d,]+; AccelWeb refuses archives that expand that much\.$"),
    (bomb_with_assets(15), r"bomb.keras unpacks to 943,[\d,]+ bytes from [\d,]+; AccelWeb "
                           r"refuses archives that expand that much\.$"),
    (bomb_with_assets(30), r"bomb.keras unpacks to 1,887,[\d,]+ bytes; the limit is "
                           r"1,073,741,824 \(1 GiB\)\.$"),
    (many_members, r"many.keras holds 100,003 members; the limit is 10,000\.$"),
], ids=["one-big-asset", "15-assets", "30-assets", "100000-members"])
def test_it_refuses_a_keras_archive_over_the_limits(alice, alice_team, keras_files, tmp_path,
                                                    monkeypatch, build, message):
    path = build(keras_files, tmp_path)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    upload = SimpleUploadedFile(os.path.basename(path), Path(path).read_bytes())

    started = time.perf_counter()
    form = upload_form(alice, alice_team, upload, max_bytes=20 * MIB)
    valid = form.is_valid()

    # From the zip's directory, in the web process: no member is read, no Keras child runs.
    assert time.perf_counter() - started < 1
    assert not valid
    assert re.match(message, form.errors["file"][0])
    assert list(scratch.iterdir()) == []
    assert not UploadedModel.objects.exists()


def test_the_model_check_that_runs_out_of_memory_says_so(keras_files, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    # 1 GiB of address space is too little for TensorFlow to load at all.
    with pytest.raises(ValueError, match=r"^The model check ran out of memory \(limit 1 GiB\)"):
        engine_process.inspect_model(keras_files / "digits.keras", memory_limit=1024**3)

    assert list(tmp_path.iterdir()) == []


def test_the_model_check_is_killed_with_its_files_on_a_timeout(keras_files, tmp_path,
                                                               monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    started = []

    class Popen(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(engine_process.subprocess, "Popen", Popen)

    with pytest.raises(ValueError, match=r"^Checking the model took longer than 1 s\.$"):
        engine_process.inspect_model(keras_files / "digits.keras", timeout=1)

    [child] = started
    assert child.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(child.pid, 0)  # its whole group is gone
    assert list(tmp_path.iterdir()) == []


def lying_npz(keras_files, tmp_path):
    members = {f"{key}.npy": stored(content) for key, content in small_arrays().items()}
    members["x_train.npy"] = stored(npy(shape=(2_551_021, 28, 28)) + bytes(1000))
    return write_zip(tmp_path / "liar.npz", members)


@pytest.mark.parametrize("endpoint, build, message", [
    ("/api/datasets/", lying_npz, "This is not a usable .npz dataset: liar.npz unpacks to "
                                  "2,000,001,472 bytes of arrays; the limit is 1,073,741,824"),
    ("/api/models/", many_members, "many.keras holds 100,003 members; the limit is 10,000."),
], ids=["npz-2-gb-in-headers", "keras-100000-members"])
def test_the_api_refuses_hostile_archives(api, alice, alice_team, keras_files, tmp_path,
                                          monkeypatch, endpoint, build, message):
    path = build(keras_files, tmp_path)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    upload = SimpleUploadedFile(os.path.basename(path), Path(path).read_bytes())

    response = api(alice).post(endpoint, {"name": "Hostile", "team": alice_team.pk,
                                          "file": upload}, format="multipart")

    assert response.status_code == 400
    assert response.json()["file"] == [message]
    assert list(scratch.iterdir()) == []
    assert not Dataset.objects.exists() and not UploadedModel.objects.exists()


@pytest.mark.parametrize("page, filename", [("model_list", "big.keras"),
                                            ("dataset_list", "big.npz")])
def test_it_stops_reading_a_file_over_the_limit(client, alice, alice_team, settings, page,
                                               filename):
    settings.ACCELWEB_MAX_UPLOAD_BYTES = 1000
    client.force_login(alice)

    response = client.post(reverse(page), {
        "name": "Big", "team": alice_team.pk,
        "file": SimpleUploadedFile(filename, b"x" * 1001),
    })

    assert response.status_code == 400
    # Skipped by the upload handler, never stored whole for the form to measure.
    assert "file" not in response.wsgi_request.FILES
    assert response.context["form"].errors["file"] == [
        "The file is larger than the limit of 1,000 bytes."]
    assert "The file is larger than the limit of 1,000 bytes." in response.content.decode()
    assert not UploadedModel.objects.exists()
    assert not Dataset.objects.exists()


@pytest.mark.parametrize("page, filename, message", [
    ("model_list", "edge.keras", "edge.keras is not a .keras model"),
    ("dataset_list", "edge.npz", "This is not a usable .npz dataset"),
])
def test_it_checks_a_file_at_the_limit(client, alice, alice_team, settings, page, filename,
                                       message):
    settings.ACCELWEB_MAX_UPLOAD_BYTES = 1000
    client.force_login(alice)

    response = client.post(reverse(page), {
        "name": "Edge", "team": alice_team.pk,
        "file": SimpleUploadedFile(filename, b"x" * 1000),
    })

    assert response.status_code == 400
    assert response.context["form"].errors["file"][0].startswith(message)


def test_it_refuses_an_upload_by_a_viewer(client, bob, alice_team, keras_files):
    client.force_login(bob)

    response = client.post(reverse("model_list"), {
        "name": "Digits MLP", "team": alice_team.pk,
        "file": upload_of(keras_files, "digits"),
    })

    assert response.status_code == 400
    assert "Viewers cannot upload models to this team." in response.content.decode()
    assert not UploadedModel.objects.exists()


def test_it_shows_a_model_only_to_its_team(client, alice, alice_team, charlie,
                                          make_uploaded_model):
    make_uploaded_model(team=alice_team, name="alices secret model")

    client.force_login(charlie)
    page = client.get(reverse("model_list"))
    assert page.status_code == 200
    assert "alices secret model" not in page.content.decode()
    assert list(page.context["form"].fields["team"].queryset) == list(charlie.teams.all())

    client.force_login(alice)
    assert "alices secret model" in client.get(reverse("model_list")).content.decode()


def uploaded_spec(tiny_spec, uploaded, **overrides):
    return tiny_spec(model={"arch": "uploaded", "model_id": uploaded.pk}, **overrides)


def test_it_validates_an_experiment_on_an_uploaded_model(alice_team, make_uploaded_model,
                                                         tiny_spec):
    uploaded = make_uploaded_model(team=alice_team)

    spec = validate_spec(uploaded_spec(tiny_spec, uploaded), team=alice_team)

    assert spec["model"] == {"arch": "uploaded", "model_id": uploaded.pk, "params": {},
                             "label": "digits mlp"}
    out = engine_spec(spec, [], model_path="/data/models/digits.keras")
    assert out["model"] == {"arch": "uploaded", "path": "/data/models/digits.keras"}


def test_it_refuses_a_model_whose_shapes_do_not_match_the_dataset(alice_team,
                                                                  make_uploaded_model,
                                                                  tiny_spec):
    flat = make_uploaded_model(team=alice_team, name="flat", input_shape=(64,), num_classes=3)

    with pytest.raises(ValidationError) as caught:
        validate_spec(uploaded_spec(tiny_spec, flat), team=alice_team)

    assert caught.value.message_dict["model.model_id"] == [
        "“flat” takes samples of shape 64, but this dataset's samples have shape 8x8x1.",
        "“flat” has 3 output units, but this dataset has 10 classes.",
    ]


def test_it_refuses_another_teams_model(alice_team, charlie_team, make_uploaded_model,
                                        tiny_spec):
    charlies = make_uploaded_model(team=charlie_team)

    with pytest.raises(ValidationError) as caught:
        validate_spec(uploaded_spec(tiny_spec, charlies), team=alice_team)

    assert caught.value.message_dict["model.model_id"] == [
        "Choose one of your team's uploaded models."]


def test_the_experiment_form_offers_the_teams_models(alice, alice_team, charlie_team,
                                                     make_uploaded_model):
    ours = make_uploaded_model(team=alice_team)
    make_uploaded_model(team=charlie_team, name="theirs")
    data = {
        "name": "uploaded on digits", "team": alice_team.pk, "hardware": "cpu",
        "arch": "uploaded", "uploaded_model": ours.pk, "dataset": "digits",
        "epochs": 1, "batch_size": 64, "optimizer": "sgd", "learning_rate": 0.01, "seed": 0,
    }

    form = ExperimentForm(data, user=alice)

    assert list(form.fields["uploaded_model"].queryset) == [ours]
    assert form.is_valid(), form.errors
    assert form.spec["model"]["model_id"] == ours.pk
    missing = ExperimentForm({**data, "uploaded_model": ""}, user=alice)
    assert not missing.is_valid()
    assert missing.errors["uploaded_model"] == ["Choose one of your team's uploaded models."]


def test_it_fails_a_run_whose_model_was_deleted(alice, alice_team, make_uploaded_model,
                                                make_experiment):
    uploaded = make_uploaded_model(team=alice_team)
    experiment = make_experiment(team=alice_team, user=alice,
                                 model={"arch": "uploaded", "model_id": uploaded.pk})
    uploaded.delete()
    run = experiment.runs.get()

    assert execute_run.run(run.pk) == Run.Status.FAILED

    run.refresh_from_db()
    assert run.error == "The uploaded model has been deleted."


def test_the_engine_trains_an_uploaded_logits_model(keras_files, tmp_path):
    spec = {
        "name": "uploaded",
        "model": {"arch": "uploaded", "path": str(keras_files / "logits.keras")},
        "dataset": {"name": "digits"},
        "training": {"epochs": 1, "batch_size": 32, "optimizer": "adam", "learning_rate": 0.01,
                     "seed": 0},
        "hardware": "cpu",
        "steps": [],
        "benchmark": BENCHMARK,
    }

    events, result = EngineRun(spec, tmp_path / "run").succeeded()

    start = next(e for e in events if e["event"] == "start")
    # The logits model got a softmax on top; its own weights are all that was trained.
    assert start["params"] == 64 * 16 + 16 + 16 * 10 + 10
    assert start["input_shape"] == [8, 8, 1] and start["num_classes"] == 10
    [epoch] = [e for e in events if e["event"] == "epoch"]
    assert epoch["loss"] > 0
    assert result["test_accuracy"] > 0.5  # 10 classes: chance is 0.1


def test_it_preselects_an_uploaded_model_for_a_new_experiment(client, alice, alice_team):
    from experiments.models import UploadedModel

    model = UploadedModel.objects.create(
        team=alice_team, name="flat", file="models/flat.keras", input_shape=[64],
        num_classes=10, params=650, layers=1, size_bytes=2000)
    client.force_login(alice)

    listing = client.get(reverse("model_list")).content.decode()
    assert f'{reverse("experiment_new")}?model={model.pk}' in listing
    page = client.get(reverse("experiment_new"), {"model": model.pk}).content.decode()
    assert '<option value="uploaded" selected>' in page
    assert f'<option value="{model.pk}" selected>flat</option>' in page
    assert client.get(reverse("experiment_new"), {"model": "junk"}).status_code == 200
