"""An engine child never outlives its runner (runners.lifeline), whatever ends the runner.

Plain pytest, no Django: a "runner" here is a Python process that starts a child through
run_engine, as the Celery task does, with a child that holds its lifeline and starts a
grandchild of its own (as the benchmark stage starts its executions).
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from runners import process

ROOT = Path(__file__).resolve().parent.parent
# The engine's stand-in: holds its lifeline, starts a grandchild tied the same way, says
# both pids, then trains forever.
CHILD = textwrap.dedent("""
    import json, os, subprocess, sys, time
    from runners import lifeline
    lifeline.hold()
    grandchild = subprocess.Popen(
        [sys.executable, "-c", "from runners import lifeline; lifeline.hold(); "
         "import time; time.sleep(120)"], **lifeline.spawn_options())
    print(json.dumps({"event": "log", "pids": [os.getpid(), grandchild.pid]}), flush=True)
    time.sleep(120)
""")
# The runner: run_engine with CHILD as the engine, printing the pids it is told.
RUNNER = textwrap.dedent(f"""
    import json, sys
    from runners import process
    process.ENGINE_COMMAND = (sys.executable, "-c", {CHILD!r})
    def told(events):
        for event in events:
            if "pids" in event:
                print(json.dumps(event["pids"]), flush=True)
    process.run_engine({{}}, on_events=told, telemetry=False)
""")


def alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(pids, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(alive(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def runner():
    proc = subprocess.Popen([sys.executable, "-c", RUNNER], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    pids = json.loads(proc.stdout.readline())
    try:
        yield proc, pids
    finally:
        for pid in [proc.pid, *pids]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_the_engine_and_its_children_end_within_two_seconds_of_their_runner(runner, sig):
    proc, pids = runner
    assert all(alive(pid) for pid in pids)
    # The runner's whole process group, as `kill -9` of a worker reaches it: the engine
    # is in a session of its own, so only its lifeline can end it.
    os.killpg(proc.pid, sig)
    proc.wait(timeout=10)
    assert wait_gone(pids, 2.0), [psutil.Process(p).cmdline() for p in pids if alive(p)]


def test_a_closed_lifeline_ends_the_engine_where_no_parent_death_signal_is(tmp_path):
    # The pipe alone, as on a system without prctl: the runner is alive, its end closed.
    child = subprocess.Popen([sys.executable, "-c", CHILD], cwd=ROOT, stdout=subprocess.PIPE,
                             text=True, start_new_session=True,
                             **process.lifeline.spawn_options(
                                 {**os.environ, "PYTHONPATH": str(ROOT)}))
    pids = json.loads(child.stdout.readline())["pids"]
    child.stdin.close()
    assert wait_gone(pids, 2.0)
    assert child.wait(timeout=5) == -signal.SIGKILL


def test_without_a_lifeline_asked_for_the_engine_holds_none():
    found = subprocess.run(
        [sys.executable, "-c", "from runners import lifeline; print(lifeline.hold())"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
        env={k: v for k, v in os.environ.items() if k != process.lifeline.ENV})
    assert found.stdout.strip() == "False"


def test_a_runner_whose_store_fails_stops_its_engine_first(monkeypatch):
    started = []
    monkeypatch.setattr(process, "ENGINE_COMMAND", (sys.executable, "-c", CHILD))

    def store(events):
        started.extend(next(e["pids"] for e in events if "pids" in e))
        raise ConnectionError("database connection lost")

    with pytest.raises(ConnectionError):
        process.run_engine({}, on_events=store, telemetry=False)
    # The engine was killed before the error reached the caller; its child by the lifeline.
    assert not alive(started[0])
    assert wait_gone(started, 2.0)


def test_an_engine_holding_its_lifeline_still_exits_cleanly(monkeypatch):
    # The watch blocks in a read of stdin for the child's whole life: at exit the
    # interpreter must not wait on it (a buffered stdin's lock made that a fatal abort).
    monkeypatch.setattr(process, "ENGINE_COMMAND", (sys.executable, "-c", (
        "import json; from runners import lifeline; assert lifeline.hold(); "
        "print(json.dumps({'event': 'result', 'test_accuracy': 1.0}))")))
    outcome = process.run_engine({}, on_event=lambda event: None, telemetry=False)
    assert (outcome.returncode, outcome.result) == (0, {"event": "result",
                                                        "test_accuracy": 1.0})
