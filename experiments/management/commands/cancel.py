from django.core.management.base import BaseCommand, CommandError

from experiments.models import Run
from experiments.services import run_cancel


class Command(BaseCommand):
    help = ("Cancel runs: a queued run never starts; a running run stops within seconds "
            "and keeps the metrics it has.")

    def add_arguments(self, parser):
        parser.add_argument("run_ids", nargs="+", type=int, metavar="RUN_ID")

    def handle(self, *args, run_ids, **options):
        failed = 0
        for run_id in run_ids:
            run = Run.objects.select_related("experiment").filter(pk=run_id).first()
            if run is None:
                self.stderr.write(f"run {run_id}: no such run")
                failed += 1
            elif run_cancel(run, user=None):  # an operator, above the teams
                state = "cancelled" if run.status == Run.Status.CANCELLED else "stopping"
                self.stdout.write(f"run {run_id} ({run.name}): {state}")
            else:
                self.stdout.write(f"run {run_id} ({run.name}): already {run.status}")
        if failed:
            raise CommandError(f"{failed} run id(s) not found")
