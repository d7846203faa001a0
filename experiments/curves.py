"""A run's curves kept in the shape pages read (Run.curves), folded in as events arrive.

Pages used to load every epoch and telemetry event of an experiment and thin them on each
request, so a page cost grew with the epochs. Here each series keeps min/max buckets aligned
to powers of two: a bucket holds the lowest and the highest of `size` consecutive points;
when there are more than MAX_BUCKETS, neighbours merge pairwise and `size` doubles. A stored
run stays the same size whatever its epochs, one more point costs the same whatever came
before, and spikes survive (a spike is the highest point of its bucket). The summary (last,
best, lowest, highest) is kept exactly, from every point.

Plain JSON in, plain JSON out: no Django, so the migration's backfill and the tests use the
same code as ingestion.
"""

import math

SERIES_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")
# Validation accuracy against cumulative training seconds (time to accuracy).
BY_TIME = "val_accuracy_by_time"
TELEMETRY_KEYS = ("t", "cpu_percent", "rss_mb", "gpu_util", "gpu_mem_mb")
# The most points a series carries to a browser: enough to draw its shape.
CURVE_POINTS = 300
# Two points a bucket, plus the first and the last point of the series.
MAX_BUCKETS = (CURVE_POINTS - 2) // 2
# The most telemetry samples a run keeps (a long run samples once a second).
TELEMETRY_POINTS = 300
# Lower is better for losses, higher for accuracies.
BEST_IS_LOWEST = {"loss": True, "val_loss": True, "accuracy": False, "val_accuracy": False}
SIGNIFICANT_DIGITS = 6


def empty() -> dict:
    """The curves of a run with no events."""
    return {
        "last_epoch": 0,
        "elapsed": 0.0,
        "summary": {key: None for key in SERIES_KEYS},
        "series": {key: _empty_series() for key in (*SERIES_KEYS, BY_TIME)},
        "telemetry": {"stride": 1, "n": 0, "samples": [], "latest": None},
    }


def from_events(events) -> dict:
    return extend(empty(), events)


def extend(state: dict, events: list[dict]) -> dict:
    """Fold engine events into `state` (its keys are replaced, the objects they held are
    not changed, so a shallow copy of a stored state is safe to extend) and return it.
    An epoch at or below the last one folded in is ignored: extending twice with the same
    events changes nothing."""
    _own(state)
    for event in events:
        if not isinstance(event, dict):
            continue
        kind = event.get("event")
        if kind == "epoch":
            _add_epoch(state, event)
        elif kind == "telemetry":
            _add_telemetry(state["telemetry"], event)
    return state


def view(state: dict) -> dict:
    """What a browser draws: {"series": {key: [[x, y], ...]}, "summary": {key: {"last",
    "best", "min", "max"}}, "elapsed", "last_epoch", "telemetry": [{t, cpu_percent, ...}]}.
    Any part missing from `state` (an empty {} state, or only some keys read from the
    database) reads as empty."""
    series = state.get("series") or {}
    summary = state.get("summary") or {}
    telemetry = state.get("telemetry") or {}
    samples = list(telemetry.get("samples") or [])
    latest = telemetry.get("latest")
    if latest is not None and (not samples or samples[-1] != latest):
        samples.append(latest)
    return {
        "series": {key: _points(series.get(key)) for key in (*SERIES_KEYS, BY_TIME)},
        "summary": {key: dict(summary.get(key) or _NO_SUMMARY) for key in SERIES_KEYS},
        "elapsed": round(state.get("elapsed") or 0.0, 4),
        "last_epoch": state.get("last_epoch") or 0,
        "telemetry": samples,
    }


_NO_SUMMARY = {"last": None, "best": None, "min": None, "max": None}


def _empty_series() -> dict:
    # n points seen; buckets of `size` points, each [x_low, y_low, x_high, y_high].
    return {"n": 0, "size": 1, "first": None, "last": None, "buckets": []}


def _own(state: dict) -> None:
    """Give `state` containers of its own (filling in what an empty {} state lacks), so
    the caller's stored copy is never changed through shared lists."""
    base = empty()
    for key, value in base.items():
        state.setdefault(key, value)
    # Folding in changes a summary in place, and only the last bucket of a series: those
    # are copied, the rest is shared until a merge replaces the list.
    state["summary"] = {key: dict(value) if value else None for key, value in
                        {**base["summary"], **(state["summary"] or {})}.items()}
    state["series"] = {key: {**base["series"][key], **(state["series"] or {}).get(key, {})}
                       for key in base["series"]}
    for series in state["series"].values():
        series["buckets"] = list(series["buckets"])
        if series["buckets"]:
            series["buckets"][-1] = list(series["buckets"][-1])
    state["telemetry"] = {**base["telemetry"], **(state["telemetry"] or {})}
    state["telemetry"]["samples"] = list(state["telemetry"]["samples"])


