"""The experiment websocket, through the real ASGI application (origin check, session auth,
routing) and the configured channel layer.

The consumer reads the database from worker threads, so the rows must be committed: these
tests use transactional_db, and create their experiments without the service, whose
on-commit enqueue would then reach a real broker.
"""

import json
import re

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from django.urls import reverse
from results import benchmark_results, finish_recipe

from experiments import services
from experiments.consumers import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED
from experiments.models import Benchmark, Experiment, Run
from experiments.selectors import benchmark_state, run_state
from experiments.spec import validate_spec

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

ORIGIN = (b"origin", b"http://localhost")
TIMEOUT = 5


@pytest.fixture
def experiment(alice, alice_team, tiny_spec):
    spec = validate_spec(tiny_spec(training={"epochs": 3}, recipes=[
        {"name": "XLA", "steps": [{"technique": "xla"}]}]), team=alice_team)
    experiment = Experiment.objects.create(team=alice_team, name=spec["name"], spec=spec,
                                           created_by=alice)
    Run.objects.create(experiment=experiment, name="baseline", position=0, steps=[])
    Run.objects.create(experiment=experiment, name="XLA", position=1,
                       steps=spec["recipes"][0]["steps"])
    return experiment


def session_cookie(user):
    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return (b"cookie", f"{name}={client.cookies[name].value}".encode())


def communicator(experiment_id, headers):
    # Imported late: building the application reads settings the fixtures override.
    from accelweb.asgi import application

    return WebsocketCommunicator(application, f"/ws/experiments/{experiment_id}/",
                                 headers=headers)


def connect(experiment_id, headers):
    """(connected, close code or subprotocol) of one connection attempt."""
    async def attempt():
        ws = communicator(experiment_id, headers)
        outcome = await ws.connect(timeout=TIMEOUT)
        await ws.disconnect()
        return outcome

    return async_to_sync(attempt)()


def test_it_refuses_an_anonymous_visitor(experiment):
    assert connect(experiment.pk, [ORIGIN]) == (False, CLOSE_UNAUTHENTICATED)


def test_it_refuses_a_user_of_another_team(experiment, charlie):
    assert connect(experiment.pk, [session_cookie(charlie), ORIGIN]) == \
        (False, CLOSE_NOT_FOUND)


def test_it_refuses_an_experiment_that_does_not_exist(experiment, alice):
    assert connect(experiment.pk + 1000, [session_cookie(alice), ORIGIN]) == \
        (False, CLOSE_NOT_FOUND)


def test_it_refuses_a_foreign_origin(experiment, alice):
    # Cross-site websocket hijacking: another site's page cannot ride Alice's cookie.
    connected, _ = connect(experiment.pk, [session_cookie(alice),
                                           (b"origin", b"http://evil.example")])

    assert not connected


def test_it_refuses_a_connection_without_an_origin(experiment, alice):
    connected, _ = connect(experiment.pk, [session_cookie(alice)])

    assert not connected


def test_it_accepts_a_member_of_the_team(experiment, alice, bob):
    assert connect(experiment.pk, [session_cookie(alice), ORIGIN]) == (True, None)
    assert connect(experiment.pk, [session_cookie(bob), ORIGIN]) == (True, None)


