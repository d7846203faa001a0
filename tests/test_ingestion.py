"""Batched ingestion: a burst of engine events is handed over, stored and broadcast in
batches, with sequence numbers from a counter and one channel-layer connection per process."""

import sys
import time

import pytest
import redis
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from experiments import curves, services
from experiments.models import Run, RunEvent, experiment_group
from runners import process

# A child that prints a burst of epochs as fast as it can, then its result.
BURST = """
import json, sys
n = int(sys.argv[-1]) if sys.argv[-1].isdigit() else 3000
for i in range(1, n + 1):
    print(json.dumps({"event": "epoch", "epoch": i, "loss": 1 / i, "accuracy": 0.5,
                      "val_loss": 1 / i, "val_accuracy": 0.5, "seconds": 0.01}))
print(json.dumps({"event": "result", "test_accuracy": 0.5}))
"""


@pytest.fixture
def burst_engine(monkeypatch):
    monkeypatch.setattr(process, "ENGINE_COMMAND", (sys.executable, "-c", BURST))


def test_it_hands_a_burst_over_in_batches_and_in_order(burst_engine):
    batches = []

    def store(events):
        batches.append(events)
        time.sleep(0.005)  # as a transaction takes: the child prints on meanwhile

    outcome = process.run_engine({"name": "burst"}, on_events=store, telemetry=False)

    epochs = [e["epoch"] for batch in batches for e in batch if e["event"] == "epoch"]
    assert epochs == list(range(1, 3001))
    assert outcome.returncode == 0 and outcome.result == {"event": "result",
                                                          "test_accuracy": 0.5}
    # What the child printed while a batch was stored comes as one batch: 3,000 events
    # one at a time would take 15 s here, and the child prints them in well under one.
    assert len(batches) < 300
    assert max(len(batch) for batch in batches) <= process.MAX_BATCH


def test_it_still_calls_on_event_once_per_event(burst_engine):
    events = []

    process.run_engine({"name": "burst"}, on_event=events.append, telemetry=False)

    assert len(events) == 3001 and events[-1]["event"] == "result"


def test_it_wants_one_way_to_deliver():
    with pytest.raises(TypeError):
        process.run_engine({}, telemetry=False)


def epochs(first, last):
    return [{"event": "epoch", "epoch": i, "loss": 1 / i, "val_accuracy": i / last,
             "seconds": 0.5} for i in range(first, last + 1)]


@pytest.fixture
def run(alice, alice_team, make_experiment):
    experiment = make_experiment(team=alice_team, user=alice, training={"epochs": 200})
    run = experiment.runs.get()
    Run.claim(run.pk, worker="celery@one")
    return Run.objects.select_related("experiment").get(pk=run.pk)


def test_it_stores_a_batch_in_one_transaction_and_broadcasts_it_once(run, monkeypatch):
    sent = []
    monkeypatch.setattr(services, "broadcast", lambda group, kind, payload: sent.append(
        (group, kind, payload)))

    services.run_record_events(run, epochs(1, 100))
    with CaptureQueriesContext(connection) as queries:
        services.run_record_events(run, [{"event": "phase", "phase": "eval"},
                                         *epochs(101, 150)])

    assert list(RunEvent.objects.filter(run=run).values_list("seq", flat=True)) == list(
        range(1, 152))
    # The second batch needs no MAX(seq): its rows (one INSERT, or a COPY on PostgreSQL,
    # which Django's query log does not see) and one UPDATE, in one transaction.
    statements = [q["sql"] for q in queries.captured_queries]
    assert not any("MAX(" in sql.upper() for sql in statements)
    inserts = sum(sql.startswith("INSERT") for sql in statements)
    if connection.vendor == "postgresql":
        assert inserts == 0 and "SET LOCAL synchronous_commit TO OFF" in statements
    else:
        assert inserts == 1
    assert sum(sql.startswith("UPDATE") for sql in statements) == 1
    assert [(group, kind, payload["type"], len(payload["events"]))
            for group, kind, payload in sent] == [
        (experiment_group(run.experiment_id), services.RUN_EVENT, "events", 100),
        (experiment_group(run.experiment_id), services.RUN_EVENT, "events", 51)]
    assert sent[-1][2]["run"]["epochs_done"] == 150
    run.refresh_from_db()
    assert (run.epochs_done, run.progress) == (150, 0.75)
    # The stored curves have every epoch of both batches in them.
    assert curves.view(run.curves)["last_epoch"] == 150
    assert curves.view(run.curves)["summary"]["loss"]["min"] == pytest.approx(1 / 150)


def test_it_stores_what_jsonb_refuses_as_null(run, monkeypatch):
    monkeypatch.setattr(services, "broadcast", lambda group, kind, payload: None)

    services.run_record_events(run, [
        {"event": "epoch", "epoch": 1, "loss": float("nan"), "note": "NaN in text stays"},
        {"event": "log", "message": "tab\tnewline\nbackslash\\ quote\" done"}])

    stored = list(RunEvent.objects.filter(run=run).values_list("data", flat=True))
    assert stored == [
        {"event": "epoch", "epoch": 1, "loss": None, "note": "NaN in text stays"},
        {"event": "log", "message": "tab\tnewline\nbackslash\\ quote\" done"}]


