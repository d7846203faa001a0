#!/usr/bin/env bash
# GPU check: run the engine (python -m runners run SPEC.json) for the seed CNN on synthetic
# 32x32x3 data, baseline / XLA / mixed precision at two batch sizes, and print the machine's
# fingerprint and a markdown table of the results. Meant for the device tool's GPU machine
# (Python 3.12 with JAX, no TensorFlow; see shared/GPU.md), where it runs Keras on the JAX
# backend; it runs the same way on a CPU (hardware "cpu" when nvidia-smi lists no GPU).
#
#   scripts/gpu_check.sh                        # from anywhere; works in the repo root
#   GPU_CHECK_EPOCHS=2 GPU_CHECK_SAMPLES=400 scripts/gpu_check.sh   # a quick try on a CPU
#
# Wheels in .whl/ (Keras and its pure-Python dependencies, carried to the GPU machine) are
# installed into .site/ first; without .whl/ the installed Keras is used.
# Output: stdout, and $OUT/gpu_check.md, $OUT/gpu_check.json and $OUT/events/*.jsonl when
# OUT is set. Recipes that need TensorFlow (TFLite quantization, tf.distribute) are listed
# as "needs TensorFlow" where it is absent. Exit status: 0 when every recipe that does not
# need TensorFlow succeeded, 1 otherwise (the table is written either way).
#
# Environment (defaults in brackets):
#   GPU_CHECK_EPOCHS [3]          epochs per run (throughput: median of epochs after the first)
#   GPU_CHECK_SAMPLES [8000]      synthetic samples (70% train, 10% validation, 20% test)
#   GPU_CHECK_BATCHES ["32 512"]  training (and inference throughput) batch sizes
#   GPU_CHECK_RECIPES [all]       comma-separated subset of: baseline, xla, mixed_float16,
#                                 mixed_bfloat16, mixed_float16+xla, mixed_bfloat16+xla,
#                                 ptq_int8, data_parallel
#   GPU_CHECK_TRIALS [5]          benchmark trials (latency, inference throughput)
#   GPU_CHECK_LATENCY_SAMPLES [50]  single-sample predictions per latency trial
#   GPU_CHECK_WARMUP [10]         untimed calls before the benchmark
#   GPU_CHECK_HARDWARE [auto]     gpu when nvidia-smi lists a GPU, else cpu
#   GPU_CHECK_RUN_TIMEOUT [600]   seconds one run may take
#   GPU_CHECK_WHEELS [.whl]       folder of wheels to install first ("none": install nothing)
#   PYTHON [python3]              the interpreter; KERAS_BACKEND [jax]
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

PYTHON=${PYTHON:-python3}
export KERAS_BACKEND=${KERAS_BACKEND:-jax} PYTHONUNBUFFERED=1
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

