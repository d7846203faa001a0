import asyncio
import csv
import json

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from runners.engine import public

from .. import selectors, services
from ..access import Denied, experiment_for_user, may_change, run_for_user, run_to_change
from ..comparison import advice_checks, baseline_chance, noise_floor
from ..forms import DatasetUploadForm, ExperimentForm, RecipeForm
from ..models import Dataset, Recipe
from ..selectors import (
    advice_before_run,
    experiment_benchmarks,
    experiment_curves,
    experiment_snapshot,
    home_overview,
    page_runs,
    queue_depths_remembered,
    recipes_of,
    runners_overview,
    uploads_of,
)
from ..techniques import catalog, presets
from ..uploadhandlers import files_over_limit


@login_required
@require_GET
def experiment_list(request):
    """Every experiment of the user's teams: searched, filtered, sorted, 50 a page."""
    from ..forms import ExperimentFilterForm
    from ..listings import (
        EXPERIMENTS_PER_PAGE,
        IdsFirstPaginator,
        experiments_listed,
        team_ids_of,
        team_members,
        with_run_counts,
    )

    teams = team_ids_of(request.user)
    form = ExperimentFilterForm(request.GET or None, authors=team_members(teams))
    filters = form.filters() if request.GET else {}
    page = IdsFirstPaginator(experiments_listed(teams, filters),
                             EXPERIMENTS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "experiments/list.html", {
        "form": form, "page": page, "experiments": with_run_counts(page.object_list),
        "filtered": bool(filters.keys() - {"sort"}), "query": query.urlencode(),
    })


@login_required
def home(request):
    return render(request, "experiments/home.html", {
        **home_overview(request.user), "depths": queue_depths_remembered(["cpu", "gpu"]),
    })


@login_required
def experiment_new(request):
    services.team_for_user(request.user)  # a user without a team gets one
    initial = {}
    if request.GET.get("dataset") in public.PUBLIC:
        initial.update(dataset=request.GET["dataset"])
    elif "dataset" in request.GET:
        initial.update(dataset="npz", npz_dataset=request.GET.get("dataset"))
    if "model" in request.GET:
        initial.update(arch="uploaded", uploaded_model=request.GET.get("model"))
    form = ExperimentForm(request.POST or None, user=request.user, initial=initial)
    team = None
    if request.method == "POST" and form.is_valid():
        team = form.cleaned_data["team"]
        try:
            experiment = services.experiment_create(team=team, user=request.user,
                                                    spec=form.spec)
        except Denied:
            form.add_error("team", "Viewers cannot start experiments in this team.")
        else:
            messages.success(request, f"Queued {experiment.planned_runs} runs.")
            return redirect(experiment)
    status = 400 if request.method == "POST" else 200
    # The advice for the form as it stands, so that it shows without JS too. An unbound
    # form has no recipes yet, and a form with errors no checked spec: nothing to say.
    advice = None
    if form.spec is not None:  # valid, but refused (a viewer's)
        advice = advice_before_run(request.user, form.spec, team=team)
    elif form.is_bound:
        advised = _form_for_advice(request.POST, request.user)
        if advised.spec is not None:
            advice = advice_before_run(request.user, advised.spec,
                                       team=advised.cleaned_data["team"])
    context = {"form": form, "catalog": catalog(), "presets": presets(), "advice": advice}
    return render(request, "experiments/new.html", context, status=status)


# The new-experiment form's fields the advice does not depend on: an error in one of them
# (a name cleared while typing) must not silence the advice for the choices that matter.
NOT_ADVISED = ("name", "epochs", "batch_size", "optimizer", "learning_rate", "seed", "repeats",
               "bench_executions", "bench_rounds", "accuracy_budget", "subset_train",
               "subset_test")


def _form_for_advice(data, user):
    """The form bound to the data, valid where only fields the advice does not depend on
    were wrong (they are taken at their initial values then)."""
    form = ExperimentForm(data, user=user)
    if form.is_valid() or not set(form.errors) <= set(NOT_ADVISED):
        return form
    data = data.copy()
    for field in form.errors:
        data[field] = form.fields[field].initial
    retried = ExperimentForm(data, user=user)
    return retried if retried.is_valid() else form


@login_required
@require_POST
def experiment_advice(request):
    """The advisor's warnings for the new-experiment form as it stands: the page posts its
    fields (as it would to queue the runs) on every change. 400 with the form's messages
    when the choices the advice depends on (model, dataset, hardware, team, recipes) are not
    valid yet."""
    from django.template.loader import render_to_string

    form = _form_for_advice(request.POST, request.user)
    if form.spec is None:
        # The messages that keep the advisor from answering first.
        fields = sorted(form.errors, key=lambda field: field in NOT_ADVISED)
        errors = {field if field != "__all__" else "form": list(form.errors[field])
                  for field in fields}
        return JsonResponse({"errors": errors}, status=400)
    advice = advice_before_run(request.user, form.spec, team=form.cleaned_data["team"])
    html = render_to_string("experiments/_advice.html", {"advice": advice}).strip()
    return JsonResponse({**advice, "html": html})


