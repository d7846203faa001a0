"""Who may see and change what. Another team's object is a 404, so its ids are
indistinguishable from missing ones; a viewer who tries to change something gets a 403.

Roles: viewer (read, comment), member (create, run, cancel, sign off), admin (manage
members). The services decide with the may_* and require_* helpers, raising Denied; the
templates ask the same may_* helpers for which buttons to draw; views, the API and the
CLI fetch objects with the *_for_user helpers (a 404 for another team's) and turn Denied
into their 403 or CommandError."""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404

from .models import Comment, Experiment, Membership, Run, SignOff, Team

CHANGE_ROLES = (Membership.Role.MEMBER, Membership.Role.ADMIN)


class Denied(PermissionDenied):
    """The user may not do this. Services raise it; views and the API answer it with a 403
    (Django and DRF turn any PermissionDenied into one), manage.py with a CommandError."""


def role_in(user, team_id) -> str | None:
    """The user's role in the team, or None for a stranger."""
    if user is None or not user.is_authenticated:
        return None
    return Membership.objects.filter(team=team_id, user=user).values_list(
        "role", flat=True
    ).first()


def may_change(user, team_id) -> bool:
    """Create experiments, upload, save recipes, cancel, re-run, re-benchmark, sign off:
    the team's members and admins."""
    return role_may_change(role_in(user, team_id))


def role_may_change(role) -> bool:
    """may_change for a role the caller has read already (a template drawing many
    buttons reads it once)."""
    return role in CHANGE_ROLES


def may_manage(user, team_id) -> bool:
    """Add and remove the team's members and change their roles: its admins."""
    return role_in(user, team_id) == Membership.Role.ADMIN


def may_comment(user, team_id) -> bool:
    """Anyone in the team, viewers included."""
    return role_in(user, team_id) is not None


def may_delete_comment(user, comment, role) -> bool:
    """Its author or a team admin. ``role``: the user's role in the comment's team (the
    caller has it, or reads it once for a whole thread)."""
    return comment.author_id == user.pk or role == Membership.Role.ADMIN


def may_revoke_signoff(user, signoff, role) -> bool:
    """A team admin, or its approver while still allowed to sign off (a member demoted to
    viewer cannot take back what the team now relies on)."""
    return role == Membership.Role.ADMIN or (
        signoff.approved_by_id == user.pk and role_may_change(role)
    )


def require_change(user, team_id) -> None:
    if not may_change(user, team_id):
        raise Denied("Viewers cannot change this team's work.")


def require_manage(user, team_id) -> None:
    if not may_manage(user, team_id):
        raise Denied("Only the team's admins manage its members.")


def experiment_for_user(user, pk) -> Experiment:
    return get_object_or_404(Experiment.objects.for_user(user).select_related("team"), pk=pk)


def run_for_user(user, pk) -> Run:
    return get_object_or_404(
        Run.objects.for_user(user).select_related("experiment", "experiment__team"),
        pk=pk,
    )


def own_team(user, pk) -> Team | None:
    """One of the user's teams, by id, or None."""
    return Team.objects.for_user(user).filter(pk=pk).first()


def comment_for_user(user, pk) -> Comment:
    return get_object_or_404(Comment.objects.for_user(user).select_related("experiment"),
                             pk=pk)


def signoff_for_user(user, pk) -> SignOff:
    return get_object_or_404(
        SignOff.objects.for_user(user).select_related("experiment", "run"), pk=pk)


def membership_in(team, pk) -> Membership:
    """One of the team's memberships (with its user), else a 404."""
    return get_object_or_404(team.memberships.select_related("user"), pk=pk)


def run_to_change(user, pk) -> Run:
    """The run, for an entry point that must refuse a viewer (403) before it reads its
    input (the service it calls checks again: the rule is the service's)."""
    run = run_for_user(user, pk)
    require_change(user, run.experiment.team_id)
    return run


def team_to_manage(user, pk) -> Team:
    """One of the user's teams, for an entry point that must refuse a non-admin (403)
    before it reads its input; the team_member_* services check again."""
    team = get_object_or_404(Team.objects.for_user(user), pk=pk)
    require_manage(user, team.pk)
    return team


# Longer ids than this cannot be a primary key (a bigint has 19 digits), and int() of a
# few thousand digits raises.
MAX_ID_DIGITS = 18


def run_ids_from(values) -> list[int]:
    """Run ids from query values such as ["1,2", "3"], in order, without repeats. Anything
    that is not an id is a run that does not exist: a 404."""
    ids = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            # "²".isdigit() is true
            if not (part.isascii() and part.isdigit()) or len(part) > MAX_ID_DIGITS:
                raise Http404("No such run.")
            if int(part) not in ids:
                ids.append(int(part))
    return ids


def runs_for_user(user, ids) -> list[Run]:
    """The runs, in the order asked; a single id the user may not see is a 404 for all, so
    another team's ids look exactly like missing ones."""
    found = {
        run.pk: run
        for run in Run.objects.for_user(user).filter(pk__in=ids)
        .select_related("experiment", "experiment__team")
    }
    if len(found) != len(ids):
        raise Http404("No such run.")
    return [found[pk] for pk in ids]


def experiment_run_ids(user, experiment_ids) -> list[int]:
    """The succeeded runs of these experiments (the experiments list's "Compare ticked"),
    experiment by experiment as asked, each in its page order; one experiment the user may
    not see is a 404 for all."""
    visible = set(Experiment.objects.for_user(user).filter(pk__in=experiment_ids)
                  .values_list("pk", flat=True))
    if len(visible) != len(set(experiment_ids)):
        raise Http404("No such experiment.")
    order = {pk: index for index, pk in enumerate(experiment_ids)}
    runs = (Run.objects.filter(experiment__in=visible, status=Run.Status.SUCCEEDED)
            .order_by("position", "replicate", "pk").values_list("experiment_id", "pk"))
    return [pk for _, pk in sorted(runs, key=lambda row: order[row[0]])]
