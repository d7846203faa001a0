"""A live epoch on the experiment page is drawn at once as its lines' new segments, and
Chart.js draws the whole chart again after the frame that shows them: what the segments
drew must be what the full update draws, and a point outside the axes must update the
chart at once.

The page is served by uvicorn on the test database; its websocket is replaced by one the
test delivers messages through, so what arrives, and when, is the test's.
"""

import json

import pytest
from django.conf import settings
from django.test import Client
from livestack import web_stack

from experiments import services
from experiments.models import Experiment, Run

pytestmark = [pytest.mark.fullstack, pytest.mark.django_db(transaction=True),
              pytest.mark.timeout(120)]

CHROMIUM = "/usr/bin/chromium"
STORED = 37  # epochs stored before the page opens: the epoch axis is drawn to 40
FAKE_SOCKET = """(() => {
  window.fakeSockets = [];
  window.WebSocket = class {
    constructor(url) { this.url = url; this.readyState = 0; window.fakeSockets.push(this); }
    send() {}
    close() {}
  };
  window.WebSocket.OPEN = 1;
})();"""
CURVES_DRAWN = f"""() => window.accelweb && window.fakeSockets.length === 1 &&
  window.accelweb.charts.loss.data.datasets.length === 2 &&
  window.accelweb.charts.loss.data.datasets.every((d) => d.data.length === {STORED}) &&
  window.accelweb.timeChart.data.datasets.every((d) => d.data.length === {STORED})"""
# Delivers the message and reads each curve chart's pixels before it, right after the
# handler returned, and once Chart.js has updated the chart; with how often each chart's
# update() ran by then. A pixel differs when its RGBA channels differ by more than 64 in all.
DELIVER = """async (message) => {
  const aw = window.accelweb;
  const charts = [aw.charts.loss, aw.charts.accuracy, aw.timeChart];
  const calls = charts.map(() => 0);
  charts.forEach((chart, i) => {
    const update = chart.update.bind(chart);
    chart.update = (...args) => { calls[i] += 1; return update(...args); };
  });
  const pixels = (c) => c.ctx.getImageData(0, 0, c.canvas.width, c.canvas.height).data;
  const differ = (a, b) => {
    let n = 0;
    for (let i = 0; i < a.length; i += 4) {
      if (Math.abs(a[i] - b[i]) + Math.abs(a[i + 1] - b[i + 1]) + Math.abs(a[i + 2] - b[i + 2]) +
          Math.abs(a[i + 3] - b[i + 3]) > 64) n += 1;
    }
    return n;
  };
  const axes = charts.map((c) => ({
    x: [c.scales.x.min, c.scales.x.max], y: [c.scales.y.min, c.scales.y.max] }));
  const before = charts.map(pixels);
  window.fakeSockets[0].onmessage({ data: JSON.stringify(message) });
  const atOnce = charts.map(pixels);
  const callsAtOnce = [...calls];
  const waited = performance.now();
  while (calls.some((n) => n === 0) && performance.now() - waited < 3000) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const updated = charts.map(pixels);
  return charts.map((c, i) => ({
    axes: axes[i], callsAtOnce: callsAtOnce[i], calls: calls[i],
    drawnAtOnce: differ(before[i], atOnce[i]), drawnByUpdate: differ(before[i], updated[i]),
    mismatch: differ(atOnce[i], updated[i]),
    points: c.data.datasets.map((d) => d.data.length),
  }));
}"""


def loss(epoch):
    # Up and down between 0.6 and 1.4: a new epoch's loss falls inside the axis drawn.
    return 1.0 + 0.4 * (-1) ** epoch * (epoch % 5) / 5


def epoch_event(epoch, **values):
    return {"event": "epoch", "epoch": epoch, "loss": loss(epoch), "accuracy": 0.5 + epoch / 200,
            "val_loss": loss(epoch) + 0.1, "val_accuracy": 0.45 + epoch / 200, "seconds": 1.0,
            **values}


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory):
    with web_stack(tmp_path_factory.mktemp("live-drawing")) as stack:
        yield stack


