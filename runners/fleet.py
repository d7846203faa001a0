"""Runner fleet: each worker announces itself, beats, reaps runs whose runner died, and
sends again queued runs whose broker message was lost.

The reaper needs no process of its own: every live worker runs it after each heartbeat.
A stale run is claimed with a conditional update, so two workers never reap the same run;
the same goes for a lost message sent again.
"""

import base64
import json
import logging
import os
import threading
from datetime import timedelta

import redis
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from experiments.models import Benchmark, Run, Worker
from experiments.services import (
    RUNNERS_CHANGED,
    benchmark_changed,
    benchmark_send,
    broadcast,
    run_ended,
    run_send,
)

from .hardware import describe_host

log = logging.getLogger(__name__)
RUNNERS_GROUP = "runners"


def worker_announce(*, name: str, queues: list[str], concurrency: int) -> Worker:
    host = describe_host()
    worker, _ = Worker.objects.update_or_create(
        name=name,
        defaults={
            "host": host["host"], "pid": os.getpid(), "queues": sorted(queues),
            "devices": host["devices"], "versions": host["versions"],
            "concurrency": concurrency, "started_at": timezone.now(),
            "heartbeat_at": timezone.now(), "stopped_at": None,
        },
    )
    return worker


def worker_beat(name: str) -> None:
    Worker.objects.filter(name=name).update(heartbeat_at=timezone.now(), stopped_at=None)


def worker_stopped(name: str) -> None:
    Worker.objects.filter(name=name).update(stopped_at=timezone.now())


def _reap(model, *, reaper, timeout, what, ended, advice=""):
    """Fail every running row of `model` silent for longer than the heartbeat timeout;
    `ended(row)` tells the browsers (and may start what follows)."""
    timeout = timeout or settings.ACCELWEB_HEARTBEAT_TIMEOUT
    cutoff = timezone.now() - timedelta(seconds=timeout)
    reaped = []
    # Only what the message needs: a run's result and a benchmark's raw timings can be
    # large, and every worker looks every few seconds.
    stale = model.objects.filter(status=Run.Status.RUNNING, heartbeat_at__lt=cutoff)
    for row in stale.only("pk", "worker"):
        error = (f"The runner {row.worker or '?'} stopped sending heartbeats for more than "
                 f"{timeout} s {what} (its worker or engine process died); found by "
                 f"{reaper}.{advice}")
        # Conditional: only one reaper wins, and never against a row that just beat.
        claimed = model.objects.filter(
            pk=row.pk, status=Run.Status.RUNNING, heartbeat_at__lt=cutoff
        ).update(status=Run.Status.FAILED, error=error, finished_at=timezone.now())
        if claimed:
            row.refresh_from_db()
            ended(row)
            reaped.append(row.pk)
            log.warning("reaped %s %s: %s", model.__name__, row.pk, error)
    return reaped


def reap_stale_runs(*, reaper: str, timeout: int | None = None) -> list[int]:
    """Fail every running run silent for longer than the heartbeat timeout."""
    return _reap(Run, reaper=reaper, timeout=timeout, what="while running",
                 ended=run_ended)


def reap_stale_benchmarks(*, reaper: str, timeout: int | None = None) -> list[int]:
    """Fail every running benchmark silent for longer than the heartbeat timeout; a
    person decides whether to measure again (Re-benchmark)."""
    return _reap(Benchmark, reaper=reaper, timeout=timeout, what="while benchmarking",
                 advice=" Re-benchmark to measure again.",
                 ended=lambda benchmark: benchmark_changed(benchmark, ended=True))


# The tasks whose messages the reconciler looks for, by the model of their row.
TASKS = {Run: "runners.execute_run", Benchmark: "runners.execute_benchmark"}


