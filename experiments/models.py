from pathlib import Path

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property


def experiment_group(experiment_id: int) -> str:
    """The channel-layer group of an experiment's websocket clients."""
    return f"experiment.{experiment_id}"


class TeamScopedQuerySet(models.QuerySet):
    """Rows a team owns; ``for_user`` keeps those of the user's teams, so another team's
    rows look exactly like missing ones."""

    # The lookup from a row to its team's memberships.
    memberships = "team__memberships"

    def for_user(self, user):
        if not user.is_authenticated:
            return self.none()
        return self.filter(**{f"{self.memberships}__user": user})


class TeamQuerySet(TeamScopedQuerySet):
    memberships = "memberships"


class ExperimentScopedQuerySet(TeamScopedQuerySet):
    """Rows of an experiment (runs, comments, sign-offs): its team owns them."""

    memberships = "experiment__team__memberships"


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="teams"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = TeamQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer"
        MEMBER = "member", "Member"
        ADMIN = "admin", "Admin"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="one_membership")]

    def __str__(self):
        return f"{self.user} in {self.team} ({self.role})"


class TeamUpload(models.Model):
    """A file a team uploaded, checked on upload: a dataset (Dataset) or a model
    (UploadedModel). Each kind names its own team relation, folder and input description
    (team, file, input_shape, num_classes), and adds what its check found."""

    name = models.CharField(max_length=200)
    size_bytes = models.PositiveBigIntegerField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    def __str__(self):
        return self.name

    @property
    def shape_label(self):
        return "x".join(str(d) for d in self.input_shape)


class Dataset(TeamUpload):
    """An uploaded .npz in keras.datasets layout, checked on upload."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="datasets")
    file = models.FileField(upload_to="datasets/%Y/%m/")
    input_shape = models.JSONField()
    num_classes = models.PositiveIntegerField()
    train_samples = models.PositiveIntegerField()
    test_samples = models.PositiveIntegerField()

    @cached_property
    def training_split(self):
        """{"file", "train", "validation"}: the file's training samples, and how the engine
        splits them (train_samples holds only the part it trains on). Read from the file's
        header; without the file, what train_samples alone tells."""
        from runners.engine.data import npz_train_samples, validation_split

        try:
            total = npz_train_samples(self.file.path)
        except (ValueError, OSError, NotImplementedError):
            return {"file": None, "train": self.train_samples, "validation": None}
        train, validation = validation_split(total)
        return {"file": total, "train": train, "validation": validation}

    @property
    def split_label(self):
        """"90 train + 10 validation (held out from the file's 100 training samples)"."""
        from runners.engine.data import VALIDATION_FRACTION

        split = self.training_split
        if split["file"] is None:
            return (f"{split['train']:,} train (after holding out {VALIDATION_FRACTION:.0%} "
                    "of the file's training samples for validation)")
        return self.split_text(split["train"], split["validation"])

    @staticmethod
    def split_text(train, validation):
        return (f"{train:,} train + {validation:,} validation (held out from the file's "
                f"{train + validation:,} training samples)")


class UploadedModel(TeamUpload):
    """A native .keras file a team uploaded; loaded with safe_mode on upload, so a Lambda
    layer or an unknown custom object never got this far."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="uploaded_models")
    file = models.FileField(upload_to="models/%Y/%m/")
    input_shape = models.JSONField(help_text="Without the batch dimension.")
    num_classes = models.PositiveIntegerField(help_text="Units of the output layer.")
    params = models.PositiveBigIntegerField()
    layers = models.PositiveIntegerField()
    facts = models.JSONField(
        null=True, blank=True,
        help_text="Layer classes, straight chain, nested models (runners.engine.modelfile."
                  "facts); the recipe checks use them. Empty for models checked before.")


def spec_techniques(spec) -> str:
    """The techniques a spec's recipes use, sorted, each between spaces: ' ptq xla '."""
    names = {str(step.get("technique")) for recipe in (spec or {}).get("recipes") or []
             for step in recipe.get("steps") or [] if isinstance(step, dict)}
    return f" {' '.join(sorted(names))} " if names else ""


