"""The REST API. Every write goes through experiments.services and every object through
the access helpers, as the pages do: another team's object is a 404, a viewer's write a
403, a spec the gate refuses a 400 with its messages keyed by spec path."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, parsers, status, views, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.response import Response

from runners.engine import schema

from .. import services
from ..access import (
    MAX_ID_DIGITS,
    experiment_for_user,
    membership_in,
    own_team,
    require_change,
    run_for_user,
    run_to_change,
    team_to_manage,
)
from ..forms import DatasetUploadForm, ModelUploadForm
from ..listings import (
    IdsFirstPagination,
    RunCursorPagination,
    experiments_of_teams,
    roles_of,
    runs_listed,
    team_ids_of,
    with_run_counts,
)
from ..models import Dataset, Experiment, Recipe, Run, Team, UploadedModel
from ..selectors import (
    experiment_detail,
    recipes_of,
    run_series,
    team_members,
    uploads_of,
)
from ..uploadhandlers import files_over_limit
from . import serializers as s

ID = r"\d+"
# The spec's own schema (runners.engine.schema), plus the team to create it in.
SPEC_REQUEST = {**schema.json_schema(), "description": "The experiment spec of DESIGN.md."}
SPEC_REQUEST["properties"] = {
    "team": {"type": "integer", "description": "One of your teams; your first team when left "
                                               "out."},
    **SPEC_REQUEST["properties"]}
ERRORS = OpenApiResponse(s.ErrorsDoc, description="Messages keyed by spec path or field.")
FORBIDDEN = OpenApiResponse(s.ErrorsDoc, description="Viewers cannot change the team's work.")
NOT_FOUND = OpenApiResponse(s.ErrorsDoc, description="Not found, or another team's.")
CONFLICT = OpenApiResponse(s.ErrorsDoc, description="The run is in the wrong state for this.")


def exception_handler(exc, context):
    """DRF's, but a body over DATA_UPLOAD_MAX_MEMORY_SIZE (which request.body refuses) is
    a 400 with a message in JSON, like every other refusal, not Django's bare HTML 400."""
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        exc = ParseError(f"The request body is over the limit of {limit:,} bytes.")
    return views.exception_handler(exc, context)


class JSONParser(parsers.JSONParser):
    """The stock parser, but a body nested past the interpreter's recursion limit is a
    400 too, not a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None


def _team_named(request, team_id) -> Team:
    """The team a write goes to: the one named by id (the user's), else the first one.
    Raises 400 for a team that is not the user's; a viewer's write is the service's to
    refuse (a 403)."""
    if team_id is None:
        team = services.team_for_user(request.user)
    else:
        if isinstance(team_id, bool) or not isinstance(team_id, int):
            raise ValidationError({"team": ["Give the id of one of your teams."]})
        team = own_team(request.user, team_id)
        if team is None:
            raise ValidationError({"team": ["You are not a member of this team."]})
    return team


def _team_for_upload(request, team_id) -> None:
    """A viewer's upload is a 403 before its file is inspected (a .keras check starts a
    Keras process): the service's own rule, asked early. A team that is not the user's
    is left to the form's message."""
    team_id = str(team_id)
    if team_id.isascii() and team_id.isdigit() and len(team_id) <= MAX_ID_DIGITS:
        if own_team(request.user, team_id) is not None:
            require_change(request.user, int(team_id))


def _upload_form(request, form_class):
    """A multipart upload checked by the upload page's form (one place for the file
    checks): the valid form, else a 400 with its messages by field."""
    data = request.POST.copy()  # the fields; the file is in request.FILES
    if not data.get("team"):
        data["team"] = services.team_for_user(request.user).pk
    _team_for_upload(request, data["team"])
    form = form_class(data, request.FILES, user=request.user,
                      max_bytes=settings.ACCELWEB_MAX_UPLOAD_BYTES,
                      over_limit=files_over_limit(request))
    if not form.is_valid():
        raise ValidationError({field: [e["message"] for e in errors]
                               for field, errors in form.errors.get_json_data().items()})
    return form


def anonymous(view) -> bool:
    # drf-spectacular builds the schema with an anonymous request.
    return getattr(view, "swagger_fake_view", False) or not view.request.user.is_authenticated


