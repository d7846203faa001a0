"""Speedups of each recipe against the experiment's baseline, with confidence intervals.

Inference speedups come from the experiment's benchmark stage (runners.engine.bench):
every shipped model measured side by side in the same fresh processes, paired ratios per
round, an interval from the spread between processes. The baseline measured against
itself there is the A/A control (the noise floor). Training speedups come from the
replicates (training.repeats): replicate i of the baseline and of a recipe trained with
the same seed, queued next to each other, paired; one replicate gives a point, no interval.
A quantized run is also compared with the float32 model of the same weights, and the
Keras -> TFLite switch is shown on its own line: that gain is not quantization's.

Every figure carries a tone for the page: "good" when its 95% interval lies wholly on the
better side of no change (1.0 for speedups, 0 for an accuracy delta), "bad" when wholly on
the worse side, "unclear" otherwise or when there is no interval.
"""

import math

from runners.engine.measure import paired_speedup, t_interval
from runners.engine.techniques import jit_compiled, quantizes

FINGERPRINT_KEYS = ("cpu_model", "logical_cores", "gpus", "backend", "tensorflow", "keras")


def _ratio(numerator, denominator):
    if not numerator or not denominator:
        return None
    return round(float(numerator) / float(denominator), 4)


def _fingerprint_key(result):
    fingerprint = (result or {}).get("fingerprint") or {}
    return tuple(str(fingerprint.get(key)) for key in FINGERPRINT_KEYS)


def fingerprint_differences(results) -> list[dict]:
    """The fingerprint keys on which the given results disagree, each with the distinct
    values in order of first appearance: [{"key": "cpu_model", "values": ["A", "B"]}]."""
    differences = []
    for key in FINGERPRINT_KEYS:
        values = []
        for result in results:
            value = str(((result or {}).get("fingerprint") or {}).get(key))
            if value not in values:
                values.append(value)
        if len(values) > 1:
            differences.append({"key": key, "values": values})
    return differences


def _difference_reason(differences) -> str:
    return "; ".join(f"{d['key']} differs ({' vs '.join(d['values'])})" for d in differences)


# Two-sided 95% normal quantile.
Z95 = 1.959963984540054


def wilson_interval(successes: float, n: int, z: float = Z95):
    """Wilson score interval of a proportion; (low, high)."""
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def chance_interval(classes: int, n: int, z: float = Z95):
    """Where the test accuracy of a model that guesses among `classes` lands on `n` test
    samples: 1/classes ± z·sqrt(p(1 - p)/n), the acceptance region of the score test of
    p = 1/classes. An accuracy lies in it exactly when its Wilson interval contains
    1/classes. (low, high), clamped to [0, 1]."""
    p = 1.0 / classes
    half = z * math.sqrt(p * (1 - p) / n)
    return max(0.0, p - half), min(1.0, p + half)


def chance_level(accuracy, classes, n, *, replicates: int = 1) -> dict | None:
    """The verdict on a baseline that scored `accuracy` on `n` test samples of `classes`
    classes, when it is no better than guessing: at or below the top of chance_interval
    (a baseline worse than chance has learnt nothing to compare with either). None when
    it is above, or when the classes or the sample count are unknown."""
    if accuracy is None or not classes or classes < 2 or not n:
        return None
    chance = 1.0 / classes
    low, high = chance_interval(classes, int(n))
    if accuracy > high:
        return None
    mean = f" (the mean of {replicates} replicates)" if replicates > 1 else ""
    level = "below chance level" if accuracy < low else "chance level"
    return {
        "accuracy": round(accuracy, 4), "classes": int(classes), "chance": round(chance, 4),
        "ci": [round(low, 4), round(high, 4)], "test_samples": int(n),
        "replicates": replicates,
        "message": (
            f"The baseline scored {accuracy * 100:.1f}% test accuracy{mean}, which is "
            f"{level} for {classes} classes ({chance * 100:.3g}%, interval "
            f"{low * 100:.1f}-{high * 100:.1f}% for {int(n):,} test samples): there is "
            "nothing to compare. Train longer, fix the data, or pick another model."),
    }


