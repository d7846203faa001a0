"""How a run ends, decided from what its engine child left (runners.process.engine_ending).

Plain pytest, no Django and no database: the Celery task only stores what this says. The
last tests run a real child (a few lines of Python standing in for the engine, through
run_engine's ENGINE_COMMAND) so the outcomes judged are ones run_engine really leaves.
"""

import json
import signal
import sys
import textwrap

import pytest

from runners import process
from runners.process import (
    CANCELLED,
    FAILED,
    SUCCEEDED,
    Ending,
    EngineOutcome,
    engine_ending,
    failure_reason,
)

RESULT = {"event": "result", "test_accuracy": 0.9}


def test_it_succeeds_with_a_result_and_a_clean_exit():
    outcome = EngineOutcome(returncode=0, result=RESULT, events=3)

    assert engine_ending(outcome) == Ending(SUCCEEDED)
    assert engine_ending(outcome).error == ""


def test_it_fails_a_clean_exit_without_a_result():
    outcome = EngineOutcome(returncode=0)

    assert engine_ending(outcome) == Ending(
        FAILED, "The engine exited with code 0 and no result.")


def test_it_fails_a_result_followed_by_a_crash():
    # The result was printed, then the child died (saving the model, say): no success.
    outcome = EngineOutcome(returncode=1, result=RESULT, stderr_tail="Traceback ...")

    assert engine_ending(outcome) == Ending(
        FAILED, "The engine exited with code 1 and no result.")


def test_it_cancels_a_run_asked_to_stop():
    outcome = EngineOutcome(returncode=0, cancelled=True, stderr_tail="stopping")

    assert engine_ending(outcome) == Ending(CANCELLED)


def test_it_cancels_even_when_the_engine_was_killed_after_the_grace():
    outcome = EngineOutcome(returncode=-signal.SIGKILL, cancelled=True)

    assert engine_ending(outcome) == Ending(CANCELLED)


def test_it_blames_the_time_limit_rather_than_the_cancel_it_caused():
    # The limit stops the engine with SIGTERM, and the engine says "cancelled".
    outcome = EngineOutcome(returncode=0, cancelled=True, timed_out=True)

    assert engine_ending(outcome, max_seconds=30) == Ending(
        FAILED, "The run took longer than 30 s.")
    assert engine_ending(outcome, what="benchmark", max_seconds=2).error == \
        "The benchmark took longer than 2 s."


def test_it_blames_the_time_limit_before_the_engine_error_it_caused():
    outcome = EngineOutcome(returncode=1, timed_out=True, error="Interrupted")

    assert failure_reason(outcome, max_seconds=60) == "The run took longer than 60 s."


def test_it_says_the_engine_error():
    outcome = EngineOutcome(returncode=1, error="Unknown technique 'warp_drive'",
                            stderr_tail="Traceback (most recent call last): ...")

    assert engine_ending(outcome, device="CPU: x86") == Ending(
        FAILED, "Unknown technique 'warp_drive'")


@pytest.mark.parametrize("error, stderr_tail", [
    ("OOM when allocating tensor: RESOURCE_EXHAUSTED", ""),
    ("Graph execution error", "tensorflow.python.framework.errors_impl."
                              "ResourceExhaustedError: OOM"),
    ("Failed to allocate", "CUDA_ERROR_OUT_OF_MEMORY"),
    ("XlaRuntimeError: out of memory while trying to allocate 8.00GiB", ""),
])
def test_it_names_the_gpu_that_ran_out_of_memory(error, stderr_tail):
    outcome = EngineOutcome(returncode=1, error=error, stderr_tail=stderr_tail)

    assert failure_reason(outcome, device="GPU 0: NVIDIA H100") == \
        f"The GPU ran out of memory (GPU 0: NVIDIA H100): {error}"


def test_it_does_not_call_a_memory_word_in_stderr_alone_an_engine_error():
    # Without an error event the engine did not say why: the exit is the reason.
    outcome = EngineOutcome(returncode=2, stderr_tail="RESOURCE_EXHAUSTED")

    assert failure_reason(outcome, device="GPU 0") == \
        "The engine exited with code 2 and no result."


def test_it_suspects_the_oom_killer_of_a_sigkill():
    outcome = EngineOutcome(returncode=-signal.SIGKILL)

    assert failure_reason(outcome) == ("The engine was killed (SIGKILL), most often by the "
                                       "kernel's out-of-memory killer.")


def test_it_names_any_other_signal():
    outcome = EngineOutcome(returncode=-signal.SIGSEGV)

    assert failure_reason(outcome) == f"The engine was killed by signal {signal.SIGSEGV}."


def test_it_says_the_exit_code():
    assert failure_reason(EngineOutcome(returncode=3)) == \
        "The engine exited with code 3 and no result."


# What real children leave.


def _engine(monkeypatch, code):
    monkeypatch.setattr(process, "ENGINE_COMMAND",
                        (sys.executable, "-c", textwrap.dedent(code)))
    return process.run_engine({}, on_events=lambda events: None, telemetry=False)


@pytest.mark.timeout(60)
def test_it_fails_a_child_killed_by_sigkill(monkeypatch):
    outcome = _engine(monkeypatch, """
        import json, os, signal
        print(json.dumps({"event": "phase", "phase": "train"}), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)

    assert engine_ending(outcome) == Ending(FAILED, (
        "The engine was killed (SIGKILL), most often by the kernel's out-of-memory killer."))


@pytest.mark.timeout(60)
def test_it_fails_a_child_that_said_its_error_with_the_error(monkeypatch):
    outcome = _engine(monkeypatch, """
        import json, sys
        print(json.dumps({"event": "error", "message": "Bad spec"}), flush=True)
        print("Traceback: Bad spec", file=sys.stderr)
        sys.exit(1)
    """)

    assert "Traceback: Bad spec" in outcome.stderr_tail
    assert engine_ending(outcome) == Ending(FAILED, "Bad spec")


@pytest.mark.timeout(60)
def test_it_succeeds_a_child_that_printed_its_result(monkeypatch):
    outcome = _engine(monkeypatch, f"""
        print({json.dumps(RESULT)!r}, flush=True)
    """)

    assert outcome.result == RESULT
    assert engine_ending(outcome) == Ending(SUCCEEDED)