wheels=${GPU_CHECK_WHEELS:-.whl}
if compgen -G "$wheels/*.whl" >/dev/null; then
  echo "== installing the carried wheels from $wheels/ into .site/"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target .site "$wheels"/*.whl || { echo "gpu_check: installing $wheels/*.whl failed" >&2; exit 1; }
  export PYTHONPATH="$PWD/.site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "== no wheels in $wheels/: using the Keras that $PYTHON has"
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

echo "== nvidia-smi -L"
if gpu_list=$(nvidia-smi -L 2>&1) && grep -q '^GPU ' <<<"$gpu_list"; then
  echo "$gpu_list"
  detected=gpu
else
  echo "no GPU listed (${gpu_list:-nvidia-smi not found})" | head -3
  detected=cpu
fi
hardware=${GPU_CHECK_HARDWARE:-auto}
[ "$hardware" = auto ] && hardware=$detected
export GPU_CHECK_HARDWARE_RESOLVED=$hardware
echo "== $("$PYTHON" --version 2>&1), KERAS_BACKEND=$KERAS_BACKEND, hardware $hardware"

exec "$PYTHON" - <<'PY'
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

env = os.environ
EPOCHS = int(env.get("GPU_CHECK_EPOCHS", "3"))
SAMPLES = int(env.get("GPU_CHECK_SAMPLES", "8000"))
BATCHES = [int(b) for b in env.get("GPU_CHECK_BATCHES", "32 512").replace(",", " ").split()]
TRIALS = int(env.get("GPU_CHECK_TRIALS", "5"))
LATENCY_SAMPLES = int(env.get("GPU_CHECK_LATENCY_SAMPLES", "50"))
WARMUP = int(env.get("GPU_CHECK_WARMUP", "10"))
RUN_TIMEOUT = float(env.get("GPU_CHECK_RUN_TIMEOUT", "600"))
HARDWARE = env["GPU_CHECK_HARDWARE_RESOLVED"]
OUT = Path(env["OUT"]) if env.get("OUT") else None

MIXED16 = {"technique": "mixed_precision", "policy": "mixed_float16"}
MIXEDBF = {"technique": "mixed_precision", "policy": "mixed_bfloat16"}
XLA = {"technique": "xla"}
# name -> (steps, needs TensorFlow, runs at every batch size)
RECIPES = {
    "baseline": ([], False, True),
    "xla": ([XLA], False, True),
    "mixed_float16": ([MIXED16], False, True),
    "mixed_bfloat16": ([MIXEDBF], False, True),
    "mixed_float16+xla": ([MIXED16, XLA], False, True),
    "mixed_bfloat16+xla": ([MIXEDBF, XLA], False, True),
    # TensorFlow-only techniques: one run each, at the first batch size.
    "ptq_int8": ([{"technique": "ptq", "mode": "dynamic_int8"}], True, False),
    "data_parallel": ([{"technique": "data_parallel"}], True, False),
}
# shared/GPU.md: H200, Keras 3.15.1 + JAX 0.11.2, seed CNN, 32x32x3 synthetic data.
REFERENCE_H200 = {
    ("baseline", 32): 686, ("baseline", 512): 8147,
    ("xla", 32): 27761, ("xla", 512): 254383,
    ("mixed_bfloat16+xla", 32): 21438, ("mixed_bfloat16+xla", 512): 240570,
    ("mixed_float16+xla", 32): 21940, ("mixed_float16+xla", 512): 262504,
}

wanted = env.get("GPU_CHECK_RECIPES", "").replace(" ", "")
names = [n for n in wanted.split(",") if n] if wanted else list(RECIPES)
unknown = [n for n in names if n not in RECIPES]
if unknown:
    sys.exit(f"gpu_check: unknown recipe(s) {', '.join(unknown)}; choose from {', '.join(RECIPES)}")


def engine_spec(steps, batch):
    return {
        "name": "gpu check, seed CNN",
        "model": {"arch": "seed_cnn", "params": {}},
        "dataset": {"name": "synthetic", "samples": SAMPLES, "shape": [32, 32, 3],
                    "classes": 10, "seed": 0},
        "training": {"epochs": EPOCHS, "batch_size": batch, "optimizer": "adam",
                     "learning_rate": 0.001, "seed": 0},
        "benchmark": {"trials": TRIALS, "latency_samples": LATENCY_SAMPLES, "warmup": WARMUP,
                      "batch_size": batch},
        "hardware": HARDWARE,
        "steps": steps,
    }


def run_one(name, steps, batch, workdir):
    slug = f"{name.replace('+', '_')}_b{batch}"
    spec_path = workdir / f"{slug}.json"
    spec_path.write_text(json.dumps(engine_spec(steps, batch)))
    started = time.perf_counter()
    row = {"recipe": name, "batch": batch, "status": "failed", "result": None, "message": ""}
    try:
        proc = subprocess.run([sys.executable, "-m", "runners", "run", str(spec_path)],
                              capture_output=True, text=True, timeout=RUN_TIMEOUT)
        stdout, stderr, code = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        code = None
    row["seconds"] = time.perf_counter() - started
    events = []
    for line in stdout.splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    if OUT:
        (OUT / "events").mkdir(parents=True, exist_ok=True)
        (OUT / "events" / f"{slug}.jsonl").write_text(
            "".join(json.dumps(e) + "\n" for e in events))
        if stderr.strip():
            (OUT / "events" / f"{slug}.stderr.txt").write_text(stderr[-20000:])
    results = [e for e in events if e.get("event") == "result"]
    errors = [e.get("message", "") for e in events if e.get("event") == "error"]
    if results and code == 0:
        row.update(status="ok", result=results[-1])
    elif code is None:
        row["message"] = f"timed out after {RUN_TIMEOUT:g} s"
    else:
        tail = " ".join(stderr.strip().splitlines()[-1:])
        row["message"] = errors[-1] if errors else f"exit {code}: {tail}"[:300]
        if re.search(r"needs (the )?TensorFlow", row["message"]):
            row["status"] = "needs TensorFlow"
    return row


def fmt(value, digits=0):
    if value is None:
        return "—"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    return f"{round(value):,}"


def table(rows):
    lines = [
        "| recipe | batch | train samples/s | vs baseline | H200 reference (GPU.md) "
        "| compile s | latency p50 ms | inference samples/s | test accuracy | status |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    base = {r["batch"]: (r["result"] or {}).get("train_samples_per_s")
            for r in rows if r["recipe"] == "baseline" and r["status"] == "ok"}
    for r in rows:
        res = r["result"] or {}
        speed = res.get("train_samples_per_s")
        ratio = f"{speed / base[r['batch']]:.2f}x" if speed and base.get(r["batch"]) else "—"
        status = r["status"] if r["status"] != "failed" else f"failed: {r['message']}"
        if r["status"] == "needs TensorFlow":
            status += f" ({r['message']})"
        lines.append(
            f"| {r['recipe']} | {r['batch']} | {fmt(speed)} | {ratio} "
            f"| {fmt(REFERENCE_H200.get((r['recipe'], r['batch'])))} "
            f"| {fmt(res.get('compile_seconds'), 2)} | {fmt(res.get('latency_ms_p50'), 3)} "
            f"| {fmt(res.get('inference_samples_per_s'))} "
            f"| {fmt(res.get('test_accuracy'), 3)} | {status.replace('|', '/')} |"
        )
    return "\n".join(lines)


plan = []
for name in names:
    steps, _, every_batch = RECIPES[name]
    for batch in (BATCHES if every_batch else BATCHES[:1]):
        plan.append((name, steps, batch))

print(f"== {len(plan)} runs: seed CNN, synthetic {SAMPLES} x 32x32x3, {EPOCHS} epochs, "
      f"batches {BATCHES}, hardware {HARDWARE}", flush=True)
if OUT:
    OUT.mkdir(parents=True, exist_ok=True)
rows = []
with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
    for name, steps, batch in plan:
        row = run_one(name, steps, batch, Path(tmp))
        rows.append(row)
        speed = (row["result"] or {}).get("train_samples_per_s")
        detail = f"{speed:,.0f} train samples/s" if speed else row["message"]
        print(f"   {name:20} batch {batch:<5} {row['status']:16} {row['seconds']:6.1f} s  "
              f"{detail}", flush=True)

found = next((r["result"] for r in rows if r["result"]), None) or {}
fingerprint = found.get("fingerprint")
devices = found.get("devices")
report = "\n".join([
    "## GPU check: seed CNN, synthetic 32x32x3",
    "",
    f"{SAMPLES} samples, {EPOCHS} epochs, hardware `{HARDWARE}`, "
    f"KERAS_BACKEND={env.get('KERAS_BACKEND')}. train samples/s: median of the epochs after "
    "the first; latency: one sample per call; inference: at the training batch size.",
    "",
    "Fingerprint:",
    "",
    "```json",
    json.dumps({"fingerprint": fingerprint, "devices": devices}, indent=2),
    "```",
    "",
    table(rows),
    "",
])
print()
print(report)
if OUT:
    (OUT / "gpu_check.md").write_text(report)
    (OUT / "gpu_check.json").write_text(json.dumps(
        {"settings": {"epochs": EPOCHS, "samples": SAMPLES, "batches": BATCHES,
                      "hardware": HARDWARE, "backend": env.get("KERAS_BACKEND")},
         "fingerprint": fingerprint, "devices": devices, "runs": rows}, indent=2))
    print(f"written: {OUT / 'gpu_check.md'}, {OUT / 'gpu_check.json'}")

bad = [r for r in rows if r["status"] != "ok" and not RECIPES[r["recipe"]][1]]
tf_failed = [r for r in rows if RECIPES[r["recipe"]][1] and r["status"] == "failed"]
for r in bad + tf_failed:
    print(f"gpu_check: {r['recipe']} batch {r['batch']}: {r['message']}", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
