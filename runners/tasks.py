"""Celery tasks: adapters between the queue, the database and the engine."""

import logging
import shutil
import socket
import time

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from experiments.models import Dataset, Run, UploadedModel
from experiments.services import run_record_event, run_status_changed
from experiments.spec import engine_spec

from .hardware import device_for_slot
from .process import run_engine

log = logging.getLogger(__name__)


def _upload_path(model, what, pk):
    """The file of an uploaded dataset or model the spec names."""
    upload = model.objects.filter(pk=pk).first()
    if upload is None:
        raise FileNotFoundError(f"The uploaded {what} has been deleted.")
    return upload.file.path


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
        dataset_path = _upload_path(Dataset, "dataset", spec["dataset"].get("dataset_id")) \
            if spec["dataset"]["name"] == "npz" else None
        model_path = _upload_path(UploadedModel, "model", spec["model"].get("model_id")) \
            if spec["model"]["arch"] == "uploaded" else None
    except FileNotFoundError as exc:
        run.mark_finished(Run.Status.FAILED, error=str(exc))
        run_status_changed(run)
        return run.status

    artifacts = run.artifacts_dir
    shutil.rmtree(artifacts, ignore_errors=True)
    last_beat = [time.monotonic()]

    def should_stop():
        # Polled twice a second; touches the run's heartbeat every beat interval, which is
        # what tells the reapers that this run's runner is alive.
        now = time.monotonic()
        if now - last_beat[0] >= settings.ACCELWEB_HEARTBEAT_SECONDS:
            Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now())
            last_beat[0] = now
        return Run.objects.filter(pk=run.pk, cancel_requested=True).exists()

    hardware = run.experiment.spec.get("hardware", "cpu")
    device, device_env = device_for_slot(hardware, pool_slot())
    Run.objects.filter(pk=run.pk).update(device=device)
    gpu = device_env.get("CUDA_VISIBLE_DEVICES")
    try:
        outcome = run_engine(
            engine_spec(run.experiment.spec, run.steps, dataset_path=dataset_path,
                        model_path=model_path),
            artifacts_dir=artifacts,
            on_event=lambda event: run_record_event(run, event),
            should_stop=should_stop,
            max_seconds=settings.ACCELWEB_MAX_RUN_SECONDS,
            env=device_env,
            gpu_index=int(gpu) if gpu and gpu != "-1" else None,
        )
    except Exception as exc:  # a run must never stay "running" because its runner broke
        log.exception("run %s failed in its runner", run.pk)
        run.mark_finished(Run.Status.FAILED, error=f"The runner failed: {exc}")
        run_status_changed(run)
        return run.status

    if outcome.cancelled:
        run.mark_finished(Run.Status.CANCELLED, stderr_tail=outcome.stderr_tail)
    elif outcome.returncode == 0 and outcome.result is not None:
        run.mark_finished(Run.Status.SUCCEEDED, result=outcome.result)
    else:
        if outcome.timed_out:
            reason = f"The run took longer than {settings.ACCELWEB_MAX_RUN_SECONDS} s."
        elif outcome.error and _out_of_gpu_memory(outcome.error + outcome.stderr_tail):
            reason = f"The GPU ran out of memory ({device}): {outcome.error}"
        elif outcome.error:
            reason = outcome.error
        elif outcome.returncode == -9:
            reason = ("The engine was killed (SIGKILL), most often by the kernel's "
                      "out-of-memory killer.")
        elif outcome.returncode and outcome.returncode < 0:
            reason = f"The engine was killed by signal {-outcome.returncode}."
        else:
            reason = f"The engine exited with code {outcome.returncode} and no result."
        run.mark_finished(Run.Status.FAILED, error=reason, stderr_tail=outcome.stderr_tail)
    run_status_changed(run)
    return run.status


def pool_slot() -> int:
    """This pool process's index (0 .. concurrency-1): with one process per GPU, the GPU
    it owns."""
    from billiard.process import current_process

    return getattr(current_process(), "index", 0) or 0


def _out_of_gpu_memory(text: str) -> bool:
    return any(marker in text for marker in (
        "RESOURCE_EXHAUSTED", "ResourceExhaustedError", "CUDA_ERROR_OUT_OF_MEMORY",
        "out of memory",
    ))
