"""The benchmark stage through its Celery tasks, in this process, with the real engine in
child processes: the runs train, their end queues one benchmark, the benchmark measures
every shipped model side by side and the comparison's inference figures come from it."""

import pytest

from experiments.models import Benchmark, Run
from experiments.selectors import experiment_comparison
from experiments.services import benchmark_if_ready, run_rerun
from runners.tasks import execute_benchmark, execute_run

pytestmark = pytest.mark.timeout(400)

SMALL_BENCHMARK = {"executions": 3, "rounds": 4, "calls": 10, "warmup": 5, "trials": 1,
                   "latency_samples": 5}


@pytest.fixture
def trained(alice, alice_team, make_experiment):
    """A baseline and a ptq recipe, trained (one epoch each)."""
    experiment = make_experiment(
        team=alice_team, user=alice,
        recipes=[{"name": "int8", "steps": [{"technique": "ptq", "mode": "dynamic_int8"}]}],
        benchmark=SMALL_BENCHMARK,
    )
    for run in experiment.runs.all():
        assert execute_run.run(run.pk) == Run.Status.SUCCEEDED, Run.objects.get(pk=run.pk).error
    return experiment


def test_it_benchmarks_every_model_once_the_runs_have_ended(trained):
    [benchmark] = Benchmark.objects.filter(experiment=trained)
    assert benchmark.status == Run.Status.QUEUED
    assert set(benchmark.runs) == {str(run.pk) for run in trained.runs.all()}
    rows = {row["kind"]: row for row in experiment_comparison(trained)}
    assert rows["vs baseline"]["inference_speedup"] is None
    assert rows["vs baseline"]["inference_verdict"] == "benchmark queued"

    assert execute_benchmark.run(benchmark.pk) == Run.Status.SUCCEEDED

    benchmark.refresh_from_db()
    assert benchmark.progress == 1.0
    assert benchmark.execution == 3
    assert len(benchmark.raw) == 3
    assert set(benchmark.result["models"]) == {
        "baseline", "baseline-again", *(f"run-{run.pk}" for run in trained.runs.all()
                                        if not run.is_baseline),
        *(f"run-{run.pk}-reference" for run in trained.runs.all() if not run.is_baseline)}
    rows = {row["kind"]: row for row in experiment_comparison(trained)}
    assert set(rows) == {"A/A control", "vs baseline", "vs float32 TFLite", "runtime switch"}
    assert rows["A/A control"]["benchmark_id"] == rows["vs baseline"]["benchmark_id"] \
        == benchmark.pk
    for row in rows.values():
        low, high = row["inference_ci"]
        assert low <= row["inference_speedup"] <= high
        assert row["method"] == "Student t over 3 units"
    # Two TFLite models: invoke() alone is compared too.
    assert rows["vs float32 TFLite"]["invoke_speedup"] > 0
    # A LiteRT model answers a batch-1 call many times faster than Keras here.
    assert rows["runtime switch"]["inference_ci"][0] > 1.0
    [cost] = rows["vs baseline"]["break_even"]
    assert cost["what"] == "TFLite conversion" and cost["unit"] == "inferences"
    assert cost["after"] >= 1
    # One replicate: a training speedup without an interval, never a sign-off's evidence.
    assert rows["vs baseline"]["train_ci"] is None
    assert rows["vs baseline"]["train_verdict"] == "one run: repeat to get an interval"


def test_it_does_not_benchmark_the_same_runs_twice_unless_asked(trained, alice):
    first = Benchmark.objects.get(experiment=trained)
    execute_benchmark.run(first.pk)

    assert benchmark_if_ready(trained) is None
    again = benchmark_if_ready(trained, user=alice, force=True)

    assert again.status == Run.Status.QUEUED and again.requested_by == alice
    assert again.runs == first.runs


