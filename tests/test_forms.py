import json

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from experiments.forms import DatasetUploadForm, ExperimentForm
from experiments.models import Recipe

MAX_UPLOAD = 10 * 1024 * 1024


@pytest.fixture
def valid_data(alice_team):
    return {
        "name": "digits, seed MLP", "team": alice_team.pk, "hardware": "cpu",
        "arch": "seed_mlp", "mlp_units": 32, "mlp_dropout": 0.1,
        "dataset": "digits",
        "epochs": 2, "batch_size": 64, "optimizer": "adam", "learning_rate": 0.001, "seed": 7,
    }


def experiment_form(user, data, **changes):
    return ExperimentForm({**data, **changes}, user=user)


def npz_upload(tmp_path, name="blobs.npz", *, x_train=None, **arrays):
    rng = np.random.default_rng(0)
    content = {
        "x_train": rng.random((40, 6, 6), dtype=np.float32) if x_train is None else x_train,
        "y_train": np.arange(40) % 4,
        "x_test": rng.random((12, 6, 6), dtype=np.float32),
        "y_test": np.arange(12) % 4,
        **arrays,
    }
    path = tmp_path / "upload.npz"
    np.savez(path, **content)
    return SimpleUploadedFile(name, path.read_bytes(), content_type="application/octet-stream")


def upload_form(user, team, upload, name="Blobs"):
    return DatasetUploadForm({"name": name, "team": team.pk}, {"file": upload}, user=user,
                             max_bytes=MAX_UPLOAD)


def test_it_gives_an_invalid_step_only_its_own_message(alice, valid_data):
    # As the recipe builder posts it: a ptq step whose mode was edited to a bad one.
    recipes = [{"name": "int8", "steps": [{"technique": "ptq", "mode": "int3"}]}]
    form = experiment_form(alice, valid_data, recipes_json=json.dumps(recipes))

    assert not form.is_valid()
    assert form.errors == {"recipes_json": [
        "Recipe 1 (int8): The ptq mode must be one of dynamic_int8, float16, full_int8."]}


def test_it_builds_a_spec_with_the_chosen_recipes(alice, valid_data):
    recipes = [{"name": "XLA", "steps": [{"technique": "xla"}]},
               {"name": "int8 (dynamic range)",
                "steps": [{"technique": "ptq", "mode": "dynamic_int8"}]}]
    form = experiment_form(alice, valid_data, recipes_json=json.dumps(recipes))

    assert form.is_valid(), form.errors
    assert form.spec["model"] == {"arch": "seed_mlp", "params": {"units": 32, "dropout": 0.1}}
    assert form.spec["training"] == {"epochs": 2, "batch_size": 64, "optimizer": "adam",
                                     "learning_rate": 0.001, "seed": 7, "repeats": 1}
    assert form.spec["benchmark"] == {"executions": 5, "rounds": 20}
    assert [r["name"] for r in form.spec["recipes"]] == ["XLA", "int8 (dynamic range)"]
    assert form.spec["recipes"][1]["steps"][0]["mode"] == "dynamic_int8"


def test_it_takes_repeats_and_the_benchmark_settings(alice, valid_data):
    form = experiment_form(alice, valid_data, repeats="3", bench_executions="8",
                           bench_rounds="30")

    assert form.is_valid(), form.errors
    assert form.spec["training"]["repeats"] == 3
    assert form.spec["benchmark"] == {"executions": 8, "rounds": 30}


@pytest.mark.parametrize(("field", "value"), [
    ("repeats", "11"), ("repeats", "0"), ("bench_executions", "1"), ("bench_rounds", "1000")])
def test_it_refuses_repeats_and_benchmark_settings_out_of_bounds(alice, valid_data, field,
                                                                 value):
    form = experiment_form(alice, valid_data, **{field: value})

    assert not form.is_valid()
    assert field in form.errors


def test_it_builds_a_spec_without_recipes(alice, valid_data):
    # The baseline is added when the experiment is created, not by the form.
    form = experiment_form(alice, valid_data)

    assert form.is_valid(), form.errors
    assert form.spec["recipes"] == []


def test_it_takes_the_accuracy_budget_in_points(alice, valid_data):
    assert experiment_form(alice, valid_data).spec is None  # nothing built before validation
    form = experiment_form(alice, valid_data, accuracy_budget=2.5)

    assert form.is_valid(), form.errors
    assert form.spec["accuracy_budget"] == 0.025
    default = experiment_form(alice, valid_data)
    assert default.is_valid() and default.spec["accuracy_budget"] == 0.01
    assert "accuracy_budget" in experiment_form(alice, valid_data, accuracy_budget=101).errors


