"""Writes that touch several objects: create, enqueue, record, cancel, re-run, broadcast."""

import asyncio
import json
import logging
import os
import threading
import time

from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    transaction,
)
from django.db.models import Max
from django.utils import timezone
from django.utils.formats import date_format
from redis.exceptions import ConnectionError as RedisConnectionError

from runners.engine.techniques import validate_steps

from . import curves
from .access import (
    Denied,
    may_comment,
    may_delete_comment,
    may_revoke_signoff,
    require_change,
    require_manage,
    role_in,
)
from .comparison import (
    baseline_chance,
    best_speedup,
    excludes_one,
    measured_key,
    noise_floor,
    points,
    points_interval,
    primary_run,
    recipe_groups,
    within_accuracy_budget,
)
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
    experiment_group,
)
from .selectors import (
    benchmark_state,
    evidence_compute,
    evidence_inputs,
    experiment_benchmarks,
    experiment_comparison,
    experiment_evidence,
    run_state,
)
from .spec import benchmark_settings, validate_spec

log = logging.getLogger(__name__)


# How long a broadcast may wait for the channel layer before it is dropped (at most once
# anyway): Redis restarting must not stall a run's ingestion for long.
BROADCAST_TIMEOUT_SECONDS = 2.0


class _LayerLoop:
    """One event loop, in a thread of its own, for every broadcast of this process.

    async_to_sync from a thread without a loop (a Celery worker's) runs each call in a new
    event loop, and channels_redis keeps its connections per loop: a new Redis connection
    for every event. One long-lived loop keeps one pool for the life of the process. A
    forked process (Celery's prefork pool) starts a loop of its own."""

    def __init__(self):
        self._lock = threading.Lock()
        self._loop = None
        self._pid = None

    def use(self, loop):
        """Broadcast on `loop` while it runs: the serving loop of `manage.py up`. The
        in-process channel layer's queues belong to the loop its consumers wait on, and an
        asyncio.Queue filled from another loop's thread does not wake its waiter: the
        message sat until the server's next tick (up to 0.1 s)."""
        with self._lock:
            self._loop, self._pid = loop, os.getpid()

    def run(self, coroutine, timeout):
        loop = self._started()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:  # called from the loop itself: it cannot wait for itself
            loop.create_task(coroutine)
            return None
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()  # not left running in the loop behind the caller's back
            raise

    def _started(self):
        with self._lock:
            if self._loop is None or self._loop.is_closed() or self._pid != os.getpid():
                self._loop = asyncio.new_event_loop()
                self._pid = os.getpid()
                threading.Thread(target=self._loop.run_forever, name="broadcast-loop",
                                 daemon=True).start()
            return self._loop


_layer_loop = _LayerLoop()
broadcast_on = _layer_loop.use


# What a group message is about. Each kind is the name of the handler that receives it in
# the group's consumer ("run.status": ExperimentConsumer.run_status), and a consumer has
# no handler for anything else: channels would close its socket on such a message.
RUN_EVENT = "run.event"  # an engine event, or a batch of them: the live curves' data
RUN_STATUS = "run.status"  # a run's status changed: its state row, nothing computed
BENCHMARK_CHANGED = "benchmark.changed"  # the benchmark stage's state row
DISCUSSION_CHANGED = "discussion.changed"  # a comment or sign-off added or removed
RUNNERS_CHANGED = "runners.changed"  # a runner beat (the runners page's group)
MESSAGE_KINDS = frozenset({RUN_EVENT, RUN_STATUS, BENCHMARK_CHANGED, DISCUSSION_CHANGED,
                           RUNNERS_CHANGED})


def broadcast(group: str, kind: str, payload: dict) -> None:
    """Tell a websocket group (an experiment's, or the runners page's) that something of
    `kind` changed; `payload` is what its consumer sends the browser. At-most-once by
    design: the database holds the record, so a lost message costs a browser nothing a
    read of its page does not restore. A notice, not the evidence: what is computed from
    the record (the comparison, the points) the page reads with its results."""
    if kind not in MESSAGE_KINDS:
        raise ValueError(f"no consumer handles a {kind!r} message")
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": kind, "payload": payload}
    # The loop's pooled connection outlives a Redis restart, and its first use after one
    # fails ("Connection lost"); redis-py drops that connection, so a second try opens a
    # fresh one. A message that went out before the failure may arrive twice: the page
    # ignores an epoch it has, and a status change only makes it read again.
    for attempt in range(2):
        try:
            _layer_loop.run(layer.group_send(group, message), BROADCAST_TIMEOUT_SECONDS)
            return
        except TimeoutError:
            log.warning("broadcast to %s timed out after %s s", group,
                        BROADCAST_TIMEOUT_SECONDS)
            return
        except (OSError, RedisConnectionError) as exc:
            if attempt:
                log.warning("broadcast to %s failed: %s", group, exc)
        except Exception:  # a broadcast must never fail a run (Redis may be restarting)
            log.warning("broadcast to %s failed", group, exc_info=True)
            return


