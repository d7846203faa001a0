import os

from celery import Celery
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "accelweb.settings")

app = Celery("accelweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
# One direct exchange per queue: without it both queues share the default exchange and
# routing key, and a run sent to "gpu" would land on the CPU workers.
app.conf.task_queues = [Queue(name, Exchange(name), routing_key=name) for name in ("cpu", "gpu")]
app.autodiscover_tasks(["runners"])
