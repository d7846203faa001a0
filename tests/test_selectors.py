"""The reads the pages are built from (experiments.selectors and experiments.listings),
called without a request: each keeps to the user's teams. Alice's team has Bob as a
viewer; Charlie has a team of his own and sees nothing of Alice's."""

import pytest
from django.utils import timezone

from experiments import listings, selectors
from experiments.models import (
    Benchmark,
    Comment,
    Dataset,
    Experiment,
    Membership,
    Recipe,
    Run,
    RunEvent,
    SignOff,
    WithdrawnSignOff,
    Worker,
)

XLA = [{"technique": "xla"}]


@pytest.fixture
def experiment(alice, alice_team, make_experiment):
    return make_experiment(team=alice_team, user=alice, name="alice's",
                           recipes=[{"name": "XLA", "steps": XLA}])


@pytest.fixture
def charlies(charlie, charlie_team, make_experiment):
    return make_experiment(team=charlie_team, user=charlie, name="charlie's")


def start(run, worker="w1@host"):
    Run.objects.filter(pk=run.pk).update(status=Run.Status.RUNNING, worker=worker,
                                         started_at=timezone.now())


def approve(run, user):
    return SignOff.objects.create(experiment=run.experiment, run=run, approved_by=user,
                                  model_label="seed_mlp on digits", evidence={})


# The home page


def test_home_overview_keeps_to_the_users_teams(alice, bob, charlie, experiment, charlies):
    xla = experiment.runs.get(name="XLA")
    start(xla)
    start(charlies.runs.get())
    signoff = approve(xla, alice)

    for user in (alice, bob):
        home = selectors.home_overview(user)
        assert [e.name for e in home["experiments"]] == ["alice's"]
        assert (home["experiments"][0].run_count, home["experiments"][0].active) == (2, 2)
        assert list(home["running"]) == [xla]
        assert list(home["signoffs"]) == [signoff]
    home = selectors.home_overview(charlie)
    assert [e.name for e in home["experiments"]] == ["charlie's"]
    assert [run.experiment_id for run in home["running"]] == [charlies.pk]
    assert list(home["signoffs"]) == []


def test_home_overview_shows_the_newest_experiments_first(alice, alice_team, make_experiment):
    for index in range(selectors.HOME_EXPERIMENTS + 2):
        make_experiment(team=alice_team, user=alice, name=f"e{index}")

    names = [e.name for e in selectors.home_overview(alice)["experiments"]]

    assert names == [f"e{index}" for index in range(selectors.HOME_EXPERIMENTS + 1, 1, -1)]


# The runners page


def test_runners_overview_names_only_the_users_own_work(alice, charlie, experiment):
    Worker.objects.create(name="w1@host", host="host", queues=["cpu", "tpu"],
                          devices={"cpu_model": "Xeon", "cpu_cores": 2, "gpus": []},
                          versions={"keras": "3.15.1", "python": "3.11"})
    xla = experiment.runs.get(name="XLA")
    start(xla)
    benchmark = Benchmark.objects.create(experiment=experiment, status="running",
                                         worker="w1@host")

    for user, visible in ((alice, True), (charlie, False)):
        overview = selectors.runners_overview(user)
        [row] = overview["rows"]
        assert row["worker"].name == "w1@host" and row["alive"]
        assert row["runs"] == [{"run": xla, "visible": visible},
                               {"benchmark": benchmark, "visible": visible}]
        assert overview["queues"] == ["cpu", "gpu", "tpu"]


# The exports


def test_experiment_export_has_every_epoch_and_benchmark(experiment):
    baseline = experiment.runs.get(name="baseline")
    for seq in (1, 2):
        RunEvent.objects.create(run=baseline, seq=seq, kind="epoch",
                                data={"event": "epoch", "epoch": seq, "loss": 1 / seq})
    benchmark = Benchmark.objects.create(experiment=experiment, raw={"rounds": [1, 2]})

    export = selectors.experiment_export(experiment)

    assert export["experiment"]["team"] == "Alice's team"
    assert [run["name"] for run in export["runs"]] == ["baseline", "XLA"]
    assert [epoch["loss"] for epoch in export["runs"][0]["epochs"]] == [1.0, 0.5]
    assert export["runs"][1]["epochs"] == []
    assert [(b["id"], b["raw"]) for b in export["benchmarks"]] == [
        (benchmark.pk, {"rounds": [1, 2]})]
    assert export["comparison"] == []


def test_experiment_export_rows_follow_the_columns(experiment):
    Run.objects.filter(name="XLA").update(status="failed", error="boom")

    rows = selectors.experiment_export_rows(experiment)

    assert all(len(row) == len(selectors.EXPORT_COLUMNS) for row in rows)
    named = [dict(zip(selectors.EXPORT_COLUMNS, row, strict=True)) for row in rows]
    assert [(r["name"], r["steps"], r["status"], r["error"]) for r in named] == [
        ("baseline", "baseline", "queued", ""), ("XLA", "xla", "failed", "boom")]


