"""Serializers turn rows into JSON and check the shape of what comes in; the spec gate
(spec.validate_spec) and the services do the rest. Some exist only to describe a request
body in the OpenAPI schema (the upload): their names end in Doc. The spec's schema is
runners.engine.schema's own."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from runners.engine.fields import MAX_TEXT
from runners.engine.techniques import steps_schema

from ..comparison import baseline_chance
from ..forms import clean_recipe_steps
from ..markup import render_markdown
from ..models import (
    Comment,
    Dataset,
    Experiment,
    Membership,
    Recipe,
    Run,
    SignOff,
    Team,
    UploadedModel,
    WithdrawnSignOff,
)

MAX_POINTS = (2, 100_000)


class ChoiceField(serializers.ChoiceField):
    """DRF's, but a refusal lists the choices instead of repeating the value: a 10 MB value
    would come back whole, and a lone surrogate fails to encode the answer (a 500)."""

    def to_internal_value(self, data):
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError:
            choices = ", ".join(map(str, self.choices))
            raise serializers.ValidationError(f"Choose one of: {choices}.",
                                              code="invalid_choice") from None


class TeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["id", "name"]


class TeamRoleSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Team
        fields = ["id", "name", "role"]

    def get_role(self, team) -> str:
        return self.context["roles"].get(team.pk, "")


class RunSerializer(serializers.ModelSerializer):
    experiment = serializers.PrimaryKeyRelatedField(read_only=True)
    baseline = serializers.BooleanField(source="is_baseline", read_only=True)

    class Meta:
        model = Run
        fields = [
            "id", "experiment", "name", "position", "replicate", "baseline", "steps", "status",
            "progress",
            "epochs_done", "worker", "device", "cancel_requested", "error", "created_at",
            "started_at", "finished_at",
        ]
        read_only_fields = fields


class RunDetailSerializer(RunSerializer):
    result = serializers.JSONField(read_only=True, allow_null=True)

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "result", "stderr_tail", "heartbeat_at"]
        read_only_fields = fields


class ExperimentSerializer(serializers.ModelSerializer):
    team = TeamSerializer(read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                              allow_null=True)
    run_count = serializers.IntegerField(read_only=True)
    active = serializers.IntegerField(read_only=True, help_text="Runs queued or running.")
    failed = serializers.IntegerField(read_only=True)

    class Meta:
        model = Experiment
        fields = ["id", "name", "team", "hardware", "accuracy_budget", "created_by",
                  "created_at", "run_count", "active", "failed"]
        read_only_fields = fields


def _interval(**kwargs):
    return serializers.ListField(child=serializers.FloatField(), allow_null=True,
                                 min_length=2, max_length=2, **kwargs)


class BreakEvenSerializer(serializers.Serializer):
    what = serializers.CharField(help_text="The one-time cost: XLA compilation, TFLite "
                                           "conversion, fine-tuning epochs.")
    seconds = serializers.FloatField()
    unit = serializers.ChoiceField(choices=["inferences", "training samples"])
    after = serializers.IntegerField(allow_null=True, help_text="null: never (not faster).")
    ci = serializers.ListField(child=serializers.IntegerField(allow_null=True),
                               allow_null=True, min_length=2, max_length=2)


class BaselineChanceSerializer(serializers.Serializer):
    """A baseline that scored no better than guessing: nothing to compare, no sign-off."""

    accuracy = serializers.FloatField(
        help_text="The baseline's test accuracy; the mean of its replicates when several.")
    classes = serializers.IntegerField()
    chance = serializers.FloatField(help_text="1 / classes.")
    ci = _interval(help_text="The 95% interval around chance for this many test samples "
                             "(score test of p = 1/classes); at or below its top is chance.")
    test_samples = serializers.IntegerField()
    replicates = serializers.IntegerField(help_text="Baseline replicates averaged.")
    message = serializers.CharField()


class ComparisonRowSerializer(serializers.Serializer):
    """One line of comparison.compare_runs: the A/A control (the baseline against itself
    in the benchmark), a recipe against the baseline, a quantized recipe against the
    float32 model of its weights, or the runtime switch on its own."""

    run_id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=["A/A control", "vs baseline", "vs float32 TFLite",
                                            "runtime switch"])
    inference_speedup = serializers.FloatField(
        allow_null=True, help_text="Batch-1 latency ratio, from the benchmark stage.")
    inference_ci = _interval()
    inference_verdict = serializers.CharField(
        help_text="faster, slower, no clear difference; or why there is no figure yet "
                  "(benchmarking: execution 3 of 5).")
    throughput_speedup = serializers.FloatField(
        allow_null=True, help_text="At the training batch size, from the benchmark stage.")
    throughput_ci = _interval()
    invoke_speedup = serializers.FloatField(
        required=False, help_text="Two TFLite models: invoke() time only.")
    invoke_ci = _interval(required=False)
    method = serializers.CharField(allow_null=True,
                                   help_text="How the inference interval was made.")
    size_reduction = serializers.FloatField(allow_null=True)
    accuracy_delta = serializers.FloatField(
        allow_null=True, help_text="Test accuracy minus the baseline's, a fraction: -0.011 is "
                                   "1.1 percentage points lower (the pages show points).")
    accuracy_ci = _interval()
    comparable = serializers.BooleanField(
        help_text="Both runs were trained on the same hardware and software.")
    train_speedup = serializers.FloatField(allow_null=True)
    train_ci = _interval(help_text="From the replicates (training.repeats); null with one.")
    train_verdict = serializers.CharField()
    replicates = serializers.IntegerField(help_text="Replicate pairs the train speedup uses.")
    break_even = BreakEvenSerializer(many=True)
    baseline_chance = BaselineChanceSerializer(
        required=False, allow_null=True,
        help_text="On the A/A row: set when the baseline scored at chance level.")


class BenchmarkSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Run.Status.choices)
    stage = serializers.CharField(help_text='"benchmarking: execution 3 of 5"')
    execution = serializers.IntegerField()
    executions = serializers.IntegerField()
    progress = serializers.FloatField()
    error = serializers.CharField(allow_blank=True)


class ExperimentDetailSerializer(serializers.ModelSerializer):
    team = TeamSerializer(read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                              allow_null=True)
    spec = serializers.JSONField(read_only=True)
    runs = RunDetailSerializer(many=True, read_only=True)
    benchmark = serializers.SerializerMethodField()
    comparison = serializers.SerializerMethodField()
    baseline_at_chance = serializers.SerializerMethodField()

    class Meta:
        model = Experiment
        fields = ["id", "name", "team", "hardware", "accuracy_budget", "created_by",
                  "created_at", "spec", "runs", "benchmark", "comparison",
                  "baseline_at_chance"]
        read_only_fields = fields

    def get_benchmark(self, experiment) -> BenchmarkSerializer(allow_null=True):
        # The newest benchmark stage of the experiment, given by the view.
        return self.context["benchmark"]

    def get_comparison(self, experiment) -> ComparisonRowSerializer(many=True):
        # Computed by the view (comparison.compare_runs over the runs shown here).
        return self.context["comparison"]

    def get_baseline_at_chance(self, experiment) -> BaselineChanceSerializer(allow_null=True):
        # null unless the baseline scored at chance level: then no recipe can be signed off.
        return baseline_chance(self.context["comparison"])


class RunFilterSerializer(serializers.Serializer):
    experiment = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    status = ChoiceField(choices=Run.Status.choices, required=False)


class MetricsQuerySerializer(serializers.Serializer):
    max_points = serializers.IntegerField(
        required=False, min_value=MAX_POINTS[0], max_value=MAX_POINTS[1],
        help_text="Downsample each series (keeping each bucket's lowest and highest value) "
                  "to at most this many points. All points when left out.")


class PointListField(serializers.ListField):
    child = serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2)


class SeriesSerializer(serializers.Serializer):
    """[x, y] points: each metric against the epoch; validation accuracy also against the
    cumulative training seconds."""

    loss = PointListField()
    accuracy = PointListField()
    val_loss = PointListField()
    val_accuracy = PointListField()
    val_accuracy_by_time = PointListField()


class MetricsSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    status = serializers.CharField()
    epochs_done = serializers.IntegerField()
    max_points = serializers.IntegerField(allow_null=True)
    series = SeriesSerializer()


@extend_schema_field({**steps_schema(),
                      "description": "A technique and its parameters (DESIGN.md); defaults "
                                     "are filled in."})
class StepField(serializers.DictField):
    pass


class StepsField(serializers.ListField):
    child = StepField()


class RecipeSerializer(serializers.ModelSerializer):
    team = TeamSerializer(read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                              allow_null=True)
    steps = StepsField(read_only=True)

    class Meta:
        model = Recipe
        fields = ["id", "name", "description", "team", "steps", "created_by", "created_at"]
        read_only_fields = fields


class RecipeCreateSerializer(serializers.Serializer):
    """A recipe for the team's library; a recipe of the same name is replaced."""

    team = serializers.PrimaryKeyRelatedField(
        queryset=Team.objects.none(), required=False,
        help_text="One of your teams; your first team when left out.")
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=MAX_TEXT, required=False, allow_blank=True,
                                        default="")
    steps = StepsField(min_length=1, max_length=50)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None and request.user.is_authenticated:
            self.fields["team"].queryset = Team.objects.for_user(request.user)

    def validate_steps(self, steps):
        try:
            return clean_recipe_steps(steps)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None


