"""How long curves cost the experiment page, on the server and in a browser.

The goal measured: long curves are downsampled (experiments.curves: min/max buckets kept
in Run.curves as the epochs arrive, at most CURVE_POINTS per series) so a run with 10,000
epochs draws as fast as a short one. The page's snapshot carries no series: the page fetches
them from /experiments/<id>/curves/ after it loads.

Synthetic load, not training: for each epoch count, one experiment of 5 succeeded runs whose
epoch events went through services.run_record_events, as the worker stores them (RunEvent
rows and Run.curves). It runs in the embedded mode (SQLite and the in-process channel layer
in a temporary ACCELWEB_DATA_DIR; DATABASE_URL and REDIS_URL are dropped), serves the page
with uvicorn, and loads it in headless Chromium (Playwright).

    .venv/bin/python bench/curves.py [--epochs 10,1000,10000] [--repeats 7] [--loads 5] [--write]

With --write, the "Curve downsampling" section of docs/benchmarks.md is replaced (or added
at the end); the other sections are kept.
"""

import argparse
import datetime
import json
import math
import os
import random
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from stage import ROOT, write_section

from runners.engine.fingerprint import fingerprint

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
USERNAME, PASSWORD = "bench-curves", "bench-curves-5150"
SECTION = "## Curve downsampling"
RECIPES = [
    {"name": "XLA", "steps": [{"technique": "xla"}]},
    {"name": "int8", "steps": [{"technique": "ptq", "mode": "dynamic_int8"}]},
    {"name": "pruning", "steps": [{"technique": "pruning"}]},
    {"name": "clustering", "steps": [{"technique": "clustering"}]},
]
RUNS = 1 + len(RECIPES)  # the baseline and one run per recipe

# Runs in each page before its scripts. Every animation frame (just before it is painted) it
# checks whether the curves have been fetched (experiment.js gives each run its series then)
# and the curve charts hold a dataset per run and series with every point of the page's
# state, and keeps the first such time (ms since navigation start). It also keeps when the
# websocket's snapshot arrives: its listener is added before the page sets onmessage, so it
# runs first, and it tests a prefix rather than parse the message twice.
WATCH_PAGE = """(() => {
  const complete = (aw) => {
    const runs = aw.state.runs;
    if (!runs.every((run) => run.series)) return false;
    const sizes = (key) => runs.map((run) => (run.series[key] || []).length);
    const curve = (metric) => runs.flatMap((run, i) =>
      [sizes(metric)[i], sizes(`val_${metric}`)[i]]);
    const same = (chart, want) => chart.data.datasets.length === want.length &&
      chart.data.datasets.every((d, i) => d.data.length === want[i]);
    return runs.length > 0 && same(aw.charts.loss, curve("loss")) &&
      same(aw.charts.accuracy, curve("accuracy")) &&
      same(aw.timeChart, sizes("val_accuracy_by_time"));
  };
  const poll = () => {
    if (window.accelweb && complete(window.accelweb)) window.benchDrawnAt = performance.now();
    else requestAnimationFrame(poll);
  };
  requestAnimationFrame(poll);
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (e) => {
        if (typeof e.data === "string" && e.data.startsWith('{"type": "snapshot"') &&
            window.benchSnapshotAt === undefined) window.benchSnapshotAt = performance.now();
      });
    }
  };
})();"""
CHARTS_DRAWN = "() => window.benchDrawnAt"
POINTS_DRAWN = """() => ({
  loss: window.accelweb.charts.loss.data.datasets.map((d) => d.data.length),
  accuracy: window.accelweb.charts.accuracy.data.datasets.map((d) => d.data.length),
  time: window.accelweb.timeChart.data.datasets.map((d) => d.data.length),
})"""
SNAPSHOT_ARRIVED = "() => window.benchSnapshotAt"
NAVIGATION = """() => {
  const n = performance.getEntriesByType("navigation")[0];
  const curves = performance.getEntriesByType("resource").find((r) => r.name.includes("/curves/"));
  return {response_end: n.responseEnd, dcl: n.domContentLoadedEventEnd,
          curves_end: curves ? curves.responseEnd : null};
}"""


def embedded_environment(data_dir: Path) -> None:
    """This process's environment (and so its children's): SQLite and the in-process
    channel layer in data_dir, DEBUG off as in production."""
    for name in ("DATABASE_URL", "REDIS_URL", "ACCELWEB_MEDIA_ROOT"):
        os.environ.pop(name, None)
    os.environ.update(ACCELWEB_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="accelweb.settings",
                      DEBUG="0", PYTHONUNBUFFERED="1")


