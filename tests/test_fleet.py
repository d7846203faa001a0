"""The runner fleet with real parts: `celery worker` processes, PostgreSQL and Redis.

Workers beat every second here and a run silent for 8 s counts as dead, so crash
recovery is observed in seconds rather than the default minute.
"""

import subprocess
import time

import psutil
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.urls import reverse
from livestack import Stack, production_env, wait_for

from experiments.models import Benchmark, Membership, Run, RunEvent, Team, Worker
from experiments.services import experiment_create, run_cancel
from runners.process import engine_records

pytestmark = [pytest.mark.fullstack, pytest.mark.django_db(transaction=True)]
HEARTBEAT_TIMEOUT = 8


@pytest.fixture
def stack(transactional_db, tmp_path, settings):
    settings.ACCELWEB_HEARTBEAT_TIMEOUT = HEARTBEAT_TIMEOUT
    stack = Stack(tmp_path, production_env(
        tmp_path, ACCELWEB_HEARTBEAT_SECONDS="1",
        ACCELWEB_HEARTBEAT_TIMEOUT=str(HEARTBEAT_TIMEOUT), ACCELWEB_REQUEUE_SECONDS="2"))
    stack.manage("shell", "-c", "from accelweb.celery import app; app.control.purge()")
    yield stack
    stack.stop()


@pytest.fixture
def dana(transactional_db):
    user = get_user_model().objects.create_user("dana")
    team = Team.objects.create(name="Dana's team")
    Membership.objects.create(team=team, user=user, role=Membership.Role.ADMIN)
    return user


def _experiment(user, *, recipes=0, epochs=1, slow=False):
    spec = {
        "name": "fleet",
        "model": {"arch": "seed_cnn" if slow else "seed_mlp", "params": {}},
        "dataset": ({"name": "synthetic", "samples": 800, "shape": [32, 32, 3], "classes": 4}
                    if slow else {"name": "digits"}),
        "training": {"epochs": epochs, "batch_size": 32, "optimizer": "adam",
                     "learning_rate": 0.001, "seed": 0},
        "recipes": [{"name": f"threads {i}", "steps": [
            {"technique": "op_parallelism", "intra_op_threads": 1, "inter_op_threads": 1}]}
            for i in range(recipes)],
        "benchmark": {"trials": 2, "latency_samples": 5, "warmup": 1, "executions": 2,
                      "rounds": 2, "calls": 5},
    }
    return experiment_create(team=user.teams.get(), user=user, spec=spec)


def _runs(experiment):
    return list(Run.objects.filter(experiment=experiment).order_by("position"))


def _ended(experiment):
    return all(run.has_ended for run in _runs(experiment))


def _starts(run):
    return RunEvent.objects.filter(run=run, kind="start").count()


def test_it_drains_twenty_runs_on_two_workers_exactly_once(stack, dana):
    first = stack.start_worker("fleet-a")
    second = stack.start_worker("fleet-b")

    experiment = _experiment(dana, recipes=19)
    wait_for(lambda: _ended(experiment), timeout=600, what="20 runs", logs=stack.logs)

    runs = _runs(experiment)
    assert len(runs) == 20
    assert {run.status for run in runs} == {"succeeded"}, stack.log_tails()
    assert [_starts(run) for run in runs] == [1] * 20  # every run executed once
    assert {run.worker for run in runs} == {first, second}
    assert all(run.device.startswith("CPU") for run in runs)
    # Then one benchmark, on one worker, measures all twenty models side by side.
    wait_for(lambda: Benchmark.objects.filter(experiment=experiment, status="succeeded")
             .exists(), timeout=300, what="the benchmark", logs=stack.logs)
    [benchmark] = Benchmark.objects.filter(experiment=experiment)
    assert benchmark.worker in (first, second)
    assert set(benchmark.runs) == {str(run.pk) for run in runs}
    assert len(benchmark.result["pairs"]) == 20  # the A/A control and 19 recipes

    # The runners page lists both, with fresh heartbeats.
    client = Client()
    client.force_login(dana)
    page = client.get(reverse("runner_list")).content.decode()
    assert first in page and second in page
    for worker in Worker.objects.filter(name__in=[first, second]):
        assert worker.is_alive(timeout=5), worker.heartbeat_at
        assert worker.queues == ["cpu", "gpu"]
        assert worker.devices["cpu_cores"] >= 1


