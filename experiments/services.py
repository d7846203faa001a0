"""Writes that touch several objects: create, enqueue, record, cancel, re-run, broadcast."""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import IntegrityError, transaction
from django.db.models import Max

from .comparison import compare_runs
from .models import Experiment, Membership, Run, RunEvent, Team, experiment_group
from .selectors import run_state
from .spec import validate_spec

log = logging.getLogger(__name__)


def broadcast(group: str, payload: dict) -> None:
    """Tell a websocket group (an experiment's, or the runners page's). At-most-once by
    design: the database holds the record, so a lost message costs a browser nothing a
    resync does not restore."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": "group.event", "payload": payload})
    except Exception:  # a broadcast must never fail a run (Redis may be restarting)
        log.warning("broadcast to %s failed", group, exc_info=True)


def team_for_user(user, team_name: str | None = None) -> Team:
    """The named team (the user must belong to it), else the user's first team, created
    when the user has none."""
    if team_name:
        return Team.objects.get(name=team_name, memberships__user=user)
    team = Team.objects.filter(memberships__user=user).order_by("pk").first()
    if team is None:
        team, _ = Team.objects.get_or_create(name=f"{user.get_username()}'s team")
        Membership.objects.get_or_create(
            team=team, user=user, defaults={"role": Membership.Role.ADMIN}
        )
    return team


def experiment_create(*, team: Team, user, spec: dict) -> Experiment:
    """Validate a spec and create the experiment with a baseline and one run per recipe,
    queued once the transaction commits."""
    spec = validate_spec(spec, team=team)
    with transaction.atomic():
        experiment = Experiment.objects.create(
            team=team, name=spec["name"], spec=spec, hardware=spec["hardware"],
            accuracy_budget=spec["accuracy_budget"],
            created_by=user if user and user.is_authenticated else None,
        )
        runs = [Run(experiment=experiment, name="baseline", position=0, steps=[])]
        runs += [
            Run(experiment=experiment, name=recipe["name"], position=index, steps=recipe["steps"])
            for index, recipe in enumerate(spec["recipes"], start=1)
        ]
        for run in Run.objects.bulk_create(runs):
            run_enqueue(run)
    return experiment


def run_enqueue(run: Run) -> None:
    from runners.hardware import queue_for
    from runners.tasks import execute_run

    queue = queue_for(run.experiment.spec)
    # Enqueue only after commit: a worker must find the row it is told to run.
    transaction.on_commit(lambda: execute_run.apply_async(args=[run.pk], queue=queue))


def run_record_event(run: Run, event: dict) -> None:
    """Store one engine event, update the run's progress, and tell the browsers."""
    kind = str(event.get("event", "unknown"))[:20]
    for _ in range(3):
        seq = (run.events.aggregate(m=Max("seq"))["m"] or 0) + 1
        try:
            RunEvent.objects.create(run=run, seq=seq, kind=kind, data=event)
            break
        except IntegrityError:  # a racing writer took the seq; take the next one
            continue
    update = {}
    if kind == "epoch":
        epochs = max(1, int(run.experiment.spec.get("training", {}).get("epochs") or 1))
        run.epochs_done = int(event.get("epoch", run.epochs_done + 1))
        run.progress = min(1.0, run.epochs_done / epochs)
        update = {"epochs_done": run.epochs_done, "progress": run.progress}
    if update:
        Run.objects.filter(pk=run.pk).update(**update)
    broadcast(experiment_group(run.experiment_id),
              {"type": "event", "run": run_state(run), "event": event})


def run_status_changed(run: Run) -> None:
    """Broadcast a status change, with the comparison when a run has ended."""
    payload = {"type": "status", "run": run_state(run)}
    if run.has_ended:
        payload["comparison"] = compare_runs(list(run.experiment.runs.all()))
    broadcast(experiment_group(run.experiment_id), payload)


def run_cancel(run: Run) -> bool:
    changed = run.request_cancel()
    if changed:
        run_status_changed(run)
    return changed


def run_rerun(run: Run) -> bool:
    with transaction.atomic():
        changed = run.reset_for_rerun()
        if changed:
            run_enqueue(run)
    if changed:
        run_status_changed(run)
    return changed


def dataset_create(*, team: Team, user, name: str, upload, description: dict):
    from .models import Dataset

    return Dataset.objects.create(
        team=team, name=name, file=upload, uploaded_by=user,
        input_shape=list(description["input_shape"]),
        num_classes=description["num_classes"],
        train_samples=description["train_samples"],
        test_samples=description["test_samples"],
        size_bytes=upload.size,
    )


def demo_setup(*, password: str):
    """The demo user (a superuser, so the admin can be tried) in the demo team."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    user, _ = User.objects.get_or_create(username="demo", defaults={"email": "demo@example.com"})
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    team, _ = Team.objects.get_or_create(name="Demo team")
    Membership.objects.get_or_create(team=team, user=user,
                                     defaults={"role": Membership.Role.ADMIN})
    return user, team


def recipe_save(*, team: Team, user, name: str, steps: list, description: str = ""):
    """Save (or replace) a named recipe in the team's library."""
    from runners.engine.steps import validate_step

    from .models import Recipe

    steps = [validate_step(step) for step in steps]
    return Recipe.objects.update_or_create(
        team=team, name=name,
        defaults={"steps": steps, "description": description, "created_by": user},
    )