def team_for_user(user, team_name: str | None = None) -> Team:
    """The named team (the user must belong to it), else the user's first team, created
    when the user has none."""
    if team_name:
        return Team.objects.for_user(user).get(name=team_name)
    team = Team.objects.for_user(user).order_by("pk").first()
    if team is None:
        team = _personal_team_create(user)
    return team


def _personal_team_create(user) -> Team:
    """A new team for a user who has none. Always a new one: joining a team that happens
    to have the name would let anyone named like it (or removed from it) become its admin."""
    base = f"{user.get_username()}'s team"
    for attempt in range(1, 100):
        name = base if attempt == 1 else f"{base} ({attempt})"
        try:
            with transaction.atomic():
                team = Team.objects.create(name=name)
        except IntegrityError:
            continue
        Membership.objects.create(team=team, user=user, role=Membership.Role.ADMIN)
        return team
    raise RuntimeError(f"could not find a free team name for {user.get_username()}")


def experiment_create(*, team: Team, user, spec: dict) -> Experiment:
    """Validate a spec and create the experiment with a baseline and one run per recipe,
    queued once the transaction commits. Viewers are refused (Denied) before the spec is
    read."""
    require_change(user, team.pk)
    spec = validate_spec(spec, team=team)
    with transaction.atomic():
        experiment = Experiment.objects.create(
            team=team, name=spec["name"], spec=spec, hardware=spec["hardware"],
            accuracy_budget=spec["accuracy_budget"],
            created_by=user if user and user.is_authenticated else None,
        )
        recipes = [{"name": "baseline", "steps": []}, *spec["recipes"]]
        # Interleaved (baseline 1, recipe A 1, recipe B 1, baseline 2, ...): drift over
        # the queue's hours then lands on every recipe alike, and replicate i of each
        # recipe trains next to replicate i of the baseline, which it is paired with.
        runs = [
            Run(experiment=experiment, name=recipe["name"], position=position,
                replicate=replicate, steps=recipe["steps"])
            for replicate in range(spec["training"]["repeats"])
            for position, recipe in enumerate(recipes)
        ]
        for run in Run.objects.bulk_create(runs):
            run_enqueue(run)
    return experiment


def run_enqueue(run: Run) -> None:
    # Enqueue only after commit: a worker must find the row it is told to run.
    transaction.on_commit(lambda: run_send(run))


def run_send(run: Run) -> None:
    """The run's message to the broker, on the queue of the hardware it asks for."""
    from runners.hardware import queue_for
    from runners.tasks import execute_run

    execute_run.apply_async(args=[run.pk], queue=queue_for(run.experiment.spec))


def run_record_event(run: Run, event: dict) -> None:
    """Store one engine event, update the run's progress, and tell the browsers."""
    run_record_events(run, [event])


# The most events stored in one INSERT: a burst is split so one statement stays small.
EVENTS_PER_INSERT = 1000


def run_record_events(run: Run, events: list[dict]) -> None:
    """Tell the browsers about a batch of the engine's events (in the order it printed
    them) once, then store them in one transaction, folded into the run's stored curves
    and progress. The task that runs the run is the only writer of its events, so sequence
    numbers come from a counter read once per run, not a MAX query per event."""
    if not events:
        return
    kinds = [str(event.get("event", "unknown"))[:20] for event in events]
    epochs_total = max(1, int(run.experiment.spec.get("training", {}).get("epochs") or 1))
    state = curves.extend(dict(run.curves or {}), events)
    done = run.epochs_done
    for kind, event in zip(kinds, events, strict=True):
        if kind == "epoch":
            done = curves.epoch_number(event, done)
    progress = min(1.0, done / epochs_total)
    # Told before it is stored: the browsers draw the epochs while the transaction runs,
    # which is most of a batch's time here. The database stays the record: a store that
    # fails fails the run, and its page reads the record again when the status changes.
    told = {**run_state(run), "epochs_done": done, "progress": round(progress, 4)}
    broadcast(experiment_group(run.experiment_id), RUN_EVENT,
              {"type": "event", "run": told, "event": events[0]} if len(events) == 1
              else {"type": "events", "run": told, "events": events})
    # The batch keeps its sequence numbers across retries: a retry of a transaction that
    # did commit before its connection went stores nothing twice.
    first = through_lost_connections(
        lambda retrying: _store_batch(run, kinds, events, state, done, progress,
                                      lost=retrying),
        what=f"storing {_batch_name(kinds, events)}")
    run._last_seq = first + len(events) - 1
    run.curves, run.epochs_done, run.progress = state, done, progress


