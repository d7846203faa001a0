"""The benchmark stage: every shipped model of an experiment measured side by side.

Speed differs more between processes, and over time, than within one process (Kalibera
and Jones, "Rigorous benchmarking in reasonable time", ISMM 2013). So one benchmark runs K
fresh child processes, the *executions*, one after the other. Each loads every model and
measures them in R *rounds*, in a fresh random order each round: per model a block of
batch-1 calls (latency) and a block of calls at the batch size (throughput). A ratio of
two models is taken within each round, so drift over time cancels; the interval comes
from the spread between executions, so the variation between processes is in it. The
baseline's file is loaded twice, as two models: the A/A control, whose interval must
contain 1.0 when the method is honest on this machine at this moment.

``python -m runners bench BENCH.json`` runs the whole stage and prints events, the last a
``result`` with every model's figures and every pair's speedups. BENCH.json::

    {"models": [{"id": "baseline", "path": "/abs/model.keras", "runtime": "keras",
                 "jit_compile": false}, ...],
     "pairs": [{"id": "run-7", "slow": "baseline", "fast": "run-7"}, ...],
     "dataset": {engine dataset spec}, "seed": 0, "hardware": "cpu",
     "executions": 5, "rounds": 20, "calls": 20, "warmup": 20, "batch_size": 64}

A pair's speedup is how many times faster ``fast`` is than ``slow`` (slow latency over fast
latency; fast throughput over slow throughput).
"""

import fcntl
import gc
import json
import os
import queue
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

import numpy as np

from runners import lifeline
from runners.engine import data as datasets
from runners.engine import events, measure
from runners.engine.events import EngineError
from runners.engine.fields import (
    OMIT,
    Boolean,
    Choice,
    Integer,
    ListOf,
    Object,
    Problems,
    Text,
    shown,
)
from runners.engine.run import Cancelled, _devices, _import_keras

DEFAULTS = {"executions": 5, "rounds": 20, "calls": 20, "warmup": 20, "batch_size": 64,
            "seed": 0, "hardware": "cpu"}
LIMITS = {"executions": (1, 50), "rounds": (2, 500), "calls": (1, 10_000),
          "warmup": (0, 100_000), "batch_size": (1, 65536), "seed": (0, 2**31 - 1)}
RUNTIMES = ("keras", "tflite")
# Every run's shipped model and its reference, and the baseline's twice.
MAX_MODELS = 1000
# The batch-1 calls cycle through this many test samples, and the throughput batch is cut
# from them: enough that no cache favours one input.
MAX_INPUTS = 1024
# Samples per throughput block: at least this many, in at least two calls.
THROUGHPUT_SAMPLES_PER_BLOCK = 256
# Untimed calls at the start of each block: the first calls after another model ran find
# cold caches and sleeping thread pools (a LiteRT model's first call there took 18 times
# its steady latency); what a model costs called on its own is the steady figure.
BLOCK_WARMUP = 3
# An execution reports after every round; one silent for this long is stuck (the worker's
# heartbeat would go on beating for it).
EXECUTION_SILENCE_SECONDS = 1800


MODEL = Object({"id": Text(200, blank=False), "path": Text(4096, blank=False),
                "runtime": Choice(RUNTIMES), "jit_compile": Boolean(False)}, label="model")
PAIR = Object({"id": Text(200, OMIT), "slow": Text(200), "fast": Text(200)}, label="pair")
SPEC = Object({
    "name": Text(200, ""),
    **{key: Integer(*LIMITS[key], DEFAULTS[key]) for key in LIMITS},
    "hardware": Choice(("cpu", "gpu"), DEFAULTS["hardware"]),
    "models": ListOf(MODEL, min_items=1, max_items=MAX_MODELS),
    "pairs": ListOf(PAIR, [], max_items=MAX_MODELS**2),
    "dataset": datasets.DATASET,
}, label="the benchmark spec")


def validate(spec):
    """The benchmark spec with defaults filled in; fields.Invalid (a ValueError) with a
    readable message otherwise."""
    problems = Problems()
    out = SPEC.clean(spec, "", problems)
    problems.raise_if_any()
    datasets.check_dataset(out["dataset"], "dataset", problems, datasets.DATASET)
    ids = [model["id"] for model in out["models"]]
    for index, model in enumerate(out["models"]):
        if ids.index(model["id"]) != index:
            problems.add(f"models.{index}", f"Benchmark model {shown(model['id'])} appears "
                                            "twice.")
        if not os.path.isabs(model["path"]):
            problems.add(f"models.{index}.path", "The path of a model must be absolute.")
    for index, pair in enumerate(out["pairs"]):
        if pair["slow"] not in ids or pair["fast"] not in ids:
            problems.add(f"pairs.{index}", "Each benchmark pair names a slow and a fast "
                                           "model by id.")
        pair["id"] = pair.get("id") or f"{pair['slow']}/{pair['fast']}"
    problems.raise_if_any()
    return out


