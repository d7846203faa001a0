"""The home page: what is running, recent experiments and sign-offs (the user's teams
only), and how many runs wait in the broker's queues."""

import re
import time

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from experiments.models import Run, SignOff
from runners.fleet import queue_depths


@pytest.fixture(autouse=True)
def _fresh_cache():
    # The home page remembers an unreachable broker for a few seconds.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def experiment(alice, alice_team, make_experiment):
    return make_experiment(team=alice_team, user=alice, name="digits at home", recipes=[
        {"name": "XLA", "steps": [{"technique": "xla"}]},
    ])


@pytest.fixture
def charlies(charlie, charlie_team, make_experiment):
    return make_experiment(team=charlie_team, user=charlie, name="charlie's secret")


def start(run, *, progress, epochs_done=0):
    Run.objects.filter(pk=run.pk).update(status=Run.Status.RUNNING, progress=progress,
                                         epochs_done=epochs_done, worker="celery@cpu-1",
                                         started_at=timezone.now())


def approve(run, user):
    return SignOff.objects.create(experiment=run.experiment, run=run, approved_by=user,
                                  model_label="seed_mlp on digits",
                                  evidence={"row": {"run_id": run.pk}, "accuracy_budget": 0.01})


def test_it_sends_anonymous_visitors_to_log_in(client):
    response = client.get(reverse("home"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_it_shows_running_runs_with_their_progress(client, alice, experiment, charlies):
    start(experiment.runs.get(name="XLA"), progress=0.4, epochs_done=2)
    start(charlies.runs.get(), progress=0.7)
    client.force_login(alice)

    response = client.get(reverse("home"))

    assert response.status_code == 200
    assert [run.name for run in response.context["running"]] == ["XLA"]
    page = response.content.decode()
    assert re.search(r'<progress value="0\.4\d*" max="1">40%</progress> 40%', page), page
    assert "digits at home / XLA" in page
    assert "epoch 2 · celery@cpu-1" in page
    assert "charlie's secret" not in page


def test_it_says_when_nothing_runs(client, alice, experiment):
    client.force_login(alice)

    page = client.get(reverse("home")).content.decode()

    assert "Nothing is running." in page
    assert "<progress" not in page


def test_it_shows_sign_offs_of_the_users_teams_only(client, alice, charlie, experiment,
                                                    charlies):
    approve(experiment.runs.get(name="XLA"), alice)
    approve(charlies.runs.get(), charlie)
    client.force_login(alice)

    response = client.get(reverse("home"))

    assert [s.approved_by for s in response.context["signoffs"]] == [alice]
    page = response.content.decode()
    assert f"#signoff-run-{experiment.runs.get(name='XLA').pk}\">XLA</a>" in page
    assert "charlie" not in page

    client.force_login(charlie)
    assert [s.approved_by for s in client.get(reverse("home")).context["signoffs"]] == [charlie]


def test_it_shows_the_queue_depths_from_the_broker(client, alice):
    from accelweb.celery import app

    waiting = queue_depths(["gpu"])["gpu"] or 0
    with app.connection_for_write() as conn:
        queue = conn.SimpleQueue("gpu")
        try:
            for index in range(3):
                queue.put({"home_page_test": index})
            client.force_login(alice)
            response = client.get(reverse("home"))
        finally:
            for _ in range(3):
                queue.get(block=True, timeout=5).ack()
            queue.close()

    assert response.context["depths"]["gpu"] == waiting + 3
    assert (f'<span class="queue" data-queue="gpu">gpu <strong>{waiting + 3}</strong></span>'
            in response.content.decode())


def test_it_says_unknown_when_the_broker_is_down(client, alice, monkeypatch):
    from accelweb.celery import app

    connect = app.connection_for_read
    # Nothing listens on port 1: the connection is refused, as with a stopped Redis.
    down = "redis://127.0.0.1:1/0" if app.conf.broker_url.startswith("redis") else None
    if down is None:
        pytest.skip("needs a Redis broker (REDIS_URL) to take down")
    monkeypatch.setattr(app, "connection_for_read", lambda *a, **k: connect(url=down))
    client.force_login(alice)

    started = time.monotonic()
    first = client.get(reverse("home"))
    first_seconds = time.monotonic() - started
    started = time.monotonic()
    second = client.get(reverse("home"))
    second_seconds = time.monotonic() - started

    assert first.status_code == second.status_code == 200
    assert first.context["depths"] == {"cpu": None, "gpu": None}
    assert 'data-queue="cpu">cpu <strong>unknown</strong>' in first.content.decode()
    assert first_seconds < 10
    assert second_seconds < 1  # remembered, not asked again
    assert 'data-queue="gpu">gpu <strong>unknown</strong>' in second.content.decode()


def test_it_draws_the_page_in_a_fixed_number_of_queries(
        client, alice, alice_team, make_experiment, django_assert_max_num_queries):
    client.force_login(alice)
    with django_assert_max_num_queries(6) as empty:
        assert client.get(reverse("home")).status_code == 200

    for index in range(4):
        busy = make_experiment(team=alice_team, user=alice, name=f"busy {index}",
                               recipes=[{"name": "XLA", "steps": [{"technique": "xla"}]}])
        for run in busy.runs.all():
            start(run, progress=0.5)
            approve(run, alice)
    with django_assert_max_num_queries(7) as full:
        response = client.get(reverse("home"))
    assert len(response.context["running"]) == 8

    # Session, user, their teams, experiments, the runs of those counted (none to count on
    # an empty page), running runs, sign-offs: the same whatever the team's total of runs.
    assert len(empty) == 6 and len(full) == 7
