"""The Celery task, run in this process with the real engine in its child process.

These start `python -m runners run` for real (a few seconds each): the point is that a run
the engine refuses ends "failed" with a readable reason, never stays "running".
"""

import pytest

from experiments.models import Run, RunEvent
from runners.tasks import execute_run

# Each test that reaches the engine starts a Python child (~3 s); a hang must not stall CI.
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def experiment(alice, alice_team, make_experiment):
    return make_experiment(team=alice_team, user=alice)


def test_it_fails_a_run_the_engine_refuses(experiment):
    run = experiment.runs.get()
    # The web gate would refuse this recipe; a spec edited in the admin or written by an
    # older version can still reach the engine.
    Run.objects.filter(pk=run.pk).update(steps=[{"technique": "warp_drive"}])

    assert execute_run.run(run.pk) == Run.Status.FAILED

    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert "Unknown technique 'warp_drive'" in run.error
    assert "Traceback (most recent call last)" in run.stderr_tail
    assert "warp_drive" in run.stderr_tail
    assert run.worker != ""
    assert run.started_at is not None and run.finished_at is not None
    kinds = list(RunEvent.objects.filter(run=run).values_list("kind", flat=True))
    assert kinds[-1] == "error"
    assert run.artifacts_dir.is_dir()


def test_it_skips_a_run_it_has_already_run(experiment):
    run = experiment.runs.get()
    Run.objects.filter(pk=run.pk).update(steps=[{"technique": "warp_drive"}])
    execute_run.run(run.pk)
    run.refresh_from_db()
    finished_at, events = run.finished_at, run.events.count()

    # A second delivery of the same message (acks_late after a worker died, say).
    assert execute_run.run(run.pk) == "skipped"

    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert run.finished_at == finished_at
    assert run.events.count() == events


def test_it_skips_a_run_cancelled_while_queued(experiment):
    run = experiment.runs.get()
    run.request_cancel()

    assert execute_run.run(run.pk) == "skipped"

    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    assert run.started_at is None
    assert not run.events.exists()


def test_it_skips_a_run_that_no_longer_exists(db):
    assert execute_run.run(987654) == "skipped"


def test_it_fails_a_run_whose_dataset_was_deleted(alice, alice_team, make_experiment,
                                                  make_dataset):
    blobs = make_dataset(team=alice_team)
    experiment = make_experiment(team=alice_team, user=alice,
                                 dataset={"name": "npz", "dataset_id": blobs.pk},
                                 training={"epochs": 1, "batch_size": 16})
    blobs.delete()
    run = experiment.runs.get()

    assert execute_run.run(run.pk) == Run.Status.FAILED

    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert run.error == "The uploaded dataset has been deleted."