CURVE_COLUMNS = (("loss", "Loss"), ("accuracy", "Accuracy"), ("val_loss", "Val. loss"),
                 ("val_accuracy", "Val. accuracy"))


def _results_context(experiment, user):
    runs = page_runs(experiment)
    benchmarks = experiment_benchmarks(experiment)
    snapshot = experiment_snapshot(experiment, runs, benchmarks)
    curve_rows = [
        {"run": run, "cells": [{"key": key, **state["summary"][key]} for key, _ in CURVE_COLUMNS]}
        for run, state in zip(runs, snapshot["runs"], strict=True)
    ]
    return {
        "experiment": experiment,
        "runs": runs,
        "finished": [run for run in runs if run.result],
        "snapshot": snapshot,
        "comparison": snapshot["comparison"],
        "benchmark": benchmarks[0] if benchmarks else None,
        "noise_floor": noise_floor(snapshot["comparison"]),
        "baseline_chance": baseline_chance(snapshot["comparison"]),
        "can_rebenchmark": not services.benchmark_blocker(experiment, runs, benchmarks,
                                                          forced=True),
        "advice": advice_checks(runs, snapshot["comparison"]),
        "curve_columns": CURVE_COLUMNS,
        "curve_rows": curve_rows,
        # Viewers get no buttons the server would refuse them.
        "can_change": may_change(user, experiment.team_id),
    }


@login_required
def experiment_detail(request, pk):
    experiment = experiment_for_user(request.user, pk)
    return render(request, "experiments/detail.html",
                  _results_context(experiment, request.user))


@login_required
def experiment_results(request, pk):
    """The experiment page's results fragment: the tables, and the snapshot the charts
    draw (JSON beside them), from one read of the stored evidence. What the page fetches
    when the websocket tells it a run, the benchmark or the discussion changed."""
    experiment = experiment_for_user(request.user, pk)
    return render(request, "experiments/_results.html",
                  _results_context(experiment, request.user))


@login_required
@require_GET
def experiment_curves_json(request, pk):
    """The curves and telemetry the experiment page draws: as stored, a few hundred points
    a series whatever the epochs; with ?full=1 every epoch and sample (&run=ID for one
    run's only)."""
    experiment = experiment_for_user(request.user, pk)
    full = request.GET.get("full", "0")
    run = request.GET.get("run")
    if full not in ("0", "1"):
        return JsonResponse({"error": "full must be 0 or 1."}, status=400)
    if run is not None and not run.isdigit():
        return JsonResponse({"error": "run must be a run id."}, status=400)
    drawn = experiment_curves(experiment, full=full == "1",
                              run_ids=None if run is None else [int(run)])
    if run is not None and str(int(run)) not in drawn["runs"]:
        raise Http404("No such run in this experiment.")
    return JsonResponse(drawn)


@login_required
@require_POST
def experiment_rebenchmark(request, pk):
    """Measure the experiment's models again (the benchmark stage only, no training)."""
    experiment = experiment_for_user(request.user, pk)
    try:
        services.experiment_rebenchmark(experiment=experiment, user=request.user)
    except services.BenchmarkRefused as exc:
        messages.warning(request, str(exc))
    else:
        messages.info(request, "The benchmark is queued again; the runs are not retrained.")
    return redirect(experiment)


