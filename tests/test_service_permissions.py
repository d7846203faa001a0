"""Every service that changes a team's work checks who asks, whichever door they came in
by: Bob (a viewer of Alice's team) and Charlie (a stranger to it) calling a service
directly are refused (access.Denied) and nothing changes; Dave (a member) may create, run
and cancel; only Alice (the admin) manages the members."""

import pytest
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import SimpleUploadedFile

from experiments import services
from experiments.access import Denied
from experiments.models import (
    Comment,
    Dataset,
    Experiment,
    Membership,
    Recipe,
    Run,
    SignOff,
    UploadedModel,
)

XLA = [{"technique": "xla"}]


@pytest.fixture
def experiment(alice, alice_team, make_experiment):
    return make_experiment(team=alice_team, user=alice,
                           recipes=[{"name": "XLA", "steps": XLA}])


def test_denied_is_a_permission_denied():
    # Views and the API answer a PermissionDenied with a 403; Denied must stay one.
    assert issubclass(Denied, PermissionDenied)


def test_it_refuses_an_experiment_to_a_viewer_and_a_stranger(alice_team, bob, charlie, dave,
                                                             tiny_spec):
    for user in (bob, charlie, None):
        with pytest.raises(Denied, match="Viewers cannot change this team's work."):
            services.experiment_create(team=alice_team, user=user, spec=tiny_spec())
    assert not Experiment.objects.exists()

    created = services.experiment_create(team=alice_team, user=dave, spec=tiny_spec())
    assert created.created_by == dave


def test_it_refuses_the_viewer_before_reading_the_spec(alice_team, bob):
    # A viewer learns nothing from the spec's messages: the refusal comes first.
    with pytest.raises(Denied):
        services.experiment_create(team=alice_team, user=bob, spec={"nonsense": True})


DATASET = {"input_shape": [8, 8, 1], "num_classes": 3, "train_samples": 90,
           "test_samples": 30}
MODEL = {"input_shape": [8, 8, 1], "num_classes": 10, "params": 1210, "layers": 3,
         "facts": {"dense": 2}}


def _upload(name):
    return SimpleUploadedFile(name, b"x" * 1234)


def test_it_refuses_uploads_to_a_viewer_and_a_stranger(alice_team, bob, charlie):
    for user in (bob, charlie):
        with pytest.raises(Denied):
            services.dataset_create(team=alice_team, user=user, name="blobs",
                                    upload=_upload("blobs.npz"), description=DATASET)
        with pytest.raises(Denied):
            services.uploaded_model_create(team=alice_team, user=user, name="mlp",
                                           upload=_upload("mlp.keras"), description=MODEL)
    assert not Dataset.objects.exists() and not UploadedModel.objects.exists()


def test_it_stores_a_members_uploads_alike(alice_team, dave):
    dataset = services.dataset_create(team=alice_team, user=dave, name="blobs",
                                      upload=_upload("blobs.npz"), description=DATASET)
    model = services.uploaded_model_create(team=alice_team, user=dave, name="mlp",
                                           upload=_upload("mlp.keras"), description=MODEL)

    for stored in (dataset, model):
        stored.refresh_from_db()
        assert (stored.team, stored.uploaded_by, stored.size_bytes, stored.input_shape) == (
            alice_team, dave, 1234, [8, 8, 1])
    assert (dataset.num_classes, dataset.train_samples, dataset.test_samples) == (3, 90, 30)
    assert (model.num_classes, model.params, model.layers, model.facts) == (
        10, 1210, 3, {"dense": 2})


def test_it_refuses_recipes_to_a_viewer_and_a_stranger(alice_team, bob, charlie, dave):
    recipe = Recipe.objects.create(team=alice_team, name="xla", steps=XLA)
    for user in (bob, charlie):
        with pytest.raises(Denied):
            services.recipe_save(team=alice_team, user=user, name="mine", steps=XLA)
        with pytest.raises(Denied):
            services.recipe_delete(recipe=recipe, user=user)
    assert list(Recipe.objects.all()) == [recipe]

    saved, created = services.recipe_save(team=alice_team, user=dave, name="mine", steps=XLA)
    assert created and saved.created_by == dave
    services.recipe_delete(recipe=recipe, user=dave)
    assert list(Recipe.objects.all()) == [saved]


