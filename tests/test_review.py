"""Review: results pinned to the baseline, charts' data, compare across experiments, report."""

import json
import re

import pytest
from django.urls import reverse
from results import benchmark_results

from experiments import services
from experiments.comparison import (
    accuracy_delta_ci,
    accuracy_latency_points,
    pareto_front,
    wilson_interval,
)
from experiments.models import Comment, Run, SignOff
from experiments.selectors import (
    CURVE_POINTS,
    curve_summary,
    experiment_benchmarks,
    experiment_comparison,
    experiment_curves,
    experiment_snapshot,
)

XSS = "<img src=x onerror=alert(1)>"
FINGERPRINT = {"cpu_model": "Xeon", "logical_cores": 2, "gpus": [], "backend": "tensorflow",
               "tensorflow": "2.21.0", "keras": "3.15.0"}


def succeed(run, **result):
    result.setdefault("fingerprint", FINGERPRINT)
    Run.objects.filter(pk=run.pk).update(status=Run.Status.SUCCEEDED, result=result)
    run.refresh_from_db()
    return run


def base_result(**changes):
    return {
        "test_accuracy": 0.90, "test_samples": 1000, "latency_ms_p50": 2.0,
        "latency_samples": [2.0, 2.1, 1.9, 2.05, 1.95], "latency_ms_ci95": [1.9, 2.1],
        "train_samples_per_s": 100.0, "train_samples_per_s_epochs": [100, 102, 98, 101, 99],
        "model_bytes": 4000, **changes,
    }


@pytest.fixture
def experiment(alice, alice_team, make_experiment):
    return make_experiment(team=alice_team, user=alice, name="digits, seed MLP", recipes=[
        {"name": "fast", "steps": [{"technique": "xla"}]},
        {"name": "same", "steps": [{"technique": "xla"}]},
    ])


@pytest.fixture
def measured(alice, alice_team, make_experiment):
    """A baseline, a run faster to answer but slower to train and more accurate, and a run
    no different from the baseline; two replicates each, benchmarked side by side."""
    experiment = make_experiment(
        team=alice_team, user=alice, name="digits, seed MLP",
        training={"epochs": 1, "batch_size": 64, "repeats": 2}, recipes=[
            {"name": "fast", "steps": [{"technique": "xla"}]},
            {"name": "same", "steps": [{"technique": "xla"}]},
        ])
    epochs = [100, 102, 98, 101, 99]
    for replicate, jitter in enumerate((0.99, 1.01)):
        baseline, fast, same = experiment.runs.filter(replicate=replicate).order_by("position")
        succeed(baseline, **base_result(test_accuracy=0.90 + 0.01 * replicate))
        succeed(fast, **base_result(
            test_accuracy=0.95 + 0.01 * replicate, latency_ms_p50=1.0,
            train_samples_per_s=50.0 * jitter,
            train_samples_per_s_epochs=[e / 2 * jitter for e in epochs], model_bytes=1000))
        succeed(same, **base_result(
            test_accuracy=(0.901, 0.905)[replicate],
            train_samples_per_s_epochs=[e * jitter for e in epochs]))
    benchmark_results(experiment)
    return experiment


def rows_by_name(experiment):
    return {row["name"]: row for row in experiment_comparison(experiment)}


# Intervals


def test_it_computes_newcombes_interval_for_a_difference_of_proportions():
    # Newcombe (1998), Statistics in Medicine 17:873, table II example (a): 56/70 - 48/80.
    low, high = accuracy_delta_ci(56 / 70, 70, 48 / 80, 80)

    assert (low, high) == (0.0524, 0.3339)
    assert wilson_interval(0, 10)[0] == 0.0
    assert accuracy_delta_ci(0.9, None, 0.9, 100) is None


def test_it_tones_each_figure_by_its_interval(measured):
    rows = rows_by_name(measured)
    fast, same = rows["fast"], rows["same"]

    assert fast["inference_speedup"] == 2.0 and fast["inference_ci"][0] > 1.0
    assert (fast["inference_tone"], fast["inference_verdict"]) == ("good", "faster")
    assert fast["train_speedup"] == pytest.approx(0.5, abs=0.001)
    assert fast["train_ci"][1] < 1.0 and fast["replicates"] == 2
    assert (fast["train_tone"], fast["train_verdict"]) == ("bad", "slower")
    assert fast["accuracy_delta"] == 0.05 and fast["accuracy_ci"][0] > 0
    assert (fast["accuracy_tone"], fast["accuracy_verdict"]) == ("good", "better")
    assert fast["size_reduction"] == 4.0

    assert same["inference_ci"][0] <= 1.0 <= same["inference_ci"][1]
    assert same["inference_tone"] == same["train_tone"] == "unclear"
    assert same["accuracy_ci"][0] < 0 < same["accuracy_ci"][1]
    assert same["accuracy_tone"] == "unclear"
    assert same["accuracy_verdict"] == "no clear difference"


