from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import connection
from django.utils.functional import cached_property

from . import services
from .listings import EXPERIMENT_BULK, RUN_BULK
from .models import (
    Benchmark,
    Comment,
    Dataset,
    Experiment,
    Membership,
    Recipe,
    Run,
    RunEvent,
    SignOff,
    Team,
    UploadedModel,
    WithdrawnSignOff,
    Worker,
)

# What the engine and the runner store as RunEvent.kind (runners.engine, runners.telemetry).
EVENT_KINDS = ("phase", "epoch", "progress", "telemetry", "log", "model", "result", "error",
               "cancelled")


class WorkerFilter(admin.SimpleListFilter):
    """The runners that announced themselves (Worker rows), where the field's own filter
    would run SELECT DISTINCT worker over every run on each view of the changelist."""

    title = "worker"
    parameter_name = "worker"

    def lookups(self, request, model_admin):
        return [(name, name) for name in Worker.objects.values_list("name", flat=True)]

    def queryset(self, request, queryset):
        return queryset.filter(worker=self.value()) if self.value() else queryset


class EventKindFilter(admin.SimpleListFilter):
    """The kinds of event there are, where the field's own filter would run SELECT DISTINCT
    kind over every event stored."""

    title = "kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return [(kind, kind) for kind in EVENT_KINDS]

    def queryset(self, request, queryset):
        return queryset.filter(kind=self.value()) if self.value() else queryset


class EstimatedCountPaginator(Paginator):
    """An exact count of an unfiltered table of millions of rows scans it on every view of
    the changelist; PostgreSQL's own estimate (pg_class.reltuples, kept fresh by autovacuum)
    is enough to page with. Filtered lists, small tables and SQLite count exactly."""

    estimate_above = 1_000_000

    @cached_property
    def count(self):
        query = self.object_list.query
        if connection.vendor == "postgresql" and not query.where:
            with connection.cursor() as cursor:
                cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass",
                               [self.object_list.model._meta.db_table])
                row = cursor.fetchone()
            if row and row[0] > self.estimate_above:
                return int(row[0])
        return super().count


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "member_count", "created_at"]
    search_fields = ["name", "members__username"]
    inlines = [MembershipInline]

    @admin.display(description="members")
    def member_count(self, team):
        return team.memberships.count()


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "team", "role", "created_at"]
    list_filter = ["role", "team"]
    search_fields = ["user__username", "team__name"]
    autocomplete_fields = ["user", "team"]


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "input_shape", "num_classes", "train_samples",
                    "test_samples", "size_bytes", "uploaded_by", "created_at"]
    list_filter = ["team", "num_classes"]
    search_fields = ["name", "team__name"]
    readonly_fields = ["input_shape", "num_classes", "train_samples", "test_samples",
                       "size_bytes"]
    # In this order: TeamUpload's fields would come first otherwise.
    fields = ["team", "name", "file", "uploaded_by", "created_at", *readonly_fields]


