"""The dashboard at team scale (issue 12), in production mode: PostgreSQL and Redis.

Builds a database of its own on PostgreSQL: one team with N runs in experiments of 20-50
runs (SQL, INSERT ... SELECT generate_series), a small other team, and one experiment of
50 runs x 500 epochs whose events went through services.run_record_events (so its stored
curves are the ones ingestion stores), whose runs succeeded with results and a succeeded
benchmark, and whose evidence was stored by services.experiment_evidence_refresh. Then, at
each team size:

- the pages and API endpoints, server side (Django's test Client in this process, DEBUG
  off): median of --repeats calls after one warm-up, the warm-up's queries, response bytes;
- at the largest size, EXPLAIN (ANALYZE, BUFFERS) of the list endpoints' queries (printed);

and once, with the production stack running (uvicorn and a Celery worker, as
tests/livestack.py starts them, against this database and Redis):

- ingestion through the worker path: runners.process.run_engine with a synthetic engine
  child that prints epochs as fast as it can, each batch stored by run_record_events, in
  --ingest-processes fresh processes, with a websocket client counting every epoch back;
- live latency, engine epoch -> websocket client and -> drawn in headless Chromium, paced
  at 20 epochs/s, in production mode and in the embedded mode (`manage.py up`: uvicorn and
  the in-process channel layer, SQLite);
- MLflow's `log_batch` on a PostgreSQL backend store of its own, from a venv under /tmp,
  when MLflow installs there within --mlflow-install-seconds.

    .venv/bin/python bench/web.py [--runs 100000,1000000] [--quick] [--keep] [--write]

--quick: 5,000 runs, a 50 x 50 experiment, fewer repeats, for development. --write replaces
the "Web at team scale" section of docs/benchmarks.md. The database is dropped at the end
unless --keep.
"""

import argparse
import cProfile
import datetime
import json
import math
import os
import pstats
import random
import secrets
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from curves import CHROMIUM, CHROMIUM_ARGS, epoch_records, free_port, wait_healthy
from stage import ROOT, write_section

SECTION = "## Web at team scale"
POSTGRES = "postgres://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/12"
MLFLOW_VENV = Path(tempfile.gettempdir()) / "accelweb-bench-mlflow-venv"
# Tried in order: the release the issue names, then the newest one that resolves here.
MLFLOW_REQUIREMENTS = ("mlflow==3.18.0", "mlflow")
# The issue's own figures, quoted when MLflow does not install here.
MLFLOW_QUOTED = {"version": "3.17", "batched": 7662, "per_epoch": 922,
                 "source": "issue 12, measured on this project's machine on the same "
                           "PostgreSQL"}

# The 50-run experiment: a baseline and nine recipes, five replicates of each.
BIG_RECIPES = [
    {"name": "XLA", "steps": [{"technique": "xla"}]},
    {"name": "pruning", "steps": [{"technique": "pruning"}]},
    {"name": "clustering", "steps": [{"technique": "clustering"}]},
    {"name": "op parallelism", "steps": [{"technique": "op_parallelism"}]},
    {"name": "input pipeline", "steps": [{"technique": "input_pipeline"}]},
    {"name": "optimizer", "steps": [{"technique": "optimizer"}]},
    {"name": "lr schedule", "steps": [{"technique": "lr_schedule"}]},
    {"name": "batch norm", "steps": [{"technique": "batch_norm"}]},
    {"name": "regularization", "steps": [{"technique": "regularization"}]},
]
BIG_REPEATS = 5
# Events handed to run_record_events at a time while the 50-run experiment is built: what
# is stored (the events and Run.curves) does not depend on how they were batched.
BUILD_BATCH = 25
# Bulk experiments: 4-10 positions (position = id % 7 + 4) of five replicates each.
BULK_REPEATS = 5
BULK_NAME = "bulk experiment "
# Per statement while the team grows, so progress can be printed.
RUNS_PER_STATEMENT = 100_000
FINGERPRINT = {"cpu_model": "Intel(R) Xeon(R) Processor", "logical_cores": 2, "gpus": [],
               "backend": "tensorflow", "tensorflow": "2.21.0", "keras": "3.15.0"}
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "seconds", "epoch")
GOALS = {"page_ms": 100, "page_bytes": 300_000, "list_ms": 100, "list_runs": 1_000_000,
         "points_per_s": 50_000, "production_p95_ms": 15, "embedded_p95_ms": 10}

# The engine child of every measurement here (runners.process.ENGINE_COMMAND): it prints
# the spec's epochs (training.epochs, or "epochs") with six metrics each, flat out or one
# every BENCH_ENGINE_INTERVAL seconds, once the file BENCH_ENGINE_GO exists (if set), and
# puts the wall clock into each epoch as "sent_at" just before printing it. It prints
# nothing else (no phases, no model): only what ingestion and latency are measured on.
ENGINE = r"""
import json, os, sys, time
command, path = sys.argv[1], sys.argv[2]
if command != "run":
    print(json.dumps({"event": "error", "message": "bench/web.py's engine only trains"}))
    sys.exit(1)
spec = json.load(open(path))
epochs = int((spec.get("training") or {}).get("epochs") or spec["epochs"])
interval = float(os.environ.get("BENCH_ENGINE_INTERVAL") or 0)
go = os.environ.get("BENCH_ENGINE_GO")
deadline = time.monotonic() + 600
while go and not os.path.exists(go):
    # Never outlive a benchmark that stopped before it said go.
    if time.monotonic() > deadline or os.getppid() == 1:
        print(json.dumps({"event": "error", "message": "bench/web.py never said go"}))
        sys.exit(1)
    time.sleep(0.005)
write = sys.stdout.write
started = time.perf_counter()
for epoch in range(1, epochs + 1):
    if interval:
        time.sleep(max(0.0, started + epoch * interval - time.perf_counter()))
    done = epoch / epochs
    line = json.dumps({"event": "epoch", "epoch": epoch, "loss": 2.3 * (1 - done) + 0.05,
                       "accuracy": 0.1 + 0.85 * done, "val_loss": 2.3 * (1 - done) + 0.1,
                       "val_accuracy": 0.1 + 0.8 * done, "seconds": 0.01,
                       "sent_at": time.time()})
    write(line + "\n")
    if interval:
        sys.stdout.flush()
sys.stdout.flush()
print(json.dumps({"event": "result", "test_accuracy": 0.9, "latency_ms_p50": 1.0,
                  "model_bytes": 1000}))
"""
# Runs a module (`celery`) or a script (`manage.py`) with ENGINE as the engine: what a
# test's monkeypatch does, for a process the benchmark starts.
LAUNCH = f"""
import runpy, sys
import runners.process
runners.process.ENGINE_COMMAND = (sys.executable, "-c", {ENGINE!r})
target, sys.argv = sys.argv[1], sys.argv[1:]
if target.endswith(".py"):
    runpy.run_path(target, run_name="__main__")
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
"""

# Before the page's scripts. The page's onmessage is called from a listener of ours, so
# each epoch message is noted when it arrived, when the page's handler returned (the epoch
# drawn on the canvases: as new segments, or by a Chart.js update("none")) and at the next
# animation frame (just before that frame is painted), with whether the loss chart's last
# point of the run had reached the epoch by then.
LIVE_WATCH = """(() => {
  window.benchLive = [];
  const now = () => performance.timeOrigin + performance.now();
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      let handler = null;
      Object.defineProperty(this, "onmessage", {
        get: () => handler, set: (fn) => { handler = fn; } });
      this.addEventListener("message", (e) => {
        const received = now();
        if (handler) handler.call(this, e);
        const handled = now();
        if (typeof e.data !== "string") return;
        if (e.data.startsWith('{"type": "snapshot"')) { window.benchSnapshotAt = received; return; }
        if (!e.data.includes('"sent_at"')) return;
        const message = JSON.parse(e.data);
        const events = message.events || (message.event ? [message.event] : []);
        const epochs = events.filter((ev) => ev.event === "epoch" &&
          typeof ev.sent_at === "number");
        if (!epochs.length) return;
        requestAnimationFrame(() => {
          const frame = now();
          const datasets = window.accelweb.charts.loss.data.datasets
            .filter((d) => d.runId === message.run.id);
          const last = (d) => (d.data.length ? d.data[d.data.length - 1].x : 0);
          const drawnTo = Math.max(0, ...datasets.map(last));
          for (const ev of epochs) {
            window.benchLive.push({ epoch: ev.epoch, sent: ev.sent_at * 1000, received,
                                    handled, frame, drawn: drawnTo >= ev.epoch });
          }
        });
      });
    }
  };
})();"""
CURVES_LOADED = """() => window.accelweb && window.benchSnapshotAt !== undefined &&
  window.accelweb.state.runs.length > 0 && window.accelweb.state.runs.every((r) => r.series)"""
