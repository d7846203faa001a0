import argparse
import json
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from experiments.access import Denied
from experiments.comparison import MINUS, points
from experiments.models import Benchmark, Run, Team
from experiments.selectors import experiment_comparison
from experiments.services import benchmark_runs, experiment_create, team_for_user

# After the last run ends, how long to wait for its benchmark to be queued before saying
# that none came (a runner that died between the two, say).
BENCHMARK_START_SECONDS = 60


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
        except Denied as exc:
            raise CommandError(f"{user} cannot submit to {chosen.name}: {exc}") from None
        except ValidationError as exc:
            lines = [f"  {path}: {msg}" for path, msgs in exc.message_dict.items() for msg in msgs]
            raise CommandError("The spec is not valid:\n" + "\n".join(lines)) from None

        runs = list(experiment.runs.defer("curves"))
        self.stdout.write(
            f"Experiment {experiment.pk} “{experiment.name}” in {chosen.name}: "
            f"{len(runs)} runs queued ({', '.join(r.label for r in runs)})."
        )
        self.stdout.write(f"  page: {experiment.get_absolute_url()}")
        if follow:
            self._follow(experiment, poll)

    def _follow(self, experiment, poll):
        epochs = experiment.spec["training"]["epochs"]
        # A terminal gets a bar per run, redrawn in place; a pipe or a CI log gets one
        # plain line per change, since redrawn bars would fill it with carriage returns.
        progress = (_Bars(self.stdout, epochs) if self.stdout.isatty()
                    else _Lines(self.stdout, epochs))
        try:
            while True:
                runs = list(Run.objects.filter(experiment=experiment))
                progress.update(runs)
                if all(run.has_ended for run in runs):
                    break
                time.sleep(poll)
        finally:
            progress.close()
        self._wait_for_benchmark(experiment, runs, poll)
        failed = [run for run in runs if run.status != Run.Status.SUCCEEDED]
        for run in runs:
            result = run.result or {}
            self.stdout.write(
                f"  {run.label:<28} {run.status:<10} accuracy {result.get('test_accuracy')}"
                f"  latency p50 {result.get('latency_ms_p50')} ms  size {result.get('model_bytes')}"
            )
        self._speedups(runs)
        if failed:
            raise CommandError(f"{len(failed)} of {len(runs)} runs did not succeed.")
        self.stdout.write(self.style.SUCCESS(f"All {len(runs)} runs succeeded."))

    def _wait_for_benchmark(self, experiment, runs, poll):
        """The speedups come from the benchmark stage, which starts when the runs end."""
        measured = benchmark_runs(runs)
        baseline = next((run for run in runs if run.is_baseline and not run.replicate), None)
        if baseline is None or baseline.status != Run.Status.SUCCEEDED:
            return
        said, deadline = None, time.monotonic() + BENCHMARK_START_SECONDS
        while True:
            latest = Benchmark.objects.filter(experiment=experiment).defer("raw").first()
            mine = latest is not None and latest.runs == measured
            if mine:
                stage = latest.stage
                if stage != said:
                    self.stdout.write(f"  {stage}" + (f": {latest.error}" if latest.error
                                                      else ""))
                    said = stage
                if latest.has_ended:
                    return
            elif time.monotonic() > deadline:
                self.stdout.write("  no benchmark was queued for these runs: the speedups "
                                  "below wait for one (Re-benchmark on the page).")
                return
            time.sleep(poll)

    def _speedups(self, runs):
        rows = experiment_comparison(runs[0].experiment, runs) if runs else []
        if not rows:
            self.stdout.write("No speedups: they need a succeeded baseline and a succeeded "
                              "recipe.")
            return
        self.stdout.write("Speedups against the baseline (95% confidence interval in "
                          "brackets):")
        for line in speedup_table(rows):
            self.stdout.write("  " + line)


def _times(value, ci=None):
    if value is None:
        return "-"
    return f"{value:.2f}x" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


SPEEDUP_COLUMNS = ["run", "kind", "train speedup", "inference speedup", "size reduction",
                   "accuracy delta", "comparable"]


def _speed(row, what):
    if row.get(f"{what}_speedup") is None:
        return "-" if row.get(f"{what}_verdict") == "not measured" \
            else f"- ({row.get(f'{what}_verdict')})"
    text = _times(row[f"{what}_speedup"], row.get(f"{what}_ci"))
    return text if row.get(f"{what}_ci") else f"{text} ({row.get(f'{what}_verdict')})"


def speedup_table(rows) -> list[str]:
    """compare_runs' rows as aligned text lines, the header first."""
    cells = [SPEEDUP_COLUMNS] + [[
        row["name"], row["kind"], _speed(row, "train"), _speed(row, "inference"),
        _times(row.get("size_reduction")),
        # In ASCII: a terminal or a log may not take the minus sign.
        "-" if row.get("accuracy_delta") is None else points(row["accuracy_delta"])
        .replace(MINUS, "-"),
        "yes" if row.get("comparable") else "no (different hardware or versions)",
    ] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(SPEEDUP_COLUMNS))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
            .rstrip() for line in cells]


def _state(run):
    return run.status + (f": {run.error.strip().splitlines()[0]}" if run.error.strip() else "")


class _Lines:
    """One line per run each time its status or epoch count changes."""

    def __init__(self, stdout, epochs):
        self.stdout, self.epochs, self.seen = stdout, epochs, {}

    def update(self, runs):
        for run in runs:
            key = (run.status, run.epochs_done)
            if self.seen.get(run.pk) != key:
                self.seen[run.pk] = key
                self.stdout.write(
                    f"  {run.label:<28} {run.status:<10} epoch {run.epochs_done}/{self.epochs}"
                    + (f"  {run.error}" if run.error else "")
                )

    def close(self):
        pass


class _Bars:
    """A tqdm bar per run (position i), its epochs done out of the spec's, and its status."""

    def __init__(self, stdout, epochs):
        # tqdm writes carriage returns and cursor moves itself: give it the raw stream, not
        # the command's wrapper, which would end each write with a newline.
        self.file = getattr(stdout, "_out", stdout)
        self.epochs, self.bars = epochs, {}

    def update(self, runs):
        width = max(len(run.label) for run in runs)
        for run in runs:
            bar = self.bars.get(run.pk)
            if bar is None:
                bar = self.bars[run.pk] = tqdm(
                    total=self.epochs, position=len(self.bars), desc=run.label.ljust(width),
                    file=self.file, leave=True, dynamic_ncols=True, unit="epoch",
                    bar_format="{desc} |{bar}| {n_fmt}/{total_fmt} epochs{postfix}",
                )
            bar.n = min(run.epochs_done, self.epochs)
            bar.set_postfix_str(_state(run), refresh=False)
            bar.refresh()

    def close(self):
        for bar in self.bars.values():
            bar.close()
        self.file.flush()
