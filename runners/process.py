"""Start the engine in a child process and follow its events.

Django-free on purpose: the Celery task passes callbacks that store and broadcast. A child
per run keeps TensorFlow out of the worker, releases GPU memory when the run ends, and
turns a crash or an OOM kill into an exit code and a stderr tail instead of a dead worker.
"""

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from . import lifeline
from .engine.events import follow_lines
from .telemetry import make_sampler

STDERR_TAIL_CHARS = 4000
# A cancelled run must end within 5 s: SIGTERM stops training at the next batch; whatever
# is still running (a long benchmark loop) is killed after this grace.
STOP_GRACE_SECONDS = 4.0
POLL_SECONDS = 0.5
TELEMETRY_SECONDS = 1.0
# What runs the engine: `python -m runners run|bench SPEC.json`. A module attribute so a
# benchmark of the worker path (bench/web.py) can start a child that only prints events.
ENGINE_COMMAND = (sys.executable, "-m", "runners")


@dataclass
class EngineOutcome:
    returncode: int | None = None
    result: dict | None = None
    error: str = ""
    cancelled: bool = False
    timed_out: bool = False
    stderr_tail: str = ""
    events: int = field(default=0)


# How a run or a benchmark ended: the values of experiments.models.Run.Status.
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
# What an engine's error or stderr says when the GPU had no memory left for it.
OUT_OF_GPU_MEMORY_SIGNS = ("RESOURCE_EXHAUSTED", "ResourceExhaustedError",
                           "CUDA_ERROR_OUT_OF_MEMORY", "out of memory")


@dataclass(frozen=True)
class Ending:
    """The status a run or a benchmark ends with, and why it failed ("" unless it did)."""

    status: str
    error: str = ""


def engine_ending(outcome: EngineOutcome, *, what: str = "run", device: str = "",
                  max_seconds=None) -> Ending:
    """How the engine's run (or benchmark: what="benchmark") ended, from what its child
    left: cancelled, succeeded, or failed and why. device names what it ran on,
    max_seconds the time limit it ran under."""
    # A time limit stops the engine the way a cancel does, and the engine says
    # "cancelled": the limit is the reason.
    if outcome.cancelled and not outcome.timed_out:
        return Ending(CANCELLED)
    if outcome.returncode == 0 and outcome.result is not None:
        return Ending(SUCCEEDED)
    return Ending(FAILED, failure_reason(outcome, what=what, device=device,
                                         max_seconds=max_seconds))


def failure_reason(outcome: EngineOutcome, *, what: str = "run", device: str = "",
                   max_seconds=None) -> str:
    """Why the engine gave no result, for the page."""
    if outcome.timed_out:
        return f"The {what} took longer than {max_seconds} s."
    if outcome.error and any(sign in outcome.error + outcome.stderr_tail
                             for sign in OUT_OF_GPU_MEMORY_SIGNS):
        return f"The GPU ran out of memory ({device}): {outcome.error}"
    if outcome.error:
        return outcome.error
    if outcome.returncode == -signal.SIGKILL:
        return ("The engine was killed (SIGKILL), most often by the kernel's "
                "out-of-memory killer.")
    if outcome.returncode and outcome.returncode < 0:
        return f"The engine was killed by signal {-outcome.returncode}."
    return f"The engine exited with code {outcome.returncode} and no result."


