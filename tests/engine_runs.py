"""Engine runs for the tests: `python -m runners run SPEC.json` in a child process, as
workers do. Runs of one module start together and are awaited by the tests that read them;
they are independent processes, so overlapping them only saves wall time."""

import importlib.util
import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 300
BENCHMARK = {"trials": 3, "latency_samples": 20, "warmup": 5}
HAS_JAX = importlib.util.find_spec("jax") is not None


def digits_spec(steps, arch="seed_mlp", params=None):
    return {
        "name": "test",
        "model": {"arch": arch, "params": params or {}},
        "dataset": {"name": "digits"},
        "training": {"epochs": 2, "batch_size": 64, "optimizer": "adam",
                     "learning_rate": 0.001, "seed": 0},
        "hardware": "cpu",
        "steps": steps,
        "benchmark": BENCHMARK,
    }


class EngineRun:
    def __init__(self, spec, workdir, env=None):
        workdir.mkdir(parents=True, exist_ok=True)
        self.artifacts = workdir / "artifacts"
        spec_path = workdir / "spec.json"
        spec_path.write_text(json.dumps(spec))
        # A file, not a pipe: nobody reads stderr while the run goes on, and a full pipe
        # would block the child.
        self.stderr_path = workdir / "stderr.log"
        with open(self.stderr_path, "w") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "runners", "run", str(spec_path),
                 "--artifacts", str(self.artifacts)],
                cwd=ROOT, env={**os.environ, **(env or {})}, text=True,
                stdout=subprocess.PIPE, stderr=stderr,
            )
        self._done = None

    def stderr(self):
        return self.stderr_path.read_text()[-3000:]

    def wait(self):
        if self._done is None:
            out, _ = self.proc.communicate(timeout=RUN_TIMEOUT)
            # json.loads on every line: anything but events on stdout fails here.
            self._done = (self.proc.returncode, [json.loads(line) for line in out.splitlines()],
                          self.stderr())
        return self._done

    def succeeded(self):
        returncode, events, stderr = self.wait()
        assert returncode == 0, stderr
        assert events[-1]["event"] == "result", events[-1]
        return events, events[-1]


@contextmanager
def started_runs(recipes, base):
    """Start every recipe ({name: (env, spec)}) at once; kill what is left at the end."""
    started = {name: EngineRun(spec, base / name, env) for name, (env, spec) in recipes.items()}
    try:
        yield started
    finally:
        for run in started.values():
            if run.proc.poll() is None:
                run.proc.kill()
                run.proc.wait()
