"""The permission matrix: every URL name of the site and of the API, and both websockets,
for an anonymous visitor, a viewer, a member and an admin of Alice's team, and Charlie,
who belongs to another team.

Roles: a viewer reads and comments; a member also creates, runs, cancels and signs off;
an admin also manages members. Another team's object is a 404, so its ids look like
missing ones. A URL added without a row here fails test_it_covers_every_url_name.
"""

import json

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.urls import get_resolver, reverse
from rest_framework.authtoken.models import Token
from test_consumer import ORIGIN, TIMEOUT, session_cookie

from experiments.consumers import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED
from experiments.models import (
    Comment,
    Dataset,
    Experiment,
    Membership,
    Recipe,
    Run,
    SignOff,
    UploadedModel,
    WithdrawnSignOff,
)
from experiments.spec import validate_spec

ROLES = ("anonymous", "viewer", "member", "admin", "stranger")
LOGIN = "login"  # a redirect to the login page

# The expected answer for each role, in ROLES order.
PAGE = (LOGIN, 200, 200, 200, 200)  # a page over the user's own teams
TEAM_READ = (LOGIN, 200, 200, 200, 404)  # one of Alice's team's objects
TEAM_CHANGE = (LOGIN, 403, 302, 302, 404)  # members and admins change it
TEAM_COMMENT = (LOGIN, 302, 302, 302, 404)  # viewers may comment
ADMIN_ONLY = (LOGIN, 403, 403, 302, 404)  # the team's admins (not the author or approver)
API_LIST = (401, 200, 200, 200, 200)  # Charlie gets his own (empty) list
API_READ = (401, 200, 200, 200, 404)
API_CHANGE = (401, 403, 200, 200, 404)
API_CREATE = (401, 403, 201, 201, 400)  # Charlie names a team that is not his
API_DELETE = (401, 403, 204, 204, 404)
API_COMMENT = (401, 201, 201, 201, 400)  # viewers may comment; Charlie names a stranger's
API_ADMIN = (401, 403, 403, 200, 404)
API_ADMIN_CREATE = (401, 403, 403, 201, 404)
API_ADMIN_DELETE = (401, 403, 403, 204, 404)  # the team's admins (not the author or approver)
# The run was signed off already: members get as far as the state check (409).
API_SIGNOFF = (401, 403, 409, 409, 400)
PUBLIC = (200, 200, 200, 200, 200)
# A run is still queued: members get as far as the state check (409).
API_REBENCHMARK = (401, 403, 409, 409, 404)

# The new-experiment form's fields, as its advice endpoint takes them.
ADVICE_FORM = {"name": "advised", "team": "{team}", "hardware": "cpu", "arch": "seed_mlp",
               "dataset": "digits", "epochs": 1, "batch_size": 64, "optimizer": "adam",
               "learning_rate": 0.001, "seed": 0}
# Advice reads nothing of the team's but its uploads; Charlie's form names a team not his.
ADVICE = (LOGIN, 200, 200, 200, 400)

SPEC = {"name": "from the API", "model": {"arch": "seed_mlp"}, "dataset": {"name": "digits"},
        "training": {"epochs": 1}, "team": "{team}"}

