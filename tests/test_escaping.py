"""Names users choose (team, experiment, recipe, dataset) and what runners report (worker,
device, notes, errors) reach every page escaped, never as markup.

One team member names everything with a payload; another member, a superuser, opens every
page that shows those names, the admin's changelists included.
"""

import json

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from experiments.models import (
    Comment,
    Dataset,
    Membership,
    Recipe,
    Run,
    RunEvent,
    SignOff,
    Team,
    UploadedModel,
    Worker,
)
from experiments.services import experiment_create

PAYLOADS = [
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(1)</script>",
]


def json_script_escaped(text):
    # What django.utils.html.json_script leaves of the payload inside a JSON string.
    return text.replace("<", "\\u003C").replace(">", "\\u003E").replace("&", "\\u0026")


def result(*, accuracy, samples_per_s, latency, payload, **extra):
    return {
        "test_accuracy": accuracy, "train_seconds": 10.0, "train_samples_per_s": samples_per_s,
        "train_samples_per_s_epochs": [samples_per_s * 0.98, samples_per_s * 1.02,
                                       samples_per_s],
        "latency_ms_p50": latency, "latency_ms_p95": latency * 1.2,
        "latency_samples": [latency * 0.99, latency * 1.01, latency],
        "model_bytes": 160_000, "params": 5000, "runtime": "keras",
        "fingerprint": {"cpu_model": payload, "backend": "tensorflow"},
        "notes": [payload], **extra,
    }


@pytest.fixture(params=PAYLOADS, ids=["img", "script"])
def payload(request):
    return request.param


@pytest.fixture
def world(db, django_user_model, payload, make_dataset):
    """A team, experiment, recipe, dataset, worker and runs all named with the payload."""
    team = Team.objects.create(name=payload)
    mallory = django_user_model.objects.create_user("mallory")
    Membership.objects.create(team=team, user=mallory, role=Membership.Role.ADMIN)
    victor = django_user_model.objects.create_superuser("victor", "victor@example.org")
    Membership.objects.create(team=team, user=victor, role=Membership.Role.VIEWER)

    dataset = make_dataset(team=team, name=payload)
    Recipe.objects.create(team=team, name=payload, description=payload,
                          steps=[{"technique": "xla"}], created_by=mallory)
    experiment = experiment_create(team=team, user=mallory, spec={
        "name": payload,
        "model": {"arch": "seed_mlp", "params": {}},
        "dataset": {"name": "npz", "dataset_id": dataset.pk},
        "training": {"epochs": 2, "batch_size": 32},
        "recipes": [
            {"name": payload, "steps": [{"technique": "ptq", "mode": "dynamic_int8"}]},
            {"name": f"{payload} running", "steps": [{"technique": "xla"}]},
            {"name": f"{payload} failed", "steps": [{"technique": "xla"}]},
        ],
    })
    baseline, quantized, running, failed = experiment.runs.order_by("position")
    now = timezone.now()
    Worker.objects.create(
        name=f"celery@{payload}", host=payload, queues=["cpu"],
        devices={"cpu_model": payload, "cpu_cores": 4, "gpus": [{"name": payload}]},
        versions={"tensorflow": payload, "keras": "3", "python": "3.11"},
    )
    Run.objects.filter(pk=baseline.pk).update(
        status=Run.Status.SUCCEEDED, epochs_done=2, progress=1, worker=f"celery@{payload}",
        device=payload, finished_at=now,
        result=result(accuracy=0.95, samples_per_s=1000.0, latency=0.4, payload=payload),
    )
    Run.objects.filter(pk=quantized.pk).update(
        status=Run.Status.SUCCEEDED, epochs_done=2, progress=1, finished_at=now,
        result=result(
            accuracy=0.94, samples_per_s=1100.0, latency=0.1, payload=payload, runtime="tflite",
            reference={"test_accuracy": 0.95, "latency_ms_p50": 0.2, "model_bytes": 150_000,
                       "latency_samples": [0.19, 0.21, 0.2]},
            advice=[{"technique": "ptq", "message": payload}],
        ),
    )
    Run.objects.filter(pk=running.pk).update(
        status=Run.Status.RUNNING, epochs_done=1, progress=0.5, worker=f"celery@{payload}",
        device=payload, started_at=now, heartbeat_at=now,
    )
    Run.objects.filter(pk=failed.pk).update(
        status=Run.Status.FAILED, error=payload, stderr_tail=payload, finished_at=now,
    )
    for seq, run in enumerate([baseline, quantized, running], start=1):
        RunEvent.objects.create(run=run, seq=seq, kind="epoch", data={
            "epoch": 1, "loss": 0.5, "accuracy": 0.8, "val_loss": 0.4, "val_accuracy": 0.85,
        })
    return {"experiment": experiment, "runs": [baseline, quantized, running, failed],
            "victor": victor, "mallory": mallory}


