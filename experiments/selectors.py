"""Reads that build pages and websocket snapshots from the database."""

from .comparison import compare_runs
from .models import Run, RunEvent

EPOCH_KEYS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")
TELEMETRY_KEYS = ("t", "cpu_percent", "rss_mb", "gpu_util", "gpu_mem_mb")
# A long run samples once a second; the page needs a few hundred points to draw its shape.
TELEMETRY_POINTS = 300


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
        buckets = max(1, max_points // 2)
        series = {key: minmax_downsample(points, buckets) for key, points in series.items()}
    return series


def run_state(run: Run) -> dict:
    return {
        "id": run.pk,
        "name": run.name,
        "baseline": run.is_baseline,
        "status": run.status,
        "progress": round(run.progress, 4),
        "epochs_done": run.epochs_done,
        "worker": run.worker,
        "device": run.device,
        "error": run.error,
        "cancel_requested": run.cancel_requested,
    }


def experiment_snapshot(experiment, runs=None) -> dict:
    """Everything the experiment page draws, in two queries whatever the size."""
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
            curves[run_id].append({key: data.get(key) for key in EPOCH_KEYS})
        else:
            telemetry[run_id].append({key: data.get(key) for key in TELEMETRY_KEYS})
    return {
        "experiment": {"id": experiment.pk, "name": experiment.name},
        "epochs": experiment.spec.get("training", {}).get("epochs"),
        "runs": [{**run_state(run), "epochs": curves[run.pk],
                  "telemetry": _thin(telemetry[run.pk], TELEMETRY_POINTS)} for run in runs],
        "comparison": compare_runs(runs),
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
