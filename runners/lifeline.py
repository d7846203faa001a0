"""An engine process never outlives the process that started it.

The engine runs in a session of its own (a Ctrl-C meant for the worker must not reach
it), so nothing that kills the worker's process group reaches it either: a killed worker
left its engine training beside the next run. Two lines tie a child to its parent:

- on Linux, the parent-death signal (`prctl(PR_SET_PDEATHSIG, SIGKILL)`): the kernel kills
  the child when the thread that started it ends, however it ends;
- everywhere, a pipe on the child's stdin that the parent holds open and never writes:
  when the parent dies its end closes, the child reads end-of-file and kills its process
  group (itself and the benchmark executions it started).

The parent asks for both with `spawn_options()`; the child calls `hold()` first thing.
Django-free: the engine imports it.
"""

import ctypes
import os
import signal
import subprocess
import sys
import threading

ENV = "ACCELWEB_LIFELINE"
PR_SET_PDEATHSIG = 1


def spawn_options(env: dict | None = None) -> dict:
    """Popen keyword arguments that tie the child to this process: a stdin pipe this
    process keeps open (close it only once the child has exited) and the variable that
    tells the child's hold() to watch it."""
    return {"stdin": subprocess.PIPE, "env": {**(os.environ if env is None else env),
                                              ENV: str(os.getpid())}}


def hold() -> bool:
    """In the child: die with the parent that asked for it (spawn_options). False, doing
    nothing, when started without it (by hand, from a terminal)."""
    parent = os.environ.pop(ENV, None)
    if not parent:
        return False
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        # Orphaned before the signal was asked for: it would never come.
        if os.getppid() != int(parent):
            _end()
    # A descriptor of its own, read without Python's buffered stdin: the interpreter takes
    # that one's lock at exit, which a thread blocked in it holds (a fatal error).
    threading.Thread(target=_watch, args=(os.dup(sys.stdin.fileno()),), name="lifeline",
                     daemon=True).start()
    return True


def _watch(fd):
    # The parent never writes: anything read is discarded, end-of-file is its death.
    try:
        while os.read(fd, 4096):
            pass
    except OSError:
        pass
    _end()


def _end():
    try:
        if os.getpgrp() == os.getpid():  # the engine, leader of its group: the whole group
            os.killpg(os.getpid(), signal.SIGKILL)
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGKILL)