class StoreLost(Exception):
    """The database stayed out of reach: the message says while doing what."""


# How long a write is retried while the database is out of reach: a restart or a
# failover, not an outage.
STORE_RETRY_SECONDS = 15.0


def through_lost_connections(operation, *, what: str):
    """operation(retrying) until it returns, through lost database connections (a
    restart, a terminated connection): each retry on a new connection, for up to
    STORE_RETRY_SECONDS; then StoreLost("The database connection was lost while WHAT")."""
    deadline = time.monotonic() + STORE_RETRY_SECONDS
    delay, retrying = 0.05, False
    while True:
        try:
            return operation(retrying)
        except (OperationalError, InterfaceError) as exc:
            close_old_connections()  # drops the broken one; the next query opens another
            if time.monotonic() + delay > deadline:
                raise StoreLost(f"The database connection was lost while {what}: "
                                f"{str(exc).strip()[:300]}") from exc
            log.warning("%s failed (%s); again in %.2f s", what, exc, delay)
            retrying = True
            time.sleep(delay)
            delay = min(1.0, delay * 2)


def _store_batch(run, kinds, events, state, done, progress, *, lost) -> int:
    """One transaction of the batch; the sequence number of its first event. lost: an
    earlier try lost its connection, perhaps after the commit."""
    for attempt in range(2):
        if getattr(run, "_last_seq", None) is None or attempt:
            run._last_seq = run.events.aggregate(m=Max("seq"))["m"] or 0
        first = run._last_seq + 1
        if lost and attempt == 0 and run.events.filter(
                seq__gte=first, seq__lt=first + len(events)).count() == len(events):
            return first  # that try committed before its connection went
        try:
            with transaction.atomic():
                _insert_events(run, first, kinds, events)
                Run.objects.filter(pk=run.pk).update(
                    epochs_done=done, progress=progress, curves=state)
        except IntegrityError:
            # Another writer stored events of this run (a second delivery the claim did
            # not stop): read the counter again, once.
            if attempt:
                raise
            continue
        return first


def _batch_name(kinds, events) -> str:
    epochs = [event.get("epoch") for kind, event in zip(kinds, events, strict=True)
              if kind == "epoch"]
    if epochs:
        return f"epoch {epochs[-1]}" if len(epochs) == 1 else f"epochs {epochs[0]}-{epochs[-1]}"
    return f"its {kinds[-1]} event" if len(kinds) == 1 else f"{len(kinds)} events"


def _insert_events(run: Run, first: int, kinds: list[str], events: list[dict]) -> None:
    """The batch's RunEvent rows, numbered from `first`. On PostgreSQL by COPY, without
    waiting for the commit to reach the disk: bulk_create spent most of a burst's time
    adapting each JSON document into an array literal, and a flush per batch cost a live
    epoch milliseconds. A crash of PostgreSQL itself may lose the last fraction of a second
    of events, never leave them half-written; a run's status and result keep the
    synchronous commit. Elsewhere (SQLite) by bulk_create."""
    texts = [_event_json(event) for event in events]
    if connection.vendor != "postgresql":
        RunEvent.objects.bulk_create(
            [RunEvent(run=run, seq=first + i, kind=kind, data=json.loads(text))
             for i, (kind, text) in enumerate(zip(kinds, texts, strict=True))],
            batch_size=EVENTS_PER_INSERT)
        return
    now = timezone.now()
    table = connection.ops.quote_name(RunEvent._meta.db_table)
    with connection.cursor() as cursor, connection.wrap_database_errors:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")
        # psycopg's own cursor (Django's has no COPY); its errors as Django's, so a
        # duplicate seq is the IntegrityError run_record_events retries on.
        with cursor.cursor.copy(f"COPY {table} (run_id, seq, kind, data, created_at) "
                                "FROM STDIN") as copy:
            for i, (kind, text) in enumerate(zip(kinds, texts, strict=True)):
                copy.write_row((run.pk, first + i, kind, text, now))


def _event_json(event: dict) -> str:
    # As the JSONField stores it (json.dumps); jsonb and SQLite's JSON_VALID refuse NaN
    # and infinities, so a diverged loss is stored as null.
    text = json.dumps(event, default=str)
    return text if "NaN" not in text and "Infinity" not in text else json.dumps(
        json.loads(text, parse_constant=lambda _: None))