def accuracy_delta_ci(accuracy, n, base_accuracy, base_n):
    """95% interval of accuracy - base_accuracy by Newcombe's hybrid score method (Wilson
    intervals of each proportion, combined). It treats the two test passes as independent
    samples; both runs see the same test set, so for a paired difference it is on the wide
    (conservative) side. None without sample counts."""
    if accuracy is None or base_accuracy is None or not n or not base_n:
        return None
    low1, high1 = wilson_interval(accuracy * n, int(n))
    low2, high2 = wilson_interval(base_accuracy * base_n, int(base_n))
    delta = accuracy - base_accuracy
    low = delta - math.sqrt((accuracy - low1) ** 2 + (high2 - base_accuracy) ** 2)
    high = delta + math.sqrt((high1 - accuracy) ** 2 + (base_accuracy - low2) ** 2)
    return [round(low, 4), round(high, 4)]


def tone(value, ci, *, neutral=1.0):
    """"good" / "bad" when the interval excludes `neutral` on the better / worse side."""
    if value is None or ci is None:
        return "unclear"
    if ci[0] > neutral:
        return "good"
    if ci[1] < neutral:
        return "bad"
    return "unclear"


def accuracy_verdict(delta, ci):
    if delta is None:
        return "not measured"
    if ci is None:
        return "no interval"
    return {"good": "better", "bad": "worse"}.get(tone(delta, ci, neutral=0.0),
                                                  "no clear difference")


# Accuracies are stored as fractions (0.95; the spec's accuracy_budget 0.01, the API's
# accuracy_delta -0.0111); people read differences of them in percentage points.
MINUS = "\u2212"


def points(fraction, *, digits=1, signed=True) -> str:
    """An accuracy difference (a fraction) in percentage points: -0.0111 -> "−1.1 pts";
    "" for None. Unsigned for a budget: 0.01 -> "1 pt", 0.005 -> "0.5 pts"."""
    if fraction is None or isinstance(fraction, bool) or not math.isfinite(fraction):
        return ""
    value = round(fraction * 100, digits) + 0.0  # + 0.0: no "-0.0"
    if not signed:
        number = f"{abs(value):.{digits}f}".rstrip("0").rstrip(".")
        return f"{number} {'pt' if number == '1' else 'pts'}"
    sign = MINUS if value < 0 else "+" if value > 0 else ""
    return f"{sign}{abs(value):.{digits}f} pts"


def points_interval(ci, *, digits=1) -> str:
    """A 95% interval of an accuracy difference in points: "−2.3 to +0.4 pts"."""
    if not ci:
        return ""
    return f"{points(ci[0], digits=digits)[:-4]} to {points(ci[1], digits=digits)}"


def within_accuracy_budget(delta, budget) -> bool | None:
    """The sign-off's accuracy rule, the one place it is decided: the point estimate of
    the accuracy change (the mean paired difference over replicates, or the single
    difference) may fall by at most the budget. Its 95% interval is shown beside it and
    does not decide: with one replicate and a few hundred test samples it spans several
    points, so requiring its lower end within the budget would refuse nearly every recipe,
    and its verdict ("no clear difference": it contains 0) says nothing about the budget.
    None when the change is unknown."""
    if delta is None or budget is None:
        return None
    # Both are rounded fractions (4 decimals): a drop of exactly the budget is within it.
    return round(delta, 6) >= -round(budget, 6)


def budget_verdict(delta, budget) -> str:
    """within_accuracy_budget in words, for the verdict's cell and the refusal."""
    within = within_accuracy_budget(delta, budget)
    if within is None:
        return ""
    limit = points(budget, digits=2, signed=False)
    return (f"within the {limit} budget" if within else f"over the {limit} budget") + \
        " (judged on the point estimate)"


AA_PAIR = "aa"
ONE_RUN = "one run: repeat to get an interval"


def pair_ids(run_id) -> dict:
    """The benchmark pairs of a recipe's run, by comparison kind."""
    return {"vs baseline": f"run-{run_id}", "vs float32 TFLite": f"run-{run_id}-reference",
            "runtime switch": f"run-{run_id}-switch"}


def recipe_groups(runs) -> dict:
    """The runs of each recipe (position 0 is the baseline), replicates in order."""
    groups = {}
    for run in sorted(runs, key=lambda r: (r.position, r.replicate, r.pk)):
        groups.setdefault(run.position, []).append(run)
    return groups


def primary_run(group):
    """The run that stands for a recipe (its files are benchmarked, its sign-off is the
    recipe's): the first replicate that succeeded, else the first."""
    return next((r for r in group if r.status == "succeeded" and r.result), group[0])


def measured_key(run) -> str | None:
    """What a benchmark records of a run it measured: when the result it loaded ended."""
    return run.finished_at.isoformat() if run.finished_at else None


