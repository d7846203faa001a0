"""An idle websocket stays open: an experiment's page can wait hours for its queued runs.

Two things closed quiet sockets. channels_redis waits for a message with a 5 s blocking
BZPOPMIN while redis-py 8 gave up on reads after 5 s, so the server closed the socket with
1011 after 5-6 s (settings.CHANNEL_LAYER_SOCKET_TIMEOUT); and a proxy in front closes a
connection that carries nothing (the consumers' heartbeat).
"""

import json
import time

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from livestack import web_stack

from experiments import services
from experiments.models import Experiment

IDLE_SECONDS = 30


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory):
    with web_stack(tmp_path_factory.mktemp("ws-idle")) as stack:
        yield stack


@pytest.fixture
def experiment(alice, alice_team, tiny_spec):
    # Through the ORM, not the service: its on-commit enqueue would reach a real broker.
    return Experiment.objects.create(team=alice_team, name="idle", spec=tiny_spec(),
                                     created_by=alice)


def session_cookie(user):
    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}"


def test_the_read_timeout_outlasts_channels_redis_blocking_receive():
    from channels_redis.core import RedisChannelLayer

    # The margin covers Redis answering a 5 s BZPOPMIN a little after 5 s.
    assert settings.CHANNEL_LAYER_SOCKET_TIMEOUT >= RedisChannelLayer.brpop_timeout + 5


@pytest.mark.fullstack
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_an_idle_experiment_socket_stays_open_and_still_delivers(server, experiment, alice):
    from websockets.sync.client import connect

    url = f"ws://127.0.0.1:{server.port}/ws/experiments/{experiment.pk}/"
    headers = {"Cookie": session_cookie(alice), "Origin": server.url.rstrip("/")}
    with connect(url, additional_headers=headers, open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"
        opened = time.monotonic()
        idle = []
        # Nothing happens for IDLE_SECONDS: only heartbeats may arrive, and the socket
        # must not close (it used to, with 1011, after 5-6 s).
        while (left := IDLE_SECONDS - (time.monotonic() - opened)) > 0:
            try:
                idle.append(json.loads(ws.recv(timeout=left)))
            except TimeoutError:
                break
        held = time.monotonic() - opened
        print(f"idle socket held {held:.1f} s, messages meanwhile: {idle}")

        services.broadcast(experiment.group_name, services.RUN_STATUS,
                           {"type": "status", "probe": "after idle"})

        assert idle and all(m == {"type": "heartbeat"} for m in idle), server.log_tails()
        assert json.loads(ws.recv(timeout=10)) == {"type": "status", "probe": "after idle"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
def test_the_runners_socket_beats_while_nothing_happens(settings, alice):
    settings.ACCELWEB_WS_HEARTBEAT_SECONDS = 0.2
    from accelweb.asgi import application

    cookie = session_cookie(alice).encode()

    async def two_beats():
        ws = WebsocketCommunicator(application, "/ws/runners/", headers=[
            (b"cookie", cookie), (b"origin", b"http://localhost")])
        connected, _ = await ws.connect(timeout=5)
        assert connected
        beats = [await ws.receive_json_from(timeout=2) for _ in range(2)]
        await ws.disconnect()
        return beats

    assert async_to_sync(two_beats)() == [{"type": "heartbeat"}] * 2