def test_it_reads_a_lower_accuracy_as_worse(experiment):
    baseline, fast, _ = experiment.runs.order_by("position")
    succeed(baseline, **base_result())
    succeed(fast, **base_result(test_accuracy=0.80))

    row = rows_by_name(experiment)["fast"]

    assert row["accuracy_ci"][1] < 0
    assert (row["accuracy_tone"], row["accuracy_verdict"]) == ("bad", "worse")


def test_it_gives_no_accuracy_interval_without_a_sample_count(experiment):
    baseline, fast, _ = experiment.runs.order_by("position")
    succeed(baseline, **base_result(test_samples=None))
    succeed(fast, **base_result(test_accuracy=0.99))

    row = rows_by_name(experiment)["fast"]

    assert row["accuracy_ci"] is None
    assert (row["accuracy_tone"], row["accuracy_verdict"]) == ("unclear", "no interval")


def test_it_says_which_fingerprint_key_makes_a_run_not_comparable(measured):
    fast = measured.runs.get(name="fast", replicate=0)
    succeed(fast, **{**fast.result, "fingerprint": {**FINGERPRINT, "cpu_model": "EPYC"}})

    row = rows_by_name(measured)["fast"]

    assert row["comparable"] is False
    assert row["not_comparable_reason"] == "cpu_model differs (Xeon vs EPYC)"
    # A training time on other hardware is no evidence either way; the inference figure
    # is: the benchmark measured both models side by side, on one machine.
    assert row["train_tone"] == "unclear"
    assert row["inference_tone"] == "good"
    assert rows_by_name(measured)["same"]["not_comparable_reason"] == ""


def test_it_pins_the_results_table_with_colours(client, alice, measured):
    fast = measured.runs.get(name="fast", replicate=0)
    succeed(fast, **{**fast.result, "fingerprint": {**FINGERPRINT, "keras": XSS}})
    client.force_login(alice)

    body = client.get(reverse("experiment_results", args=[measured.pk])).content.decode()

    table = re.search(r'<table[^>]*id="comparison-table".*?</table>', body, re.S).group(0)
    fast_row = re.search(rf'<tr[^>]*data-comparison-run="{fast.pk}".*?</tr>', table, re.S).group(0)
    same = measured.runs.get(name="same", replicate=0)
    same_row = re.search(rf'<tr[^>]*data-comparison-run="{same.pk}".*?</tr>', table, re.S).group(0)
    assert 'class="not-comparable"' in fast_row
    assert "not comparable" in fast_row and "keras differs" in fast_row
    assert XSS not in body and "&lt;img src=x" in fast_row
    assert 'class="figure size">4.00×<br><small>exact</small>' in fast_row
    assert "tone-good" in fast_row  # the accuracy gain holds whatever the hardware
    assert 'class="figure inference tone-unclear">1.00×' in same_row
    assert 'class="figure accuracy tone-unclear"' in same_row
    assert "not-comparable" not in same_row


def test_it_colours_a_comparable_faster_run_green_and_slower_red(client, alice, measured):
    client.force_login(alice)
    fast = measured.runs.get(name="fast", replicate=0)

    body = client.get(reverse("experiment_results", args=[measured.pk])).content.decode()

    row = re.search(rf'<tr[^>]*data-comparison-run="{fast.pk}".*?</tr>', body, re.S).group(0)
    assert 'class="figure train tone-bad">0.50×' in row
    assert 'class="figure inference tone-good">2.00×' in row
    assert 'class="figure accuracy tone-good">+5.0 pts<br>' in row


# A baseline at chance level

AT_CHANCE = ("The baseline scored 10.2% test accuracy, which is chance level for 10 classes "
             "(10%, interval 8.1-11.9% for 1,000 test samples): there is nothing to compare. "
             "Train longer, fix the data, or pick another model.")