def test_it_waits_for_a_rerun_and_measures_the_new_files(trained):
    first = Benchmark.objects.get(experiment=trained)
    execute_benchmark.run(first.pk)
    recipe = trained.runs.get(position=1)

    assert run_rerun(recipe, user=None)
    rows = {row["kind"]: row for row in experiment_comparison(trained)}
    assert "vs baseline" not in rows  # the recipe has no result until it has run again
    assert benchmark_if_ready(trained) is None  # a run is queued

    execute_run.run(recipe.pk)

    second = Benchmark.objects.exclude(pk=first.pk).get(experiment=trained)
    recipe.refresh_from_db()
    assert second.runs[str(recipe.pk)] == recipe.finished_at.isoformat()
    rows = {row["kind"]: row for row in experiment_comparison(trained)}
    # The old benchmark measured the old files: the row waits for the new one.
    assert rows["vs baseline"]["inference_speedup"] is None
    assert rows["A/A control"]["inference_speedup"] is not None


def test_it_fails_a_benchmark_that_runs_too_long_and_does_not_repeat_it(trained, settings):
    settings.ACCELWEB_MAX_RUN_SECONDS = 2
    benchmark = Benchmark.objects.get(experiment=trained)

    assert execute_benchmark.run(benchmark.pk) == Run.Status.FAILED

    benchmark.refresh_from_db()
    assert benchmark.error == "The benchmark took longer than 2 s."
    assert not Benchmark.objects.filter(experiment=trained).pending().exists()


def test_it_fails_a_benchmark_whose_files_are_gone_with_the_reason(trained):
    import shutil

    benchmark = Benchmark.objects.get(experiment=trained)
    recipe = trained.runs.get(position=1)
    shutil.rmtree(recipe.artifacts_dir)

    assert execute_benchmark.run(benchmark.pk) == Run.Status.FAILED

    benchmark.refresh_from_db()
    assert "no longer on disk" in benchmark.error
    rows = {row["kind"]: row for row in experiment_comparison(trained)}
    assert rows["vs baseline"]["inference_verdict"] == "the benchmark failed: re-benchmark"


# Without the engine: the stage's state on the experiment.


@pytest.fixture
def finished(alice, alice_team, make_experiment):
    """A baseline and a recipe that succeeded (results written, nothing trained)."""
    from results import finish_recipe

    experiment = make_experiment(team=alice_team, user=alice,
                                 recipes=[{"name": "XLA", "steps": [{"technique": "xla"}]}])
    for run in experiment.runs.all():
        finish_recipe(run)
    return experiment


def test_it_says_why_it_cannot_benchmark_yet(alice, alice_team, make_experiment, finished):
    from experiments.services import BenchmarkRefused

    waiting = make_experiment(team=alice_team, user=alice)
    with pytest.raises(BenchmarkRefused, match="Runs are still queued or running"):
        benchmark_if_ready(waiting, force=True)
    assert benchmark_if_ready(waiting) is None

    Run.objects.filter(experiment=finished, position=0).update(status=Run.Status.FAILED)
    with pytest.raises(BenchmarkRefused, match="The baseline has not succeeded"):
        benchmark_if_ready(finished, force=True)
    assert not Benchmark.objects.exists()


def test_it_queues_one_benchmark_at_a_time(finished, alice,
                                          django_capture_on_commit_callbacks):
    from experiments.services import BenchmarkRefused

    with django_capture_on_commit_callbacks() as callbacks:
        first = benchmark_if_ready(finished)
    assert len(callbacks) == 1  # the task, enqueued once the row is committed
    assert first.status == Run.Status.QUEUED and first.executions == 5
    assert benchmark_if_ready(finished) is None

    # Re-benchmark replaces a queued one (its message may be lost) ...
    second = benchmark_if_ready(finished, user=alice, force=True)
    first.refresh_from_db()
    assert (first.status, first.error) == (Run.Status.CANCELLED, "Replaced by a re-benchmark.")
    assert execute_benchmark.run(first.pk) == "skipped"
    # ... never a running one.
    Benchmark.objects.filter(pk=second.pk).update(status=Run.Status.RUNNING)
    with pytest.raises(BenchmarkRefused, match="is running: wait for it"):
        benchmark_if_ready(finished, user=alice, force=True)