def test_it_lets_only_admins_manage_members(alice, alice_team, bob, charlie, dave,
                                            django_user_model):
    django_user_model.objects.create_user(username="erin")
    bobs = Membership.objects.get(user=bob, team=alice_team)
    for user in (bob, charlie, dave):
        with pytest.raises(Denied, match="Only the team's admins manage its members."):
            services.team_member_add(team=alice_team, user=user, username="erin",
                                     role="viewer")
        with pytest.raises(Denied):
            services.team_member_set_role(membership=bobs, user=user, role="admin")
        with pytest.raises(Denied):
            services.team_member_remove(membership=bobs, user=user)
    bobs.refresh_from_db()
    assert bobs.role == "viewer"
    assert not Membership.objects.filter(user__username="erin").exists()

    erins, created = services.team_member_add(team=alice_team, user=alice, username="erin",
                                              role="viewer")
    assert created
    services.team_member_set_role(membership=erins, user=alice, role="member")
    erins.refresh_from_db()
    assert erins.role == "member"
    # Added again: the role changes, no second membership.
    again, created = services.team_member_add(team=alice_team, user=alice, username="erin",
                                              role="admin")
    assert (again.pk, again.role, created) == (erins.pk, "admin", False)
    services.team_member_remove(membership=bobs, user=alice)
    assert not Membership.objects.filter(pk=bobs.pk).exists()


def test_it_refuses_a_cancel_to_a_viewer_and_a_stranger(experiment, bob, charlie, dave):
    run = experiment.runs.get(name="XLA")
    for user in (bob, charlie):
        with pytest.raises(Denied):
            services.run_cancel(run, user=user)
    run.refresh_from_db()
    assert (run.status, run.cancel_requested) == (Run.Status.QUEUED, False)

    assert services.run_cancel(run, user=dave)
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED


def test_it_refuses_a_rerun_to_a_viewer_and_a_stranger(experiment, bob, charlie, dave):
    run = Run.claim(experiment.runs.get(name="XLA").pk, worker="celery@one")
    run.mark_finished(Run.Status.FAILED, error="the runner was lost")
    for user in (bob, charlie):
        with pytest.raises(Denied):
            services.run_rerun(run, user=user)
    run.refresh_from_db()
    assert (run.status, run.error) == (Run.Status.FAILED, "the runner was lost")

    assert services.run_rerun(run, user=dave)
    run.refresh_from_db()
    assert (run.status, run.error) == (Run.Status.QUEUED, "")


def test_an_operator_cancels_without_a_team_role(experiment):
    # The admin site and manage.py cancel act above the teams.
    run = experiment.runs.get(name="XLA")

    assert services.run_cancel(run, user=None)

    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED


def test_it_refuses_a_rebenchmark_to_a_viewer_before_the_state(experiment, bob, dave):
    # The runs are queued: a member hears why it cannot start, a viewer only that it is
    # not theirs to ask.
    with pytest.raises(Denied):
        services.experiment_rebenchmark(experiment=experiment, user=bob)
    with pytest.raises(services.BenchmarkRefused, match="still queued or running"):
        services.experiment_rebenchmark(experiment=experiment, user=dave)


def test_it_lets_a_viewer_comment_but_not_a_stranger(experiment, bob, charlie):
    with pytest.raises(Denied, match="Only the team's members can comment."):
        services.comment_add(experiment=experiment, user=charlie, body="Mine now.")

    comment = services.comment_add(experiment=experiment, user=bob, body="Looks real.")

    assert list(Comment.objects.all()) == [comment]


def test_it_refuses_a_signoff_to_a_viewer(experiment, bob):
    run = experiment.runs.get(name="XLA")

    with pytest.raises(Denied, match="Viewers cannot change this team's work."):
        services.signoff_create(run=run, user=bob)

    assert not SignOff.objects.exists()