def run_engine(spec, *, artifacts_dir=None, on_event=None, on_events=None,
               should_stop=lambda: False, max_seconds=None, env=None, gpu_index=None,
               command="run", telemetry=True, record=None) -> EngineOutcome:
    """Run `python -m runners run SPEC.json` (or `bench BENCH.json` with command="bench")
    and call on_event for each event it prints, or on_events with each batch of them:
    the events the child printed while the last batch was handled, in order.

    should_stop is polled about twice a second; when it answers True the child gets
    SIGTERM, which the engine turns into stop_training, and SIGKILL after a grace period.
    telemetry=False samples nothing: a benchmark must not share its cores with a sampler.
    record: the file of the worker slot this runs on (see engine_records): an engine of the
    slot still alive from before is stopped first, and this one is noted there meanwhile.
    """
    argv = [command]
    if artifacts_dir is not None:
        artifacts_dir = Path(artifacts_dir)
        artifacts_dir.mkdir(parents=True, exist_ok=True)
    if (on_event is None) == (on_events is None):
        raise TypeError("run_engine takes on_event or on_events")
    deliver = on_events or (lambda events: [on_event(event) for event in events])
    outcome = EngineOutcome()
    with tempfile.TemporaryDirectory(prefix=f"accelweb-{command}-") as tmp:
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        argv.append(str(spec_path))
        if artifacts_dir is not None:
            argv += ["--artifacts", str(artifacts_dir)]
        stderr_path = Path(tmp) / "stderr.log"
        child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        if record is not None:
            _stop_recorded(Path(record))
        with open(stderr_path, "w+b") as stderr:
            proc = subprocess.Popen(
                [*ENGINE_COMMAND, *argv],
                stdout=subprocess.PIPE, stderr=stderr,
                cwd=str(Path(__file__).resolve().parent.parent),
                # Its own session: a Ctrl-C meant for the worker does not hit the child
                # (nor the benchmark's executions, which share the child's group). Tied
                # to this process instead: it dies with it (runners.lifeline).
                start_new_session=True,
                **lifeline.spawn_options(child_env),
            )
            sampler = make_sampler(proc.pid, gpu_index) if telemetry else None
            try:
                if record is not None:
                    _note(Path(record), proc.pid)
                _follow(proc, outcome, deliver, should_stop, max_seconds, sampler)
            except BaseException:
                # The caller failed (its store gave up): the engine must not train on
                # unwatched beside the next run.
                _signal(proc, signal.SIGKILL)
                proc.wait()
                raise
            finally:
                if sampler is not None:
                    sampler.close()
                proc.stdin.close()
                if record is not None:
                    Path(record).unlink(missing_ok=True)
            stderr.seek(0, os.SEEK_END)
            size = stderr.tell()
            stderr.seek(max(0, size - STDERR_TAIL_CHARS * 4))
            outcome.stderr_tail = stderr.read().decode("utf-8", "replace")[-STDERR_TAIL_CHARS:]
    return outcome


# Engine records: one file per worker slot, "PID CREATE_TIME" of the engine it runs, in
# a folder per worker. The next run of the slot stops a survivor first; the benchmark stage
# asks whether another slot's engine runs beside it.


def engine_records(folder) -> dict[str, int]:
    """The engines alive of the records in folder: record name -> pid."""
    alive = {}
    for path in Path(folder).glob("slot-*"):
        pid = _recorded(path)
        if pid is not None:
            alive[path.name] = pid
    return alive


def _recorded(path: Path) -> int | None:
    """The pid the record names, if that very process (not a later one given the same
    pid) is alive."""
    try:
        pid, created = path.read_text().split()
        proc = psutil.Process(int(pid))
        if abs(proc.create_time() - float(created)) > 0.01:
            return None
        return None if proc.status() == psutil.STATUS_ZOMBIE else int(pid)
    except (OSError, ValueError, psutil.Error):
        return None


def _note(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    created = psutil.Process(pid).create_time()
    path.write_text(f"{pid} {created}")


def _stop_recorded(path: Path, grace: float = 2.0) -> None:
    pid = _recorded(path)
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while _recorded(path) is not None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"An engine of this worker slot (pid {pid}) is still alive "
                               f"and would not stop; this run did not start beside it.")
        time.sleep(0.05)


# The most events handed over in one batch: a burst is stored in slices of this size.
MAX_BATCH = 2000