class DatasetSerializer(serializers.ModelSerializer):
    team = TeamSerializer(read_only=True)
    uploaded_by = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                               allow_null=True)
    input_shape = serializers.ListField(child=serializers.IntegerField(), read_only=True)

    class Meta:
        model = Dataset
        fields = ["id", "name", "team", "input_shape", "num_classes", "train_samples",
                  "test_samples", "size_bytes", "uploaded_by", "created_at"]
        read_only_fields = fields


class DatasetUploadDoc(serializers.Serializer):
    """The upload form; forms.DatasetUploadForm checks it (one place for the .npz checks)."""

    name = serializers.CharField(max_length=200)
    team = serializers.IntegerField(required=False,
                                    help_text="One of your teams; your first team when left out.")
    file = serializers.FileField(help_text="A .npz with x_train, y_train, x_test, y_test.")


class UploadedModelSerializer(serializers.ModelSerializer):
    team = TeamSerializer(read_only=True)
    uploaded_by = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                               allow_null=True)
    input_shape = serializers.ListField(child=serializers.IntegerField(), read_only=True)

    class Meta:
        model = UploadedModel
        fields = ["id", "name", "team", "input_shape", "num_classes", "params", "layers",
                  "size_bytes", "uploaded_by", "created_at"]
        read_only_fields = fields