@login_required
def experiment_spec(request, pk):
    experiment = experiment_for_user(request.user, pk)
    response = JsonResponse(experiment.spec, json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="experiment-{pk}.json"'
    return response


def _cell(value):
    """A CSV cell a spreadsheet will not run: text starting like a formula gets a quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@login_required
def experiment_export(request, pk, fmt):
    """An experiment's runs and metrics, as CSV (one row per run) or JSON (everything)."""
    if fmt not in ("csv", "json"):
        raise Http404("Export as csv or json.")
    experiment = experiment_for_user(request.user, pk)
    if fmt == "json":
        response = JsonResponse(selectors.experiment_export(experiment),
                                json_dumps_params={"indent": 2})
    else:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        writer = csv.writer(response)
        writer.writerow(selectors.EXPORT_COLUMNS)
        for row in selectors.experiment_export_rows(experiment):
            writer.writerow([_cell(value) for value in row])
    response["Content-Disposition"] = f'attachment; filename="experiment-{pk}.{fmt}"'
    return response


@login_required
@require_POST
def run_cancel(request, pk):
    run = run_for_user(request.user, pk)
    if services.run_cancel(run, user=request.user):
        messages.info(request, f"Cancelling “{run.name}”.")
    else:
        messages.warning(request, f"“{run.name}” has already ended.")
    return redirect(run.experiment)


@login_required
@require_POST
def run_rerun(request, pk):
    run = run_to_change(request.user, pk)
    if services.run_rerun(run, user=request.user):
        messages.info(request, f"“{run.name}” is queued again.")
    else:
        messages.warning(request, f"“{run.name}” has not ended yet.")
    return redirect(run.experiment)


@login_required
def run_detail(request, pk):
    run = run_for_user(request.user, pk)
    result = run.result or {}
    artifacts = [name for name in result.get("artifacts") or []
                 if (run.artifacts_dir / name).is_file()]
    return render(request, "experiments/run_detail.html", {
        "run": run, "experiment": run.experiment, "result": result, "artifacts": artifacts,
        "result_json": json.dumps(result, indent=2, sort_keys=True),
        "recipe_form": RecipeForm(initial={"name": run.name}),
        "can_change": may_change(request.user, run.experiment.team_id),
    })


@login_required
def run_artifact(request, pk, name):
    run = run_for_user(request.user, pk)
    # Only files the engine reported for this run; never a path from the request.
    if name not in ((run.result or {}).get("artifacts") or []):
        raise Http404("No such artifact.")
    path = run.artifacts_dir / name
    if not path.is_file():
        raise Http404("This artifact is no longer on disk.")
    return FileResponse(open(path, "rb"), as_attachment=True,
                        filename=f"run{run.pk}-{name}")


@login_required
@require_POST
def run_save_recipe(request, pk):
    run = run_to_change(request.user, pk)
    form = RecipeForm(request.POST)
    if run.is_baseline:
        messages.warning(request, "The baseline has no steps to save.")
    elif form.is_valid():
        recipe, created = services.recipe_save(
            team=run.experiment.team, user=request.user, name=form.cleaned_data["name"],
            steps=run.steps, description=form.cleaned_data["description"],
        )
        verb = "Saved" if created else "Updated"
        messages.success(request, f"{verb} “{recipe.name}” in the recipe library.")
    else:
        messages.error(request, " ".join(e for errs in form.errors.values() for e in errs))
    return redirect("run_detail", pk=run.pk)


@login_required
def recipe_list(request):
    services.team_for_user(request.user)  # a user without a team gets one
    form = RecipeForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        recipe, created = services.recipe_save(
            team=form.cleaned_data["team"], user=request.user, name=form.cleaned_data["name"],
            steps=form.cleaned_data["steps_json"], description=form.cleaned_data["description"],
        )
        messages.success(request, f"{'Saved' if created else 'Updated'} “{recipe.name}”.")
        return redirect("recipe_list")
    recipes = recipes_of(request.user)
    status = 400 if request.method == "POST" else 200
    return render(request, "experiments/recipes.html",
                  {"form": form, "recipes": recipes, "catalog": catalog()}, status=status)


@login_required
@require_POST
def recipe_delete(request, pk):
    recipe = get_object_or_404(Recipe.objects.for_user(request.user), pk=pk)
    services.recipe_delete(recipe=recipe, user=request.user)
    messages.info(request, f"Deleted “{recipe.name}”.")
    return redirect("recipe_list")


def _runners_context(request):
    from runners.fleet import queue_depths

    overview = runners_overview(request.user)
    return {"rows": overview["rows"], "depths": queue_depths(overview["queues"]),
            "heartbeat_timeout": settings.ACCELWEB_HEARTBEAT_TIMEOUT}


@login_required
def runner_list(request):
    return render(request, "experiments/runners.html", _runners_context(request))


@login_required
def runner_table(request):
    return render(request, "experiments/_runners.html", _runners_context(request))


@login_required
def dataset_list(request):
    form = DatasetUploadForm(
        request.POST or None, request.FILES or None, user=request.user,
        max_bytes=settings.ACCELWEB_MAX_UPLOAD_BYTES, over_limit=files_over_limit(request),
    )
    services.team_for_user(request.user)  # a user without a team gets one
    if request.method == "POST" and form.is_valid():
        try:
            dataset = services.dataset_create(
                team=form.cleaned_data["team"], user=request.user,
                name=form.cleaned_data["name"], upload=form.cleaned_data["file"],
                description=form.description,
            )
        except Denied:
            form.add_error("team", "Viewers cannot upload to this team.")
        else:
            split = Dataset.split_text(form.description["train_samples"],
                                       form.description["validation_samples"])
            messages.success(request, f"Uploaded “{dataset.name}” ({dataset.shape_label}, "
                                      f"{dataset.num_classes} classes): {split}, "
                                      f"{dataset.test_samples:,} test.")
            return redirect("dataset_list")
    datasets = uploads_of(Dataset, request.user)
    status = 400 if request.method == "POST" else 200
    return render(request, "experiments/datasets.html",
                  {"form": form, "datasets": datasets,
                   "public_datasets": public.status(str(settings.ACCELWEB_DATASET_DIR))},
                  status=status)


def _check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_broker():
    from accelweb.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def _check_channel_layer():
    layer = get_channel_layer()

    async def probe():
        await asyncio.wait_for(layer.group_send("healthz", {"type": "healthz.ping"}), 2)

    async_to_sync(probe)()


@require_GET
def healthz(request):
    """Public on purpose (load balancers); says only whether each part answers."""
    checks = {"database": _check_database, "broker": _check_broker,
              "channel_layer": _check_channel_layer}
    state = {}
    for name, check in checks.items():
        try:
            check()
            state[name] = "ok"
        except Exception as exc:
            state[name] = f"error: {type(exc).__name__}"
    healthy = all(value == "ok" for value in state.values())
    return JsonResponse({"status": "ok" if healthy else "degraded", **state},
                        status=200 if healthy else 503)