def experiment_evidence_refresh(experiment: Experiment) -> dict:
    """Compute the experiment's comparison rows and accuracy/latency points
    (selectors.evidence_compute: the bootstrap intervals are the costly part) and store
    them, so that pages, the API, exports and sign-off read them instead. Under the
    experiment's row lock: two runs ending at once store in turn, the later from both."""
    with transaction.atomic():
        locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
        runs = list(locked.runs.defer("curves"))
        benchmarks = experiment_benchmarks(locked)
        inputs = evidence_inputs(locked, runs, benchmarks)
        stored = locked.evidence
        if not stored or stored.get("inputs") != inputs:
            # JSON as PostgreSQL's jsonb takes it: no NaN or infinity (a diverged run).
            stored = json.loads(json.dumps(evidence_compute(locked, runs, benchmarks,
                                                            inputs=inputs)),
                                parse_constant=lambda _: None)
            Experiment.objects.filter(pk=locked.pk).update(
                evidence=stored, best_speedup=best_speedup(stored["comparison"]))
    experiment.evidence = stored
    return stored


def run_status_changed(run: Run) -> None:
    """Tell the browsers a run's status changed: its state row only. Each open page reads
    its results fragment again (tables and snapshot in one request), so when the run has
    ended its evidence is stored first: the pages read it, none computes it."""
    if run.has_ended:
        experiment_evidence(run.experiment)
    broadcast(experiment_group(run.experiment_id), RUN_STATUS,
              {"type": "status", "run": run_state(run)})


def run_ended(run: Run) -> None:
    """Tell the browsers, then start the benchmark stage if this was the last run."""
    run_status_changed(run)
    benchmark_if_ready(run.experiment)


def run_cancel(run: Run, *, user) -> bool:
    """A queued run is cancelled at once; a running one is asked to stop. False when it had
    ended. `user`: a member of the run's team (a viewer is refused), or None for an
    operator (the admin site, manage.py cancel), who acts above the teams."""
    if user is not None:
        require_change(user, run.experiment.team_id)
    changed = run.request_cancel()
    if changed:
        run_status_changed(run)
        if run.has_ended:  # a queued run ends at once; it may have been the last
            benchmark_if_ready(run.experiment)
    return changed


# The benchmark stage.


class BenchmarkRefused(Exception):
    """A benchmark that cannot start now; the message says why."""


def benchmark_runs(runs) -> dict:
    """What a benchmark of these runs measures: each recipe's first succeeded replicate
    (its shipped files), as run id -> the end of the result it loads."""
    measured = {}
    for group in recipe_groups(runs).values():
        run = primary_run(group)
        if run.status == Run.Status.SUCCEEDED and run.result:
            measured[str(run.pk)] = measured_key(run)
    return measured


def benchmark_blocker(experiment, runs, benchmarks=None, *, forced=False) -> str:
    """Why the experiment cannot be benchmarked now ("" when it can). `benchmarks`: its
    newest ones, when the caller has read them. `forced` (Re-benchmark) may replace a
    queued benchmark, whose message a broker may have lost; never a running one."""
    if any(not run.has_ended for run in runs):
        return "Runs are still queued or running: the benchmark starts when they have ended."
    groups = recipe_groups(runs)
    if not groups.get(0) or primary_run(groups[0]).status != Run.Status.SUCCEEDED:
        return "The baseline has not succeeded, so there is nothing to benchmark against."
    blocking = (Run.Status.RUNNING,) if forced else (Run.Status.QUEUED, Run.Status.RUNNING)
    pending = any(b.status in blocking for b in benchmarks) if benchmarks is not None \
        else experiment.benchmarks.filter(status__in=blocking).exists()
    if pending:
        return ("A benchmark of this experiment is running: wait for it, or cancel it in "
                "the admin." if forced else
                "A benchmark of this experiment is already queued or running.")
    return ""


def experiment_rebenchmark(*, experiment: Experiment, user):
    """Measure a member's experiment again (the benchmark stage alone, no training); a
    viewer is refused (Denied), a benchmark that cannot start now too (BenchmarkRefused)."""
    require_change(user, experiment.team_id)
    return benchmark_if_ready(experiment, user=user, force=True)


