"""Results as the engine stores them, and a benchmark of them, for the Django tests of
comparisons, sign-offs and pages (tests/test_benchmark_stage.py runs the real stage).

`finish_recipe` ends every replicate of a recipe with a result; `benchmark_results` then
records a benchmark whose paired ratios per execution are the results' latency ratio
times a spread, so the interval around a ratio of 1.0 contains 1.0 and the one around 2.0
lies above it, as a real benchmark of such models would say.
"""

from experiments.comparison import AA_PAIR, pair_ids, primary_run, recipe_groups
from experiments.models import Benchmark, Run
from experiments.services import benchmark_runs
from runners.engine.measure import paired_speedup

FINGERPRINT = {"cpu_model": "Intel Xeon", "logical_cores": 2, "gpus": [],
               "backend": "tensorflow", "tensorflow": "2.21.0", "keras": "3.15.0"}
# Per epoch, the same for every run: paired epochs cancel it.
SPREAD = (0.95, 0.98, 1.0, 1.02, 1.05)
# Per replicate of a recipe (not of the baseline): what the train interval is made of.
# Symmetric in log, so the geometric means come out at the ratios given.
REPLICATE_JITTER = (1.0, 1 / 1.02, 1.02, 1 / 1.01, 1.01)
# Per benchmark execution.
EXECUTION_SPREAD = (1 / 1.03, 1 / 1.01, 1.0, 1.01, 1.03)


def result(*, train=1000.0, latency=2.0, accuracy=0.95, fingerprint=FINGERPRINT,
           replicate=0, jitter=False, **extra):
    """A result as the engine stores it: medians plus the per-epoch samples."""
    rate = train * (REPLICATE_JITTER[replicate % len(REPLICATE_JITTER)] if jitter else 1.0)
    return {
        "train_samples_per_s": rate,
        "train_samples_per_s_epochs": [round(rate * f, 3) for f in SPREAD],
        "latency_ms_p50": latency,
        "latency_samples": [round(latency * f, 5) for f in SPREAD],
        "model_bytes": 160_000, "test_accuracy": accuracy, "test_samples": 360,
        "runtime": "keras", "fingerprint": dict(fingerprint), **extra,
    }


def finish_recipe(run, **kwargs):
    """Every replicate of run's recipe succeeded with this result (the recipe's replicates
    get a little jitter in training speed, the baseline's none); returns the first."""
    runs = Run.objects.filter(experiment=run.experiment_id, position=run.position)
    for replicate in runs:
        Run.objects.filter(pk=replicate.pk).update(
            status=Run.Status.SUCCEEDED, progress=1.0,
            result=result(replicate=replicate.replicate, jitter=not run.is_baseline,
                          **kwargs))
    first = runs.order_by("replicate", "pk").first()
    return first


def benchmark_results(experiment):
    """Replace the experiment's benchmarks by one of its runs as they are now."""
    Benchmark.objects.filter(experiment=experiment).delete()
    runs = list(experiment.runs.all())
    groups = recipe_groups(runs)
    baseline = primary_run(groups[0])
    if baseline.status != Run.Status.SUCCEEDED:
        return None
    base = baseline.result or {}
    pairs = [_pair(AA_PAIR, base.get("latency_ms_p50"), base.get("latency_ms_p50"))]
    for position, group in groups.items():
        run = primary_run(group)
        if not position or run.status != Run.Status.SUCCEEDED or not run.result:
            continue
        ids, latency = pair_ids(run.pk), run.result.get("latency_ms_p50")
        pairs.append(_pair(ids["vs baseline"], base.get("latency_ms_p50"), latency))
        reference = run.result.get("reference")
        if reference:
            pairs.append(_pair(ids["vs float32 TFLite"], reference["latency_ms_p50"], latency))
            pairs.append(_pair(ids["runtime switch"], base.get("latency_ms_p50"),
                               reference["latency_ms_p50"]))
    return Benchmark.objects.create(
        experiment=experiment, status=Run.Status.SUCCEEDED, executions=5, rounds=20,
        runs=benchmark_runs(runs), result={"models": {}, "pairs": pairs})


def _pair(pair_id, slow, fast):
    groups = [[slow / fast * spread] * 3 for spread in EXECUTION_SPREAD]
    speedup, ci, method = paired_speedup(groups)
    return {"id": pair_id, "inference_speedup": speedup, "inference_ci": ci,
            "throughput_speedup": speedup, "throughput_ci": ci, "method": method}
