import asyncio

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Count, Q
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from . import services
from .forms import DatasetUploadForm, ExperimentForm
from .models import Dataset, Experiment, Membership, Run
from .selectors import experiment_snapshot


def _get_experiment(request, pk) -> Experiment:
    """The experiment if it belongs to one of the user's teams; 404 otherwise, so another
    team's ids are indistinguishable from missing ones."""
    return get_object_or_404(Experiment.objects.for_user(request.user), pk=pk)


def _get_run_to_change(request, pk) -> Run:
    run = get_object_or_404(
        Run.objects.select_related("experiment").filter(
            experiment__team__memberships__user=request.user
        ),
        pk=pk,
    )
    role = Membership.objects.filter(team=run.experiment.team_id, user=request.user).values_list(
        "role", flat=True
    ).first()
    if role == Membership.Role.VIEWER:
        raise PermissionDenied("Viewers cannot change runs.")
    return run


@login_required
def home(request):
    experiments = (
        Experiment.objects.for_user(request.user)
        .select_related("team")
        .annotate(
            run_count=Count("runs"),
            active=Count("runs", filter=Q(runs__status__in=["queued", "running"])),
            failed=Count("runs", filter=Q(runs__status="failed")),
        )[:100]
    )
    return render(request, "experiments/home.html", {"experiments": experiments})


@login_required
def experiment_new(request):
    if not request.user.teams.exists():
        services.team_for_user(request.user)
    initial = {}
    if "dataset" in request.GET:
        initial = {"dataset": "npz", "npz_dataset": request.GET.get("dataset")}
    form = ExperimentForm(request.POST or None, user=request.user, initial=initial)
    if request.method == "POST" and form.is_valid():
        team = form.cleaned_data["team"]
        if not Membership.objects.filter(team=team, user=request.user).exclude(
            role=Membership.Role.VIEWER
        ).exists():
            form.add_error("team", "Viewers cannot start experiments in this team.")
        else:
            experiment = services.experiment_create(team=team, user=request.user,
                                                    spec=form.spec)
            messages.success(request, f"Queued {experiment.runs.count()} runs.")
            return redirect(experiment)
    status = 400 if request.method == "POST" else 200
    return render(request, "experiments/new.html", {"form": form}, status=status)


def _results_context(experiment):
    runs = list(experiment.runs.all())
    snapshot = experiment_snapshot(experiment, runs)
    return {
        "experiment": experiment,
        "runs": runs,
        "finished": [run for run in runs if run.result],
        "snapshot": snapshot,
        "comparison": snapshot["comparison"],
    }


@login_required
def experiment_detail(request, pk):
    experiment = _get_experiment(request, pk)
    return render(request, "experiments/detail.html", _results_context(experiment))


@login_required
def experiment_results(request, pk):
    experiment = _get_experiment(request, pk)
    return render(request, "experiments/_results.html", _results_context(experiment))


@login_required
def experiment_spec(request, pk):
    experiment = _get_experiment(request, pk)
    response = JsonResponse(experiment.spec, json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="experiment-{pk}.json"'
    return response


@login_required
@require_POST
def run_cancel(request, pk):
    run = _get_run_to_change(request, pk)
    if services.run_cancel(run):
        messages.info(request, f"Cancelling “{run.name}”.")
    else:
        messages.warning(request, f"“{run.name}” has already ended.")
    return redirect(run.experiment)


@login_required
@require_POST
def run_rerun(request, pk):
    run = _get_run_to_change(request, pk)
    if services.run_rerun(run):
        messages.info(request, f"“{run.name}” is queued again.")
    else:
        messages.warning(request, f"“{run.name}” has not ended yet.")
    return redirect(run.experiment)


@login_required
def dataset_list(request):
    form = DatasetUploadForm(
        request.POST or None, request.FILES or None, user=request.user,
        max_bytes=settings.ACCELWEB_MAX_UPLOAD_BYTES,
    )
    if not request.user.teams.exists():
        services.team_for_user(request.user)
    if request.method == "POST" and form.is_valid():
        dataset = services.dataset_create(
            team=form.cleaned_data["team"], user=request.user,
            name=form.cleaned_data["name"], upload=form.cleaned_data["file"],
            description=form.description,
        )
        messages.success(request, f"Uploaded “{dataset.name}” ({dataset.shape_label}).")
        return redirect("dataset_list")
    datasets = Dataset.objects.for_user(request.user).select_related("team")
    status = 400 if request.method == "POST" else 200
    return render(request, "experiments/datasets.html",
                  {"form": form, "datasets": datasets}, status=status)


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