class Experiment(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="experiments")
    name = models.CharField(max_length=200)
    spec = models.JSONField(help_text="The validated experiment spec (see DESIGN.md).")
    hardware = models.CharField(max_length=20, default="cpu")
    accuracy_budget = models.FloatField(
        default=0.01,
        help_text="The largest test-accuracy drop a sign-off accepts (0.01 = one point).",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)
    evidence = models.JSONField(
        null=True, blank=True, editable=False,
        help_text="The comparison rows and the accuracy/latency points, computed when a run "
                  "or a benchmark ends (services.experiment_evidence_refresh); null until then.",
    )
    # Read out of the spec and the evidence for the experiments list, which filters and
    # sorts on them without decoding either.
    techniques = models.CharField(
        max_length=500, blank=True, default="", editable=False,
        help_text="The techniques its recipes use, each between spaces (' ptq xla ').")
    best_speedup = models.FloatField(
        null=True, blank=True, editable=False,
        help_text="The largest speedup of a recipe against the baseline (inference or "
                  "training) in the stored evidence; null until one is measured.")

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # A team's newest experiments, read in order up to the page (lists, home page).
            models.Index(fields=["team", "-created_at", "-id"], name="experiment_team_newest"),
            # A team's experiments by id, newest first: the runs list walks them.
            models.Index(fields=["team", "-id"], name="experiment_team_id"),
            # The experiments list sorted by best speedup.
            models.Index(fields=["team", "-best_speedup", "-id"], name="experiment_team_fastest"),
        ]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        self.techniques = spec_techniques(self.spec)
        if kwargs.get("update_fields") is not None and "spec" in kwargs["update_fields"]:
            kwargs["update_fields"] = {*kwargs["update_fields"], "techniques"}
        super().save(*args, **kwargs)

    def get_absolute_url(self):
        return reverse("experiment_detail", args=[self.pk])

    @property
    def group_name(self):
        return experiment_group(self.pk)

    @property
    def planned_runs(self) -> int:
        """How many runs services.experiment_create made: the baseline and each recipe,
        once per training repeat."""
        return (len(self.spec["recipes"]) + 1) * self.spec["training"].get("repeats", 1)


class Beating:
    """The row a runner works on (a run, a benchmark), as its runner keeps it while the
    engine runs."""

    def heartbeat(self) -> None:
        """Touch heartbeat_at: what tells the reapers (runners.fleet) its runner is alive."""
        now = timezone.now()
        type(self).objects.filter(pk=self.pk).update(heartbeat_at=now)
        self.heartbeat_at = now

    def cancel_was_requested(self) -> bool:
        """Whether a cancel was asked for, as the database says now."""
        return type(self).objects.filter(pk=self.pk, cancel_requested=True).exists()


