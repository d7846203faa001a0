"""Serve the dashboard and a runner in one process: the embedded default.

Same task and consumer code as production; only the transports differ (see settings).
uvicorn owns the main thread and its signals; the Celery worker runs in a thread beside it.

SIGTERM or SIGINT (Ctrl-C) stops it within a few seconds: uvicorn closes its connections,
the run in progress is marked failed, its engine process group gets SIGTERM and then
SIGKILL, and the worker thread stops. The process then ends by that same signal, as
uvicorn alone would (a shell reports 143 for SIGTERM, 130 for Ctrl-C).
"""

import asyncio
import os
import secrets
import signal
import socket
import sys
import threading
import time

import psutil
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# After uvicorn has stopped: the time the worker thread has to stop, and the part of it an
# engine has, after SIGTERM, before its process group is killed. The worker's loop notices
# within one wait for the broker (up to 2 s for the embedded one, 1 s for Redis).
WORKER_STOP_SECONDS = 4.0
ENGINE_GRACE_SECONDS = 1.5


class Command(BaseCommand):
    help = "Migrate, create the demo login, then serve the dashboard with a runner."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-worker", action="store_true",
                            help="Serve only; runs wait for a worker started elsewhere.")

    def handle(self, *args, host, port, no_worker, **options):
        import uvicorn
        from channels.routing import get_default_application

        from experiments.services import demo_setup

        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        password = self._demo_password()
        demo_setup(password=password)

        # The ASGI server of production too (README): it hands request bodies over as they
        # arrive, so accelweb.bodylimit refuses an oversized one before reading it.
        server = uvicorn.Server(uvicorn.Config(
            get_default_application(), host=host, port=port, lifespan="off",
            timeout_graceful_shutdown=5,
        ))
        received = []

        def on_signal(signum, frame):
            received.append(signum)
            server.should_exit = True

        # Ours before the worker starts; uvicorn puts its own in place while it serves and
        # calls this one again with what it caught when it stops, instead of dying by it
        # before the worker thread and the engine are stopped.
        for signum in STOP_SIGNALS:
            signal.signal(signum, on_signal)

        worker = thread = None
        if not no_worker:
            worker, thread = self._start_worker()
        url = f"http://{host}:{port}/"
        mode = "embedded (SQLite, no Redis)" if settings.EMBEDDED else "production transports"
        self.stdout.write(self.style.SUCCESS(f"AccelWeb is serving {url}  [{mode}]"))
        self.stdout.write(f"  log in as: demo / {password}")
        if worker:
            self.stdout.write(f"  runner: {worker.hostname} on queues cpu, gpu")
        self.stdout.write("  stop with Ctrl-C")

        try:
            # As server.run() does, with the serving loop handed to the broadcasts of the
            # worker thread first (services.broadcast_on) when the channel layer is this
            # process's own.
            with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
                runner.run(_serve(server))
        finally:
            if worker:
                self._stop_worker(worker, thread)
        if received:
            self.stdout.write("Stopped.")
            _end_by(received[0])

    def _stop_worker(self, worker, thread):
        """Stop the worker thread within WORKER_STOP_SECONDS, failing the run it executes
        and ending that run's engine, then the worker."""
        from celery.bootsteps import CLOSE

        deadline = time.monotonic() + WORKER_STOP_SECONDS
        consumer = worker.consumer
        # Not worker.stop() while the thread runs: it would wait for the task, then read a
        # broker connection the worker thread is reading too (a Redis BRPOP), and hang.
        # Its loop runs while the consumer's blueprint does: closed, the loop returns when
        # its task (or its wait for a message) does, and takes no other message.
        consumer.blueprint.state = CLOSE
        if consumer.task_consumer is not None:
            # One the broker delivers meanwhile stays unacknowledged: closing the
            # connection gives it back, still queued.
            consumer.task_consumer.on_message = _leave_queued
        while True:
            # Failed before its engine is stopped: the task would otherwise record the
            # engine's answer to SIGTERM, "cancelled", as if someone had cancelled the run.
            # Again on each turn: a task that had just taken its message claims its run
            # and starts its engine after the first.
            self._fail_interrupted_runs(worker.hostname)
            _end_children(grace=min(ENGINE_GRACE_SECONDS, deadline - time.monotonic()))
            thread.join(timeout=0.1)
            if not thread.is_alive() or time.monotonic() >= deadline:
                break
        if thread.is_alive():
            self.stderr.write(f"The worker thread did not stop within {WORKER_STOP_SECONDS} "
                              f"s; it ends with the process.")
            self._fail_interrupted_runs(worker.hostname)
            _end_children(grace=0)
        else:
            # The rest of a warm shutdown, in this thread now that no other uses the
            # connection: the heartbeat stops, unacknowledged messages go back.
            worker.stop(in_sighandler=False)

    def _fail_interrupted_runs(self, hostname):
        # The worker ends with this process: a run it was executing must not stay "running".
        from experiments.models import Benchmark, Run
        from experiments.services import benchmark_changed, run_status_changed

        for run in Run.objects.filter(status=Run.Status.RUNNING, worker=hostname):
            if run.mark_finished(Run.Status.FAILED,
                                 error="The server stopped while this run was running."):
                run_status_changed(run)
        for benchmark in Benchmark.objects.filter(status=Run.Status.RUNNING, worker=hostname):
            if benchmark.mark_finished(Run.Status.FAILED, error="The server stopped while "
                                       "this benchmark was running: re-benchmark."):
                benchmark_changed(benchmark, ended=True)

    def _demo_password(self):
        if settings.ACCELWEB_DEMO_PASSWORD:
            return settings.ACCELWEB_DEMO_PASSWORD
        # Generated once per data folder and kept, so a restart does not log anyone out.
        path = settings.DATA_DIR / "demo_password"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(12))
            os.chmod(path, 0o600)
        return path.read_text().strip()

    def _start_worker(self):
        from celery.app.trace import setup_worker_optimizations
        from celery.worker import WorkController

        from accelweb.celery import app

        # WorkController rather than `celery worker`: the latter installs signal handlers,
        # which only the main thread may do. A solo pool runs one run at a time.
        hostname = f"embedded@{socket.gethostname()}"
        # What `celery worker` does on start: without it task.request.hostname is the bare
        # host name, not this worker's node name, and Run.worker would not name it.
        setup_worker_optimizations(app, hostname)
        worker = WorkController(
            app=app, hostname=hostname, pool_cls="solo",
            concurrency=1, queues=["cpu", "gpu"], without_mingle=True, without_gossip=True,
            loglevel="WARNING",
        )
        thread = threading.Thread(target=worker.start, name="celery-worker", daemon=True)
        thread.start()
        return worker, thread


async def _serve(server):
    if settings.EMBEDDED:
        from experiments.services import broadcast_on

        broadcast_on(asyncio.get_running_loop())
    await server.serve()


def _leave_queued(message):
    pass


def _end_children(*, grace):
    """SIGTERM every child process (an engine, a model check) and the process group it
    leads, then SIGKILL the groups after `grace` seconds or once the children are gone.
    Only signals: the worker thread that started a child reaps it."""
    groups = {}
    for child in psutil.Process().children():
        try:
            groups[child] = os.getpgid(child.pid)
        except ProcessLookupError:
            continue
    for child, group in groups.items():
        _signal(child.pid, group, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(child) for child in groups):
        time.sleep(0.05)
    # Also when the child is gone: what it started in its group must go with it.
    for child, group in groups.items():
        _signal(child.pid, group, signal.SIGKILL)


def _signal(pid, group, signum):
    try:
        # The engine leads a session of its own (runners.process); a child in ours is
        # signalled alone, or this process would signal itself.
        if group == pid:
            os.killpg(group, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _alive(child):
    try:
        return child.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _end_by(signum):
    """End this process by the signal that stopped it, as uvicorn would have."""
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)