@contextmanager
def host_lock(cancel):
    """One benchmark at a time on this host: two would measure each other. (Training runs
    of a worker with concurrency above 1 can still share the cores; the A/A control shows
    what that costs.)"""
    path = os.path.join(tempfile.gettempdir(), "accelweb-benchmark.lock")
    with open(path, "a") as handle:
        waited = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    events.phase("waiting for another benchmark on this host")
                    waited = True
                cancel.check()
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run(spec, cancel, *, spec_path):
    """The whole stage: K executions in fresh processes, then the summary as a result."""
    spec = validate(spec)
    with host_lock(cancel), tempfile.TemporaryDirectory(prefix="accelweb-bench-") as tmp:
        events.phase("benchmark")
        inputs_path = os.path.join(tmp, "inputs.npy")
        data = datasets.load(spec["dataset"], spec["seed"])
        np.save(inputs_path, np.ascontiguousarray(data.x_test[:MAX_INPUTS]),
                allow_pickle=False)
        done = []
        for index in range(spec["executions"]):
            cancel.check()
            events.emit("progress", execution=index + 1, executions=spec["executions"],
                        round=0, rounds=spec["rounds"])
            done.append(_execution_process(spec_path, index, inputs_path, spec, cancel))
    result = summarize(spec, done)
    events.emit("result", **result)
    return result


def _execution_process(spec_path, index, inputs_path, spec, cancel):
    """One execution in a fresh ``python -m runners bench --execution`` child; its progress
    events pass through, its measurements come back."""
    command = [sys.executable, "-m", "runners", "bench", spec_path, "--execution", str(index),
               "--inputs", inputs_path]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    # The child shares this process group: a SIGTERM for the stage reaches it too. And it
    # dies with this process (runners.lifeline).
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=root, text=True,
                            **lifeline.spawn_options({**os.environ, "PYTHONUNBUFFERED": "1"}))
    measured, error, cancelled = None, None, False
    lines = events.follow_lines(proc.stdout)
    try:
        while True:
            try:
                line = lines.get(timeout=EXECUTION_SILENCE_SECONDS)
            except queue.Empty:
                raise EngineError(
                    f"benchmark execution {index + 1} of {spec['executions']} printed "
                    f"nothing for {EXECUTION_SILENCE_SECONDS} s and was stopped") from None
            if line is None:
                break
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            kind = event.get("event")
            if kind == "execution":
                measured = event
            elif kind == "progress":
                events.emit("progress", **{k: v for k, v in event.items() if k != "event"})
            elif kind == "error":
                error = event.get("message")
            elif kind == "cancelled":
                cancelled = True
        returncode = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
    if cancelled or cancel.requested:
        raise Cancelled
    if measured is None:
        why = error or f"it exited with code {returncode} and no measurements"
        raise EngineError(f"benchmark execution {index + 1} of {spec['executions']} failed: "
                          f"{why}")
    return measured