def _covering(benchmarks, *runs):
    """The newest succeeded benchmark that measured these runs as they are now."""
    for benchmark in benchmarks:
        if benchmark.status == "succeeded" and benchmark.result and all(
            (benchmark.runs or {}).get(str(run.pk)) == measured_key(run) for run in runs
        ):
            return benchmark
    return None


ENDED = ("succeeded", "failed", "cancelled")


def waiting_for(benchmarks, runs) -> str:
    """Why a row has no inference figure yet, for the page."""
    latest = benchmarks[0] if benchmarks else None
    if latest is not None and not latest.has_ended:
        return latest.stage
    if latest is not None and latest.status == "failed":
        return "the benchmark failed: re-benchmark"
    if latest is None and all(run.status in ENDED for run in runs):
        # Runs that ended before there was a benchmark stage, say.
        return "not benchmarked: re-benchmark"
    return "waiting for the benchmark"


def _pairs(benchmark) -> dict:
    return {pair["id"]: pair for pair in (benchmark.result or {}).get("pairs", [])} \
        if benchmark else {}


def best_speedup(rows) -> float | None:
    """The largest speedup of a recipe against the baseline in comparison rows, inference
    or training; None when none is measured. What the experiments list sorts by."""
    values = [row[key] for row in rows
              if row.get("kind") == "vs baseline" and row.get("comparable", True)
              for key in ("inference_speedup", "train_speedup") if row.get(key)]
    return max(values, default=None)


def _rounded(ci):
    return [round(ci[0], 4), round(ci[1], 4)] if ci else None


def _speed(prefix, speedup, ci):
    speedup = None if speedup is None else round(speedup, 4)
    return {f"{prefix}_speedup": speedup, f"{prefix}_ci": _rounded(ci),
            f"{prefix}_verdict": verdict(speedup, ci), f"{prefix}_tone": tone(speedup, ci)}


def _row(run_id, name, kind, *, slow, fast, pair, waiting, comparable=True, reason=""):
    """One comparison: how many times faster `fast` is than `slow` (result dicts, for the
    sizes and accuracies), inference from the benchmark `pair` (None: not yet measured)."""
    accuracy_delta = (
        round(fast["test_accuracy"] - slow["test_accuracy"], 4)
        if fast.get("test_accuracy") is not None and slow.get("test_accuracy") is not None
        else None
    )
    accuracy_ci = accuracy_delta_ci(
        fast.get("test_accuracy"), fast.get("test_samples"),
        slow.get("test_accuracy"), slow.get("test_samples"),
    )
    pair = pair or {}
    row = {
        "run_id": run_id,
        "name": name,
        "kind": kind,
        **_speed("inference", pair.get("inference_speedup"), pair.get("inference_ci")),
        **_speed("throughput", pair.get("throughput_speedup"), pair.get("throughput_ci")),
        "method": pair.get("method"),
        # Both sizes are byte counts of the files: exact, no interval.
        "size_reduction": _ratio(slow.get("model_bytes"), fast.get("model_bytes")),
        "accuracy_delta": accuracy_delta,
        "accuracy_ci": accuracy_ci,
        "accuracy_verdict": accuracy_verdict(accuracy_delta, accuracy_ci),
        "accuracy_tone": tone(accuracy_delta, accuracy_ci, neutral=0.0),
        "comparable": comparable,
        "not_comparable_reason": "" if comparable else reason,
        "train_speedup": None, "train_ci": None, "train_verdict": "not measured",
        "train_tone": "unclear", "replicates": 0,
        "break_even": [],
    }
    if not pair:
        row["inference_verdict"] = row["throughput_verdict"] = waiting
    if "invoke_speedup" in pair:
        row.update(_speed("invoke", pair["invoke_speedup"], pair.get("invoke_ci")))
    return row


def _read_as_noise(row, prefix):
    """A thing against itself is never faster or slower: its figure either contains 1.0,
    as it must, or says the machine was too noisy to tell."""
    if row[f"{prefix}_ci"] is None:
        return
    noisy = excludes_one(row[f"{prefix}_ci"])
    row[f"{prefix}_verdict"] = "too noisy: excludes 1.0" if noisy else "contains 1.0"
    row[f"{prefix}_tone"] = "bad" if noisy else "unclear"


