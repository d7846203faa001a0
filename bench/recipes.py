"""Run every registered technique on the seed models and write docs/benchmarks.md.

A benchmark, not a test: each recipe is a `python -m runners run` child, one at a time so runs
do not compete for the cores, on seed_cnn and seed_mlp, on digits and synthetic 32x32x3.

    .venv/bin/python bench/recipes.py [--epochs 3] [--samples 600] [--only xla,ptq]

Speedups are ratios of medians against the baseline of the same model and dataset, with a
bootstrap 95% interval over per-trial medians (latency) or per-epoch rates (training).
"""

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runners.engine import measure, steps  # noqa: E402
from runners.engine.fingerprint import fingerprint  # noqa: E402

# Parameters that make a technique's row meaningful on a short run; others use defaults.
STEP_PARAMS = {
    "mixed_precision": [{"policy": "mixed_float16"}, {"policy": "mixed_bfloat16"}],
    "ptq": [{"mode": "dynamic_int8"}, {"mode": "float16"}, {"mode": "full_int8"}],
    "keras_quantize": [{"mode": "int8"}],
    "op_parallelism": [{"intra_op_threads": 1, "inter_op_threads": 1}],
    "early_stop": [{"target_val_accuracy": 0.5}],
    "lr_schedule": [{"kind": "cosine"}],
    "large_batch": [{"factor": 4}],
}
MODELS = ("seed_cnn", "seed_mlp")


def recipes(only):
    names = sorted(steps.TECHNIQUES)
    found = [("baseline", [])]
    for name in names:
        if only and name not in only:
            continue
        for params in STEP_PARAMS.get(name, [{}]):
            label = name + "".join(f" {v}" for v in params.values())
            found.append((label, [{"technique": name, **params}]))
    return found


def datasets(samples):
    return {"digits": {"name": "digits"},
            "synthetic 32x32x3": {"name": "synthetic", "samples": samples,
                                  "shape": [32, 32, 3], "classes": 10}}


def run_one(spec, workdir):
    path = Path(workdir) / "spec.json"
    path.write_text(json.dumps(spec))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "runners", "run", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    last = events[-1] if events else {"event": "error", "message": proc.stderr[-300:]}
    last["wall_seconds"] = time.perf_counter() - started
    return last


def fmt(value, digits=3):
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def ratio_cell(baseline, candidate, invert=False):
    if not baseline or not candidate:
        return "–"
    a, b = (candidate, baseline) if invert else (baseline, candidate)
    if len(a) < 2 or len(b) < 2:
        return fmt(float(sum(a) / len(a) / (sum(b) / len(b))))
    speedup, (low, high) = measure.speedup_ci(a, b)
    return f"{speedup:.2f} [{low:.2f}, {high:.2f}]"