def benchmark_if_ready(experiment: Experiment, *, user=None, force: bool = False):
    """Queue the experiment's benchmark stage when every run has ended, the baseline
    succeeded, and no benchmark measured these runs yet (`force`: measure them again).
    Returns the new Benchmark, or None; with `force`, BenchmarkRefused says why not."""
    with transaction.atomic():
        # Lock the experiment: the last two runs can end at once in two workers.
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        runs = list(experiment.runs.defer("curves"))
        why = benchmark_blocker(experiment, runs, forced=force)
        if why:
            if force:
                raise BenchmarkRefused(why)
            return None
        if force:
            # A queued one makes way: if its message was lost it would wait forever, and
            # if it was not, the worker finds it cancelled and skips it.
            experiment.benchmarks.filter(status=Run.Status.QUEUED).update(
                status=Run.Status.CANCELLED, cancel_requested=True, finished_at=timezone.now(),
                error="Replaced by a re-benchmark.")
        measured = benchmark_runs(runs)
        latest = experiment.benchmarks.defer("raw").first()
        if not force and latest is not None and latest.runs == measured:
            # Measured already, or failed or was cancelled on these very files: a person
            # decides (Re-benchmark).
            return None
        settings = benchmark_settings(experiment.spec)
        try:
            with transaction.atomic():
                benchmark = Benchmark.objects.create(
                    experiment=experiment, runs=measured, executions=settings["executions"],
                    rounds=settings["rounds"], requested_by=user if force else None)
        except IntegrityError:  # another worker queued one a moment ago
            if force:
                raise BenchmarkRefused("A benchmark of this experiment was queued a moment "
                                       "ago.") from None
            return None
        benchmark_enqueue(benchmark)
    benchmark_changed(benchmark)
    return benchmark


def benchmark_enqueue(benchmark: Benchmark) -> None:
    transaction.on_commit(lambda: benchmark_send(benchmark))


def benchmark_send(benchmark: Benchmark) -> None:
    from runners.hardware import queue_for
    from runners.tasks import execute_benchmark

    execute_benchmark.apply_async(args=[benchmark.pk],
                                  queue=queue_for(benchmark.experiment.spec))


def benchmark_changed(benchmark: Benchmark, *, ended: bool = False) -> None:
    """Tell the browsers the benchmark's state (its progress ticks are drawn in place).
    When it has ended, the evidence its measurements change is stored first: the pages
    read it again with their results fragment."""
    if ended:
        experiment_evidence(benchmark.experiment)
    broadcast(experiment_group(benchmark.experiment_id), BENCHMARK_CHANGED,
              {"type": "benchmark", "benchmark": benchmark_state(benchmark)})


def benchmark_progress(benchmark: Benchmark, event: dict) -> None:
    """Record an execution's progress ({"execution": 3, "executions": 5, "round": 7,
    "rounds": 20})."""
    executions = max(1, int(event.get("executions") or benchmark.executions))
    execution = min(executions, max(1, int(event.get("execution") or 1)))
    rounds = max(1, int(event.get("rounds") or benchmark.rounds))
    done = min(rounds, max(0, int(event.get("round") or 0)))
    benchmark.execution = execution
    benchmark.progress = min(1.0, ((execution - 1) + done / rounds) / executions)
    Benchmark.objects.filter(pk=benchmark.pk, status=Run.Status.RUNNING).update(
        execution=benchmark.execution, progress=benchmark.progress)
    benchmark_changed(benchmark)


def benchmark_cancel(benchmark: Benchmark) -> bool:
    """A queued benchmark is cancelled at once; a running one is asked to stop."""
    now = timezone.now()
    if Benchmark.objects.filter(pk=benchmark.pk, status=Run.Status.QUEUED).update(
            status=Run.Status.CANCELLED, finished_at=now, cancel_requested=True):
        benchmark.refresh_from_db()
        benchmark_changed(benchmark, ended=True)
        return True
    return bool(Benchmark.objects.filter(pk=benchmark.pk, status=Run.Status.RUNNING)
                .update(cancel_requested=True))


def run_reset_for_rerun(run: Run) -> bool:
    """Put an ended run back in the queue with its history cleared: its events, and the
    sign-offs that rested on its results. False (and nothing changed) when it had not
    ended."""
    # No savepoint of its own inside run_rerun's transaction; a transaction when alone.
    with transaction.atomic(savepoint=False):
        if not run.requeue_ended():
            return False
        run.events.all().delete()
        # A sign-off rests on the results it saw; the new ones must earn their own. Every
        # recipe was compared with the baseline, so a baseline re-run takes them all.
        if run.is_baseline:
            SignOff.objects.filter(experiment=run.experiment_id).withdraw(
                reason="the baseline was run again")
        else:
            # A sign-off sits on the recipe's first replicate and rests on them all.
            SignOff.objects.filter(
                experiment=run.experiment_id, run__position=run.position
            ).withdraw(reason="the run was run again")
        # The row as stored now, for the broadcast of its state.
        run.refresh_from_db()
    return True