def _replicate_pairs(base_group, group):
    """(baseline result, recipe result) of each replicate both succeeded in, on the same
    hardware and software (two workers may have run the two halves of a pair)."""
    base = {r.replicate: r.result for r in base_group if r.status == "succeeded" and r.result}
    return [(base[r.replicate], r.result) for r in group
            if r.status == "succeeded" and r.result and r.replicate in base
            and _fingerprint_key(r.result) == _fingerprint_key(base[r.replicate])]


def train_speedup(pairs):
    """Training throughput speedup from replicates: per replicate the ratios of its steady
    epochs, paired by epoch; the interval from the spread between replicates."""
    groups = []
    for base, result in pairs:
        a = base.get("train_samples_per_s_epochs") or []
        b = result.get("train_samples_per_s_epochs") or []
        count = min(len(a), len(b))
        if count and all(a[:count]) and all(b[:count]):
            groups.append([b[j] / a[j] for j in range(count)])
        elif base.get("train_samples_per_s") and result.get("train_samples_per_s"):
            # No per-epoch figures (an older engine's result): the medians, one ratio.
            groups.append([result["train_samples_per_s"] / base["train_samples_per_s"]])
    speedup, ci, method = paired_speedup(groups)
    return speedup, ci, len(groups), method


def replicate_accuracy_delta(pairs):
    """Mean paired accuracy difference over replicates and its Student-t interval: the
    spread between seeds is what a recipe's accuracy cost has to beat."""
    deltas = [result["test_accuracy"] - base["test_accuracy"] for base, result in pairs
              if result.get("test_accuracy") is not None
              and base.get("test_accuracy") is not None]
    if len(deltas) < 2:
        return None
    low, high = t_interval(deltas)
    # Two replicates give t = 12.7: the interval can reach past what a difference of two
    # accuracies can be, and it loses no coverage cut to [-1, 1].
    low, high = max(low, -1.0), min(high, 1.0)
    return round(sum(deltas) / len(deltas), 4), [round(low, 4), round(high, 4)]


def break_even(base, result, row, base_latency_ms) -> list[dict]:
    """After how many inferences (or training samples) each one-time cost of the recipe
    (XLA compilation, TFLite conversion, fine-tuning epochs) is paid back by its speedup
    against the baseline; "after": None means never (the recipe is not faster)."""
    out = []
    for cost in result.get("one_time_costs") or []:
        seconds = cost.get("seconds") or 0.0
        if cost.get("less_baseline"):
            # The baseline pays its own warm-up too; only the excess is the recipe's cost.
            seconds -= base.get(cost["less_baseline"]) or 0.0
        seconds = max(0.0, seconds)
        if cost.get("pays_back") == "training":
            speedup, ci, unit = row["train_speedup"], row["train_ci"], "training samples"
            rate = base.get("train_samples_per_s")
            per_unit = 1.0 / rate if rate else None
        else:
            speedup, ci, unit = row["inference_speedup"], row["inference_ci"], "inferences"
            per_unit = base_latency_ms / 1000.0 if base_latency_ms else None
        if speedup is None or per_unit is None:
            continue

        def after(s, seconds=seconds, per_unit=per_unit):
            # Each unit saves per_unit * (1 - 1/s) seconds; none when s <= 1.
            # Rounded first: 2 / 0.0002 is 10000.000000000002 in floats.
            return None if s is None or s <= 1.0 else math.ceil(
                round(seconds / (per_unit * (1.0 - 1.0 / s)), 6))

        out.append({
            "what": cost.get("what", "one-time cost"), "seconds": round(seconds, 4),
            "unit": unit, "after": after(speedup),
            # The faster end of the speedup's interval pays back soonest.
            "ci": [after(ci[1]), after(ci[0])] if ci else None,
        })
    return out


def baseline_at_chance(base_group, classes) -> dict | None:
    """chance_level of the baseline's succeeded replicates. With several, their mean
    accuracy decides, against the interval of one test set: every replicate is scored on
    the same test samples, so they do not add up to a larger sample, and one lucky seed
    does not lift a baseline that guesses."""
    scored = [r.result for r in base_group if r.status == "succeeded" and r.result
              and r.result.get("test_accuracy") is not None]
    if not scored:
        return None
    accuracy = sum(result["test_accuracy"] for result in scored) / len(scored)
    return chance_level(accuracy, classes, scored[0].get("test_samples"),
                        replicates=len(scored))