def test_it_sends_a_snapshot_then_live_events(experiment, alice):
    baseline = experiment.runs.get(name="baseline")
    services.run_record_events(baseline, [
        {"event": "phase", "phase": "train"},
        {"event": "epoch", "epoch": 1, "loss": 0.9, "accuracy": 0.6}])
    Run.objects.filter(pk=baseline.pk).update(status=Run.Status.RUNNING, epochs_done=1)
    headers = [session_cookie(alice), ORIGIN]

    async def scenario():
        ws = communicator(experiment.pk, headers)
        assert await ws.connect(timeout=TIMEOUT) == (True, None)

        first = await ws.receive_json_from(timeout=TIMEOUT)
        assert first["type"] == "snapshot"
        snapshot = first["snapshot"]
        assert snapshot["experiment"] == {"id": experiment.pk, "name": "digits, seed MLP"}
        assert snapshot["epochs"] == 3
        assert [(r["name"], r["status"]) for r in snapshot["runs"]] == [
            ("baseline", "running"), ("XLA", "queued")]
        # How far each run got and its curves' summary; the page fetches the curves.
        assert snapshot["runs"][0]["last_epoch"] == 1
        assert snapshot["runs"][0]["summary"]["loss"] == {
            "last": 0.9, "best": 0.9, "min": 0.9, "max": 0.9}
        assert snapshot["runs"][1]["last_epoch"] == 0
        assert "series" not in snapshot["runs"][0]

        # The runner stores the event, then tells the group.
        run = await database_sync_to_async(Run.objects.get)(pk=baseline.pk)
        epoch = {"event": "epoch", "epoch": 2, "loss": 0.4, "accuracy": 0.8}
        await database_sync_to_async(services.run_record_event)(run, epoch)

        live = await ws.receive_json_from(timeout=TIMEOUT)
        assert live["type"] == "event"
        assert live["event"] == epoch
        assert live["run"]["id"] == baseline.pk
        assert live["run"]["epochs_done"] == 2
        assert live["run"]["progress"] == round(2 / 3, 4)

        # Any other kind of message is relayed as the service wrote it.
        comment = {"type": "comment", "action": "added", "comment": 7, "run": None}
        await database_sync_to_async(services.broadcast)(
            experiment.group_name, services.DISCUSSION_CHANGED, comment)
        assert await ws.receive_json_from(timeout=TIMEOUT) == comment
        assert await ws.receive_nothing(timeout=0.2)
        await ws.disconnect()

    async_to_sync(scenario)()


def test_it_only_sends_an_experiments_own_events(experiment, alice):
    headers = [session_cookie(alice), ORIGIN]

    async def scenario():
        ws = communicator(experiment.pk, headers)
        await ws.connect(timeout=TIMEOUT)
        await ws.receive_json_from(timeout=TIMEOUT)

        other = f"experiment.{experiment.pk + 1000}"
        await database_sync_to_async(services.broadcast)(other, services.RUN_STATUS,
                                                         {"type": "status"})

        assert await ws.receive_nothing(timeout=0.3)
        await ws.disconnect()

    async_to_sync(scenario)()


def test_it_sends_a_fresh_snapshot_on_resync(experiment, alice):
    headers = [session_cookie(alice), ORIGIN]
    baseline = experiment.runs.get(name="baseline")

    async def scenario():
        ws = communicator(experiment.pk, headers)
        await ws.connect(timeout=TIMEOUT)
        before = await ws.receive_json_from(timeout=TIMEOUT)
        assert before["snapshot"]["runs"][0]["status"] == "queued"

        # A status change whose broadcast was lost: the database still knows.
        await database_sync_to_async(Run.objects.filter(pk=baseline.pk).update)(
            status=Run.Status.FAILED, error="out of memory")
        await ws.send_json_to({"type": "resync"})

        after = await ws.receive_json_from(timeout=TIMEOUT)
        assert after["type"] == "snapshot"
        assert after["snapshot"]["runs"][0]["status"] == "failed"
        assert after["snapshot"]["runs"][0]["error"] == "out of memory"
        await ws.disconnect()

    async_to_sync(scenario)()


def test_it_has_a_handler_for_each_kind_of_message(experiment, alice):
    from runners.fleet import broadcast_runners

    headers = [session_cookie(alice), ORIGIN]
    kinds = sorted(services.MESSAGE_KINDS - {services.RUNNERS_CHANGED})

    async def scenario():
        ws = communicator(experiment.pk, headers)
        await ws.connect(timeout=TIMEOUT)
        await ws.receive_json_from(timeout=TIMEOUT)
        for kind in kinds:
            await database_sync_to_async(services.broadcast)(
                experiment.group_name, kind, {"type": "probe", "kind": kind})
        told = [await ws.receive_json_from(timeout=TIMEOUT) for _ in kinds]
        await ws.disconnect()

        # The runners page's socket: a runner beat, the page reads its table again.
        from accelweb.asgi import application

        runners = WebsocketCommunicator(application, "/ws/runners/", headers=headers)
        assert await runners.connect(timeout=TIMEOUT) == (True, None)
        await database_sync_to_async(broadcast_runners)()
        beat = await runners.receive_json_from(timeout=TIMEOUT)
        await runners.disconnect()
        return told, beat

    told, beat = async_to_sync(scenario)()
    assert told == [{"type": "probe", "kind": kind} for kind in kinds]
    assert kinds == ["benchmark.changed", "discussion.changed", "run.event", "run.status"]
    assert beat == {"type": "runners"}


