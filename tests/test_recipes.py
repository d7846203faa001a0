"""The recipe library, the run page with its artifacts, and advice checked after a run."""

import json

import pytest
from django.urls import reverse

from experiments.comparison import advice_checks, compare_runs, verdict
from experiments.models import Recipe, Run


@pytest.fixture
def finished_run(make_experiment, alice, alice_team):
    experiment = make_experiment(team=alice_team, user=alice)
    run = experiment.runs.get(name="baseline")
    run.status = Run.Status.SUCCEEDED
    run.result = {"artifacts": ["model.keras"], "fingerprint": {"cpu_model": "x"}}
    run.save()
    run.artifacts_dir.mkdir(parents=True)
    (run.artifacts_dir / "model.keras").write_bytes(b"weights")
    (run.artifacts_dir / "secret.txt").write_bytes(b"not listed")
    return run


def test_it_lists_only_the_teams_recipes(client, alice, alice_team, charlie_team):
    Recipe.objects.create(team=alice_team, name="ours", steps=[{"technique": "xla"}])
    Recipe.objects.create(team=charlie_team, name="theirs", steps=[{"technique": "xla"}])
    client.force_login(alice)

    response = client.get(reverse("recipe_list"))

    assert response.status_code == 200
    assert [r.name for r in response.context["recipes"]] == ["ours"]


def test_it_saves_a_written_recipe_with_defaults_filled(client, alice, alice_team):
    client.force_login(alice)
    steps = [{"technique": "ptq", "mode": "float16"}]

    response = client.post(reverse("recipe_list"), {
        "name": "half", "team": alice_team.pk, "steps_json": json.dumps(steps),
    })

    assert response.status_code == 302
    recipe = Recipe.objects.get(name="half")
    assert recipe.team == alice_team
    assert recipe.steps[0]["mode"] == "float16"
    assert "representative_samples" in recipe.steps[0]


def test_it_refuses_a_recipe_with_a_bad_step(client, alice, alice_team):
    client.force_login(alice)

    response = client.post(reverse("recipe_list"), {
        "name": "bad", "team": alice_team.pk,
        "steps_json": json.dumps([{"technique": "ptq", "mode": "int3"}]),
    })

    assert response.status_code == 400
    assert "Step 1:" in response.content.decode()
    assert not Recipe.objects.exists()


def test_it_does_not_let_a_viewer_save_recipes(client, bob, alice_team):
    client.force_login(bob)

    response = client.post(reverse("recipe_list"), {
        "name": "x", "team": alice_team.pk, "steps_json": json.dumps([{"technique": "xla"}]),
    })

    assert response.status_code == 403
    assert not Recipe.objects.exists()


def test_it_hides_another_teams_recipe_from_delete(client, charlie, alice_team):
    recipe = Recipe.objects.create(team=alice_team, name="ours", steps=[{"technique": "xla"}])
    client.force_login(charlie)

    response = client.post(reverse("recipe_delete", args=[recipe.pk]))

    assert response.status_code == 404
    assert Recipe.objects.filter(pk=recipe.pk).exists()


def test_it_saves_a_runs_steps_to_the_library(client, alice, alice_team, make_experiment):
    experiment = make_experiment(
        team=alice_team, user=alice,
        recipes=[{"name": "XLA", "steps": [{"technique": "xla"}]}],
    )
    run = experiment.runs.get(name="XLA")
    client.force_login(alice)

    response = client.post(reverse("run_save_recipe", args=[run.pk]), {"name": "fast"})

    assert response.status_code == 302
    assert Recipe.objects.get(team=alice_team, name="fast").steps == run.steps


def test_it_shows_a_run_with_its_artifacts(client, alice, finished_run):
    client.force_login(alice)

    response = client.get(reverse("run_detail", args=[finished_run.pk]))

    assert response.status_code == 200
    assert response.context["artifacts"] == ["model.keras"]
    download = client.get(reverse("run_artifact", args=[finished_run.pk, "model.keras"]))
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == b"weights"


@pytest.mark.parametrize("name", ["secret.txt", "..%2F..%2Fsecret_key", "missing.tflite"])
def test_it_serves_only_reported_artifacts(client, alice, finished_run, name):
    client.force_login(alice)

    response = client.get(f"/runs/{finished_run.pk}/artifacts/{name}")

    assert response.status_code == 404


def test_it_hides_another_teams_run(client, charlie, finished_run):
    client.force_login(charlie)

    assert client.get(reverse("run_detail", args=[finished_run.pk])).status_code == 404
    artifact = reverse("run_artifact", args=[finished_run.pk, "model.keras"])
    assert client.get(artifact).status_code == 404


@pytest.mark.parametrize(("ci", "expected"), [
    ([0.4, 0.8], "slower"), ([1.1, 1.5], "faster"), ([0.9, 1.2], "no clear difference"),
    (None, "no interval"),
])
def test_it_reads_a_ratio_by_its_interval(ci, expected):
    assert verdict(1.0, ci) == expected


def test_it_checks_advice_against_the_training_speedup(make_experiment, alice, alice_team):
    experiment = make_experiment(
        team=alice_team, user=alice, training={"epochs": 4, "repeats": 2},
        recipes=[{"name": "fp16", "steps": [{"technique": "mixed_precision"}]}],
    )
    fingerprint = {"cpu_model": "x"}
    runs = list(experiment.runs.all())
    for run in runs:
        jitter = (0.99, 1.01)[run.replicate]
        run.status = Run.Status.SUCCEEDED
        if run.is_baseline:
            run.result = {"train_samples_per_s": 1000, "fingerprint": fingerprint,
                          "train_samples_per_s_epochs": [990, 1000, 1010, 1005]}
        else:
            run.result = {"train_samples_per_s": 500, "fingerprint": fingerprint,
                          "train_samples_per_s_epochs": [r * jitter for r in (490, 500, 510)],
                          "advice": [{"technique": "mixed_precision",
                                      "message": "slower here"}]}

    # One check per recipe, not per replicate.
    [check] = advice_checks(runs, compare_runs(runs))

    assert check["what"] == "training"
    assert check["speedup"] == pytest.approx(0.495, abs=0.01)
    assert check["verdict"] == "slower"
    assert check["ci"][1] < 1.0


def test_it_offers_every_registered_technique_in_the_form(client, alice):
    from runners.engine.techniques import TECHNIQUES

    client.force_login(alice)

    response = client.get(reverse("experiment_new"))

    offered = {entry["technique"] for entry in response.context["catalog"]}
    assert offered == set(TECHNIQUES)
    assert 'id="technique-catalog"' in response.content.decode()
    assert all(preset["recipe"]["steps"] for preset in response.context["presets"])
