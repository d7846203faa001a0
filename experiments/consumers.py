import asyncio
import contextlib
import logging
import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from redis.exceptions import RedisError

from .models import Experiment
from .selectors import experiment_snapshot

log = logging.getLogger(__name__)

# Close codes in the application range (4000-4999), so the browser can tell why.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
# The channel layer (Redis) is out of reach: "try again later", which the page does soon.
CLOSE_TRY_AGAIN = 1013
CHANNEL_LAYER_DOWN = (RedisError, OSError, asyncio.TimeoutError)
# How stale the membership check of an open socket may get before an event re-checks it:
# a user removed from the team stops receiving within this many seconds.
ACCESS_RECHECK_SECONDS = 5


class HeartbeatConsumer(AsyncJsonWebsocketConsumer):
    """Sends {"type": "heartbeat"} every ACCELWEB_WS_HEARTBEAT_SECONDS while the socket is
    open: a proxy in front (nginx's proxy_read_timeout, a load balancer's idle timeout)
    closes a connection that carries nothing, and an experiment can be quiet for hours while
    its runs wait in the queue. The pages ignore the message."""

    _heartbeat = None
    _accepted = False

    async def accept(self, subprotocol=None, headers=None):
        await super().accept(subprotocol, headers)
        self._accepted = True
        self._heartbeat = asyncio.ensure_future(self._beat())

    async def __call__(self, scope, receive, send):
        # Every way out (a disconnect, a close, the server cancelling the connection at
        # shutdown) ends here: the timer must not outlive its socket.
        try:
            await super().__call__(scope, receive, send)
        except CHANNEL_LAYER_DOWN as exc:
            # Joining the group or waiting on the channel failed: Redis restarts. A clean
            # close the page tries again on, not a 500 on the handshake or a 1011.
            log.warning("websocket %s closed, the channel layer is out of reach: %r",
                        scope.get("path"), exc)
            with contextlib.suppress(Exception):
                if not self._accepted:
                    await send({"type": "websocket.accept"})
                await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN})
        finally:
            if self._heartbeat is not None:
                self._heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._heartbeat

    async def _beat(self):
        while True:
            await asyncio.sleep(settings.ACCELWEB_WS_HEARTBEAT_SECONDS)
            await self.send_json({"type": "heartbeat"})


class ExperimentConsumer(HeartbeatConsumer):
    """Live events of one experiment: a snapshot from the database first, then what is
    broadcast to the experiment's group, one handler per kind of message
    (services.MESSAGE_KINDS). Only the engine's events carry data (the live curves); the
    others say what changed, and the page reads its results fragment again."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        experiment = await self._experiment(user, self.scope["url_route"]["kwargs"]["pk"])
        if experiment is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.user, self.experiment = user, experiment
        self.checked_at = time.monotonic()
        self.group_name = experiment.group_name
        # Join before reading the snapshot: an event in between arrives twice, never
        # zero times, and the browser's update is idempotent.
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()
        await self.send_json({"type": "snapshot", "snapshot": await self._snapshot()})

    async def disconnect(self, code):
        if hasattr(self, "group_name"):
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive_json(self, content, **kwargs):
        # A client may ask for the snapshot again without reconnecting. The experiment
        # page does not: every connect starts with one, and its results fragment carries
        # one.
        if isinstance(content, dict) and content.get("type") == "resync":
            if await self._still_allowed(force=True):
                await self.send_json({"type": "snapshot", "snapshot": await self._snapshot()})

    async def run_event(self, message):
        """An engine event of a run, or a batch of them, with the run's state."""
        await self._tell(message["payload"])

    async def run_status(self, message):
        """A run's status changed: its state row."""
        await self._tell(message["payload"])

    async def benchmark_changed(self, message):
        """The benchmark stage moved (progress) or ended: its state row."""
        await self._tell(message["payload"])

    async def discussion_changed(self, message):
        """A comment or a sign-off was added or removed: which, and on which run."""
        await self._tell(message["payload"])

    async def _tell(self, payload):
        if await self._still_allowed():
            await self.send_json(payload)

    async def _still_allowed(self, force=False):
        """Membership is checked again on a resync and, at most every few seconds, on
        events: removing someone from the team cuts off their open sockets too."""
        if not force and time.monotonic() - self.checked_at < ACCESS_RECHECK_SECONDS:
            return True
        allowed = await self._experiment(self.user, self.experiment.pk) is not None
        self.checked_at = time.monotonic()
        if not allowed:
            await self.close(code=CLOSE_NOT_FOUND)
        return allowed

    @database_sync_to_async
    def _experiment(self, user, pk):
        return Experiment.objects.for_user(user).filter(pk=pk).first()

    @database_sync_to_async
    def _snapshot(self):
        return experiment_snapshot(self.experiment)


class RunnersConsumer(HeartbeatConsumer):
    """Tells the runners page when a worker beat, so it re-reads the table."""

    group_name = "runners"

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def runners_changed(self, message):
        await self.send_json(message["payload"])
