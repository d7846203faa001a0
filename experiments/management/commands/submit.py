import argparse
import json
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from experiments.models import Run, Team
from experiments.services import experiment_create, team_for_user


class Command(BaseCommand):
    help = "Create an experiment from a spec file (the format of DESIGN.md), as the form does."

    def add_arguments(self, parser):
        parser.add_argument("spec", help="path to a JSON spec")
        parser.add_argument("--user", required=True, help="username that submits")
        parser.add_argument("--team", help="team name (default: the user's first team)")
        parser.add_argument("--follow", action="store_true",
                            help="print progress until every run has ended; exit 0 only "
                                 "when all succeeded")
        parser.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)

    def handle(self, *args, spec, user, team, follow, poll, **options):
        try:
            raw = json.loads(Path(spec).read_text())
        except OSError as exc:
            raise CommandError(f"Cannot read {spec}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise CommandError(f"{spec} is not valid JSON: {exc}") from None
        try:
            account = get_user_model().objects.get(username=user)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {user!r}.") from None
        try:
            chosen = team_for_user(account, team)
        except Team.DoesNotExist:
            raise CommandError(f"{user} is not a member of a team named {team!r}.") from None
        try:
            experiment = experiment_create(team=chosen, user=account, spec=raw)
        except ValidationError as exc:
            lines = [f"  {path}: {msg}" for path, msgs in exc.message_dict.items() for msg in msgs]
            raise CommandError("The spec is not valid:\n" + "\n".join(lines)) from None

        runs = list(experiment.runs.all())
        self.stdout.write(
            f"Experiment {experiment.pk} “{experiment.name}” in {chosen.name}: "
            f"{len(runs)} runs queued ({', '.join(r.name for r in runs)})."
        )
        self.stdout.write(f"  page: {experiment.get_absolute_url()}")
        if follow:
            self._follow(experiment, poll)

    def _follow(self, experiment, poll):
        seen = {}
        while True:
            runs = list(Run.objects.filter(experiment=experiment))
            for run in runs:
                key = (run.status, run.epochs_done)
                if seen.get(run.pk) != key:
                    seen[run.pk] = key
                    epochs = experiment.spec["training"]["epochs"]
                    self.stdout.write(
                        f"  {run.name:<28} {run.status:<10} epoch {run.epochs_done}/{epochs}"
                        + (f"  {run.error}" if run.error else "")
                    )
            if all(run.has_ended for run in runs):
                break
            time.sleep(poll)
        failed = [run for run in runs if run.status != Run.Status.SUCCEEDED]
        for run in runs:
            result = run.result or {}
            self.stdout.write(
                f"  {run.name:<28} {run.status:<10} accuracy {result.get('test_accuracy')}"
                f"  latency p50 {result.get('latency_ms_p50')} ms  size {result.get('model_bytes')}"
            )
        if failed:
            raise CommandError(f"{len(failed)} of {len(runs)} runs did not succeed.")
        self.stdout.write(self.style.SUCCESS(f"All {len(runs)} runs succeeded."))