def epoch_records(epochs: int, rng: random.Random, *, speed: float) -> list[dict]:
    """Plausible epoch events: losses that decay and accuracies that rise with the fraction
    of training done (so 10 and 10,000 epochs have the same shape), batch noise, and a rare
    validation spike that min/max downsampling should keep."""
    records = []
    for epoch in range(1, epochs + 1):
        done = epoch / epochs
        decay = math.exp(-speed * done)
        loss = 0.08 + 2.2 * decay + rng.gauss(0, 0.015)
        val_loss = 0.15 + 2.1 * decay + 0.1 * done + rng.gauss(0, 0.03)
        if rng.random() < 0.002:
            val_loss *= 1.8
        accuracy = min(1.0, 0.98 - 0.88 * decay + rng.gauss(0, 0.006))
        val_accuracy = min(1.0, 0.95 - 0.85 * decay + rng.gauss(0, 0.012))
        seconds = 0.8 * rng.lognormvariate(0, 0.08)
        records.append({
            "event": "epoch", "epoch": epoch, "loss": loss, "accuracy": accuracy,
            "val_loss": val_loss, "val_accuracy": val_accuracy, "seconds": seconds,
            "train_seconds": seconds * 0.93, "steps": 23,
        })
    return records


# Events handed to run_record_events at a time: what it stores (the events and Run.curves)
# does not depend on how they were batched.
RECORD_BATCH = 1000


def create_experiment(team, user, epochs: int):
    from django.utils import timezone

    from experiments.models import Experiment, Run
    from experiments.services import run_record_events
    from experiments.spec import validate_spec

    raw = {"name": f"curves: {epochs:,} epochs per run (synthetic load)",
           "model": {"arch": "seed_mlp", "params": {}}, "dataset": {"name": "digits"},
           "training": {"epochs": min(epochs, 500)}, "hardware": "cpu", "recipes": RECIPES}
    spec = validate_spec(raw, team=team)
    # The spec allows at most 500 epochs; the page only shows this number.
    spec["training"]["epochs"] = epochs
    experiment = Experiment.objects.create(
        team=team, name=spec["name"], spec=spec, hardware=spec["hardware"],
        accuracy_budget=spec["accuracy_budget"], created_by=user,
    )
    now = timezone.now()
    runs = Run.objects.bulk_create([
        Run(experiment=experiment, name=recipe["name"], position=position,
            steps=recipe["steps"], status=Run.Status.RUNNING, worker="bench", device="cpu",
            started_at=now, heartbeat_at=now)
        for position, recipe in enumerate([{"name": "baseline", "steps": []}, *spec["recipes"]])
    ])
    rng = random.Random(epochs)
    for index, run in enumerate(runs):
        run.experiment = experiment
        records = epoch_records(epochs, rng, speed=4.0 + index)
        for start in range(0, len(records), RECORD_BATCH):
            run_record_events(run, records[start:start + RECORD_BATCH])
        run.mark_finished(Run.Status.SUCCEEDED)
    return experiment


def median_seconds(fn, repeats: int):
    """Median wall time of fn over repeats calls, after one warm-up call; and its result."""
    result = fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def json_bytes(value) -> int:
    """Bytes as the page embeds it (json_script) and the websocket sends it."""
    from django.core.serializers.json import DjangoJSONEncoder

    return len(json.dumps(value, cls=DjangoJSONEncoder).encode())


def expected_lengths(snapshot: dict, curves: dict) -> dict:
    """Points per dataset, in the page's order (the snapshot's runs): (train, validation)
    per run, then time; from the curves the page fetches."""
    lengths = {"loss": [], "accuracy": [], "time": []}
    for run in snapshot["runs"]:
        series = curves["runs"][str(run["id"])]["series"]
        for metric in ("loss", "accuracy"):
            lengths[metric] += [len(series[metric]), len(series[f"val_{metric}"])]
        lengths["time"].append(len(series["val_accuracy_by_time"]))
    return lengths


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, proc, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url + "healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"uvicorn did not become healthy:\n{log.read_text()[-3000:]}")


def http_get(url: str, session: str) -> bytes:
    from django.conf import settings

    cookie = f"{settings.SESSION_COOKIE_NAME}={session}"
    request = urllib.request.Request(url, headers={"Cookie": cookie})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read()


