"""The public datasets at every door: the form, the API and `manage.py submit` refuse one
whose files are missing (saying which and how to add them), take a present one with a
subset, and the Datasets page lists them; the runner is told where the files are."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from public_archives import write

from experiments.forms import ExperimentForm
from experiments.spec import engine_spec

MISSING = "cifar-10-python.tar.gz is missing from"
HOW = "python manage.py dataset fetch cifar10"


@pytest.fixture
def cache(settings, tmp_path):
    settings.ACCELWEB_DATASET_DIR = tmp_path / "cache"
    return settings.ACCELWEB_DATASET_DIR


@pytest.fixture
def form_data(alice_team):
    return {
        "name": "cifar10, seed CNN", "team": alice_team.pk, "hardware": "cpu",
        "arch": "seed_cnn", "dataset": "cifar10", "subset_train": 5000, "subset_test": 1000,
        "epochs": 2, "batch_size": 64, "optimizer": "adam", "learning_rate": 0.001, "seed": 0,
    }


def test_the_form_says_which_file_is_missing_and_how_to_add_it(alice, cache, form_data):
    form = ExperimentForm(form_data, user=alice)
    assert not form.is_valid()
    (message,) = form.errors["dataset"]
    assert MISSING in message and str(cache) in message and HOW in message


def test_the_form_takes_a_present_dataset_with_a_subset(alice, cache, form_data):
    write("cifar10", cache)
    form = ExperimentForm(form_data, user=alice)
    assert form.is_valid(), form.errors
    assert form.spec["dataset"] == {"name": "cifar10", "train_samples": 5000,
                                    "test_samples": 1000}


def test_the_form_puts_a_too_large_subset_next_to_its_field(alice, cache, form_data):
    write("cifar10", cache)
    form = ExperimentForm({**form_data, "subset_train": 60000}, user=alice)
    assert not form.is_valid()
    assert form.errors["subset_train"] == [
        "This dataset has 50,000 training samples; a subset cannot ask for 60,000."]


def test_the_new_experiment_page_offers_the_datasets_and_the_subset(client, alice, cache):
    client.force_login(alice)
    page = client.get("/experiments/new/?dataset=cifar10").content.decode()
    assert '<option value="cifar10" selected>' in page
    for name in ("mnist", "fashion_mnist", "cifar100"):
        assert f'<option value="{name}">' in page
    assert 'name="subset_train"' in page and 'name="subset_test"' in page


def test_the_api_answers_400_with_the_message(api, alice, cache, tiny_spec):
    response = api(alice).post(
        "/api/experiments/",
        json.dumps(tiny_spec(dataset={"name": "cifar10", "train_samples": 500})),
        content_type="application/json")
    assert response.status_code == 400
    (message,) = response.json()["dataset.name"]
    assert MISSING in message and HOW in message


def test_submit_refuses_the_spec_with_the_message(alice, cache, tiny_spec, tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(tiny_spec(dataset={"name": "cifar10"})))
    with pytest.raises(CommandError) as caught:
        call_command("submit", str(path), "--user", "alice", stdout=StringIO())
    assert MISSING in str(caught.value) and HOW in str(caught.value)


def test_the_runner_is_told_where_the_files_are(cache):
    spec = {"name": "x", "model": {"arch": "seed_cnn", "params": {}},
            "dataset": {"name": "mnist", "train_samples": 100}, "training": {}}
    assert engine_spec(spec, [])["dataset"] == {"name": "mnist", "train_samples": 100,
                                                "directory": str(cache)}


def test_the_datasets_page_lists_them_with_status_and_commands(client, alice, cache):
    write("mnist", cache)
    client.force_login(alice)
    response = client.get("/datasets/")
    assert response.status_code == 200
    page = response.content.decode()
    mnist = page.split('data-dataset="mnist"')[1].split("</tr>")[0]
    assert "present" in mnist and "28x28x1" in mnist and "60000" in mnist
    assert "/experiments/new/?dataset=mnist" in mnist
    cifar = page.split('data-dataset="cifar10"')[1].split("</tr>")[0]
    assert "missing" in cifar and "cifar-10-python.tar.gz" in cifar
    assert HOW in cifar and "python manage.py dataset import cifar10" in cifar
    assert page.index('id="public-datasets"') < page.index("Uploaded datasets")


def test_the_comparison_knows_the_classes_of_a_public_dataset(alice, alice_team, cache,
                                                              make_experiment):
    from experiments.selectors import experiment_classes

    write("cifar100", cache)
    experiment = make_experiment(team=alice_team, user=alice, model={"arch": "seed_mlp"},
                                 dataset={"name": "cifar100", "train_samples": 1000,
                                          "test_samples": 100})
    assert experiment.spec["dataset"]["train_samples"] == 1000
    assert experiment_classes(experiment) == 100