def test_it_refuses_a_sign_off_against_a_baseline_at_chance(experiment, dave):
    baseline, fast, _ = experiment.runs.order_by("position")
    # Digits have 10 classes; the recipe is twice as fast and far more accurate.
    succeed(baseline, **base_result(test_accuracy=0.102))
    succeed(fast, **base_result(test_accuracy=0.5, latency_ms_p50=1.0))
    benchmark_results(experiment)

    with pytest.raises(services.SignOffRefused) as refused:
        services.signoff_create(run=fast, user=dave)

    assert str(refused.value) == AT_CHANCE
    assert not SignOff.objects.exists()
    # The same recipe against a baseline that learnt something is signed off.
    succeed(baseline, **base_result(test_accuracy=0.45))
    benchmark_results(experiment)
    assert services.signoff_create(run=fast, user=dave).evidence["faster"] == ["inference"]


# Pareto front


def test_it_finds_the_pareto_front():
    points = [(0.90, 2.0), (0.95, 1.0), (0.80, 0.5), (0.85, 1.5), (0.95, 1.0), (0.70, 0.5)]

    assert pareto_front(points) == [False, True, True, False, True, False]
    assert pareto_front([]) == []


def test_it_keeps_runs_on_other_hardware_off_the_front(measured):
    same = measured.runs.get(name="same", replicate=0)
    # Faster and more accurate than everything, but measured on another machine.
    succeed(same, **base_result(test_accuracy=0.99, latency_ms_p50=0.1,
                                fingerprint={**FINGERPRINT, "gpus": ["H100"]}))

    points = {p["name"]: p for p in accuracy_latency_points(list(measured.runs.all()),
                                                            experiment_benchmarks(measured))}

    assert points["same"]["comparable"] is False and points["same"]["pareto"] is False
    assert points["fast"]["pareto"] is True
    assert points["baseline"]["pareto"] is False  # slower and less accurate than "fast"
    assert (points["fast"]["accuracy"], points["fast"]["latency_ms"]) == (0.95, 1.0)


def test_it_sends_the_front_in_the_snapshot(measured):
    snapshot = experiment_snapshot(measured)

    # "same" (0.901 at 2.0 ms) beats the baseline on accuracy, but "fast" beats both.
    assert {p["name"]: p["pareto"] for p in snapshot["tradeoff"]} == {
        "baseline": False, "fast": True, "same": False}


# Curves: summaries and downsampling


def add_epochs(run, count, *, spike_at=None):
    """Epochs stored as the worker stores them (one batch), so the run's curves are too."""
    events = []
    for epoch in range(1, count + 1):
        loss = 1.0 / epoch
        if epoch == spike_at:
            loss = 50.0
        events.append({
            "event": "epoch", "epoch": epoch, "loss": loss, "accuracy": 1 - loss / 2,
            "val_loss": loss * 1.1, "val_accuracy": min(0.99, 0.5 + epoch / (2 * count)),
            "seconds": 0.5})
    services.run_record_events(run, events)


def test_it_summarises_each_curve():
    series = {"loss": [[1, 0.9], [2, 0.3], [3, 0.4]], "val_accuracy": [[1, 0.5], [2, 0.8],
                                                                       [3, 0.7]]}

    summary = curve_summary(series)

    assert summary["loss"] == {"last": 0.4, "best": 0.3, "min": 0.3, "max": 0.9}
    assert summary["val_accuracy"] == {"last": 0.7, "best": 0.8, "min": 0.5, "max": 0.8}
    assert summary["accuracy"] == {"last": None, "best": None, "min": None, "max": None}


def test_it_bounds_a_10000_epoch_run_in_the_snapshot_and_the_curves(experiment):
    baseline = experiment.runs.get(name="baseline")
    add_epochs(baseline, 10_000, spike_at=7_777)

    snapshot = experiment_snapshot(experiment)
    curves = experiment_curves(experiment)["runs"][str(baseline.pk)]

    run = snapshot["runs"][0]
    # The snapshot carries the summary, not the curves: it stays small at any length.
    assert "series" not in run and "telemetry" not in run
    assert run["summary"]["loss"] == {"last": 1 / 10_000, "best": 1 / 10_000,
                                      "min": 1 / 10_000, "max": 50.0}
    assert run["elapsed"] == 5_000.0 and run["last_epoch"] == 10_000
    assert len(json.dumps(snapshot)) < 20_000
    for key, points in curves["series"].items():
        assert 0 < len(points) <= CURVE_POINTS, key
    # Min/max per bucket keeps the spike that striding would most likely drop.
    assert [7_777, 50.0] in curves["series"]["loss"]
    assert curves["series"]["loss"][-1] == [10_000, 0.0001]
    # Time to accuracy: cumulative seconds, ending at the total.
    assert curves["series"]["val_accuracy_by_time"][-1] == [5_000.0, 0.99]
    assert len(json.dumps(curves)) < 120_000
    # Every epoch, on request.
    full = experiment_curves(experiment, full=True)["runs"][str(baseline.pk)]
    assert len(full["series"]["loss"]) == 10_000 and full["summary"] == curves["summary"]


