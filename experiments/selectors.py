"""Reads that build pages and websocket snapshots from the database."""

import hashlib
import json

from django.db.models.fields.json import KeyTransform

from runners.engine.data import SYNTHETIC_DEFAULTS, describe
from runners.engine.public import PUBLIC

from . import comparison, curves
from .comparison import accuracy_latency_points, compare_runs, measured_key
from .curves import BEST_IS_LOWEST, CURVE_POINTS, SERIES_KEYS, TELEMETRY_KEYS
from .models import Benchmark, Dataset, Experiment, Run, RunEvent

EPOCH_KEYS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")
# The most runs compared side by side (page and API).
MAX_COMPARED = 12
# How many of an experiment's benchmarks are read to find the one that measured each run
# as it is now (the newest, mostly; an older one when a re-benchmark failed).
BENCHMARKS_READ = 10


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


def compared_curves(runs) -> dict:
    """Runs of any experiments, in one query of their stored curves: {run id: {"series":
    downsampled series, "summary": each curve's last, best, min and max}}."""
    stored = dict(Run.objects.filter(pk__in=[run.pk for run in runs])
                  .values_list("pk", "curves"))
    out = {}
    for run in runs:
        view = curves.view(stored.get(run.pk) or {})
        out[run.pk] = {"series": view["series"], "summary": view["summary"]}
    return out


def page_runs(experiment) -> list[Run]:
    """The experiment's runs as its page and its snapshot read them: without their stored
    curves (tens of kilobytes a run), with only the summary, the cumulative seconds and the
    last epoch of those read out by the database (curve_facts)."""
    return list(experiment.runs.defer("curves").annotate(
        curve_summary=KeyTransform("summary", "curves"),
        curve_elapsed=KeyTransform("elapsed", "curves"),
        curve_last_epoch=KeyTransform("last_epoch", "curves"),
    ))


def curve_facts(run: Run) -> dict:
    """A run's curve summary, cumulative seconds and last epoch: from page_runs' columns
    when it was read so, else from its stored curves."""
    if hasattr(run, "curve_summary"):
        stored = {"summary": run.curve_summary, "elapsed": run.curve_elapsed,
                  "last_epoch": run.curve_last_epoch}
    else:
        stored = run.curves or {}
    view = curves.view({key: stored.get(key) for key in ("summary", "elapsed", "last_epoch")})
    return {key: view[key] for key in ("summary", "elapsed", "last_epoch")}


def experiment_curves(experiment, *, full: bool = False, run_ids=None) -> dict:
    """What the experiment page's charts draw: each run's curves and telemetry, as stored
    (a few hundred points a series whatever its epochs), or with full=True every epoch and
    sample from the events (a cost that grows with the epochs: on request only)."""
    runs = experiment.runs.all()
    if run_ids is not None:
        runs = runs.filter(pk__in=run_ids)
    if not full:
        return {"curve_points": CURVE_POINTS, "full": False,
                "runs": {str(pk): curves.view(state or {})
                         for pk, state in runs.values_list("pk", "curves")}}
    events = {pk: {"epoch": [], "telemetry": []} for pk in runs.values_list("pk", flat=True)}
    rows = (RunEvent.objects.filter(run__in=list(events), kind__in=("epoch", "telemetry"))
            .order_by("run_id", "seq").values_list("run_id", "kind", "data"))
    for run_id, kind, data in rows:
        events[run_id][kind].append(data)
    out = {}
    for pk, kinds in events.items():
        series = series_from_epochs(kinds["epoch"])
        out[str(pk)] = {
            "series": series,
            "summary": curve_summary(series),
            "elapsed": round(sum(_seconds(data) for data in kinds["epoch"]), 4),
            "last_epoch": max((data.get("epoch") or 0 for data in kinds["epoch"]
                               if isinstance(data.get("epoch"), int)), default=0),
            "telemetry": [{key: data.get(key) for key in TELEMETRY_KEYS}
                          for data in kinds["telemetry"]],
        }
    return {"curve_points": CURVE_POINTS, "full": True, "runs": out}


def _seconds(data) -> float:
    seconds = data.get("seconds")
    return seconds if isinstance(seconds, int | float) else 0.0


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
    if name in PUBLIC:
        return PUBLIC[name].num_classes
    return None


def experiment_comparison(experiment, runs=None, benchmarks=None) -> list[dict]:
    """The experiment's comparison rows, as stored (experiment_evidence). `runs` and
    `benchmarks`: all of the experiment's, when the caller has read them already."""
    return experiment_evidence(experiment, runs, benchmarks)["comparison"]


