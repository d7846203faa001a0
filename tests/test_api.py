"""The REST API under /api/: token auth, roles, specs, runs, metrics, recipes, datasets."""

import io
import json
import re

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from results import benchmark_results

from experiments.models import Dataset, Experiment, Membership, Recipe, Run, RunEvent

SPEC = {
    "name": "digits, seed CNN",
    "model": {"arch": "seed_cnn", "params": {}},
    "dataset": {"name": "digits"},
    "training": {"epochs": 2, "batch_size": 64, "optimizer": "adam", "learning_rate": 0.001,
                 "seed": 0},
    "hardware": "cpu",
    "recipes": [
        {"name": "XLA", "steps": [{"technique": "xla"}]},
        {"name": "int8", "steps": [{"technique": "ptq", "mode": "dynamic_int8"}]},
    ],
}


@pytest.fixture
def experiment(alice, alice_team, make_experiment):
    return make_experiment(team=alice_team, user=alice, recipes=[
        {"name": "XLA", "steps": [{"technique": "xla"}]},
    ])


HUGE = "@1e999@"


def post_spec(client, spec):
    # 1e999 is valid JSON that parses to an infinite float; json.dumps would write Infinity.
    body = json.dumps(spec).replace(json.dumps(HUGE), "1e999")
    return client.post("/api/experiments/", body, content_type="application/json")


def npz_bytes(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "blobs.npz"
    np.savez(path, x_train=rng.random((30, 5), dtype=np.float32), y_train=np.arange(30) % 3,
             x_test=rng.random((10, 5), dtype=np.float32), y_test=np.arange(10) % 3)
    return path.read_bytes()


# Authentication


def test_it_answers_anonymous_requests_with_401_and_a_token_challenge(api, experiment):
    run = experiment.runs.first()
    client = api()
    for url in ["/api/experiments/", f"/api/experiments/{experiment.pk}/", "/api/runs/",
                f"/api/runs/{run.pk}/", f"/api/runs/{run.pk}/metrics/", "/api/recipes/",
                "/api/datasets/", "/api/teams/"]:
        response = client.get(url)
        assert response.status_code == 401, url
        assert response["WWW-Authenticate"] == "Token"
    assert client.post(f"/api/runs/{run.pk}/cancel/").status_code == 401
    assert post_spec(client, SPEC).status_code == 401
    run.refresh_from_db()
    assert run.status == "queued"


def test_it_refuses_an_unknown_token(api, alice):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)

    assert client.get("/api/experiments/").status_code == 401


def test_it_accepts_a_token_from_drf_create_token(alice, experiment):
    out = io.StringIO()
    call_command("drf_create_token", "alice", stdout=out)
    key = re.search(r"\b([0-9a-f]{40})\b", out.getvalue()).group(1)
    assert Token.objects.get(user=alice).key == key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")

    response = client.get("/api/experiments/")

    assert response.status_code == 200
    assert [e["id"] for e in response.json()["results"]] == [experiment.pk]


def test_it_lists_the_users_teams_with_roles(api, alice, bob, alice_team):
    assert api(alice).get("/api/teams/").json() == [
        {"id": alice_team.pk, "name": "Alice's team", "role": "admin"}]
    assert api(bob).get("/api/teams/").json() == [
        {"id": alice_team.pk, "name": "Alice's team", "role": "viewer"}]


# Experiments