def test_it_keeps_short_curves_whole(experiment):
    add_epochs(experiment.runs.get(name="baseline"), 5)

    run = experiment_curves(experiment)["runs"][str(experiment.runs.get(name="baseline").pk)]

    assert run["series"]["loss"] == [[e, float(f"{1.0 / e:.6g}")] for e in range(1, 6)]
    assert run["series"]["val_accuracy_by_time"][1] == [1.0, 0.5 + 2 / 10]


def test_the_curves_endpoint_is_team_scoped_and_checks_its_parameters(
        client, alice, charlie, experiment):
    baseline = experiment.runs.get(name="baseline")
    add_epochs(baseline, 3)
    url = reverse("experiment_curves", args=[experiment.pk])
    client.force_login(charlie)
    assert client.get(url).status_code == 404
    client.force_login(alice)

    stored = client.get(url).json()
    full = client.get(url, {"full": "1", "run": baseline.pk}).json()

    assert stored["full"] is False and stored["curve_points"] == CURVE_POINTS
    assert len(stored["runs"]) == experiment.runs.count()
    assert list(full["runs"]) == [str(baseline.pk)] and full["full"] is True
    assert [p[0] for p in full["runs"][str(baseline.pk)]["series"]["loss"]] == [1, 2, 3]
    assert client.get(url, {"full": "yes"}).status_code == 400
    assert "full must be 0 or 1" in client.get(url, {"full": "yes"}).json()["error"]
    assert client.get(url, {"run": "x"}).status_code == 400
    assert client.get(url, {"run": 10**9}).status_code == 404


def test_it_renders_the_curve_summary_table(client, alice, experiment):
    baseline = experiment.runs.get(name="baseline")
    add_epochs(baseline, 4)
    client.force_login(alice)

    body = client.get(reverse("experiment_results", args=[experiment.pk])).content.decode()

    cell = re.search(rf'<td class="curve-value" data-run-id="{baseline.pk}" data-key="loss"'
                     r'[^>]*>([^<]*)</td>', body)
    assert cell is not None
    assert 'data-last="0.250000"' in cell.group(0) and 'data-max="1.000000"' in cell.group(0)
    assert 'data-best="0.250000"' in cell.group(0) and 'data-min="0.250000"' in cell.group(0)
    assert cell.group(1) == "0.2500"
    assert '<select id="curve-stat"' in body


def test_it_links_the_report_from_the_experiment_page(client, alice, experiment):
    client.force_login(alice)

    body = client.get(reverse("experiment_detail", args=[experiment.pk])).content.decode()

    assert f'href="{reverse("experiment_report", args=[experiment.pk])}"' in body
    assert 'id="time-chart"' in body and 'id="tradeoff-chart"' in body


# Compare across experiments


@pytest.fixture
def other(alice, alice_team, make_experiment):
    experiment = make_experiment(team=alice_team, user=alice, name=XSS, recipes=[
        {"name": "int8", "steps": [{"technique": "ptq", "mode": "dynamic_int8"}]}])
    baseline, int8 = experiment.runs.order_by("position")
    succeed(baseline, **base_result(fingerprint={**FINGERPRINT, "cpu_model": "EPYC"}))
    succeed(int8, **base_result(test_accuracy=0.88,
                                fingerprint={**FINGERPRINT, "cpu_model": "EPYC"}))
    add_epochs(int8, 3)
    return experiment


def compare_url(*runs):
    return reverse("compare") + "?runs=" + ",".join(str(run.pk) for run in runs)


