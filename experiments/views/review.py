"""Review: runs compared across experiments, and an experiment's printable report."""

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import Http404
from django.shortcuts import render

from ..access import experiment_for_user
from ..comparison import FINGERPRINT_KEYS, compare_runs, fingerprint_differences
from ..markup import render_markdown
from ..models import Experiment, Run, RunEvent
from ..selectors import CURVE_POINTS, series_from_epochs

MAX_COMPARED = 12
PICKER_EXPERIMENTS = 20


def _requested_run_ids(request) -> list[int]:
    """Run ids from ?runs=1,2,3 or ?runs=1&runs=2 (what the picker's checkboxes send), in
    order, without repeats. Anything that is not an id is a run that does not exist."""
    ids = []
    for value in request.GET.getlist("runs"):
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if not (part.isascii() and part.isdigit()):  # "²".isdigit() is true
                raise Http404("No such run.")
            if int(part) not in ids:
                ids.append(int(part))
    return ids


def _runs_for_user(user, ids) -> list[Run]:
    """The runs, in the order asked; a single id the user may not see is a 404 for all, so
    another team's ids look exactly like missing ones."""
    found = {
        run.pk: run
        for run in Run.objects.filter(pk__in=ids, experiment__team__memberships__user=user)
        .select_related("experiment", "experiment__team")
    }
    if len(found) != len(ids):
        raise Http404("No such run.")
    return [found[pk] for pk in ids]


def _curves(runs) -> dict:
    epochs = {run.pk: [] for run in runs}
    rows = (RunEvent.objects.filter(run__in=[run.pk for run in runs], kind="epoch")
            .order_by("run_id", "seq").values_list("run_id", "data"))
    for run_id, data in rows:
        epochs[run_id].append(data)
    return {pk: series_from_epochs(items, max_points=CURVE_POINTS) for pk, items in epochs.items()}


def _picker(user, selected_runs):
    """The team's recent experiments with their succeeded runs, plus the experiments of
    any run already chosen, so unticking it is always possible."""
    succeeded = Prefetch("runs", queryset=Run.objects.filter(status=Run.Status.SUCCEEDED),
                         to_attr="succeeded_runs")
    base = Experiment.objects.for_user(user).select_related("team").prefetch_related(succeeded)
    experiments = list(base[:PICKER_EXPERIMENTS])
    shown = {experiment.pk for experiment in experiments}
    missing = {run.experiment_id for run in selected_runs} - shown
    if missing:
        experiments += list(base.filter(pk__in=missing))
    return experiments


@login_required
def compare(request):
    ids = _requested_run_ids(request)
    if len(ids) > MAX_COMPARED:
        messages.warning(request, f"Compared the first {MAX_COMPARED} of {len(ids)} runs.")
        ids = ids[:MAX_COMPARED]
    runs = _runs_for_user(request.user, ids) if ids else []
    measured = [run.result for run in runs if run.result]
    differences = fingerprint_differences(measured)
    differing = {difference["key"] for difference in differences}
    curves = _curves(runs) if runs else {}
    rows = []
    for run in runs:
        result = run.result or {}
        fingerprint = result.get("fingerprint") or {}
        rows.append({
            "run": run,
            "result": result,
            "spec": run.experiment.spec,
            "fingerprint": [
                {"key": key, "value": fingerprint.get(key), "differs": key in differing}
                for key in FINGERPRINT_KEYS
            ],
        })
    chart_data = {"runs": [{
        "id": run.pk,
        "label": f"{run.experiment.name} / {run.name}",
        "val_accuracy": curves[run.pk]["val_accuracy"],
        "val_accuracy_by_time": curves[run.pk]["val_accuracy_by_time"],
    } for run in runs]}
    return render(request, "experiments/compare.html", {
        "rows": rows,
        "differences": differences,
        "selected": set(ids),
        "experiments": _picker(request.user, runs),
        "chart_data": chart_data,
    })


def _step_label(step):
    params = ", ".join(f"{key}={value}" for key, value in step.items() if key != "technique")
    return f"{step.get('technique')} ({params})" if params else str(step.get("technique"))


@login_required
def experiment_report(request, pk):
    """Everything a reviewer signs against, on paper: the spec, the results pinned to the
    baseline with their intervals, the hardware, the sign-offs and the discussion."""
    experiment = experiment_for_user(request.user, pk)
    runs = list(experiment.runs.all())
    baseline = next((run for run in runs if run.is_baseline), None)
    base_result = (baseline.result or {}) if baseline else {}
    hardware = []
    for run in runs:
        result = run.result or {}
        if not result:
            continue
        differences = fingerprint_differences([base_result, result]) if base_result else []
        hardware.append({"run": run, "fingerprint": result.get("fingerprint") or {},
                         "differences": differences})
    comments = [
        {"comment": comment, "html": render_markdown(comment.body)}
        for comment in experiment.comments.select_related("author", "run")
    ]
    signoffs = [
        {"signoff": signoff,
         "evidence": json.dumps(signoff.evidence, sort_keys=True, default=str)}
        for signoff in experiment.signoffs.select_related("approved_by", "run")
    ]
    return render(request, "experiments/report.html", {
        "experiment": experiment,
        "spec": experiment.spec,
        "runs": runs,
        "recipes": [{"run": run, "steps": [_step_label(step) for step in run.steps]}
                    for run in runs],
        "comparison": compare_runs(runs),
        "base_fingerprint": sorted((base_result.get("fingerprint") or {}).items()),
        "hardware": hardware,
        "comments": comments,
        "signoffs": signoffs,
    })
