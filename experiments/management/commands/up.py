"""Serve the dashboard and a runner in one process: the embedded default.

Same task and consumer code as production; only the transports differ (see settings).
uvicorn owns the main thread and its signals; the Celery worker runs in a thread beside it.
"""

import os
import secrets
import socket
import threading

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Migrate, create the demo login, then serve the dashboard with a runner."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-worker", action="store_true",
                            help="Serve only; runs wait for a worker started elsewhere.")

    def handle(self, *args, host, port, no_worker, **options):
        from experiments.services import demo_setup

        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        password = self._demo_password()
        demo_setup(password=password)

        worker = None if no_worker else self._start_worker()
        url = f"http://{host}:{port}/"
        mode = "embedded (SQLite, no Redis)" if settings.EMBEDDED else "production transports"
        self.stdout.write(self.style.SUCCESS(f"AccelWeb is serving {url}  [{mode}]"))
        self.stdout.write(f"  log in as: demo / {password}")
        if worker:
            self.stdout.write(f"  runner: {worker.hostname} on queues cpu, gpu")
        self.stdout.write("  stop with Ctrl-C")

        import uvicorn
        from channels.routing import get_default_application

        try:
            # The ASGI server of production too (README): it hands request bodies over as
            # they arrive, so accelweb.bodylimit refuses an oversized one before reading it.
            uvicorn.Server(uvicorn.Config(
                get_default_application(), host=host, port=port, lifespan="off",
                timeout_graceful_shutdown=5,
            )).run()
        finally:
            if worker:
                worker.stop(in_sighandler=False)
                self._fail_interrupted_runs(worker.hostname)

    def _fail_interrupted_runs(self, hostname):
        # The runner thread dies with this process; its run must not stay "running".
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
        threading.Thread(target=worker.start, name="celery-worker", daemon=True).start()
        return worker