def test_it_compares_runs_of_two_experiments_and_warns_of_other_hardware(
        client, alice, measured, other):
    fast = measured.runs.get(name="fast", replicate=0)
    int8 = other.runs.get(name="int8")
    client.force_login(alice)

    response = client.get(compare_url(fast, int8))

    body = response.content.decode()
    assert response.status_code == 200
    assert [row["run"].pk for row in response.context["rows"]] == [fast.pk, int8.pk]
    assert 'id="hardware-warning"' in body
    assert "cpu_model differs: Xeon vs EPYC" in body
    assert XSS not in body and html_escaped(XSS) in body
    assert '<li class="differs">cpu_model: EPYC</li>' in body
    data = json.loads(re.search(r'<script id="compare-data" type="application/json">(.*?)'
                                r'</script>', body, re.S).group(1))
    assert [run["id"] for run in data["runs"]] == [fast.pk, int8.pk]
    # The stored curves keep six significant digits.
    assert data["runs"][1]["val_accuracy"] == [[1, 0.666667], [2, 0.833333], [3, 0.99]]
    assert data["runs"][1]["val_accuracy_by_time"][-1][0] == 1.5
    # Latency p50 with its interval.
    assert "1.9000–2.1000" in body


def test_it_names_the_runtime_of_each_compared_latency(client, alice, measured, other):
    baseline = measured.runs.get(name="baseline", replicate=0)
    fast = measured.runs.get(name="fast", replicate=0)
    int8 = other.runs.get(name="int8")
    files = {"file": "model.keras", "runtime": "keras"}
    succeed(baseline, **base_result(runtime="keras",
                                    measured_files={"runtime": {**files, "jit_compile": False}}))
    succeed(fast, **base_result(runtime="keras",
                                measured_files={"runtime": {**files, "jit_compile": True}}))
    # A result from before measured_files: its steps say XLA or not.
    succeed(int8, **base_result(runtime="tflite", steps_applied=["ptq"]))
    client.force_login(alice)

    body = client.get(compare_url(baseline, fast, int8)).content.decode()

    cells = re.findall(r'<tr data-compare-run="(\d+)">.*?<td class="runtime">([^<]*)</td>', body,
                       re.S)
    assert cells == [(str(baseline.pk), "keras"), (str(fast.pk), "keras + XLA jit"),
                     (str(int8.pk), "tflite")]
    assert re.search(r'id="runtime-note">These latencies were measured in different runtimes '
                     r'\(keras, keras \+ XLA jit, tflite\)', body)
    # One runtime: nothing to warn of.
    body = client.get(compare_url(baseline)).content.decode()
    assert 'id="runtime-note"' not in body


