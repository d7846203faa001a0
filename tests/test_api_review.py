"""The review half of the REST API: comments, sign-offs, compare across experiments, team
members and uploaded .keras models; the same rules as the pages (tests/test_discussion.py,
tests/test_review.py, tests/test_teams.py, tests/test_uploads.py)."""

import json

import pytest
from results import FINGERPRINT
from test_discussion import REPEATED, finish, xla
from test_uploads import keras_files, upload_of  # noqa: F401 (keras_files is a fixture)

from experiments import services
from experiments.models import Comment, Membership, SignOff, UploadedModel


@pytest.fixture
def experiment(alice, alice_team, make_experiment):
    experiment = make_experiment(team=alice_team, user=alice, training=REPEATED, recipes=[
        {"name": "XLA", "steps": [{"technique": "xla"}]},
    ])
    finish(experiment.runs.get(name="baseline", replicate=0))
    return experiment


def post(client, url, data):
    return client.post(url, json.dumps(data), content_type="application/json")


# Comments


def test_it_lets_a_viewer_comment_and_renders_the_markdown_safely(api, bob, experiment):
    run = xla(experiment)

    response = post(api(bob), "/api/comments/", {
        "experiment": experiment.pk, "run": run.pk,
        "body": "**1.4x** faster <img src=x onerror=alert(1)>"})

    assert response.status_code == 201, response.content
    comment = Comment.objects.get()
    assert (comment.author, comment.experiment, comment.run) == (bob, experiment, run)
    body = response.json()
    assert body["author"] == "bob" and body["run"] == run.pk
    assert "<strong>1.4x</strong>" in body["html"]
    assert "<img" not in body["html"] and "onerror" not in body["html"]


def test_it_lists_comments_by_experiment_and_run(api, alice, alice_team, experiment,
                                                 make_experiment):
    other = make_experiment(team=alice_team, user=alice)
    run = xla(experiment)
    on_experiment = Comment.objects.create(experiment=experiment, author=alice, body="All.")
    on_run = Comment.objects.create(experiment=experiment, run=run, author=alice, body="XLA.")
    elsewhere = Comment.objects.create(experiment=other, author=alice, body="Other.")
    client = api(alice)

    def ids(query):
        return [c["id"] for c in client.get(f"/api/comments/{query}").json()["results"]]

    assert ids("") == [on_experiment.pk, on_run.pk, elsewhere.pk]
    assert ids(f"?experiment={experiment.pk}") == [on_experiment.pk, on_run.pk]
    assert ids(f"?run={run.pk}") == [on_run.pk]
    assert client.get("/api/comments/?run=abc").status_code == 400


def test_it_refuses_an_empty_comment_or_a_run_of_another_experiment(api, alice, alice_team,
                                                                    experiment, make_experiment):
    other_run = make_experiment(team=alice_team, user=alice).runs.get()
    client = api(alice)

    empty = post(client, "/api/comments/", {"experiment": experiment.pk, "body": "   "})
    wrong = post(client, "/api/comments/", {"experiment": experiment.pk, "run": other_run.pk,
                                            "body": "Hm."})

    assert empty.status_code == 400 and "body" in empty.json()
    assert wrong.status_code == 400
    assert wrong.json()["body"] == ["That run belongs to another experiment."]
    assert not Comment.objects.exists()


def test_it_hides_other_teams_comments(api, charlie, alice, experiment):
    comment = Comment.objects.create(experiment=experiment, author=alice, body="Ours.")
    client = api(charlie)

    assert client.get("/api/comments/").json()["results"] == []
    assert client.get(f"/api/comments/{comment.pk}/").status_code == 404
    assert client.delete(f"/api/comments/{comment.pk}/").status_code == 404
    refused = post(client, "/api/comments/", {"experiment": experiment.pk, "body": "Theirs."})
    assert refused.status_code == 400 and "experiment" in refused.json()
    assert Comment.objects.count() == 1


def test_it_deletes_a_comment_only_for_its_author_or_an_admin(api, alice, bob, dave,
                                                              experiment):
    comment = Comment.objects.create(experiment=experiment, author=bob, body="Mine.")

    assert api(dave).delete(f"/api/comments/{comment.pk}/").status_code == 403
    assert api(bob).delete(f"/api/comments/{comment.pk}/").status_code == 204
    other = Comment.objects.create(experiment=experiment, author=bob, body="Again.")
    assert api(alice).delete(f"/api/comments/{other.pk}/").status_code == 204
    assert not Comment.objects.exists()


# Sign-offs


