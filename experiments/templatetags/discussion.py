"""The discussion under an experiment (sign-offs and comments) and under a run (its
comments), in a fixed number of queries: the user's role, the sign-offs, the comments.

    {% load discussion %}
    {% discussion experiment %}          on the experiment page (reuses its runs/comparison)
    {% discussion experiment run=run %}  on a run's page: that run's comments only
"""

from django import template

from ..access import CHANGE_ROLES, role_in
from ..comparison import compare_runs
from ..forms import CommentForm, SignOffForm
from ..markup import render_markdown
from ..models import Comment, Membership, SignOff
from ..services import model_label, signoff_blockers

register = template.Library()


@register.filter
def markdown(text):
    """A comment's Markdown as sanitized HTML."""
    return render_markdown(text)


def _user(context):
    request = context.get("request")
    return request.user if request is not None else context.get("user")


@register.inclusion_tag("experiments/_discussion.html", takes_context=True)
def discussion(context, experiment, run=None):
    user = _user(context)
    role = role_in(user, experiment.team_id)
    is_admin = role == Membership.Role.ADMIN
    comments = Comment.objects.filter(experiment=experiment).select_related("author", "run")
    if run is not None:
        comments = comments.filter(run=run)
    comments = list(comments)
    form = context.get("comment_form") or CommentForm(experiment=experiment)
    selected = form["run"].value() if run is None else run.pk
    data = {
        "experiment": experiment,
        "run": run,
        "can_sign": role in CHANGE_ROLES,
        "comments": comments,
        "deletable": {c.pk for c in comments if is_admin or c.author_id == user.pk},
        "form": form,
        "selected_run": "" if selected in (None, "") else str(selected),
    }
    if run is not None:
        return data

    # The experiment page has already read its runs and compared them; reuse both.
    if "runs" in context and "comparison" in context:
        runs, rows = context["runs"], context["comparison"]
    else:
        runs = list(experiment.runs.all())
        rows = compare_runs(runs)
    signoffs = {
        s.run_id: s for s in SignOff.objects.filter(experiment=experiment)
        .select_related("approved_by")
    }
    candidates = []
    for candidate in runs:
        if candidate.is_baseline:
            continue
        signoff = signoffs.get(candidate.pk)
        reasons = [] if signoff else signoff_blockers(run=candidate, runs=runs, rows=rows)[0]
        can_revoke = signoff is not None and (
            is_admin or (signoff.approved_by_id == user.pk and role in CHANGE_ROLES)
        )
        candidates.append({"run": candidate, "signoff": signoff, "reasons": reasons,
                           "can_revoke": can_revoke})
    data.update(
        runs=runs, candidates=candidates, signoff_form=SignOffForm(),
        model_label=model_label(experiment.spec),
        budget_points=experiment.accuracy_budget * 100,
    )
    return data