def compare_runs(runs, benchmarks=(), *, classes=None) -> list[dict]:
    """The experiment's comparison rows: the A/A control first, then per recipe its row
    against the baseline and, for a quantized recipe, against its float32 model and the
    runtime switch. `benchmarks` are the experiment's benchmarks, newest first; `classes`
    the dataset's, for the A/A row's `baseline_chance` (baseline_at_chance)."""
    benchmarks = list(benchmarks)
    groups = recipe_groups(runs)
    base_group = groups.get(0, [])
    baseline = primary_run(base_group) if base_group else None
    if baseline is None or baseline.status != "succeeded" or not baseline.result:
        return []
    base = baseline.result
    waiting = waiting_for(benchmarks, runs)
    covering = _covering(benchmarks, baseline)
    aa = _row(baseline.pk, "Noise floor: baseline vs itself", "A/A control", slow=base,
              fast=base, pair=_pairs(covering).get(AA_PAIR), waiting=waiting)
    aa.update(size_reduction=None, accuracy_delta=None, accuracy_ci=None,
              accuracy_verdict="not measured", accuracy_tone="unclear",
              benchmark_id=covering.pk if covering else None,
              baseline_chance=baseline_at_chance(base_group, classes))
    for prefix in ("inference", "throughput"):
        _read_as_noise(aa, prefix)
    rows = [aa]
    for position, group in groups.items():
        run = primary_run(group)
        if position == 0 or run.status != "succeeded" or not run.result:
            continue
        result = run.result
        comparable = _fingerprint_key(result) == _fingerprint_key(base)
        reason = _difference_reason(fingerprint_differences([base, result]))
        benchmark = _covering(benchmarks, baseline, run)
        pairs, ids = _pairs(benchmark), pair_ids(run.pk)
        row = _row(run.pk, run.name, "vs baseline", slow=base, fast=result,
                   pair=pairs.get(ids["vs baseline"]), waiting=waiting,
                   comparable=comparable, reason=reason)
        # The A/A control of the very benchmark this row's figures come from.
        row["noise_floor_ci"] = (pairs.get(AA_PAIR) or {}).get("inference_ci")
        base_latency = ((benchmark.result or {}).get("models", {}).get("baseline") or {}) \
            .get("latency_ms_p50") if benchmark else None
        replicated = _replicate_pairs(base_group, group)
        speedup, ci, count, method = train_speedup(replicated)
        row.update(_speed("train", speedup, ci), replicates=count, train_method=method,
                   runtime=result.get("runtime"), benchmark_id=benchmark.pk if benchmark
                   else None)
        if speedup is not None and ci is None:
            row["train_verdict"] = ONE_RUN
        if not comparable:
            row["train_tone"] = "unclear"
        accuracy = replicate_accuracy_delta(replicated)
        if accuracy is not None:
            delta, accuracy_ci = accuracy
            row.update(accuracy_delta=delta, accuracy_ci=accuracy_ci,
                       accuracy_verdict=accuracy_verdict(delta, accuracy_ci),
                       accuracy_tone=tone(delta, accuracy_ci, neutral=0.0))
        row["break_even"] = break_even(base, result, row, base_latency)
        rows.append(row)
        reference = result.get("reference")
        if reference:
            # The reference was measured on the run's test set, after the run.
            reference = {"test_samples": result.get("test_samples"), **reference}
            runtime = ((result.get("measured_files") or {}).get("reference") or {}).get(
                "runtime", "tflite")
            rows.append(_row(run.pk, f"{run.name} vs float32 {_RUNTIME_NAMES[runtime]}",
                             "vs float32 TFLite", slow=reference, fast=result,
                             pair=pairs.get(ids["vs float32 TFLite"]), waiting=waiting))
            if runtime == "tflite":
                rows.append(_row(run.pk, "runtime switch: Keras → TFLite float32",
                                 "runtime switch", slow=base, fast=reference,
                                 pair=pairs.get(ids["runtime switch"]), waiting=waiting,
                                 comparable=comparable, reason=reason))
    return rows


_RUNTIME_NAMES = {"tflite": "TFLite", "keras": "Keras"}


def runtime_label(result) -> str:
    """The runtime a run's own latencies were measured in: "keras", "keras + XLA jit" or
    "tflite"; "" when the result does not say. Latencies of different runtimes are not
    one technique's gain (a float32 TFLite model alone is 2.5-20x faster than Keras at
    batch 1), so the tables that list them side by side show it."""
    if not isinstance(result, dict) or not result.get("runtime"):
        return ""
    runtime = str(result["runtime"])
    shipped = (result.get("measured_files") or {}).get("runtime") or {}
    if "jit_compile" in shipped:
        jit = bool(shipped["jit_compile"])
    else:  # a result of an engine older than measured_files
        jit = jit_compiled(result.get("steps_applied") or [])
    return f"{runtime} + XLA jit" if runtime == "keras" and jit else runtime