def browser_loads(base_url: str, cases: list[dict], loads: int) -> str:
    """Log in once, then load each experiment page loads + 1 times (the first warms the
    caches) and keep each load's timings on its case. Returns Chromium's version."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.add_init_script(WATCH_PAGE)
            page.goto(base_url + "login/")
            page.fill("#id_username", USERNAME)
            page.fill("#id_password", PASSWORD)
            page.click("main button[type=submit]")
            page.wait_for_url(base_url)
            for case in cases:
                case["drawn_ms"], case["dcl_ms"], case["live_ms"] = [], [], []
                case["curves_ms"] = []
                for load in range(loads + 1):
                    page.goto(case["url"], wait_until="commit")
                    drawn = page.wait_for_function(CHARTS_DRAWN, timeout=120_000).json_value()
                    # What the page drew is what the server sent.
                    points = page.evaluate(POINTS_DRAWN)
                    assert points == case["expected"], (points, case["expected"])
                    page.wait_for_load_state("domcontentloaded")
                    # Wait for the websocket's snapshot too, so the server is idle again
                    # before the next load.
                    live = page.wait_for_function(SNAPSHOT_ARRIVED,
                                                  timeout=120_000).json_value()
                    navigation = page.evaluate(NAVIGATION)
                    if load:
                        case["drawn_ms"].append(drawn)
                        case["dcl_ms"].append(navigation["dcl"])
                        case["curves_ms"].append(navigation["curves_end"])
                        case["live_ms"].append(live)
                print(f"browser: {case['epochs']} epochs, drawn at "
                      f"{statistics.median(case['drawn_ms']):.0f} ms", file=sys.stderr,
                      flush=True)
            return browser.version
        finally:
            browser.close()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} [{min(values):.0f}–{max(values):.0f}]"


def table(cases: list[dict]) -> str:
    lines = [
        "| epochs per run | points per series sent (of all) | experiment_snapshot ms | "
        "experiment_curves ms | page GET, test Client ms | /curves/ GET, test Client ms | "
        "page GET, HTTP via uvicorn ms | /curves/ GET, HTTP via uvicorn ms | "
        "snapshot JSON bytes | page HTML bytes | /curves/ JSON bytes | "
        "/curves/?full=1 JSON bytes | browser: charts drawn ms [min–max] | "
        "browser: DOMContentLoaded ms | browser: /curves/ in ms | "
        "browser: websocket snapshot in ms |",
        "|" + "---|" * 16,
    ]
    for c in cases:
        cells = [
            f"{c['epochs']:,}", f"{c['points_sent']:,} ({c['points_all']:,})",
            ms(c["snapshot_s"]), ms(c["curves_s"]), ms(c["client_get_s"]),
            ms(c["client_curves_s"]), ms(c["http_get_s"]), ms(c["http_curves_s"]),
            f"{c['snapshot_bytes']:,}", f"{c['html_bytes']:,}", f"{c['curves_bytes']:,}",
            f"{c['full_bytes']:,}", spread(c["drawn_ms"]), spread(c["dcl_ms"]),
            spread(c["curves_ms"]), spread(c["live_ms"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine(chromium: str) -> dict:
    import channels
    import django
    import uvicorn
    from django.db import connection

    found = fingerprint("none")
    keep = ("cpu_model", "logical_cores", "cpu_flags", "gpus", "python", "platform")
    return {**{key: found[key] for key in keep}, "django": django.get_version(),
            "channels": channels.__version__, "uvicorn": uvicorn.__version__,
            "sqlite": connection.Database.sqlite_version, "chromium": chromium}


def section(cases, args, command, minutes, found) -> str:
    from experiments.selectors import CURVE_POINTS

    return f"""{SECTION}

Written by `bench/curves.py` on {datetime.date.today().isoformat()} in {minutes:.1f} minutes.

Command: `{command}`

The goal measured: long curves are downsampled (min/max buckets kept in `Run.curves` as
the epochs arrive, at most `CURVE_POINTS` = {CURVE_POINTS} points per series) so a run with
10,000 epochs draws fast. The page's snapshot carries each run's state and curve summary;
the page fetches the series from `/experiments/<id>/curves/` once it has loaded.

**Synthetic load, not training.** Each row is one experiment of {RUNS} runs (status succeeded,
no result, no telemetry) whose epoch events (loss, accuracy, val_loss, val_accuracy,
seconds: decaying and rising curves with noise and rare validation spikes) went through
`services.run_record_events`, {RECORD_BATCH} at a time, as the worker stores them (`RunEvent`
rows and `Run.curves`; the batching does not change what is stored). Embedded mode: SQLite
in a temporary `ACCELWEB_DATA_DIR`, the in-process channel layer, `DEBUG=0`; `DATABASE_URL`
and `REDIS_URL` unset. The spec's epoch count is set after `validate_spec`, which allows at
most 500.

- Server columns: median of {args.repeats} calls after one warm-up, in the benchmark process
  (`experiment_snapshot(experiment)`, `experiment_curves(experiment)`, and
  `GET /experiments/<id>/` and `GET /experiments/<id>/curves/` through Django's test
  `Client`), and over HTTP from a uvicorn subprocess on loopback (same database).
