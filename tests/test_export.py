"""CSV and JSON export of an experiment's runs and metrics."""

import csv
import io

import pytest
from django.urls import reverse
from results import benchmark_results, finish_recipe

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
    assert data["runs"][0]["replicate"] == 0
    assert data["benchmarks"] == []


def test_it_hides_another_teams_export(client, charlie, experiment):
    client.force_login(charlie)

    for fmt in ("csv", "json"):
        response = client.get(reverse("experiment_export", args=[experiment.pk, fmt]))
        assert response.status_code == 404


def test_it_refuses_an_unknown_format(client, alice, experiment):
    client.force_login(alice)

    response = client.get(reverse("experiment_export", args=[experiment.pk, "xml"]))

    assert response.status_code == 404


def test_it_exports_each_runs_speedups_against_the_baseline(client, alice, alice_team,
                                                            make_experiment):
    experiment = make_experiment(
        team=alice_team, user=alice, training={"epochs": 1, "batch_size": 64, "repeats": 3},
        recipes=[{"name": "XLA", "steps": [{"technique": "xla"}]},
                 {"name": "int8", "steps": [{"technique": "ptq", "mode": "dynamic_int8"}]}])
    baseline = finish_recipe(experiment.runs.get(name="baseline", replicate=0))
    xla = finish_recipe(experiment.runs.get(name="XLA", replicate=0), train=1500.0,
                        latency=1.0, accuracy=0.94)
    int8 = finish_recipe(experiment.runs.get(name="int8", replicate=0), latency=0.5,
                         runtime="tflite", reference={"latency_ms_p50": 0.25,
                                                      "model_bytes": 4000})
    benchmark_results(experiment)
    client.force_login(alice)

    response = client.get(reverse("experiment_export", args=[experiment.pk, "csv"]))

    rows = {(r["name"], r["replicate"]): r
            for r in csv.DictReader(io.StringIO(response.content.decode()))}
    assert len(rows) == 9
    fast = rows["XLA", "0"]
    assert fast["run_id"] == str(xla.pk) and fast["replicates"] == "3"
    assert (round(float(fast["train_speedup"]), 2), fast["inference_speedup"]) == (1.5, "2.0")
    assert 1.0 < float(fast["train_ci_low"]) <= 1.5 <= float(fast["train_ci_high"])
    assert 1.0 < float(fast["inference_ci_low"]) <= 2.0 <= float(fast["inference_ci_high"])
    assert fast["throughput_speedup"] == "2.0"
    assert (fast["size_reduction"], fast["accuracy_delta"], fast["comparable"]) == (
        "1.0", "-0.01", "True")
    assert fast["vs_float32_inference_speedup"] == ""
    # The quantized run: against the baseline, its float32 model, and the runtime switch.
    quantized = rows["int8", "0"]
    assert quantized["run_id"] == str(int8.pk)
    assert (quantized["inference_speedup"], quantized["vs_float32_inference_speedup"],
            quantized["switch_inference_speedup"]) == ("4.0", "0.5", "8.0")
    assert float(quantized["vs_float32_inference_ci_high"]) < 1.0
    # The baseline's line carries the A/A control; the other replicates carry nothing.
    base = rows["baseline", "0"]
    assert base["run_id"] == str(baseline.pk) and base["aa_inference_speedup"] == "1.0"
    assert float(base["aa_inference_ci_low"]) <= 1.0 <= float(base["aa_inference_ci_high"])
    assert base["train_speedup"] == rows["XLA", "1"]["inference_ci_low"] == ""


