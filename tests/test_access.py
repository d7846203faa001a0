"""experiments.access and the team scoping of the models: one answer to "may this user see
or change this object", for views, services and templates alike."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import Http404

from experiments.access import (
    comment_for_user,
    may_change,
    may_comment,
    may_delete_comment,
    may_manage,
    may_revoke_signoff,
    membership_in,
    own_team,
    signoff_for_user,
)
from experiments.models import Comment, Membership, Run, SignOff, Team


def _discussed(make_experiment, alice_team, alice):
    experiment = make_experiment(team=alice_team, user=alice,
                                 recipes=[{"name": "XLA", "steps": [{"technique": "xla"}]}])
    run = experiment.runs.get(position=1)
    comment = Comment.objects.create(experiment=experiment, author=alice, body="First.")
    signoff = SignOff.objects.create(experiment=experiment, run=run, approved_by=alice,
                                     model_label="seed_mlp on digits", evidence={})
    return experiment, comment, signoff


def test_it_scopes_runs_comments_and_signoffs_to_the_users_teams(
        make_experiment, alice_team, alice, bob, charlie):
    experiment, comment, signoff = _discussed(make_experiment, alice_team, alice)

    for user in (alice, bob):
        assert set(Run.objects.for_user(user)) == set(experiment.runs.all())
        assert list(Comment.objects.for_user(user)) == [comment]
        assert list(SignOff.objects.for_user(user)) == [signoff]
        assert list(Team.objects.for_user(user)) == [alice_team]
    for user in (charlie, AnonymousUser()):
        assert not Run.objects.for_user(user).exists()
        assert not Comment.objects.for_user(user).exists()
        assert not SignOff.objects.for_user(user).exists()
    assert not Team.objects.for_user(AnonymousUser()).exists()
    assert [team.name for team in Team.objects.for_user(charlie)] == ["Charlie's team"]


def test_it_lets_the_author_or_an_admin_delete_a_comment(
        make_experiment, alice_team, alice, bob, dave):
    _, comment, _ = _discussed(make_experiment, alice_team, alice)
    bobs = Comment.objects.create(experiment=comment.experiment, author=bob, body="Mine.")

    assert may_delete_comment(bob, bobs, Membership.Role.VIEWER)  # the author, a viewer
    assert not may_delete_comment(bob, comment, Membership.Role.VIEWER)
    assert not may_delete_comment(dave, comment, Membership.Role.MEMBER)
    assert may_delete_comment(alice, bobs, Membership.Role.ADMIN)


def test_it_lets_the_approver_while_a_member_or_an_admin_revoke_a_signoff(
        make_experiment, alice_team, alice, dave):
    _, _, signoff = _discussed(make_experiment, alice_team, alice)
    daves = SignOff(experiment=signoff.experiment, run=signoff.run, approved_by=dave)

    assert may_revoke_signoff(dave, daves, Membership.Role.MEMBER)
    # Demoted to viewer, the approver can no longer take back what the team relies on.
    assert not may_revoke_signoff(dave, daves, Membership.Role.VIEWER)
    assert not may_revoke_signoff(dave, signoff, Membership.Role.MEMBER)
    assert may_revoke_signoff(alice, daves, Membership.Role.ADMIN)
    assert not may_revoke_signoff(dave, daves, None)  # no longer in the team


def test_it_answers_what_each_role_may_do(alice_team, alice, bob, dave, charlie):
    # (change: create, run, cancel, sign off; manage: the members; comment)
    expected = {alice: (True, True, True), dave: (True, False, True),
                bob: (False, False, True), charlie: (False, False, False),
                AnonymousUser(): (False, False, False), None: (False, False, False)}
    for user, answers in expected.items():
        assert (may_change(user, alice_team.pk), may_manage(user, alice_team.pk),
                may_comment(user, alice_team.pk)) == answers, user


def test_it_fetches_a_comment_signoff_team_or_membership_only_for_the_team(
        make_experiment, alice_team, alice, bob, charlie, charlie_team):
    _, comment, signoff = _discussed(make_experiment, alice_team, alice)

    assert comment_for_user(bob, comment.pk) == comment
    assert signoff_for_user(bob, signoff.pk) == signoff
    assert own_team(bob, alice_team.pk) == alice_team
    assert own_team(charlie, alice_team.pk) is None
    for fetch, pk in ((comment_for_user, comment.pk), (signoff_for_user, signoff.pk)):
        with pytest.raises(Http404):
            fetch(charlie, pk)
    bobs = Membership.objects.get(user=bob)
    assert membership_in(alice_team, bobs.pk) == bobs
    with pytest.raises(Http404):  # another team's membership, by its id
        membership_in(charlie_team, bobs.pk)
