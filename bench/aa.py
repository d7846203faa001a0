"""A/A calibration of AccelWeb's speedup intervals on this machine; writes the "A/A
calibration" section of docs/benchmarks.md.

A 95% interval must contain 1.0 in about 95% of comparisons of a thing with itself, and
exclude it when there is a real difference. This checks both through the real path: each
block trains, one engine process per run and queued interleaved as a worker runs them,
`--repeats` replicates of three arms:

- A, the seed MLP on digits (the baseline);
- B, the very same spec again (an A/A pair of separately trained runs);
- C, the seed MLP with 1024 units (the positive control: a real, known slowdown);

then runs the benchmark stage (`python -m runners bench`: fresh processes, rounds in
random order) over A, A's file loaded a second time (the product's A/A control), B and C.

    .venv/bin/python bench/aa.py [--blocks 20] [--repeats 3] [--write]

Per block that is three inference A/A comparisons (A vs A's file again, A vs B, and the
throughput of A vs A again), one training A/A comparison (A vs B over the replicates) and
one positive control for each of inference and training (A vs C). Intervals are the
product's (Student t over the units, see runners.engine.measure.T_INTERVAL_BELOW); the
hierarchical bootstrap is computed from the same rounds beside it, for comparison.
"""

import argparse
import datetime
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from stage import ROOT, benchmark, contains_one, machine, pairs, train, write_section

from experiments.comparison import AA_PAIR, pair_ids, train_speedup
from runners.engine.measure import paired_speedup

SECTION = "## A/A calibration"


def spec(units, epochs):
    return {"name": f"seed MLP {units}", "model": {"arch": "seed_mlp", "params": {"units": units}},
            "dataset": {"name": "digits"}, "hardware": "cpu", "steps": [],
            "training": {"epochs": epochs, "batch_size": 64, "seed": 0},
            "benchmark": {"trials": 1, "latency_samples": 5, "warmup": 5}}


def bootstrap_interval(raw, slow, fast, key="latency_ms"):
    """The hierarchical bootstrap's interval of a pair, from the benchmark's rounds."""
    groups = [np.asarray(e["models"][slow][key]) / np.asarray(e["models"][fast][key])
              for e in raw]
    return paired_speedup(groups, method="bootstrap")[1]


def block(index, args, workdir):
    arms = {"A": spec(64, args.epochs), "B": spec(64, args.epochs),
            "C": spec(1024, args.epochs)}
    trained = {arm: [] for arm in arms}
    for replicate in range(args.repeats):
        for arm, arm_spec in arms.items():
            run = train(arm_spec, workdir, label=arm, replicate=replicate,
                        baseline=arm == "A")
            if not run.ok:
                raise SystemExit(f"block {index} {arm}{replicate + 1} failed: {run.result}")
            trained[arm].append(run)
    a, b, c = (trained[arm][0] for arm in "ABC")
    # B and C are measured as "recipes" would be; their spec is A's but for C's width,
    # which the stage reads from the file.
    stage = benchmark(arms["A"], [a, b, c], workdir, executions=args.executions,
                      rounds=args.rounds, calls=args.calls)
    if stage.get("event") != "result":
        raise SystemExit(f"block {index} benchmark failed: {stage}")
    found = pairs(stage)
    aa, runs_aa, positive = (found[AA_PAIR], found[pair_ids(b.pk)["vs baseline"]],
                             found[pair_ids(c.pk)["vs baseline"]])
    train_aa = train_speedup(list(zip([r.result for r in trained["A"]],
                                      [r.result for r in trained["B"]], strict=True)))
    train_positive = train_speedup(list(zip([r.result for r in trained["A"]],
                                            [r.result for r in trained["C"]], strict=True)))
    raw = stage["raw"]
    return {
        "inference A/A (same file)": aa["inference_ci"],
        "inference A/A (same file), bootstrap": bootstrap_interval(raw, "baseline",
                                                                   "baseline-again"),
        "inference A/A (two runs)": runs_aa["inference_ci"],
        "throughput A/A (same file)": aa["throughput_ci"],
        "training A/A (two runs)": train_aa[1],
        "inference positive control": positive["inference_ci"],
        "training positive control": train_positive[1],
        "speedups": {"inference positive": positive["inference_speedup"],
                     "training positive": train_positive[0],
                     "inference A/A": aa["inference_speedup"]},
        "seconds": {"benchmark": stage["wall_seconds"],
                    "training": sum(r.result["wall_seconds"] for rs in trained.values()
                                    for r in rs)},
    }


