"""Hostile text in every text field of every form page and API endpoint: a NUL, a 10 MB
string and, where the text can carry one, a lone surrogate. Each is refused with a message
that names the field or the rule; never a 500, never a row stored or changed.

A form post cannot carry a lone surrogate (Django decodes the body with errors="replace"),
except inside a field that holds JSON text ("\\ud800" is an escape of plain ASCII); a JSON
body can carry one anywhere.
"""

import io
import json
import re

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from experiments.models import (
    Comment,
    Dataset,
    Experiment,
    Membership,
    Recipe,
    SignOff,
    UploadedModel,
)

SURROGATE = "a\ud800b"
NUL = "a\x00b"
HUGE = "x" * 10_000_000
BAD = {"surrogate": SURROGATE, "nul": NUL, "10MB": HUGE}
# What a refusal of such text says: the rule it breaks (or the choices there are).
RULE = re.compile(r"null|surrogate|at most|no more than|longer than|limit|too long|one of"
                  r"|choose", re.IGNORECASE)


def npz_file():
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buffer, x_train=rng.random((30, 8, 8, 1), dtype=np.float32),
             y_train=np.arange(30) % 3, x_test=rng.random((9, 8, 8, 1), dtype=np.float32),
             y_test=np.arange(9) % 3)
    return SimpleUploadedFile("d.npz", buffer.getvalue())


@pytest.fixture
def world(alice, alice_team, make_experiment):
    """Alice's experiment with a recipe run, and Frank, a viewer she can promote."""
    experiment = make_experiment(team=alice_team, user=alice,
                                 recipes=[{"name": "XLA", "steps": [{"technique": "xla"}]}])
    frank = get_user_model().objects.create_user("frank")
    member = Membership.objects.create(team=alice_team, user=frank, role=Membership.Role.VIEWER)
    return {"team": alice_team, "experiment": experiment, "member": member,
            "run": experiment.runs.get(name="XLA")}


def rows():
    """What a refused request must leave as it was."""
    return {
        "experiments": Experiment.objects.count(), "recipes": Recipe.objects.count(),
        "datasets": Dataset.objects.count(), "models": UploadedModel.objects.count(),
        "comments": Comment.objects.count(), "signoffs": SignOff.objects.count(),
        "members": list(Membership.objects.order_by("pk").values_list("user_id", "role")),
    }


def spec(**values):
    return {"name": "hostile", "model": {"arch": "seed_mlp"}, "dataset": {"name": "digits"},
            "training": {"epochs": 1, "batch_size": 64}, **values}


def one_recipe(name):
    return [{"name": name, "steps": [{"technique": "xla"}]}]


TEAM_MEMBERS = "/api/teams/{id}/members/"
TEAM_MEMBER = "/api/teams/{id}/members/{membership_id}/"
# case: (method, path as the schema names it, JSON body around the bad value, where the
# message is keyed)
API = {
    "experiment name": ("post", "/api/experiments/", lambda v: spec(name=v), "name"),
    "experiment hardware": ("post", "/api/experiments/", lambda v: spec(hardware=v),
                            "hardware"),
    "experiment gpu model": ("post", "/api/experiments/",
                             lambda v: spec(hardware="gpu", gpu_model=v), "gpu_model"),
    "experiment recipe name": ("post", "/api/experiments/",
                               lambda v: spec(recipes=one_recipe(v)), "recipes.0.name"),
    "recipe name": ("post", "/api/recipes/",
                    lambda v: {"name": v, "steps": [{"technique": "xla"}]}, "name"),
    "recipe description": ("post", "/api/recipes/",
                           lambda v: {"name": "r", "description": v,
                                      "steps": [{"technique": "xla"}]}, "description"),
    "recipe step": ("post", "/api/recipes/",
                    lambda v: {"name": "r", "steps": [{"technique": v}]}, "steps"),
    "member username": ("post", TEAM_MEMBERS, lambda v: {"username": v}, "username"),
    "member role": ("post", TEAM_MEMBERS, lambda v: {"username": "frank", "role": v}, "role"),
    "member role change": ("patch", TEAM_MEMBER, lambda v: {"role": v}, "role"),
    "comment body": ("post", "/api/comments/", lambda v: {"experiment": "{experiment}",
                                                          "body": v}, "body"),
    "sign-off note": ("post", "/api/signoffs/", lambda v: {"run": "{run}", "note": v}, "note"),
}
# Multipart, which no lone surrogate survives: (path, the file to send along).
UPLOADS = {
    "dataset name": ("/api/datasets/", npz_file),
    "model name": ("/api/models/", lambda: None),
}