def test_it_signs_off_a_faster_run_with_its_evidence(api, dave, experiment):
    run = finish(xla(experiment), train=1500.0)

    response = post(api(dave), "/api/signoffs/", {"run": run.pk, "note": "Ship it."})

    assert response.status_code == 201, response.content
    signoff = SignOff.objects.get()
    assert (signoff.run, signoff.approved_by, signoff.note) == (run, dave, "Ship it.")
    body = response.json()
    assert (body["run_name"], body["approved_by"]) == ("XLA", "dave")
    assert body["evidence"]["faster"] == ["training"]
    assert body["evidence"]["row"]["train_ci"][0] > 1.0
    listed = api(dave).get(f"/api/signoffs/?experiment={experiment.pk}").json()["results"]
    assert [s["id"] for s in listed] == [signoff.pk]


def test_it_refuses_a_sign_off_with_the_reasons(api, dave, experiment):
    same = finish(xla(experiment))  # as fast as the baseline
    client = api(dave)

    response = post(client, "/api/signoffs/", {"run": same.pk})

    assert response.status_code == 409
    detail = response.json()["detail"]
    assert detail.startswith("“XLA” cannot be signed off.")
    assert "includes 1.0: no evidence it is faster" in detail
    base = experiment.runs.get(name="baseline", replicate=0)
    baseline = post(client, "/api/signoffs/", {"run": base.pk})
    assert baseline.status_code == 409 and "is the baseline" in baseline.json()["detail"]
    assert not SignOff.objects.exists()


def test_it_refuses_a_sign_off_against_a_baseline_at_chance(api, dave, experiment):
    # Three replicates of 10% on 360 digits (10 classes), a recipe 1.5x faster to train.
    finish(experiment.runs.get(name="baseline", replicate=0), accuracy=0.1)
    run = finish(xla(experiment), train=1500.0, accuracy=0.6)
    client = api(dave)
    message = ("The baseline scored 10.0% test accuracy (the mean of 3 replicates), which is "
               "chance level for 10 classes (10%, interval 6.9-13.1% for 360 test samples): "
               "there is nothing to compare. Train longer, fix the data, or pick another "
               "model.")

    response = post(client, "/api/signoffs/", {"run": run.pk})
    detail = client.get(f"/api/experiments/{experiment.pk}/").json()

    assert response.status_code == 409
    assert response.json()["detail"] == f"“XLA” cannot be signed off. {message}"
    assert not SignOff.objects.exists()
    assert detail["baseline_at_chance"]["message"] == message
    assert (detail["baseline_at_chance"]["classes"],
            detail["baseline_at_chance"]["replicates"]) == (10, 3)
    assert detail["comparison"][0]["baseline_chance"] == detail["baseline_at_chance"]
    # Over a baseline that learnt something the same recipe is signed off.
    finish(experiment.runs.get(name="baseline", replicate=0), accuracy=0.5)
    assert client.get(f"/api/experiments/{experiment.pk}/").json()["baseline_at_chance"] \
        is None
    assert post(client, "/api/signoffs/", {"run": run.pk}).status_code == 201


def test_it_refuses_a_second_sign_off_and_lets_the_approver_revoke(api, alice, dave,
                                                                   experiment):
    run = finish(xla(experiment), train=1500.0)
    first = post(api(dave), "/api/signoffs/", {"run": run.pk}).json()

    again = post(api(alice), "/api/signoffs/", {"run": run.pk})

    assert again.status_code == 409 and "already signed off by dave" in again.json()["detail"]
    assert api(dave).delete(f"/api/signoffs/{first['id']}/").status_code == 204
    assert not SignOff.objects.exists()
    withdrawn = api(alice).get(f"/api/signoffs/withdrawn/?run={run.pk}").json()["results"]
    assert [(w["run_name"], w["approved_by"], w["withdrawn_by"], w["reason"])
            for w in withdrawn] == [("XLA", "dave", "dave", "revoked")]
    assert withdrawn[0]["approved_at"] == first["created_at"]
    assert api(alice).get("/api/signoffs/withdrawn/?run=abc").status_code == 400


def test_it_forbids_viewers_to_sign_off_or_revoke(api, bob, dave, experiment):
    run = finish(xla(experiment), train=1500.0)

    assert post(api(bob), "/api/signoffs/", {"run": run.pk}).status_code == 403
    signoff = post(api(dave), "/api/signoffs/", {"run": run.pk}).json()
    assert api(bob).delete(f"/api/signoffs/{signoff['id']}/").status_code == 403
    assert SignOff.objects.count() == 1


