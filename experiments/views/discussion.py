"""Comments and sign-offs. Viewers may comment; members and admins sign off; a comment
goes with its author or a team admin, a sign-off with its approver or a team admin."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from .. import services
from ..access import comment_for_user, experiment_for_user, run_for_user, signoff_for_user
from ..forms import CommentForm, SignOffForm
from .pages import _results_context


def _discussion_url(experiment_id, anchor="discussion"):
    return reverse("experiment_detail", args=[experiment_id]) + f"#{anchor}"


@login_required
@require_POST
def comment_add(request, pk):
    experiment = experiment_for_user(request.user, pk)
    form = CommentForm(request.POST, experiment=experiment)
    if form.is_valid():
        run = form.cleaned_data["run"]
        try:
            services.comment_add(experiment=experiment, run=run, user=request.user,
                                 body=form.cleaned_data["body"])
        except ValidationError as exc:
            form.add_error("body", exc)
        else:
            messages.success(request, "Comment added.")
            # A fixed choice, never a URL from the request: no open redirect.
            if run is not None and request.POST.get("return_to") == "run":
                return redirect(reverse("run_detail", args=[run.pk]) + "#comments")
            return redirect(_discussion_url(experiment.pk))
    # The experiment page again, with the text kept and the error next to it.
    context = {**_results_context(experiment, request.user), "comment_form": form}
    return render(request, "experiments/detail.html", context, status=400)


@login_required
@require_POST
def comment_delete(request, pk):
    comment = comment_for_user(request.user, pk)
    services.comment_delete(comment=comment, user=request.user)
    messages.info(request, "Comment deleted.")
    return redirect(_discussion_url(comment.experiment_id))


@login_required
@require_POST
def run_signoff(request, pk):
    run = run_for_user(request.user, pk)
    form = SignOffForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(e for errs in form.errors.values() for e in errs))
        return redirect(_discussion_url(run.experiment_id, "signoffs"))
    try:
        services.signoff_create(run=run, user=request.user, note=form.cleaned_data["note"])
    except services.SignOffRefused as exc:
        messages.error(request, f"“{run.name}” cannot be signed off. {exc}")
    else:
        messages.success(request, f"Signed off “{run.name}”.")
    return redirect(_discussion_url(run.experiment_id, "signoffs"))


@login_required
@require_POST
def signoff_revoke(request, pk):
    signoff = signoff_for_user(request.user, pk)
    services.signoff_revoke(signoff=signoff, user=request.user)
    messages.info(request, f"Revoked the sign-off of “{signoff.run.name}”.")
    return redirect(_discussion_url(signoff.experiment_id, "signoffs"))