def requeue_lost(*, reaper: str) -> list[str]:
    """Send again each run and benchmark queued for longer than ACCELWEB_REQUEUE_SECONDS
    whose message the broker no longer holds: Redis restarted without persistence, was
    flushed, or failed over, and nothing else would ever run them. One seen in the broker
    counts as sent now, so each is looked for once per ACCELWEB_REQUEUE_SECONDS. A
    duplicate (the message was in flight) is harmless: the claim runs a row once.

    Only with Redis: the embedded broker is a folder, and loses nothing of its own."""
    if not settings.REDIS_URL:
        return []
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.ACCELWEB_REQUEUE_SECONDS)
    waiting = {model: list(model.objects.filter(status=Run.Status.QUEUED, queued_at__lt=cutoff)
                           .values_list("pk", "queued_at")[:REQUEUE_BATCH])
               for model in TASKS}
    if not any(waiting.values()):
        return []
    held = broker_messages()
    sent = []
    for model, rows in waiting.items():
        for pk, queued_at in rows:
            # Conditional: of the workers looking, one acts on each row.
            if not model.objects.filter(pk=pk, status=Run.Status.QUEUED,
                                        queued_at=queued_at).update(queued_at=now):
                continue
            if (TASKS[model], pk) in held:
                continue
            row = model.objects.select_related("experiment").get(pk=pk)
            (run_send if model is Run else benchmark_send)(row)
            sent.append(f"{model.__name__} {pk}")
            log.warning("%s %s was queued with no message in the broker since %s: sent "
                        "again by %s", model.__name__, pk, queued_at, reaper)
    return sent


REQUEUE_BATCH = 500


def broker_messages() -> set[tuple[str, int]]:
    """(task name, first argument) of each message the Redis broker holds: waiting in a
    queue, or delivered to a worker and not yet acknowledged (kombu's "unacked" hash)."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=5)
    try:
        payloads = []
        for key in client.scan_iter(match="[cg]pu*", count=1000):
            if client.type(key) == b"list":
                payloads += client.lrange(key, 0, -1)
        payloads += [json.dumps(json.loads(value)[0]).encode()
                     for value in client.hvals("unacked")]
    finally:
        client.close()
    held = set()
    for payload in payloads:
        try:
            message = json.loads(payload)
            body = message["body"]
            if message.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args = json.loads(body)[0]
            held.add((message["headers"]["task"], int(args[0])))
        except (KeyError, IndexError, TypeError, ValueError):
            continue  # not one of ours
    return held


class Heartbeat:
    """A thread in the worker's main process: announce, then beat and reap every interval.

    A thread rather than the worker's timer: with the solo pool (manage.py up) the timer
    waits while a run executes, and a busy worker must still beat.
    """

    def __init__(self, *, name, queues, concurrency, interval=None):
        self.name, self.queues, self.concurrency = name, queues, concurrency
        self.interval = interval or settings.ACCELWEB_HEARTBEAT_SECONDS
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="accelweb-heartbeat",
                                        daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            worker_stopped(self.name)
            broadcast_runners()
        finally:
            close_old_connections()

    def _loop(self):
        announced = False
        while not self._stop.is_set():
            try:
                if not announced:
                    worker_announce(name=self.name, queues=self.queues,
                                    concurrency=self.concurrency)
                    announced = True
                else:
                    worker_beat(self.name)
                reap_stale_runs(reaper=self.name)
                reap_stale_benchmarks(reaper=self.name)
                broadcast_runners()
                requeue_lost(reaper=self.name)
            except Exception:  # the database may be restarting; beat again next time
                log.warning("heartbeat of %s failed", self.name, exc_info=True)
            finally:
                close_old_connections()
            self._stop.wait(self.interval)


def broadcast_runners():
    broadcast(RUNNERS_GROUP, RUNNERS_CHANGED, {"type": "runners"})


def queue_depths(names) -> dict:
    """Messages waiting in each queue, from the broker itself; None where it cannot say."""
    from accelweb.celery import app

    depths = {}
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            channel = conn.default_channel
            for name in names:
                try:
                    depths[name] = channel.queue_declare(queue=name, passive=True).message_count
                except Exception:  # a queue nobody declared yet holds nothing
                    depths[name] = 0
                    channel = conn.channel()
    except Exception:
        log.warning("cannot read queue depths", exc_info=True)
        return dict.fromkeys(names)
    return depths