def test_it_creates_an_experiment_from_a_spec_and_queues_its_runs(
        api, alice, alice_team, monkeypatch, django_capture_on_commit_callbacks):
    from runners.tasks import execute_run

    sent = []
    monkeypatch.setattr(execute_run, "apply_async",
                        lambda args, queue: sent.append((args, queue)))

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post_spec(api(alice), SPEC)

    assert response.status_code == 201, response.content
    experiment = Experiment.objects.get()
    body = response.json()
    assert body["id"] == experiment.pk
    assert (experiment.team, experiment.created_by) == (alice_team, alice)
    assert body["team"] == {"id": alice_team.pk, "name": "Alice's team"}
    assert body["spec"]["training"]["epochs"] == 2
    runs = list(experiment.runs.order_by("position"))
    assert [(r["name"], r["status"]) for r in body["runs"]] == [
        ("baseline", "queued"), ("XLA", "queued"), ("int8", "queued")]
    assert [r.status for r in runs] == ["queued"] * 3
    assert runs[2].steps[0]["mode"] == "dynamic_int8"
    assert body["comparison"] == []
    # One task per run, sent only once the rows were committed.
    assert len(callbacks) == 3
    assert sorted(sent) == [([run.pk], "cpu") for run in runs]


def test_it_creates_the_experiment_in_the_named_team(api, alice, charlie_team,
                                                     django_capture_on_commit_callbacks):
    Membership.objects.create(team=charlie_team, user=alice, role=Membership.Role.MEMBER)

    with django_capture_on_commit_callbacks(execute=False):
        response = post_spec(api(alice), {**SPEC, "team": charlie_team.pk})

    assert response.status_code == 201, response.content
    experiment = Experiment.objects.get()
    assert experiment.team == charlie_team
    assert "team" not in experiment.spec


def test_it_answers_an_invalid_spec_with_400_keyed_by_spec_path(
        api, alice, django_capture_on_commit_callbacks):
    spec = {**SPEC, "training": {"epochs": 0, "batch_size": "many"},
            "model": {"arch": "transformer"}}

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_spec(api(alice), spec)

    assert response.status_code == 400
    errors = response.json()
    assert errors["training.epochs"] == ["Epochs must be between 1 and 500 (got 0)."]
    assert errors["training.batch_size"] == ["Batch size must be an integer."]
    assert "model.arch" in errors
    assert not Experiment.objects.exists()
    assert callbacks == []


def test_it_gives_an_invalid_step_only_its_own_message(api, alice):
    spec = {**SPEC, "recipes": [{"name": "int8", "steps": [
        {"technique": "ptq", "mode": "int3"}]}, {"name": "empty", "steps": []}]}

    response = post_spec(api(alice), spec)

    assert response.status_code == 400
    assert response.json() == {
        "recipes.0.steps.0.mode": ["The ptq mode must be one of dynamic_int8, float16, "
                                   "full_int8."],
        "recipes.1": ["A recipe needs at least one step (the baseline is added for you)."]}