A_A_KEYS = ("inference A/A (same file)", "inference A/A (same file), bootstrap",
            "inference A/A (two runs)", "throughput A/A (same file)", "training A/A (two runs)")
PRODUCT_INFERENCE_KEYS = ("inference A/A (same file)", "inference A/A (two runs)",
                          "throughput A/A (same file)")
POSITIVE_KEYS = ("inference positive control", "training positive control")


def summary(blocks):
    rows = []
    for key in A_A_KEYS:
        cis = [b[key] for b in blocks]
        covered = sum(contains_one(ci) for ci in cis)
        widths = [ci[1] / ci[0] for ci in cis if ci]
        rows.append((key, "contains 1.0", covered, len(cis), float(np.median(widths))))
    # The goal is over the product's inference intervals, all three kinds together (the
    # bootstrap row is a re-analysis, not what the product shows).
    cis = [b[key] for b in blocks for key in PRODUCT_INFERENCE_KEYS]
    covered = sum(contains_one(ci) for ci in cis)
    rows.append(("all inference A/A, the product's intervals", "contains 1.0", covered,
                 len(cis), float(np.median([ci[1] / ci[0] for ci in cis if ci]))))
    for key in POSITIVE_KEYS:
        cis = [b[key] for b in blocks]
        detected = sum(ci is not None and ci[1] < 1.0 for ci in cis)
        widths = [ci[1] / ci[0] for ci in cis if ci]
        rows.append((key, "lies below 1.0", detected, len(cis), float(np.median(widths))))
    return rows


def render(blocks, args, command, minutes):
    stopped = "" if len(blocks) == args.blocks else f" of {args.blocks} (still running)"
    lines = [
        SECTION, "",
        f"Written by `bench/aa.py` on {datetime.date.today().isoformat()} in "
        f"{minutes:.0f} minutes. Command: `{command}`", "",
        f"{len(blocks)} blocks{stopped}. Each block trains the seed MLP on digits "
        f"({args.epochs} epochs, "
        f"{args.repeats} replicates, interleaved) twice over, A and B, and a 1024-unit MLP, C, "
        f"one `python -m runners run` process per run; then one benchmark stage "
        f"(`python -m runners bench`: {args.executions} fresh processes x {args.rounds} rounds "
        f"of {args.calls} batch-1 calls per model, random order) over A, A's file loaded "
        "again, B and C. Goals (issue 10): at least 95% of inference A/A intervals and 90% "
        "of training A/A intervals (repeats=3) contain 1.0; at least 90% of positive "
        "controls are detected.", "",
        "| comparison | the 95% interval ... | in | of | median width (high/low) |",
        "|---|---|---|---|---|",
    ]
    for key, what, count, total, width in summary(blocks):
        lines.append(f"| {key} | {what} | {count} ({count / total:.0%}) | {total} | "
                     f"{width:.3f} |")
    speedups = [b["speedups"] for b in blocks]
    lines += [
        "",
        "The positive control, C against A, came out at "
        f"{np.median([s['inference positive'] for s in speedups]):.2f}x inference speed "
        f"(median over blocks) and {np.median([s['training positive'] for s in speedups]):.2f}x "
        "training throughput. The product's intervals are Student t over the executions "
        "(inference) or the replicates (training); the bootstrap row re-analyses the same "
        "rounds with the two-level percentile bootstrap (executions, then rounds).", "",
        "Machine:", "", "```json", json.dumps(machine(), indent=2), "```", "",
        "<details><summary>Every interval</summary>", "",
        "```json", json.dumps(blocks, indent=1), "```", "", "</details>",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--executions", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args(argv)
    command = "python bench/aa.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    started = time.perf_counter()
    blocks = []
    with tempfile.TemporaryDirectory(prefix="accelweb-aa-") as workdir:
        for index in range(args.blocks):
            blocks.append(block(index, args, Path(workdir) / f"block-{index}"))
            done = blocks[-1]
            print(f"block {index + 1}/{args.blocks}: " + ", ".join(
                f"{key} {done[key]}" for key in (*A_A_KEYS, *POSITIVE_KEYS)),
                file=sys.stderr, flush=True)
            if args.write:
                # After every block: an hour's calibration stopped part way keeps what it
                # measured, and says how far it got.
                write_section(Path(args.output), SECTION, render(
                    blocks, args, command, (time.perf_counter() - started) / 60))
    for key, what, count, total, width in summary(blocks):
        print(f"{key}: {what} in {count}/{total}; median width {width:.3f}")
    if args.write:
        print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
