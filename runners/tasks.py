"""Celery tasks: adapters between the queue, the database and the engine."""

import logging
import re
import shutil
import socket
import time
from functools import partial
from pathlib import Path

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections

from experiments.comparison import measured_key
from experiments.models import Benchmark, Dataset, Run, UploadedModel
from experiments.services import (
    StoreLost,
    benchmark_changed,
    benchmark_if_ready,
    benchmark_progress,
    run_ended,
    run_record_events,
    run_status_changed,
    through_lost_connections,
)
from experiments.spec import benchmark_spec, engine_spec

from .hardware import device_for_slot, pinned_gpu
from .process import engine_ending, engine_records, run_engine

log = logging.getLogger(__name__)


def _upload_path(model, what, pk):
    """The file of an uploaded dataset or model the spec names."""
    upload = model.objects.filter(pk=pk).first()
    if upload is None:
        raise FileNotFoundError(f"The uploaded {what} has been deleted.")
    return upload.file.path


def _dataset_path(spec):
    """The uploaded dataset's file, for an npz spec; None for a bundled dataset."""
    if spec["dataset"]["name"] != "npz":
        return None
    return _upload_path(Dataset, "dataset", spec["dataset"].get("dataset_id"))


def _model_path(spec):
    """The uploaded model's file, for an uploaded-model spec; None for a built-in arch."""
    if spec["model"]["arch"] != "uploaded":
        return None
    return _upload_path(UploadedModel, "model", spec["model"].get("model_id"))


@shared_task(bind=True, name="runners.execute_run", acks_late=True)
def execute_run(self, run_id: int) -> str:
    worker = self.request.hostname or socket.gethostname()
    run = Run.claim(run_id, worker=worker)
    if run is None:
        log.info("run %s is not queued any more; nothing to do", run_id)
        return "skipped"
    run_status_changed(run)

    spec = run.experiment.spec
    try:
        dataset_path, model_path = _dataset_path(spec), _model_path(spec)
    except FileNotFoundError as exc:
        run.mark_finished(Run.Status.FAILED, error=str(exc))
        run_ended(run)
        return run.status

    artifacts = run.artifacts_dir
    shutil.rmtree(artifacts, ignore_errors=True)
    should_stop = _beating(run)
    device, device_env = device_for_slot(spec.get("hardware", "cpu"), pool_slot())
    Run.objects.filter(pk=run.pk).update(device=device)
    try:
        outcome = run_engine(
            engine_spec(spec, run.steps, dataset_path=dataset_path,
                        model_path=model_path, replicate=run.replicate),
            artifacts_dir=artifacts,
            on_events=lambda events: run_record_events(run, events),
            should_stop=should_stop,
            max_seconds=settings.ACCELWEB_MAX_RUN_SECONDS,
            env=device_env,
            gpu_index=pinned_gpu(device_env),
            record=_engine_record(worker),
        )
    except StoreLost as exc:  # the engine is stopped by now (run_engine)
        log.error("run %s: %s", run.pk, exc)
        ending = partial(run.mark_finished, Run.Status.FAILED, error=str(exc))
    except Exception as exc:  # a run must never stay "running" because its runner broke
        log.exception("run %s failed in its runner", run.pk)
        ending = partial(run.mark_finished, Run.Status.FAILED,
                         error=f"The runner failed: {exc}")
    else:
        ending = partial(_finish, run, outcome, device, "run", result=outcome.result)
    # The database may just have dropped this worker's connections: the end is stored
    # through that too, so a live worker never leaves its run "running".
    through_lost_connections(lambda _: ending(), what="ending the run")
    through_lost_connections(lambda _: run_ended(run), what="telling the run's end")
    return run.status