@pytest.mark.parametrize("body, key", [
    ([SPEC], "spec"),
    ("a spec", "spec"),
    (None, "spec"),
    ({**SPEC, "training": {"epochs": 10**30}}, "training.epochs"),
    ({**SPEC, "training": {"learning_rate": HUGE}}, "training.learning_rate"),
    ({**SPEC, "name": "nul \u0000 byte"}, "name"),
    ({**SPEC, "notes": {"deep": HUGE}}, "notes.deep"),
    ({**SPEC, "recipes": [{"name": "prune", "steps": [
        {"technique": "pruning", "begin_step": HUGE}]}]}, "recipes.0.steps.0.begin_step"),
    ({**SPEC, "recipes": "xla"}, "recipes"),
    ({**SPEC, "team": "Alice's team"}, "team"),
    ({**SPEC, "team": 10**20}, "team"),
    ({**SPEC, "team": True}, "team"),
])
def test_it_answers_odd_bodies_with_400(api, alice, body, key,
                                        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = post_spec(api(alice), body)

    assert response.status_code == 400, response.content
    assert key in response.json()
    assert not Experiment.objects.exists()


def test_it_answers_malformed_json_and_deep_nesting_with_400(api, alice):
    client = api(alice)
    for body in ['{"name": ', '{"name": NaN}', "[" * 100_000 + "]" * 100_000,
                 json.dumps({**SPEC, "x": json.loads("[" * 50 + "]" * 50)})]:
        response = client.post("/api/experiments/", body, content_type="application/json")
        assert response.status_code == 400, body[:40]
    form = client.post("/api/experiments/", {"name": "form"})
    assert form.status_code == 415
    assert not Experiment.objects.exists()


def test_it_refuses_a_team_the_user_is_not_in(api, alice, charlie_team):
    response = post_spec(api(alice), {**SPEC, "team": charlie_team.pk})

    assert response.status_code == 400
    assert response.json() == {"team": ["You are not a member of this team."]}
    assert not Experiment.objects.exists()


def test_it_forbids_viewers_to_create_experiments(api, bob):
    response = post_spec(api(bob), SPEC)

    assert response.status_code == 403
    assert not Experiment.objects.exists()


def test_it_lists_only_the_teams_experiments(api, alice, alice_team, charlie, charlie_team,
                                            make_experiment, experiment):
    make_experiment(team=charlie_team, user=charlie, name="charlie's")

    response = api(alice).get("/api/experiments/")

    assert response.status_code == 200
    [row] = response.json()["results"]
    assert (row["id"], row["name"], row["run_count"], row["active"], row["failed"]) == (
        experiment.pk, "digits, seed MLP", 2, 2, 0)
    assert row["created_by"] == "alice"


def test_it_shows_an_experiment_with_its_runs_and_comparison(
        api, alice, experiment, django_assert_max_num_queries):
    baseline, xla = experiment.runs.order_by("position")
    Run.objects.filter(pk=baseline.pk).update(status="succeeded", result={
        "test_accuracy": 0.9, "latency_ms_p50": 2.0, "model_bytes": 1000,
        "train_samples_per_s": 100.0})
    Run.objects.filter(pk=xla.pk).update(status="succeeded", result={
        "test_accuracy": 0.89, "latency_ms_p50": 1.0, "model_bytes": 1000,
        "train_samples_per_s": 150.0})
    benchmark = benchmark_results(experiment)
    client = api(alice)
    # The first read after update()s stores the evidence (test_views); then it is read.
    client.get(f"/api/experiments/{experiment.pk}/")

    with django_assert_max_num_queries(7):
        response = client.get(f"/api/experiments/{experiment.pk}/")

    assert response.status_code == 200
    body = response.json()
    assert [(r["id"], r["status"], r["replicate"]) for r in body["runs"]] == [
        (baseline.pk, "succeeded", 0), (xla.pk, "succeeded", 0)]
    assert body["runs"][1]["result"]["latency_ms_p50"] == 1.0
    assert body["benchmark"]["id"] == benchmark.pk
    assert body["benchmark"]["status"] == "succeeded"
    aa, row = body["comparison"]
    assert (aa["kind"], aa["inference_speedup"]) == ("A/A control", 1.0)
    assert (row["run_id"], row["inference_speedup"], row["train_speedup"]) == (xla.pk, 2.0, 1.5)
    # One replicate: a point, no interval.
    assert (row["train_ci"], row["train_verdict"]) == (None, "one run: repeat to get an interval")
    assert row["accuracy_delta"] == pytest.approx(-0.01)


def test_it_hides_other_teams_objects_with_404(api, charlie, experiment, alice_team,
                                               make_dataset):
    run = experiment.runs.first()
    recipe = Recipe.objects.create(team=alice_team, name="xla", steps=[{"technique": "xla"}])
    dataset = make_dataset(team=alice_team)
    client = api(charlie)

    for url in [f"/api/experiments/{experiment.pk}/", f"/api/runs/{run.pk}/",
                f"/api/runs/{run.pk}/metrics/", f"/api/recipes/{recipe.pk}/",
                f"/api/datasets/{dataset.pk}/"]:
        assert client.get(url).status_code == 404, url
    assert client.post(f"/api/runs/{run.pk}/cancel/").status_code == 404
    assert client.post(f"/api/runs/{run.pk}/rerun/").status_code == 404
    assert client.delete(f"/api/recipes/{recipe.pk}/").status_code == 404
    for url in ["/api/experiments/", "/api/runs/", "/api/recipes/", "/api/datasets/"]:
        assert client.get(url).json()["results"] == [], url
    run.refresh_from_db()
    assert run.status == "queued"
    assert Recipe.objects.filter(pk=recipe.pk).exists()


def test_it_answers_a_missing_id_with_404(api, alice):
    client = api(alice)

    assert client.get("/api/experiments/999999/").status_code == 404
    assert client.get(f"/api/runs/{2**63 + 1}/").status_code == 404
    assert client.get("/api/runs/abc/").status_code == 404


# Runs


def test_it_lists_runs_filtered_by_experiment_and_status(api, alice, alice_team, experiment,
                                                         make_experiment):
    other = make_experiment(team=alice_team, user=alice, name="other")
    baseline = experiment.runs.get(name="baseline")
    Run.objects.filter(pk=baseline.pk).update(status="failed")
    client = api(alice)

    everything = client.get("/api/runs/").json()
    mine = client.get("/api/runs/", {"experiment": experiment.pk}).json()
    failed = client.get("/api/runs/", {"experiment": experiment.pk, "status": "failed"}).json()
    queued = client.get("/api/runs/", {"status": "queued"}).json()

    assert len(everything["results"]) == 3
    assert {r["experiment"] for r in mine["results"]} == {experiment.pk}
    assert len(mine["results"]) == 2
    assert [r["id"] for r in failed["results"]] == [baseline.pk]
    assert {r["experiment"] for r in queued["results"]} == {experiment.pk, other.pk}
    assert "result" not in everything["results"][0]


@pytest.mark.parametrize("query", [{"status": "sleeping"}, {"experiment": "abc"},
                                   {"experiment": str(10**30)}])
def test_it_answers_bad_run_filters_with_400(api, alice, experiment, query):
    response = api(alice).get("/api/runs/", query)

    assert response.status_code == 400
    assert set(response.json()) == set(query)


def test_it_shows_a_run_with_its_result(api, alice, experiment):
    run = experiment.runs.get(name="XLA")
    Run.objects.filter(pk=run.pk).update(status="failed", error="boom",
                                         result={"notes": ["n"]})

    body = api(alice).get(f"/api/runs/{run.pk}/").json()

    assert (body["id"], body["status"], body["error"]) == (run.pk, "failed", "boom")
    assert [step["technique"] for step in body["steps"]] == ["xla"]
    assert body["result"] == {"notes": ["n"]}
    assert body["baseline"] is False


def test_it_cancels_a_queued_run(api, alice, experiment):
    run = experiment.runs.get(name="XLA")
    client = api(alice)

    response = client.post(f"/api/runs/{run.pk}/cancel/")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    run.refresh_from_db()
    assert (run.status, run.cancel_requested) == ("cancelled", True)
    again = client.post(f"/api/runs/{run.pk}/cancel/")
    assert again.status_code == 409


def test_it_asks_a_running_run_to_stop(api, alice, experiment):
    run = experiment.runs.get(name="XLA")
    Run.objects.filter(pk=run.pk).update(status="running")

    response = api(alice).post(f"/api/runs/{run.pk}/cancel/")

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["cancel_requested"]) == ("running", True)


