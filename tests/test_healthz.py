from django.db import OperationalError
from django.urls import reverse

from experiments.views import pages as views


def test_it_says_every_part_answers(client, db):
    # Whatever the mode: SQLite, the filesystem broker and the in-process layer, or
    # PostgreSQL and Redis when DATABASE_URL and REDIS_URL are set.
    response = client.get(reverse("healthz"))

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok", "database": "ok", "broker": "ok", "channel_layer": "ok",
    }


def test_it_needs_no_login(client, db):
    assert client.get(reverse("healthz")).status_code == 200


def test_it_answers_503_when_the_database_fails(client, db, monkeypatch):
    def broken():
        raise OperationalError("connection refused")

    monkeypatch.setattr(views, "_check_database", broken)

    response = client.get(reverse("healthz"))

    assert response.status_code == 503
    assert response.json() == {
        "status": "degraded", "database": "error: OperationalError", "broker": "ok",
        "channel_layer": "ok",
    }


def test_it_answers_503_when_the_broker_fails(client, db, monkeypatch):
    def broken():
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    monkeypatch.setattr(views, "_check_broker", broken)

    response = client.get(reverse("healthz"))

    assert response.status_code == 503
    assert response.json()["broker"] == "error: ConnectionRefusedError"
    assert response.json()["database"] == "ok"


def test_it_does_not_leak_the_error_text(client, db, monkeypatch):
    # Public endpoint: the type of the failure, never its message (hosts, passwords).
    def broken():
        raise OperationalError('password authentication failed for user "postgres"')

    monkeypatch.setattr(views, "_check_database", broken)

    response = client.get(reverse("healthz"))

    assert "password" not in response.content.decode()


def test_it_refuses_post(client, db):
    assert client.post(reverse("healthz")).status_code == 405