@shared_task(bind=True, name="runners.execute_benchmark", acks_late=True)
def execute_benchmark(self, benchmark_id: int) -> str:
    """The benchmark stage of an experiment: `python -m runners bench` over every shipped
    model of its runs, in fresh processes on this worker."""
    worker = self.request.hostname or socket.gethostname()
    benchmark = Benchmark.claim(benchmark_id, worker=worker)
    if benchmark is None:
        log.info("benchmark %s is not queued any more; nothing to do", benchmark_id)
        return "skipped"
    benchmark_changed(benchmark)
    experiment = benchmark.experiment
    runs = {str(run.pk): run for run in experiment.runs.filter(pk__in=list(
        map(int, benchmark.runs)))}
    if any(pk not in runs or measured_key(runs[pk]) != finished
           for pk, finished in benchmark.runs.items()):
        # A run was re-run (or deleted) since this was queued: its files are not the ones
        # to measure; the run's end queues the benchmark of the new ones.
        benchmark.mark_finished(Run.Status.CANCELLED, error="A run it was to measure was "
                                "run again: the runs' end benchmarks them anew.")
        _benchmark_ended(benchmark)
        return benchmark.status
    try:
        spec = benchmark_spec(experiment.spec, runs=[runs[pk] for pk in benchmark.runs],
                              dataset_path=_dataset_path(experiment.spec))
    except (FileNotFoundError, ValueError) as exc:
        benchmark.mark_finished(Run.Status.FAILED, error=str(exc))
        _benchmark_ended(benchmark)
        return benchmark.status

    record = _engine_record(worker)
    beside = {name: pid for name, pid in engine_records(record.parent).items()
              if name != record.name}
    if beside:
        # Timings taken beside another training would be the other's as much as ours.
        benchmark.mark_finished(Run.Status.FAILED, error=(
            f"Another engine ran on this worker ({worker}, pid "
            f"{', '.join(map(str, beside.values()))}) when the benchmark was to start: "
            "measured beside it, the timings would be skewed, so nothing was measured. "
            "Re-benchmark when the worker is idle, or give benchmarks a worker started "
            "with --concurrency 1."))
        _benchmark_ended(benchmark)
        return benchmark.status
    device, device_env = device_for_slot(spec["hardware"], pool_slot())
    Benchmark.objects.filter(pk=benchmark.pk).update(device=device)
    last_progress = [0.0]

    def on_event(event):
        kind = event.get("event")
        now = time.monotonic()
        # The page needs a few updates a second at most, and every round sends one.
        if kind == "progress" and (now - last_progress[0] >= PROGRESS_SECONDS
                                   or not event.get("round")):
            last_progress[0] = now
            try:
                benchmark_progress(benchmark, event)
            except (OperationalError, InterfaceError):
                close_old_connections()  # a progress tick lost; the next one will do

    try:
        outcome = run_engine(spec, command="bench", on_event=on_event,
                             should_stop=_beating(benchmark),
                             max_seconds=settings.ACCELWEB_MAX_RUN_SECONDS, env=device_env,
                             telemetry=False, record=record)
    except Exception as exc:  # never a benchmark stuck "running"
        log.exception("benchmark %s failed in its runner", benchmark.pk)
        ending = partial(benchmark.mark_finished, Run.Status.FAILED,
                         error=f"The runner failed: {exc}")
    else:
        result = outcome.result or {}
        ending = partial(_finish, benchmark, outcome, device, "benchmark",
                         raw=result.get("raw"), result={
                             key: value for key, value in result.items()
                             if key not in ("event", "raw")})
    through_lost_connections(lambda _: ending(), what="ending the benchmark")
    through_lost_connections(lambda _: _benchmark_ended(benchmark),
                             what="telling the benchmark's end")
    return benchmark.status


PROGRESS_SECONDS = 0.5


def _benchmark_ended(benchmark):
    # Something else may have ended it first (the reaper, a cancel): say what is stored.
    benchmark.refresh_from_db(fields=["status", "error", "execution", "progress"])
    benchmark_changed(benchmark, ended=True)
    # A run re-run while this one measured has ended since, unmeasured: measure it now.
    benchmark_if_ready(benchmark.experiment)


def _beating(row):
    """should_stop for run_engine: beats the heartbeat of the run or benchmark every beat
    interval (what tells the reapers its runner is alive) and says whether a cancel was
    asked for."""
    last_beat = [time.monotonic()]

    def should_stop():
        now = time.monotonic()
        try:
            if now - last_beat[0] >= settings.ACCELWEB_HEARTBEAT_SECONDS:
                row.heartbeat()
                last_beat[0] = now
            return row.cancel_was_requested()
        except (OperationalError, InterfaceError):
            # A lost connection: a new one next time; the events' store retries on its own.
            close_old_connections()
            return False

    return should_stop


def _finish(row, outcome, device, what, **succeeded):
    """End a run or a benchmark as the engine's outcome says (runners.process.engine_ending);
    `succeeded` are the fields stored on success."""
    ending = engine_ending(outcome, what=what, device=device,
                           max_seconds=settings.ACCELWEB_MAX_RUN_SECONDS)
    status = Run.Status(ending.status)
    if status == Run.Status.SUCCEEDED:
        row.mark_finished(status, **succeeded)
    else:
        row.mark_finished(status, error=ending.error, stderr_tail=outcome.stderr_tail)


def _engine_record(worker: str) -> Path:
    """The engine record of this worker slot (runners.process.engine_records)."""
    return (settings.DATA_DIR / "engines" / re.sub(r"[^\w.@-]", "_", worker)
            / f"slot-{pool_slot()}")


def pool_slot() -> int:
    """This pool process's index (0 .. concurrency-1): with one process per GPU, the GPU
    it owns."""
    from billiard.process import current_process

    return getattr(current_process(), "index", 0) or 0