@pytest.mark.parametrize("epochs, message", [
    (0, "Ensure this value is greater than or equal to 1."),
    (501, "Ensure this value is less than or equal to 500."),
])
def test_it_refuses_epochs_out_of_range(alice, valid_data, epochs, message):
    form = experiment_form(alice, valid_data, epochs=epochs)

    assert not form.is_valid()
    assert form.errors["epochs"] == [message]
    assert form.spec is None


@pytest.mark.parametrize("batch_size, message", [
    (0, "Ensure this value is greater than or equal to 1."),
    (65_537, "Ensure this value is less than or equal to 65536."),
])
def test_it_refuses_batch_sizes_out_of_range(alice, valid_data, batch_size, message):
    form = experiment_form(alice, valid_data, batch_size=batch_size)

    assert not form.is_valid()
    assert form.errors["batch_size"] == [message]


def test_it_refuses_a_batch_larger_than_the_training_samples(alice, valid_data):
    form = experiment_form(alice, valid_data, batch_size=5000)

    assert not form.is_valid()
    assert form.errors["batch_size"] == [
        "Batch size 5,000 is larger than the 1,293 training samples of this dataset."
    ]


def test_it_refuses_a_model_over_the_parameter_cap(alice, valid_data, settings):
    settings.ACCELWEB_MAX_PARAMS = 3000

    form = experiment_form(alice, valid_data)

    assert not form.is_valid()
    # 64 inputs -> 32 -> 32 -> 10: 2,080 + 1,056 + 330 weights.
    assert any("This model has 3,466 parameters; the limit is 3,000." in message
               for message in form.non_field_errors())


def test_it_refuses_a_cnn_on_images_too_small_to_pool(alice, valid_data):
    form = experiment_form(alice, valid_data, arch="seed_cnn", dataset="synthetic",
                           synthetic_samples=200, synthetic_height=64, synthetic_width=1,
                           synthetic_channels=1, synthetic_classes=2)

    assert not form.is_valid()
    assert form.errors["arch"] == [
        "seed_cnn needs images of at least 4x4 pixels, but the data has 64x1"
    ]


def test_it_refuses_a_cnn_on_a_flat_dataset(alice, alice_team, valid_data, make_dataset):
    features = make_dataset(team=alice_team, name="features", input_shape=[64])

    form = experiment_form(alice, valid_data, arch="seed_cnn", dataset="npz",
                           npz_dataset=features.pk, batch_size=16)

    assert not form.is_valid()
    assert "seed_cnn needs image samples shaped (height, width, channels)" in \
        form.errors["arch"][0]


def test_it_accepts_the_teams_npz_dataset(alice, alice_team, valid_data, make_dataset):
    blobs = make_dataset(team=alice_team, name="blobs")

    form = experiment_form(alice, valid_data, dataset="npz", npz_dataset=blobs.pk,
                           batch_size=16)

    assert form.is_valid(), form.errors
    assert form.spec["dataset"] == {"name": "npz", "dataset_id": blobs.pk, "label": "blobs"}


def test_it_refuses_another_teams_npz_dataset(alice, charlie_team, valid_data, make_dataset):
    charlies = make_dataset(team=charlie_team, name="charlie's blobs")

    form = experiment_form(alice, valid_data, dataset="npz", npz_dataset=charlies.pk,
                           batch_size=16)

    assert not form.is_valid()
    assert form.errors["npz_dataset"] == [
        "Select a valid choice. That choice is not one of the available choices."
    ]


def test_it_refuses_a_dataset_of_the_users_other_team(alice, alice_team, charlie_team,
                                                      valid_data, make_dataset):
    # Alice belongs to both teams, but the experiment goes to hers: the dataset must too.
    from experiments.models import Membership

    Membership.objects.create(team=charlie_team, user=alice)
    charlies = make_dataset(team=charlie_team, name="charlie's blobs")

    form = experiment_form(alice, valid_data, dataset="npz", npz_dataset=charlies.pk,
                           batch_size=16)

    assert not form.is_valid()
    assert form.errors["npz_dataset"] == ["Choose one of your team's uploaded datasets."]


def test_it_refuses_npz_without_a_choice(alice, valid_data):
    form = experiment_form(alice, valid_data, dataset="npz")

    assert not form.is_valid()
    assert form.errors["npz_dataset"] == ["Choose one of your team's uploaded datasets."]