def html_escaped(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_it_gives_no_warning_for_the_same_hardware(client, alice, measured):
    runs = list(measured.runs.filter(replicate=0).order_by("position"))
    client.force_login(alice)

    response = client.get(reverse("compare") + f"?runs={runs[0].pk}&runs={runs[1].pk}")

    assert response.status_code == 200
    assert response.context["differences"] == []
    assert 'id="hardware-warning"' not in response.content.decode()


def test_it_lists_the_teams_experiments_in_the_picker(client, alice, charlie, charlie_team,
                                                       make_experiment, measured, other):
    make_experiment(team=charlie_team, user=charlie, name="Charlie's secret")
    fast = measured.runs.get(name="fast", replicate=0)
    client.force_login(alice)

    response = client.get(compare_url(fast))

    body = response.content.decode()
    assert {e.pk for e in response.context["experiments"]} == {measured.pk, other.pk}
    assert "Charlie" not in body
    assert f'name="runs" value="{fast.pk}" checked' in body
    same = measured.runs.get(name="same", replicate=0)
    assert f'name="runs" value="{same.pk}">' in body


def test_it_finds_older_experiments_for_the_picker_by_name(client, alice, alice_team,
                                                          make_experiment, measured):
    from experiments.selectors import PICKER_EXPERIMENTS

    for index in range(PICKER_EXPERIMENTS):
        make_experiment(team=alice_team, user=alice, name=f"newer {index}")
    fast = measured.runs.get(name="fast", replicate=0)
    client.force_login(alice)

    newest = client.get(reverse("compare"))
    found = client.get(reverse("compare") + "?q=SEED mlp")
    kept = client.get(reverse("compare") + f"?q=newer 1&runs={fast.pk}")
    nothing = client.get(reverse("compare") + "?q=%00nothing like it")

    assert measured not in newest.context["experiments"]
    assert len(newest.context["experiments"]) == PICKER_EXPERIMENTS
    assert found.context["experiments"] == [measured]
    # The ticked run's experiment stays, so it can be unticked; the query is kept.
    names = [e.name for e in kept.context["experiments"]]
    assert names[-1] == measured.name and "newer 12" in names and "newer 2" not in names
    body = kept.content.decode()
    assert f'<input type="hidden" name="runs" value="{fast.pk}">' in body
    assert '<input type="hidden" name="q" value="newer 1">' in body
    assert nothing.status_code == 200 and nothing.context["experiments"] == []
    assert "No experiment of your teams is named like" in nothing.content.decode()


def test_it_refuses_another_teams_runs(client, charlie, measured, other):
    fast = measured.runs.get(name="fast", replicate=0)
    client.force_login(charlie)

    assert client.get(compare_url(fast)).status_code == 404
    assert client.get(reverse("compare") + "?runs=999999").status_code == 404
    assert client.get(reverse("compare") + "?runs=abc").status_code == 404
    assert client.get(reverse("compare") + "?runs=²").status_code == 404  # a digit to isdigit()
    assert client.get(reverse("compare")).status_code == 200


def test_it_refuses_a_mix_of_own_and_other_teams_runs(client, charlie, charlie_team,
                                                      make_experiment, measured):
    own = make_experiment(team=charlie_team, user=charlie).runs.get()
    succeed(own, **base_result())
    client.force_login(charlie)

    assert client.get(compare_url(own)).status_code == 200
    response = client.get(compare_url(own, measured.runs.get(name="fast", replicate=0)))
    assert response.status_code == 404
    assert "fast" not in response.content.decode()


def test_it_sends_anonymous_visitors_to_log_in(client, measured):
    for url in (compare_url(measured.runs.first()),
                reverse("experiment_report", args=[measured.pk])):
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))


# The print report


def test_it_prints_a_report_without_scripts(client, alice, bob, measured):
    fast = measured.runs.get(name="fast", replicate=0)
    Comment.objects.create(experiment=measured, author=bob,
                           body=f"**Looks good**\n\n{XSS}<script>alert(1)</script>")
    Comment.objects.create(experiment=measured, run=fast, author=alice, body="second")
    SignOff.objects.create(experiment=measured, run=fast, approved_by=alice,
                           model_label="seed MLP on digits", note=f"ship it {XSS}",
                           evidence={"inference_speedup": 2.0, "budget": 0.01})
    client.force_login(bob)

    response = client.get(reverse("experiment_report", args=[measured.pk]))

    body = response.content.decode()
    assert response.status_code == 200
    assert "<script" not in body
    assert 'class="topbar"' not in body and "<nav" not in body
    assert "css/report.css" in body
    # Spec, pinned results with intervals and tones, hardware.
    assert "seed_mlp" in body and "Accuracy budget" in body
    table = re.search(r'<table[^>]*id="report-comparison".*?</table>', body, re.S).group(0)
    assert "2.00×" in table and "(exact)" in table and "tone-good" in table
    assert re.search(r"\+5\.0 pts \(\+\d\.\d to \+\d\.\d pts\) better; within the 1 pt "
                     r"budget \(judged on the point estimate\)", table)
    assert "a drop in test accuracy of at most 1 pt" in body
    assert "Xeon" in body
    # Sign-offs and the discussion, rendered safely.
    assert "seed MLP on digits" in body and "ship it &lt;img" in body
    assert "<strong>Looks good</strong>" in body
    assert XSS not in body
    assert body.index("Looks good") < body.index("second")


def test_it_reports_a_run_on_other_hardware(client, alice, measured):
    fast = measured.runs.get(name="fast", replicate=0)
    succeed(fast, **{**fast.result, "fingerprint": {**FINGERPRINT, "backend": "jax"}})
    client.force_login(alice)

    body = client.get(reverse("experiment_report", args=[measured.pk])).content.decode()

    assert "not comparable</strong>: backend differs (tensorflow vs jax)" in body


def test_it_hides_another_teams_report(client, charlie, measured):
    client.force_login(charlie)

    assert client.get(reverse("experiment_report", args=[measured.pk])).status_code == 404


def test_it_has_a_print_stylesheet():
    from django.conf import settings

    css = (settings.BASE_DIR / "static" / "css" / "report.css").read_text()
    assert "@media print" in css
