"""Reads that build pages and websocket snapshots from the database."""

from runners.engine.data import SYNTHETIC_DEFAULTS, describe

from .comparison import accuracy_latency_points, compare_runs
from .models import Benchmark, Dataset, Run, RunEvent

EPOCH_KEYS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")
TELEMETRY_KEYS = ("t", "cpu_percent", "rss_mb", "gpu_util", "gpu_mem_mb")
# A long run samples once a second; the page needs a few hundred points to draw its shape.
TELEMETRY_POINTS = 300
# The most points a curve (or the list of epoch records) carries to a browser: enough to
# draw its shape, few enough that a 10,000-epoch run costs the same as a 300-epoch one.
CURVE_POINTS = 300
# The most runs compared side by side (page and API).
MAX_COMPARED = 12
# How many of an experiment's benchmarks are read to find the one that measured each run
# as it is now (the newest, mostly; an older one when a re-benchmark failed).
BENCHMARKS_READ = 10


def _thin(points, limit):
    if len(points) <= limit:
        return points
    step = len(points) / limit
    return [points[int(i * step)] for i in range(limit - 1)] + [points[-1]]


def minmax_downsample(points, buckets):
    """Thin a series of [x, y] points to at most 2 * buckets, keeping each bucket's lowest
    and highest y in x order, so spikes and dips survive where plain striding drops them."""
    if buckets < 1:
        raise ValueError("buckets must be at least 1")
    if len(points) <= 2 * buckets:
        return list(points)
    size = len(points) / buckets
    out = []
    for index in range(buckets):
        bucket = points[int(index * size):int((index + 1) * size)]
        finite = [p for p in bucket if p[1] is not None]
        if not finite:
            continue
        low = min(finite, key=lambda p: p[1])
        high = max(finite, key=lambda p: p[1])
        out += sorted({id(low): low, id(high): high}.values(), key=lambda p: p[0])
    return out


SERIES_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


def run_series(run: Run, *, max_points: int | None = None) -> dict:
    """A run's epoch curves as [x, y] series: each metric against the epoch, and
    validation accuracy against cumulative training seconds (time to accuracy).
    With max_points, each series is min/max downsampled to at most that many points."""
    epochs = RunEvent.objects.filter(run=run, kind="epoch").order_by("seq").values_list(
        "data", flat=True
    )
    return series_from_epochs(list(epochs), max_points=max_points)


def series_from_epochs(epochs, *, max_points: int | None = None) -> dict:
    series = {key: [] for key in SERIES_KEYS}
    series["val_accuracy_by_time"] = []
    elapsed = 0.0
    for data in epochs:
        epoch = data.get("epoch")
        for key in SERIES_KEYS:
            if data.get(key) is not None:
                series[key].append([epoch, data[key]])
        elapsed += data.get("seconds") or 0.0
        if data.get("val_accuracy") is not None:
            series["val_accuracy_by_time"].append([round(elapsed, 4), data["val_accuracy"]])
    if max_points:
        series = downsample_series(series, max_points)
    return series


