"""The review half of the API: comments, sign-offs and runs compared across experiments.
The same services and access helpers as the discussion and compare pages: a viewer may
comment, a member signs off, another team's object is a 404."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import services
from ..access import run_ids_from, runs_for_user
from ..comparison import fingerprint_differences
from ..listings import RUN_BULK, discussion_of_teams, team_ids_of
from ..models import Comment, SignOff, WithdrawnSignOff
from ..selectors import MAX_COMPARED, compared_curves
from . import serializers as s
from .views import ERRORS, FORBIDDEN, ID, NOT_FOUND, JSONParser, anonymous

REFUSED = OpenApiResponse(s.ErrorsDoc, description="The run is not eligible, or already signed "
                                                   "off: `detail` says why.")


class _DiscussionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                         viewsets.GenericViewSet):
    """Comments and sign-offs of the user's teams, filtered by ?experiment= and ?run=."""

    lookup_value_regex = ID
    parser_classes = [JSONParser]
    model, related = None, ()
    # Large columns of the related rows, which no list shows.
    deferred = ("experiment__spec", "experiment__evidence")

    def get_queryset(self):
        if anonymous(self):
            return self.model.objects.none()
        return discussion_of_teams(self.model, team_ids_of(self.request.user),
                                   related=self.related, deferred=self.deferred)

    def filter_queryset(self, queryset):
        if self.action not in ("list", "withdrawn"):
            return queryset
        query = s.DiscussionFilterSerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return queryset.filter(**query.validated_data)


@extend_schema(tags=["discussion"])
class CommentViewSet(_DiscussionViewSet):
    """Comments on experiments and runs, in Markdown (rendered sanitized in `html`)."""

    serializer_class = s.CommentSerializer
    model = Comment
    related = ("author", "experiment")

    @extend_schema(parameters=[s.DiscussionFilterSerializer])
    def list(self, request):
        return super().list(request)

    @extend_schema(
        summary="Comment on an experiment or one of its runs (viewers may comment)",
        request=s.CommentCreateSerializer,
        responses={201: s.CommentSerializer, 400: ERRORS},
    )
    def create(self, request):
        data = s.CommentCreateSerializer(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        try:
            comment = services.comment_add(
                experiment=data.validated_data["experiment"], run=data.validated_data.get("run"),
                user=request.user, body=data.validated_data["body"],
            )
        except DjangoValidationError as exc:
            raise ValidationError({"body": exc.messages}) from None
        return Response(s.CommentSerializer(comment).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Delete a comment (its author or a team admin)",
                   responses={204: None, 403: FORBIDDEN, 404: NOT_FOUND})
    def destroy(self, request, pk):
        services.comment_delete(comment=self.get_object(), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["discussion"])
class SignOffViewSet(_DiscussionViewSet):
    """Approvals of a recipe (a run) for its experiment's model, with their evidence."""

    serializer_class = s.SignOffSerializer
    model = SignOff
    related = ("approved_by", "run", "experiment")
    deferred = (*_DiscussionViewSet.deferred, *(f"run__{name}" for name in RUN_BULK))

    @extend_schema(parameters=[s.DiscussionFilterSerializer])
    def list(self, request):
        return super().list(request)

    @extend_schema(
        summary="Sign a run off",
        description="Allowed to members and admins, and only when the run's training or "
                    "inference speedup interval lies above 1.0, it ran on the baseline's "
                    "hardware, its accuracy drop is within the experiment's budget and the "
                    "baseline scored above chance level (the experiment's "
                    "`baseline_at_chance`); otherwise 409 with the reasons.",
        request=s.SignOffCreateSerializer,
        responses={201: s.SignOffSerializer, 400: ERRORS, 403: FORBIDDEN, 409: REFUSED},
    )
    def create(self, request):
        data = s.SignOffCreateSerializer(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        run = data.validated_data["run"]
        try:
            signoff = services.signoff_create(run=run, user=request.user,
                                              note=data.validated_data["note"])
        except services.SignOffRefused as exc:
            return Response({"detail": f"“{run.name}” cannot be signed off. {exc}"},
                            status=status.HTTP_409_CONFLICT)
        return Response(s.SignOffSerializer(signoff).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Revoke a sign-off (its approver or a team admin)",
                   description="The sign-off is kept under withdrawn/.",
                   responses={204: None, 403: FORBIDDEN, 404: NOT_FOUND})
    def destroy(self, request, pk):
        services.signoff_revoke(signoff=self.get_object(), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Sign-offs that no longer stand",
        description="Revoked ones, and those a re-run of the run or its baseline withdrew.",
        parameters=[s.DiscussionFilterSerializer],
        responses={200: s.WithdrawnSignOffSerializer(many=True), 400: ERRORS},
    )
    @action(detail=False, methods=["get"], serializer_class=s.WithdrawnSignOffSerializer)
    def withdrawn(self, request):
        withdrawn = self.filter_queryset(discussion_of_teams(
            WithdrawnSignOff, team_ids_of(request.user),
            related=("run", "approved_by", "withdrawn_by"),
            deferred=[f"run__{name}" for name in RUN_BULK]))
        page = self.paginate_queryset(withdrawn)
        return self.get_paginated_response(s.WithdrawnSignOffSerializer(page, many=True).data)


@extend_schema(tags=["review"])
class CompareView(APIView):
    @extend_schema(
        summary="Runs of several experiments side by side",
        description=f"Up to {MAX_COMPARED} runs with their results, downsampled curves and "
                    "curve summaries, and the hardware keys on which they differ.",
        parameters=[s.CompareQuerySerializer],
        responses={200: s.CompareSerializer, 400: ERRORS, 404: NOT_FOUND},
    )
    def get(self, request):
        query = s.CompareQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        ids = run_ids_from(request.query_params.getlist("runs"))
        if not ids:
            raise ValidationError({"runs": ["Give one or more run ids: ?runs=4,9."]})
        if len(ids) > MAX_COMPARED:
            raise ValidationError({"runs": [f"At most {MAX_COMPARED} runs at a time; "
                                            f"{len(ids)} were given."]})
        runs = runs_for_user(request.user, ids)
        curves = compared_curves(runs)
        for run in runs:
            run.series, run.summary = curves[run.pk]["series"], curves[run.pk]["summary"]
        return Response({
            "runs": s.ComparedRunSerializer(runs, many=True).data,
            "hardware_differences": fingerprint_differences(
                [run.result for run in runs if run.result]),
        })
