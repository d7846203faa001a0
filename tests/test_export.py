"""CSV and JSON export of an experiment's runs and metrics."""

import csv
import io

import pytest
from django.urls import reverse

from experiments.models import Run, RunEvent


@pytest.fixture
def experiment(make_experiment, alice, alice_team):
    experiment = make_experiment(
        team=alice_team, user=alice, name='=cmd|" <img src=x>',
        recipes=[{"name": "XLA", "steps": [{"technique": "xla"}]},
                 {"name": "=HYPERLINK(\"http://x\")", "steps": [{"technique": "xla"}]}],
    )
    baseline, xla, _ = experiment.runs.order_by("position")
    Run.objects.filter(pk=baseline.pk).update(
        status="succeeded", result={"test_accuracy": 0.95, "latency_ms_p50": 0.5,
                                    "model_bytes": 1000, "runtime": "keras"})
    Run.objects.filter(pk=xla.pk).update(status="failed", error="engine exited with code 1")
    RunEvent.objects.create(run=baseline, seq=1, kind="epoch",
                            data={"event": "epoch", "epoch": 1, "loss": 0.4})
    return experiment


def test_it_exports_one_csv_row_per_run(client, alice, experiment):
    client.force_login(alice)

    response = client.get(reverse("experiment_export", args=[experiment.pk, "csv"]))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["name"], r["status"]) for r in rows] == [
        ("baseline", "succeeded"), ("XLA", "failed"), ("'=HYPERLINK(\"http://x\")", "queued")]
    assert rows[0]["test_accuracy"] == "0.95"
    assert rows[0]["steps"] == "baseline" and rows[1]["steps"] == "xla"
    assert rows[1]["error"] == "engine exited with code 1"


def test_it_exports_everything_as_json(client, alice, experiment):
    client.force_login(alice)

    data = client.get(reverse("experiment_export", args=[experiment.pk, "json"])).json()

    assert data["experiment"]["spec"]["name"] == experiment.name
    assert [run["name"] for run in data["runs"]][:2] == ["baseline", "XLA"]
    assert data["runs"][0]["epochs"] == [{"epoch": 1, "loss": 0.4, "accuracy": None,
                                          "val_loss": None, "val_accuracy": None,
                                          "seconds": None}]
    assert data["runs"][0]["result"]["model_bytes"] == 1000


def test_it_hides_another_teams_export(client, charlie, experiment):
    client.force_login(charlie)

    for fmt in ("csv", "json"):
        response = client.get(reverse("experiment_export", args=[experiment.pk, fmt]))
        assert response.status_code == 404


def test_it_refuses_an_unknown_format(client, alice, experiment):
    client.force_login(alice)

    response = client.get(reverse("experiment_export", args=[experiment.pk, "xml"]))

    assert response.status_code == 404


def test_it_exports_each_runs_speedups_against_the_baseline(client, alice, experiment):
    from test_discussion import result

    baseline, xla, _ = experiment.runs.order_by("position")
    Run.objects.filter(pk=baseline.pk).update(result=result())
    Run.objects.filter(pk=xla.pk).update(status="succeeded", error="",
                                         result=result(train=1500.0, latency=1.0,
                                                       accuracy=0.94))
    client.force_login(alice)

    response = client.get(reverse("experiment_export", args=[experiment.pk, "csv"]))

    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(response.content.decode()))}
    fast = rows["XLA"]
    assert (fast["train_speedup"], fast["inference_speedup"]) == ("1.5", "2.0")
    assert 1.0 < float(fast["train_ci_low"]) <= 1.5 <= float(fast["train_ci_high"])
    assert 1.0 < float(fast["inference_ci_low"]) <= 2.0 <= float(fast["inference_ci_high"])
    assert (fast["size_reduction"], fast["accuracy_delta"], fast["comparable"]) == (
        "1.0", "-0.01", "True")
    assert float(fast["accuracy_ci_low"]) < -0.01 < float(fast["accuracy_ci_high"])
    # The baseline and a run without a result have nothing to be compared by.
    assert rows["baseline"]["train_speedup"] == rows["'=HYPERLINK(\"http://x\")"][
        "inference_ci_low"] == ""