class ModelUploadDoc(serializers.Serializer):
    """The upload form; forms.ModelUploadForm checks it (archive, config, safe_mode load)."""

    name = serializers.CharField(max_length=200)
    team = serializers.IntegerField(required=False,
                                    help_text="One of your teams; your first team when left out.")
    file = serializers.FileField(help_text="A classifier saved with model.save('model.keras'); "
                                           "use it with {\"arch\": \"uploaded\", "
                                           "\"model_id\": id}.")


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "username", "role", "created_at"]
        read_only_fields = fields


class MemberAddSerializer(serializers.Serializer):
    """An existing user to add to the team; one already in it gets the role instead."""

    username = serializers.CharField(max_length=150)
    role = ChoiceField(choices=Membership.Role.choices, default=Membership.Role.MEMBER)


class MemberRoleSerializer(serializers.Serializer):
    role = ChoiceField(choices=Membership.Role.choices)


class CommentSerializer(serializers.ModelSerializer):
    author = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    html = serializers.SerializerMethodField(
        help_text="The Markdown body rendered and sanitized, as the pages show it.")

    class Meta:
        model = Comment
        fields = ["id", "experiment", "run", "author", "body", "html", "created_at"]
        read_only_fields = fields

    def get_html(self, comment) -> str:
        return str(render_markdown(comment.body))