@admin.register(UploadedModel)
class UploadedModelAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "input_shape", "num_classes", "params", "layers",
                    "size_bytes", "uploaded_by", "created_at"]
    list_filter = ["team"]
    search_fields = ["name", "team__name"]
    readonly_fields = ["input_shape", "num_classes", "params", "layers", "size_bytes"]
    # In this order: TeamUpload's fields would come first otherwise.
    fields = ["team", "name", "file", "facts", "uploaded_by", "created_at", *readonly_fields]


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    list_display = ["experiment", "run", "author", "short_body", "created_at"]
    list_filter = ["experiment__team"]
    search_fields = ["body", "author__username", "experiment__name"]
    raw_id_fields = ["experiment", "run"]
    # A run's name is "experiment / recipe": without these, two queries a row.
    list_select_related = ["experiment", "run__experiment", "author"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer(
            *(f"experiment__{name}" for name in EXPERIMENT_BULK),
            *(f"run__{name}" for name in RUN_BULK),
            *(f"run__experiment__{name}" for name in EXPERIMENT_BULK))

    @admin.display(description="comment")
    def short_body(self, comment):
        return comment.body[:80]


@admin.register(SignOff)
class SignOffAdmin(admin.ModelAdmin):
    list_display = ["run", "experiment", "model_label", "approved_by", "created_at"]
    list_filter = ["experiment__team"]
    search_fields = ["run__name", "experiment__name", "approved_by__username"]
    raw_id_fields = ["experiment", "run"]
    readonly_fields = ["evidence"]
    list_select_related = ["experiment", "run__experiment", "approved_by"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer(
            *(f"experiment__{name}" for name in EXPERIMENT_BULK),
            *(f"run__{name}" for name in RUN_BULK),
            *(f"run__experiment__{name}" for name in EXPERIMENT_BULK))

    # Deleting a sign-off here withdraws it, as revoking does: the record stays.
    def delete_model(self, request, obj):
        SignOff.objects.filter(pk=obj.pk).withdraw(by=request.user, reason="deleted in the admin")

    def delete_queryset(self, request, queryset):
        queryset.withdraw(by=request.user, reason="deleted in the admin")


@admin.register(WithdrawnSignOff)
class WithdrawnSignOffAdmin(admin.ModelAdmin):
    list_display = ["run", "experiment", "approved_by", "approved_at", "reason",
                    "withdrawn_by", "withdrawn_at"]
    list_filter = ["experiment__team"]
    search_fields = ["run__name", "experiment__name", "approved_by__username", "reason"]
    raw_id_fields = ["experiment", "run"]
    list_select_related = ["experiment", "run__experiment", "approved_by", "withdrawn_by"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer(
            *(f"experiment__{name}" for name in EXPERIMENT_BULK),
            *(f"run__{name}" for name in RUN_BULK),
            *(f"run__experiment__{name}" for name in EXPERIMENT_BULK))

    # A record: it is read, never written by hand.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class RunInline(admin.TabularInline):
    model = Run
    extra = 0
    fields = ["name", "replicate", "status", "progress", "worker", "started_at", "finished_at"]
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).defer(*RUN_BULK)


def _apply(modeladmin, request, runs, service, verb):
    changed = sum(1 for run in runs if service(run))
    skipped = len(runs) - changed
    modeladmin.message_user(request, f"{verb} {changed} run(s).", messages.SUCCESS)
    if skipped:
        modeladmin.message_user(
            request, f"{skipped} run(s) were left alone: they were not in a state for that.",
            messages.WARNING,
        )


def _operator_cancel(run):
    # Staff act above the teams: no team role is asked of them.
    return services.run_cancel(run, user=None)


def _operator_rerun(run):
    return services.run_rerun(run, user=None)


@admin.action(description="Cancel the selected runs (queued or running)")
def cancel_runs(modeladmin, request, queryset):
    _apply(modeladmin, request, list(queryset.select_related("experiment")),
           _operator_cancel, "Cancelled")


@admin.action(description="Re-run the selected runs (ended ones)")
def rerun_runs(modeladmin, request, queryset):
    _apply(modeladmin, request, list(queryset.select_related("experiment")),
           _operator_rerun, "Re-queued")


@admin.action(description="Cancel every queued or running run of the selected experiments")
def cancel_experiments(modeladmin, request, queryset):
    runs = Run.objects.filter(experiment__in=queryset).exclude(status__in=Run.ENDED)
    _apply(modeladmin, request, list(runs.select_related("experiment")),
           _operator_cancel, "Cancelled")


@admin.action(description="Re-run every ended run of the selected experiments")
def rerun_experiments(modeladmin, request, queryset):
    runs = Run.objects.filter(experiment__in=queryset, status__in=Run.ENDED)
    _apply(modeladmin, request, list(runs.select_related("experiment")),
           _operator_rerun, "Re-queued")


@admin.action(description="Benchmark the selected experiments again (no training)")
def rebenchmark_experiments(modeladmin, request, queryset):
    queued, refused = 0, []
    for experiment in queryset:
        try:
            services.benchmark_if_ready(experiment, user=request.user, force=True)
            queued += 1
        except services.BenchmarkRefused as exc:
            refused.append(f"{experiment}: {exc}")
    modeladmin.message_user(request, f"Queued {queued} benchmark(s).", messages.SUCCESS)
    for line in refused:
        modeladmin.message_user(request, line, messages.WARNING)


class BenchmarkInline(admin.TabularInline):
    model = Benchmark
    extra = 0
    fields = ["status", "execution", "executions", "rounds", "worker", "started_at",
              "finished_at"]
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).defer("raw")


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "arch", "dataset", "hardware", "created_by", "created_at"]
    list_filter = ["team", "hardware", "created_at"]
    search_fields = ["name", "team__name", "created_by__username"]
    date_hierarchy = "created_at"
    inlines = [RunInline, BenchmarkInline]
    actions = [cancel_experiments, rerun_experiments, rebenchmark_experiments]
    list_select_related = ["team", "created_by"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("evidence")

    @admin.display(description="model")
    def arch(self, experiment):
        return experiment.spec.get("model", {}).get("arch")

    @admin.display(description="dataset")
    def dataset(self, experiment):
        return experiment.spec.get("dataset", {}).get("name")


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["name", "replicate", "experiment", "status", "progress", "worker",
                    "test_accuracy",
                    "started_at", "finished_at"]
    list_filter = ["status", "experiment__team", "experiment__hardware", WorkerFilter]
    search_fields = ["name", "experiment__name", "worker", "error"]
    list_select_related = ["experiment"]
    readonly_fields = ["result", "error", "stderr_tail", "started_at", "finished_at",
                       "heartbeat_at", "worker"]
    actions = [cancel_runs, rerun_runs]
    # A million runs: no second count of them all beside the filtered one, and an
    # estimate instead of a count for the unfiltered list. Newest experiments first, read
    # from the index on experiment (Meta.ordering's "experiment" would sort every run by
    # its experiment's created_at).
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    ordering = ["-experiment_id", "position", "replicate", "id"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer(
            "curves", *(f"experiment__{name}" for name in EXPERIMENT_BULK))

    @admin.display(description="test accuracy")
    def test_accuracy(self, run):
        return (run.result or {}).get("test_accuracy")


@admin.action(description="Cancel the selected benchmarks (queued or running)")
def cancel_benchmarks(modeladmin, request, queryset):
    cancelled = sum(1 for benchmark in queryset.select_related("experiment")
                    if services.benchmark_cancel(benchmark))
    modeladmin.message_user(request, f"Cancelled {cancelled} benchmark(s).", messages.SUCCESS)


@admin.register(Benchmark)
class BenchmarkAdmin(admin.ModelAdmin):
    list_display = ["__str__", "experiment", "status", "stage", "aa_control", "worker",
                    "requested_by", "created_at", "finished_at"]
    list_filter = ["status", "experiment__team", WorkerFilter]
    search_fields = ["experiment__name", "worker", "error"]
    list_select_related = ["experiment", "requested_by"]
    raw_id_fields = ["experiment"]
    readonly_fields = ["runs", "result", "error", "stderr_tail", "worker", "device",
                       "execution", "progress", "started_at", "finished_at", "heartbeat_at",
                       "requested_by"]
    exclude = ["raw"]  # every round of every execution: for re-analysis, not for reading
    actions = [cancel_benchmarks]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("raw")

    @admin.display(description="A/A control")
    def aa_control(self, benchmark):
        pair = next((p for p in (benchmark.result or {}).get("pairs", [])
                     if p.get("id") == "aa"), None)
        if not pair or not pair.get("inference_ci"):
            return "—"
        low, high = pair["inference_ci"]
        return f"{pair['inference_speedup']:.2f}x [{low:.2f}, {high:.2f}]"


@admin.register(RunEvent)
class RunEventAdmin(admin.ModelAdmin):
    list_display = ["run", "seq", "kind", "created_at"]
    list_filter = [EventKindFilter]
    search_fields = ["run__name", "run__experiment__name"]
    list_select_related = ["run", "run__experiment"]
    # Tens of events a run: see RunAdmin.
    show_full_result_count = False
    paginator = EstimatedCountPaginator

    def get_queryset(self, request):
        return super().get_queryset(request).defer(
            *(f"run__{name}" for name in RUN_BULK),
            *(f"run__experiment__{name}" for name in EXPERIMENT_BULK))


@admin.register(Recipe)
class RecipeAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "techniques", "created_by", "created_at"]
    list_filter = ["team"]
    search_fields = ["name", "description", "team__name"]
    list_select_related = ["team", "created_by"]

    @admin.display(description="steps")
    def techniques(self, recipe):
        return " → ".join(step.get("technique", "?") for step in recipe.steps)


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ["name", "host", "queue_list", "concurrency", "alive", "heartbeat_at",
                    "started_at"]
    list_filter = ["host"]
    search_fields = ["name", "host"]
    readonly_fields = ["devices", "versions", "heartbeat_at", "started_at", "stopped_at", "pid"]

    @admin.display(description="queues")
    def queue_list(self, worker):
        return ", ".join(worker.queues)

    @admin.display(boolean=True, description="alive")
    def alive(self, worker):
        return worker.is_alive()
