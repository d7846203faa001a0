"""Who may see and change what. Another team's object is a 404, so its ids are
indistinguishable from missing ones; a viewer who tries to change something gets a 403.

Roles: viewer (read, comment), member (create, run, cancel, sign off), admin (manage
members). Views and the API both go through these helpers."""

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from .models import Experiment, Membership, Run

CHANGE_ROLES = (Membership.Role.MEMBER, Membership.Role.ADMIN)


def role_in(user, team_id) -> str | None:
    """The user's role in the team, or None for a stranger."""
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(team=team_id, user=user).values_list(
        "role", flat=True
    ).first()


def can_change(user, team_id) -> bool:
    return role_in(user, team_id) in CHANGE_ROLES


def require_member(user, team_id) -> None:
    if not can_change(user, team_id):
        raise PermissionDenied("Viewers cannot change this team's work.")


def experiment_for_user(user, pk) -> Experiment:
    return get_object_or_404(Experiment.objects.for_user(user).select_related("team"), pk=pk)


def run_for_user(user, pk) -> Run:
    return get_object_or_404(
        Run.objects.select_related("experiment", "experiment__team").filter(
            experiment__team__memberships__user=user
        ),
        pk=pk,
    )


def run_to_change(user, pk) -> Run:
    run = run_for_user(user, pk)
    require_member(user, run.experiment.team_id)
    return run