# The teams page


def test_teams_overview_lists_members_to_admins_only(alice, alice_team, bob, charlie,
                                                     charlie_team):
    Membership.objects.create(team=charlie_team, user=bob, role=Membership.Role.ADMIN)

    [(mine, members)] = selectors.teams_overview(alice)
    assert mine.team == alice_team
    assert [m.user.username for m in members] == ["alice", "bob"]
    overview = selectors.teams_overview(bob)
    assert [(m.team.name, m.role) for m, _ in overview] == [("Alice's team", "viewer"),
                                                           ("Charlie's team", "admin")]
    assert overview[0][1] is None  # a viewer of Alice's team does not manage it
    assert [m.user.username for m in overview[1][1]] == ["bob", "charlie"]


# The compare page's picker and the report


def test_compare_picker_keeps_to_the_team_and_brings_the_chosen(alice, alice_team, charlie,
                                                                experiment, charlies,
                                                                make_experiment):
    Run.objects.filter(name="XLA").update(status="succeeded")
    other = make_experiment(team=alice_team, user=alice, name="other")

    picked = selectors.compare_picker(alice, [], query="alice")
    assert picked == [experiment]
    assert [run.name for run in picked[0].succeeded_runs] == ["XLA"]
    # A chosen run's experiment stays, whatever the query, so it can be unticked.
    chosen = selectors.compare_picker(alice, [other.runs.get()], query="alice")
    assert chosen == [experiment, other]
    assert selectors.compare_picker(charlie, []) == [charlies]


def test_experiment_report_reads_the_discussion(alice, experiment):
    xla = experiment.runs.get(name="XLA")
    comment = Comment.objects.create(experiment=experiment, author=alice, body="Real.")
    signoff = approve(xla, alice)
    withdrawn = WithdrawnSignOff.objects.create(
        experiment=experiment, run=xla, approved_by=alice, approved_at=timezone.now(),
        evidence={}, model_label="seed_mlp on digits", reason="revoked")

    report = selectors.experiment_report(experiment)

    assert [run.name for run in report["runs"]] == ["baseline", "XLA"]
    assert (report["comments"], report["signoffs"]) == ([comment], [signoff])
    assert list(report["withdrawn"]) == [withdrawn]
    assert report["comparison"] == []


# The API's lists (experiments.listings)


def test_the_api_lists_keep_to_the_teams(alice, alice_team, charlie, experiment, charlies):
    mine = listings.team_ids_of(alice)
    xla = experiment.runs.get(name="XLA")
    start(xla)
    comment = Comment.objects.create(experiment=experiment, author=alice, body="Real.")
    Comment.objects.create(experiment=charlies, author=charlie, body="Secret.")

    assert list(listings.experiments_of_teams(mine)) == [experiment]
    assert set(listings.runs_listed(mine)) == set(experiment.runs.all())
    assert list(listings.runs_listed(mine, status="running")) == [xla]
    assert list(listings.runs_listed(mine, experiment=charlies.pk)) == []
    assert list(listings.discussion_of_teams(Comment, mine, related=("author",))) == [comment]
    assert listings.roles_of(alice) == {alice_team.pk: "admin"}
    assert not Experiment.objects.filter(pk__in=[e.pk for e in listings.experiments_of_teams(
        listings.team_ids_of(charlie))]).exclude(pk=charlies.pk).exists()


# The library, the uploads, the members and the API's detail


def test_the_library_and_uploads_keep_to_the_teams(alice, alice_team, bob, charlie,
                                                   charlie_team, make_dataset):
    recipe = Recipe.objects.create(team=alice_team, name="xla", steps=XLA, created_by=alice)
    Recipe.objects.create(team=charlie_team, name="secret", steps=XLA)
    blobs = make_dataset(team=alice_team)
    make_dataset(team=charlie_team, name="secret")

    assert list(selectors.recipes_of(bob)) == [recipe]
    assert list(selectors.uploads_of(Dataset, bob)) == [blobs]
    assert [r.name for r in selectors.recipes_of(charlie)] == ["secret"]
    assert [m.user.username for m in selectors.team_members(alice_team)] == ["alice", "bob"]


def test_experiment_detail_has_the_benchmark_and_the_comparison(experiment):
    assert selectors.experiment_detail(experiment) == {"benchmark": None, "comparison": []}
    benchmark = Benchmark.objects.create(experiment=experiment, status="queued")

    detail = selectors.experiment_detail(experiment)

    assert (detail["benchmark"]["id"], detail["benchmark"]["status"]) == (benchmark.pk,
                                                                          "queued")
    assert [run.name for run in experiment.runs.all()] == ["baseline", "XLA"]