# (URL name, method, URL kwargs, data, expected). URL kwargs naming an object of the world
# ("experiment") become its id; "{team}" in the data is formatted with the ids.
MATRIX = [
    ("home", "get", {}, {}, PAGE),
    ("experiment_list", "get", {}, {}, PAGE),
    ("experiment_new", "get", {}, {}, PAGE),
    ("experiment_advice", "post", {}, ADVICE_FORM, ADVICE),
    ("recipe_list", "get", {}, {}, PAGE),
    ("dataset_list", "get", {}, {}, PAGE),
    ("model_list", "get", {}, {}, PAGE),
    ("runner_list", "get", {}, {}, PAGE),
    ("runner_table", "get", {}, {}, PAGE),
    ("team_list", "get", {}, {}, PAGE),
    ("compare", "get", {}, {"runs": "{recipe_run}"}, TEAM_READ),
    ("experiment_detail", "get", {"pk": "experiment"}, {}, TEAM_READ),
    ("experiment_results", "get", {"pk": "experiment"}, {}, TEAM_READ),
    ("experiment_curves", "get", {"pk": "experiment"}, {}, TEAM_READ),
    ("experiment_spec", "get", {"pk": "experiment"}, {}, TEAM_READ),
    ("experiment_export", "get", {"pk": "experiment", "fmt": "csv"}, {}, TEAM_READ),
    ("experiment_report", "get", {"pk": "experiment"}, {}, TEAM_READ),
    ("run_detail", "get", {"pk": "recipe_run"}, {}, TEAM_READ),
    ("run_artifact", "get", {"pk": "recipe_run", "name": "model.keras"}, {}, TEAM_READ),
    ("experiment_rebenchmark", "post", {"pk": "experiment"}, {}, TEAM_CHANGE),
    ("run_cancel", "post", {"pk": "queued_run"}, {}, TEAM_CHANGE),
    ("run_rerun", "post", {"pk": "recipe_run"}, {}, TEAM_CHANGE),
    ("run_save_recipe", "post", {"pk": "recipe_run"}, {"name": "saved"}, TEAM_CHANGE),
    ("run_signoff", "post", {"pk": "recipe_run"}, {}, TEAM_CHANGE),
    ("recipe_delete", "post", {"pk": "recipe"}, {}, TEAM_CHANGE),
    ("comment_add", "post", {"pk": "experiment"}, {"body": "Looks real."}, TEAM_COMMENT),
    ("comment_delete", "post", {"pk": "comment"}, {}, ADMIN_ONLY),
    ("signoff_revoke", "post", {"pk": "signoff"}, {}, ADMIN_ONLY),
    ("team_member_add", "post", {"pk": "team"},
     {"team{team}-username": "erin", "team{team}-role": "viewer"}, ADMIN_ONLY),
    ("team_member_update", "post", {"pk": "team", "membership_id": "viewer_membership"},
     {"role": "member"}, ADMIN_ONLY),
    # The REST API (token authentication; a browser session works too).
    ("api-schema", "get", {}, {}, PUBLIC),
    ("api-team-list", "get", {}, {}, API_LIST),
    ("api-experiment-list", "get", {}, {}, API_LIST),
    ("api-experiment-list", "post", {}, SPEC, API_CREATE),
    ("api-experiment-detail", "get", {"pk": "experiment"}, {}, API_READ),
    ("api-run-list", "get", {}, {}, API_LIST),
    ("api-run-detail", "get", {"pk": "recipe_run"}, {}, API_READ),
    ("api-run-metrics", "get", {"pk": "recipe_run"}, {}, API_READ),
    ("api-experiment-rebenchmark", "post", {"pk": "experiment"}, {}, API_REBENCHMARK),
    ("api-run-cancel", "post", {"pk": "queued_run"}, {}, API_CHANGE),
    ("api-run-rerun", "post", {"pk": "recipe_run"}, {}, API_CHANGE),
    ("api-recipe-list", "get", {}, {}, API_LIST),
    ("api-recipe-list", "post", {},
     {"name": "int8", "team": "{team}", "steps": [{"technique": "ptq"}]}, API_CREATE),
    ("api-recipe-detail", "get", {"pk": "recipe"}, {}, API_READ),
    ("api-recipe-detail", "delete", {"pk": "recipe"}, {}, API_DELETE),
    ("api-dataset-list", "get", {}, {}, API_LIST),
    ("api-dataset-detail", "get", {"pk": "dataset"}, {}, API_READ),
    ("api-model-list", "get", {}, {}, API_LIST),
    ("api-model-detail", "get", {"pk": "model"}, {}, API_READ),
    ("api-comment-list", "get", {}, {}, API_LIST),
    ("api-comment-list", "post", {}, {"experiment": "{experiment}", "body": "Real."},
     API_COMMENT),
    ("api-comment-detail", "get", {"pk": "comment"}, {}, API_READ),
    ("api-comment-detail", "delete", {"pk": "comment"}, {}, API_ADMIN_DELETE),
    ("api-signoff-list", "get", {}, {}, API_LIST),
    ("api-signoff-list", "post", {}, {"run": "{recipe_run}"}, API_SIGNOFF),
    ("api-signoff-detail", "get", {"pk": "signoff"}, {}, API_READ),
    ("api-signoff-withdrawn", "get", {}, {}, API_LIST),
    ("api-signoff-detail", "delete", {"pk": "signoff"}, {}, API_ADMIN_DELETE),
    ("api-compare", "get", {}, {"runs": "{recipe_run}"}, API_READ),
    ("api-team-members", "get", {"pk": "team"}, {}, API_READ),
    ("api-team-members", "post", {"pk": "team"}, {"username": "erin", "role": "viewer"},
     API_ADMIN_CREATE),
    ("api-team-member", "patch", {"pk": "team", "membership_id": "viewer_membership"},
     {"role": "member"}, API_ADMIN),
    ("api-team-member", "delete", {"pk": "team", "membership_id": "viewer_membership"}, {},
     API_ADMIN_DELETE),
]
# The health check answers load balancers without a login (it says only whether each part
# is up); login and logout are django.contrib.auth's.
EXEMPT = {"healthz", "login", "logout"}