def evidence_inputs(experiment, runs, benchmarks) -> str:
    """A digest of everything the stored evidence is computed from: the succeeded runs
    and the succeeded benchmarks among `benchmarks` (compare_runs reads nothing else of
    them), and the dataset (for its classes). A run starting or failing leaves it as it
    is; a run succeeding, being reset, or edited in the admin changes it."""
    facts = {
        "dataset": (experiment.spec or {}).get("dataset"),
        "runs": [[run.pk, run.position, run.replicate, run.name, run.steps,
                  measured_key(run), run.result]
                 for run in sorted(runs, key=lambda run: run.pk)
                 if run.status == Run.Status.SUCCEEDED and run.result],
        # In the order compare_runs reads them: the newest that covers a run counts.
        "benchmarks": [[b.pk, b.runs, b.result] for b in benchmarks
                       if b.status == Run.Status.SUCCEEDED and b.result],
    }
    encoded = json.dumps(facts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()


def evidence_compute(experiment, runs, benchmarks, *, inputs: str | None = None) -> dict:
    """The costly part of every results view (compare_runs bootstraps its intervals), as
    services.experiment_evidence_refresh stores it: the comparison rows, the accuracy
    against latency points, what the rows without an inference figure waited for, and
    the digest of the inputs (evidence_inputs)."""
    benchmarks = list(benchmarks)
    return {
        "inputs": inputs or evidence_inputs(experiment, runs, benchmarks),
        "comparison": compare_runs(runs, benchmarks, classes=experiment_classes(experiment)),
        "tradeoff": accuracy_latency_points(runs, benchmarks),
        "waiting": comparison.waiting_for(benchmarks, runs),
    }


def experiment_evidence(experiment, runs=None, benchmarks=None) -> dict:
    """The experiment's stored evidence (evidence_compute), the one reader pages, the API,
    exports and sign-off use: computed when a run or a benchmark ends, never on a view.

    The column is read afresh, not from `experiment`: a websocket consumer or a task holds
    its instance for long. Evidence that is missing (an experiment from before it was
    stored) or not of these runs and benchmarks (evidence_inputs: a path that forgot to
    refresh, a change in the admin) is refreshed once, under the experiment's lock, and
    stored for the next reader. The "benchmarking: execution 3 of 5" a row waits for moves
    without the evidence changing: it is filled in here, from the benchmarks read now."""
    runs = list(experiment.runs.defer("curves")) if runs is None else runs
    benchmarks = experiment_benchmarks(experiment) if benchmarks is None else benchmarks
    stored = (Experiment.objects.filter(pk=experiment.pk)
              .values_list("evidence", flat=True).first())
    if not stored or stored.get("inputs") != evidence_inputs(experiment, runs, benchmarks):
        from .services import experiment_evidence_refresh

        stored = experiment_evidence_refresh(experiment)
    experiment.evidence = stored
    return _waiting_now(stored, runs, benchmarks)


def _waiting_now(evidence: dict, runs, benchmarks) -> dict:
    """The evidence with what its unmeasured rows wait for as it is now."""
    then, now = evidence.get("waiting"), comparison.waiting_for(list(benchmarks), runs)
    if then == now:
        return evidence
    rows = [dict(row) for row in evidence["comparison"]]
    for row in rows:
        for key in ("inference_verdict", "throughput_verdict"):
            if row.get(key) == then:
                row[key] = now
    return {**evidence, "comparison": rows, "waiting": now}


def experiment_snapshot(experiment, runs=None, benchmarks=None) -> dict:
    """What the experiment page and a (re)connecting socket start from, in a few queries
    whatever the epochs: each run's state and curve summary, the benchmark stage, and the
    stored evidence. The curves themselves come from experiment_curves (the page fetches
    them), so a status change's snapshot costs the same at epoch 5 and at epoch 5,000."""
    runs = page_runs(experiment) if runs is None else runs
    benchmarks = experiment_benchmarks(experiment) if benchmarks is None else benchmarks
    evidence = experiment_evidence(experiment, runs, benchmarks)
    return {
        "experiment": {"id": experiment.pk, "name": experiment.name},
        "epochs": experiment.spec.get("training", {}).get("epochs"),
        "curve_points": CURVE_POINTS,
        "runs": [{**run_state(run), **curve_facts(run)} for run in runs],
        "benchmark": benchmark_state(benchmarks[0] if benchmarks else None),
        "comparison": evidence["comparison"],
        "tradeoff": evidence["tradeoff"],
    }


def advice_hardware(user, hardware: str):
    """What advice before a run speaks for, and how the page names it: a live runner on the
    hardware's queue, else the fingerprint of the latest run of the user's teams there, else
    this machine (the embedded runner). Returns (fingerprint or hardware, source)."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from .models import Worker

    fresh = timezone.now() - timedelta(seconds=settings.ACCELWEB_HEARTBEAT_TIMEOUT)
    # A fleet has a handful of runners; JSON "contains" is not a lookup SQLite has.
    live = (Worker.objects.filter(stopped_at=None, heartbeat_at__gte=fresh)
            .order_by("-heartbeat_at").values_list("name", "queues", "devices"))
    runner = next(((name, devices) for name, queues, devices in live
                   if hardware in queues and "cpu_flags" in (devices or {})), None)
    if runner:
        fingerprint = {"cpu_flags": runner[1]["cpu_flags"], "hardware": hardware}
        return fingerprint, f"the {hardware.upper()} runner {runner[0]}"
    latest = (
        Run.objects.for_user(user).filter(experiment__hardware=hardware,
                                          status=Run.Status.SUCCEEDED)
        .order_by("-finished_at").values_list("result", "worker").first()
    )
    if latest and (latest[0] or {}).get("fingerprint"):
        fingerprint = {**latest[0]["fingerprint"], "hardware": hardware}
        return fingerprint, f"the {hardware.upper()} runner of your latest run ({latest[1]})"
    return hardware, f"this machine's {hardware.upper()}"


def model_params(spec: dict, team) -> int | None:
    """The parameter count of a checked spec's model, as the engine will count it, without
    Keras: the zoo's count for the dataset's shape and classes, an upload's as stored. None
    when it cannot be known here."""
    from runners.engine import zoo

    from .spec import TeamUploads

    uploads = TeamUploads(team)
    model, dataset = spec["model"], spec["dataset"]
    if model["arch"] == "uploaded":
        found = uploads.model(model["model_id"])
        return found["params"] if found else None
    try:
        description = (uploads.dataset(dataset["dataset_id"]) if dataset["name"] == "npz"
                       else describe(dataset))
        if description is None:
            return None
        return zoo.count_params(model["arch"], model["params"], description["input_shape"],
                                description["num_classes"])
    except ValueError:
        return None


def advice_before_run(user, spec: dict, *, team) -> dict:
    """The advisor's rules (runners.engine.advisor, the same ones a run applies to its
    result) for a checked spec: each recipe with something to say, and what the advice
    speaks for."""
    from runners.engine.advisor import advise_recipes

    hardware, source = advice_hardware(user, spec["hardware"])
    recipes = advise_recipes(spec["recipes"], hardware, params=model_params(spec, team))
    return {"hardware": spec["hardware"], "source": source, "recipes": recipes}


# The home page and the runners page.

HOME_EXPERIMENTS = 20
HOME_RUNNING = 50
HOME_SIGNOFFS = 10


def home_overview(user) -> dict:
    """What the home page shows of the user's teams, in a fixed number of queries: the
    experiments list's first rows (unfiltered; the list has the rest) with their runs
    counted for these rows alone, the runs running now, and the latest sign-offs."""
    from .listings import RUN_BULK, experiments_listed, team_ids_of, with_run_counts
    from .models import SignOff

    teams = team_ids_of(user)
    running = (
        Run.objects.filter(status=Run.Status.RUNNING, experiment__team__in=teams)
        .select_related("experiment").defer(*RUN_BULK, "experiment__spec", "experiment__evidence")
        .order_by("started_at", "pk")[:HOME_RUNNING]
    )
    signoffs = (
        SignOff.objects.filter(experiment__team__in=teams)
        .select_related("run", "experiment", "approved_by")
        .defer("evidence", *(f"run__{name}" for name in RUN_BULK), "experiment__spec",
               "experiment__evidence")
        .order_by("-created_at", "-pk")[:HOME_SIGNOFFS]
    )
    return {"experiments": with_run_counts(experiments_listed(teams, {})[:HOME_EXPERIMENTS]),
            "running": running, "signoffs": signoffs}


def queue_depths_remembered(names) -> dict:
    """How many messages wait in each broker queue (runners.fleet.queue_depths). An
    unreachable broker costs its connect timeout (about 2 s): that it did not answer is
    remembered for a while instead of paid on every view of the home page."""
    from django.core.cache import cache

    from runners.fleet import queue_depths

    depths = cache.get("home.queue_depths")
    if depths is None:
        depths = queue_depths(names)
        if all(depth is None for depth in depths.values()):
            cache.set("home.queue_depths", depths, 15)
    return depths


def runners_overview(user) -> dict:
    """The runners page: each worker with what it runs or measures now (a run or a
    benchmark of another team's experiment is shown, but not named: `visible`), and every
    queue a worker listens on."""
    from django.utils import timezone

    from .models import Worker

    now = timezone.now()
    workers = list(Worker.objects.all())
    running = Run.objects.filter(status=Run.Status.RUNNING).select_related("experiment")
    visible = set(Experiment.objects.for_user(user).values_list("pk", flat=True))
    by_worker = {}
    for run in running:
        by_worker.setdefault(run.worker, []).append(
            {"run": run, "visible": run.experiment_id in visible})
    # A worker measuring an experiment's models is busy too.
    for benchmark in Benchmark.objects.filter(status=Run.Status.RUNNING).select_related(
            "experiment").defer("raw", "result"):
        by_worker.setdefault(benchmark.worker, []).append(
            {"benchmark": benchmark, "visible": benchmark.experiment_id in visible})
    rows = [{"worker": w, "alive": w.is_alive(now), "runs": by_worker.get(w.name, []),
             "age": int((now - w.heartbeat_at).total_seconds())} for w in workers]
    return {"rows": rows, "queues": sorted({"cpu", "gpu", *(q for w in workers for q in w.queues)})}


# The exports.

EXPORT_FIELDS = [
    "test_accuracy", "train_seconds", "compile_seconds", "train_samples_per_s",
    "latency_ms_p50", "latency_ms_p95", "latency_ms_p99", "inference_samples_per_s",
    "model_bytes", "model_gzip_bytes", "params", "sparsity", "runtime",
]
# Each recipe against the baseline, as the results table shows it: ratios with the bounds
# of their 95% intervals, the accuracy delta with its interval, and whether the hardware
# matched; then a quantized recipe against the float32 model of its weights and the runtime
# switch; on the baseline's line, the A/A control (the baseline against itself).
COMPARISON_COLUMNS = [
    "train_speedup", "train_ci_low", "train_ci_high", "replicates", "inference_speedup",
    "inference_ci_low", "inference_ci_high", "throughput_speedup", "throughput_ci_low",
    "throughput_ci_high", "size_reduction", "accuracy_delta", "accuracy_ci_low",
    "accuracy_ci_high", "comparable",
]
OTHER_ROWS = [("vs_float32", "vs float32 TFLite"), ("switch", "runtime switch"),
              ("aa", "A/A control")]
OTHER_COLUMNS = [f"{prefix}_{column}" for prefix, _ in OTHER_ROWS for column in
                 ("inference_speedup", "inference_ci_low", "inference_ci_high")] \
    + ["vs_float32_invoke_speedup"]
EXPORT_COLUMNS = ["run_id", "name", "replicate", "steps", "status", "worker", "device",
                  "epochs_done", *EXPORT_FIELDS, *COMPARISON_COLUMNS, *OTHER_COLUMNS, "error"]


def experiment_export(experiment) -> dict:
    """Everything of an experiment, as its JSON export gives it: the spec, each run with
    every epoch (not the downsampled curves the page draws), every benchmark stage with
    each round of each execution (raw), and the comparison."""
    runs = list(experiment.runs.defer("curves"))
    epochs = {run.pk: [] for run in runs}
    for run_id, data in RunEvent.objects.filter(
        run__experiment=experiment, kind="epoch"
    ).order_by("run_id", "seq").values_list("run_id", "data"):
        epochs[run_id].append({key: data.get(key) for key in EPOCH_KEYS})
    return {
        "experiment": {"id": experiment.pk, "name": experiment.name,
                       "team": experiment.team.name, "spec": experiment.spec,
                       "created_at": experiment.created_at.isoformat()},
        "runs": [{**run_state(run), "steps": run.steps, "epochs": epochs[run.pk],
                  "result": run.result, "stderr_tail": run.stderr_tail} for run in runs],
        "benchmarks": [
            {**benchmark_state(b), "runs": b.runs, "worker": b.worker,
             "created_at": b.created_at.isoformat(), "result": b.result, "raw": b.raw}
            for b in experiment.benchmarks.order_by("-created_at", "-pk")],
        "comparison": experiment_comparison(experiment, runs),
    }


def experiment_export_rows(experiment) -> list[list]:
    """The CSV export's rows, one per run, in EXPORT_COLUMNS (the caller writes the header
    and quotes the cells)."""
    runs = list(experiment.runs.defer("curves"))
    by_run = {}
    for row in experiment_comparison(experiment, runs):
        by_run.setdefault(row["run_id"], {})[row["kind"]] = row
    rows = []
    for run in runs:
        result = run.result or {}
        rows.append([
            run.pk, run.name, run.replicate,
            " + ".join(s["technique"] for s in run.steps) or "baseline",
            run.status, run.worker, run.device, run.epochs_done,
            *(result.get(key, "") for key in EXPORT_FIELDS),
            *_comparison_cells(by_run.get(run.pk, {})), run.error,
        ])
    return rows


def _bounds(ci):
    return list(ci) if ci else ["", ""]


def _comparison_cells(rows):
    """This run's cells of COMPARISON_COLUMNS and OTHER_COLUMNS: {kind: row} of its rows."""
    row = rows.get("vs baseline")
    cells = [""] * len(COMPARISON_COLUMNS) if row is None else [
        row["train_speedup"], *_bounds(row["train_ci"]), row["replicates"],
        row["inference_speedup"], *_bounds(row["inference_ci"]), row["throughput_speedup"],
        *_bounds(row["throughput_ci"]), row["size_reduction"], row["accuracy_delta"],
        *_bounds(row["accuracy_ci"]), row["comparable"]]
    for _, kind in OTHER_ROWS:
        other = rows.get(kind)
        cells += ["", "", ""] if other is None else [other["inference_speedup"],
                                                     *_bounds(other["inference_ci"])]
    reference = rows.get("vs float32 TFLite") or {}
    return cells + [reference.get("invoke_speedup", "")]


