"""The engine's only output channel: one JSON object per line on the real stdout."""

import json
import math
import os
import queue
import sys
import threading

import numpy as np

# None until claim_stdout(): then sys.stdout at call time, which keeps in-process callers
# (tests capturing output) working.
_stream = None


class EngineError(Exception):
    """A failure whose message is written for the user and reported as-is, one line."""


def claim_stdout():
    """Keep the real stdout for events and send everything else written to fd 1 to stderr.

    TensorFlow's converter prints "Saved artifact at ..." with plain print() and native
    libraries write to fd 1 directly; the reader parses every stdout line as an event.
    """
    global _stream
    sys.stdout.flush()
    _stream = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr


def plain(value):
    """Cast numpy scalars/arrays and tuples to JSON types; non-finite floats become null."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def emit(event, **fields):
    line = json.dumps({"event": event, **plain(fields)}, allow_nan=False)
    stream = _stream if _stream is not None else sys.stdout
    stream.write(line + "\n")
    stream.flush()


def phase(name):
    emit("phase", phase=name)


def follow_lines(stream) -> queue.Queue:
    """The lines of a child's output as a queue a reader thread fills, None after the last:
    the reader can wait on it with a timeout, which a blocking readline cannot."""
    lines = queue.Queue()

    def pump():
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines
