"""/experiments/: every experiment of the user's teams, newest first, 50 a page, searched by
name, filtered by status, model, dataset, technique and author, sorted by date or best
speedup; another team's never; the ticked ones compared; its queries do not grow with runs.
"""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from experiments.models import Experiment, Run

URL = reverse("experiment_list")


@pytest.fixture
def make(alice_team, alice, tiny_spec):
    """An experiment of Alice's team made `age` hours ago, with runs of these statuses."""
    def experiment(name, *, age=0, statuses=("succeeded",), team=alice_team, user=alice,
                   arch="seed_mlp", dataset="digits", techniques=(), speedup=None):
        spec = tiny_spec(model={"arch": arch, "params": {}}, dataset={"name": dataset},
                         recipes=[{"name": t, "steps": [{"technique": t}]} for t in techniques])
        made = Experiment.objects.create(
            team=team, name=name, spec=spec, created_by=user,
            created_at=timezone.now() - timedelta(hours=age))
        Experiment.objects.filter(pk=made.pk).update(best_speedup=speedup)
        for position, status in enumerate(statuses):
            Run.objects.create(experiment=made, name=f"run {position}", position=position,
                               steps=[] if position == 0 else [{"technique": "xla"}],
                               status=status)
        return made
    return experiment


def names(response):
    assert response.status_code == 200
    return re.findall(r'<tr data-experiment-id="\d+">\s*<td>.*?</td>\s*<td><a href="[^"]+">'
                      r"([^<]+)</a>", response.content.decode(), re.S)


def test_it_lists_every_experiment_of_the_users_teams_newest_first(
        client, alice, make, charlie, charlie_team):
    for age in (3, 1, 2):
        make(f"{age} hours old", age=age)
    make("Charlie's", team=charlie_team, user=charlie)
    client.force_login(alice)
    assert names(client.get(URL)) == ["1 hours old", "2 hours old", "3 hours old"]
    assert names(client.get(URL, {"sort": "oldest"})) == [
        "3 hours old", "2 hours old", "1 hours old"]


def test_it_pages_fifty_at_a_time_and_keeps_the_filters(client, alice, make):
    for age in range(55):
        make(f"lr sweep {age:02d}", age=age)
    make("other", age=100)
    client.force_login(alice)
    first = client.get(URL, {"q": "sweep"})
    assert len(names(first)) == 50 and names(first)[0] == "lr sweep 00"
    assert "Page 1 of 2 · 55 experiments" in first.content.decode()
    assert "?q=sweep&amp;page=2" in first.content.decode()
    assert names(client.get(URL, {"q": "sweep", "page": 2})) == [
        f"lr sweep {age}" for age in range(50, 55)]
    assert names(client.get(URL, {"q": "sweep", "page": "x"}))[0] == "lr sweep 00"


def test_it_filters_by_status_model_dataset_technique_and_author(client, alice, bob, make):
    make("running", statuses=("succeeded", "running"), arch="seed_cnn")
    make("queued", statuses=("queued",), dataset="synthetic")
    make("failed", statuses=("succeeded", "failed"), techniques=("ptq",))
    make("done", statuses=("succeeded", "succeeded"), techniques=("xla", "pruning"), user=bob)
    client.force_login(alice)
    assert set(names(client.get(URL, {"status": "active"}))) == {"running", "queued"}
    assert names(client.get(URL, {"status": "failed"})) == ["failed"]
    assert names(client.get(URL, {"status": "finished"})) == ["done"]
    assert names(client.get(URL, {"model": "seed_cnn"})) == ["running"]
    assert names(client.get(URL, {"dataset": "synthetic"})) == ["queued"]
    assert names(client.get(URL, {"technique": "pruning"})) == ["done"]
    assert names(client.get(URL, {"technique": "ptq"})) == ["failed"]
    assert names(client.get(URL, {"author": "bob"})) == ["done"]
    assert names(client.get(URL, {"author": "bob", "technique": "ptq"})) == []


def test_an_unknown_filter_is_said_and_left_out(client, alice, make):
    make("kept")
    client.force_login(alice)
    response = client.get(URL, {"technique": "teleportation", "status": "bogus"})
    assert names(response) == ["kept"]
    page = response.content.decode()
    assert "Left out of the search" in page and "teleportation" in page


def test_it_sorts_by_best_speedup_the_unmeasured_last(client, alice, make):
    make("slow", speedup=1.2, age=1)
    make("unmeasured", age=0)
    make("fast", speedup=3.5, age=2)
    client.force_login(alice)
    response = client.get(URL, {"sort": "fastest"})
    assert names(response) == ["fast", "slow", "unmeasured"]
    assert "3.50×" in response.content.decode()


def test_a_list_reads_the_same_queries_whatever_the_runs(client, alice, make):
    client.force_login(alice)
    small = make("small", statuses=("succeeded",))
    with CaptureQueriesContext(connection) as few:
        client.get(URL, {"status": "finished"})
    Run.objects.bulk_create([Run(experiment=small, name=f"r{i}", position=i + 1,
                                 status="succeeded") for i in range(300)])
    with CaptureQueriesContext(connection) as many:
        response = client.get(URL, {"status": "finished"})
    assert len(many) == len(few)
    assert "<td>301</td>" in response.content.decode()


def test_it_compares_the_ticked_experiments_succeeded_runs(
        client, alice, make, charlie, charlie_team):
    first = make("first", statuses=("succeeded", "failed"))
    second = make("second", statuses=("succeeded",))
    client.force_login(alice)
    response = client.get(reverse("compare"), {"experiments": [first.pk, second.pk]})
    assert response.status_code == 200
    compared = re.findall(r'data-compare-run="(\d+)"', response.content.decode())
    expected = [run.pk for run in Run.objects.filter(status="succeeded").order_by(
        "experiment__created_at", "pk")]
    assert sorted(map(int, compared)) == sorted(expected) and len(compared) == 2
    theirs = make("Charlie's", team=charlie_team, user=charlie)
    assert client.get(reverse("compare"), {"experiments": [theirs.pk]}).status_code == 404


def test_home_shows_the_newest_and_links_to_the_list(client, alice, make):
    for age in range(25):
        make(f"e{age:02d}", age=age)
    client.force_login(alice)
    page = client.get(reverse("home")).content.decode()
    assert f'href="{URL}"' in page
    assert "e00" in page and "e19" in page and "e20" not in page
