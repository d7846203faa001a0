"""Request bodies bounded before they are read (accelweb.bodylimit), against the real server.

uvicorn serves the ASGI app on PostgreSQL and Redis, as in production. A hostile client
sends a 600 MB body to the login page, an upload page and the API, with and without a
login: each is refused with 413 and a message, the server's memory does not follow the
body (read from /proc), and /healthz answers meanwhile.
"""

import json
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from livestack import web_stack

from accelweb.bodylimit import BodyLimitMiddleware

MB = 1024 * 1024
HOSTILE = 600 * MB
MEMORY_BUDGET = 64 * MB
CHUNK = b"x" * MB


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory):
    with web_stack(tmp_path_factory.mktemp("limits")) as stack:
        yield stack


def _status_kb(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


class MemoryWatch:
    """The server's resident memory, sampled every 10 ms, and its peak (VmHWM) before and
    after: the growth is the larger of the two readings."""

    def __init__(self, pid):
        self.pid, self.samples, self._done = pid, [], threading.Event()

    def __enter__(self):
        self.rss_before = _status_kb(self.pid, "VmRSS")
        self.hwm_before = _status_kb(self.pid, "VmHWM")
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._done.is_set():
            self.samples.append(_status_kb(self.pid, "VmRSS"))
            time.sleep(0.01)

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self.growth = max(max(self.samples, default=0) - self.rss_before,
                          _status_kb(self.pid, "VmHWM") - self.hwm_before)


def _send_body(port, path, *, headers=(), chunked=False, total=HOSTILE, pace=0.0):
    """Send a POST of `total` bytes the way a hostile client does (the body keeps coming
    after the answer) and return (status, body) of the answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1",
             "Content-Type: application/x-www-form-urlencoded", *headers]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    answer = b""
    sent = 0
    sock.settimeout(0.5)
    try:
        while sent < total and b"\r\n\r\n" not in answer:
            chunk = CHUNK if not chunked else b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK)
            try:
                sock.sendall(chunk)
            except TimeoutError:
                pass  # the server stopped reading: what it should do
            sent += len(CHUNK)
            sock.setblocking(False)
            try:
                answer += sock.recv(65536)
            except BlockingIOError:
                pass
            sock.settimeout(0.5)
            time.sleep(pace)
    except (BrokenPipeError, ConnectionResetError):
        pass
    sock.settimeout(5)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    except (OSError, TimeoutError):
        pass
    sock.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head, f"no answer to a {total:,}-byte POST to {path}"
    return int(head.split()[1]), body


def _session_cookie(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"Cookie: sessionid={client.cookies['sessionid'].value}"


PATHS = ["/login/", "/datasets/", "/api/experiments/"]


@pytest.mark.fullstack
@pytest.mark.parametrize("logged_in", [False, True], ids=["anonymous", "logged-in"])
@pytest.mark.parametrize("path", PATHS)
def test_a_600_mb_body_is_refused_before_it_is_read(server, transactional_db, alice,
                                                    path, logged_in):
    headers = [_session_cookie(alice)] if logged_in else []
    with MemoryWatch(server.pid) as memory:
        status, body = _send_body(server.port, path, headers=headers)
    assert status == 413
    if path.startswith("/api/"):
        assert "the limit here is" in json.loads(body)["detail"]
    else:
        assert b"Request too large" in body and b"the limit here is" in body
    if path == "/datasets/" and not logged_in:
        assert b"once you are logged in" in body
    assert memory.growth <= MEMORY_BUDGET, f"the server grew {memory.growth / MB:.0f} MB"


@pytest.mark.fullstack
def test_a_streamed_body_is_cut_off_at_the_limit(server, transactional_db):
    from django.conf import settings

    with MemoryWatch(server.pid) as memory:
        status, body = _send_body(server.port, "/login/", chunked=True, total=200 * MB)
    assert status == 413
    assert f"more than {settings.ACCELWEB_MAX_BODY_BYTES:,} bytes".encode() in body
    assert memory.growth <= MEMORY_BUDGET, f"the server grew {memory.growth / MB:.0f} MB"


@pytest.mark.fullstack
def test_an_upload_within_the_limit_streams_and_the_server_still_answers(
        server, transactional_db, alice):
    """A logged-in member's 150 MB upload is read to the end (then refused as no .npz):
    memory stays flat, and /healthz answers within a second while it is in flight."""
    boundary = "accelwebboundary"
    csrf = "a" * 32  # a made-up token, as an attacker's; the member's session is real
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; '
             f'name="csrfmiddlewaretoken"\r\n\r\n{csrf}\r\n',
             f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nbig\r\n',
             f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
             f'filename="big.npz"\r\nContent-Type: application/octet-stream\r\n\r\n']
    head = "".join(parts).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = 150 * MB
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall((f"POST /datasets/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  f"{_session_cookie(alice)}; csrftoken={csrf}"
                  f"\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
                  f"Content-Length: {len(head) + size + len(tail)}\r\n\r\n").encode() + head)
    probes = []

    def probe():
        started = time.monotonic()
        with urllib.request.urlopen(server.url + "healthz", timeout=5) as response:
            assert response.status == 200
        probes.append(time.monotonic() - started)

    with MemoryWatch(server.pid) as memory:
        for index in range(size // MB):
            sock.sendall(CHUNK)
            if index % 30 == 0:
                probe()
        sock.sendall(tail)
        probe()
        sock.settimeout(120)
        answer = b""
        while b"not a usable .npz dataset" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    sock.close()
    # The whole file reached the form, which read it from disk and refused it.
    assert answer.split()[1] == b"400"
    assert b"not a usable .npz dataset" in answer
    assert len(probes) >= 5 and max(probes) < 1.0, probes
    assert memory.growth <= MEMORY_BUDGET, f"the server grew {memory.growth / MB:.0f} MB"


# --- the middleware alone ---------------------------------------------------------------

@async_to_sync
async def _ask(app, path, headers, chunks):
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    communicator = ApplicationCommunicator(BodyLimitMiddleware(app), scope)
    for chunk in chunks[:-1]:
        await communicator.send_input({"type": "http.request", "body": chunk,
                                       "more_body": True})
    await communicator.send_input({"type": "http.request", "body": chunks[-1]})
    start = await communicator.receive_output(timeout=5)
    body = await communicator.receive_output(timeout=5)
    return start["status"], dict(start["headers"]), body["body"]


async def _echo(scope, receive, send):
    """An app that reads the whole body, as Django does, and answers with its length."""
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message["body"])
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def test_the_middleware_passes_a_body_within_the_limit(settings):
    settings.ACCELWEB_MAX_BODY_BYTES = 100
    assert _ask(_echo, "/login/", [], [b"a" * 60, b"a" * 40]) == (200, {}, b"100")


def test_the_middleware_refuses_a_declared_or_streamed_excess(settings):
    settings.ACCELWEB_MAX_BODY_BYTES = 100
    status, headers, body = _ask(_echo, "/api/experiments/",
                                       [(b"content-length", b"101")], [b""])
    assert status == 413 and headers[b"content-type"] == b"application/json"
    assert json.loads(body)["detail"] == ("The request body is 101 bytes; the limit here is "
                                          "100 bytes.")
    # No Content-Length: the app reads until the limit, then sees the client gone; its own
    # answer never goes out, the 413 does.
    status, headers, body = _ask(_echo, "/login/", [], [b"a" * 60, b"a" * 60])
    assert status == 413 and b"more than 100 bytes" in body
    assert headers[b"connection"] == b"close"


def test_a_bad_content_length_is_a_400():
    status, _, body = _ask(_echo, "/api/experiments/", [(b"content-length", b"-1")],
                                 [b""])
    assert status == 400 and b"Content-Length" in body
