"""Run every registered technique on the seed models; writes the "Recipes" section of
docs/benchmarks.md.

A benchmark, not a test, and the product's own path: per model and dataset, every recipe
and the baseline train `--repeats` times, one `python -m runners run` child at a time,
queued interleaved (baseline 1, recipe A 1, ..., baseline 2, ...) as a worker runs an
experiment; then one benchmark stage (`python -m runners bench`) measures every shipped
model side by side in fresh processes, the baseline twice as the A/A control. The rows
are experiments.comparison.compare_runs over those runs and that benchmark: the very
figures the dashboard would show.

    .venv/bin/python bench/recipes.py [--epochs 3] [--repeats 2] [--only xla,ptq] [--write]
"""

import argparse
import datetime
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

from stage import ROOT, benchmark, machine, measured, train, write_section

from experiments.comparison import compare_runs, primary_run, recipe_groups
from runners.engine.techniques import TECHNIQUES

SECTION = "## Recipes"
MODELS = ("seed_cnn", "seed_mlp")


def recipes(only):
    found = [("baseline", [])]
    # Each technique's bench_params make its row meaningful on a short run.
    for name in sorted(TECHNIQUES):
        if only and name not in only:
            continue
        for params in TECHNIQUES[name].bench_params:
            label = name + "".join(f" {v}" for v in params.values())
            found.append((label, [{"technique": name, **params}]))
    return found


def datasets(samples):
    return {"digits": {"name": "digits"},
            "synthetic 32x32x3": {"name": "synthetic", "samples": samples,
                                  "shape": [32, 32, 3], "classes": 10}}


def fmt_ratio(value, ci, verdict=None):
    if value is None:
        return "–" if not verdict or verdict == "not measured" else verdict
    text = f"{value:.2f}x"
    if ci:
        text += f" [{ci[0]:.2f}, {ci[1]:.2f}]"
    elif verdict:
        text += f" ({verdict})"
    return text


def fmt_break_even(costs):
    out = []
    for cost in costs:
        after = f"after {cost['after']:,} {cost['unit']}" if cost["after"] else "never"
        out.append(f"{cost['what']} {cost['seconds']:.2f} s: {after}")
    return "; ".join(out)


def table(rows, runs, failed):
    lines = [
        "| comparison | kind | runtime | train speedup [95% CI] | inference speedup, batch 1 "
        "[95% CI] | throughput speedup [95% CI] | size reduction | Δ accuracy [95% CI] | "
        "break-even |",
        "|" + "---|" * 9,
    ]
    for row in rows:
        accuracy = "–" if row["accuracy_delta"] is None else (
            f"{row['accuracy_delta']:+.3f}" + (
                f" [{row['accuracy_ci'][0]:+.3f}, {row['accuracy_ci'][1]:+.3f}]"
                if row["accuracy_ci"] else ""))
        cells = [
            row["name"], row["kind"], row.get("runtime") or "",
            fmt_ratio(row["train_speedup"], row["train_ci"], row["train_verdict"]),
            fmt_ratio(row["inference_speedup"], row["inference_ci"],
                      row["inference_verdict"]),
            fmt_ratio(row["throughput_speedup"], row["throughput_ci"],
                      row["throughput_verdict"]),
            "–" if row["size_reduction"] is None else f"{row['size_reduction']:.2f}x",
            accuracy, fmt_break_even(row.get("break_even") or []),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    for label, message in failed:
        lines.append(f"| {label} | failed | | | | | | | {message[:160]} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--samples", type=int, default=600, help="synthetic samples")
    parser.add_argument("--executions", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--only", default="", help="comma-separated techniques")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--datasets", default="digits,synthetic 32x32x3")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args(argv)
    only = {name for name in args.only.split(",") if name}
    command = "python bench/recipes.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    started = time.perf_counter()
    sections = []
    chosen = {name: spec for name, spec in datasets(args.samples).items()
              if name in args.datasets.split(",")}
    with tempfile.TemporaryDirectory(prefix="accelweb-recipes-") as workdir:
        for dataset_label, dataset in chosen.items():
            for model in args.models.split(","):
                base_spec = {
                    "name": f"{model} on {dataset_label}", "model": {"arch": model,
                                                                   "params": {}},
                    "dataset": dataset, "hardware": "cpu", "steps": [],
                    "training": {"epochs": args.epochs, "batch_size": 64, "seed": 0},
                    "benchmark": {"trials": 2, "latency_samples": 10, "warmup": 5},
                }
                runs = []
                for replicate in range(args.repeats):
                    for position, (label, step_list) in enumerate(recipes(only)):
                        run = train({**base_spec, "steps": step_list}, workdir, label=label,
                                    replicate=replicate, position=position)
                        print(f"{dataset_label} {model} {label} #{replicate + 1}: "
                              f"{run.status} {run.result['wall_seconds']:.1f}s",
                              file=sys.stderr, flush=True)
                        runs.append(run)
                # Each recipe's first succeeded replicate, as the worker picks them.
                first = [run for run in map(primary_run, recipe_groups(runs).values())
                         if run.ok]
                stage = benchmark(base_spec, first, workdir, executions=args.executions,
                                  rounds=args.rounds) if first and first[0].is_baseline \
                    else {"event": "error", "message": "the baseline failed",
                          "wall_seconds": 0.0}
                print(f"{dataset_label} {model} benchmark: {stage.get('event')} "
                      f"{stage['wall_seconds']:.0f}s", file=sys.stderr, flush=True)
                benchmarks = [measured(stage, first)] if stage.get("event") == "result" \
                    else []
                failed = [(f"{run.label} #{run.replicate + 1}",
                           str(run.result.get("message", "?")).replace("|", "/"))
                          for run in runs if not run.ok]
                if stage.get("event") != "result":
                    failed.append(("benchmark", str(stage.get("message", "?"))))
                rows = compare_runs(runs, benchmarks)
                sections.append(f"### {model} on {dataset_label}\n\n"
                                f"{table(rows, runs, failed)}\n")
    minutes = (time.perf_counter() - started) / 60
    text = f"""{SECTION}

Written by `bench/recipes.py` on {datetime.date.today().isoformat()} in {minutes:.0f} minutes.
Command: `{command}`

Per table: every recipe and the baseline trained {args.repeats} times ({args.epochs} epochs,
batch 64, seed 0 + replicate; synthetic data: {args.samples} samples), interleaved, one engine
process per run; then one benchmark stage over the first replicate's models
({args.executions} fresh processes x {args.rounds} rounds, random order). The first row of
each table is the A/A control: the baseline's file measured against itself. Inference and
throughput intervals: Student t over the benchmark's processes. Training intervals: the
replicates, paired. "vs float32 TFLite" compares a quantized model with the float32 model of
the same weights in the same runtime; "runtime switch" is Keras against that float32 model.
Break-even: after how many inferences (or training samples) a one-time cost is paid back.

Machine:

```json
{json.dumps(machine(), indent=2)}
```

{chr(10).join(sections)}"""
    print(text)
    if args.write:
        write_section(Path(args.output), SECTION, text)
        print(f"wrote {args.output} in {minutes:.1f} min", file=sys.stderr)


if __name__ == "__main__":
    main()