def test_it_takes_the_next_numbers_when_another_writer_stored_events(run, monkeypatch):
    monkeypatch.setattr(services, "broadcast", lambda group, kind, payload: None)
    services.run_record_events(run, epochs(1, 2))
    RunEvent.objects.create(run=run, seq=3, kind="log", data={"event": "log"})

    services.run_record_events(run, epochs(3, 4))

    assert list(RunEvent.objects.filter(run=run).values_list("seq", "kind")) == [
        (1, "epoch"), (2, "epoch"), (3, "log"), (4, "epoch"), (5, "epoch")]


def test_a_single_event_keeps_the_one_event_message(run, monkeypatch):
    sent = []
    monkeypatch.setattr(services, "broadcast",
                        lambda group, kind, payload: sent.append(payload))

    services.run_record_event(run, {"event": "epoch", "epoch": 1, "loss": 0.5})

    assert sent[0]["type"] == "event" and sent[0]["event"]["epoch"] == 1


@pytest.mark.skipif("channels_redis" not in settings.CHANNEL_LAYERS["default"]["BACKEND"],
                    reason="needs the production channel layer (REDIS_URL)")
def test_broadcasts_share_one_redis_connection(monkeypatch):
    # A loop of the test's own: the process's may hold a connection from before another
    # test restarted Redis (test_fleet).
    monkeypatch.setattr(services, "_layer_loop", services._LayerLoop())
    layer = get_channel_layer()
    channel = services._layer_loop.run(layer.new_channel(), 5)
    services._layer_loop.run(layer.group_add("ingestion-test", channel), 5)
    client = redis.Redis.from_url(settings.REDIS_URL)
    opened_before = client.info("stats")["total_connections_received"]

    for i in range(50):
        services.broadcast("ingestion-test", services.RUN_EVENT, {"i": i})

    received = [services._layer_loop.run(layer.receive(channel), 5)["payload"]["i"]
                for _ in range(50)]
    assert received == list(range(50))
    # The old code opened a connection per broadcast (a new event loop each time).
    assert client.info("stats")["total_connections_received"] - opened_before <= 2
    services._layer_loop.run(layer.group_discard("ingestion-test", channel), 5)


class FlakyLayer:
    """A channel layer whose first send fails as a pooled connection does after a Redis
    restart (test_fleet restarts a real one; here the failure is on cue)."""

    def __init__(self, failures):
        self.failures, self.sent = list(failures), []

    async def group_send(self, group, message):
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((group, message["payload"]))


@pytest.mark.parametrize("failure", [ConnectionResetError("Connection lost"),
                                     redis.exceptions.ConnectionError("Connection closed")])
def test_a_broadcast_tries_once_more_on_a_lost_connection(monkeypatch, failure):
    layer = FlakyLayer([failure])
    monkeypatch.setattr(services, "get_channel_layer", lambda: layer)

    services.broadcast("g", services.RUN_EVENT, {"n": 1})

    assert layer.sent == [("g", {"n": 1})]


def test_a_broadcast_gives_up_after_a_second_failure_without_failing_the_run(monkeypatch,
                                                                             caplog):
    layer = FlakyLayer([ConnectionResetError("lost"), ConnectionResetError("lost again")])
    monkeypatch.setattr(services, "get_channel_layer", lambda: layer)

    services.broadcast("g", services.RUN_EVENT, {"n": 1})

    assert layer.sent == [] and "broadcast to g failed: lost again" in caplog.text


def test_a_broadcast_of_a_kind_no_consumer_handles_is_refused(monkeypatch):
    # Channels would close every open socket of the group on a message it has no
    # handler for: the mistake is the caller's, and it is told before anything is sent.
    layer = FlakyLayer([])
    monkeypatch.setattr(services, "get_channel_layer", lambda: layer)

    with pytest.raises(ValueError, match="group.event"):
        services.broadcast("g", "group.event", {"n": 1})

    assert layer.sent == []


def test_the_in_process_layer_wakes_the_serving_loop_at_once(monkeypatch):
    """`manage.py up`: the worker thread broadcasts into queues of the serving loop. From
    a loop of its own the message went in without waking that loop's waiter."""
    import asyncio
    import threading

    from channels.layers import InMemoryChannelLayer

    layer = InMemoryChannelLayer()
    monkeypatch.setattr(services, "get_channel_layer", lambda: layer)
    monkeypatch.setattr(services, "_layer_loop", services._LayerLoop())
    serving = asyncio.new_event_loop()
    threading.Thread(target=serving.run_forever, daemon=True).start()
    try:
        def on_serving(coroutine):
            return asyncio.run_coroutine_threadsafe(coroutine, serving).result(5)

        channel = on_serving(layer.new_channel())
        on_serving(layer.group_add("served", channel))
        services._layer_loop.use(serving)
        # The serving loop waits on the queue and has nothing else to wake it.
        waiting = asyncio.run_coroutine_threadsafe(layer.receive(channel), serving)
        time.sleep(0.1)

        services.broadcast("served", services.RUN_EVENT, {"n": 1})

        assert waiting.result(timeout=2)["payload"] == {"n": 1}
    finally:
        serving.call_soon_threadsafe(serving.stop)