# The teams page, the compare page's picker and the printable report.


def teams_overview(user) -> list[tuple]:
    """The user's memberships, by team name, each with the team's members (by name) where
    the user is its admin, else None: (membership, members)."""
    from .models import Membership

    memberships = (Membership.objects.filter(user=user).select_related("team")
                   .order_by("team__name"))
    managed = [m.team_id for m in memberships if m.role == Membership.Role.ADMIN]
    members = (Membership.objects.filter(team__in=managed).select_related("user")
               .order_by("user__username"))
    by_team = {}
    for membership in members:
        by_team.setdefault(membership.team_id, []).append(membership)
    return [(m, by_team.get(m.team_id)) for m in memberships]


PICKER_EXPERIMENTS = 20


def compare_picker(user, selected_runs, query="") -> list[Experiment]:
    """The team's recent experiments (named like the query, when there is one) with their
    succeeded runs (succeeded_runs), plus the experiments of any run already chosen, so
    unticking it is always possible."""
    from django.db.models import Prefetch

    succeeded = Prefetch("runs", queryset=Run.objects.filter(status=Run.Status.SUCCEEDED),
                         to_attr="succeeded_runs")
    base = Experiment.objects.for_user(user).select_related("team").prefetch_related(succeeded)
    found = base.filter(name__icontains=query) if query else base
    experiments = list(found[:PICKER_EXPERIMENTS])
    shown = {experiment.pk for experiment in experiments}
    missing = {run.experiment_id for run in selected_runs} - shown
    if missing:
        experiments += list(base.filter(pk__in=missing))
    return experiments


