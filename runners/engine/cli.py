"""``python -m runners run SPEC.json [--artifacts DIR]``,
``python -m runners bench BENCH.json`` (the benchmark stage, see runners.engine.bench) and
``python -m runners inspect-model MODEL.keras [--name NAME] [--memory-limit BYTES]``.

Exit status: 0 for a result (a description) or a cancellation, 1 after an error event.
Tracebacks go to stderr; stdout carries nothing but events.
"""

import argparse
import json
import os
import resource
import signal
import sys
import traceback

from runners import lifeline
from runners.engine import events, run
from runners.engine.events import EngineError

MAX_MESSAGE_CHARS = 1000


def main(argv=None):
    # First: a runner that dies now takes this process with it.
    lifeline.hold()
    cancel = run.CancelFlag()
    signal.signal(signal.SIGTERM, cancel.request)
    # Before anything can import TensorFlow: its C++ INFO/WARNING lines are noise here.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(prog="python -m runners")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="train and benchmark one engine spec")
    run_parser.add_argument("spec", help="path of the engine spec (JSON)")
    run_parser.add_argument("--artifacts", help="directory to keep model files in")
    bench_parser = commands.add_parser(
        "bench", help="measure an experiment's models side by side in fresh processes")
    bench_parser.add_argument("spec", help="path of the benchmark spec (JSON)")
    # Internal: the stage starts itself once per execution with these.
    bench_parser.add_argument("--execution", type=int, help=argparse.SUPPRESS)
    bench_parser.add_argument("--inputs", help=argparse.SUPPRESS)
    inspect_parser = commands.add_parser(
        "inspect-model", help="check an uploaded .keras model and describe it")
    inspect_parser.add_argument("path", help="path of the .keras file")
    inspect_parser.add_argument("--name", help="the file's name as the user knows it")
    inspect_parser.add_argument("--memory-limit", type=int,
                                help="the address space the check may use, in bytes")
    args = parser.parse_args(argv)

    events.claim_stdout()
    if args.command == "inspect-model":
        return _inspect_model(args.path, args.name, args.memory_limit)
    try:
        if args.command == "bench":
            _bench(args, cancel)
        else:
            run.execute(_read_spec(args.spec), args.artifacts, cancel)
    except run.Cancelled:
        events.emit("cancelled")
        return 0
    except Exception as exc:
        traceback.print_exc()
        events.emit("error", message=one_line(exc))
        return 1
    return 0


def _bench(args, cancel):
    from runners.engine import bench

    spec = _read_spec(args.spec)
    if args.execution is None:
        bench.run(spec, cancel, spec_path=os.path.abspath(args.spec))
    else:
        events.emit("execution", **bench.execute_one(spec, args.execution, args.inputs, cancel))


def _inspect_model(path, name, memory_limit=None):
    if memory_limit:
        # Set here, before Keras loads, rather than by the parent between fork and exec
        # (a preexec_fn), which is unsafe in the web's threaded process.
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        if hard != resource.RLIM_INFINITY:
            memory_limit = min(memory_limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    from runners.engine import modelfile

    # Nothing here needs a GPU, and a web request must not wait for one to initialise.
    os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    os.environ["JAX_PLATFORMS"] = "cpu"
    try:
        description = modelfile.inspect(path, name=name)
    except modelfile.ModelFileError as exc:
        events.emit("error", message=one_line(exc))
        return 1
    except Exception as exc:
        traceback.print_exc()
        events.emit("error", message=one_line(exc))
        return 1
    events.emit("model", **description)
    return 0


def one_line(exc):
    """A message for the dashboard: the user-facing text, or the type plus the first words."""
    plain = isinstance(exc, (ValueError, EngineError))
    text = str(exc) if plain else f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split()) or type(exc).__name__
    return text[:MAX_MESSAGE_CHARS]


def _read_spec(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as exc:
        raise EngineError(f"cannot read the spec {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise EngineError(f"the spec {path} is not valid JSON: {exc}") from exc


if __name__ == "__main__":
    sys.exit(main())