@pytest.fixture
def world(alice, alice_team, bob, charlie, django_user_model):
    member = django_user_model.objects.create_user(username="dave")
    Membership.objects.create(team=alice_team, user=member, role=Membership.Role.MEMBER)
    django_user_model.objects.create_user(username="erin")
    spec = validate_spec({
        "name": "matrix", "model": {"arch": "seed_mlp"}, "dataset": {"name": "digits"},
        "training": {"epochs": 1},
        "recipes": [{"name": "XLA", "steps": [{"technique": "xla"}]},
                    {"name": "int8", "steps": [{"technique": "ptq"}]}],
    }, team=alice_team)
    experiment = Experiment.objects.create(team=alice_team, name="matrix", spec=spec,
                                           created_by=alice)
    result = {"test_accuracy": 0.9, "train_samples_per_s": 100.0,
              "fingerprint": {"cpu_model": "Xeon", "logical_cores": 2}}
    Run.objects.create(experiment=experiment, name="baseline", position=0, steps=[],
                       status=Run.Status.SUCCEEDED, result=result)
    recipe_run = Run.objects.create(
        experiment=experiment, name="XLA", position=1, steps=spec["recipes"][0]["steps"],
        status=Run.Status.SUCCEEDED,
        result={**result, "train_samples_per_s": 150.0, "artifacts": ["model.keras"]},
    )
    recipe_run.artifacts_dir.mkdir(parents=True)
    (recipe_run.artifacts_dir / "model.keras").write_bytes(b"PK")
    queued_run = Run.objects.create(experiment=experiment, name="int8", position=2,
                                    steps=spec["recipes"][1]["steps"])
    ids = {
        "experiment": experiment.pk, "recipe_run": recipe_run.pk, "queued_run": queued_run.pk,
        "team": alice_team.pk,
        "viewer_membership": Membership.objects.get(user=bob, team=alice_team).pk,
        "recipe": Recipe.objects.create(team=alice_team, name="xla",
                                        steps=[{"technique": "xla"}]).pk,
        "dataset": Dataset.objects.create(
            team=alice_team, name="blobs", file="datasets/blobs.npz", input_shape=[8, 8, 1],
            num_classes=3, train_samples=90, test_samples=30, size_bytes=1234).pk,
        "model": UploadedModel.objects.create(
            team=alice_team, name="digits mlp", file="models/digits.keras",
            input_shape=[8, 8, 1], num_classes=10, params=1210, layers=3, size_bytes=1234).pk,
        "comment": Comment.objects.create(experiment=experiment, author=alice,
                                          body="First.").pk,
        "signoff": SignOff.objects.create(experiment=experiment, run=recipe_run,
                                          approved_by=alice, model_label="seed_mlp on digits",
                                          evidence={}).pk,
    }
    WithdrawnSignOff.objects.create(experiment=experiment, run=recipe_run, approved_by=alice,
                                    approved_at=recipe_run.created_at, evidence={},
                                    model_label="seed_mlp on digits", reason="revoked")
    users = {"anonymous": None, "viewer": bob, "member": member, "admin": alice,
             "stranger": charlie}
    return ids, users