@pytest.fixture
def running(alice, alice_team, tiny_spec):
    # Through the ORM, not the service: its on-commit enqueue would reach a real broker.
    experiment = Experiment.objects.create(
        team=alice_team, name="drawn live", created_by=alice,
        spec=tiny_spec(training={"epochs": 60, "batch_size": 64}))
    run = Run.objects.create(experiment=experiment, name="baseline", position=0,
                             status=Run.Status.RUNNING)
    services.run_record_events(run, [epoch_event(e) for e in range(1, STORED + 1)])
    return run


def session_of(user):
    # Before Playwright starts: its loop in this thread would refuse the ORM.
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def open_page(playwright, server, session, run):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "domain": "127.0.0.1",
                          "path": "/", "value": session}])
    context.add_init_script(FAKE_SOCKET)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server.url}experiments/{run.experiment_id}/")
    page.wait_for_function(CURVES_DRAWN, timeout=20_000)
    return browser, page, errors


def message(run, event):
    return {"type": "event", "event": event,
            "run": {"id": run.pk, "status": "running", "epochs_done": event["epoch"],
                    "progress": event["epoch"] / 60}}


def test_a_live_epoch_inside_the_axes_is_drawn_at_once_as_the_update_draws_it(
        server, alice, running):
    from playwright.sync_api import sync_playwright

    session = session_of(alice)
    with sync_playwright() as playwright:
        browser, page, errors = open_page(playwright, server, session, running)
        try:
            charts = page.evaluate(DELIVER, message(running, epoch_event(STORED + 1)))
            assert errors == []
        finally:
            browser.close()
    print(json.dumps(charts))
    for name, chart in zip(["loss", "accuracy", "time"], charts, strict=True):
        assert chart["points"] == [STORED + 1] * len(chart["points"]), name
        # The premise: the new point lies inside the axes as drawn.
        assert chart["axes"]["x"][1] > STORED + (1 if name != "time" else 1.0), (name, chart)
        # Drawn by the handler without a Chart.js update, which came once, after the frame.
        assert chart["callsAtOnce"] == 0 and chart["calls"] == 1, (name, chart)
        assert chart["drawnAtOnce"] > 10, (name, chart)
        # The same pixels as the update drew: a segment drawn in the wrong place, or not
        # at all, differs from it in about as many pixels as the update changed.
        assert chart["mismatch"] <= 0.25 * chart["drawnByUpdate"], (name, chart)


def test_a_live_epoch_outside_the_axes_updates_the_chart_at_once(server, alice, running):
    from playwright.sync_api import sync_playwright

    session = session_of(alice)
    with sync_playwright() as playwright:
        browser, page, errors = open_page(playwright, server, session, running)
        try:
            # A diverging loss: far above the loss axis; accuracy and time stay inside.
            charts = page.evaluate(DELIVER, message(running, epoch_event(
                STORED + 1, loss=40.0, val_loss=41.0)))
            assert errors == []
        finally:
            browser.close()
    loss_chart, accuracy_chart, _ = charts
    assert loss_chart["axes"]["y"][1] < 40.0
    assert loss_chart["callsAtOnce"] == 1, loss_chart
    assert loss_chart["mismatch"] == 0, loss_chart
    assert accuracy_chart["callsAtOnce"] == 0 and accuracy_chart["calls"] == 1, accuracy_chart


def test_cancel_on_the_run_page_asks_first(server, alice, running):
    from playwright.sync_api import sync_playwright

    session = session_of(alice)
    asked = []
    with sync_playwright() as playwright:
        browser, page, errors = open_page(playwright, server, session, running)
        try:
            page.goto(f"{server.url}runs/{running.pk}/")
            # Said no: nothing is sent.
            page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
            page.click(".run-actions button")
            page.wait_for_timeout(300)
            assert page.url.endswith(f"/runs/{running.pk}/")
            # Said yes: cancelled, back on the experiment.
            page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
            with page.expect_navigation():
                page.click(".run-actions button")
            assert page.url.endswith(f"/experiments/{running.experiment_id}/")
            assert errors == []
        finally:
            browser.close()
    assert asked == ["Cancel “baseline”? It stops at the next batch; its epochs so far are "
                     "kept."] * 2
    running.refresh_from_db()
    assert running.cancel_requested