RUN_RUNNING = "() => window.accelweb.state.runs.every((r) => r.status === 'running')"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# The environment and the database.


def production_environment(database_url: str, redis_url: str, data_dir: Path) -> None:
    """This process's environment (and so its children's): the bench database, Redis, a
    data folder of its own, DEBUG off, a SECRET_KEY that every process here shares."""
    os.environ.update(
        DATABASE_URL=database_url, REDIS_URL=redis_url, ACCELWEB_DATA_DIR=str(data_dir),
        ACCELWEB_MEDIA_ROOT=str(data_dir / "media"), DEBUG="0",
        SECRET_KEY=os.environ.get("SECRET_KEY") or "bench-web-" + secrets.token_urlsafe(40),
        DJANGO_SETTINGS_MODULE="accelweb.settings", PYTHONUNBUFFERED="1",
        # The bulk experiments' queued runs were never sent, by design: the worker's
        # reconciler must not send them now and train them beside the measurements.
        ACCELWEB_REQUEUE_SECONDS=str(365 * 86400),
    )


def admin_sql(statement: str) -> None:
    import psycopg

    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
        conn.execute(statement)


def database_create(name: str) -> None:
    admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin_sql(f'CREATE DATABASE "{name}"')


def database_drop(name: str) -> None:
    admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Building the team.


def accounts():
    """The benchmark's user (a superuser, for the admin), its team, a small other team,
    and an API token."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from experiments.models import Membership, Team

    user = get_user_model().objects.create_superuser("bench", "bench@example.org", None)
    team = Team.objects.create(name="Bench team")
    other = Team.objects.create(name="Other team")
    Membership.objects.create(team=team, user=user, role=Membership.Role.ADMIN)
    return user, team, other, Token.objects.create(user=user).key


def spec_of(team, *, name, recipes, epochs, repeats=1):
    from experiments.spec import validate_spec

    raw = {"name": name, "model": {"arch": "seed_mlp", "params": {}},
           "dataset": {"name": "digits"}, "hardware": "cpu", "recipes": recipes,
           "training": {"epochs": min(epochs, 500), "repeats": repeats}}
    spec = validate_spec(raw, team=team)
    # The spec allows at most 500 epochs; progress and the page only read the number.
    spec["training"]["epochs"] = epochs
    return spec


BULK_EXPERIMENTS = """
INSERT INTO experiments_experiment (team_id, name, spec, hardware, accuracy_budget,
                                    created_by_id, created_at, techniques, best_speedup)
SELECT %(team)s, %(prefix)s || g, jsonb_set(%(spec)s::jsonb, '{name}', to_jsonb(%(prefix)s || g)),
       'cpu', 0.01, %(user)s,
       -- A year of experiments, the newest an hour ago.
       now() - interval '1 hour' - interval '365 days' * random(),
       -- What Experiment.save and the evidence would store; a made-up best speedup (these
       -- have no evidence) for nine in ten, for the list's sort to have something to sort.
       %(techniques)s,
       CASE WHEN random() < 0.9 THEN round((0.8 + 3 * random())::numeric, 4) END
FROM generate_series(%(first)s::int, %(last)s::int) AS g
"""
# Each experiment's runs as experiment_create orders them (replicate by replicate), with
# statuses as a year of work leaves them: mostly succeeded with a small result, some failed,
# a few cancelled.
BULK_RUNS = """
INSERT INTO experiments_run (experiment_id, name, position, replicate, steps, status, progress,
                             epochs_done, worker, device, cancel_requested, result, error,
                             stderr_tail, created_at, started_at, finished_at, heartbeat_at,
                             curves, queued_at)
SELECT id, name, position, replicate, steps, status,
       CASE status WHEN 'succeeded' THEN 1.0 ELSE round((u * 10)::numeric, 2) END,
       CASE status WHEN 'succeeded' THEN 20 ELSE (u * 200)::int END,
       'celery@runner-' || (id %% 3), 'cpu', status = 'cancelled',
       CASE status WHEN 'succeeded' THEN jsonb_build_object(
         'test_accuracy', round((0.9 + 0.08 * random())::numeric, 4),
         'latency_ms_p50', round((0.4 + random())::numeric, 4),
         'model_bytes', 60000 + (random() * 400000)::int,
         'train_samples_per_s', round((2000 + 3000 * random())::numeric, 1),
         'runtime', 'keras', 'fingerprint', %(fingerprint)s::jsonb) END,
       CASE status WHEN 'failed' THEN 'The engine exited with code 1 and no result.' ELSE '' END,
       CASE status WHEN 'failed' THEN 'Traceback (most recent call last): ...' ELSE '' END,
       created_at, finished_at - interval '3 minutes', finished_at, finished_at, '{}'::jsonb,
       created_at
FROM (
  SELECT e.id, r.name, r.ord - 1 AS position, rep AS replicate, r.steps::jsonb AS steps,
         e.created_at, e.created_at + interval '3 minutes' * (rep * 10 + r.ord) AS finished_at,
         random() AS u,
         CASE WHEN random() < 0.88 THEN 'succeeded' WHEN random() < 0.6 THEN 'failed'
              ELSE 'cancelled' END AS status
  FROM experiments_experiment e
  CROSS JOIN generate_series(0, %(repeats)s - 1) AS rep
  CROSS JOIN unnest(%(names)s::text[], %(steps)s::text[]) WITH ORDINALITY AS r(name, steps, ord)
  WHERE e.team_id = %(team)s AND e.id > %(after)s AND e.name LIKE %(pattern)s
    AND r.ord <= 4 + e.id %% 7
  ORDER BY e.id, rep, r.ord
) AS planned
"""
# The newest three bulk experiments are under way: each runs its first run, the rest wait.
BULK_ACTIVE = """
WITH newest AS (
  SELECT id FROM experiments_experiment
  WHERE team_id = %(team)s AND name LIKE %(pattern)s ORDER BY created_at DESC, id DESC LIMIT 3
)
UPDATE experiments_run AS r
SET status = CASE WHEN r.position = 0 AND r.replicate = 0 THEN 'running' ELSE 'queued' END,
    progress = CASE WHEN r.position = 0 AND r.replicate = 0 THEN 0.4 ELSE 0 END,
    epochs_done = CASE WHEN r.position = 0 AND r.replicate = 0 THEN 8 ELSE 0 END,
    started_at = CASE WHEN r.position = 0 AND r.replicate = 0 THEN now() END,
    heartbeat_at = CASE WHEN r.position = 0 AND r.replicate = 0 THEN now() END,
    worker = CASE WHEN r.position = 0 AND r.replicate = 0 THEN r.worker ELSE '' END,
    result = NULL, error = '', stderr_tail = '', finished_at = NULL, cancel_requested = false
