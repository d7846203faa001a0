"""Uploads: .keras models a team trains and accelerates like the zoo's."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from .. import services
from ..forms import ModelUploadForm
from ..models import UploadedModel
from ..selectors import uploads_of
from ..uploadhandlers import files_over_limit


@login_required
def model_list(request):
    services.team_for_user(request.user)  # a user without a team gets one
    # A viewer is refused by the form (ModelUploadForm.clean_team asks the service's rule
    # early), before the Keras check; uploaded_model_create decides.
    form = ModelUploadForm(
        request.POST or None, request.FILES or None, user=request.user,
        max_bytes=settings.ACCELWEB_MAX_UPLOAD_BYTES, over_limit=files_over_limit(request),
    )
    if request.method == "POST" and form.is_valid():
        uploaded = services.uploaded_model_create(
            team=form.cleaned_data["team"], user=request.user,
            name=form.cleaned_data["name"], upload=form.cleaned_data["file"],
            description=form.description,
        )
        messages.success(request, f"Uploaded “{uploaded.name}” ({uploaded.shape_label} → "
                                  f"{uploaded.num_classes} classes, {uploaded.params:,} "
                                  "parameters).")
        return redirect("model_list")
    uploaded_models = uploads_of(UploadedModel, request.user)
    status = 400 if request.method == "POST" else 200
    return render(request, "experiments/models.html",
                  {"form": form, "uploaded_models": uploaded_models}, status=status)