def test_it_fails_the_run_of_a_killed_worker_and_loses_nothing_else(stack, dana):
    names = {stack.start_worker("doomed"): "doomed", stack.start_worker("survivor"): "survivor"}
    experiment = _experiment(dana, recipes=2, epochs=8, slow=True)

    def victim():
        return next((run for run in _runs(experiment)
                     if run.status == "running" and run.epochs_done >= 1
                     and names.get(run.worker) == "doomed"), None)

    wait_for(lambda: victim() is not None, timeout=240, what="a run on the doomed worker",
             logs=stack.logs)
    run = victim()
    [engine] = [pid for name, pid in _engines(stack).items() if name.startswith("doomed")]
    stack.kill("doomed")  # kill -9, the worker and its pool at once
    killed_at = time.monotonic()
    # Its engine, in a session of its own, was out of the kill's reach: its lifeline
    # ended it.
    wait_for(lambda: not _alive(engine), timeout=2, what="the killed worker's engine to end")

    wait_for(lambda: Run.objects.get(pk=run.pk).status == "failed",
             timeout=HEARTBEAT_TIMEOUT + 30, what="the reaper", logs=stack.logs)
    reaped_after = time.monotonic() - killed_at
    run.refresh_from_db()
    assert "stopped sending heartbeats" in run.error
    assert reaped_after < HEARTBEAT_TIMEOUT + 15
    assert RunEvent.objects.filter(run=run, kind="epoch").count() >= 1  # its metrics kept

    wait_for(lambda: _ended(experiment), timeout=400, what="the other runs", logs=stack.logs)
    others = [r for r in _runs(experiment) if r.pk != run.pk]
    assert [r.status for r in others] == ["succeeded", "succeeded"], stack.log_tails()
    assert all(names[r.worker] == "survivor" for r in others if r.started_at > run.started_at)


def test_it_cancels_running_and_queued_runs(stack, dana):
    stack.start_worker("canceller")
    experiment = _experiment(dana, recipes=1, epochs=40, slow=True)
    running, queued = _runs(experiment)

    assert run_cancel(queued, user=dana)
    queued.refresh_from_db()
    assert queued.status == "cancelled"

    wait_for(lambda: Run.objects.get(pk=running.pk).epochs_done >= 2, timeout=240,
             what="two epochs", logs=stack.logs)
    asked_at = time.monotonic()
    assert run_cancel(Run.objects.get(pk=running.pk), user=dana)
    wait_for(lambda: Run.objects.get(pk=running.pk).status == "cancelled", timeout=30,
             what="the cancel", logs=stack.logs)
    took = time.monotonic() - asked_at

    running.refresh_from_db()
    assert took < 5, f"cancelling took {took:.1f} s"
    assert running.epochs_done >= 2
    assert RunEvent.objects.filter(run=running, kind="epoch").count() >= 2  # kept
    # The queued one was delivered to the worker after that and never started.
    wait_for(lambda: "skipped" in stack.logs[0].read_text(), timeout=30,
             what="the worker to skip the cancelled run", logs=stack.logs)
    queued.refresh_from_db()
    assert queued.status == "cancelled"
    assert _starts(queued) == 0


def _engines(stack):
    """The live engine of each worker slot of the stack, by its record (worker/slot)."""
    found = {}
    for worker in (stack.tmp / "engines").glob("*"):
        for name, pid in engine_records(worker).items():
            found[f"{worker.name}/{name}"] = pid
    return found