class Run(Beating, models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    ENDED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="runs")
    name = models.CharField(max_length=200)
    position = models.PositiveIntegerField(default=0, help_text="0 for the baseline, then "
                                           "one per recipe, in the spec's order")
    replicate = models.PositiveIntegerField(
        default=0, help_text="Which of training.repeats this run is (0 first); it trains "
                             "with seed + replicate")
    steps = models.JSONField(default=list, blank=True, help_text="Empty for the baseline.")
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    progress = models.FloatField(default=0.0)
    epochs_done = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    device = models.CharField(max_length=200, blank=True, help_text="what the run used")
    cancel_requested = models.BooleanField(default=False)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    stderr_tail = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(
        default=timezone.now, editable=False,
        help_text="When its message was last sent to the broker, or seen there: one queued "
                  "longer than ACCELWEB_REQUEUE_SECONDS whose message is gone is sent again "
                  "(runners.fleet.requeue_lost).")
    curves = models.JSONField(
        default=dict, blank=True, editable=False,
        help_text="The downsampled curves and telemetry pages draw, kept up to date as "
                  "events arrive (experiments.curves).",
    )

    objects = ExperimentScopedQuerySet.as_manager()

    class Meta:
        ordering = ["experiment", "position", "replicate", "pk"]
        indexes = [
            models.Index(fields=["experiment", "position"]),
            # A page's runs counted by status from the index alone (listings.with_run_counts).
            models.Index(fields=["experiment", "status"], name="run_experiment_status"),
            # What the reconciler looks at every heartbeat: the queued runs alone.
            models.Index(fields=["queued_at"], condition=models.Q(status="queued"),
                         name="run_queued_at"),
        ]

    def __str__(self):
        return f"{self.experiment} / {self.label}"

    def get_absolute_url(self):
        return reverse("experiment_detail", args=[self.experiment_id]) + f"#run-{self.pk}"

    @property
    def is_baseline(self):
        return not self.steps

    @property
    def label(self):
        """The recipe's name, with the replicate after the first: "XLA", "XLA #2"."""
        return self.name if not self.replicate else f"{self.name} #{self.replicate + 1}"

    @property
    def artifacts_dir(self):
        """Where the engine writes this run's model files."""
        return Path(settings.MEDIA_ROOT) / "runs" / str(self.pk)

    @property
    def has_ended(self):
        return self.status in self.ENDED

    @property
    def duration_seconds(self):
        """How long it ran: start to end, or to now while it runs; None before it starts."""
        if self.started_at is None:
            return None
        end = self.finished_at or (timezone.now() if not self.has_ended else None)
        return None if end is None else max(0.0, (end - self.started_at).total_seconds())

    @classmethod
    def claim(cls, run_id, *, worker):
        """Move a queued run to running; None if it was not queued (a second delivery,
        a cancelled run). The conditional update is what keeps two workers apart."""
        now = timezone.now()
        claimed = cls.objects.filter(pk=run_id, status=cls.Status.QUEUED).update(
            status=cls.Status.RUNNING, worker=worker, started_at=now, heartbeat_at=now
        )
        return cls.objects.select_related("experiment").get(pk=run_id) if claimed else None

    def mark_finished(self, status, *, error="", stderr_tail="", result=None):
        """End a running run. Returns False if something else ended it first."""
        now = timezone.now()
        fields = dict(
            status=status, error=error, stderr_tail=stderr_tail, finished_at=now,
            heartbeat_at=now,
        )
        if result is not None:
            fields["result"] = result
        if status == self.Status.SUCCEEDED:
            fields["progress"] = 1.0
        updated = type(self).objects.filter(
            pk=self.pk, status=self.Status.RUNNING
        ).update(**fields)
        if updated:
            for name, value in fields.items():
                setattr(self, name, value)
        return bool(updated)

    def request_cancel(self):
        """A queued run is cancelled at once and never starts; a running one is asked to
        stop and ends "cancelled" when its runner has stopped the engine."""
        now = timezone.now()
        if type(self).objects.filter(pk=self.pk, status=self.Status.QUEUED).update(
            status=self.Status.CANCELLED, finished_at=now, cancel_requested=True
        ):
            self.refresh_from_db()
            return True
        if type(self).objects.filter(pk=self.pk, status=self.Status.RUNNING).update(
            cancel_requested=True
        ):
            self.refresh_from_db()
            return True
        return False

    def requeue_ended(self):
        """Put the row of an ended run back in the queue, its fields cleared; False when it
        had not ended. The rest of its history (events, sign-offs) is for the service to
        clear: services.run_reset_for_rerun."""
        fields = dict(
            status=self.Status.QUEUED, progress=0.0, epochs_done=0, worker="",
            cancel_requested=False, result=None, error="", stderr_tail="",
            started_at=None, finished_at=None, heartbeat_at=None, curves={},
            queued_at=timezone.now(),
        )
        updated = type(self).objects.filter(pk=self.pk, status__in=self.ENDED).update(
            **fields)
        if updated:
            for name, value in fields.items():
                setattr(self, name, value)
        return bool(updated)


class BenchmarkQuerySet(models.QuerySet):
    def pending(self):
        return self.filter(status__in=(Run.Status.QUEUED, Run.Status.RUNNING))


