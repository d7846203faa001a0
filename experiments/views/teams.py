from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from .. import services
from ..access import membership_in, team_to_manage
from ..forms import MemberAddForm
from ..models import Membership
from ..selectors import teams_overview


@login_required
def team_list(request):
    services.team_for_user(request.user)  # a user without a team gets one
    teams = [{"membership": m, "members": members,
              "form": MemberAddForm(prefix=f"team{m.team_id}")}
             for m, members in teams_overview(request.user)]
    return render(request, "experiments/teams.html",
                  {"teams": teams, "roles": Membership.Role.choices})


@login_required
@require_POST
def team_member_add(request, pk):
    team = team_to_manage(request.user, pk)
    form = MemberAddForm(request.POST, prefix=f"team{team.pk}")
    if form.is_valid():
        try:
            membership, _ = services.team_member_add(
                team=team, user=request.user, username=form.cleaned_data["username"],
                role=form.cleaned_data["role"],
            )
        except ValueError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"{membership.user} is now a {membership.role} of {team}.")
    else:
        messages.error(request, " ".join(e for errs in form.errors.values() for e in errs))
    return redirect("team_list")


@login_required
@require_POST
def team_member_update(request, pk, membership_id):
    team = team_to_manage(request.user, pk)
    membership = membership_in(team, membership_id)
    role = request.POST.get("role", "")
    try:
        if role == "remove":
            services.team_member_remove(membership=membership, user=request.user)
            messages.info(request, f"Removed {membership.user} from {team}.")
        else:
            services.team_member_set_role(membership=membership, user=request.user,
                                          role=role)
            messages.success(request, f"{membership.user} is now a {role} of {team}.")
    except ValueError as exc:
        messages.error(request, str(exc))
    return redirect("team_list")
