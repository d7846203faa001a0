"""Start the engine in a child process and follow its events.

Django-free on purpose: the Celery task passes callbacks that store and broadcast. A child
per run keeps TensorFlow out of the worker, releases GPU memory when the run ends, and
turns a crash or an OOM kill into an exit code and a stderr tail instead of a dead worker.
"""

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .engine.events import follow_lines
from .telemetry import make_sampler

STDERR_TAIL_CHARS = 4000
# A cancelled run must end within 5 s: SIGTERM stops training at the next batch; whatever
# is still running (a long benchmark loop) is killed after this grace.
STOP_GRACE_SECONDS = 4.0
POLL_SECONDS = 0.5
TELEMETRY_SECONDS = 1.0


@dataclass
class EngineOutcome:
    returncode: int | None = None
    result: dict | None = None
    error: str = ""
    cancelled: bool = False
    timed_out: bool = False
    stderr_tail: str = ""
    events: int = field(default=0)


def run_engine(spec, *, artifacts_dir=None, on_event, should_stop=lambda: False,
               max_seconds=None, env=None, gpu_index=None, command="run",
               telemetry=True) -> EngineOutcome:
    """Run `python -m runners run SPEC.json` (or `bench BENCH.json` with command="bench")
    and call on_event for each event it prints.

    should_stop is polled about twice a second; when it answers True the child gets
    SIGTERM, which the engine turns into stop_training, and SIGKILL after a grace period.
    telemetry=False samples nothing: a benchmark must not share its cores with a sampler.
    """
    argv = [command]
    if artifacts_dir is not None:
        artifacts_dir = Path(artifacts_dir)
        artifacts_dir.mkdir(parents=True, exist_ok=True)
    outcome = EngineOutcome()
    with tempfile.TemporaryDirectory(prefix=f"accelweb-{command}-") as tmp:
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        argv.append(str(spec_path))
        if artifacts_dir is not None:
            argv += ["--artifacts", str(artifacts_dir)]
        stderr_path = Path(tmp) / "stderr.log"
        child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        with open(stderr_path, "w+b") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "runners", *argv],
                stdout=subprocess.PIPE, stderr=stderr, env=child_env,
                cwd=str(Path(__file__).resolve().parent.parent),
                # Its own session: a Ctrl-C meant for the worker does not hit the child
                # (nor the benchmark's executions, which share the child's group).
                start_new_session=True,
            )
            sampler = make_sampler(proc.pid, gpu_index) if telemetry else None
            try:
                _follow(proc, outcome, on_event, should_stop, max_seconds, sampler)
            finally:
                if sampler is not None:
                    sampler.close()
            stderr.seek(0, os.SEEK_END)
            size = stderr.tell()
            stderr.seek(max(0, size - STDERR_TAIL_CHARS * 4))
            outcome.stderr_tail = stderr.read().decode("utf-8", "replace")[-STDERR_TAIL_CHARS:]
    return outcome


def _follow(proc, outcome, on_event, should_stop, max_seconds, sampler):
    lines = follow_lines(proc.stdout)
    started = time.monotonic()
    sampled_at = started
    stop_sent_at = None
    while True:
        try:
            raw = lines.get(timeout=POLL_SECONDS)
        except queue.Empty:
            raw = ""
        if raw is None:
            break
        if raw:
            _handle_line(raw, outcome, on_event)
        now = time.monotonic()
        # Only while the engine works: a sample after its last event would be recorded
        # after the result or error that ends the run.
        ended = outcome.result is not None or outcome.error or outcome.cancelled
        if (sampler is not None and not ended and proc.poll() is None
                and now - sampled_at >= TELEMETRY_SECONDS):
            sampled_at = now
            on_event(sampler.sample())
        if stop_sent_at is None:
            too_long = max_seconds is not None and now - started > max_seconds
            if too_long or should_stop():
                outcome.timed_out = too_long
                _signal(proc, signal.SIGTERM)
                stop_sent_at = now
        elif now - stop_sent_at > STOP_GRACE_SECONDS:
            _signal(proc, signal.SIGKILL)
    outcome.returncode = proc.wait()
    if stop_sent_at is not None and not outcome.timed_out:
        outcome.cancelled = True


def _handle_line(raw, outcome, on_event):
    text = raw.decode("utf-8", "replace").strip()
    if not text:
        return
    try:
        event = json.loads(text)
    except json.JSONDecodeError:
        event = None
    if not isinstance(event, dict) or "event" not in event:
        event = {"event": "log", "line": text[:2000]}
    outcome.events += 1
    kind = event["event"]
    if kind == "result":
        outcome.result = event
    elif kind == "error":
        outcome.error = str(event.get("message", ""))[:2000]
    elif kind == "cancelled":
        outcome.cancelled = True
    on_event(event)


def _signal(proc, sig):
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


INSPECT_SECONDS = 120


def inspect_model(path, *, name=None, timeout=INSPECT_SECONDS) -> dict:
    """Check and describe an uploaded .keras model in a child process
    (`python -m runners inspect-model`), so Keras never loads in the caller.

    ValueError with a message for the user when the model is refused or unreadable."""
    command = [sys.executable, "-m", "runners", "inspect-model", str(path)]
    if name:
        command += ["--name", name]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "JAX_PLATFORMS": "cpu",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=env,
            cwd=str(Path(__file__).resolve().parent.parent),
        )
    except subprocess.TimeoutExpired:
        raise ValueError(f"Checking the model took longer than {timeout} s.") from None
    found = None
    for line in done.stdout.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict) and event.get("event") in ("model", "error"):
            found = event
    if found is None:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        raise ValueError(f"The model check failed: {tail[0][:300]}")
    if found["event"] == "error":
        raise ValueError(str(found.get("message", "")))
    return {key: value for key, value in found.items() if key != "event"}