def test_it_records_progress_and_stages(finished):
    from experiments.services import benchmark_progress

    benchmark = benchmark_if_ready(finished)
    Benchmark.objects.filter(pk=benchmark.pk).update(status=Run.Status.RUNNING)
    benchmark.refresh_from_db()

    benchmark_progress(benchmark, {"execution": 3, "executions": 5, "round": 10,
                                   "rounds": 20})

    benchmark.refresh_from_db()
    assert (benchmark.execution, benchmark.progress) == (3, 0.5)
    assert benchmark.stage == "benchmarking: execution 3 of 5"


def test_it_fails_a_benchmark_whose_runner_went_silent(finished):
    from datetime import timedelta

    from django.utils import timezone

    from runners.fleet import reap_stale_benchmarks

    benchmark = benchmark_if_ready(finished)
    Benchmark.objects.filter(pk=benchmark.pk).update(
        status=Run.Status.RUNNING, worker="celery@gone",
        heartbeat_at=timezone.now() - timedelta(seconds=600))

    assert reap_stale_benchmarks(reaper="celery@here", timeout=60) == [benchmark.pk]

    benchmark.refresh_from_db()
    assert benchmark.status == Run.Status.FAILED
    assert "celery@gone stopped sending heartbeats" in benchmark.error
    assert reap_stale_benchmarks(reaper="celery@here", timeout=60) == []


def test_it_cancels_a_queued_benchmark(finished):
    from experiments.services import benchmark_cancel

    benchmark = benchmark_if_ready(finished)

    assert benchmark_cancel(benchmark)
    benchmark.refresh_from_db()
    assert benchmark.status == Run.Status.CANCELLED
    assert execute_benchmark.run(benchmark.pk) == "skipped"
    # A person stopped it: nothing queues it again by itself; Re-benchmark does.
    assert benchmark_if_ready(finished) is None
    assert benchmark_if_ready(finished, force=True) is not None


def test_it_stops_a_pending_benchmark_when_a_run_is_run_again(finished):
    benchmark = benchmark_if_ready(finished)
    Benchmark.objects.filter(pk=benchmark.pk).update(status=Run.Status.RUNNING)

    assert run_rerun(finished.runs.get(position=1), user=None)

    benchmark.refresh_from_db()
    assert benchmark.status == Run.Status.RUNNING and benchmark.cancel_requested


def test_it_measures_no_run_that_was_run_again_after_it_was_queued(finished):
    benchmark = benchmark_if_ready(finished)
    Run.objects.filter(experiment=finished, position=1).update(
        finished_at="2030-01-01T00:00:00Z")

    assert execute_benchmark.run(benchmark.pk) == Run.Status.CANCELLED

    benchmark.refresh_from_db()
    assert "was run again" in benchmark.error
    # All runs have ended, with other results: the new ones are benchmarked.
    assert Benchmark.objects.filter(experiment=finished, status="queued").count() == 1


def test_it_rebenchmarks_from_the_page_and_the_api(client, api, dave, bob, finished):
    from django.urls import reverse

    client.force_login(dave)
    response = client.post(reverse("experiment_rebenchmark", args=[finished.pk]))
    assert response.status_code == 302
    [benchmark] = Benchmark.objects.filter(experiment=finished)
    assert benchmark.requested_by == dave

    Benchmark.objects.update(status=Run.Status.RUNNING)
    busy = api(dave).post(f"/api/experiments/{finished.pk}/rebenchmark/")
    assert busy.status_code == 409
    assert "is running: wait for it" in busy.json()["detail"]
    Benchmark.objects.update(status=Run.Status.SUCCEEDED)
    again = api(dave).post(f"/api/experiments/{finished.pk}/rebenchmark/")
    assert again.status_code == 202
    assert again.json()["benchmark"]["status"] == "queued"
    assert api(bob).post(f"/api/experiments/{finished.pk}/rebenchmark/").status_code == 403
    assert Benchmark.objects.filter(experiment=finished).count() == 2