@pytest.fixture
def victor_client(client, world):
    client.force_login(world["victor"])
    return client


def assert_escaped(response, payload, *, expect=None):
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert payload not in page
    # The tag never opens, however the payload is cut or combined with other text.
    assert "<img src=x" not in page
    assert "<script>alert(1)" not in page
    for text in expect or [payload]:
        assert escape(text) in page, f"{escape(text)!r} is not on the page"


def test_it_escapes_the_home_page(victor_client, payload):
    assert_escaped(victor_client.get(reverse("home")), payload)


def test_it_escapes_the_experiment_page_and_its_snapshot(victor_client, world, payload):
    experiment = world["experiment"]

    response = victor_client.get(reverse("experiment_detail", args=[experiment.pk]))

    assert_escaped(response, payload, expect=[payload, f"{payload} running",
                                              f"{payload} failed", f"{payload} vs float32 TFLite"])
    page = response.content.decode()
    # The chart data: escaped inside the JSON text, and whole again once parsed.
    start = page.index('<script id="experiment-snapshot" type="application/json">')
    body = page[start:].split(">", 1)[1].split("</script>", 1)[0]
    assert json_script_escaped(payload) in body
    snapshot = json.loads(body)
    assert snapshot["experiment"]["name"] == payload
    assert [run["name"] for run in snapshot["runs"]] == [
        "baseline", payload, f"{payload} running", f"{payload} failed"]
    assert snapshot["comparison"][1]["name"] == payload  # after the A/A control


def test_it_escapes_the_results_partial(victor_client, world, payload):
    response = victor_client.get(reverse("experiment_results", args=[world["experiment"].pk]))

    assert_escaped(response, payload, expect=[payload, f"{payload} failed"])
    page = response.content.decode()
    assert 'id="comparison-table"' in page
    assert 'class="table advice-table"' in page


@pytest.mark.parametrize("index", [0, 1, 2, 3], ids=["baseline", "quantized", "running",
                                                     "failed"])
def test_it_escapes_the_run_pages(victor_client, world, payload, index):
    run = world["runs"][index]

    response = victor_client.get(reverse("run_detail", args=[run.pk]))

    assert_escaped(response, payload)
    # A member is offered to save the recipe under the run's name: escaped in the attribute.
    victor_client.force_login(world["mallory"])
    response = victor_client.get(reverse("run_detail", args=[run.pk]))
    assert_escaped(response, payload)
    assert f'value="{escape(run.name)}"' in response.content.decode() or run.is_baseline


def test_it_escapes_the_runners_page_and_its_table(victor_client, payload):
    for name in ("runner_list", "runner_table"):
        assert_escaped(victor_client.get(reverse(name)), payload,
                       expect=[payload, f"celery@{payload}", f"{payload} running"])


def test_it_escapes_the_recipe_library(victor_client, payload):
    assert_escaped(victor_client.get(reverse("recipe_list")), payload)


def test_it_escapes_the_dataset_list(victor_client, payload):
    assert_escaped(victor_client.get(reverse("dataset_list")), payload)