def experiment_report(experiment) -> dict:
    """What the printable report reads: the runs, their comparison, the comments, the
    sign-offs that stand and those withdrawn."""
    runs = list(experiment.runs.defer("curves"))
    return {
        "runs": runs,
        "comparison": experiment_comparison(experiment, runs),
        "comments": list(experiment.comments.select_related("author", "run")),
        "signoffs": list(experiment.signoffs.select_related("approved_by", "run")),
        "withdrawn": experiment.withdrawn_signoffs.select_related("run", "approved_by",
                                                                  "withdrawn_by"),
    }


# The team's library and uploads, and an experiment as the API details it.


def recipes_of(user):
    """The recipe libraries of the user's teams."""
    from .models import Recipe

    return Recipe.objects.for_user(user).select_related("team", "created_by")


def uploads_of(model, user):
    """The datasets or .keras models (`model`) uploaded to the user's teams."""
    return model.objects.for_user(user).select_related("team", "uploaded_by")


def team_members(team):
    """The team's memberships, by user name."""
    return team.memberships.select_related("user").order_by("user__username")


def experiment_detail(experiment) -> dict:
    """What the API's experiment detail adds to the experiment: its runs prefetched
    without their stored curves (the detail shows none), the benchmark stage, and the
    comparison."""
    from django.db.models import Prefetch, prefetch_related_objects

    prefetch_related_objects([experiment], Prefetch("runs", Run.objects.defer("curves")))
    runs = list(experiment.runs.all())
    benchmarks = experiment_benchmarks(experiment)
    return {"benchmark": benchmark_state(benchmarks[0] if benchmarks else None),
            "comparison": experiment_comparison(experiment, runs, benchmarks)}