def run_rerun(run: Run, *, user) -> bool:
    """Queue an ended run again, its events and the sign-offs resting on it cleared; False
    when it had not ended. `user`: a member of the run's team (a viewer is refused), or None
    for an operator (the admin site), who acts above the teams."""
    if user is not None:
        require_change(user, run.experiment.team_id)
    with transaction.atomic():
        changed = run_reset_for_rerun(run)
        if changed:
            run_enqueue(run)
    if changed:
        run_status_changed(run)
        # A benchmark under way measures files this run is about to replace (and would
        # share the machine with its training): stop it; the run's end queues a new one.
        for benchmark in Benchmark.objects.filter(experiment=run.experiment_id).pending():
            benchmark_cancel(benchmark)
    return changed


def dataset_create(*, team: Team, user, name: str, upload, description: dict):
    """Store a .npz the upload form has checked (DatasetUploadForm.description)."""
    return _team_upload_create(Dataset, team=team, user=user, name=name, upload=upload,
                               description=description,
                               train_samples=description["train_samples"],
                               test_samples=description["test_samples"])


def uploaded_model_create(*, team: Team, user, name: str, upload, description: dict):
    """Store a .keras file the upload form has checked (ModelUploadForm.description)."""
    return _team_upload_create(UploadedModel, team=team, user=user, name=name, upload=upload,
                               description=description, params=description["params"],
                               layers=description["layers"],
                               facts=description.get("facts"))


def _team_upload_create(model, *, team: Team, user, name: str, upload, description: dict,
                        **fields):
    """A member's checked upload, stored with what both kinds have in common; a viewer is
    refused (Denied)."""
    require_change(user, team.pk)
    return model.objects.create(
        team=team, name=name, file=upload, uploaded_by=user,
        input_shape=list(description["input_shape"]),
        num_classes=description["num_classes"], size_bytes=upload.size, **fields,
    )


def demo_setup(*, password: str):
    """The demo user (a superuser, so the admin can be tried) in the demo team."""
    User = get_user_model()
    user, _ = User.objects.get_or_create(username="demo", defaults={"email": "demo@example.com"})
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    team, _ = Team.objects.get_or_create(name="Demo team")
    Membership.objects.get_or_create(team=team, user=user,
                                     defaults={"role": Membership.Role.ADMIN})
    return user, team


def recipe_save(*, team: Team, user, name: str, steps: list, description: str = ""):
    """Save (or replace) a named recipe in the team's library; a viewer is refused
    (Denied)."""
    require_change(user, team.pk)
    steps = validate_steps(steps)
    return Recipe.objects.update_or_create(
        team=team, name=name,
        defaults={"steps": steps, "description": description, "created_by": user},
    )


def recipe_delete(*, recipe: Recipe, user) -> None:
    """Take a recipe out of the team's library; a viewer is refused (Denied)."""
    require_change(user, recipe.team_id)
    recipe.delete()


def team_member_add(*, team: Team, user, username: str, role: str):
    """An admin adds an existing user to the team, or changes the role of one already in
    it: (membership, created). Anyone else is refused (Denied)."""
    require_manage(user, team.pk)
    added = get_user_model().objects.filter(username=username).first()
    if added is None:
        raise ValueError(f"There is no user named “{username}”.")
    membership = Membership.objects.filter(team=team, user=added).first()
    if membership is not None:
        _member_set_role(membership, role)
        return membership, False
    return Membership.objects.create(team=team, user=added, role=role), True


def _other_admins(membership: Membership) -> bool:
    return Membership.objects.filter(
        team=membership.team_id, role=Membership.Role.ADMIN
    ).exclude(pk=membership.pk).exists()


def team_member_set_role(*, membership: Membership, user, role: str) -> None:
    """An admin changes a member's role; anyone else is refused (Denied)."""
    require_manage(user, membership.team_id)
    _member_set_role(membership, role)


def _member_set_role(membership: Membership, role: str) -> None:
    if role not in Membership.Role.values:
        # Not repeated: the value is anything a request sent (a 10 MB string, say).
        raise ValueError("That is not a role: choose viewer, member or admin.")
    demoted = membership.role == Membership.Role.ADMIN and role != Membership.Role.ADMIN
    if demoted and not _other_admins(membership):
        raise ValueError("A team needs at least one admin: make someone else admin first.")
    membership.role = role
    membership.save(update_fields=["role"])