def test_it_hides_other_teams_sign_offs(api, charlie, dave, experiment):
    run = finish(xla(experiment), train=1500.0)
    signoff = post(api(dave), "/api/signoffs/", {"run": run.pk}).json()
    client = api(charlie)

    assert client.get("/api/signoffs/").json()["results"] == []
    assert client.get(f"/api/signoffs/{signoff['id']}/").status_code == 404
    assert client.delete(f"/api/signoffs/{signoff['id']}/").status_code == 404
    api(dave).delete(f"/api/signoffs/{signoff['id']}/")
    assert client.get("/api/signoffs/withdrawn/").json()["results"] == []
    refused = post(client, "/api/signoffs/", {"run": run.pk})
    assert refused.status_code == 400 and "run" in refused.json()


# Compare


def add_epochs(run, accuracies):
    # As the worker stores them: the run's stored curves are what compare draws.
    services.run_record_events(run, [
        {"event": "epoch", "epoch": epoch, "val_accuracy": value, "seconds": 2.0}
        for epoch, value in enumerate(accuracies, start=1)])


def test_it_compares_runs_of_two_experiments_and_names_the_hardware_difference(
        api, alice, alice_team, experiment, make_experiment):
    mine = finish(xla(experiment), train=1500.0)
    elsewhere = make_experiment(team=alice_team, user=alice).runs.get()
    elsewhere = finish(elsewhere, fingerprint={**FINGERPRINT, "cpu_model": "AMD EPYC"})
    add_epochs(mine, [0.5, 0.9, 0.8])

    response = api(alice).get(f"/api/compare/?runs={elsewhere.pk},{mine.pk}")

    assert response.status_code == 200, response.content
    body = response.json()
    assert [run["id"] for run in body["runs"]] == [elsewhere.pk, mine.pk]
    assert body["runs"][1]["experiment_name"] == experiment.name
    assert body["runs"][1]["series"]["val_accuracy"] == [[1, 0.5], [2, 0.9], [3, 0.8]]
    assert body["runs"][1]["series"]["val_accuracy_by_time"][-1] == [6.0, 0.8]
    assert body["runs"][1]["summary"]["val_accuracy"] == {"last": 0.8, "best": 0.9,
                                                          "min": 0.5, "max": 0.9}
    assert body["runs"][0]["result"]["fingerprint"]["cpu_model"] == "AMD EPYC"
    assert body["hardware_differences"] == [{"key": "cpu_model",
                                             "values": ["AMD EPYC", "Intel Xeon"]}]
    same = api(alice).get(f"/api/compare/?runs={mine.pk}&runs={mine.pk}").json()
    assert [run["id"] for run in same["runs"]] == [mine.pk]
    assert same["hardware_differences"] == []


@pytest.mark.parametrize("query, code", [
    ("", 400), ("?runs=", 400), ("?runs=abc", 404), ("?runs=²", 404),
    ("?runs=" + "9" * 5000, 404), ("?runs=999999", 404),
    ("?runs=" + ",".join(str(i) for i in range(1, 14)), 400),
])
def test_it_answers_a_bad_compare_query_with_a_message(api, alice, experiment, query, code):
    response = api(alice).get(f"/api/compare/{query}")

    assert response.status_code == code
    assert response.json()


def test_it_refuses_to_compare_another_teams_run(api, charlie, experiment):
    assert api(charlie).get(f"/api/compare/?runs={xla(experiment).pk}").status_code == 404


# Team members


def test_it_lists_the_members_to_any_member(api, alice, bob, alice_team, charlie):
    members = api(bob).get(f"/api/teams/{alice_team.pk}/members/")

    assert members.status_code == 200
    assert [(m["username"], m["role"]) for m in members.json()] == [("alice", "admin"),
                                                                   ("bob", "viewer")]
    assert api(charlie).get(f"/api/teams/{alice_team.pk}/members/").status_code == 404


def test_an_admin_adds_promotes_and_removes_a_member(api, alice, alice_team,
                                                     django_user_model):
    django_user_model.objects.create_user(username="erin")
    client = api(alice)
    url = f"/api/teams/{alice_team.pk}/members/"

    added = post(client, url, {"username": "erin", "role": "viewer"})
    assert added.status_code == 201, added.content
    membership = Membership.objects.get(team=alice_team, user__username="erin")
    assert added.json() == {"id": membership.pk, "username": "erin", "role": "viewer",
                            "created_at": added.json()["created_at"]}
    again = post(client, url, {"username": "erin", "role": "member"})
    assert again.status_code == 200 and again.json()["role"] == "member"

    changed = client.patch(f"{url}{membership.pk}/", {"role": "admin"}, format="json")
    assert changed.status_code == 200 and changed.json()["role"] == "admin"
    membership.refresh_from_db()
    assert membership.role == "admin"

    assert client.delete(f"{url}{membership.pk}/").status_code == 204
    assert not Membership.objects.filter(pk=membership.pk).exists()


