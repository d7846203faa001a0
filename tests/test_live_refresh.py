"""When a run or the benchmark ends, the experiment page reads its results fragment once:
the tables and the snapshot the charts draw come in that one request, and nothing is
asked of the websocket.

The page is served by uvicorn on the test database; its websocket is replaced by an open
one the test delivers messages through and that records what the page sends.
"""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client
from livestack import web_stack
from results import benchmark_results, finish_recipe

from experiments import services
from experiments.models import Experiment, Run
from experiments.selectors import benchmark_state, run_state

pytestmark = [pytest.mark.fullstack, pytest.mark.django_db(transaction=True),
              pytest.mark.timeout(120)]

CHROMIUM = "/usr/bin/chromium"
EPOCHS = 3
OPEN_SOCKET = """(() => {
  window.fakeSockets = [];
  window.sentOnSocket = [];
  window.WebSocket = class {
    constructor(url) { this.url = url; this.readyState = 1; window.fakeSockets.push(this); }
    send(data) { window.sentOnSocket.push(JSON.parse(data)); }
    close() {}
  };
  window.WebSocket.OPEN = 1;
})();"""
# The page has drawn its runs' curves (the first fetch of them answered).
READY = f"""() => window.accelweb && window.fakeSockets.length === 1 &&
  window.accelweb.charts.loss.data.datasets.length === 4 &&
  window.accelweb.charts.loss.data.datasets.every((d) => d.data.length === {EPOCHS})"""


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory):
    with web_stack(tmp_path_factory.mktemp("live-refresh")) as stack:
        yield stack


@pytest.fixture
def experiment(alice, alice_team, tiny_spec):
    # Through the ORM, not the service: its on-commit enqueue would reach a real broker.
    experiment = Experiment.objects.create(
        team=alice_team, name="told once", created_by=alice,
        spec=tiny_spec(training={"epochs": EPOCHS}))
    for position, name in enumerate(["baseline", "XLA"]):
        run = Run.objects.create(experiment=experiment, name=name, position=position,
                                 status=Run.Status.RUNNING,
                                 steps=[{"technique": "xla"}] if position else [])
        services.run_record_events(run, [
            {"event": "epoch", "epoch": epoch, "loss": 1.0 / epoch, "accuracy": 0.5,
             "val_loss": 1.1 / epoch, "val_accuracy": 0.45, "seconds": 1.0}
            for epoch in range(1, EPOCHS + 1)])
    baseline = experiment.runs.get(position=0)
    finish_recipe(baseline, latency=2.0)
    return experiment


def session_of(user):
    # Before Playwright starts: its loop in this thread would refuse the ORM.
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def in_thread(function, *args):
    # The ORM refuses the thread Playwright's loop runs in; the rows are committed, so
    # another thread's connection sees them.
    def call():
        try:
            return function(*args)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result(timeout=30)


def end_run(experiment):
    """The worker's side of the XLA run ending: stored, the evidence stored, told."""
    xla = experiment.runs.get(position=1)
    finish_recipe(xla, latency=1.0)
    xla = Run.objects.select_related("experiment").get(pk=xla.pk)
    services.run_status_changed(xla)
    return {"type": "status", "run": run_state(xla)}


def end_benchmark(experiment):
    """The worker's side of the benchmark of both runs succeeding."""
    benchmark = benchmark_results(experiment)
    services.benchmark_changed(benchmark, ended=True)
    return {"type": "benchmark", "benchmark": benchmark_state(benchmark)}


DELIVER = "(m) => window.fakeSockets[0].onmessage({ data: JSON.stringify(m) })"
# The page's state and charts hold what the fragment brought: the XLA row's speedups (an
# inference one once benchmarked), and both runs' points of the accuracy/latency front.
DRAWN = """(benchmarked) => {
  const aw = window.accelweb;
  const xla = aw.state.comparison.find((r) => r.name === "XLA");
  return Boolean(xla && xla.train_speedup && (xla.inference_speedup || !benchmarked)) &&
    aw.speedupChart.data.labels.includes("XLA") && aw.state.tradeoff.length === 2 &&
    aw.tradeoffChart.data.datasets.reduce((n, d) => n + d.data.length, 0) === 2;
}"""


@pytest.mark.parametrize("benchmarked", [False, True], ids=["run", "benchmark"])
def test_an_end_is_read_again_in_one_request_and_nothing_is_asked_of_the_socket(
        server, alice, experiment, benchmarked):
    from playwright.sync_api import sync_playwright

    session = session_of(alice)
    results_url = f"{server.url}experiments/{experiment.pk}/results/"
    xla_id = experiment.runs.get(position=1).pk
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1300, "height": 1000})
            context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "domain": "127.0.0.1",
                                  "path": "/", "value": session}])
            context.add_init_script(OPEN_SOCKET)
            page = context.new_page()
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{server.url}experiments/{experiment.pk}/")
            page.wait_for_function(READY, timeout=20_000)
            before = page.evaluate("() => window.accelweb.state.tradeoff.length")
            message = in_thread(end_run, experiment)
            if benchmarked:
                # The run's end came first, and was read on its own.
                with page.expect_response(results_url):
                    page.evaluate(DELIVER, message)
                page.wait_for_function(DRAWN, arg=False, timeout=10_000)
                message = in_thread(end_benchmark, experiment)
            requests = []
            page.on("request", lambda request: requests.append(request.url))

            with page.expect_response(results_url):
                page.evaluate(DELIVER, message)
            page.wait_for_function(DRAWN, arg=benchmarked, timeout=10_000)
            # Anything a handler might still send or fetch has had its time.
            page.wait_for_timeout(500)
            badge = page.locator(f"tr[data-run-id='{xla_id}'] .run-status").text_content()
            sent = page.evaluate("() => window.sentOnSocket")
            assert errors == []
        finally:
            browser.close()
    assert before == 1  # the baseline's point, before the XLA run ended
    assert requests == [results_url]
    assert sent == []
    assert badge == "Succeeded"