def test_it_forbids_viewers_to_cancel_or_rerun(api, bob, experiment):
    run = experiment.runs.get(name="XLA")
    client = api(bob)

    assert client.get(f"/api/runs/{run.pk}/").status_code == 200
    assert client.post(f"/api/runs/{run.pk}/cancel/").status_code == 403
    Run.objects.filter(pk=run.pk).update(status="failed")
    assert client.post(f"/api/runs/{run.pk}/rerun/").status_code == 403
    run.refresh_from_db()
    assert (run.status, run.cancel_requested) == ("failed", False)


def test_it_reruns_an_ended_run(api, alice, experiment, django_capture_on_commit_callbacks):
    run = experiment.runs.get(name="XLA")
    Run.objects.filter(pk=run.pk).update(status="failed", error="boom")
    client = api(alice)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(f"/api/runs/{run.pk}/rerun/")

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["error"]) == ("queued", "")
    assert len(callbacks) == 1
    assert client.post(f"/api/runs/{run.pk}/rerun/").status_code == 409


# Metrics


def add_epochs(run, count, spike_at=None):
    RunEvent.objects.bulk_create(
        (RunEvent(run=run, seq=epoch, kind="epoch", data={
            "event": "epoch", "epoch": epoch,
            "loss": 50.0 if epoch == spike_at else 1.0 / epoch,
            "accuracy": 0.5, "val_accuracy": epoch / count, "seconds": 0.5})
         for epoch in range(1, count + 1)),
        batch_size=2000,
    )