def ids(world):
    return {"id": world["team"].pk, "membership_id": world["member"].pk,
            "{experiment}": world["experiment"].pk, "{run}": world["run"].pk}


def with_ids(body, world):
    # Ids are only known once the world is built; the table names them as "{run}".
    return {key: ids(world).get(value, value) if isinstance(value, str) else value
            for key, value in body.items()}


def assert_refused(messages):
    assert messages, "no message"
    assert any(RULE.search(message) for message in messages), messages
    # Not the value sent back: a message may be kept in the session or a log.
    assert all(len(message) < 20_000 for message in messages), [m[:200] for m in messages]


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("case", API)
def test_the_api_refuses_bad_text(api, alice, world, case, bad):
    method, path, body, field = API[case]
    before = rows()

    # json.dumps escapes the surrogate, as a client's JSON would (the test client's own
    # renderer would refuse to encode it).
    response = getattr(api(alice), method)(path.format(**ids(world)),
                                           json.dumps(with_ids(body(BAD[bad]), world)),
                                           content_type="application/json")

    assert response.status_code == 400, response.content[:300]
    assert_refused(response.json().get(field))
    assert rows() == before


@pytest.mark.parametrize("bad", ["nul", "10MB"])
@pytest.mark.parametrize("case", UPLOADS)
def test_the_api_refuses_bad_text_in_an_upload(api, alice, world, case, bad):
    path, upload = UPLOADS[case]
    data = {"name": BAD[bad], "team": world["team"].pk}
    if upload() is not None:
        data["file"] = upload()
    before = rows()

    response = api(alice).post(path, data, format="multipart")

    assert response.status_code == 400, response.content[:300]
    assert_refused(response.json().get("name"))
    assert rows() == before


@pytest.mark.parametrize("bad", ["nul", "10MB"])
def test_the_api_refuses_bad_text_in_a_query(api, alice, world, bad):
    response = api(alice).get("/api/runs/", {"status": BAD[bad]})

    assert response.status_code == 400
    assert_refused(response.json()["status"])


def schema_text_fields(schema):
    """(method, path, field) of each text property of a request body in the schema."""
    def resolve(item):
        item = (item.get("allOf") or [item])[0]
        if "$ref" in item:
            return schema["components"]["schemas"][item["$ref"].rsplit("/", 1)[1]]
        return item

    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            for media in content.values():
                for field, item in resolve(media["schema"]).get("properties", {}).items():
                    item = resolve(item)
                    if item.get("type") == "string" and item.get("format") not in ("binary",
                                                                                   "uri"):
                        yield method, path, field


def test_every_text_field_of_the_api_is_tried(client, db):
    # A new text field in a request body needs its case above.
    schema = client.get("/api/schema/?format=json").json()
    tried = ({(method, path, field) for method, path, _, field in API.values()}
             | {("post", path, "name") for path, _ in UPLOADS.values()})

    assert set(schema_text_fields(schema)) - tried == set()


def experiment_form(w, **fields):
    return {"name": "hostile", "team": w["team"].pk, "arch": "seed_mlp", "dataset": "digits",
            "epochs": 1, "batch_size": 64, "optimizer": "adam", "learning_rate": 0.001,
            "seed": 0, "hardware": "cpu", **fields}


def recipe_form(w, **fields):
    return {"name": "r", "team": w["team"].pk, "steps_json": '[{"technique": "xla"}]',
            **fields}


