"""Request bodies bounded before they are read.

Every request may carry ACCELWEB_MAX_BODY_BYTES; the upload endpoints allow
ACCELWEB_MAX_UPLOAD_BYTES more, but only to a logged-in user (a session or an API token),
so a stranger can never send more than the small limit. A body declared larger
(Content-Length) is refused with 413 before any of it is read; a body that streams past
the limit (chunked) is refused at the first chunk over it. The app sees an aborted
request in that case and its own answer is dropped.

This works because the ASGI server hands the body over in chunks as it arrives, with
flow control (uvicorn pauses reading past 64 KiB); a server that buffers the whole body
before calling the app (Daphne) would have paid for it already.
"""

import html
import json
from importlib import import_module

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http.cookie import parse_cookie
from django.urls import Resolver404, resolve

# URL names of the views that take a file: the pages' upload forms and the API's.
UPLOAD_VIEWS = frozenset({"dataset_list", "model_list", "api-dataset-list", "api-model-list"})


class BodyLimitMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        try:
            declared = _content_length(headers)
        except ValueError:
            return await _respond(scope, headers, send, 400, "The Content-Length header is "
                                  "not a number of bytes.")
        if declared is not None and declared <= settings.ACCELWEB_MAX_BODY_BYTES:
            limit = settings.ACCELWEB_MAX_BODY_BYTES  # no need to ask who is sending
        else:
            limit = await _limit(scope, headers)
        if declared is not None and declared > limit:
            return await _respond(scope, headers, send, 413,
                                  _message(scope, f"{declared:,} bytes", limit))

        received, refused, started = 0, False, False

        async def bounded_receive():
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            nonlocal started
            if refused and not started:
                return  # the app's answer to a body cut short; the 413 below replaces it
            started = True
            await send(message)

        await self.app(scope, bounded_receive, guarded_send)
        if refused and not started:
            await _respond(scope, headers, send, 413,
                           _message(scope, f"more than {limit:,} bytes", limit))


def _content_length(headers):
    value = headers.get(b"content-length")
    if value is None:
        return None
    length = int(value)
    if length < 0:
        raise ValueError(value)
    return length


def _is_upload(scope):
    if scope["method"] != "POST":
        return False
    try:
        return resolve(scope["path"]).url_name in UPLOAD_VIEWS
    except Resolver404:
        return False


async def _limit(scope, headers):
    if _is_upload(scope) and await sync_to_async(_signed_in)(headers):
        return settings.ACCELWEB_MAX_UPLOAD_BYTES + settings.ACCELWEB_MAX_BODY_BYTES
    return settings.ACCELWEB_MAX_BODY_BYTES


def _signed_in(headers) -> bool:
    """Whether the request's session or API token belongs to an active user."""
    from django.contrib.auth import get_user
    from django.http import HttpRequest
    from rest_framework.authtoken.models import Token

    authorization = headers.get(b"authorization", b"").decode("latin-1").split()
    if len(authorization) == 2 and authorization[0].lower() == "token":
        return Token.objects.filter(key=authorization[1], user__is_active=True).exists()
    cookies = parse_cookie(headers.get(b"cookie", b"").decode("latin-1"))
    key = cookies.get(settings.SESSION_COOKIE_NAME)
    if not key:
        return False
    request = HttpRequest()
    request.session = import_module(settings.SESSION_ENGINE).SessionStore(key)
    user = get_user(request)
    return user.is_authenticated and user.is_active


def _message(scope, size, limit):
    message = f"The request body is {size}; the limit here is {limit:,} bytes."
    if _is_upload(scope):
        upload = settings.ACCELWEB_MAX_UPLOAD_BYTES
        message += (f" Files of up to {upload:,} bytes can be uploaded once you are "
                    "logged in.")
    return message


async def _respond(scope, headers, send, status, message):
    wants_json = scope["path"].startswith("/api/") or \
        b"application/json" in headers.get(b"accept", b"")
    if wants_json:
        body, kind = json.dumps({"detail": message}).encode(), b"application/json"
    else:
        title = "Request too large" if status == 413 else "Bad request"
        body = (f"<!doctype html><title>{title}</title><h1>{title}</h1>"
                f"<p>{html.escape(message)}</p>").encode()
        kind = b"text/html; charset=utf-8"
    # Connection: close, so the server stops reading what the client still sends.
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