@extend_schema(tags=["teams"])
class TeamViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Your teams and your role in each (viewer, member, admin); their members, which the
    team's admins manage."""

    lookup_value_regex = ID
    parser_classes = [JSONParser]
    serializer_class = s.TeamRoleSerializer
    pagination_class = None

    def get_queryset(self):
        if anonymous(self):
            return Team.objects.none()
        return Team.objects.for_user(self.request.user)

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if not anonymous(self):
            context["roles"] = roles_of(self.request.user)
        return context

    @extend_schema(
        methods=["get"], summary="The team's members and their roles",
        responses={200: s.MembershipSerializer(many=True), 404: NOT_FOUND},
    )
    @extend_schema(
        methods=["post"], summary="Add a user to the team (admins only)",
        description="A user already in the team gets the role instead (200).",
        request=s.MemberAddSerializer,
        responses={201: s.MembershipSerializer, 200: s.MembershipSerializer, 400: ERRORS,
                   403: FORBIDDEN, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get", "post"], serializer_class=s.MembershipSerializer)
    def members(self, request, pk):
        if request.method == "GET":
            team = get_object_or_404(self.get_queryset(), pk=pk)
            return Response(s.MembershipSerializer(team_members(team), many=True).data)
        team = team_to_manage(request.user, pk)
        data = s.MemberAddSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            membership, created = services.team_member_add(team=team, user=request.user,
                                                           **data.validated_data)
        except ValueError as exc:
            raise ValidationError({"username": [str(exc)]}) from None
        return Response(s.MembershipSerializer(membership).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(
        methods=["patch"], summary="Change a member's role (admins only)",
        request=s.MemberRoleSerializer,
        responses={200: s.MembershipSerializer, 400: ERRORS, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    @extend_schema(
        methods=["delete"], summary="Remove a member from the team (admins only)",
        responses={204: None, 400: ERRORS, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["patch", "delete"], url_path=rf"members/(?P<membership_id>{ID})",
            url_name="member", serializer_class=s.MembershipSerializer)
    def member(self, request, pk, membership_id):
        team = team_to_manage(request.user, pk)
        membership = membership_in(team, membership_id)
        try:
            if request.method == "DELETE":
                services.team_member_remove(membership=membership, user=request.user)
                return Response(status=status.HTTP_204_NO_CONTENT)
            data = s.MemberRoleSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            services.team_member_set_role(membership=membership, user=request.user,
                                          **data.validated_data)
        except ValueError as exc:  # the team's last admin
            raise ValidationError({"role": [str(exc)]}) from None
        return Response(s.MembershipSerializer(membership).data)


@extend_schema(tags=["experiments"])
class ExperimentViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    lookup_value_regex = ID
    parser_classes = [JSONParser]
    serializer_class = s.ExperimentSerializer
    pagination_class = IdsFirstPagination

    def get_queryset(self):
        if anonymous(self):
            return Experiment.objects.none()
        return experiments_of_teams(team_ids_of(self.request.user))

    def list(self, request):
        # The page first, then its runs counted: counting in the page's query would group
        # every run of the team before the page is cut.
        page = with_run_counts(self.paginate_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def _detail(self, experiment):
        context = {**self.get_serializer_context(), **experiment_detail(experiment)}
        return s.ExperimentDetailSerializer(experiment, context=context).data

    @extend_schema(
        summary="Create an experiment from a spec",
        description="The body is the spec of DESIGN.md, with an optional `team` id. A "
                    "baseline run and one run per recipe are queued.",
        request={"application/json": SPEC_REQUEST},
        responses={201: s.ExperimentDetailSerializer, 400: ERRORS, 403: FORBIDDEN},
    )
    def create(self, request):
        if not isinstance(request.data, dict):
            raise ValidationError({"spec": ["The spec must be a JSON object."]})
        spec = dict(request.data)
        team = _team_named(request, spec.pop("team", None))
        try:
            experiment = services.experiment_create(team=team, user=request.user, spec=spec)
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict) from None
        return Response(self._detail(experiment), status=status.HTTP_201_CREATED)

    @extend_schema(summary="An experiment with its runs and the speedup comparison",
                   responses={200: s.ExperimentDetailSerializer, 404: NOT_FOUND})
    def retrieve(self, request, pk):
        return Response(self._detail(experiment_for_user(request.user, pk)))

    @extend_schema(
        summary="Benchmark the experiment's models again",
        description="Queues the benchmark stage alone (no training): every shipped model "
                    "measured side by side in fresh processes, the baseline twice as the "
                    "A/A control. 409 while runs or a benchmark are under way, or when "
                    "the baseline has not succeeded.",
        request=None,
        responses={202: s.ExperimentDetailSerializer, 403: FORBIDDEN, 404: NOT_FOUND,
                   409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def rebenchmark(self, request, pk):
        experiment = experiment_for_user(request.user, pk)
        try:
            services.experiment_rebenchmark(experiment=experiment, user=request.user)
        except services.BenchmarkRefused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(self._detail(experiment), status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["runs"])
class RunViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Runs of your teams, newest first; the list follows `next` and `previous` cursors."""

    lookup_value_regex = ID
    serializer_class = s.RunSerializer
    pagination_class = RunCursorPagination

    def get_queryset(self):
        if anonymous(self):
            return Run.objects.none()
        return runs_listed(team_ids_of(self.request.user))

    @extend_schema(parameters=[s.RunFilterSerializer], responses={200: s.RunSerializer(many=True),
                                                                   400: ERRORS})
    def list(self, request):
        query = s.RunFilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        runs = runs_listed(team_ids_of(request.user), **query.validated_data)
        page = self.paginate_queryset(runs)
        return self.get_paginated_response(s.RunSerializer(page, many=True).data)

    @extend_schema(responses={200: s.RunDetailSerializer, 404: NOT_FOUND})
    def retrieve(self, request, pk):
        return Response(s.RunDetailSerializer(run_for_user(request.user, pk)).data)

    @extend_schema(
        summary="Cancel a run",
        description="A queued run is cancelled at once; a running one is asked to stop.",
        request=None,
        responses={200: s.RunDetailSerializer, 403: FORBIDDEN, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk):
        run = run_for_user(request.user, pk)
        if not services.run_cancel(run, user=request.user):
            return Response({"detail": "This run has already ended."},
                            status=status.HTTP_409_CONFLICT)
        return Response(s.RunDetailSerializer(run).data)

    @extend_schema(
        summary="Queue an ended run again",
        request=None,
        responses={200: s.RunDetailSerializer, 403: FORBIDDEN, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def rerun(self, request, pk):
        run = run_to_change(request.user, pk)
        if not services.run_rerun(run, user=request.user):
            return Response({"detail": "This run has not ended yet."},
                            status=status.HTTP_409_CONFLICT)
        return Response(s.RunDetailSerializer(run).data)

    @extend_schema(
        summary="A run's loss and accuracy curves",
        parameters=[s.MetricsQuerySerializer],
        responses={200: s.MetricsSerializer, 400: ERRORS, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"])
    def metrics(self, request, pk):
        run = run_for_user(request.user, pk)
        query = s.MetricsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        max_points = query.validated_data.get("max_points")
        return Response({
            "run": run.pk, "status": run.status, "epochs_done": run.epochs_done,
            "max_points": max_points, "series": run_series(run, max_points=max_points),
        })


@extend_schema(tags=["recipes"])
class RecipeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    lookup_value_regex = ID
    parser_classes = [JSONParser]
    serializer_class = s.RecipeSerializer

    def get_queryset(self):
        if anonymous(self):
            return Recipe.objects.none()
        return recipes_of(self.request.user)

    @extend_schema(
        summary="Save a recipe in a team's library (a recipe of the same name is replaced)",
        request=s.RecipeCreateSerializer,
        responses={201: s.RecipeSerializer, 200: s.RecipeSerializer, 400: ERRORS,
                   403: FORBIDDEN},
    )
    def create(self, request):
        data = s.RecipeCreateSerializer(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        team = data.validated_data.get("team")
        team = _team_named(request, team.pk if team else None)
        recipe, created = services.recipe_save(
            team=team, user=request.user, name=data.validated_data["name"],
            steps=data.validated_data["steps"],
            description=data.validated_data["description"],
        )
        return Response(s.RecipeSerializer(recipe).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(responses={204: None, 403: FORBIDDEN, 404: NOT_FOUND})
    def destroy(self, request, pk):
        services.recipe_delete(recipe=get_object_or_404(self.get_queryset(), pk=pk),
                               user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class _UploadViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                     viewsets.GenericViewSet):
    """Files uploaded to the user's teams, checked by the upload page's form and stored by
    its service."""

    lookup_value_regex = ID
    parser_classes = [parsers.MultiPartParser]
    model = form_class = store = None

    def get_queryset(self):
        if anonymous(self):
            return self.model.objects.none()
        return uploads_of(self.model, self.request.user)

    def create(self, request):
        form = _upload_form(request, self.form_class)
        created = self.store(
            team=form.cleaned_data["team"], user=request.user, name=form.cleaned_data["name"],
            upload=form.cleaned_data["file"], description=form.description,
        )
        return Response(self.get_serializer(created).data, status=status.HTTP_201_CREATED)


@extend_schema_view(create=extend_schema(
    summary="Upload a .npz dataset (keras.datasets layout)",
    request={"multipart/form-data": s.DatasetUploadDoc},
    responses={201: s.DatasetSerializer, 400: ERRORS, 403: FORBIDDEN},
))
@extend_schema(tags=["datasets"])
class DatasetViewSet(_UploadViewSet):
    serializer_class = s.DatasetSerializer
    model, form_class = Dataset, DatasetUploadForm
    store = staticmethod(services.dataset_create)


@extend_schema_view(create=extend_schema(
    summary="Upload a .keras model (built-in layers only, loaded with safe_mode)",
    request={"multipart/form-data": s.ModelUploadDoc},
    responses={201: s.UploadedModelSerializer, 400: ERRORS, 403: FORBIDDEN},
))
@extend_schema(tags=["models"])
class UploadedModelViewSet(_UploadViewSet):
    """.keras models uploaded to your teams; a spec uses one with
    {"arch": "uploaded", "model_id": id}."""

    serializer_class = s.UploadedModelSerializer
    model, form_class = UploadedModel, ModelUploadForm
    store = staticmethod(services.uploaded_model_create)