- Bytes: the snapshot as `json_script` embeds it and the websocket sends it; the whole page's
  HTML; the curves the page fetches, and with `?full=1` every epoch (what the page's "full
  resolution" box fetches; size only).
- Browser: headless Chromium through Playwright against that uvicorn, logged in through
  `/login/`. "Charts drawn": milliseconds from navigation start until the curves have been
  fetched and both curve charts hold {2 * RUNS} datasets and the time chart {RUNS}, each with
  every point of the page's state (checked in the page at every animation frame, just
  before it is painted, so up to one frame late; the benchmark then checks the point counts
  against the server's curves). Also the end of DOMContentLoaded, the end of the
  `/curves/` response, and when the websocket's own snapshot (built anew by the consumer)
  arrived. Median [min–max] of {args.loads} loads after one warm-up load.

### Machine

```json
{json.dumps(found, indent=2)}
```

### Results

{table(cases)}
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", default="10,1000,10000", help="comma-separated epoch counts")
    parser.add_argument("--repeats", type=int, default=7, help="server timings per median")
    parser.add_argument("--loads", type=int, default=5, help="browser loads per median")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args(argv)
    command = "python bench/curves.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    started = time.perf_counter()
    load_average = [round(x, 2) for x in os.getloadavg()]

    with tempfile.TemporaryDirectory(prefix="accelweb-curves-") as tmp:
        embedded_environment(Path(tmp) / "data")
        import django

        django.setup()
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.test import Client

        from experiments.models import Experiment, Membership, Team
        from experiments.selectors import experiment_curves, experiment_snapshot

        call_command("migrate", verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        user = get_user_model().objects.create_user(USERNAME, password=PASSWORD)
        team = Team.objects.create(name="Curves benchmark")
        Membership.objects.create(team=team, user=user, role=Membership.Role.ADMIN)
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(user)

        cases = []
        for epochs in [int(e) for e in args.epochs.split(",") if e]:
            experiment = create_experiment(team, user, epochs)
            case = {"epochs": epochs, "id": experiment.pk}
            experiment = Experiment.objects.get(pk=experiment.pk)
            case["snapshot_s"], snapshot = median_seconds(
                lambda experiment=experiment: experiment_snapshot(experiment), args.repeats)
            case["curves_s"], curves = median_seconds(
                lambda experiment=experiment: experiment_curves(experiment), args.repeats)
            url = f"/experiments/{experiment.pk}/"
            case["client_get_s"], response = median_seconds(
                lambda url=url: client.get(url), args.repeats)
            assert response.status_code == 200, response.status_code
            case["client_curves_s"], fetched = median_seconds(
                lambda url=url: client.get(url + "curves/"), args.repeats)
            assert fetched.status_code == 200, fetched.status_code
            case["snapshot_bytes"] = json_bytes(snapshot)
            case["html_bytes"] = len(response.content)
            case["curves_bytes"] = len(fetched.content)
            case["full_bytes"] = len(client.get(url + "curves/?full=1").content)
            first = str(snapshot["runs"][0]["id"])
            case["points_sent"] = len(curves["runs"][first]["series"]["loss"])
            case["points_all"] = epochs
            case["expected"] = expected_lengths(snapshot, curves)
            cases.append(case)
            print(f"server: {epochs} epochs, snapshot {ms(case['snapshot_s'])} ms, "
                  f"{case['snapshot_bytes']:,} bytes", file=sys.stderr, flush=True)

        port = free_port()
        base_url = f"http://127.0.0.1:{port}/"
        log = Path(tmp) / "uvicorn.log"
        with open(log, "w") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "accelweb.asgi:application", "--host",
                 "127.0.0.1", "--port", str(port)],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            wait_healthy(base_url, server, log)
            session = client.cookies[settings.SESSION_COOKIE_NAME].value
            for case in cases:
                case["url"] = f"{base_url}experiments/{case['id']}/"
                case["http_get_s"], body = median_seconds(
                    lambda url=case["url"]: http_get(url, session), args.repeats)
                case["http_html_bytes"] = len(body)
                case["http_curves_s"], _ = median_seconds(
                    lambda url=case["url"] + "curves/": http_get(url, session), args.repeats)
            chromium = browser_loads(base_url, cases, args.loads)
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
        found = {**machine(chromium), "load_average_at_start": load_average}

    minutes = (time.perf_counter() - started) / 60
    text = section(cases, args, command, minutes, found)
    print(table(cases))
    print(f"\nmachine: {json.dumps(found)}\n{minutes:.1f} min", file=sys.stderr)
    if args.write:
        write_section(Path(args.output), SECTION, text)
        print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