def test_it_escapes_the_new_experiment_form(victor_client, payload):
    # The team and the uploaded dataset are choices of the form.
    assert_escaped(victor_client.get(reverse("experiment_new")), payload)


def test_it_escapes_form_errors_that_repeat_the_input(victor_client, payload, alice_team):
    response = victor_client.post(reverse("recipe_list"), {
        "name": payload, "team": Team.objects.get(name=payload).pk,
        "steps_json": json.dumps([{"technique": payload}]),
    })

    assert response.status_code == 400
    page = response.content.decode()
    assert payload not in page
    assert "Unknown technique" in page
    assert escape(f"'{payload}'") in page


def test_it_escapes_the_compare_page_and_the_report(victor_client, world, payload):
    baseline, quantized = world["runs"][:2]
    compare = victor_client.get(reverse("compare") + f"?runs={baseline.pk},{quantized.pk}")
    report = victor_client.get(reverse("experiment_report", args=[world["experiment"].pk]))

    assert_escaped(compare, payload)
    assert_escaped(report, payload)


def test_it_escapes_the_teams_and_models_pages(victor_client, world, payload):
    UploadedModel.objects.create(
        team=world["experiment"].team, name=payload, file="models/m.keras",
        input_shape=[8, 8, 1], num_classes=10, params=1210, layers=3, size_bytes=1234)

    assert_escaped(victor_client.get(reverse("team_list")), payload)
    assert_escaped(victor_client.get(reverse("model_list")), payload)


def test_it_escapes_comments_and_sign_off_notes(victor_client, world, payload):
    experiment, quantized = world["experiment"], world["runs"][1]
    Comment.objects.create(experiment=experiment, run=quantized, body=f"{payload} **bold**")
    SignOff.objects.create(experiment=experiment, run=quantized, model_label=payload,
                           note=f"{payload} note", evidence={"note": payload})

    for url in [reverse("home"), reverse("run_detail", args=[quantized.pk])]:
        assert_escaped(victor_client.get(url), payload)
    # The pages that show the sign-off's note.
    for url in [reverse("experiment_detail", args=[experiment.pk]),
                reverse("experiment_report", args=[experiment.pk])]:
        response = victor_client.get(url)
        assert_escaped(response, payload)
        assert escape(f"{payload} note") in response.content.decode(), url


def test_it_exports_json_as_json(victor_client, world, payload):
    for url in (reverse("experiment_export", args=[world["experiment"].pk, "json"]),
                reverse("experiment_spec", args=[world["experiment"].pk])):
        response = victor_client.get(url)

        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
        assert response["Content-Disposition"].startswith("attachment;")
        assert response["X-Content-Type-Options"] == "nosniff"
        data = json.loads(response.content)
        assert (data.get("experiment") or data)["name"] == payload


def test_it_exports_csv_as_an_attachment(victor_client, world, payload):
    response = victor_client.get(
        reverse("experiment_export", args=[world["experiment"].pk, "csv"]))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert payload in response.content.decode()


def admin_changelists():
    return sorted(
        f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"
        for model in admin.site._registry
        if model._meta.app_label == "experiments"
    )


def test_it_checks_the_changelists_of_the_models_it_names():
    names = admin_changelists()
    for model in (Team, Dataset, Recipe, Run, Worker):
        assert f"admin:experiments_{model._meta.model_name}_changelist" in names


# Changelists whose rows show a name the payload is in (the others must stay clean too).
NAMED_IN_CHANGELIST = {"team", "membership", "dataset", "experiment", "run", "recipe", "worker"}


@pytest.mark.parametrize("url_name", admin_changelists())
def test_it_escapes_the_admin_changelists(victor_client, payload, url_name):
    response = victor_client.get(reverse(url_name))

    model_name = url_name.removeprefix("admin:experiments_").removesuffix("_changelist")
    if model_name in NAMED_IN_CHANGELIST:
        assert_escaped(response, payload)
    else:
        assert response.status_code == 200
        page = response.content.decode()
        assert payload not in page
        assert "<img src=x" not in page
        assert "<script>alert(1)" not in page