def test_it_answers_bad_member_changes_with_400(api, alice, alice_team):
    client = api(alice)
    url = f"/api/teams/{alice_team.pk}/members/"
    own = Membership.objects.get(user=alice, team=alice_team)

    nobody = post(client, url, {"username": "nobody"})
    no_role = post(client, url, {"username": "alice", "role": "owner"})
    last_admin = client.patch(f"{url}{own.pk}/", {"role": "viewer"}, format="json")
    last_removed = client.delete(f"{url}{own.pk}/")

    assert nobody.status_code == 400
    assert nobody.json()["username"] == ["There is no user named “nobody”."]
    assert no_role.status_code == 400 and "role" in no_role.json()
    assert last_admin.status_code == 400 and last_removed.status_code == 400
    assert "at least one admin" in last_admin.json()["role"][0]
    own.refresh_from_db()
    assert own.role == "admin"


def test_only_admins_manage_members(api, bob, dave, alice_team, charlie, charlie_team):
    viewer = Membership.objects.get(user=bob, team=alice_team)
    url = f"/api/teams/{alice_team.pk}/members/"

    assert post(api(dave), url, {"username": "charlie"}).status_code == 403
    assert api(dave).patch(f"{url}{viewer.pk}/", {"role": "admin"},
                           format="json").status_code == 403
    assert api(bob).delete(f"{url}{viewer.pk}/").status_code == 403
    assert post(api(charlie), url, {"username": "charlie"}).status_code == 404
    # A membership of another team is not found under this one.
    charlies = Membership.objects.get(team=charlie_team)
    assert api(charlie).delete(f"/api/teams/{charlie_team.pk}/members/{viewer.pk}/"
                               ).status_code == 404
    assert sorted(Membership.objects.filter(team=alice_team).values_list(
        "user__username", "role")) == [("bob", "viewer"), ("dave", "member")]
    assert Membership.objects.filter(pk=charlies.pk).exists()


# Uploaded models


@pytest.mark.timeout(300)
def test_it_uploads_a_keras_model_and_refuses_a_lambda(api, alice, alice_team,
                                                       keras_files):  # noqa: F811
    client = api(alice)

    created = client.post("/api/models/", {"name": "Digits MLP",
                                           "file": upload_of(keras_files, "digits")},
                          format="multipart")
    refused = client.post("/api/models/", {"name": "Evil",
                                           "file": upload_of(keras_files, "lambda")},
                          format="multipart")

    assert created.status_code == 201, created.content
    uploaded = UploadedModel.objects.get()
    assert (uploaded.team, uploaded.uploaded_by) == (alice_team, alice)
    body = created.json()
    assert (body["id"], body["input_shape"], body["num_classes"]) == (uploaded.pk, [8, 8, 1], 10)
    assert refused.status_code == 400
    assert "Lambda layer" in refused.json()["file"][0]
    assert [m["id"] for m in client.get("/api/models/").json()["results"]] == [uploaded.pk]


def test_it_forbids_viewers_to_upload_models(api, bob, alice_team):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = api(bob).post("/api/models/", {
        "name": "Nope", "team": alice_team.pk,
        "file": SimpleUploadedFile("m.keras", b"PK")}, format="multipart")

    assert response.status_code == 403
    assert not UploadedModel.objects.exists()


# Bodies


def test_it_answers_a_json_body_over_the_limit_with_400(api, alice, experiment, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = post(api(alice), "/api/comments/", {"experiment": experiment.pk,
                                                   "body": "x" * 2000})

    assert response.status_code == 400
    assert response.json()["detail"] == "The request body is over the limit of 1,000 bytes."
    assert not Comment.objects.exists()


@pytest.mark.parametrize("url", ["/api/models/", "/api/datasets/"])
def test_it_says_an_upload_is_over_the_limit(api, alice, url, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.ACCELWEB_MAX_UPLOAD_BYTES = 1000
    name = "m.keras" if "models" in url else "d.npz"

    response = api(alice).post(url, {"name": "Big", "file": SimpleUploadedFile(
        name, b"x" * 1001)}, format="multipart")

    assert response.status_code == 400
    assert response.json()["file"] == ["The file is larger than the limit of 1,000 bytes."]