class CommentCreateSerializer(serializers.Serializer):
    experiment = serializers.PrimaryKeyRelatedField(queryset=Experiment.objects.none())
    run = serializers.PrimaryKeyRelatedField(
        queryset=Run.objects.none(), required=False, allow_null=True,
        help_text="A run of the experiment the comment is about; the whole experiment when "
                  "left out.")
    body = serializers.CharField(max_length=Comment._meta.get_field("body").max_length,
                                 help_text="Markdown; raw HTML is dropped.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None and request.user.is_authenticated:
            self.fields["experiment"].queryset = Experiment.objects.for_user(request.user)
            self.fields["run"].queryset = Run.objects.for_user(request.user)


class SignOffSerializer(serializers.ModelSerializer):
    run_name = serializers.CharField(source="run.name", read_only=True)
    approved_by = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                               allow_null=True)
    evidence = serializers.JSONField(
        read_only=True, help_text="The comparison row and the accuracy budget checked.")

    class Meta:
        model = SignOff
        fields = ["id", "experiment", "run", "run_name", "model_label", "approved_by", "note",
                  "evidence", "created_at"]
        read_only_fields = fields


class WithdrawnSignOffSerializer(serializers.ModelSerializer):
    run_name = serializers.CharField(source="run.name", read_only=True)
    approved_by = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                               allow_null=True)
    withdrawn_by = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                                allow_null=True)
    evidence = serializers.JSONField(read_only=True)

    class Meta:
        model = WithdrawnSignOff
        fields = ["id", "experiment", "run", "run_name", "model_label", "approved_by",
                  "approved_at", "note", "evidence", "withdrawn_by", "withdrawn_at", "reason"]
        read_only_fields = fields


class SignOffCreateSerializer(serializers.Serializer):
    run = serializers.PrimaryKeyRelatedField(queryset=Run.objects.none())
    note = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None and request.user.is_authenticated:
            self.fields["run"].queryset = Run.objects.for_user(request.user)


class DiscussionFilterSerializer(serializers.Serializer):
    experiment = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    run = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)


class CompareQuerySerializer(serializers.Serializer):
    runs = serializers.CharField(help_text="Run ids of any of your experiments, "
                                           "comma-separated: ?runs=4,9,17.")


class ComparedRunSerializer(RunDetailSerializer):
    experiment_name = serializers.CharField(source="experiment.name", read_only=True)
    series = SeriesSerializer(read_only=True)
    summary = serializers.DictField(
        read_only=True, help_text="Each curve's last, best, min and max, from every epoch.")

    class Meta(RunDetailSerializer.Meta):
        fields = [*RunDetailSerializer.Meta.fields, "experiment_name", "series", "summary"]
        read_only_fields = fields


class FingerprintDifferenceSerializer(serializers.Serializer):
    key = serializers.CharField()
    values = serializers.ListField(child=serializers.CharField())


class CompareSerializer(serializers.Serializer):
    runs = ComparedRunSerializer(many=True)
    hardware_differences = FingerprintDifferenceSerializer(
        many=True, help_text="Fingerprint keys on which the measured runs disagree: their "
                             "timings are not comparable where this is not empty.")


class ErrorsDoc(serializers.Serializer):
    """Messages keyed by what they are about: a spec path ("training.epochs"), a field,
    or "detail"."""

    detail = serializers.CharField(required=False)
