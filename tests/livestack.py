"""Real processes for the full-stack tests: uvicorn, Celery workers, `manage.py` commands,
pointed at the test database that pytest-django created and at real Redis."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, *, timeout, what, logs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    tails = "\n".join(f"--- {log}:\n{Path(log).read_text()[-3000:]}" for log in logs)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tails}")


def healthy(url):
    try:
        with urllib.request.urlopen(url + "healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def production_env(tmp, **extra):
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql" or not settings.REDIS_URL:
        pytest.skip("full-stack tests need DATABASE_URL (PostgreSQL) and REDIS_URL; "
                    "scripts/test sets both")
    # The test database pytest-django created, so the processes see what the test writes.
    database_url = (f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
                    f"{db['PORT'] or 5432}/{db['NAME']}")
    return {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": settings.REDIS_URL,
            "ACCELWEB_DATA_DIR": str(tmp), "PYTHONUNBUFFERED": "1", "DEBUG": "0",
            # The test process and the workers must agree on where artifacts live.
            "ACCELWEB_MEDIA_ROOT": str(settings.MEDIA_ROOT), **extra}


def embedded_env(data: Path, **extra):
    """The embedded default's environment: SQLite in `data`, no Redis (the test's own
    DATABASE_URL and REDIS_URL dropped)."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "REDIS_URL")}
    return {**env, "ACCELWEB_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1", **extra}


@contextlib.contextmanager
def web_stack(tmp: Path):
    """The dashboard alone under uvicorn (no worker), on the test database and Redis."""
    stack = Stack(tmp, production_env(tmp))
    stack.manage("collectstatic", "--noinput", "-v0")
    try:
        stack.start_web()
        yield stack
    finally:
        stack.stop()


class Stack:
    """Processes started for a test, stopped (and their logs kept) at the end."""

    def __init__(self, tmp: Path, env: dict):
        self.tmp, self.env, self.procs, self.logs = tmp, env, {}, []

    def manage(self, *args, timeout=120, check=True):
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env,
            capture_output=True, text=True, timeout=timeout, check=check,
        )

    def start(self, name, argv):
        log = self.tmp / f"{name}.log"
        self.logs.append(log)
        # A session of its own, so a test can kill the whole process tree at once.
        self.procs[name] = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return log

    def start_worker(self, name, queues="cpu,gpu"):
        log = self.start(name, [
            sys.executable, "-m", "celery", "-A", "accelweb", "worker", "-Q", queues,
            "--concurrency", "1", "--loglevel", "INFO", "-n", f"{name}@%h",
        ])
        wait_for(lambda: "ready." in log.read_text(), timeout=90, what=f"worker {name}",
                 logs=[log])
        return f"{name}@{socket.gethostname()}"

    def start_web(self):
        """The dashboard under uvicorn on a free port, as production serves it; sets url,
        port and pid once /healthz answers."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        log = self.start("uvicorn", [
            sys.executable, "-m", "uvicorn", "accelweb.asgi:application", "--host",
            "127.0.0.1", "--port", str(self.port),
        ])
        wait_for(lambda: healthy(self.url), timeout=60, what="uvicorn", logs=[log])
        self.pid = self.procs["uvicorn"].pid
        return log

    def start_up(self):
        """`manage.py up` on a free port (the environment says which mode); sets url and
        port once it answers."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        log = self.start("up", [sys.executable, "manage.py", "up", "--port", str(self.port)])
        wait_for(lambda: healthy(self.url), timeout=90, what="manage.py up", logs=[log])
        return log

    def kill(self, name):
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait(timeout=10)

    def stop(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    def log_tails(self):
        return "\n".join(f"--- {log}:\n{log.read_text()[-2500:]}" for log in self.logs)
