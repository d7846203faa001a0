"""Sign-offs and comments, each in a fixed number of queries.

    {% load discussion %}
    {% signoffs experiment %}            in the results (reuses their runs and comparison)
    {% comment_list experiment %}        in the results: the experiment's comments
    {% comment_form experiment %}        below the results: the form to add one
    {% discussion experiment run=run %}  on a run's page: that run's comments and the form
"""

from django import template

from ..access import may_delete_comment, may_revoke_signoff, role_in, role_may_change
from ..comparison import primary_run, recipe_groups
from ..forms import CommentForm, SignOffForm
from ..markup import render_markdown
from ..models import Comment, SignOff, WithdrawnSignOff
from ..selectors import experiment_comparison
from ..services import model_label, signoff_blockers

register = template.Library()


@register.filter
def markdown(text):
    """A comment's Markdown as sanitized HTML."""
    return render_markdown(text)


def _user(context):
    request = context.get("request")
    return request.user if request is not None else context.get("user")


def _comments(context, experiment, run=None) -> dict:
    user = _user(context)
    role = role_in(user, experiment.team_id)
    comments = Comment.objects.filter(experiment=experiment).select_related("author", "run")
    if run is not None:
        comments = comments.filter(run=run)
    comments = list(comments)
    return {
        "experiment": experiment,
        "run": run,
        "comments": comments,
        "deletable": {c.pk for c in comments if may_delete_comment(user, c, role)},
    }


def _form(context, experiment, run=None) -> dict:
    form = context.get("comment_form") or CommentForm(experiment=experiment)
    selected = form["run"].value() if run is None else run.pk
    runs = context.get("runs")
    if run is None and runs is None:  # the "about" choices of the experiment's thread
        runs = list(experiment.runs.defer("curves"))
    return {
        "experiment": experiment,
        "run": run,
        "runs": runs,
        "form": form,
        "selected_run": "" if selected in (None, "") else str(selected),
    }


@register.inclusion_tag("experiments/_discussion.html", takes_context=True)
def discussion(context, experiment, run=None):
    """The comment thread of an experiment, or of one of its runs, with its form."""
    return {**_comments(context, experiment, run), **_form(context, experiment, run)}


@register.inclusion_tag("experiments/_comments.html", takes_context=True)
def comment_list(context, experiment):
    """The experiment's comments. Part of the results, like the sign-offs, so the page
    draws them again when a comment is added or deleted elsewhere."""
    return _comments(context, experiment)


@register.inclusion_tag("experiments/_comment_form.html", takes_context=True)
def comment_form(context, experiment):
    """The experiment page's comment form, outside the results: redrawing those must not
    throw away a comment being typed."""
    return _form(context, experiment)


@register.inclusion_tag("experiments/_signoffs.html", takes_context=True)
def signoffs(context, experiment):
    """Each recipe run's sign-off, or why it cannot be signed off yet. Part of the results,
    so it is drawn again whenever a run ends."""
    user = _user(context)
    role = role_in(user, experiment.team_id)
    # The results have already read the runs and compared them; reuse both.
    if "runs" in context and "comparison" in context:
        runs, rows = context["runs"], context["comparison"]
    else:
        runs = list(experiment.runs.defer("curves"))
        rows = experiment_comparison(experiment, runs)
    approved = {
        s.run_id: s for s in SignOff.objects.filter(experiment=experiment)
        .select_related("approved_by")
    }
    candidates = []
    # One line per recipe: its first succeeded replicate stands for it.
    for position, group in recipe_groups(runs).items():
        if position == 0:
            continue
        candidate = primary_run(group)
        signoff = approved.get(candidate.pk)
        reasons, evidence = ([], None) if signoff else signoff_blockers(
            run=candidate, runs=runs, rows=rows)
        can_revoke = signoff is not None and may_revoke_signoff(user, signoff, role)
        candidates.append({"run": candidate, "signoff": signoff, "reasons": reasons,
                           "can_revoke": can_revoke,
                           "accuracy_delta": evidence["row"]["accuracy_delta"] if evidence
                           else None})
    return {
        "experiment": experiment,
        "can_sign": role_may_change(role),
        "candidates": candidates,
        "withdrawn": WithdrawnSignOff.objects.filter(experiment=experiment).select_related(
            "run", "approved_by", "withdrawn_by"),
        "signoff_form": SignOffForm(),
        "model_label": model_label(experiment.spec),
    }