def steps_json(value):
    # json.dumps escapes the surrogate and the NUL: plain ASCII that a form post carries.
    return json.dumps([{"technique": value}])


def recipes_json(value):
    return json.dumps(one_recipe(value))


# (case, url, form data with the bad value, the field whose error is shown, JSON text?)
# Pages that re-render the form answer 400 with the error under the field; the others
# redirect with the error as a message (field None).
PAGES = {
    "experiment name": (lambda w: reverse("experiment_new"),
                        lambda w, v: experiment_form(w, name=v), "name", False),
    "experiment recipes": (lambda w: reverse("experiment_new"),
                           lambda w, v: experiment_form(w, recipes_json=recipes_json(v)),
                           "recipes_json", True),
    "recipe name": (lambda w: reverse("recipe_list"),
                    lambda w, v: recipe_form(w, name=v), "name", False),
    "recipe description": (lambda w: reverse("recipe_list"),
                           lambda w, v: recipe_form(w, description=v), "description", False),
    "recipe steps": (lambda w: reverse("recipe_list"),
                     lambda w, v: recipe_form(w, steps_json=steps_json(v)), "steps_json",
                     True),
    "saved recipe name": (lambda w: reverse("run_save_recipe", args=[w["run"].pk]),
                          lambda w, v: {"name": v}, None, False),
    "saved recipe description": (lambda w: reverse("run_save_recipe", args=[w["run"].pk]),
                                 lambda w, v: {"name": "r", "description": v}, None, False),
    "dataset name": (lambda w: reverse("dataset_list"),
                     lambda w, v: {"name": v, "team": w["team"].pk, "file": npz_file()},
                     "name", False),
    "model name": (lambda w: reverse("model_list"),
                   lambda w, v: {"name": v, "team": w["team"].pk}, "name", False),
    "comment body": (lambda w: reverse("comment_add", args=[w["experiment"].pk]),
                     lambda w, v: {"body": v}, "body", False),
    "sign-off note": (lambda w: reverse("run_signoff", args=[w["run"].pk]),
                      lambda w, v: {"note": v}, None, False),
    "member username": (lambda w: reverse("team_member_add", args=[w["team"].pk]),
                        lambda w, v: {f"team{w['team'].pk}-username": v,
                                      f"team{w['team'].pk}-role": "member"}, None, False),
    "member role": (lambda w: reverse("team_member_add", args=[w["team"].pk]),
                    lambda w, v: {f"team{w['team'].pk}-username": "frank",
                                  f"team{w['team'].pk}-role": v}, None, False),
    "member role change": (lambda w: reverse("team_member_update",
                                             args=[w["team"].pk, w["member"].pk]),
                           lambda w, v: {"role": v}, None, False),
}
PAGE_CASES = [(case, bad) for case, (*_, json_text) in PAGES.items()
              for bad in BAD if json_text or bad != "surrogate"]


def form_errors(response, field):
    for context in response.context:
        for form in context.flatten().values():
            errors = getattr(form, "errors", None)
            if hasattr(form, "is_bound") and errors and field in errors:
                return errors[field]
    return []


@pytest.mark.parametrize(("case", "bad"), PAGE_CASES)
def test_the_pages_refuse_bad_text(client, alice, world, case, bad):
    url, data, field, _ = PAGES[case]
    client.force_login(alice)
    before = rows()

    response = client.post(url(world), data(world, BAD[bad]))

    if field is None:
        assert response.status_code == 302
        assert_refused([str(m) for m in get_messages(response.wsgi_request)
                        if m.level_tag == "error"])
    else:
        assert response.status_code == 400
        assert_refused(form_errors(response, field))
    assert rows() == before


@pytest.mark.parametrize("field", ["username", "password"])
@pytest.mark.parametrize("bad", ["nul", "10MB"])
def test_the_login_page_refuses_bad_text(client, alice, field, bad):
    data = {"username": "alice", "password": "secret", field: BAD[bad]}

    response = client.post(reverse("login"), data)

    assert response.status_code == 200
    assert response.context["form"].errors
    assert "_auth_user_id" not in client.session