def table(rows):
    lines = [
        "| recipe | runtime | train samples/s [95% CI] | train speedup | latency p50 ms "
        "[95% CI] | latency speedup | vs reference | infer samples/s | test acc | Δ acc | "
        "bytes | gzip bytes | note |",
        "|" + "---|" * 13,
    ]
    base = rows[0][1] if rows and rows[0][0] == "baseline" else {}
    for label, r in rows:
        if r.get("event") != "result":
            message = r.get("message", r.get("event", "?")).replace("|", "/")
            lines.append(f"| {label} | failed | | | | | | | | | | | {message[:160]} |")
            continue
        train_ci = r.get("train_samples_per_s_ci95")
        lat_ci = r.get("latency_ms_ci95") or [None, None]
        ref = r.get("reference") or {}
        note = []
        for key in ("replicas", "scaling_efficiency", "sparsity", "time_to_accuracy_seconds",
                    "quantized_layers"):
            if r.get(key) not in (None, 0, 0.0):
                note.append(f"{key}={fmt(r[key])}")
        note += [a["technique"] + " advice" for a in r.get("advice") or []]
        delta = f"{r['test_accuracy'] - base['test_accuracy']:+.3f}" \
            if base.get("event") == "result" else "–"
        train = fmt(r.get("train_samples_per_s"), 4)
        if train_ci:
            train += f" [{fmt(train_ci[0], 4)}, {fmt(train_ci[1], 4)}]"
        cells = [
            label, r["runtime"], train,
            ratio_cell(base.get("train_samples_per_s_epochs"),
                       r.get("train_samples_per_s_epochs"), invert=True),
            f"{fmt(r['latency_ms_p50'])} [{fmt(lat_ci[0])}, {fmt(lat_ci[1])}]",
            ratio_cell(base.get("latency_samples"), r.get("latency_samples")),
            ratio_cell(ref.get("latency_samples"), r.get("latency_samples")),
            fmt(r.get("inference_samples_per_s"), 4), f"{r['test_accuracy']:.3f}", delta,
            str(r["model_bytes"]), str(r["model_gzip_bytes"]), ", ".join(note),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# The sections this script writes; other benchmarks (bench/curves.py) add their own.
OWN_SECTIONS = ("## Fingerprint", "## Results")


def other_sections(text: str, *, own) -> str:
    """The level-2 sections of a benchmarks file that another script wrote."""
    kept, keep = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("## "):
            keep = not line.startswith(own)
        if keep:
            kept.append(line)
    return "".join(kept)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=600, help="synthetic samples")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated techniques")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args(argv)
    only = {name for name in args.only.split(",") if name}
    command = "python bench/recipes.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    started = time.perf_counter()
    sections = []
    with tempfile.TemporaryDirectory() as workdir:
        for dataset_label, dataset in datasets(args.samples).items():
            for model in args.models.split(","):
                rows = []
                for label, step_list in recipes(only):
                    spec = {
                        "name": label, "model": {"arch": model, "params": {}},
                        "dataset": dataset, "hardware": "cpu", "steps": step_list,
                        "training": {"epochs": args.epochs, "batch_size": 64, "seed": 0},
                        "benchmark": {"trials": args.trials, "latency_samples": 30,
                                      "warmup": 10},
                    }
                    result = run_one(spec, workdir)
                    print(f"{dataset_label} {model} {label}: {result.get('event')} "
                          f"{result['wall_seconds']:.1f}s", file=sys.stderr, flush=True)
                    rows.append((label, result))
                sections.append(f"### {model} on {dataset_label}\n\n{table(rows)}\n")
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    import keras  # noqa: F401  (so the fingerprint names the versions the children used)

    if backend == "tensorflow":
        import tensorflow  # noqa: F401
    found = fingerprint(backend)
    minutes = (time.perf_counter() - started) / 60
    text = f"""# Benchmarks

Written by `bench/recipes.py` on {datetime.date.today().isoformat()} in {minutes:.1f} minutes.

Command: `{command}` (KERAS_BACKEND={backend})

Each row is one `python -m runners run` child ({args.epochs} epochs, batch 64, seed 0,
{args.trials} timing trials). Synthetic data: {args.samples} samples. Speedups are ratios of
medians against the baseline of the same table with a bootstrap 95% interval; "vs reference"
compares a quantized model with the float32 model of the same weights in the same runtime.
Keras latency is a warm compiled inference function (see each run's notes), TFLite runs in
LiteRT. Train figures are the epochs after the first; with few epochs the CIs are wide.
This machine's timings are noisy (other processes share its two cores); read the intervals.

## Fingerprint

```json
{json.dumps(found, indent=2)}
```

## Results

{chr(10).join(sections)}"""
    output = Path(args.output)
    kept = other_sections(output.read_text() if output.exists() else "", own=OWN_SECTIONS)
    output.write_text(text.rstrip("\n") + "\n" + ("\n" + kept if kept else ""))
    print(f"wrote {args.output} in {minutes:.1f} min", file=sys.stderr)


if __name__ == "__main__":
    main()