def team_member_remove(*, membership: Membership, user) -> None:
    """An admin removes a member from the team; anyone else is refused (Denied)."""
    require_manage(user, membership.team_id)
    if membership.role == Membership.Role.ADMIN and not _other_admins(membership):
        raise ValueError("A team needs at least one admin: make someone else admin first.")
    membership.delete()


# Discussion: comments and sign-offs.


class SignOffRefused(Exception):
    """A run that may not be signed off; the message says which condition failed."""


def comment_add(*, experiment: Experiment, run: Run | None = None, user, body: str):
    """A team member's comment (viewers included) on the experiment or one of its runs."""
    if not may_comment(user, experiment.team_id):
        raise Denied("Only the team's members can comment.")
    if run is not None and run.experiment_id != experiment.pk:
        raise ValidationError("That run belongs to another experiment.")
    body = (body or "").strip()
    limit = Comment._meta.get_field("body").max_length
    if not body:
        raise ValidationError("The comment is empty.")
    if len(body) > limit:
        raise ValidationError(f"The comment is {len(body):,} characters; the limit is {limit:,}.")
    comment = Comment.objects.create(experiment=experiment, run=run, author=user, body=body)
    _discussion_changed(experiment.pk, {"type": "comment", "action": "added",
                                        "comment": comment.pk, "run": comment.run_id})
    return comment


def comment_delete(*, comment, user) -> None:
    """Its author or a team admin may delete a comment."""
    # The author needs no role lookup: the role decides only for someone else's comment.
    role = None if comment.author_id == user.pk else role_in(user, comment.experiment.team_id)
    if not may_delete_comment(user, comment, role):
        raise Denied("Only its author or a team admin can delete this comment.")
    payload = {"type": "comment", "action": "deleted", "comment": comment.pk,
               "run": comment.run_id}
    comment.delete()
    _discussion_changed(comment.experiment_id, payload)


def _discussion_changed(experiment_id: int, payload: dict) -> None:
    transaction.on_commit(lambda: broadcast(experiment_group(experiment_id),
                                            DISCUSSION_CHANGED, payload))


def _interval(ci) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def _not_faster(what: str, row: dict) -> str:
    ci = row.get(f"{what}_ci")
    if row.get(f"{what}_speedup") is None:
        return f"The {what} speedup is not measured yet ({row.get(f'{what}_verdict')})."
    if ci is None:
        if what == "train":
            return ("The training speedup comes from one run: there is no interval. Set "
                    "training.repeats to 2 or more to measure it.")
        return f"The {what} speedup has no confidence interval: no evidence it is faster."
    label = "training" if what == "train" else what
    if ci[1] < 1.0:
        return f"The {label} speedup interval {_interval(ci)} is below 1.0: it is slower."
    return f"The {label} speedup interval {_interval(ci)} includes 1.0: no evidence it is faster."


