"""The embedded default's channel layer.

`manage.py up` serves the web app and runs a Celery worker thread in one process, so the
in-process layer suffices, except that Channels' InMemoryChannelLayer is not thread-safe:
its queues belong to the web server's event loop, and a put from the runner thread's loop
would not wake that loop. This subclass hands sends from other threads to the loop the
consumers receive on.
"""

import asyncio

from channels.layers import InMemoryChannelLayer


class EmbeddedChannelLayer(InMemoryChannelLayer):
    _home_loop = None

    async def receive(self, channel):
        self._home_loop = asyncio.get_running_loop()
        return await super().receive(channel)

    async def group_add(self, group, channel):
        self._home_loop = asyncio.get_running_loop()
        return await super().group_add(group, channel)

    async def group_send(self, group, message):
        home = self._home_loop
        if home is None or home.is_closed() or home is asyncio.get_running_loop():
            return await super().group_send(group, message)
        future = asyncio.run_coroutine_threadsafe(super().group_send(group, message), home)
        return await asyncio.wrap_future(future)
