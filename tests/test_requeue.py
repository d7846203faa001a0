"""A queued run always runs: the reconciler sends again a run whose broker message was lost
(runners.fleet.requeue_lost), against the real Redis broker; a run whose message the broker
still holds, or one queued a moment ago, is left alone."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accelweb.celery import app
from experiments.models import Benchmark, Run
from experiments.services import run_send
from runners import fleet


@pytest.fixture
def broker(settings):
    settings.ACCELWEB_REQUEUE_SECONDS = 30
    app.control.purge()
    yield
    app.control.purge()


def queued(experiment, *, name, seconds_ago, position):
    return Run.objects.create(experiment=experiment, name=name, position=position,
                              steps=[{"technique": "xla"}] if position else [],
                              queued_at=timezone.now() - timedelta(seconds=seconds_ago))


@pytest.mark.timeout(60)
def test_it_sends_again_only_a_run_whose_message_the_broker_lost(
        broker, alice, alice_team, tiny_spec):
    from experiments.models import Experiment

    experiment = Experiment.objects.create(team=alice_team, name="lost", created_by=alice,
                                           spec=tiny_spec())
    lost = queued(experiment, name="lost", seconds_ago=120, position=0)
    held = queued(experiment, name="held", seconds_ago=120, position=1)
    fresh = queued(experiment, name="fresh", seconds_ago=1, position=2)
    running = queued(experiment, name="running", seconds_ago=120, position=3)
    Run.objects.filter(pk=running.pk).update(status=Run.Status.RUNNING)
    run_send(held)
    assert fleet.broker_messages() == {("runners.execute_run", held.pk)}

    assert fleet.requeue_lost(reaper="test") == [f"Run {lost.pk}"]

    assert fleet.broker_messages() == {("runners.execute_run", held.pk),
                                       ("runners.execute_run", lost.pk)}
    now = timezone.now()
    for run in (lost, held):  # sent or seen just now: not looked for again for a while
        run.refresh_from_db()
        assert now - run.queued_at < timedelta(seconds=5)
    fresh.refresh_from_db()
    assert now - fresh.queued_at > timedelta(seconds=0.5)  # too young to be looked at
    assert fleet.requeue_lost(reaper="test") == []


@pytest.mark.timeout(60)
def test_it_sends_again_a_lost_benchmark(broker, alice, alice_team, tiny_spec):
    from experiments.models import Experiment

    experiment = Experiment.objects.create(team=alice_team, name="lost", created_by=alice,
                                           spec=tiny_spec())
    benchmark = Benchmark.objects.create(
        experiment=experiment, queued_at=timezone.now() - timedelta(minutes=5))

    assert fleet.requeue_lost(reaper="test") == [f"Benchmark {benchmark.pk}"]
    assert fleet.broker_messages() == {("runners.execute_benchmark", benchmark.pk)}


def test_the_embedded_broker_is_left_alone(settings, alice, alice_team, tiny_spec):
    from experiments.models import Experiment

    settings.REDIS_URL = ""
    experiment = Experiment.objects.create(team=alice_team, name="embedded",
                                           created_by=alice, spec=tiny_spec())
    queued(experiment, name="waiting", seconds_ago=3600, position=0)
    assert fleet.requeue_lost(reaper="test") == []