def _alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _redis_restart(down_for=1.0):
    def cli(*args):
        return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", *args],
                              capture_output=True, text=True, timeout=10)

    folder = cli("config", "get", "dir").stdout.split()[-1]
    logfile = cli("config", "get", "logfile").stdout.split()
    cli("shutdown", "nosave")
    time.sleep(down_for)
    command = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1",
               "--port", "6379", "--save", "", "--appendonly", "no", "--dir", folder]
    if len(logfile) > 1:
        command += ["--logfile", logfile[-1]]
    subprocess.run(command, check=True, timeout=10)
    wait_for(lambda: cli("ping").stdout.strip() == "PONG", timeout=20, what="redis")


def test_it_completes_both_runs_across_a_redis_restart_without_persistence(stack, dana):
    stack.start_worker("steady")
    stack.manage("collectstatic", "--noinput", "-v0")
    stack.start_web()
    session = _session(dana)
    experiment = _experiment(dana, recipes=1, epochs=20, slow=True)
    running, waiting = _runs(experiment)

    # Down for 5 s, back empty: the queued run's message is gone with it, and only the
    # reconciler (ACCELWEB_REQUEUE_SECONDS) can send it again. The open page reconnects
    # by itself, whole again (a fresh snapshot) within 3 s of Redis answering.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=["--no-sandbox"])
        try:
            context = browser.new_context()
            context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session,
                                  "domain": "127.0.0.1", "path": "/"}])
            page = context.new_page()
            page.goto(f"{stack.url}experiments/{experiment.pk}/")
            # The first run trains (its first epoch drawn), the second waits in the queue.
            page.wait_for_function(f"""() => ({LIVE})() &&
              window.accelweb.state.runs[0].epochs_done >= 1""", timeout=240_000)
            assert page.evaluate("() => window.accelweb.state.runs.map((r) => r.status)") \
                == ["running", "queued"]
            page.evaluate("() => { window.accelweb.state.beforeRestart = true; }")
            _redis_restart(down_for=5)
            back = time.monotonic()
            page.wait_for_function(f"() => ({LIVE})() && !window.accelweb.state.beforeRestart",
                                   timeout=3_000)
            whole = time.monotonic() - back
        finally:
            browser.close()
    print(f"page whole again {whole:.2f} s after Redis answered")

    wait_for(lambda: _ended(experiment), timeout=400, what="both runs", logs=stack.logs)
    for run in (running, waiting):
        run.refresh_from_db()
        assert run.status == "succeeded", (run.error, stack.log_tails())
        epochs = RunEvent.objects.filter(run=run, kind="epoch").order_by("seq")
        assert [event.data["epoch"] for event in epochs] == list(range(1, 21))
        assert _starts(run) == 1
    assert f"Run {waiting.pk} was queued with no message" in stack.logs[0].read_text()


LIVE = "() => document.getElementById('live-state').textContent === 'live'"


def _session(user):
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def _terminate_other_connections():
    """pg_terminate_backend of every connection to the test database but this one: the
    worker's, its heartbeat's and its task's."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                       "datname = current_database() AND pid <> pg_backend_pid()")
        return sum(1 for (done,) in cursor.fetchall() if done)


def test_a_database_blip_mid_run_loses_no_epoch_and_leaves_no_engine(stack, dana):
    stack.start_worker("blip")
    experiment = _experiment(dana, epochs=10, slow=True)
    [run] = _runs(experiment)
    wait_for(lambda: Run.objects.get(pk=run.pk).epochs_done >= 2, timeout=240,
             what="two epochs", logs=stack.logs)
    engines = _engines(stack)
    assert len(engines) == 1

    assert _terminate_other_connections() >= 1

    wait_for(lambda: _ended(experiment), timeout=300, what="the run", logs=stack.logs)
    run.refresh_from_db()
    epochs = RunEvent.objects.filter(run=run, kind="epoch").order_by("seq")
    if run.status == "failed":  # allowed only with the database as the reason
        assert run.error.startswith("The database connection was lost while"), run.error
    else:
        assert run.status == "succeeded", (run.error, stack.log_tails())
        assert [event.data["epoch"] for event in epochs] == list(range(1, 11))
    # The run's engine is gone (the benchmark stage's may have started since).
    assert not any(_alive(pid) for pid in engines.values())