def signoff_blockers(*, run: Run, runs: list[Run], rows: list[dict] | None = None):
    """Why `run` cannot be signed off, and the evidence when it can: (reasons, evidence),
    exactly one of them empty. `runs` are all the experiment's runs, `rows` their
    comparison (selectors.experiment_comparison) when the caller has it.

    The rule: a succeeded recipe (its first succeeded replicate stands for it), trained
    on the same hardware and software as the baseline, whose training speedup interval
    (from replicates) or inference speedup interval (from the benchmark stage) against the
    baseline lies above 1.0, whose test accuracy fell by no more than the experiment's
    accuracy budget (its point estimate: comparison.within_accuracy_budget); the
    benchmark's A/A control must contain 1.0 (else the machine was too noisy), and a
    quantized recipe must not be slower than the float32 model of its own weights. A
    quantized run's speedup over that float32 model does not count on its own:
    shipping the recipe is only faster if it beats the baseline. A baseline that scored
    no better than chance (comparison.baseline_at_chance) leaves nothing to compare: that
    reason alone is given."""
    name = run.label
    if run.is_baseline:
        return [f"“{name}” is the baseline the other runs are measured against."], None
    if run.status != Run.Status.SUCCEEDED:
        return [f"“{name}” has not succeeded (it is {run.get_status_display().lower()})."], None
    rows = experiment_comparison(run.experiment, runs) if rows is None else rows
    mine = {row["kind"]: row for row in rows if row["run_id"] == run.pk}
    row = mine.get("vs baseline")
    if row is None:
        primary = primary_run(recipe_groups(runs).get(run.position, [run]))
        if primary.pk != run.pk and primary.status == Run.Status.SUCCEEDED:
            return [f"A recipe is signed off on its first succeeded replicate, "
                    f"“{primary.label}”."], None
        return ["The baseline has not succeeded, so there is nothing to compare with."], None
    chance = baseline_chance(rows)
    if chance:
        return [chance["message"]], None
    if not row["comparable"]:
        why = row.get("not_comparable_reason") or "their fingerprints differ"
        return [f"“{name}” ran on other hardware or software than the baseline: {why}. "
                "Its speedup is not comparable."], None

    reasons = []
    floor = noise_floor(rows)
    # The A/A control of the benchmark behind this row's inference figure.
    aa_ci = row.get("noise_floor_ci")
    if excludes_one(aa_ci):
        reasons.append(
            f"The A/A control (the baseline against itself) came out "
            f"{_interval(aa_ci)}: the machine was too noisy while benchmarking. "
            "Re-benchmark.")
    reference = mine.get("vs float32 TFLite")
    if reference and reference["inference_ci"] and reference["inference_ci"][1] < 1.0:
        reasons.append(
            f"The float32 model of the same weights is faster than this quantized one "
            f"({reference['inference_speedup']:.2f}x {_interval(reference['inference_ci'])}"
            "): quantization costs speed here.")
    faster = [what for what in ("train", "inference")
              if row.get(f"{what}_ci") and row[f"{what}_ci"][0] > 1.0]
    if not faster:
        reasons += [_not_faster(what, row) for what in ("train", "inference")]

    budget = run.experiment.accuracy_budget
    delta = row.get("accuracy_delta")
    if delta is None:
        reasons.append("The test accuracy of this run or of the baseline is missing, so its "
                       "cost in accuracy is unknown.")
    elif not within_accuracy_budget(delta, budget):
        interval = row.get("accuracy_ci")
        interval = f", 95% CI {points_interval(interval)}" if interval else ""
        reasons.append(
            f"Test accuracy changed by {points(delta)}{interval}: a drop of more than the "
            f"budget of {points(budget, digits=2, signed=False)}. The rule judges the "
            "point estimate, not its interval.")
    if reasons:
        return reasons, None
    return [], {"row": row, "reference_row": reference, "noise_floor": floor,
                "faster": ["training" if what == "train" else what for what in faster],
                "accuracy_budget": budget}


def model_label(spec: dict) -> str:
    """What a sign-off approves a recipe for: the model and the dataset."""
    dataset = spec.get("dataset") or {}
    name = dataset.get("label") or dataset.get("name") or "?"
    model = spec.get("model") or {}
    return f"{model.get('label') or model.get('arch', '?')} on {name}"[:300]


def signoff_create(*, run: Run, user, note: str = ""):
    """A member's approval of a run, refused (SignOffRefused) unless signoff_blockers
    finds nothing; viewers are refused (Denied)."""
    require_change(user, run.experiment.team_id)
    with transaction.atomic():
        # Lock the experiment's runs (in one order, so two sign-offs cannot deadlock): a
        # re-run of this run or of the baseline must not reset it between the check and
        # the approval.
        runs = list(Run.objects.select_for_update(of=("self",)).select_related("experiment")
                    .filter(experiment=run.experiment_id).order_by("pk"))
        run = next(candidate for candidate in runs if candidate.pk == run.pk)
        existing = SignOff.objects.filter(run=run).select_related("approved_by").first()
        if existing:
            raise SignOffRefused(
                f"“{run.label}” was already signed off by {existing.approved_by or 'someone'} "
                f"on {date_format(existing.created_at, 'Y-m-d')}."
            )
        runs.sort(key=lambda candidate: (candidate.position, candidate.replicate, candidate.pk))
        reasons, evidence = signoff_blockers(run=run, runs=runs)
        if reasons:
            raise SignOffRefused(" ".join(reasons))
        signoff = SignOff.objects.create(
            experiment=run.experiment, run=run, approved_by=user,
            model_label=model_label(run.experiment.spec), evidence=evidence,
            note=(note or "").strip()[:2000],
        )
        _discussion_changed(run.experiment_id, {"type": "signoff", "action": "added",
                                                "run": run.pk, "signoff": signoff.pk})
    return signoff


def signoff_revoke(*, signoff, user) -> None:
    """The approver or a team admin may take a sign-off back."""
    if not may_revoke_signoff(user, signoff, role_in(user, signoff.experiment.team_id)):
        raise Denied("Only the approver or a team admin can revoke this sign-off.")
    payload = {"type": "signoff", "action": "revoked", "run": signoff.run_id,
               "signoff": signoff.pk}
    SignOff.objects.filter(pk=signoff.pk).withdraw(by=user, reason="revoked")
    _discussion_changed(signoff.experiment_id, payload)
