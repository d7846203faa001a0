import os

from celery import Celery, bootsteps
from celery.signals import celeryd_after_setup
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "accelweb.settings")

app = Celery("accelweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
# One direct exchange per queue: without it both queues share the default exchange and
# routing key, and a run sent to "gpu" would land on the CPU workers.
app.conf.task_queues = [Queue(name, Exchange(name), routing_key=name) for name in ("cpu", "gpu")]
app.autodiscover_tasks(["runners"])


class RunnerHeartbeat(bootsteps.StartStopStep):
    """Announce this worker, beat, and reap runs whose runner died (runners.fleet)."""

    requires = {"celery.worker.components:Pool"}

    def start(self, worker):
        from runners.fleet import Heartbeat

        queues = sorted(worker.app.amqp.queues.consume_from or {"cpu": None, "gpu": None})
        self.heartbeat = Heartbeat(name=worker.hostname, queues=list(queues),
                                   concurrency=worker.concurrency or 1)
        self.heartbeat.start()

    def stop(self, worker):
        heartbeat = getattr(self, "heartbeat", None)
        if heartbeat is not None:
            heartbeat.stop()


app.steps["worker"].add(RunnerHeartbeat)


@celeryd_after_setup.connect
def consume_own_gpu_model_queue(sender, instance, **kwargs):
    """A worker that serves "gpu" also serves the queue of each GPU model it has, so an
    experiment can ask for one model ("gpu.nvidia-h100-80gb-hbm3") and land only there."""
    from runners.engine.fingerprint import gpus
    from runners.hardware import gpu_model_queue

    if "gpu" in instance.app.amqp.queues.consume_from:
        for gpu in gpus():
            instance.app.amqp.queues.select_add(gpu_model_queue(gpu["name"]))
