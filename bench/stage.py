"""What the benchmarks share: training runs and the benchmark stage through the engine's
own CLI (`python -m runners run` and `python -m runners bench`, child processes, as the
workers start them), the web's comparison rules, and writing a section of
docs/benchmarks.md. Django is imported for nothing but experiments.spec's benchmark_spec
and experiments.comparison, which need no database.
"""

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RUN_TIMEOUT = 1800


@dataclass
class Trained:
    """A finished engine run, shaped like the Run rows that benchmark_spec and
    compare_runs read, so the figures here come from the product's own code."""

    pk: int
    label: str
    steps: list
    result: dict
    artifacts_dir: Path
    # None: a run without steps is the baseline. bench/aa.py measures step-less runs as
    # recipes too.
    baseline: bool | None = None
    position: int = 0
    replicate: int = 0
    finished_at = None

    @property
    def is_baseline(self):
        return not self.steps if self.baseline is None else self.baseline

    @property
    def ok(self):
        return self.result.get("event") == "result"

    @property
    def name(self):
        return self.label

    @property
    def status(self):
        return "succeeded" if self.ok else "failed"


@dataclass
class Measured:
    """A succeeded benchmark of some runs, shaped like the Benchmark rows compare_runs
    reads."""

    result: dict
    runs: dict
    pk: int = 0
    status = "succeeded"
    has_ended = True
    stage = "benchmark succeeded"


def _events(command, spec, workdir):
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"{command}.json"
    path.write_text(json.dumps(spec))
    argv = [sys.executable, "-m", "runners", command, str(path)]
    if command == "run":
        argv += ["--artifacts", str(workdir / "artifacts")]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    last = events[-1] if events else {"event": "error", "message": proc.stderr[-400:]}
    if last.get("event") != "result" and proc.stderr:
        last.setdefault("stderr", proc.stderr[-1500:])
    return last


_next_pk = iter(range(1, 10**9))


def train(spec, workdir, *, label, replicate=0, baseline=None, position=0) -> Trained:
    """One engine run; replicate i trains with seed + i, as the workers' runs do."""
    spec = json.loads(json.dumps(spec))
    spec["training"]["seed"] = spec["training"].get("seed", 0) + replicate
    pk = next(_next_pk)
    folder = Path(workdir) / f"run-{pk}"
    started = time.perf_counter()
    result = _events("run", spec, folder)
    result["wall_seconds"] = time.perf_counter() - started
    return Trained(pk=pk, label=label, steps=spec["steps"], result=result,
                   artifacts_dir=folder / "artifacts", baseline=baseline, position=position,
                   replicate=replicate)


def benchmark(spec, runs, workdir, *, executions=5, rounds=20, calls=20) -> dict:
    """The benchmark stage over these runs (the first is the baseline), exactly as the
    worker builds it: the models, the A/A control, the pairs."""
    from experiments.spec import benchmark_spec

    stage = benchmark_spec({**spec, "benchmark": {"executions": executions, "rounds": rounds,
                                                  "calls": calls}}, runs=runs)
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        started = time.perf_counter()
        result = _events("bench", stage, Path(folder))
    result["wall_seconds"] = time.perf_counter() - started
    return result


def measured(result, runs) -> Measured:
    """The stage's result as the Benchmark of these runs (benchmark_runs' mapping)."""
    return Measured(result=result, runs={str(run.pk): None for run in runs})


def pairs(result) -> dict:
    return {pair["id"]: pair for pair in result.get("pairs", [])}


def contains_one(ci) -> bool:
    return ci is not None and ci[0] <= 1.0 <= ci[1]


def machine() -> dict:
    """This machine's fingerprint, as the engine records it."""
    import keras  # noqa: F401  (so the fingerprint names the versions the children used)
    import tensorflow  # noqa: F401

    from runners.engine.fingerprint import fingerprint

    return fingerprint("tensorflow")


def write_section(path: Path, heading: str, text: str) -> None:
    """Replace one level-2 section of a benchmarks file (up to the next level-2 heading),
    or add it at the end; the other sections stay as they are."""
    lines = path.read_text().splitlines(keepends=True) if path.exists() else ["# Benchmarks\n"]
    start = next((i for i, line in enumerate(lines) if line.rstrip("\n") == heading), None)
    if start is None:
        before, after = "".join(lines).rstrip("\n") + "\n\n", ""
    else:
        end = next((i for i in range(start + 1, len(lines))
                    if lines[i].startswith(("## ", "# "))), len(lines))
        before, after = "".join(lines[:start]), "".join(lines[end:])
        after = "\n" + after if after else ""
    path.write_text(before + text.rstrip("\n") + "\n" + after)