FROM newest WHERE r.experiment_id = newest.id
"""


class Bulk:
    """A team's bulk experiments and runs, grown by SQL to a number of runs."""

    def __init__(self, team, user, spec):
        self.team, self.user, self.spec = team, user, spec
        self.experiments = 0
        recipes = [{"name": "baseline", "steps": []}, *BIG_RECIPES]
        self.names = [recipe["name"] for recipe in recipes]
        self.steps = [json.dumps(recipe["steps"]) for recipe in recipes]

    def runs(self) -> int:
        from experiments.models import Run

        return Run.objects.filter(experiment__team=self.team).count()

    def grow(self, target: int) -> int:
        """Add experiments until the team has about `target` runs (35 runs an experiment
        on average); returns the team's runs."""
        from django.db import connection, transaction

        from experiments.models import spec_techniques

        have = self.runs()
        while have < target:
            experiments = max(1, min(RUNS_PER_STATEMENT, target - have) // 35)
            first = self.experiments + 1
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT coalesce(max(id), 0) FROM experiments_experiment")
                after = cursor.fetchone()[0]
                cursor.execute(BULK_EXPERIMENTS, {
                    "team": self.team.pk, "user": self.user.pk, "prefix": BULK_NAME,
                    "spec": json.dumps(self.spec), "techniques": spec_techniques(self.spec),
                    "first": first,
                    "last": first + experiments - 1})
                cursor.execute(BULK_RUNS, {
                    "team": self.team.pk, "after": after, "pattern": BULK_NAME + "%",
                    "repeats": BULK_REPEATS, "names": self.names, "steps": self.steps,
                    "fingerprint": json.dumps(FINGERPRINT)})
            self.experiments += experiments
            have = self.runs()
            log(f"  {self.team.name}: {self.experiments:,} bulk experiments, {have:,} runs")
        with connection.cursor() as cursor:
            cursor.execute(BULK_ACTIVE, {"team": self.team.pk, "pattern": BULK_NAME + "%"})
        return have


def vacuum_analyze() -> None:
    """VACUUM ANALYZE: fresh statistics, and the visibility map that index-only scans
    need, as autovacuum leaves a table some time after a load (a bulk INSERT sets none)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")


def settle(what: str, *, below: float = 1.0, limit: float = 120.0) -> float:
    """Before a measurement: PostgreSQL writes out what the load left dirty (CHECKPOINT),
    then up to `limit` seconds for the machine to quiet down (the 1-minute load average
    below `below`: the million-run load, autovacuum and the services' start are over).
    Returns the load average the measurement starts at."""
    # Over an admin connection, not Django's: the browser measurements run inside
    # Playwright's event loop, where Django refuses synchronous database calls.
    admin_sql("CHECKPOINT")
    deadline = time.monotonic() + limit
    while os.getloadavg()[0] >= below and time.monotonic() < deadline:
        time.sleep(2)
    load = os.getloadavg()[0]
    log(f"  {what}: starts at a load average of {load:.2f}")
    return load


def big_result(position: int, replicate: int) -> dict:
    """A result as the engine stores it (tests/results.py's shape): recipe p trains and
    infers 1 + 0.08 p times as fast as the baseline, with a little spread."""
    speed = 1.0 + 0.08 * position
    spread = (0.95, 0.98, 1.0, 1.02, 1.05)
    jitter = (1.0, 1 / 1.02, 1.02, 1 / 1.01, 1.01)[replicate % 5] if position else 1.0
    rate, latency = 1000.0 * speed * jitter, 2.0 / speed
    return {"train_samples_per_s": rate,
            "train_samples_per_s_epochs": [round(rate * f, 3) for f in spread],
            "latency_ms_p50": latency, "latency_samples": [round(latency * f, 5) for f in spread],
            "model_bytes": 160_000 - 4_000 * position, "test_accuracy": 0.95 - 0.001 * position,
            "test_samples": 360, "runtime": "keras", "fingerprint": dict(FINGERPRINT)}


def telemetry_records(epochs: list[dict], rng: random.Random) -> list[tuple[int, dict]]:
    """A sample every second of training, as runners.telemetry samples a run: (the epoch
    it falls in, the event)."""
    samples, elapsed, next_at = [], 0.0, 1.0
    for record in epochs:
        elapsed += record["seconds"]
        while next_at <= elapsed:
            samples.append((record["epoch"], {
                "event": "telemetry", "t": round(next_at, 3),
                "cpu_percent": round(180 + rng.gauss(0, 8), 1),
                "rss_mb": round(900 + 40 * rng.random(), 1), "gpu_util": None,
                "gpu_mem_mb": None}))
            next_at += 1.0
    return samples


def big_experiment(team, user, epochs: int):
    """The 50-run experiment, built through the services as the worker stores a run."""
    from django.utils import timezone

    from experiments import services
    from experiments.comparison import AA_PAIR, pair_ids, primary_run, recipe_groups
    from experiments.models import Benchmark, Experiment, Run
    from runners.engine.measure import paired_speedup

    spec = spec_of(team, name=f"{len(BIG_RECIPES) + 1} recipes x {BIG_REPEATS} replicates x "
                   f"{epochs} epochs (synthetic load)", recipes=BIG_RECIPES, epochs=epochs,
                   repeats=BIG_REPEATS)
    experiment = Experiment.objects.create(
        team=team, name=spec["name"], spec=spec, hardware="cpu",
        accuracy_budget=spec["accuracy_budget"], created_by=user)
    now = timezone.now()
    recipes = [{"name": "baseline", "steps": []}, *spec["recipes"]]
    runs = Run.objects.bulk_create([
        Run(experiment=experiment, name=recipe["name"], position=position, replicate=replicate,
            steps=recipe["steps"], status=Run.Status.RUNNING, worker="celery@bench",
            device="cpu", started_at=now, heartbeat_at=now)
        for replicate in range(BIG_REPEATS) for position, recipe in enumerate(recipes)])
    rng = random.Random(epochs)
    for run in runs:
        run.experiment = experiment
        records = epoch_records(epochs, rng, speed=4.0 + run.position / 2)
        telemetry = {}
        for epoch, sample in telemetry_records(records, rng):
            telemetry.setdefault(epoch, []).append(sample)
        events = [{"event": "phase", "phase": "train"}]
        for record in records:
            events += [record, *telemetry.get(record["epoch"], [])]
        result = {"event": "result", **big_result(run.position, run.replicate)}
        events += [{"event": "phase", "phase": "evaluate"}, result]
        for start in range(0, len(events), BUILD_BATCH):
            services.run_record_events(run, events[start:start + BUILD_BATCH])
        run.mark_finished(Run.Status.SUCCEEDED, result=big_result(run.position, run.replicate))
    log(f"  {len(runs)} runs x {epochs} epochs stored through run_record_events")

    # A succeeded benchmark of the recipes' first replicates (tests/results.py's shape).
    runs = list(experiment.runs.all())
    groups = recipe_groups(runs)
    base = primary_run(groups[0]).result["latency_ms_p50"]

    def pair(pair_id, slow, fast):
        executions = [[slow / fast * spread] * 3
                      for spread in (1 / 1.03, 1 / 1.01, 1.0, 1.01, 1.03)]
        speedup, ci, method = paired_speedup(executions)
        return {"id": pair_id, "inference_speedup": speedup, "inference_ci": ci,
                "throughput_speedup": speedup, "throughput_ci": ci, "method": method}

    pairs = [pair(AA_PAIR, base, base)] + [
        pair(pair_ids(primary_run(group).pk)["vs baseline"], base,
             primary_run(group).result["latency_ms_p50"])
        for position, group in groups.items() if position]
    Benchmark.objects.create(
        experiment=experiment, status=Run.Status.SUCCEEDED, executions=5, rounds=20,
        runs=services.benchmark_runs(runs), result={"models": {}, "pairs": pairs},
        started_at=timezone.now(), finished_at=timezone.now())
    services.experiment_evidence_refresh(experiment)
    return experiment


def other_team_experiments(team, user, spec, count: int = 20):
    """Another team's experiments, of a team the user is not in: what every list must
    leave out."""
    from django.db import connection

    from experiments.models import spec_techniques

    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM experiments_experiment")
        after = cursor.fetchone()[0]
        cursor.execute(BULK_EXPERIMENTS.replace("interval '365 days' * random()",
                                                "interval '1 minute' * g"), {
            "team": team.pk, "user": user.pk, "prefix": BULK_NAME, "spec": json.dumps(spec),
            "techniques": spec_techniques(spec), "first": 1, "last": count})
        cursor.execute(BULK_RUNS, {
            "team": team.pk, "after": after, "pattern": BULK_NAME + "%",
            "repeats": BULK_REPEATS, "names": ["baseline"] + [r["name"] for r in BIG_RECIPES],
            "steps": ["[]"] + [json.dumps(r["steps"]) for r in BIG_RECIPES],
            "fingerprint": json.dumps(FINGERPRINT)})


# Server-side timings.


def endpoints(big, session, token) -> list[tuple[str, str, object]]:
    """(name, url, client) of everything timed at each size."""
    from experiments.models import Experiment

    pages = max(1, math.ceil(Experiment.objects.filter(team=big.team_id).count() / 50))
    deep = min(100, pages)
    return [
        ("experiment page", f"/experiments/{big.pk}/", session),
        ("its /results/ fragment", f"/experiments/{big.pk}/results/", session),
        ("its /curves/", f"/experiments/{big.pk}/curves/", session),
        ("API experiment detail", f"/api/experiments/{big.pk}/", token),
        ("home page", "/", session),
        ("API experiments list", "/api/experiments/", token),
        (f"API experiments list, page {deep}", f"/api/experiments/?page={deep}", token),
        ("experiments list", "/experiments/", session),
        (f"experiments list, page {deep}", f"/experiments/?page={deep}", session),
        ("experiments list, finished, best speedup first",
         "/experiments/?status=finished&sort=fastest", session),
        ("experiments list, searched by name and technique",
         "/experiments/?q=experiment+77&technique=pruning", session),
        ("API runs list", "/api/runs/", token),
        ("API runs list, next page", None, token),
        ("admin runs changelist", "/admin/experiments/run/", session),
    ]


LISTS = ("home page", "API experiments list", "experiments list", "API runs list",
         "API runs list, next page", "admin runs changelist")


class QueryTimer:
    """connection.execute_wrapper: the time spent in the database driver, to the
    microsecond (Django's own query log rounds each query to the millisecond)."""

    def __init__(self):
        self.seconds = 0.0

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started


def timed_get(client, url: str, repeats: int, *, profile: bool = False) -> dict:
    """One warm-up GET with its queries captured, then `repeats` timed GETs, each with the
    time its queries took."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    # Read now: the next request clears the connection's log (reset_queries).
    captured = list(queries.captured_queries)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url}: {response.status_code} {response.content[:400]!r}")
    seconds, sql = [], []
    for _ in range(repeats):
        timer = QueryTimer()
        with connection.execute_wrapper(timer):
            started = time.perf_counter()
            response = client.get(url)
            seconds.append(time.perf_counter() - started)
        sql.append(timer.seconds)
        assert response.status_code == 200, (url, response.status_code)
    found = {"url": url, "ms": [s * 1000 for s in seconds], "queries": len(captured),
             "sql_ms": statistics.median(sql) * 1000,
             "bytes": len(response.content), "sql": [q["sql"] for q in captured],
             "response": response}
    if profile:
        profiler = cProfile.Profile()
        profiler.runcall(client.get, url)
        stats = pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative")
        log(f"--- profile of GET {url}")
        stats.print_stats(18)
    return found


def time_endpoints(big, session, token, repeats, *, profile=False) -> list[dict]:
    rows = []
    for name, url, client in endpoints(big, session, token):
        if url is None:  # the runs list's second page, from the first one's cursor
            following = rows[-1]["response"].json()["next"]
            if following is None:
                continue
            url = f"{urlsplit(following).path}?{urlsplit(following).query}"
        found = timed_get(client, url, repeats, profile=profile)
        found["name"] = name
        rows.append(found)
        log(f"  {name}: {statistics.median(found['ms']):.1f} ms, {found['queries']} queries, "
            f"{found['bytes']:,} bytes")
    return rows


def explain(rows) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of each SELECT the list endpoints ran: its execution time,
    its plan's top line and the buffers that line read."""
    from django.db import connection

    lines = []
    for row in rows:
        if row["name"] not in LISTS:
            continue
        lines.append(f"{row['name']} ({row['url']}):")
        for sql in row["sql"]:
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                plan = [line for (line,) in cursor.fetchall()]
            top = plan[0].strip()
            buffers = next((line.strip() for line in plan if "Buffers:" in line), "")
            total = next((line.strip() for line in plan if line.startswith("Execution Time")),
                         "")
            short = " ".join(sql.split())
            lines.append(f"  {total:28} {short[:150]}{'...' if len(short) > 150 else ''}")
            lines.append(f"      {top[:160]}")
            if buffers:
                lines.append(f"      {buffers}")
    return lines


# Processes: the production stack, the embedded one, and websocket clients.


class Processes:
    """Processes the benchmark started, each in a session of its own, stopped at the end."""

    def __init__(self, folder: Path):
        self.folder, self.procs, self.logs = folder, {}, {}

    def start(self, name, argv, env=None):
        log_path = self.folder / f"{name}.log"
        self.logs[name] = log_path
        with open(log_path, "w") as out:
            self.procs[name] = subprocess.Popen(
                argv, cwd=ROOT, env=env or os.environ.copy(), stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
        return self.procs[name]

    def wait_for_log(self, name, text, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.logs[name].read_text():
                return
            if self.procs[name].poll() is not None:
                break
            time.sleep(0.3)
        raise RuntimeError(f"{name} did not say {text!r}:\n{self.tail(name)}")

    def tail(self, name, chars=3000):
        return self.logs[name].read_text()[-chars:]

    def stop(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.procs = {}


def launcher(*argv) -> list[str]:
    """argv of a process that runs `celery ...` or `manage.py ...` with ENGINE as its
    engine."""
    return [sys.executable, "-c", LAUNCH, *argv]


class SocketClient(threading.Thread):
    """A websocket client of an experiment's page socket, in a thread: notes when each
    epoch of `run_id` arrives (time.time(), the engine child's clock)."""

    def __init__(self, url: str, origin: str, session: str, run_id: int):
        super().__init__(daemon=True)
        self.url, self.origin, self.session, self.run_id = url, origin, session, run_id
        self.arrived = {}  # epoch -> (arrived at, sent at)
        self.snapshot = threading.Event()
        self.stopping = threading.Event()
        self.messages = 0
        self.error = None

    def run(self):
        from websockets.sync.client import connect

        try:
            with connect(self.url, origin=self.origin, proxy=None, max_size=None,
                         additional_headers={"Cookie": f"sessionid={self.session}"}) as socket:
                while not self.stopping.is_set():
                    try:
                        text = socket.recv(timeout=0.5)
                    except TimeoutError:
                        continue
                    arrived = time.time()
                    self.messages += 1
                    message = json.loads(text)
                    if message.get("type") == "snapshot":
                        self.snapshot.set()
                        continue
                    if (message.get("run") or {}).get("id") != self.run_id:
                        continue
                    events = message.get("events") or [message.get("event") or {}]
                    for event in events:
                        if event.get("event") == "epoch":
                            self.arrived.setdefault(event["epoch"],
                                                    (arrived, event.get("sent_at")))
        except Exception as exc:  # reported by the caller, which waits on this thread
            self.error = exc
            self.snapshot.set()

    def wait_for(self, epochs: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.arrived) < epochs and not self.error:
            time.sleep(0.02)
        return len(self.arrived) >= epochs

    def close(self):
        self.stopping.set()
        self.join(timeout=5)


def session_of(user) -> str:
    from django.conf import settings
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def running_experiment(team, user, *, epochs: int, name: str):
    """A one-run experiment whose run a worker has claimed (no broker message)."""
    from experiments.models import Experiment, Run

    spec = spec_of(team, name=name, recipes=[], epochs=epochs)
    experiment = Experiment.objects.create(team=team, name=name, spec=spec, hardware="cpu",
                                           accuracy_budget=spec["accuracy_budget"],
                                           created_by=user)
    run = Run.objects.create(experiment=experiment, name="baseline", steps=[])
    Run.claim(run.pk, worker="celery@bench-ingest")
    return experiment, run


# Ingestion.


def ingest_child(run_id: int, epochs: int) -> None:
    """In a fresh process: run the engine child over the worker path (run_engine with
    on_events=run_record_events, the task's heartbeat and cancel poll), as
    runners.tasks.execute_run does; print what it took as JSON."""
    import django

    django.setup()
    from experiments.curves import view
    from experiments.models import Run, RunEvent
    from experiments.services import run_record_events
    from runners import process, tasks

    process.ENGINE_COMMAND = (sys.executable, "-c", ENGINE)
    run = Run.objects.select_related("experiment").get(pk=run_id)
    batches = []

    def on_events(events):
        batches.append(len(events))
        run_record_events(run, events)

    started_at = time.time()
    started = time.perf_counter()
    outcome = process.run_engine({"epochs": epochs}, on_events=on_events,
                                 should_stop=tasks._beating(run))
    seconds = time.perf_counter() - started
    run.mark_finished(Run.Status.SUCCEEDED, result=outcome.result)
    stored = RunEvent.objects.filter(run=run, kind="epoch").count()
    run.refresh_from_db()
    print(json.dumps({
        "seconds": seconds, "started_at": started_at, "returncode": outcome.returncode,
        "epochs_stored": stored, "curves_last_epoch": view(run.curves)["last_epoch"],
        "batches": len(batches), "largest_batch": max(batches, default=0),
        "median_batch": statistics.median(batches) if batches else 0,
    }))


def ingestion(team, user, web_url, session, *, epochs: int, processes: int) -> list[dict]:
    found = []
    for index in range(processes):
        experiment, run = running_experiment(team, user, epochs=epochs,
                                             name=f"ingestion {index + 1} (synthetic engine)")
        client = SocketClient(f"ws://127.0.0.1:{web_url.port}/ws/experiments/{experiment.pk}/",
                              web_url.origin, session, run.pk)
        client.start()
        client.snapshot.wait(30)
        if client.error:
            raise RuntimeError(f"websocket: {client.error!r}")
        child = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--ingest-run", str(run.pk),
             "--ingest-epochs", str(epochs)], cwd=ROOT, capture_output=True, text=True,
            timeout=900)
        if child.returncode != 0:
            raise RuntimeError(f"ingestion child failed:\n{child.stderr[-3000:]}")
        result = json.loads(child.stdout.strip().splitlines()[-1])
        complete = client.wait_for(epochs, timeout=60)
        client.close()
        last = max((at for at, _ in client.arrived.values()), default=float("nan"))
        result.update(
            points=epochs * len(METRICS), epochs=epochs, received=len(client.arrived),
            all_received=complete and set(client.arrived) == set(range(1, epochs + 1)),
            received_seconds=last - result["started_at"], messages=client.messages)
        result["stored_per_s"] = result["points"] / result["seconds"]
        result["received_per_s"] = result["points"] / result["received_seconds"]
        assert result["epochs_stored"] == epochs and result["curves_last_epoch"] == epochs, result
        found.append(result)
        log(f"  ingestion {index + 1}: {result['stored_per_s']:,.0f} points/s stored, "
            f"{result['received']:,}/{epochs:,} epochs received "
            f"({result['received_per_s']:,.0f} points/s), {result['batches']} batches")
    return found


# Live latency.


class WebUrl:
    def __init__(self, port):
        self.port = port
        self.base = f"http://127.0.0.1:{port}/"
        self.origin = f"http://127.0.0.1:{port}"


def browser_live(playwright, url: WebUrl, page_path: str, *, cookie=None, login=None):
    """A headless Chromium page of the experiment, logged in (a session cookie, or the
    login form), with LIVE_WATCH in place, its curves fetched and its socket open."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    if cookie:
        context.add_cookies([{"name": "sessionid", "value": cookie, "url": url.base}])
    page = context.new_page()
    if login:
        page.goto(url.base + "login/")
        page.fill("#id_username", login[0])
        page.fill("#id_password", login[1])
        page.click("main button[type=submit]")
        page.wait_for_url(url.base)
    page.add_init_script(LIVE_WATCH)
    page.goto(url.base + page_path.lstrip("/"))
    page.wait_for_function(CURVES_LOADED, timeout=60_000)
    session = next(c["value"] for c in context.cookies() if c["name"] == "sessionid")
    return browser, page, session


def percentile(values, q):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = max(0, math.ceil(q / 100 * len(ordered)) - 1)
    return ordered[index]


def latency_summary(values) -> dict:
    return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "max": max(values) if values else float("nan")}


def live_latency(page, client: SocketClient, go_file: Path, epochs: int, interval: float):
    """Start the paced epochs, and collect each one's latency to the websocket client and
    to the page (arrived, and drawn in the next animation frame)."""
    page.wait_for_function(RUN_RUNNING, timeout=60_000)
    client.start()
    client.snapshot.wait(30)
    if client.error:
        raise RuntimeError(f"websocket: {client.error!r}")
    go_file.touch()
    client.wait_for(epochs, timeout=epochs * interval + 60)
    page.wait_for_function(f"() => window.benchLive.length >= {epochs}",
                           timeout=60_000)
    client.close()
    seen = page.evaluate("() => window.benchLive")
    socket = [(arrived - sent) * 1000 for arrived, sent in client.arrived.values()]
    return {
        "epochs": epochs, "interval_s": interval,
        "socket_received": len(client.arrived), "page_received": len(seen),
        "drawn_all": all(entry["drawn"] for entry in seen),
        "socket_ms": latency_summary(socket),
        "page_message_ms": latency_summary([e["received"] - e["sent"] for e in seen]),
        "page_handled_ms": latency_summary([e["handled"] - e["sent"] for e in seen]),
        "page_drawn_ms": latency_summary([e["frame"] - e["sent"] for e in seen]),
    }


def production_run(team, user, *, epochs: int):
    """The run whose live latency is measured in production: submitted as the form
    submits one (experiment_create, queued on commit), so the worker's execute_run runs it;
    its engine waits for the go file. (experiment id, run id, a session for the browser.)
    Before Playwright starts: Django refuses the database inside its event loop."""
    from experiments.services import experiment_create

    spec = spec_of(team, name="live latency, production (synthetic engine)", recipes=[],
                   epochs=epochs)
    experiment = experiment_create(team=team, user=user, spec=spec)
    return experiment.pk, experiment.runs.get().pk, session_of(user)


def live_production(playwright, url: WebUrl, folder: Path, submitted, *, epochs, interval):
    """Live latency through the production stack: the Celery worker runs the run (its
    engine is ENGINE), uvicorn serves the page, Redis carries the broadcasts."""
    experiment_id, run_id, cookie = submitted
    browser, page, session = browser_live(playwright, url, f"experiments/{experiment_id}/",
                                          cookie=cookie)
    try:
        client = SocketClient(f"ws://127.0.0.1:{url.port}/ws/experiments/{experiment_id}/",
                              url.origin, session, run_id)
        return {**live_latency(page, client, folder / "go-production", epochs, interval),
                "chromium": browser.version}
    finally:
        browser.close()


def live_embedded(playwright, folder: Path, *, epochs, interval):
    """Live latency in the embedded mode: `manage.py up` (uvicorn, the worker thread, the
    in-process channel layer, SQLite) in a data folder of its own, an experiment submitted
    with `manage.py submit`."""
    data = folder / "embedded"
    go_file = folder / "go-embedded"
    password = "bench-" + secrets.token_urlsafe(12)
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "REDIS_URL", "ACCELWEB_MEDIA_ROOT", "SECRET_KEY")}
    env.update(ACCELWEB_DATA_DIR=str(data), ACCELWEB_DEMO_PASSWORD=password, DEBUG="0",
               BENCH_ENGINE_GO=str(go_file), BENCH_ENGINE_INTERVAL=str(interval))
    procs = Processes(folder)
    port = free_port()
    url = WebUrl(port)
    up = procs.start("embedded-up", launcher("manage.py", "up", "--port", str(port)), env=env)
    try:
        wait_healthy(url.base, up, procs.logs["embedded-up"], timeout=180)
        spec_path = folder / "embedded-spec.json"
        spec_path.write_text(json.dumps({
            "name": "live latency, embedded (synthetic engine)",
            "model": {"arch": "seed_mlp", "params": {}}, "dataset": {"name": "digits"},
            "hardware": "cpu", "recipes": [], "training": {"epochs": epochs}}))
        submitted = subprocess.run(
            [sys.executable, "manage.py", "submit", str(spec_path), "--user", "demo"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True)
        experiment_id = int(submitted.stdout.split("Experiment ", 1)[1].split()[0])
        browser, page, session = browser_live(playwright, url, f"experiments/{experiment_id}/",
                                              login=("demo", password))
        try:
            run_id = page.evaluate("() => window.accelweb.state.runs[0].id")
            client = SocketClient(f"ws://127.0.0.1:{port}/ws/experiments/{experiment_id}/",
                                  url.origin, session, run_id)
            return {**live_latency(page, client, go_file, epochs, interval),
                    "chromium": browser.version}
        finally:
            browser.close()
    finally:
        procs.stop()


def production_stack(folder: Path, *, interval: float) -> Processes:
    """uvicorn and a Celery worker against the bench database and Redis, started as
    tests/livestack.py starts them; the worker's engine is ENGINE, paced and gated by the
    go file of the run being measured."""
    procs = Processes(folder)
    env = {**os.environ, "BENCH_ENGINE_GO": str(folder / "go-production"),
           "BENCH_ENGINE_INTERVAL": str(interval)}
    port = free_port()
    procs.web_url = WebUrl(port)
    web = procs.start("uvicorn", [sys.executable, "-m", "uvicorn", "accelweb.asgi:application",
                                  "--host", "127.0.0.1", "--port", str(port)], env=env)
    procs.start("worker", launcher("celery", "-A", "accelweb", "worker", "-Q", "cpu,gpu",
                                   "--concurrency", "1", "--loglevel", "INFO",
                                   "-n", "bench-web@%h"), env=env)
    wait_healthy(procs.web_url.base, web, procs.logs["uvicorn"])
    procs.wait_for_log("worker", "ready.")
    return procs


# MLflow beside it.


MLFLOW_SCRIPT = r"""
import json, sys, time
import mlflow
import sqlalchemy
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

uri, batched_epochs, single_epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "seconds", "epoch")
started = time.perf_counter()
client = MlflowClient(tracking_uri=uri)
experiment = client.create_experiment("accelweb bench/web.py")
setup = time.perf_counter() - started

def metrics(epoch):
    now = int(time.time() * 1000)
    return [Metric(key, 1.0 / epoch + i, now, epoch) for i, key in enumerate(KEYS)]

run = client.create_run(experiment).info.run_id
points = [m for epoch in range(1, batched_epochs + 1) for m in metrics(epoch)]
started = time.perf_counter()
for start in range(0, len(points), 1000):
    client.log_batch(run, metrics=points[start:start + 1000])
batched = time.perf_counter() - started

run = client.create_run(experiment).info.run_id
started = time.perf_counter()
for epoch in range(1, single_epochs + 1):
    client.log_batch(run, metrics=metrics(epoch))
single = time.perf_counter() - started
print(json.dumps({"version": mlflow.__version__, "sqlalchemy": sqlalchemy.__version__,
                  "setup_s": setup, "batched_points": len(points), "batched_s": batched,
                  "per_epoch_points": single_epochs * len(KEYS), "per_epoch_s": single}))
"""


def mlflow_python(install_seconds: int) -> tuple[Path | None, str]:
    """The venv's python with MLflow in it (installed now if need be), or None and why."""
    python = MLFLOW_VENV / "bin" / "python"
    check = [str(python), "-c", "import mlflow, psycopg2; print(mlflow.__version__)"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python, "reused"
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(MLFLOW_VENV)], check=True)
    deadline = time.monotonic() + install_seconds
    why = ""
    for requirement in MLFLOW_REQUIREMENTS:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            done = subprocess.run([str(python), "-m", "pip", "install", "-q", requirement,
                                   "psycopg2-binary"], capture_output=True, text=True,
                                  timeout=left)
        except subprocess.TimeoutExpired:
            why = f"`pip install {requirement}` took over {install_seconds} s"
            break
        if done.returncode == 0:
            return python, f"installed ({requirement})"
        errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
        why = f"`pip install {requirement}`: {(errors or ['failed'])[-1]}"
        log(f"  {why}")
    return None, why


def mlflow_measure(args) -> dict:
    python, how = mlflow_python(args.mlflow_install_seconds)
    if python is None:
        return {"measured": False, "why": how}
    name = f"{args.database}_mlflow"
    database_create(name)
    try:
        with tempfile.TemporaryDirectory(prefix="accelweb-mlflow-") as folder:
            done = subprocess.run(
                [str(python), "-c", MLFLOW_SCRIPT,
                 f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}",
                 str(args.mlflow_epochs), str(args.mlflow_single_epochs)],
                cwd=folder, capture_output=True, text=True, timeout=1800)
    finally:
        database_drop(name)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"measured": False, "why": f"the MLflow script failed: {last[:300]}"}
    found = json.loads(done.stdout.strip().splitlines()[-1])
    found.update(measured=True, how=how,
                 batched=found["batched_points"] / found["batched_s"],
                 per_epoch=found["per_epoch_points"] / found["per_epoch_s"])
    return found


# The report.


def machine(chromium: str | None) -> dict:
    import channels
    import channels_redis
    import django
    import psycopg
    import redis
    import uvicorn
    from django.db import connection

    from runners.engine.fingerprint import fingerprint

    found = fingerprint("none")
    keep = ("cpu_model", "logical_cores", "cpu_flags", "gpus", "python", "platform")
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
    redis_server = redis.Redis.from_url(os.environ["REDIS_URL"]).info("server")["redis_version"]
    return {**{key: found[key] for key in keep}, "django": django.get_version(),
            "channels": channels.__version__, "channels_redis": channels_redis.__version__,
            "redis_py": redis.__version__, "uvicorn": uvicorn.__version__,
            "psycopg": psycopg.__version__, "postgresql": postgres, "redis": redis_server,
            "chromium": chromium}


def spread(values, digits=1) -> str:
    return (f"{statistics.median(values):,.{digits}f} [{min(values):,.{digits}f}–"
            f"{max(values):,.{digits}f}]")


def size_table(rows) -> str:
    lines = ["| endpoint | server ms, median [min–max] | queries | of which SQL ms, median | "
             "bytes |", "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['name']} (`{row['url']}`) | {spread(row['ms'])} | "
                     f"{row['queries']} | {row['sql_ms']:.1f} | {row['bytes']:,} |")
    return "\n".join(lines)


def met(ok: bool | None) -> str:
    return "—" if ok is None else ("yes" if ok else "**no**")


def goals_table(sizes, ingest, live, mlflow) -> str:
    largest = sizes[-1]
    by_name = {row["name"]: row for row in largest["rows"]}
    at = f"at {largest['runs']:,} runs"
    page, fragment = by_name["experiment page"], by_name["its /results/ fragment"]
    listing = by_name["API experiments list"]
    list_ms = statistics.median(listing["ms"])
    at_goal_size = largest["runs"] >= GOALS["list_runs"]
    rows = [
        (f"experiment page (50 runs x {largest['epochs']} epochs), server ms, {at}",
         f"{spread(page['ms'])}, {page['queries']} queries", f"<= {GOALS['page_ms']}",
         met(statistics.median(page["ms"]) <= GOALS["page_ms"])),
        (f"its `/results/` fragment, server ms, {at}",
         f"{spread(fragment['ms'])}, {fragment['queries']} queries", f"<= {GOALS['page_ms']}",
         met(statistics.median(fragment["ms"]) <= GOALS["page_ms"])),
        ("its HTML", f"{page['bytes'] / 1000:,.1f} KB", f"<= {GOALS['page_bytes'] / 1000:.0f} KB",
         met(page["bytes"] <= GOALS["page_bytes"])),
        (f"experiments list API, server ms, {at}",
         f"{spread(listing['ms'])}, {listing['queries']} queries",
         f"<= {GOALS['list_ms']} at {GOALS['list_runs']:,} runs",
         met(list_ms <= GOALS["list_ms"]) if at_goal_size else
         f"— (measured at {largest['runs']:,} runs only)"),
    ]
    stored = [r["stored_per_s"] for r in ingest]
    received = [r["received_per_s"] for r in ingest]
    complete = all(r["all_received"] for r in ingest)
    rows.append((
        f"ingestion through the worker path, metric points stored per second "
        f"({len(ingest)} processes x {ingest[0]['epochs']:,} epochs x 6 metrics)",
        f"{spread(stored, 0)}; received by a websocket client {spread(received, 0)}"
        f"{'' if complete else ' (**some epochs never arrived**)'}",
        f">= {GOALS['points_per_s']:,} in every process",
        met(min(stored) >= GOALS["points_per_s"] and complete)))
    for mode, goal in (("production", GOALS["production_p95_ms"]),
                       ("embedded", GOALS["embedded_p95_ms"])):
        found = live.get(mode)
        if not found:
            rows.append((f"live latency {mode}, p95", "not measured", f"<= {goal} ms", "—"))
            continue
        drawn, socket = found["page_handled_ms"], found["socket_ms"]
        frame = found["page_drawn_ms"]
        rows.append((
            f"live latency, {mode}: engine epoch -> drawn on the page's canvas in Chromium, "
            f"p95 of {drawn['n']} epochs at {1 / found['interval_s']:.0f}/s",
            f"{drawn['p95']:.1f} ms (p50 {drawn['p50']:.1f}, max {drawn['max']:.1f}); to a "
            f"websocket client p95 {socket['p95']:.1f} ms; at the next animation frame "
            f"p95 {frame['p95']:.1f} ms",
            f"<= {goal} ms", met(drawn["p95"] <= goal and found["drawn_all"])))
    if mlflow.get("measured"):
        rows.append((f"MLflow {mlflow['version']} `log_batch`, PostgreSQL backend store "
                     "(beside ours, no goal)",
                     f"{mlflow['batched']:,.0f} points/s batched (1000 a call), "
                     f"{mlflow['per_epoch']:,.0f} one epoch (6 metrics) a call", "", ""))
    else:
        rows.append((f"MLflow {MLFLOW_QUOTED['version']} `log_batch` (quoted, not measured: "
                     f"{mlflow.get('why', 'skipped')})",
                     f"{MLFLOW_QUOTED['batched']:,} points/s batched, "
                     f"{MLFLOW_QUOTED['per_epoch']:,} one epoch a call ({MLFLOW_QUOTED['source']})",
                     "", ""))
    lines = ["| figure | measured | goal | met? |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def live_table(live) -> str:
    lines = ["| mode | epochs | to a websocket client | Chromium: message in | Chromium: "
             "charts updated | Chromium: next frame (drawn) | every epoch drawn |",
             "|---|---|---|---|---|---|---|"]
    for mode, found in live.items():
        cells = [f"{found[key]['p50']:.1f} / {found[key]['p95']:.1f} / {found[key]['max']:.1f}"
                 for key in ("socket_ms", "page_message_ms", "page_handled_ms",
                             "page_drawn_ms")]
        lines.append(f"| {mode} | {found['epochs']} | " + " | ".join(cells) +
                     f" | {'yes' if found['drawn_all'] else '**no**'} |")
    lines.append("")
    lines.append("Milliseconds from the engine's print, p50 / p95 / max.")
    return "\n".join(lines)


def ingest_table(ingest) -> str:
    lines = ["| process | epochs | points stored/s | points received/s | epochs received | "
             "batches (median, largest) | seconds |", "|---|---|---|---|---|---|---|"]
    for index, r in enumerate(ingest, start=1):
        lines.append(f"| {index} | {r['epochs']:,} | {r['stored_per_s']:,.0f} | "
                     f"{r['received_per_s']:,.0f} | {r['received']:,} | {r['batches']} "
                     f"({r['median_batch']:.0f}, {r['largest_batch']}) | {r['seconds']:.2f} |")
    return "\n".join(lines)


def section(args, command, minutes, found, sizes, ingest, live, mlflow) -> str:
    per_size = "\n\n".join(
        f"#### {size['runs']:,} runs in the team ({size['experiments']:,} experiments)\n\n"
        f"{size_table(size['rows'])}" for size in sizes)
    if mlflow.get("measured"):
        mlflow_text = (
            f"MLflow {mlflow['version']} (SQLAlchemy {mlflow['sqlalchemy']}, {mlflow['how']} "
            f"in a venv of its own under {MLFLOW_VENV.parent}) on a PostgreSQL database of "
            f"its own on the same server: `MlflowClient().log_batch` of "
            f"{mlflow['batched_points']:,} points 1000 metrics a call, then "
            f"{mlflow['per_epoch_points']:,} points one epoch (6 metrics) a call; the "
            f"store's own setup (its migrations) is not counted.")
    else:
        mlflow_text = (f"MLflow was not measured here ({mlflow.get('why', 'skipped')}); its "
                       f"row quotes {MLFLOW_QUOTED['source']}.")
    return f"""{SECTION}

Written by `bench/web.py` on {datetime.date.today().isoformat()} in {minutes:.1f} minutes.

Command: `{command}`

The goals of issue 12, in production mode: PostgreSQL and Redis on this machine, `DEBUG=0`.

### Goals

{goals_table(sizes, ingest, live, mlflow)}

### Method

**Synthetic load, not training.** The database is built for the benchmark: one team of
`--runs` runs in experiments of 20-50 runs (4-10 recipes x {BULK_REPEATS} replicates), created
over a year, inserted by SQL (`INSERT ... SELECT generate_series`): 88% succeeded with a
small result (test accuracy, latency p50, model bytes, fingerprint), the rest failed or
cancelled; the newest three experiments are queued with one run running. These runs have no
events and empty stored curves (no list reads either), and no evidence: nine in ten of these
experiments get a made-up best speedup (0.8-3.8x) for the experiments list's sort, and the
worker's reconciler is held off (`ACCELWEB_REQUEUE_SECONDS`, a year) from sending their queued
runs, which were never sent. A second team, which the user does not
belong to, has 20 such experiments. One experiment of {BIG_REPEATS * (len(BIG_RECIPES) + 1)} runs
({len(BIG_RECIPES) + 1} recipes x {BIG_REPEATS} replicates) x {args.big_epochs} epochs
(loss, accuracy, val_loss, val_accuracy, seconds, epoch, like bench/curves.py's) plus a
telemetry sample per training second went through `services.run_record_events`
{BUILD_BATCH} events at a time (what is stored, the events and `Run.curves`, does not depend
on the batching), its runs succeeded with results, a succeeded benchmark of them was stored,
and `services.experiment_evidence_refresh` stored its evidence. The team grows between
sizes; after each, `VACUUM (ANALYZE)` (statistics, and the visibility map index-only scans
need, as autovacuum leaves a loaded table).

- Server timings: Django's test `Client` in the benchmark process (token auth for the API,
  a session for the pages and the admin, a superuser), one warm-up GET whose queries are
  counted (`CaptureQueriesContext`), then the median [min–max] of {args.repeats} timed GETs;
  "of which SQL" is the median time those GETs spent in the database driver
  (`connection.execute_wrapper`). Bytes: the response body.
- Ingestion: {args.ingest_processes} fresh processes, each running
  `runners.process.run_engine(on_events=lambda events: run_record_events(run, events))` with
  the task's heartbeat and cancel poll, and an engine child (`ENGINE_COMMAND`, a
  `python -c` script) that prints {args.ingest_epochs:,} epochs of 6 metrics as fast as it
  can. Points stored per second: epochs x 6 over the time from before `run_engine` to its
  return (the child's start included). A websocket client on the experiment's page socket
  (uvicorn and Redis, the production stack below) counts every epoch back; "received" is
  epochs x 6 over the time to the last one.
- Before the ingestion and each latency measurement, `CHECKPOINT` and a wait of up to two
  minutes for the 1-minute load average to drop below 1.0 (the million-run load, autovacuum
  and the services' start done); "load_average_when_measured" under Machine says where each
  began.
- Live latency: the engine child prints {args.live_epochs} epochs at {1 / args.live_interval:.0f}
  a second, each with `time.time()` taken just before it prints it. Production mode:
  uvicorn and a Celery worker (`celery -A accelweb worker --concurrency 1`, its engine
  swapped for that child) against this database and Redis, as tests/livestack.py starts
  them; the run is submitted with `experiment_create` and the worker's
  `execute_run` runs it. Embedded mode: `manage.py up` (uvicorn, the worker thread, the
  in-process channel layer, SQLite), the experiment submitted with `manage.py submit`.
  Measured by a Python websocket client (arrival, `time.time()`) and in headless Chromium
  (Playwright) on the experiment page: when the page's websocket got the message, when
  the page's handler returned (the goal's "drawn": the epoch is on the canvas, stroked as
  its lines' new segments where it falls inside the axes drawn, else by a Chart.js
  `update("none")` of that chart, animation off; the full update of the others follows
  after the frame is painted), and the next animation frame after it (up to a frame
  later: headless Chromium composites at 60 Hz, so that column carries up to 16.7 ms of
  waiting for the frame, and at 20 epochs a second, three frames apart, a run's waits are
  much alike: its p50 and p95 move with the phase a run happens to start at; it also
  checks that the loss chart's last point of the run has reached that epoch), from
  `performance.timeOrigin + performance.now()` on the same clock. Everything shares the
  machine's cores.
- {mlflow_text}

### Machine

```json
{json.dumps(found, indent=2)}
```

### Per team size

{per_size}

### Ingestion

{ingest_table(ingest)}

### Live latency

{live_table(live)}
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="100000,1000000",
                        help="comma-separated team sizes, in runs, smallest first")
    parser.add_argument("--big-epochs", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5, help="server timings per median")
    parser.add_argument("--ingest-processes", type=int, default=3)
    parser.add_argument("--ingest-epochs", type=int, default=20_000)
    parser.add_argument("--live-epochs", type=int, default=300, help="at most 500")
    parser.add_argument("--live-interval", type=float, default=0.05)
    parser.add_argument("--mlflow-epochs", type=int, default=5000,
                        help="epochs logged 1000 metrics a call")
    parser.add_argument("--mlflow-single-epochs", type=int, default=500,
                        help="epochs logged one a call")
    parser.add_argument("--mlflow-install-seconds", type=int, default=300)
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="5,000 runs, a 50 x 50 experiment, fewer repeats")
    parser.add_argument("--profile", action="store_true",
                        help="print a cProfile of one more GET of each endpoint")
    parser.add_argument("--database", default="accelweb_bench_web")
    parser.add_argument("--redis-url", default=REDIS_URL)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--ingest-run", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ingest_run:
        ingest_child(args.ingest_run, args.ingest_epochs)
        return
    if args.quick:
        args.runs, args.big_epochs, args.repeats = "5000", 50, 3
        args.ingest_epochs, args.live_epochs = 3000, 100
        args.mlflow_epochs, args.mlflow_single_epochs = 1000, 100
    if not 1 <= args.live_epochs <= 500:
        parser.error("--live-epochs must be 1 to 500 (the spec's limit)")
    command = "python bench/web.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    started = time.perf_counter()
    load_average = [round(x, 2) for x in os.getloadavg()]
    sizes_wanted = sorted(int(n) for n in args.runs.split(",") if n)

    with tempfile.TemporaryDirectory(prefix="accelweb-bench-web-") as tmp:
        folder = Path(tmp)
        database_create(args.database)
        production_environment(f"{POSTGRES}/{args.database}", args.redis_url, folder / "data")
        procs = None
        try:
            import django

            django.setup()
            from django.core.management import call_command
            from django.test import Client

            from experiments.models import Experiment

            call_command("migrate", verbosity=0)
            call_command("collectstatic", interactive=False, verbosity=0)
            user, team, other, token = accounts()
            session = Client(HTTP_HOST="127.0.0.1")
            session.force_login(user)
            api = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Token {token}")

            log(f"building the {args.big_epochs}-epoch experiment")
            big = big_experiment(team, user, args.big_epochs)
            bulk_spec = spec_of(team, name="bulk", recipes=BIG_RECIPES[:4], epochs=20,
                                repeats=BULK_REPEATS)
            other_team_experiments(other, user, bulk_spec)
            bulk = Bulk(team, user, bulk_spec)
            sizes = []
            for target in sizes_wanted:
                log(f"growing the team to {target:,} runs")
                runs = bulk.grow(target)
                vacuum_analyze()
                log(f"timing at {runs:,} runs")
                rows = time_endpoints(big, session, api, args.repeats, profile=args.profile)
                sizes.append({"runs": runs, "epochs": args.big_epochs, "rows": rows,
                              "experiments": Experiment.objects.filter(team=team).count()})
            plans = explain(sizes[-1]["rows"])
            print(f"\nEXPLAIN (ANALYZE, BUFFERS) of the list queries at {sizes[-1]['runs']:,} "
                  "runs:")
            print("\n".join(plans))

            log("production stack: uvicorn + Celery worker")
            procs = production_stack(folder, interval=args.live_interval)
            settled = {"ingestion": settle("ingestion")}
            ingest = ingestion(team, user, procs.web_url, session_of(user),
                               epochs=args.ingest_epochs, processes=args.ingest_processes)
            from playwright.sync_api import sync_playwright

            live = {}
            submitted = production_run(team, user, epochs=args.live_epochs)
            with sync_playwright() as playwright:
                settled["live latency, production"] = settle("live latency, production")
                log("live latency, production")
                live["production"] = live_production(
                    playwright, procs.web_url, folder, submitted, epochs=args.live_epochs,
                    interval=args.live_interval)
                procs.stop()
                procs = None
                settled["live latency, embedded"] = settle("live latency, embedded")
                log("live latency, embedded")
                live["embedded"] = live_embedded(playwright, folder, epochs=args.live_epochs,
                                                 interval=args.live_interval)
            for mode, found in live.items():
                log(f"  {mode}: drawn p95 {found['page_handled_ms']['p95']:.1f} ms, socket p95 "
                    f"{found['socket_ms']['p95']:.1f} ms")

            mlflow = {"measured": False, "why": "--no-mlflow"}
            if not args.no_mlflow:
                log("MLflow log_batch")
                mlflow = mlflow_measure(args)
            found = {**machine(live["production"]["chromium"]),
                     "load_average_at_start": load_average,
                     "load_average_when_measured": settled}
        except BaseException:
            if procs is not None:
                for name in procs.logs:
                    log(f"--- {name}:\n{procs.tail(name)}")
            raise
        finally:
            if procs is not None:
                procs.stop()
            from django.db import connections

            connections.close_all()
            if not args.keep:
                database_drop(args.database)

    minutes = (time.perf_counter() - started) / 60
    text = section(args, command, minutes, found, sizes, ingest, live, mlflow)
    print()
    print(text)
    if args.write:
        write_section(Path(args.output), SECTION, text)
        log(f"wrote {args.output}")


if __name__ == "__main__":
    main()