class Benchmark(Beating, models.Model):
    """The benchmark stage of an experiment: every shipped model of its runs measured side
    by side in fresh processes (runners.engine.bench), the baseline twice as the A/A control.
    The newest one that succeeded and measured the runs as they are now gives the
    experiment's inference speedups."""

    Status = Run.Status

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE,
                                   related_name="benchmarks")
    status = models.CharField(max_length=10, choices=Run.Status.choices,
                              default=Run.Status.QUEUED, db_index=True)
    runs = models.JSONField(default=dict, help_text="The runs measured: run id -> the "
                            "finished_at of the result whose files were loaded")
    executions = models.PositiveIntegerField(default=5)
    rounds = models.PositiveIntegerField(default=20)
    execution = models.PositiveIntegerField(default=0, help_text="The execution under way")
    progress = models.FloatField(default=0.0)
    worker = models.CharField(max_length=200, blank=True)
    device = models.CharField(max_length=200, blank=True)
    cancel_requested = models.BooleanField(default=False)
    result = models.JSONField(null=True, blank=True,
                              help_text="Each model's figures and each pair's speedups")
    raw = models.JSONField(null=True, blank=True,
                           help_text="Every round of every execution, for re-analysis")
    error = models.TextField(blank=True)
    stderr_tail = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        help_text="Who asked for a re-benchmark; empty when the runs' end started it")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(
        default=timezone.now, editable=False,
        help_text="When its message was last sent to the broker, or seen there: one queued "
                  "longer than ACCELWEB_REQUEUE_SECONDS whose message is gone is sent again "
                  "(runners.fleet.requeue_lost).")

    objects = BenchmarkQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # Two benchmarks of one experiment at once would measure each other.
            models.UniqueConstraint(
                fields=["experiment"], name="one_pending_benchmark",
                condition=Q(status__in=["queued", "running"])),
        ]

    def __str__(self):
        return f"{self.experiment} / benchmark {self.pk} ({self.status})"

    def get_absolute_url(self):
        return reverse("experiment_detail", args=[self.experiment_id]) + "#benchmark"

    @property
    def has_ended(self):
        return self.status in Run.ENDED

    @property
    def stage(self):
        """What the page says while it waits: "benchmarking: execution 3 of 5"."""
        if self.status == Run.Status.QUEUED:
            return "benchmark queued"
        if self.status == Run.Status.RUNNING:
            return f"benchmarking: execution {max(1, self.execution)} of {self.executions}"
        return f"benchmark {self.get_status_display().lower()}"

    @classmethod
    def claim(cls, benchmark_id, *, worker):
        """queued -> running, or None when it is not queued (a second delivery)."""
        now = timezone.now()
        claimed = cls.objects.filter(pk=benchmark_id, status=Run.Status.QUEUED).update(
            status=Run.Status.RUNNING, worker=worker, started_at=now, heartbeat_at=now)
        return cls.objects.select_related("experiment").get(pk=benchmark_id) \
            if claimed else None

    def mark_finished(self, status, *, error="", stderr_tail="", result=None, raw=None):
        """End a running benchmark; False when something else ended it first."""
        now = timezone.now()
        fields = dict(status=status, error=error, stderr_tail=stderr_tail, finished_at=now,
                      heartbeat_at=now)
        if result is not None:
            fields.update(result=result, raw=raw, progress=1.0)
        updated = type(self).objects.filter(pk=self.pk, status=Run.Status.RUNNING).update(
            **fields)
        if updated:
            for name, value in fields.items():
                setattr(self, name, value)
        return bool(updated)


class RunEvent(models.Model):
    """Every event the engine emitted, in order. The database, not the channel layer,
    is the record: pages and websocket snapshots are rebuilt from these rows."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    kind = models.CharField(max_length=20)
    data = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="one_event_per_seq")]
        indexes = [
            models.Index(
                fields=["run", "seq"], name="epoch_events", condition=Q(kind="epoch")
            )
        ]

    def __str__(self):
        return f"{self.run_id}#{self.seq} {self.kind}"


class Recipe(models.Model):
    """A named list of technique steps a team saves and reuses across experiments."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="recipes")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    steps = models.JSONField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="one_recipe_name_per_team")
        ]

    def __str__(self):
        return self.name

    def as_spec(self):
        return {"name": self.name, "steps": self.steps}