def test_it_refuses_another_teams_team(alice, charlie_team, valid_data):
    form = experiment_form(alice, valid_data, team=charlie_team.pk)

    assert not form.is_valid()
    assert "team" in form.errors


def test_it_accepts_a_good_npz(alice, alice_team, tmp_path):
    form = upload_form(alice, alice_team, npz_upload(tmp_path))

    assert form.is_valid(), form.errors
    assert form.description == {
        "input_shape": [6, 6, 1], "num_classes": 4, "train_samples": 36,
        "validation_samples": 4, "test_samples": 12,
    }
    # The view saves the upload after the check read it: it must be rewound.
    assert form.cleaned_data["file"].read(2) == b"PK"


def test_it_refuses_an_npz_with_python_objects(alice, alice_team, tmp_path):
    objects = np.array([{"pixels": [1, 2]}] * 40, dtype=object)

    form = upload_form(alice, alice_team, npz_upload(tmp_path, "evil.npz", x_train=objects))

    assert not form.is_valid()
    [message] = form.errors["file"]
    assert message.startswith("This is not a usable .npz dataset:")
    # Named as the user knows it, not as the temporary copy the check read.
    assert message.endswith(
        "evil.npz contains Python objects; only plain numeric arrays are accepted")


def test_it_refuses_an_npz_without_the_keras_layout(alice, alice_team, tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, images=np.zeros((40, 4)))
    upload = SimpleUploadedFile("other.npz", path.read_bytes())

    form = upload_form(alice, alice_team, upload)

    assert not form.is_valid()
    assert "other.npz lacks x_train, y_train, x_test, y_test" in form.errors["file"][0]


def test_it_refuses_a_file_that_is_not_an_npz(alice, alice_team):
    upload = SimpleUploadedFile("blobs.npz", b"x_train,y_train\n1,2\n")

    form = upload_form(alice, alice_team, upload)

    assert not form.is_valid()
    assert form.errors["file"] == [
        "This is not a usable .npz dataset: blobs.npz is not an .npz archive"
    ]


def test_it_refuses_a_wrong_extension(alice, alice_team, tmp_path):
    form = upload_form(alice, alice_team, npz_upload(tmp_path, "blobs.csv"))

    assert not form.is_valid()
    assert form.errors["file"] == ["Upload a .npz file."]


def test_it_refuses_a_file_over_the_limit(alice, alice_team, tmp_path):
    upload = npz_upload(tmp_path)
    form = DatasetUploadForm({"name": "Blobs", "team": alice_team.pk}, {"file": upload},
                             user=alice, max_bytes=100)

    assert not form.is_valid()
    assert form.errors["file"] == [f"The file is {upload.size:,} bytes; the limit is 100."]


def test_it_refuses_an_upload_to_another_team(alice, charlie_team, tmp_path):
    form = upload_form(alice, charlie_team, npz_upload(tmp_path))

    assert not form.is_valid()
    assert "team" in form.errors


def test_it_adds_the_teams_saved_recipes(alice, alice_team, valid_data):
    saved = Recipe.objects.create(team=alice_team, name="fast", steps=[{"technique": "xla"}])

    form = experiment_form(alice, valid_data, library=[saved.pk])

    assert form.is_valid(), form.errors
    assert [r["name"] for r in form.spec["recipes"]] == ["fast"]


def test_it_refuses_recipes_that_are_not_json(alice, valid_data):
    form = experiment_form(alice, valid_data, recipes_json="[{'technique': 'xla'")

    assert not form.is_valid()
    assert "not valid JSON" in form.errors["recipes_json"][0]


def test_it_names_the_recipe_with_a_bad_step(alice, valid_data):
    recipes = [{"name": "warp", "steps": [{"technique": "warp_drive"}]}]
    form = experiment_form(alice, valid_data, recipes_json=json.dumps(recipes))

    assert not form.is_valid()
    assert form.errors["recipes_json"][0].startswith("Recipe 1 (warp): ")
    assert "warp_drive" in form.errors["recipes_json"][0]


def test_it_refuses_another_teams_saved_recipe(alice, charlie_team, valid_data):
    theirs = Recipe.objects.create(team=charlie_team, name="theirs",
                                   steps=[{"technique": "xla"}])

    form = experiment_form(alice, valid_data, library=[theirs.pk])

    assert not form.is_valid()
    assert "library" in form.errors