def _fill(value, ids):
    """The data with "{name}" placeholders formatted with the world's ids."""
    if isinstance(value, dict):
        return {_fill(key, ids): _fill(item, ids) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, ids) for item in value]
    if isinstance(value, str) and "{" in value:
        filled = value.format(**ids)
        return int(filled) if filled.isdigit() else filled
    return value


def _request(client, name, method, kwargs, data, ids):
    url = reverse(name, kwargs={key: ids.get(value, value) for key, value in kwargs.items()})
    data = _fill(data, ids)
    if name.startswith("api-") and method != "get":
        return getattr(client, method)(url, json.dumps(data), content_type="application/json")
    return getattr(client, method)(url, data)


def _client(user, api):
    client = Client()
    if user is not None:
        if api:
            token = Token.objects.create(user=user)
            client.defaults["HTTP_AUTHORIZATION"] = f"Token {token.key}"
        else:
            client.force_login(user)
    return client


def test_it_covers_every_url_name():
    names = {name for name in get_resolver().reverse_dict if isinstance(name, str)}
    covered = {row[0] for row in MATRIX}
    assert names - covered - EXEMPT == set()
    assert covered - names == set()


@pytest.mark.django_db
@pytest.mark.parametrize("row", MATRIX, ids=[f"{row[0]}-{row[1]}" for row in MATRIX])
@pytest.mark.parametrize("role", ROLES)
def test_it_enforces_roles(row, role, world):
    ids, users = world
    name, method, kwargs, data, expected_by_role = row
    client = _client(users[role], api=name.startswith("api-"))

    response = _request(client, name, method, kwargs, data, ids)

    expected = expected_by_role[ROLES.index(role)]
    if expected == LOGIN:
        assert response.status_code == 302, response.status_code
        assert response["Location"].startswith(reverse("login")), response["Location"]
        return
    assert response.status_code == expected, (response.status_code, response.content[:300])
    if response.status_code == 302:
        assert not response["Location"].startswith(reverse("login"))
    if name.endswith(("-list", "-withdrawn")) and method == "get" and role == "stranger":
        # Nothing of Alice's team leaks into Charlie's lists; his API lists are empty, but
        # for his own team.
        assert "Alice" not in response.content.decode()
        if name.startswith("api-") and name != "api-team-list":
            assert response.json()["results"] == []


def _ws_connect(path, user):
    from accelweb.asgi import application

    headers = [ORIGIN] + ([session_cookie(user)] if user is not None else [])

    async def attempt():
        ws = WebsocketCommunicator(application, path, headers=headers)
        outcome = await ws.connect(timeout=TIMEOUT)
        await ws.disconnect()
        return outcome

    return async_to_sync(attempt)()


WEBSOCKETS = {
    "experiment": ((False, CLOSE_UNAUTHENTICATED), (True, None), (True, None), (True, None),
                   (False, CLOSE_NOT_FOUND)),
    "runners": ((False, CLOSE_UNAUTHENTICATED), (True, None), (True, None), (True, None),
                (True, None)),
}


# The consumers read the database from worker threads: the rows must be committed.
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
@pytest.mark.parametrize("socket", sorted(WEBSOCKETS))
def test_it_enforces_roles_on_the_websockets(socket, world):
    ids, users = world
    path = (f"/ws/experiments/{ids['experiment']}/" if socket == "experiment"
            else "/ws/runners/")
    outcomes = [_ws_connect(path, users[role]) for role in ROLES]
    assert outcomes == list(WEBSOCKETS[socket])