def test_it_downsamples_a_long_runs_metrics_and_keeps_the_spikes(api, alice, experiment):
    run = experiment.runs.first()
    add_epochs(run, 10_000, spike_at=7_777)
    client = api(alice)

    response = client.get(f"/api/runs/{run.pk}/metrics/", {"max_points": 200})

    assert response.status_code == 200
    body = response.json()
    assert body["max_points"] == 200
    series = body["series"]
    for key in ("loss", "accuracy", "val_accuracy", "val_accuracy_by_time"):
        assert 0 < len(series[key]) <= 200, key
    assert series["val_loss"] == []
    loss = series["loss"]
    assert [7_777, 50.0] in loss
    assert [10_000, 1.0 / 10_000] in loss
    assert [x for x, _ in loss] == sorted(x for x, _ in loss)
    assert series["val_accuracy_by_time"][-1] == [5000.0, 1.0]
    full = client.get(f"/api/runs/{run.pk}/metrics/").json()
    assert len(full["series"]["loss"]) == 10_000
    assert full["max_points"] is None


@pytest.mark.parametrize("max_points", ["1", "0", "-5", "many", str(10**30)])
def test_it_answers_a_bad_max_points_with_400(api, alice, experiment, max_points):
    run = experiment.runs.first()

    response = api(alice).get(f"/api/runs/{run.pk}/metrics/", {"max_points": max_points})

    assert response.status_code == 400
    assert "max_points" in response.json()


# Recipes


def test_it_saves_a_recipe_with_the_steps_defaults(api, alice, alice_team):
    response = api(alice).post("/api/recipes/", {
        "name": "int8", "description": "small", "steps": [{"technique": "ptq"}],
    }, format="json")

    assert response.status_code == 201, response.content
    recipe = Recipe.objects.get()
    assert (recipe.team, recipe.name, recipe.created_by) == (alice_team, "int8", alice)
    assert recipe.steps[0]["technique"] == "ptq" and "mode" in recipe.steps[0]
    assert response.json()["steps"] == recipe.steps
    assert response.json()["team"]["id"] == alice_team.pk


def test_it_replaces_a_recipe_of_the_same_name(api, alice, alice_team):
    client = api(alice)
    client.post("/api/recipes/", {"name": "fast", "steps": [{"technique": "xla"}]},
                format="json")

    response = client.post("/api/recipes/", {
        "name": "fast", "steps": [{"technique": "ptq", "mode": "float16"}]}, format="json")

    assert response.status_code == 200
    recipe = Recipe.objects.get()
    assert recipe.steps[0]["mode"] == "float16"