def evidence_computations(monkeypatch):
    """The experiments whose evidence (the bootstrapped comparison) is computed from now
    on, one entry a computation: the real computation, counted."""
    computed = []
    compute = services.evidence_compute

    def counted(experiment, *args, **kwargs):
        computed.append(experiment.pk)
        return compute(experiment, *args, **kwargs)

    monkeypatch.setattr(services, "evidence_compute", counted)
    return computed


def fragment_snapshot(client, experiment):
    """What an open page reads when told something changed: its results fragment, with
    the snapshot its charts draw."""
    response = client.get(reverse("experiment_results", args=[experiment.pk]))
    assert response.status_code == 200
    found = re.search(r'<script id="experiment-snapshot" type="application/json">(.*?)</script>',
                      response.content.decode(), re.S)
    return json.loads(found.group(1))


def test_a_run_that_ends_is_computed_once_however_many_pages_are_open(experiment, alice,
                                                                       bob, monkeypatch):
    baseline, xla = experiment.runs.order_by("position")
    finish_recipe(baseline)
    computed = evidence_computations(monkeypatch)
    headers = {user: [session_cookie(user), ORIGIN] for user in (alice, bob)}

    async def scenario():
        pages = [communicator(experiment.pk, headers[user]) for user in (alice, bob)]
        for ws in pages:
            assert await ws.connect(timeout=TIMEOUT) == (True, None)
            assert (await ws.receive_json_from(timeout=TIMEOUT))["type"] == "snapshot"
        # The pages are open (the first snapshot stored the baseline's evidence).
        opened = list(computed)
        computed.clear()

        # The worker: the XLA run succeeded, then the browsers are told.
        await database_sync_to_async(finish_recipe)(xla)
        run = await database_sync_to_async(Run.objects.select_related("experiment").get)(
            pk=xla.pk)
        await database_sync_to_async(services.run_status_changed)(run)
        told = [await ws.receive_json_from(timeout=TIMEOUT) for ws in pages]
        # Nothing else follows: no snapshot is pushed, none is asked for.
        for ws in pages:
            assert await ws.receive_nothing(timeout=0.3)
            await ws.disconnect()
        return opened, told, run

    opened, told, run = async_to_sync(scenario)()
    # The message says which run and how it stands: nothing computed.
    assert told == [{"type": "status", "run": run_state(run)}] * 2
    assert told[0]["run"]["status"] == "succeeded"
    assert opened == [experiment.pk] and computed == [experiment.pk]

    # Each page then makes one request, which reads what the worker stored.
    snapshots = []
    for user in (alice, bob):
        client = Client()
        client.force_login(user)
        snapshots.append(fragment_snapshot(client, experiment))
    assert computed == [experiment.pk]
    assert snapshots[0] == snapshots[1]
    assert [r["status"] for r in snapshots[0]["runs"]] == ["succeeded", "succeeded"]
    xla_row = next(row for row in snapshots[0]["comparison"] if row["name"] == "XLA")
    assert xla_row["train_speedup"] is not None
    assert [point["name"] for point in snapshots[0]["tradeoff"]] == ["baseline", "XLA"]


