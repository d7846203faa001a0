"""Review: runs compared across experiments, and an experiment's printable report."""

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from .. import selectors
from ..access import experiment_for_user, experiment_run_ids, run_ids_from, runs_for_user
from ..comparison import FINGERPRINT_KEYS, fingerprint_differences, runtime_label
from ..markup import render_markdown
from ..selectors import MAX_COMPARED, PICKER_EXPERIMENTS, compare_picker, compared_curves


@login_required
def compare(request):
    ids = run_ids_from(request.GET.getlist("runs"))
    if request.GET.getlist("experiments"):
        # Ticked on the experiments list: their succeeded runs.
        ids += [pk for pk in experiment_run_ids(
            request.user, run_ids_from(request.GET.getlist("experiments"))) if pk not in ids]
    if len(ids) > MAX_COMPARED:
        messages.warning(request, f"Compared the first {MAX_COMPARED} of {len(ids)} runs.")
        ids = ids[:MAX_COMPARED]
    runs = runs_for_user(request.user, ids) if ids else []
    # NUL is the one character PostgreSQL refuses in a LIKE pattern.
    query = request.GET.get("q", "").replace("\x00", "").strip()[:200]
    measured = [run.result for run in runs if run.result]
    differences = fingerprint_differences(measured)
    differing = {difference["key"] for difference in differences}
    curves = compared_curves(runs) if runs else {}
    rows = []
    for run in runs:
        result = run.result or {}
        fingerprint = result.get("fingerprint") or {}
        rows.append({
            "run": run,
            "result": result,
            "spec": run.experiment.spec,
            "runtime": runtime_label(result),
            "fingerprint": [
                {"key": key, "value": fingerprint.get(key), "differs": key in differing}
                for key in FINGERPRINT_KEYS
            ],
        })
    chart_data = {"runs": [{
        "id": run.pk,
        "label": f"{run.experiment.name} / {run.name}",
        "val_accuracy": curves[run.pk]["series"]["val_accuracy"],
        "val_accuracy_by_time": curves[run.pk]["series"]["val_accuracy_by_time"],
    } for run in runs]}
    return render(request, "experiments/compare.html", {
        "rows": rows,
        "runtimes": sorted({row["runtime"] for row in rows if row["runtime"]}),
        "differences": differences,
        "selected": set(ids),
        "experiments": compare_picker(request.user, runs, query),
        "query": query,
        "picker_limit": PICKER_EXPERIMENTS,
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
    report = selectors.experiment_report(experiment)
    runs = report["runs"]
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
    comments = [{"comment": comment, "html": render_markdown(comment.body)}
                for comment in report["comments"]]
    signoffs = [
        {"signoff": signoff,
         "evidence": json.dumps(signoff.evidence, sort_keys=True, default=str)}
        for signoff in report["signoffs"]
    ]
    return render(request, "experiments/report.html", {
        "experiment": experiment,
        "spec": experiment.spec,
        "runs": runs,
        "recipes": [{"run": run, "steps": [_step_label(step) for step in run.steps]}
                    for run in runs],
        "comparison": report["comparison"],
        "base_fingerprint": sorted((base_result.get("fingerprint") or {}).items()),
        "hardware": hardware,
        "comments": comments,
        "signoffs": signoffs,
        "withdrawn": report["withdrawn"],
    })
