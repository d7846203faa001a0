import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from experiments import services
from experiments.comparison import compare_runs
from experiments.models import Experiment, Membership, Run, RunEvent, Team
from experiments.selectors import experiment_comparison

FINGERPRINT = {"cpu_model": "Xeon", "logical_cores": 2, "gpus": [], "backend": "tensorflow",
               "tensorflow": "2.21.0", "keras": "3.15.1"}


@pytest.fixture
def experiment(alice, alice_team, make_experiment):
    return make_experiment(team=alice_team, user=alice, training={"epochs": 4}, recipes=[
        {"name": "XLA", "steps": [{"technique": "xla"}]},
        {"name": "int8", "steps": [{"technique": "ptq", "mode": "dynamic_int8"}]},
    ])


@pytest.fixture
def run(experiment):
    return experiment.runs.get(name="baseline")


def succeed(run, **result):
    Run.objects.filter(pk=run.pk).update(
        status=Run.Status.SUCCEEDED, result={"fingerprint": FINGERPRINT, **result})
    run.refresh_from_db()
    return run


# experiment_create


def test_it_creates_a_baseline_and_one_run_per_recipe(experiment, alice, alice_team):
    experiment.refresh_from_db()
    assert (experiment.team, experiment.created_by, experiment.hardware) == (
        alice_team, alice, "cpu")
    runs = list(experiment.runs.all())
    assert [(r.name, r.position, r.status) for r in runs] == [
        ("baseline", 0, "queued"), ("XLA", 1, "queued"), ("int8", 2, "queued")]
    assert runs[0].steps == [] and runs[0].is_baseline
    # The spec's steps, with the engine's defaults filled in.
    [step] = runs[2].steps
    assert (step["technique"], step["mode"]) == ("ptq", "dynamic_int8")


