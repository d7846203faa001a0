"""Speedups of each run against the experiment's baseline, with confidence intervals.

A speedup is a ratio of medians. Its interval comes from a bootstrap over the per-trial
medians both runs recorded, so an identical pair of runs gives an interval around 1.0.
A quantized (TFLite) run is also compared with the float32 TFLite model of the same run:
the Keras -> TFLite switch is a gain of its own and is shown on its own line.

Every figure carries a tone for the page: "good" when its 95% interval lies wholly on the
better side of no change (1.0 for speedups, 0 for an accuracy delta), "bad" when wholly on
the worse side, "unclear" otherwise or when there is no interval.
"""

import math

from runners.engine.measure import speedup_ci

FINGERPRINT_KEYS = ("cpu_model", "logical_cores", "gpus", "backend", "tensorflow", "keras")


def ratio_ci(numerator_samples, denominator_samples):
    """95% bootstrap interval of median(numerator) / median(denominator), or None when
    either side has fewer than two samples to resample."""
    a = [s for s in numerator_samples or [] if s]
    b = [s for s in denominator_samples or [] if s]
    if len(a) < 2 or len(b) < 2:
        return None
    _, (low, high) = speedup_ci(a, b)
    return [round(low, 4), round(high, 4)]


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


def _latency_row(name, run_id, kind, slow, fast, comparable, reason=""):
    """How many times faster `fast` answers at batch 1 than `slow`."""
    accuracy_delta = (
        round(fast["test_accuracy"] - slow["test_accuracy"], 4)
        if fast.get("test_accuracy") is not None and slow.get("test_accuracy") is not None
        else None
    )
    accuracy_ci = accuracy_delta_ci(
        fast.get("test_accuracy"), fast.get("test_samples"),
        slow.get("test_accuracy"), slow.get("test_samples"),
    )
    inference_speedup = _ratio(slow.get("latency_ms_p50"), fast.get("latency_ms_p50"))
    inference_ci = ratio_ci(slow.get("latency_samples"), fast.get("latency_samples"))
    return {
        "run_id": run_id,
        "name": name,
        "kind": kind,
        "inference_speedup": inference_speedup,
        "inference_ci": inference_ci,
        "inference_verdict": verdict(inference_speedup, inference_ci),
        "inference_tone": tone(inference_speedup, inference_ci) if comparable else "unclear",
        # Both sizes are byte counts of the files: exact, no interval.
        "size_reduction": _ratio(slow.get("model_bytes"), fast.get("model_bytes")),
        "accuracy_delta": accuracy_delta,
        "accuracy_ci": accuracy_ci,
        "accuracy_verdict": accuracy_verdict(accuracy_delta, accuracy_ci),
        "accuracy_tone": tone(accuracy_delta, accuracy_ci, neutral=0.0),
        "comparable": comparable,
        "not_comparable_reason": "" if comparable else reason,
    }


def compare_runs(runs) -> list[dict]:
    baseline = next((r for r in runs if r.is_baseline and r.status == "succeeded"), None)
    if baseline is None or not baseline.result:
        return []
    base = baseline.result
    rows = []
    for run in runs:
        if run.is_baseline or run.status != "succeeded" or not run.result:
            continue
        result = run.result
        comparable = _fingerprint_key(result) == _fingerprint_key(base)
        reason = _difference_reason(fingerprint_differences([base, result]))
        row = _latency_row(run.name, run.pk, "vs baseline", base, result, comparable, reason)
        row["train_speedup"] = _ratio(
            result.get("train_samples_per_s"), base.get("train_samples_per_s")
        )
        # Throughput: higher is better, so the run's samples are the numerator.
        row["train_ci"] = ratio_ci(
            result.get("train_samples_per_s_epochs"), base.get("train_samples_per_s_epochs")
        )
        row["train_verdict"] = verdict(row["train_speedup"], row["train_ci"])
        row["train_tone"] = tone(row["train_speedup"], row["train_ci"]) if comparable \
            else "unclear"
        rows.append(row)
        reference = result.get("reference")
        if reference:
            quant = _latency_row(
                f"{run.name} vs TFLite float32", run.pk, "vs float32 TFLite",
                reference, result, True,
            )
            # The reference was measured on the run's test set, after the run.
            reference = {"test_samples": result.get("test_samples"), **reference}
            quant = _latency_row(
                f"{run.name} vs TFLite float32", run.pk, "vs float32 TFLite",
                reference, result, True,
            )
            switch = _latency_row(
                "runtime switch: Keras → TFLite float32", run.pk, "runtime switch",
                base, reference, comparable, reason,
            )
            for extra in (quant, switch):
                extra.update(train_speedup=None, train_ci=None, train_verdict="not measured",
                             train_tone="unclear")
            rows += [quant, switch]
    return rows


def pareto_front(points) -> list[bool]:
    """For (accuracy, latency) pairs, whether each is on the Pareto front: no other point
    is at least as accurate and at least as fast, and strictly better in one of the two."""
    def dominates(q, p):
        return q[0] >= p[0] and q[1] <= p[1] and (q[0] > p[0] or q[1] < p[1])

    return [not any(dominates(q, p) for q in points) for p in points]


def accuracy_latency_points(runs) -> list[dict]:
    """Each succeeded run as a point of test accuracy against batch-1 latency (p50), with
    whether it is on the Pareto front. Latencies measured on other hardware than the
    baseline's are plotted but kept off the front: they are not the same trade."""
    finished = [r for r in runs if r.status == "succeeded" and r.result
                and r.result.get("test_accuracy") is not None
                and r.result.get("latency_ms_p50")]
    baseline = next((r for r in finished if r.is_baseline), None)
    base_key = _fingerprint_key(baseline.result) if baseline else None
    points = [{
        "run_id": run.pk, "name": run.name, "baseline": run.is_baseline,
        "accuracy": run.result["test_accuracy"],
        "latency_ms": run.result["latency_ms_p50"],
        "comparable": base_key is None or _fingerprint_key(run.result) == base_key,
        "pareto": False,
    } for run in finished]
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


def advice_checks(runs) -> list[dict]:
    """Each piece of advice a run's result carries, next to what was measured: training
    throughput for training techniques, batch-1 latency against the float32 model in the
    same runtime for quantization."""
    rows = {(row["run_id"], row["kind"]): row for row in compare_runs(runs)}
    checks = []
    for run in runs:
        for item in (run.result or {}).get("advice") or []:
            quantized = item.get("technique") in ("ptq", "keras_quantize", "qat")
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
                "against": row["kind"], "verdict": verdict(measured, ci),
            })
    return checks