def downsample_series(series: dict, max_points: int) -> dict:
    """Each series min/max downsampled to at most max_points, keeping its first and last
    points: a curve must still start and end where the run did."""
    buckets = max(1, (max_points - 2) // 2)
    out = {}
    for key, points in series.items():
        thinned = minmax_downsample(points, buckets)
        if len(thinned) < len(points):
            if thinned[0] is not points[0]:
                thinned.insert(0, points[0])
            if thinned[-1] is not points[-1]:
                thinned.append(points[-1])
        out[key] = thinned
    return out


# Lower is better for losses, higher for accuracies.
BEST_IS_LOWEST = {"loss": True, "val_loss": True, "accuracy": False, "val_accuracy": False}


def curve_summary(series: dict) -> dict:
    """Last, best, lowest and highest value of each epoch curve, from every point (not the
    downsampled ones): {"val_accuracy": {"last": .., "best": .., "min": .., "max": ..}}."""
    summary = {}
    for key, lowest_is_best in BEST_IS_LOWEST.items():
        values = [y for _, y in series.get(key) or []]
        if not values:
            summary[key] = {"last": None, "best": None, "min": None, "max": None}
            continue
        low, high = min(values), max(values)
        summary[key] = {"last": values[-1], "best": low if lowest_is_best else high,
                        "min": low, "max": high}
    return summary


def curves_of(epochs, *, max_points: int = CURVE_POINTS) -> dict:
    """What a browser needs of a run's epochs: the downsampled series, each curve's summary
    (from all points), the cumulative seconds and the last epoch (so live epoch events can
    extend the series), and a thinned list of the epoch records themselves."""
    series = series_from_epochs(epochs)
    return {
        "epochs": _thin([{key: data.get(key) for key in EPOCH_KEYS} for data in epochs],
                        max_points),
        "series": downsample_series(series, max_points),
        "summary": curve_summary(series),
        "elapsed": round(sum(data.get("seconds") or 0.0 for data in epochs), 4),
        "last_epoch": max((data.get("epoch") or 0 for data in epochs), default=0),
    }


def compared_curves(runs, *, max_points: int = CURVE_POINTS) -> dict:
    """Runs of any experiments, in one query: {run id: {"series": downsampled series,
    "summary": each curve's last, best, min and max}}."""
    epochs = {run.pk: [] for run in runs}
    rows = (RunEvent.objects.filter(run__in=list(epochs), kind="epoch")
            .order_by("run_id", "seq").values_list("run_id", "data"))
    for run_id, data in rows:
        epochs[run_id].append(data)
    out = {}
    for pk, items in epochs.items():
        series = series_from_epochs(items)
        out[pk] = {"series": downsample_series(series, max_points),
                   "summary": curve_summary(series)}
    return out


def run_state(run: Run) -> dict:
    return {
        "id": run.pk,
        "name": run.label,
        "recipe": run.name,
        "replicate": run.replicate,
        "baseline": run.is_baseline,
        "status": run.status,
        "progress": round(run.progress, 4),
        "epochs_done": run.epochs_done,
        "worker": run.worker,
        "device": run.device,
        "error": run.error,
        "cancel_requested": run.cancel_requested,
    }


def experiment_benchmarks(experiment) -> list[Benchmark]:
    """The experiment's newest benchmarks, newest first, without their raw rounds."""
    return list(Benchmark.objects.filter(experiment=experiment).defer("raw")
                .select_related("requested_by").order_by("-created_at", "-pk")
                [:BENCHMARKS_READ])


def benchmark_state(benchmark: Benchmark | None) -> dict | None:
    """What the page shows of the benchmark stage while it waits for it."""
    if benchmark is None:
        return None
    return {
        "id": benchmark.pk,
        "status": benchmark.status,
        "stage": benchmark.stage,
        "execution": benchmark.execution,
        "executions": benchmark.executions,
        "progress": round(benchmark.progress, 4),
        "error": benchmark.error,
    }


def experiment_classes(experiment) -> int | None:
    """How many classes the experiment's dataset has, as the engine sees them: counted on
    upload for an uploaded one (a query), from the spec for the built-in ones. None when
    unknown."""
    dataset = (experiment.spec or {}).get("dataset") or {}
    name = dataset.get("name", "digits")
    if name == "npz":
        dataset_id = dataset.get("dataset_id")
        if not isinstance(dataset_id, int) or isinstance(dataset_id, bool):
            return None
        return (Dataset.objects.filter(pk=dataset_id, team=experiment.team_id)
                .values_list("num_classes", flat=True).first())
    if name == "synthetic":
        classes = dataset.get("classes", SYNTHETIC_DEFAULTS["classes"])
        return classes if isinstance(classes, int) and not isinstance(classes, bool) else None
    if name == "digits":
        return describe({"name": "digits"})["num_classes"]
    return None


def experiment_comparison(experiment, runs=None, benchmarks=None) -> list[dict]:
    """compare_runs over the experiment's runs and its benchmarks."""
    runs = list(experiment.runs.all()) if runs is None else runs
    benchmarks = experiment_benchmarks(experiment) if benchmarks is None else benchmarks
    return compare_runs(runs, benchmarks, classes=experiment_classes(experiment))


def experiment_snapshot(experiment, runs=None, benchmarks=None) -> dict:
    """Everything the experiment page draws, in three queries whatever the size."""
    runs = list(experiment.runs.all()) if runs is None else runs
    curves = {run.pk: [] for run in runs}
    telemetry = {run.pk: [] for run in runs}
    rows = (
        RunEvent.objects.filter(run__experiment=experiment, kind__in=("epoch", "telemetry"))
        .order_by("run_id", "seq")
        .values_list("run_id", "kind", "data")
    )
    for run_id, kind, data in rows:
        if kind == "epoch":
            curves[run_id].append(data)
        else:
            telemetry[run_id].append({key: data.get(key) for key in TELEMETRY_KEYS})
    benchmarks = experiment_benchmarks(experiment) if benchmarks is None else benchmarks
    return {
        "experiment": {"id": experiment.pk, "name": experiment.name},
        "epochs": experiment.spec.get("training", {}).get("epochs"),
        "curve_points": CURVE_POINTS,
        "runs": [{**run_state(run), **curves_of(curves[run.pk]),
                  "telemetry": _thin(telemetry[run.pk], TELEMETRY_POINTS)} for run in runs],
        "benchmark": benchmark_state(benchmarks[0] if benchmarks else None),
        "comparison": compare_runs(runs, benchmarks, classes=experiment_classes(experiment)),
        "tradeoff": accuracy_latency_points(runs, benchmarks),
    }


def advice_before_run(user, hardware: str):
    """Advice for every technique at its defaults, for the runners of this hardware: the
    fingerprint of the team's latest run there, else this machine (the embedded runner)."""
    from runners.engine.advisor import advise

    from .techniques import catalog

    steps = [{"technique": t["technique"], **{p["name"]: p["default"] for p in t["params"]}}
             for t in catalog()]
    latest = (
        Run.objects.filter(experiment__team__memberships__user=user,
                           experiment__hardware=hardware, status=Run.Status.SUCCEEDED)
        .order_by("-finished_at").values_list("result", "worker").first()
    )
    if latest and (latest[0] or {}).get("fingerprint"):
        fingerprint = {**latest[0]["fingerprint"], "hardware": hardware}
        source = f"the {hardware.upper()} runner of your latest run ({latest[1]})"
        return advise(steps, fingerprint), source
    return advise(steps, hardware), f"this machine's {hardware.upper()}"