def _follow(proc, outcome, deliver, should_stop, max_seconds, sampler):
    lines = follow_lines(proc.stdout)
    started = time.monotonic()
    sampled_at = polled_at = started
    stop_sent_at = None
    finished = False
    while not finished:
        try:
            raw = lines.get(timeout=POLL_SECONDS)
        except queue.Empty:
            raw = b""
        if raw is None:
            break
        if raw:
            # Whatever else the child printed by now goes in the same batch: one
            # transaction and one broadcast for a burst, and no wait for a lone event.
            batch = [raw]
            while len(batch) < MAX_BATCH:
                try:
                    raw = lines.get_nowait()
                except queue.Empty:
                    break
                if raw is None:
                    finished = True
                    break
                batch.append(raw)
            events = [_parse_line(raw, outcome) for raw in batch]
            events = [event for event in events if event is not None]
            if events:
                deliver(events)
        now = time.monotonic()
        # Only while the engine works: a sample after its last event would be recorded
        # after the result or error that ends the run.
        ended = outcome.result is not None or outcome.error or outcome.cancelled
        if (sampler is not None and not ended and proc.poll() is None
                and now - sampled_at >= TELEMETRY_SECONDS):
            sampled_at = now
            deliver([sampler.sample()])
        if stop_sent_at is None:
            too_long = max_seconds is not None and now - started > max_seconds
            # should_stop reads the database: twice a second, not once per batch.
            if too_long or (now - polled_at >= POLL_SECONDS and should_stop()):
                outcome.timed_out = too_long
                _signal(proc, signal.SIGTERM)
                stop_sent_at = now
            if now - polled_at >= POLL_SECONDS:
                polled_at = now
        elif now - stop_sent_at > STOP_GRACE_SECONDS:
            _signal(proc, signal.SIGKILL)
    outcome.returncode = proc.wait()
    if stop_sent_at is not None and not outcome.timed_out:
        outcome.cancelled = True


def _parse_line(raw, outcome):
    """The event a line of the child's stdout holds (a "log" event for anything else),
    noted in the outcome; None for a blank line."""
    text = raw.decode("utf-8", "replace").strip()
    if not text:
        return None
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
    return event


def _signal(proc, sig):
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


INSPECT_SECONDS = 120
# The check's address space (RLIMIT_AS). TensorFlow reserves far more than it touches: the
# check of a small model peaks at about 1.8 GB of virtual memory (VmPeak) on the CPU.
INSPECT_MEMORY_BYTES = 4 * 1024**3
# What a child under RLIMIT_AS says when an allocation or a library mapping fails.
OUT_OF_MEMORY_SIGNS = ("MemoryError", "Cannot allocate memory", "failed to map segment",
                       "std::bad_alloc", "out of memory")


def inspect_model(path, *, name=None, timeout=INSPECT_SECONDS,
                  memory_limit=INSPECT_MEMORY_BYTES) -> dict:
    """Check and describe an uploaded .keras model in a child process
    (`python -m runners inspect-model`), so Keras never loads in the caller.

    The child's address space is limited to memory_limit bytes, and its temporary files
    (Keras unpacks assets into TMPDIR) go to a directory of its own, removed on every path.
    ValueError with a message for the user when the model is refused or unreadable."""
    command = [sys.executable, "-m", "runners", "inspect-model", str(path),
               "--memory-limit", str(memory_limit)]
    if name:
        command += ["--name", name]
    scratch = tempfile.mkdtemp(prefix="accelweb-inspect-")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "JAX_PLATFORMS": "cpu",
           "TF_CPP_MIN_LOG_LEVEL": "2", "TMPDIR": scratch}
    try:
        returncode, stdout, stderr = _check_in_child(command, env, timeout)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    found = None
    for line in stdout.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict) and event.get("event") in ("model", "error"):
            found = event
    if found is None or found["event"] == "error":
        said = f"{found.get('message', '') if found else ''}\n{stderr}"
        # The kernel's OOM killer sends SIGKILL; nothing else here does once the check runs.
        if returncode == -signal.SIGKILL or any(sign in said for sign in OUT_OF_MEMORY_SIGNS):
            raise ValueError(f"The model check ran out of memory "
                             f"(limit {memory_limit / 1024**3:g} GiB).")
    if found is None:
        tail = stderr.strip().splitlines()[-1:] or [f"exit status {returncode}"]
        raise ValueError(f"The model check failed: {tail[0][:300]}")
    if found["event"] == "error":
        raise ValueError(str(found.get("message", "")))
    return {key: value for key, value in found.items() if key != "event"}


def _check_in_child(command, env, timeout):
    """(exit status, stdout, stderr) of the command; on a timeout, or anything else that
    interrupts the wait, its whole process group is killed and reaped first."""
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        cwd=str(Path(__file__).resolve().parent.parent),
        # A group of its own to kill: nothing the check started outlives it.
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException as exc:
        _signal(proc, signal.SIGKILL)
        proc.communicate()
        if isinstance(exc, subprocess.TimeoutExpired):
            raise ValueError(f"Checking the model took longer than {timeout} s.") from None
        raise
    return proc.returncode, stdout, stderr