def execute_one(spec, index, inputs_path, cancel):
    """One execution (in the child): load every model, warm each up, measure R rounds."""
    spec = validate(spec)
    keras = _import_keras(spec["hardware"])
    backend = keras.backend.backend()
    _devices(backend, spec["hardware"])
    x = np.load(inputs_path, allow_pickle=False)
    singles = [x[i : i + 1] for i in range(len(x))]
    batch = measure._pad(x[: spec["batch_size"]], spec["batch_size"])
    throughput_calls = max(2, -(-THROUGHPUT_SAMPLES_PER_BLOCK // spec["batch_size"]))
    count, rounds, calls = len(spec["models"]), spec["rounds"], spec["calls"]
    rng = np.random.default_rng([spec["seed"], index])
    # Loaded and warmed up in a fresh order per execution too: where a model lands in
    # memory is fixed for the life of a process, and a fixed order would hand the same
    # model the same place in every execution (a bias no number of executions averages).
    runtimes = [None] * count
    load_order = rng.permutation(count)
    for m in load_order:
        runtimes[m] = load_runtime(spec["models"][m])
        cancel.check()
        for i in range(spec["warmup"]):
            runtimes[m].predict(singles[i % len(singles)])
        for _ in range(2):
            runtimes[m].predict(batch)
    latency = np.empty((count, rounds))
    invoke = np.full((count, rounds), np.nan)
    rate = np.empty((count, rounds))
    pooled = np.empty((count, rounds * calls))
    call = 0
    for r in range(rounds):
        gc.collect()
        for m in rng.permutation(count):
            runtime = runtimes[m]
            timed = getattr(runtime, "timed_predict", None)
            seconds = np.empty(calls)
            invoked = np.empty(calls)
            # No collection inside a timed block: a pause lands in one model's figure.
            gc.disable()
            try:
                for i in range(BLOCK_WARMUP):
                    runtime.predict(singles[(call + i) % len(singles)])
                for c in range(calls):
                    one = singles[call % len(singles)]
                    call += 1
                    started = time.perf_counter()
                    if timed is None:
                        runtime.predict(one)
                    else:
                        invoked[c] = timed(one)
                    seconds[c] = time.perf_counter() - started
                runtime.predict(batch)
                started = time.perf_counter()
                for _ in range(throughput_calls):
                    runtime.predict(batch)
                elapsed = time.perf_counter() - started
            finally:
                gc.enable()
            pooled[m, r * calls:(r + 1) * calls] = seconds * 1000.0
            latency[m, r] = np.median(seconds) * 1000.0
            if timed is not None:
                invoke[m, r] = np.median(invoked) * 1000.0
            rate[m, r] = throughput_calls * spec["batch_size"] / elapsed
        cancel.check()
        events.emit("progress", execution=index + 1, executions=spec["executions"],
                    round=r + 1, rounds=rounds)
    from runners.engine.fingerprint import fingerprint

    return {
        "index": index,
        "fingerprint": fingerprint(backend),
        "load_order": [spec["models"][m]["id"] for m in load_order],
        "models": {
            model["id"]: {
                "latency_ms": latency[m].tolist(),
                "invoke_ms": None if np.isnan(invoke[m]).all() else invoke[m].tolist(),
                "samples_per_s": rate[m].tolist(),
                "percentiles_ms": np.percentile(pooled[m], [50, 95, 99]).tolist(),
                "how": getattr(runtimes[m], "how", runtimes[m].runtime),
            }
            for m, model in enumerate(spec["models"])
        },
    }


def load_runtime(model):
    """A measured runtime for a shipped file: Keras (safe_mode) or LiteRT."""
    if model["runtime"] == "tflite":
        return measure.TFLiteRuntime(model["path"])
    import keras

    loaded = keras.saving.load_model(model["path"], compile=False, safe_mode=True)
    return measure.KerasRuntime(loaded, model["path"], jit=model["jit_compile"])


def summarize(spec, executions):
    """Each model's figures over all executions, and each pair's paired speedups."""
    models = {}
    for model in spec["models"]:
        per = [e["models"][model["id"]] for e in executions]
        latency = np.array([p["latency_ms"] for p in per])
        invoke = [p["invoke_ms"] for p in per]
        models[model["id"]] = {
            "runtime": model["runtime"],
            "jit_compile": model["jit_compile"],
            "how": per[0]["how"],
            "latency_ms_p50": float(np.median(latency)),
            "latency_ms_p95": float(np.median([p["percentiles_ms"][1] for p in per])),
            "latency_ms_p99": float(np.median([p["percentiles_ms"][2] for p in per])),
            "latency_ms_by_execution": np.median(latency, axis=1).tolist(),
            "invoke_ms_p50": None if invoke[0] is None else float(np.median(invoke)),
            "inference_samples_per_s": float(np.median([p["samples_per_s"] for p in per])),
        }
    pairs = []
    for pair in spec["pairs"]:
        slow = [e["models"][pair["slow"]] for e in executions]
        fast = [e["models"][pair["fast"]] for e in executions]
        row = {**pair}

        def paired(key, invert=False, slow=slow, fast=fast):
            groups = []
            for s, f in zip(slow, fast, strict=True):
                a, b = np.asarray(s[key], dtype=float), np.asarray(f[key], dtype=float)
                groups.append(b / a if invert else a / b)
            return measure.paired_speedup(groups)

        (row["inference_speedup"], row["inference_ci"],
         row["method"]) = paired("latency_ms")
        row["throughput_speedup"], row["throughput_ci"], _ = paired("samples_per_s",
                                                                     invert=True)
        if slow[0]["invoke_ms"] is not None and fast[0]["invoke_ms"] is not None:
            row["invoke_speedup"], row["invoke_ci"], _ = paired("invoke_ms")
        pairs.append(row)
    return {
        "executions": len(executions),
        "rounds": spec["rounds"],
        "calls": spec["calls"],
        "batch_size": spec["batch_size"],
        "fingerprint": executions[0]["fingerprint"] if executions else None,
        "models": models,
        "pairs": pairs,
        "raw": [{"index": e["index"], "load_order": e["load_order"], "models": e["models"]}
                for e in executions],
    }