@pytest.mark.parametrize("body, key, message", [
    ({"name": "x", "steps": [{"technique": "warp_drive"}]}, "steps",
     "Step 1: Unknown technique 'warp_drive'"),
    ({"name": "x", "steps": [{"technique": "ptq", "mode": "int3"}]}, "steps",
     "Step 1: The ptq mode must be one of"),
    ({"name": "x", "steps": []}, "steps", ""),
    ({"name": "x", "steps": "xla"}, "steps", ""),
    ({"name": "", "steps": [{"technique": "xla"}]}, "name", ""),
    ({"name": "x\u0000y", "steps": [{"technique": "xla"}]}, "name", ""),
    ({"name": "x", "steps": [{"technique": "xla"}], "team": 10**20}, "team", ""),
])
def test_it_answers_a_bad_recipe_with_400(api, alice, body, key, message):
    response = api(alice).post("/api/recipes/", body, format="json")

    assert response.status_code == 400, response.content
    assert any(message in m for m in response.json()[key]), response.json()
    assert not Recipe.objects.exists()


def test_it_forbids_viewers_to_save_or_delete_recipes(api, bob, alice_team):
    recipe = Recipe.objects.create(team=alice_team, name="xla", steps=[{"technique": "xla"}])
    client = api(bob)

    assert client.get(f"/api/recipes/{recipe.pk}/").status_code == 200
    created = client.post("/api/recipes/", {"name": "y", "steps": [{"technique": "xla"}]},
                          format="json")
    assert created.status_code == 403
    assert client.delete(f"/api/recipes/{recipe.pk}/").status_code == 403
    assert list(Recipe.objects.all()) == [recipe]


def test_it_deletes_a_recipe(api, alice, alice_team):
    recipe = Recipe.objects.create(team=alice_team, name="xla", steps=[{"technique": "xla"}])

    response = api(alice).delete(f"/api/recipes/{recipe.pk}/")

    assert response.status_code == 204
    assert not Recipe.objects.exists()


# Datasets


def test_it_uploads_a_dataset(api, alice, alice_team, tmp_path, settings):
    upload = SimpleUploadedFile("blobs.npz", npz_bytes(tmp_path))

    response = api(alice).post("/api/datasets/", {"name": "Blobs", "file": upload},
                               format="multipart")

    assert response.status_code == 201, response.content
    dataset = Dataset.objects.get()
    assert (dataset.team, dataset.name, dataset.uploaded_by) == (alice_team, "Blobs", alice)
    assert (dataset.input_shape, dataset.num_classes) == ([5], 3)
    assert dataset.file.path.startswith(str(settings.MEDIA_ROOT))
    body = response.json()
    assert (body["id"], body["input_shape"], body["train_samples"], body["test_samples"]) == (
        dataset.pk, [5], 27, 10)
    listed = api(alice).get("/api/datasets/").json()["results"]
    assert [d["id"] for d in listed] == [dataset.pk]


@pytest.mark.parametrize("filename, content, message", [
    ("blobs.csv", b"1,2,3\n", "Upload a .npz file."),
    ("blobs.npz", b"not a zip", "This is not a usable .npz dataset"),
])
def test_it_refuses_a_bad_upload_with_400(api, alice, alice_team, filename, content, message):
    upload = SimpleUploadedFile(filename, content)

    response = api(alice).post("/api/datasets/",
                               {"name": "Blobs", "team": alice_team.pk, "file": upload},
                               format="multipart")

    assert response.status_code == 400
    assert response.json()["file"][0].startswith(message)
    assert not Dataset.objects.exists()


def test_it_refuses_an_upload_without_a_file_or_to_a_strangers_team(api, alice, charlie_team,
                                                                    tmp_path):
    client = api(alice)
    missing = client.post("/api/datasets/", {"name": "Blobs"}, format="multipart")
    upload = SimpleUploadedFile("blobs.npz", npz_bytes(tmp_path))
    stranger = client.post("/api/datasets/",
                           {"name": "Blobs", "team": charlie_team.pk, "file": upload},
                           format="multipart")
    as_json = client.post("/api/datasets/", {"name": "Blobs"}, format="json")

    assert missing.status_code == 400 and "file" in missing.json()
    assert stranger.status_code == 400 and "team" in stranger.json()
    assert as_json.status_code == 415
    assert not Dataset.objects.exists()