def _number(value) -> float | None:
    """A finite number, else None: a diverged loss (NaN) or a stray string draws nothing."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _rounded(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def epoch_number(event: dict, last: int) -> int:
    # As ingestion counts epochs_done: an epoch that gives no number is the next one.
    try:
        return int(event.get("epoch", last + 1))
    except (TypeError, ValueError, OverflowError):
        return last + 1


def _add_epoch(state: dict, event: dict) -> None:
    epoch = epoch_number(event, state["last_epoch"])
    if epoch <= state["last_epoch"]:
        return
    state["last_epoch"] = epoch
    state["elapsed"] = state["elapsed"] + (_number(event.get("seconds")) or 0.0)
    series, summary = state["series"], state["summary"]
    for key in SERIES_KEYS:
        value = _number(event.get(key))
        if value is None:
            continue
        _add_point(series[key], epoch, value)
        _summarize(summary, key, value)
    value = _number(event.get("val_accuracy"))
    if value is not None:
        _add_point(state["series"][BY_TIME], round(state["elapsed"], 4), value)


def _summarize(summaries: dict, key: str, value: float) -> None:
    summary = summaries[key]
    if summary is None:
        summaries[key] = {"last": value, "best": value, "min": value, "max": value}
        return
    summary["last"] = value
    if value < summary["min"]:
        summary["min"] = value
    if value > summary["max"]:
        summary["max"] = value
    summary["best"] = summary["min"] if BEST_IS_LOWEST[key] else summary["max"]


def _add_point(series: dict, x, y: float) -> None:
    y = _rounded(y)
    point = [x, y]
    n = series["n"]
    if n == 0:
        series["first"] = point
    series["last"] = point
    buckets = series["buckets"]
    if n % series["size"] == 0:
        buckets.append([x, y, x, y])
    else:
        bucket = buckets[-1]  # this state's own (_own)
        if y < bucket[1]:
            bucket[0], bucket[1] = x, y
        if y > bucket[3]:
            bucket[2], bucket[3] = x, y
    series["n"] = n + 1
    if len(buckets) > MAX_BUCKETS:
        series["buckets"] = [_merged(buckets[i:i + 2]) for i in range(0, len(buckets), 2)]
        series["size"] *= 2


def _merged(pair: list) -> list:
    # On a tie the earlier point stays: the first bucket's.
    low = min(pair, key=lambda b: b[1])
    high = max(pair, key=lambda b: b[3])
    return [low[0], low[1], high[2], high[3]]


def _points(series: dict | None) -> list:
    """The series as [[x, y], ...] in x order: the first point, each bucket's lowest and
    highest, the last point."""
    if not series or not series.get("n"):
        return []
    out = [series["first"]]
    for x_low, y_low, x_high, y_high in series["buckets"]:
        pair = [[x_low, y_low], [x_high, y_high]]
        if x_high < x_low:
            pair.reverse()
        for point in pair:
            if point != out[-1]:
                out.append(point)
    if series["last"] != out[-1]:
        out.append(series["last"])
    return out


def _add_telemetry(telemetry: dict, event: dict) -> None:
    sample = {key: _telemetry_value(event.get(key)) for key in TELEMETRY_KEYS}
    latest = telemetry["latest"]
    # A sample at or before the latest one is one already folded in.
    if latest is not None and sample["t"] is not None and latest["t"] is not None \
            and sample["t"] <= latest["t"]:
        return
    # Every stride-th sample is kept; when they fill the room left beside the latest one,
    # every other one goes and the stride doubles, so they stay evenly spread.
    if telemetry["n"] % telemetry["stride"] == 0:
        telemetry["samples"].append(sample)
        if len(telemetry["samples"]) > TELEMETRY_POINTS - 1:
            telemetry["samples"] = telemetry["samples"][::2]
            telemetry["stride"] *= 2
    telemetry["n"] += 1
    telemetry["latest"] = sample


def _telemetry_value(value):
    number = _number(value)
    if number is None:
        return None
    return value if isinstance(value, int) else _rounded(number)