class Worker(models.Model):
    """A Celery runner as it announced itself; kept fresh by its heartbeat."""

    name = models.CharField(max_length=200, unique=True, help_text="Celery node name")
    host = models.CharField(max_length=200)
    pid = models.PositiveIntegerField(null=True, blank=True)
    queues = models.JSONField(default=list)
    devices = models.JSONField(default=dict, help_text="CPU model and cores; GPUs from NVML")
    versions = models.JSONField(default=dict)
    concurrency = models.PositiveIntegerField(default=1)
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now, db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def is_alive(self, now=None, timeout=None):
        timeout = timeout or settings.ACCELWEB_HEARTBEAT_TIMEOUT
        now = now or timezone.now()
        return self.stopped_at is None and (now - self.heartbeat_at).total_seconds() < timeout

    @property
    def gpu_names(self):
        return [gpu.get("name") for gpu in (self.devices or {}).get("gpus", [])]


class Comment(models.Model):
    """A note on an experiment, or on one of its runs. The body is Markdown, rendered
    through a sanitizer (experiments.markup), never trusted as HTML."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="comments")
    run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.CASCADE, related_name="comments"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    body = models.TextField(max_length=10_000)
    created_at = models.DateTimeField(default=timezone.now)

    objects = ExperimentScopedQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self):
        return f"{self.author} on {self.experiment}: {self.body[:40]}"


class SignOffQuerySet(ExperimentScopedQuerySet):
    def withdraw(self, *, reason: str, by=None) -> int:
        """Take these sign-offs back, keeping a record of each (who approved what, when,
        and why it no longer stands) in WithdrawnSignOff."""
        # One transaction: a sign-off is either standing or on record, never both or neither.
        with transaction.atomic():
            # Locked by pk: the admin's querysets may be DISTINCT, which FOR UPDATE refuses.
            signoffs = list(self.model.objects.select_for_update().filter(
                pk__in=self.values("pk")))
            now = timezone.now()
            WithdrawnSignOff.objects.bulk_create(
                WithdrawnSignOff(
                    experiment_id=signoff.experiment_id, run_id=signoff.run_id,
                    model_label=signoff.model_label, approved_by_id=signoff.approved_by_id,
                    approved_at=signoff.created_at, note=signoff.note,
                    evidence=signoff.evidence, withdrawn_by=by, withdrawn_at=now,
                    reason=reason[:300],
                )
                for signoff in signoffs
            )
            self.model.objects.filter(pk__in=[signoff.pk for signoff in signoffs]).delete()
        return len(signoffs)


class SignOff(models.Model):
    """A member's approval of a recipe (a run) for the experiment's model, with the
    evidence it rested on: the comparison row at the time it was given."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="signoffs")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="signoffs")
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    model_label = models.CharField(max_length=300, help_text="The model and dataset approved for.")
    evidence = models.JSONField(help_text="The speedup row and the budget it was checked against.")
    note = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(default=timezone.now)

    objects = SignOffQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["run"], name="one_signoff_per_run")]
        # The newest sign-offs, read in order up to the page (home page, API list).
        indexes = [models.Index(fields=["-created_at", "-id"], name="signoff_newest")]

    def __str__(self):
        return f"{self.run} approved by {self.approved_by}"


class WithdrawnSignOff(models.Model):
    """A sign-off that no longer stands: revoked by its approver or an admin, or dropped
    because the run or its baseline was run again. Kept so the record of who approved
    what, and when, survives the approval."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE,
                                   related_name="withdrawn_signoffs")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="withdrawn_signoffs")
    model_label = models.CharField(max_length=300)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    approved_at = models.DateTimeField()
    note = models.TextField(blank=True, max_length=2000)
    evidence = models.JSONField()
    withdrawn_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", help_text="Empty when a re-run withdrew it.",
    )
    withdrawn_at = models.DateTimeField(default=timezone.now)
    reason = models.CharField(max_length=300)

    class Meta:
        ordering = ["-withdrawn_at", "-pk"]

    def __str__(self):
        return f"{self.run} approved by {self.approved_by}, withdrawn: {self.reason}"