def test_it_enqueues_each_run_after_commit(alice, alice_team, make_experiment,
                                           django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        make_experiment(team=alice_team, user=alice,
                        recipes=[{"name": "XLA", "steps": [{"technique": "xla"}]}])

    assert len(callbacks) == 2


def test_it_creates_nothing_for_an_invalid_spec(alice, alice_team, make_experiment,
                                                django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        with pytest.raises(ValidationError):
            make_experiment(team=alice_team, user=alice, training={"epochs": 0})

    assert not Experiment.objects.exists()
    assert callbacks == []


def test_it_finds_or_makes_the_users_team(alice, alice_team, django_user_model):
    assert services.team_for_user(alice) == alice_team
    assert services.team_for_user(alice, "Alice's team") == alice_team
    with pytest.raises(Team.DoesNotExist):
        services.team_for_user(alice, "Charlie's team")

    dave = django_user_model.objects.create_user("dave")
    team = services.team_for_user(dave)

    assert team.name == "dave's team"
    assert Membership.objects.get(team=team, user=dave).role == Membership.Role.ADMIN


def test_it_never_makes_a_user_admin_of_a_team_that_has_their_name(
        charlie, charlie_team, django_user_model):
    # Charlie's team is named like a user who signs up later, or like one removed from it.
    charlie_team.name = "eve's team"
    charlie_team.save()
    eve = django_user_model.objects.create_user("eve")

    team = services.team_for_user(eve)

    assert team != charlie_team and team.name == "eve's team (2)"
    assert not Membership.objects.filter(team=charlie_team, user=eve).exists()


def test_it_keeps_a_removed_member_out(client, alice, alice_team, django_user_model):
    dave = django_user_model.objects.create_user("dave")
    own = services.team_for_user(dave)
    Membership.objects.create(team=own, user=alice, role=Membership.Role.ADMIN)
    Membership.objects.filter(team=own, user=dave).delete()  # alice removes dave
    client.force_login(dave)

    client.get(reverse("team_list"))

    assert not Membership.objects.filter(team=own, user=dave).exists()


# Run.claim and mark_finished


def test_it_claims_a_queued_run_once(run):
    first = Run.claim(run.pk, worker="celery@one")
    second = Run.claim(run.pk, worker="celery@two")

    assert first is not None and first.pk == run.pk
    assert second is None
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING
    assert run.worker == "celery@one"
    assert run.started_at is not None and run.heartbeat_at is not None


def test_it_finishes_only_a_running_run(run):
    assert not run.mark_finished(Run.Status.SUCCEEDED, result={"test_accuracy": 0.9})
    run.refresh_from_db()
    assert run.status == Run.Status.QUEUED
    assert run.result is None

    claimed = Run.claim(run.pk, worker="celery@one")
    assert claimed.mark_finished(Run.Status.SUCCEEDED, result={"test_accuracy": 0.9})
    assert not claimed.mark_finished(Run.Status.FAILED, error="too late")

    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    assert run.result == {"test_accuracy": 0.9}
    assert run.progress == 1.0
    assert run.error == ""
    assert run.finished_at is not None


def test_it_keeps_a_failure_readable(run):
    claimed = Run.claim(run.pk, worker="celery@one")

    claimed.mark_finished(Run.Status.FAILED, error="out of memory", stderr_tail="Killed")

    run.refresh_from_db()
    assert (run.status, run.error, run.stderr_tail) == ("failed", "out of memory", "Killed")
    assert run.progress == 0.0


# Cancel


def test_it_cancels_a_queued_run_at_once(run, alice):
    assert services.run_cancel(run, user=alice)

    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    assert run.cancel_requested
    assert run.finished_at is not None
    assert Run.claim(run.pk, worker="celery@one") is None
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED


def test_it_asks_a_running_run_to_stop(run, alice):
    Run.claim(run.pk, worker="celery@one")

    assert services.run_cancel(run, user=alice)

    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING
    assert run.cancel_requested
    assert run.finished_at is None


def test_it_does_not_cancel_an_ended_run(run, alice):
    succeed(run)

    assert not services.run_cancel(run, user=alice)

    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    assert not run.cancel_requested


# Re-run


def test_it_resets_an_ended_run_for_a_rerun(run, django_capture_on_commit_callbacks):
    Run.claim(run.pk, worker="celery@one")
    services.run_record_event(run, {"event": "epoch", "epoch": 1, "loss": 0.5})
    run.mark_finished(Run.Status.FAILED, error="boom", stderr_tail="Traceback")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert services.run_rerun(run, user=None)

    run.refresh_from_db()
    assert run.status == Run.Status.QUEUED
    assert (run.error, run.stderr_tail, run.worker, run.result) == ("", "", "", None)
    assert (run.progress, run.epochs_done) == (0.0, 0)
    assert run.started_at is None and run.finished_at is None
    assert not RunEvent.objects.filter(run=run).exists()
    assert len(callbacks) == 1


def test_it_does_not_rerun_a_run_that_has_not_ended(run, django_capture_on_commit_callbacks):
    Run.claim(run.pk, worker="celery@one")
    services.run_record_event(run, {"event": "epoch", "epoch": 1})

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert not services.run_rerun(run, user=None)

    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING
    assert run.events.count() == 1
    assert callbacks == []


def test_it_clears_a_runs_history_without_queueing_it(run, django_capture_on_commit_callbacks):
    Run.claim(run.pk, worker="celery@one")
    services.run_record_event(run, {"event": "epoch", "epoch": 1, "loss": 0.5})
    run.mark_finished(Run.Status.CANCELLED)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert services.run_reset_for_rerun(run)

    assert run.status == Run.Status.QUEUED
    assert not RunEvent.objects.filter(run=run).exists()
    assert callbacks == []  # sending it is run_rerun's
    assert not services.run_reset_for_rerun(run)  # queued, not ended


def test_it_requeues_the_row_alone_and_leaves_the_history_to_the_service(run):
    Run.claim(run.pk, worker="celery@one")
    services.run_record_event(run, {"event": "epoch", "epoch": 1, "loss": 0.5})
    run.mark_finished(Run.Status.FAILED, error="boom", stderr_tail="Traceback")

    assert run.requeue_ended()

    assert (run.status, run.error, run.stderr_tail, run.worker) == (
        Run.Status.QUEUED, "", "", "")
    stored = Run.objects.get(pk=run.pk)
    assert (stored.status, stored.error, stored.finished_at) == (Run.Status.QUEUED, "", None)
    assert stored.events.count() == 1
    assert not run.requeue_ended()


# Events


def test_it_records_events_in_order_and_updates_progress(run):
    services.run_record_event(run, {"event": "phase", "phase": "train"})
    services.run_record_event(run, {"event": "epoch", "epoch": 1, "loss": 0.9})
    services.run_record_event(run, {"event": "epoch", "epoch": 2, "loss": 0.5})
    services.run_record_event(run, {"event": "a" * 40})

    events = list(RunEvent.objects.filter(run=run).order_by("seq"))
    assert [(e.seq, e.kind) for e in events] == [
        (1, "phase"), (2, "epoch"), (3, "epoch"), (4, "a" * 20)]
    assert events[2].data == {"event": "epoch", "epoch": 2, "loss": 0.5}
    run.refresh_from_db()
    assert run.epochs_done == 2
    assert run.progress == 0.5  # 2 of 4 epochs


def test_it_numbers_events_per_run(experiment):
    baseline, xla = experiment.runs.get(name="baseline"), experiment.runs.get(name="XLA")

    services.run_record_event(baseline, {"event": "phase", "phase": "train"})
    services.run_record_event(xla, {"event": "phase", "phase": "train"})

    assert list(RunEvent.objects.values_list("run_id", "seq").order_by("run_id")) == [
        (baseline.pk, 1), (xla.pk, 1)]


def test_it_caps_progress_at_one(run):
    services.run_record_event(run, {"event": "epoch", "epoch": 9})

    run.refresh_from_db()
    assert run.progress == 1.0


# Comparison


def compare(experiment):
    return experiment_comparison(experiment, list(experiment.runs.all()))


def test_it_compares_identical_runs_as_equal(experiment, benchmarked):
    epochs = [500.0, 510.0, 490.0]
    succeed(experiment.runs.get(name="baseline"), latency_ms_p50=2.0, model_bytes=1000,
            test_accuracy=0.9, train_samples_per_s=500.0, train_samples_per_s_epochs=epochs)
    xla = succeed(experiment.runs.get(name="XLA"), latency_ms_p50=2.0, model_bytes=1000,
                  test_accuracy=0.9, train_samples_per_s=500.0,
                  train_samples_per_s_epochs=epochs)
    benchmarked(experiment, {f"run-{xla.pk}": (1.0, [0.96, 1.04])})

    aa, row = compare(experiment)

    assert aa["kind"] == "A/A control" and aa["inference_ci"] == [0.97, 1.03]
    assert (aa["inference_verdict"], aa["inference_tone"]) == ("contains 1.0", "unclear")
    assert row["name"] == "XLA"
    assert row["kind"] == "vs baseline"
    assert row["inference_speedup"] == 1.0
    assert row["inference_ci"][0] <= 1.0 <= row["inference_ci"][1]
    assert row["inference_verdict"] == "no clear difference"
    assert (row["train_speedup"], row["size_reduction"], row["accuracy_delta"]) == (1.0, 1.0, 0)
    assert row["comparable"] is True


def test_it_takes_inference_speedups_only_from_the_benchmark(experiment):
    # Each run measured itself alone: 2 ms against 1 ms is no comparison.
    succeed(experiment.runs.get(name="baseline"), latency_ms_p50=2.0, latency_samples=[2.0] * 5)
    succeed(experiment.runs.get(name="XLA"), latency_ms_p50=1.0, latency_samples=[1.0] * 5)

    aa, row = compare(experiment)

    assert aa["inference_speedup"] is None
    assert row["inference_speedup"] is None and row["inference_ci"] is None
    assert row["inference_verdict"] == "waiting for the benchmark"
    assert row["inference_tone"] == "unclear"


def test_it_splits_a_quantized_run_into_three_comparisons(experiment, benchmarked):
    baseline = succeed(experiment.runs.get(name="baseline"), latency_ms_p50=4.0,
                       model_bytes=4000, test_accuracy=0.90, train_samples_per_s=100.0)
    int8 = succeed(
        experiment.runs.get(name="int8"), latency_ms_p50=0.5, model_bytes=1000,
        test_accuracy=0.89, train_samples_per_s=100.0, runtime="tflite",
        reference={"latency_ms_p50": 1.0, "model_bytes": 4000, "test_accuracy": 0.90},
    )
    benchmarked(experiment, {f"run-{int8.pk}": (8.0, [7.5, 8.5]),
                             f"run-{int8.pk}-reference": (2.0, [1.9, 2.1]),
                             f"run-{int8.pk}-switch": (4.0, [3.8, 4.2])},
                invoke={f"run-{int8.pk}-reference": (2.5, [2.3, 2.7])})

    rows = compare(experiment)

    assert [(r["kind"], r["run_id"]) for r in rows] == [
        ("A/A control", baseline.pk), ("vs baseline", int8.pk),
        ("vs float32 TFLite", int8.pk), ("runtime switch", int8.pk)]
    _, vs_baseline, vs_reference, switch = rows
    assert vs_baseline["inference_speedup"] == 8.0
    assert vs_baseline["inference_tone"] == "good"
    assert vs_baseline["size_reduction"] == 4.0
    assert vs_baseline["runtime"] == "tflite"
    # The int8 gain proper: against the float32 model in the same runtime, invoke() alone
    # beside it.
    assert vs_reference["inference_speedup"] == 2.0
    assert (vs_reference["invoke_speedup"], vs_reference["invoke_ci"]) == (2.5, [2.3, 2.7])
    assert vs_reference["size_reduction"] == 4.0
    assert vs_reference["accuracy_delta"] == -0.01
    # The gain of leaving Keras for TFLite, shown on its own line.
    assert switch["inference_speedup"] == 4.0
    assert switch["size_reduction"] == 1.0
    assert vs_reference["train_speedup"] is None and switch["train_speedup"] is None


def test_it_marks_runs_on_other_hardware_not_comparable(experiment, benchmarked):
    baseline = succeed(experiment.runs.get(name="baseline"), latency_ms_p50=2.0)
    xla = experiment.runs.get(name="XLA")
    Run.objects.filter(pk=xla.pk).update(status=Run.Status.SUCCEEDED, result={
        "latency_ms_p50": 1.0, "fingerprint": {**FINGERPRINT, "cpu_model": "EPYC"}})
    xla.refresh_from_db()
    benchmarked(experiment, {f"run-{xla.pk}": (2.0, [1.9, 2.1])})

    _, row = compare_runs([baseline, xla], experiment.benchmarks.all())

    assert row["inference_speedup"] == 2.0
    assert row["comparable"] is False
    assert "cpu_model differs (Xeon vs EPYC)" in row["not_comparable_reason"]


def test_it_compares_nothing_without_a_finished_baseline(experiment):
    succeed(experiment.runs.get(name="XLA"), latency_ms_p50=1.0)

    assert compare(experiment) == []


def test_it_leaves_out_runs_that_have_not_succeeded(experiment):
    succeed(experiment.runs.get(name="baseline"), latency_ms_p50=2.0)
    Run.objects.filter(name="XLA").update(status=Run.Status.FAILED,
                                          result={"latency_ms_p50": 1.0})

    # The A/A control alone: the baseline against itself.
    assert [row["kind"] for row in compare(experiment)] == ["A/A control"]


def test_it_makes_the_runs_it_plans(make_experiment, alice, alice_team):
    # The "Queued N runs." message reads planned_runs, not the table.
    experiment = make_experiment(
        team=alice_team, user=alice, training={"epochs": 1, "repeats": 3},
        recipes=[{"name": "XLA", "steps": [{"technique": "xla"}]},
                 {"name": "fp16", "steps": [{"technique": "mixed_precision"}]}],
    )

    assert experiment.planned_runs == experiment.runs.count() == 9
