"""The whole path with real parts: Daphne serving the ASGI app, a real `celery worker`
process, PostgreSQL and Redis on loopback, and headless Chromium driven by Playwright.

Also `manage.py submit --follow` of a two-recipe spec, against these production
transports and against the embedded default (`manage.py up`: SQLite, no Redis).
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

# transaction=True: what a test writes is committed, so the server processes see it.
pytestmark = [pytest.mark.fullstack, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "e2e-pass-8731"
TWO_RECIPES = {
    "name": "digits, seed MLP: XLA and int8",
    "model": {"arch": "seed_mlp", "params": {}},
    "dataset": {"name": "digits"},
    "training": {"epochs": 2, "batch_size": 64, "optimizer": "adam", "learning_rate": 0.001,
                 "seed": 0},
    "hardware": "cpu",
    "recipes": [
        {"name": "XLA", "steps": [{"technique": "xla"}]},
        {"name": "int8", "steps": [{"technique": "ptq", "mode": "dynamic_int8"}]},
    ],
    "benchmark": {"trials": 3, "latency_samples": 30, "warmup": 5},
}


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(condition, *, timeout, what, logs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    tails = "\n".join(f"--- {log}:\n{Path(log).read_text()[-3000:]}" for log in logs)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tails}")


def _healthy(url):
    try:
        with urllib.request.urlopen(url + "healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class Stack:
    """Processes started for a test, stopped (and their logs kept) at the end."""

    def __init__(self, tmp: Path, env: dict):
        self.tmp, self.env, self.procs, self.logs = tmp, env, [], []

    def manage(self, *args, timeout=120, check=True):
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env,
            capture_output=True, text=True, timeout=timeout, check=check,
        )

    def start(self, name, argv):
        log = self.tmp / f"{name}.log"
        self.logs.append(log)
        self.procs.append(subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
        ))
        return log

    def stop(self):
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _production_env(tmp):
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql" or not settings.REDIS_URL:
        pytest.skip("the full-stack test needs DATABASE_URL (PostgreSQL) and REDIS_URL; "
                    "scripts/test sets both")
    # The test database pytest-django created, so the processes see what the test writes.
    database_url = (f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
                    f"{db['PORT'] or 5432}/{db['NAME']}")
    return {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": settings.REDIS_URL,
            "ACCELWEB_DATA_DIR": str(tmp), "PYTHONUNBUFFERED": "1", "DEBUG": "0"}


@pytest.fixture(scope="module")
def production_stack(django_db_setup, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stack")
    stack = Stack(tmp, _production_env(tmp))
    port = _free_port()
    stack.url = f"http://127.0.0.1:{port}/"
    stack.manage("collectstatic", "--noinput", "-v0")
    stack.manage("shell", "-c", "from accelweb.celery import app; app.control.purge()")
    worker_log = stack.start("celery", [
        sys.executable, "-m", "celery", "-A", "accelweb", "worker", "-Q", "cpu,gpu",
        "--concurrency", "1", "--loglevel", "INFO", "-n", f"e2e-{port}@%h",
    ])
    web_log = stack.start("daphne", [
        sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
        "accelweb.asgi:application",
    ])
    try:
        _wait_for(lambda: _healthy(stack.url), timeout=60, what="daphne", logs=[web_log])
        _wait_for(lambda: "ready." in worker_log.read_text(), timeout=60,
                  what="the celery worker", logs=[worker_log])
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def alice(transactional_db):
    from django.contrib.auth import get_user_model

    from experiments.models import Membership, Team

    user = get_user_model().objects.create_user("e2e-alice", password=PASSWORD)
    team = Team.objects.create(name="E2E Alice's team")
    Membership.objects.create(team=team, user=user, role=Membership.Role.ADMIN)
    return user


def _browser(playwright):
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update",
              "--disable-sync"],
    )


def test_it_runs_an_experiment_from_the_browser_and_streams_its_curves(production_stack, alice):
    from playwright.sync_api import expect, sync_playwright

    stack = production_stack
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = _browser(playwright)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        try:
            page.goto(stack.url + "experiments/new/")
            assert "/login/" in page.url
            page.fill("#id_username", "e2e-alice")
            page.fill("#id_password", PASSWORD)
            page.click("main button[type=submit]")
            page.wait_for_selector("#experiment-form")

            page.fill("#id_name", "synthetic, seed CNN: XLA and int8")
            page.select_option("#id_arch", "seed_cnn")
            page.select_option("#id_dataset", "synthetic")
            page.fill("#id_synthetic_samples", "1500")
            page.fill("#id_epochs", "6")
            page.fill("#id_batch_size", "32")
            page.click("[data-preset=xla]")
            page.click("[data-preset=ptq-dynamic_int8]")
            page.click("#experiment-form button[type=submit]")
            page.wait_for_url("**/experiments/*/")
            assert page.locator("tr[data-run-id]").count() == 3

            # Epoch points arrive over the websocket while a run is still running.
            page.wait_for_function(
                """() => {
                  const aw = window.accelweb;
                  if (!aw) return false;
                  return aw.state.runs.some((run) => run.status === "running" &&
                    aw.charts.loss.data.datasets.some(
                      (d) => d.runId === run.id && d.label.endsWith("(train)") &&
                             d.data.length >= 2));
                }""",
                timeout=240_000,
            )
            page.screenshot(path=str(ARTIFACTS / "fullstack-live.png"), full_page=True)

            page.wait_for_function(
                """() => window.accelweb.state.runs.every((run) =>
                     ["succeeded", "failed", "cancelled"].includes(run.status))""",
                timeout=420_000,
            )
            statuses = page.locator("tr[data-run-id] .run-status").all_inner_texts()
            assert statuses == ["Succeeded"] * 3, (statuses, _logs(stack))
            page.wait_for_function(
                "() => window.accelweb.speedupChart.data.labels.length >= 2", timeout=30_000
            )
            labels = page.evaluate("() => window.accelweb.speedupChart.data.labels")
            assert "XLA compilation" in labels
            assert any("TFLite float32" in label for label in labels)
            # The tables are re-rendered by the server when a run ends: wait for the last.
            expect(page.locator("#results-table tbody tr")).to_have_count(4)  # + reference
            expect(page.locator("#comparison-table tbody tr")).to_have_count(4)
            page.screenshot(path=str(ARTIFACTS / "fullstack.png"), full_page=True)

            # A reload rebuilds everything from the database.
            page.reload()
            page.wait_for_function("() => window.accelweb.charts.loss.data.datasets.length == 6")
            points = page.evaluate(
                "() => window.accelweb.charts.loss.data.datasets.map((d) => d.data.length)"
            )
            assert points == [6] * 6
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "fullstack-failure.png"), full_page=True)
            (ARTIFACTS / "fullstack-failure.html").write_text(page.content())
            raise
        finally:
            browser.close()


def _logs(stack):
    return "\n".join(f"--- {log}:\n{log.read_text()[-2000:]}" for log in stack.logs)


def _submit_follow(stack, tmp_path, user):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(TWO_RECIPES))
    done = stack.manage("submit", str(spec), "--user", user, "--follow", timeout=420,
                        check=False)
    return done


def test_it_follows_a_cli_submission_on_redis_and_postgresql(production_stack, alice, tmp_path):
    done = _submit_follow(production_stack, tmp_path, "e2e-alice")
    assert done.returncode == 0, done.stdout + done.stderr + _logs(production_stack)
    assert "All 3 runs succeeded." in done.stdout


def test_it_follows_a_cli_submission_on_the_embedded_default(tmp_path):
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update(ACCELWEB_DATA_DIR=str(tmp_path / "data"), ACCELWEB_DEMO_PASSWORD=PASSWORD,
               PYTHONUNBUFFERED="1")
    stack = Stack(tmp_path, env)
    port = _free_port()
    log = stack.start("up", [sys.executable, "manage.py", "up", "--port", str(port)])
    try:
        _wait_for(lambda: _healthy(f"http://127.0.0.1:{port}/"), timeout=90,
                  what="manage.py up", logs=[log])
        assert f"demo / {PASSWORD}" in log.read_text()
        done = _submit_follow(stack, tmp_path, "demo")
        assert done.returncode == 0, done.stdout + done.stderr + _logs(stack)
        assert "All 3 runs succeeded." in done.stdout
    finally:
        stack.stop()
