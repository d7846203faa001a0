import pytest
from django.urls import reverse

from experiments.models import Membership

pytestmark = pytest.mark.django_db


@pytest.fixture
def dana(django_user_model):
    return django_user_model.objects.create_user(username="dana")


def test_it_lists_my_teams_and_my_role(client, bob):
    client.force_login(bob)
    response = client.get(reverse("team_list"))
    assert response.status_code == 200
    assert "Alice&#x27;s team" in response.text
    assert "You are a <strong>viewer</strong>" in response.text
    # A viewer sees no member table and no forms to change it.
    assert "Add member" not in response.text


def test_it_says_an_admin(client, alice):
    client.force_login(alice)
    assert "You are an <strong>admin</strong>" in client.get(reverse("team_list")).text


def test_it_lets_an_admin_add_a_member(client, alice, alice_team, dana):
    client.force_login(alice)
    response = client.post(
        reverse("team_member_add", args=[alice_team.pk]),
        {f"team{alice_team.pk}-username": "dana", f"team{alice_team.pk}-role": "member"},
        follow=True,
    )
    assert "dana is now a member" in response.text
    assert Membership.objects.get(team=alice_team, user=dana).role == "member"


def test_it_says_when_the_user_does_not_exist(client, alice, alice_team):
    client.force_login(alice)
    response = client.post(
        reverse("team_member_add", args=[alice_team.pk]),
        {f"team{alice_team.pk}-username": "nobody", f"team{alice_team.pk}-role": "member"},
        follow=True,
    )
    assert "There is no user named “nobody”." in response.text


def test_it_changes_a_role_and_removes_a_member(client, alice, alice_team, bob):
    client.force_login(alice)
    membership = Membership.objects.get(team=alice_team, user=bob)
    url = reverse("team_member_update", args=[alice_team.pk, membership.pk])
    client.post(url, {"role": "member"})
    membership.refresh_from_db()
    assert membership.role == "member"
    client.post(url, {"role": "remove"})
    assert not Membership.objects.filter(pk=membership.pk).exists()


def test_it_keeps_the_last_admin(client, alice, alice_team):
    client.force_login(alice)
    membership = Membership.objects.get(team=alice_team, user=alice)
    url = reverse("team_member_update", args=[alice_team.pk, membership.pk])
    response = client.post(url, {"role": "viewer"}, follow=True)
    assert "A team needs at least one admin" in response.text
    response = client.post(url, {"role": "remove"}, follow=True)
    assert "A team needs at least one admin" in response.text
    membership.refresh_from_db()
    assert membership.role == "admin"


def test_it_refuses_a_bad_role(client, alice, alice_team, bob):
    client.force_login(alice)
    membership = Membership.objects.get(team=alice_team, user=bob)
    response = client.post(reverse("team_member_update", args=[alice_team.pk, membership.pk]),
                           {"role": "owner"}, follow=True)
    assert "That is not a role: choose viewer, member or admin." in response.text
    membership.refresh_from_db()
    assert membership.role == "viewer"


def test_it_forbids_viewers_and_hides_other_teams(client, bob, charlie, alice_team, dana):
    data = {f"team{alice_team.pk}-username": "dana", f"team{alice_team.pk}-role": "admin"}
    client.force_login(bob)
    assert client.post(reverse("team_member_add", args=[alice_team.pk]), data).status_code == 403
    client.force_login(charlie)
    assert client.post(reverse("team_member_add", args=[alice_team.pk]), data).status_code == 404
    assert not Membership.objects.filter(user=dana).exists()
