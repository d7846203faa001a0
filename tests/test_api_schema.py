"""Property-based checks of the REST API against its own OpenAPI schema (schemathesis).

The app is called in-process through WSGI, inside the test's transaction: an experiment
the generator manages to create is queued on commit, and the transaction never commits,
so no run is ever sent to a broker or trained.

Schemathesis draws NUL but never a lone surrogate (it cannot encode one for the wire);
a JSON client can send one as an escape ("\\ud800"), so the JSON bodies get them mixed
into their text here. The 10 MB strings are tests/test_hostile_text.py's, one per field."""

import json

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error

# Loaded at import (schemathesis.pytest.from_fixture reads a node attribute pytest 9 no
# longer has); the schema view reads no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())

# Ids of Alice's objects, by the path they are found under; filled in by `alice_things`.
KNOWN_IDS: dict[str, list[int]] = {}


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    # Random ids find nothing (404); mix in ids that exist, so the views behind them run.
    path = context.operation.path
    known = next((ids for prefix, ids in KNOWN_IDS.items()
                  if path.startswith(prefix) and "{id}" in path), [])
    return st.sampled_from([path_parameters,
                            *({**(path_parameters or {}), "id": pk} for pk in known)])


# Mixed into a JSON body's text; json.dumps escapes them on the way, as a client's would.
LONE_SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udbffb", "\udc00\x00"])


def with_lone_surrogates(value):
    """The value, or the value with a lone surrogate added to some of its strings."""
    if isinstance(value, str):
        return st.just(value) | LONE_SURROGATES.map(lambda bad: value + bad)
    if isinstance(value, dict):
        return st.fixed_dictionaries({key: with_lone_surrogates(item)
                                      for key, item in value.items()})
    if isinstance(value, list):
        return st.tuples(*map(with_lone_surrogates, value)).map(list)
    return st.just(value)


def hostile_body(case, data):
    """The case's JSON body, sometimes with lone surrogates in its text, to send in its
    place (changing case.body would have schemathesis revalidate it, and its validator
    refuses such strings). A form or multipart body is sent as UTF-8: none there."""
    if case.media_type != "application/json" or not isinstance(case.body, (dict, list)):
        return {}
    body = data.draw(with_lone_surrogates(case.body), label="body")
    event(f"lone surrogate sent: {json.dumps(body) != json.dumps(case.body)}")
    return {"json": body}


@pytest.fixture
def in_test_transaction(db):
    """Requests through the WSGI handler must not close the test's database connection
    (Django's test client disconnects the same handler for the same reason)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def alice_token(alice):
    return Token.objects.create(user=alice).key


@pytest.fixture
def alice_things(alice_team, alice, make_experiment, make_dataset):
    from experiments.models import Comment, Recipe, RunEvent, SignOff, UploadedModel

    experiment = make_experiment(team=alice_team, user=alice,
                                 recipes=[{"name": "XLA", "steps": [{"technique": "xla"}]}])
    runs = list(experiment.runs.all())
    RunEvent.objects.bulk_create(
        RunEvent(run=runs[0], seq=epoch, kind="epoch",
                 data={"event": "epoch", "epoch": epoch, "loss": 1 / epoch, "seconds": 0.1})
        for epoch in range(1, 51)
    )
    runs[1].status = "failed"
    runs[1].save()
    comment = Comment.objects.create(experiment=experiment, run=runs[0], author=alice,
                                     body="**Looks** real.")
    signoff = SignOff.objects.create(experiment=experiment, run=runs[0], approved_by=alice,
                                     model_label="seed_mlp on digits", evidence={})
    uploaded = UploadedModel.objects.create(
        team=alice_team, name="digits mlp", file="models/digits.keras", input_shape=[8, 8, 1],
        num_classes=10, params=1210, layers=3, size_bytes=1234)
    recipe = Recipe.objects.create(team=alice_team, name="xla", steps=[{"technique": "xla"}])
    KNOWN_IDS.clear()
    KNOWN_IDS.update({
        "/api/experiments/": [experiment.pk],
        "/api/runs/": [run.pk for run in runs],
        "/api/recipes/": [recipe.pk],
        "/api/datasets/": [make_dataset(team=alice_team).pk],
        "/api/models/": [uploaded.pk],
        "/api/comments/": [comment.pk],
        "/api/signoffs/": [signoff.pk],
        "/api/teams/": [alice_team.pk],
    })
    yield
    KNOWN_IDS.clear()


@schema.parametrize()
@schema.given(data=st.data())
@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_the_api_never_answers_with_a_server_error(case, data, in_test_transaction, alice_token,
                                                   alice_things):
    case.call_and_validate(headers={"Authorization": f"Token {alice_token}"},
                           checks=[not_a_server_error], **hostile_body(case, data))