def test_a_benchmark_that_ends_tells_its_state_not_its_comparison(experiment, alice,
                                                                   monkeypatch):
    for run in experiment.runs.all():
        finish_recipe(run, latency=2.0 if run.is_baseline else 1.0)
    computed = evidence_computations(monkeypatch)
    headers = [session_cookie(alice), ORIGIN]

    async def scenario():
        ws = communicator(experiment.pk, headers)
        await ws.connect(timeout=TIMEOUT)
        await ws.receive_json_from(timeout=TIMEOUT)
        computed.clear()
        # The worker: the benchmark of the two runs succeeded, then the browsers are told.
        benchmark = await database_sync_to_async(benchmark_results)(experiment)
        ended = await database_sync_to_async(
            Benchmark.objects.select_related("experiment").get)(pk=benchmark.pk)
        await database_sync_to_async(services.benchmark_changed)(ended, ended=True)
        told = await ws.receive_json_from(timeout=TIMEOUT)
        assert await ws.receive_nothing(timeout=0.3)
        await ws.disconnect()
        return told, ended

    told, benchmark = async_to_sync(scenario)()
    assert told == {"type": "benchmark", "benchmark": benchmark_state(benchmark)}
    assert told["benchmark"]["status"] == "succeeded"
    assert computed == [experiment.pk]
    # The page's one request reads the evidence the worker stored.
    client = Client()
    client.force_login(alice)
    snapshot = fragment_snapshot(client, experiment)
    assert computed == [experiment.pk]
    assert snapshot["benchmark"] == told["benchmark"]
    xla_row = next(row for row in snapshot["comparison"] if row["name"] == "XLA")
    assert xla_row["inference_speedup"] == pytest.approx(2.0, rel=0.05)


def test_it_cuts_off_a_member_removed_from_the_team(experiment, bob, monkeypatch):
    from experiments import consumers
    from experiments.models import Membership

    headers = [session_cookie(bob), ORIGIN]

    async def scenario():
        ws = communicator(experiment.pk, headers)
        assert await ws.connect(timeout=TIMEOUT) == (True, None)
        assert (await ws.receive_json_from(timeout=TIMEOUT))["type"] == "snapshot"
        await database_sync_to_async(
            Membership.objects.filter(user=bob, team=experiment.team).delete)()

        # A resync re-checks at once: no snapshot, the socket is closed as "not found".
        await ws.send_json_to({"type": "resync"})
        assert await ws.receive_output(timeout=TIMEOUT) == {
            "type": "websocket.close", "code": CLOSE_NOT_FOUND}
        await ws.disconnect()

        # Events re-check too, once the last check is older than the allowed staleness.
        await database_sync_to_async(Membership.objects.create)(
            user=bob, team=experiment.team, role=Membership.Role.VIEWER)
        ws = communicator(experiment.pk, headers)
        assert await ws.connect(timeout=TIMEOUT) == (True, None)
        await ws.receive_json_from(timeout=TIMEOUT)
        await database_sync_to_async(
            Membership.objects.filter(user=bob, team=experiment.team).delete)()
        monkeypatch.setattr(consumers, "ACCESS_RECHECK_SECONDS", 0)
        await database_sync_to_async(services.broadcast)(
            experiment.group_name, services.DISCUSSION_CHANGED, {"type": "comment"})
        assert await ws.receive_output(timeout=TIMEOUT) == {
            "type": "websocket.close", "code": CLOSE_NOT_FOUND}
        await ws.disconnect()

    async_to_sync(scenario)()


def test_it_closes_cleanly_while_the_channel_layer_is_out_of_reach(
        experiment, alice, settings):
    # Redis restarting: nothing listens where the channel layer points. The handshake is
    # answered and the socket closed with "try again later", which the page retries on
    # within 2 s; it used to be a 500.
    from channels.layers import channel_layers

    from experiments.consumers import CLOSE_TRY_AGAIN

    settings.CHANNEL_LAYERS = {"default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [{"address": "redis://127.0.0.1:9/0", "socket_timeout": 2,
                              "socket_connect_timeout": 2}]}}}
    channel_layers.backends.clear()
    cookie = session_cookie(alice)

    async def attempt():
        ws = communicator(experiment.pk, [cookie, ORIGIN])
        connected, _ = await ws.connect(timeout=TIMEOUT)
        closed = await ws.receive_output(timeout=TIMEOUT)
        await ws.wait(timeout=TIMEOUT)
        return connected, closed

    try:
        connected, closed = async_to_sync(attempt)()
    finally:
        channel_layers.backends.clear()
    assert connected
    assert closed == {"type": "websocket.close", "code": CLOSE_TRY_AGAIN}
