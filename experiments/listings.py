"""Reads behind the list pages and the API lists. Each costs what its page shows, not what
the team has: the page's rows are cut first, then whatever is counted is counted over the
runs of those rows only (one grouped query), so a page of a team with a million runs reads
the same few thousand index entries as a page of a new team."""

from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery
from django.db.models.fields.json import KT
from rest_framework.pagination import CursorPagination, PageNumberPagination

from .models import Experiment, Membership, Run

ACTIVE = (Run.Status.QUEUED, Run.Status.RUNNING)
# A run's and an experiment's large columns, which no list shows.
RUN_BULK = ("result", "stderr_tail", "curves")
EXPERIMENT_BULK = ("spec", "evidence")


def team_ids_of(user) -> list[int]:
    """The ids of the user's teams. Filtering on them (team_id IN (...)) instead of joining
    the memberships lets PostgreSQL walk a team's rows in index order and stop at the end of
    the page; behind the join it fetches and sorts every row of the team first."""
    if not user.is_authenticated:
        return []
    return list(Membership.objects.filter(user=user).values_list("team_id", flat=True))


def with_run_counts(experiments) -> list:
    """The experiments, each with run_count, active (queued or running) and failed: counted
    in one query over the runs of these experiments only (an index-only scan of
    Run(experiment, status)). No query for an empty page."""
    experiments = list(experiments)
    rows = (
        Run.objects.filter(experiment__in=[experiment.pk for experiment in experiments])
        .order_by()  # no ORDER BY in a GROUP BY
        .values("experiment")
        .annotate(run_count=Count("status"), active=Count("status", filter=Q(status__in=ACTIVE)),
                  failed=Count("status", filter=Q(status=Run.Status.FAILED)))
    )
    counts = {row["experiment"]: row for row in rows} if experiments else {}
    for experiment in experiments:
        row = counts.get(experiment.pk, {})
        experiment.run_count = row.get("run_count", 0)
        experiment.active = row.get("active", 0)
        experiment.failed = row.get("failed", 0)
    return experiments


def runs_of_teams(team_ids):
    """The runs of these teams. The bound on the newest experiment of the teams is the one
    PostgreSQL cannot infer: without it, a page that walks the runs index backwards starts
    at the newest run of any team, and reads past every newer run of the other teams."""
    newest = Experiment.objects.filter(team__in=team_ids).order_by("-id").values("id")[:1]
    return Run.objects.filter(experiment__team__in=team_ids,
                              experiment_id__lte=Subquery(newest))


def runs_listed(team_ids, *, experiment=None, status=None):
    """The API's run list: the runs of these teams (runs_of_teams) without their large
    columns, of one experiment and in one status when asked."""
    runs = runs_of_teams(team_ids).defer(*RUN_BULK)
    if experiment is not None:
        runs = runs.filter(experiment_id=experiment)
    if status is not None:
        runs = runs.filter(status=status)
    return runs


def experiments_of_teams(team_ids):
    """The API's experiment list: newest first, read in the order of the index on (team,
    -created_at, -id), without the spec and the evidence (the detail's, not the list's)."""
    return (Experiment.objects.filter(team__in=team_ids).select_related("team", "created_by")
            .defer(*EXPERIMENT_BULK).order_by("-created_at", "-pk"))


def discussion_of_teams(model, team_ids, *, related=(), deferred=()):
    """Comments, sign-offs or withdrawn sign-offs (`model`) of these teams' experiments,
    with `related` rows joined and their `deferred` columns left unread."""
    return (model.objects.filter(experiment__team__in=team_ids).select_related(*related)
            .defer(*deferred))


def roles_of(user) -> dict:
    """{team id: the user's role} for each of the user's teams."""
    return dict(Membership.objects.filter(user=user).values_list("team_id", "role"))


class IdsFirstPaginator(Paginator):
    """A page N deep skips N * size rows; here it skips index entries instead (the ids, an
    index-only scan when the index covers the filter and the ordering), and only the page's
    own rows are read, by primary key."""

    def page(self, number):
        number = self.validate_number(number)
        if number == 1:  # nothing to skip: the rows at once
            return super().page(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        ids = list(self.object_list.values_list("pk", flat=True)[bottom:top])
        return self._get_page(self.object_list.filter(pk__in=ids), number, self)


class IdsFirstPagination(PageNumberPagination):
    """The default page-number pagination (count, next, previous, results), with deep
    pages read ids first."""

    django_paginator_class = IdsFirstPaginator


class RunCursorPagination(CursorPagination):
    """Runs of the newest experiments first, each experiment's in the order of its page,
    from an opaque cursor: a page starts where the last one ended (the experiment id, plus
    an offset into that experiment's runs, at most 210 of them), so page 20,000 costs what
    page 1 does, and no page pays for a count of every run."""

    ordering = ("-experiment_id", "position", "replicate", "id")


EXPERIMENTS_PER_PAGE = 50
EXPERIMENT_ORDER = {
    "newest": ("-created_at", "-pk"),
    "oldest": ("created_at", "pk"),
    "fastest": (F("best_speedup").desc(nulls_last=True), "-pk"),
}


def experiments_listed(team_ids, filters: dict):
    """The experiments of these teams that pass the list's filters (ExperimentFilterForm),
    in its order, with what its rows show of the spec; their runs are counted for the page
    alone (with_run_counts). Each filter reads the experiments, never the team's runs: the
    status ones ask the runs of each experiment considered, by the (experiment, status)
    index."""
    experiments = (Experiment.objects.filter(team__in=team_ids)
                   .select_related("team", "created_by").defer(*EXPERIMENT_BULK)
                   .annotate(model_label=KT("spec__model__label"), arch=KT("spec__model__arch"),
                             dataset_name=KT("spec__dataset__name")))
    if filters.get("q"):
        # NUL is the one character PostgreSQL refuses in a LIKE pattern.
        experiments = experiments.filter(name__icontains=filters["q"].replace("\x00", ""))
    if filters.get("model"):
        experiments = experiments.filter(arch=filters["model"])
    if filters.get("dataset"):
        experiments = experiments.filter(dataset_name=filters["dataset"])
    if filters.get("technique"):
        experiments = experiments.filter(techniques__contains=f" {filters['technique']} ")
    if filters.get("author"):
        experiments = experiments.filter(created_by__username=filters["author"])
    status = filters.get("status")
    if status:
        runs = Run.objects.filter(experiment=OuterRef("pk"))
        active = Exists(runs.filter(status__in=ACTIVE))
        failed = Exists(runs.filter(status=Run.Status.FAILED))
        experiments = experiments.filter(
            active if status == "active" else failed if status == "failed"
            else Exists(runs) & ~active & ~failed)
    return experiments.order_by(*EXPERIMENT_ORDER[filters.get("sort") or "newest"])


def team_members(team_ids):
    """The users of these teams, by name: the list's author filter."""
    return (get_user_model().objects.filter(memberships__team__in=team_ids).distinct()
            .order_by("username").only("username"))
