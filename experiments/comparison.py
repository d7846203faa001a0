"""Speedups of each run against the experiment's baseline, with confidence intervals.

A speedup is a ratio of medians. Its interval comes from a bootstrap over the per-trial
medians both runs recorded, so an identical pair of runs gives an interval around 1.0.
A quantized (TFLite) run is also compared with the float32 TFLite model of the same run:
the Keras -> TFLite switch is a gain of its own and is shown on its own line.
"""

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


def _latency_row(name, run_id, kind, slow, fast, comparable):
    """How many times faster `fast` answers at batch 1 than `slow`."""
    return {
        "run_id": run_id,
        "name": name,
        "kind": kind,
        "inference_speedup": _ratio(slow.get("latency_ms_p50"), fast.get("latency_ms_p50")),
        "inference_ci": ratio_ci(slow.get("latency_samples"), fast.get("latency_samples")),
        "size_reduction": _ratio(slow.get("model_bytes"), fast.get("model_bytes")),
        "accuracy_delta": (
            round(fast["test_accuracy"] - slow["test_accuracy"], 4)
            if fast.get("test_accuracy") is not None and slow.get("test_accuracy") is not None
            else None
        ),
        "comparable": comparable,
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
        row = _latency_row(run.name, run.pk, "vs baseline", base, result, comparable)
        row["train_speedup"] = _ratio(
            result.get("train_samples_per_s"), base.get("train_samples_per_s")
        )
        # Throughput: higher is better, so the run's samples are the numerator.
        row["train_ci"] = ratio_ci(
            result.get("train_samples_per_s_epochs"), base.get("train_samples_per_s_epochs")
        )
        rows.append(row)
        reference = result.get("reference")
        if reference:
            quant = _latency_row(
                f"{run.name} vs TFLite float32", run.pk, "vs float32 TFLite",
                reference, result, True,
            )
            switch = _latency_row(
                "runtime switch: Keras → TFLite float32", run.pk, "runtime switch",
                base, reference, comparable,
            )
            quant["train_speedup"] = switch["train_speedup"] = None
            quant["train_ci"] = switch["train_ci"] = None
            rows += [quant, switch]
    return rows


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