def excludes_one(ci) -> bool:
    return bool(ci and (ci[0] > 1.0 or ci[1] < 1.0))


def noise_floor(rows) -> dict | None:
    """The A/A row, and whether it says the machine was too noisy: its inference interval
    excludes 1.0, so no speedup of this benchmark can be told from noise."""
    aa = next((row for row in rows if row["kind"] == "A/A control"), None)
    if aa is None:
        return None
    return {**aa, "too_noisy": excludes_one(aa["inference_ci"])}


def baseline_chance(rows) -> dict | None:
    """The A/A row's baseline_at_chance verdict: when the baseline scored no better than
    guessing, no recipe can be compared with it (and none signed off)."""
    aa = next((row for row in rows if row["kind"] == "A/A control"), None)
    return aa.get("baseline_chance") if aa else None


def pareto_front(points) -> list[bool]:
    """For (accuracy, latency) pairs, whether each is on the Pareto front: no other point
    is at least as accurate and at least as fast, and strictly better in one of the two."""
    def dominates(q, p):
        return q[0] >= p[0] and q[1] <= p[1] and (q[0] > p[0] or q[1] < p[1])

    return [not any(dominates(q, p) for q in points) for p in points]


def accuracy_latency_points(runs, benchmarks=()) -> list[dict]:
    """Each recipe's first succeeded run as a point of test accuracy against batch-1
    latency (p50: from the benchmark stage when it measured the run, else the run's own),
    with whether it is on the Pareto front. Runs trained on other hardware than the
    baseline are plotted but kept off the front: they are not the same trade."""
    benchmarks = list(benchmarks)
    groups = recipe_groups(runs)
    finished = [run for run in map(primary_run, groups.values())
                if run.status == "succeeded" and run.result
                and run.result.get("test_accuracy") is not None
                and run.result.get("latency_ms_p50")]
    baseline = next((r for r in finished if r.is_baseline), None)
    base_key = _fingerprint_key(baseline.result) if baseline else None
    points = []
    for run in finished:
        benchmark = _covering(benchmarks, baseline, run) if baseline else None
        model = "baseline" if run.is_baseline else f"run-{run.pk}"
        measured = ((benchmark.result or {}).get("models", {}).get(model) or {}) \
            if benchmark else {}
        points.append({
            "run_id": run.pk, "name": run.name, "baseline": run.is_baseline,
            "accuracy": run.result["test_accuracy"],
            "latency_ms": measured.get("latency_ms_p50") or run.result["latency_ms_p50"],
            "side_by_side": bool(measured),
            "comparable": base_key is None or _fingerprint_key(run.result) == base_key,
            "pareto": False,
        })
    candidates = [p for p in points if p["comparable"]]
    front = pareto_front([(p["accuracy"], p["latency_ms"]) for p in candidates])
    for point, on_front in zip(candidates, front, strict=True):
        point["pareto"] = on_front
    return points


def verdict(speedup, ci):
    """How a measured ratio reads: its interval, not its point value, decides."""
    if speedup is None:
        return "not measured"
    if ci is None:
        return "no interval"
    if ci[1] < 1.0:
        return "slower"
    if ci[0] > 1.0:
        return "faster"
    return "no clear difference"


def advice_checks(runs, rows) -> list[dict]:
    """Each piece of advice a run's result carries, next to what was measured: training
    throughput for training techniques, batch-1 latency against the float32 model in the
    same runtime for quantization. `rows` are compare_runs(runs, ...)."""
    rows = {(row["run_id"], row["kind"]): row for row in rows}
    checks = []
    for run in runs:
        for item in (run.result or {}).get("advice") or []:
            quantized = quantizes(item.get("technique"))
            row = rows.get((run.pk, "vs float32 TFLite")) if quantized else None
            row = row or rows.get((run.pk, "vs baseline"))
            if row is None:
                continue
            if quantized:
                measured, ci, what = row["inference_speedup"], row["inference_ci"], "inference"
            else:
                measured, ci, what = row["train_speedup"], row.get("train_ci"), "training"
            checks.append({
                "run": run.name, "technique": item.get("technique"),
                "message": item.get("message"), "what": what, "speedup": measured, "ci": ci,
                "against": row["kind"],
                "verdict": row["inference_verdict" if quantized else "train_verdict"],
            })
    return checks