def test_it_forbids_viewers_to_upload(api, bob, alice_team, tmp_path):
    upload = SimpleUploadedFile("blobs.npz", npz_bytes(tmp_path))

    response = api(bob).post("/api/datasets/",
                             {"name": "Blobs", "team": alice_team.pk, "file": upload},
                             format="multipart")

    assert response.status_code == 403
    assert not Dataset.objects.exists()


def test_it_creates_an_experiment_on_an_uploaded_dataset(api, alice, alice_team, make_dataset,
                                                         django_capture_on_commit_callbacks):
    blobs = make_dataset(team=alice_team, input_shape=(5,), train_samples=90)
    spec = {**SPEC, "model": {"arch": "seed_mlp"},
            "dataset": {"name": "npz", "dataset_id": blobs.pk}}

    with django_capture_on_commit_callbacks(execute=False):
        response = post_spec(api(alice), spec)

    assert response.status_code == 201, response.content
    assert response.json()["spec"]["dataset"]["label"] == "blobs"


# Schema


def test_it_serves_the_openapi_schema(api, alice):
    response = api(alice).get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert {"/api/experiments/", "/api/experiments/{id}/", "/api/runs/",
            "/api/runs/{id}/cancel/", "/api/runs/{id}/metrics/", "/api/recipes/",
            "/api/datasets/"} <= set(schema["paths"])
    assert "tokenAuth" in schema["components"]["securitySchemes"]


def test_the_schema_validates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn",
                 "--file", str(tmp_path / "schema.yaml"))

    assert "/api/runs/{id}/metrics/" in (tmp_path / "schema.yaml").read_text()


def test_it_answers_an_infinite_step_parameter_with_400(api, alice):
    body = '{"name": "prune", "steps": [{"technique": "pruning", "begin_step": 1e999}]}'

    response = api(alice).post("/api/recipes/", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"steps": ["Numbers must be finite (not NaN or Infinity)."]}
    assert not Recipe.objects.exists()


def test_the_lists_take_a_fixed_number_of_queries(api, alice, alice_team, make_experiment,
                                                  make_dataset, django_assert_max_num_queries):
    for index in range(3):
        make_experiment(team=alice_team, user=alice, name=f"e{index}",
                        recipes=[{"name": "XLA", "steps": [{"technique": "xla"}]}])
        make_dataset(team=alice_team, name=f"d{index}")
        Recipe.objects.create(team=alice_team, name=f"r{index}", created_by=alice,
                              steps=[{"technique": "xla"}])
    client = api(alice)
    client.get("/api/teams/")  # the token's first use

    # The user, their teams, then per list: its count and the page's rows (the experiments
    # list also counts the runs of the page's experiments; runs follow a cursor, no count).
    for url, count, queries in [("/api/experiments/", 3, 5), ("/api/runs/", 6, 3),
                                ("/api/recipes/", 3, 3), ("/api/datasets/", 3, 3)]:
        with django_assert_max_num_queries(queries):
            response = client.get(url)
        assert len(response.json()["results"]) == count, url


@pytest.mark.parametrize("where", ["name", "recipe"])
@pytest.mark.parametrize("text", ["a lone \ud800 surrogate", "a NUL\x00byte"])
def test_it_refuses_invalid_unicode_in_names_with_400(api, alice, where, text):
    spec = {**SPEC, "name": text} if where == "name" else \
        {**SPEC, "recipes": [{"name": text, "steps": [{"technique": "xla"}]}]}
    # As a client sends it: JSON text with the escape (ensure_ascii), which parses into a
    # str that UTF-8 cannot encode.
    response = post_spec(api(alice), spec)
    assert response.status_code == 400, response.content
    assert "lone surrogates" in response.content.decode()
    assert not Experiment.objects.exists()
