"""Every chart on the experiment and compare pages can be read without hovering, at
1400x900: each piece of text Chart.js (or a plugin of ours) draws lies wholly inside its
canvas and is not squeezed to fit, the plot keeps at least half the canvas, legends stay
in the canvas, the speedup chart labels every bar, its log axis ticks are round, the
accuracy/latency points carry their run's name, the hardware chart draws every run that
sent samples, and a run has one colour in every chart of the page.

What is drawn is read where it is drawn: the page's CanvasRenderingContext2D.fillText is
wrapped (an init script) to record each string with its box in canvas pixels, through the
context's transform, as measured by the same context; then every chart is drawn again.
"""

import json

import pytest
from django.conf import settings
from django.test import Client
from livestack import ROOT, web_stack
from results import benchmark_results, finish_recipe

from experiments import services
from experiments.models import Experiment, Run
from experiments.spec import validate_spec

pytestmark = [pytest.mark.fullstack, pytest.mark.django_db(transaction=True),
              pytest.mark.timeout(180)]

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1400, "height": 900}
# A phone (the responsive test checks the pages; this checks what the charts draw there).
PHONE = {"width": 390, "height": 844}
RECIPES = [
    {"name": "XLA compilation", "steps": [{"technique": "xla"}]},
    {"name": "int8 (dynamic range)", "steps": [{"technique": "ptq", "mode": "dynamic_int8"}]},
    {"name": "mixed precision", "steps": [{"technique": "mixed_precision",
                                           "policy": "mixed_float16"}]},
]
EPOCHS = 6

# Records what each canvas's 2D context draws as text: the string and its box in canvas
# pixels (the context's transform applied to the measured box's corners), and whether it
# was squeezed by a maxWidth narrower than the text.
RECORD_TEXT = """(() => {
  window.drawnText = new Map();
  const proto = CanvasRenderingContext2D.prototype;
  const fillText = proto.fillText;
  proto.fillText = function (text, x, y, maxWidth) {
    const m = this.measureText(text);
    const squeezed = maxWidth !== undefined && m.width > maxWidth + 0.5;
    const scale = squeezed ? maxWidth / m.width : 1;
    const t = this.getTransform();
    const left = x - m.actualBoundingBoxLeft * scale, right = x + m.actualBoundingBoxRight * scale;
    const top = y - m.actualBoundingBoxAscent, bottom = y + m.actualBoundingBoxDescent;
    const corners = [[left, top], [right, top], [left, bottom], [right, bottom]]
      .map(([cx, cy]) => t.transformPoint(new DOMPoint(cx, cy)));
    const xs = corners.map((p) => p.x), ys = corners.map((p) => p.y);
    const records = window.drawnText.get(this.canvas) || [];
    records.push({ text: String(text), squeezed, font: this.font,
      box: [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)] });
    window.drawnText.set(this.canvas, records);
    return fillText.apply(this, arguments);
  };
})();"""

# Draws every chart again and reports, per chart, what the assertions read.
MEASURE = """(names) => {
  const aw = window.accelweb;
  const found = {
    loss: aw.charts && aw.charts.loss, accuracy: aw.charts && aw.charts.accuracy,
    speedup: aw.speedupChart, time: aw.timeChart, tradeoff: aw.tradeoffChart,
    telemetry: aw.telemetryChart, compare: aw.compareChart,
  };
  const out = {};
  for (const name of names) {
    const chart = found[name];
    if (!chart) { out[name] = null; continue; }
    window.drawnText.set(chart.canvas, []);
    chart.draw();
    const scales = Object.values(chart.scales).map((s) => ({
      id: s.id, type: s.type, horizontal: s.isHorizontal(), display: Boolean(s.options.display),
      labelRotation: s.labelRotation || 0,
      ticks: s.ticks.map((t) => ({ value: t.value, label: t.label })),
      title: s.options.title && s.options.title.display ? s.options.title.text : null,
    }));
    const legend = chart.legend && chart.options.plugins.legend.display !== false ? {
      items: chart.legend.legendItems.map((i) => i.text),
      boxes: (chart.legend.legendHitBoxes || []).map((b) => [b.left, b.top, b.left + b.width,
        b.top + b.height]),
    } : null;
    out[name] = {
      visible: chart.canvas.offsetParent !== null && chart.width > 0,
      width: chart.width, height: chart.height,
      pixelWidth: chart.canvas.width, pixelHeight: chart.canvas.height,
      area: { ...chart.chartArea },
      scales, legend,
      labels: chart.data.labels ? chart.data.labels.map(String) : [],
      datasets: chart.data.datasets.map((d, i) => ({
        label: d.label, runId: d.runId === undefined ? null : d.runId,
        color: d.borderColor, points: d.data.length, radius: d.pointRadius,
        visible: chart.isDatasetVisible(i),
        bars: d.data.filter((p) => p && typeof p === "object" && p.x).length,
        names: d.data.map((p) => (p && p.name) || null),
      })),
      text: window.drawnText.get(chart.canvas) || [],
    };
  }
  return out;
}"""

EXPERIMENT_CHARTS = ["loss", "accuracy", "speedup", "time", "tradeoff", "telemetry"]


def epoch(n, *, rate):
    return {"event": "epoch", "epoch": n, "loss": 1.2 / n, "accuracy": 0.6 + 0.05 * n,
            "val_loss": 1.3 / n, "val_accuracy": 0.55 + 0.05 * n, "seconds": rate}


def telemetry(t, *, cpu, memory):
    return {"event": "telemetry", "t": t, "cpu_percent": cpu, "rss_mb": memory}


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory):
    with web_stack(tmp_path_factory.mktemp("chart-labels")) as stack:
        yield stack


def measured_experiment(alice, team, spec, recipes):
    """The baseline and `recipes` (the first three as RECIPES: XLA, int8 with its float32
    TFLite reference, and one left queued; any more succeed like XLA), with curves,
    telemetry (int8's one sample: it trained in under a second), results and a benchmark
    of them. Through the ORM, not the service: its on-commit enqueue would reach a real
    broker."""
    spec = validate_spec(spec, team=team)
    experiment = Experiment.objects.create(
        team=team, name=spec["name"], spec=spec, hardware=spec["hardware"],
        accuracy_budget=spec["accuracy_budget"], created_by=alice)
    recipes = [{"name": "baseline", "steps": []}, *recipes]
    runs = [Run.objects.create(experiment=experiment, name=recipe["name"], position=position,
                               steps=recipe["steps"])
            for position, recipe in enumerate(recipes)]
    baseline, xla, int8, _queued, *more = runs
    samples = {baseline: [telemetry(t, cpu=90 + t, memory=400 + 5 * t) for t in range(8)],
               xla: [telemetry(t, cpu=60 + 2 * t, memory=900 - 10 * t) for t in range(12)],
               int8: [telemetry(0.4, cpu=70, memory=380)]}
    for i, run in enumerate(more):
        samples[run] = [telemetry(t, cpu=50 + i, memory=500 + 20 * i) for t in range(5)]
    for i, run in enumerate([baseline, xla, int8, *more]):
        services.run_record_events(
            run, [epoch(n, rate=0.5 + 0.1 * i) for n in range(1, EPOCHS + 1)] + samples[run])
    finish_recipe(baseline, latency=0.47, train=2049, accuracy=0.9917)
    finish_recipe(xla, latency=0.37, train=1633, accuracy=0.9954)
    finish_recipe(int8, latency=0.033, train=2833, accuracy=0.9917, runtime="tflite",
                  reference={"latency_ms_p50": 0.0537, "test_accuracy": 0.9917,
                             "model_bytes": 2_184_700})
    for i, run in enumerate(more):
        finish_recipe(run, latency=0.47 / (1.2 + i), train=2049 * (0.8 + 0.1 * i),
                      accuracy=0.99 - 0.002 * i)
    benchmark_results(experiment)
    return experiment


@pytest.fixture
def measured(alice, alice_team, tiny_spec):
    return measured_experiment(
        alice, alice_team, tiny_spec(name="digits, seed MLP: chart labels", recipes=RECIPES,
                                     training={"epochs": EPOCHS, "batch_size": 64}),
        RECIPES)


def session_of(user):
    # Before Playwright starts: its loop in this thread would refuse the ORM.
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def measure(server, session, path, ready, names, screenshot, then=None, viewport=VIEWPORT):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport=viewport)
            context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "domain": "127.0.0.1",
                                  "path": "/", "value": session}])
            context.add_init_script(RECORD_TEXT)
            page = context.new_page()
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{server.url}{path}")
            page.wait_for_function(ready, timeout=20_000)
            charts = page.evaluate(MEASURE, names)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
            page.locator("section.charts").screenshot(
                path=str(ARTIFACTS / screenshot.replace(".png", "-charts.png")))
            if then:
                then(page)
        finally:
            browser.close()
    assert errors == []
    return charts


def overlap(a, b, slack=1.0):
    return (min(a[2], b[2]) - max(a[0], b[0]) > slack and
            min(a[3], b[3]) - max(a[1], b[1]) > slack)


def assert_readable(name, chart):
    """What every chart must satisfy, whatever it draws."""
    assert chart is not None, f"{name}: no chart"
    assert chart["visible"], f"{name}: not shown"
    inside = 1.0  # canvas pixels of antialiasing slack
    for item in chart["text"]:
        x0, y0, x1, y1 = item["box"]
        assert (x0 >= -inside and y0 >= -inside and x1 <= chart["pixelWidth"] + inside and
                y1 <= chart["pixelHeight"] + inside), (
            f"{name}: {item['text']!r} drawn at {item['box']}, outside its "
            f"{chart['pixelWidth']}x{chart['pixelHeight']} canvas")
        assert not item["squeezed"], f"{name}: {item['text']!r} squeezed to fit"
    texts = chart["text"]
    for i, a in enumerate(texts):
        for b in texts[i + 1:]:
            assert not overlap(a["box"], b["box"]), (
                f"{name}: {a['text']!r} {a['box']} and {b['text']!r} {b['box']} overlap")
    drawn = " ".join(item["text"] for item in texts)
    for scale in chart["scales"]:
        if not scale["display"]:
            continue
        # A title of several lines is a list of them.
        for title in [scale["title"]] if isinstance(scale["title"], str) else scale["title"] or []:
            assert title in drawn, f"{name}: axis title {title!r} not drawn"
        if scale["horizontal"]:
            assert scale["labelRotation"] == 0, f"{name}: {scale['id']} ticks rotated"
    area = chart["area"]
    assert area["bottom"] - area["top"] >= 0.5 * chart["height"], (
        f"{name}: plot {area['bottom'] - area['top']:.0f} px of a {chart['height']} px canvas")
    if chart["legend"]:
        items = chart["legend"]["items"]
        assert len(set(items)) == len(items), f"{name}: legend items alike: {items}"
        for text, (x0, y0, x1, y1) in zip(chart["legend"]["items"], chart["legend"]["boxes"],
                                          strict=True):
            assert x0 >= 0 and y0 >= 0 and x1 <= chart["width"] and y1 <= chart["height"], (
                f"{name}: legend item {text!r} at {(x0, y0, x1, y1)} outside the canvas")
            assert text in drawn, f"{name}: legend item {text!r} not drawn"


def test_every_chart_of_an_experiment_is_readable_without_hovering(server, alice, measured):
    session = session_of(alice)
    runs = {run.name: run.pk for run in measured.runs.order_by("position")}
    clicked = {}

    def click_a_run_in_the_legend(page):
        # Where the loss chart's legend drew "XLA compilation", in page pixels.
        # In view first: a mouse click outside the viewport reaches nothing, and the page's
        # layout may still move while its tables arrive.
        page.wait_for_load_state("networkidle")
        x, y = page.evaluate("""() => {
          const chart = window.accelweb.charts.loss;
          chart.canvas.scrollIntoView({ block: "center" });
          const i = chart.legend.legendItems.findIndex((item) => item.text === "XLA compilation");
          const box = chart.legend.legendHitBoxes[i];
          const canvas = chart.canvas.getBoundingClientRect();
          return [canvas.left + box.left + box.width / 2, canvas.top + box.top + box.height / 2];
        }""")
        page.mouse.click(x, y)
        page.wait_for_function("""() => window.accelweb.charts.loss.data.datasets.some(
          (d, i) => !window.accelweb.charts.loss.isDatasetVisible(i))""", timeout=5_000)
        clicked.update(page.evaluate("""() => Object.fromEntries(
          window.accelweb.charts.loss.data.datasets.map((d, i) =>
            [d.label, window.accelweb.charts.loss.isDatasetVisible(i)]))"""))

    charts = measure(
        server, session, f"experiments/{measured.pk}/",
        """() => window.accelweb && window.accelweb.state.runs.every((r) => r.series) &&
           window.accelweb.charts.loss.data.datasets.some((d) => d.data.length > 0) &&
           window.accelweb.telemetryChart.data.datasets.length > 0""",
        EXPERIMENT_CHARTS, "chart-labels-experiment.png", then=click_a_run_in_the_legend)
    print(json.dumps({name: {k: v for k, v in chart.items() if k != "text"}
                      for name, chart in charts.items()}, indent=1)[:6000])
    for name in EXPERIMENT_CHARTS:
        assert_readable(name, charts[name])

    # One legend item a run: a click hides its training and validation lines, only those.
    assert charts["loss"]["legend"]["items"] == list(runs), charts["loss"]["legend"]
    assert clicked == {f"{run} ({kind})": run != "XLA compilation" for run in runs
                       for kind in ("train", "validation")}, clicked

    # The speedup chart: one label for each bar, every row's name drawn in full, round ticks.
    speedup = charts["speedup"]
    rows = speedup["labels"]
    assert len(rows) == 5, rows  # noise floor, XLA, int8, int8 vs float32, runtime switch
    assert any("vs float32 TFLite" in row for row in rows), rows
    value_axis = next(s for s in speedup["scales"] if s["horizontal"])
    label_axis = next(s for s in speedup["scales"] if not s["horizontal"])
    assert len(label_axis["ticks"]) == len(rows), label_axis["ticks"]
    drawn = " ".join(item["text"] for item in speedup["text"])
    for row in rows:
        assert row in drawn, f"speedup: {row!r} not drawn in full ({drawn!r})"
    assert value_axis["type"] == "logarithmic"
    ticks = value_axis["ticks"]
    assert len(ticks) >= 3, ticks
    for tick in ticks:
        mantissa = float(f"{tick['value']:e}".split("e")[0])
        assert mantissa in (1.0, 2.0, 5.0), f"speedup: tick {tick} is not 1, 2 or 5 × 10^k"
        assert tick["label"] == f"{tick['value']:g}×", tick
    assert sum(d["bars"] for d in speedup["datasets"]) >= len(rows)

    # Accuracy against latency: every point carries its run's name without hovering.
    tradeoff = charts["tradeoff"]
    drawn = [item["text"] for item in tradeoff["text"]]
    names = {n for d in tradeoff["datasets"] for n in d["names"] if n}
    assert names == {"baseline", "XLA compilation", "int8 (dynamic range)"}, names
    for point in names:
        assert point in drawn, f"tradeoff: {point!r} not drawn next to its point ({drawn})"

    # The hardware chart draws a line or a point for every run that sent samples.
    telemetry_chart = charts["telemetry"]
    for run in ("baseline", "XLA compilation", "int8 (dynamic range)"):
        shown = [d for d in telemetry_chart["datasets"] if d["runId"] == runs[run]
                 and d["visible"] and (d["points"] >= 2 or (d["points"] and d["radius"]))]
        assert shown, f"telemetry: nothing of {run!r} is drawn ({telemetry_chart['datasets']})"

    # One colour per run in every chart of the page.
    colours = {}
    for name in ("loss", "accuracy", "time", "telemetry"):
        for dataset in charts[name]["datasets"]:
            colours.setdefault(dataset["runId"], set()).add(dataset["color"])
    assert set(colours) >= {runs["baseline"], runs["XLA compilation"]}
    for run_id, seen in colours.items():
        assert len(seen) == 1, f"run {run_id} drawn in {seen}"
    assert len({next(iter(c)) for c in colours.values()}) == len(colours)


def test_the_compare_chart_is_readable_without_hovering(server, alice, measured):
    session = session_of(alice)
    ids = ",".join(str(pk) for pk in measured.runs.filter(status=Run.Status.SUCCEEDED)
                   .values_list("pk", flat=True))
    switched = {}

    def against_seconds(page):
        page.select_option("#compare-axis", "seconds")
        switched.update(page.evaluate(MEASURE, ["compare"]))

    charts = measure(
        server, session, f"compare/?runs={ids}",
        "() => window.accelweb && window.accelweb.compareChart"
        " && window.accelweb.compareChart.data.datasets.length === 3",
        ["compare"], "chart-labels-compare.png", then=against_seconds)
    assert_readable("compare", charts["compare"])
    assert len(charts["compare"]["datasets"]) == 3
    # Against training seconds: the same checks on the chart drawn again.
    assert_readable("compare by seconds", switched["compare"])
    x_title = next(s["title"] for s in switched["compare"]["scales"] if s["id"] == "x")
    assert x_title == "training seconds (cumulative)"


def test_each_empty_chart_says_why_inside_its_plot(server, alice, alice_team, tiny_spec):
    spec = validate_spec(tiny_spec(name="nothing measured yet", recipes=RECIPES[:1]),
                         team=alice_team)
    experiment = Experiment.objects.create(
        team=alice_team, name=spec["name"], spec=spec, hardware=spec["hardware"],
        accuracy_budget=spec["accuracy_budget"], created_by=alice)
    Run.objects.create(experiment=experiment, name="baseline", position=0,
                       status=Run.Status.RUNNING)
    Run.objects.create(experiment=experiment, name="XLA compilation", position=1,
                       steps=RECIPES[0]["steps"])
    session = session_of(alice)
    charts = measure(
        server, session, f"experiments/{experiment.pk}/",
        "() => window.accelweb && window.accelweb.state.runs.every((r) => r.series)",
        EXPERIMENT_CHARTS, "chart-labels-empty.png")
    why = {
        "loss": "No epochs yet", "accuracy": "No epochs yet",
        "speedup": "the benchmark stage runs after every training run has ended",
        "time": "No validation accuracy yet", "tradeoff": "a run appears here once it has",
        "telemetry": "No hardware samples yet",
    }
    for name in EXPERIMENT_CHARTS:
        assert_readable(name, charts[name])
        drawn = " ".join(item["text"] for item in charts[name]["text"])
        assert why[name] in drawn, f"{name}: {drawn!r} does not say why it is empty"


LONG_NAME = "pruning_then_int8_with_a_name_that_has_no_spaces_at_all_and_goes_on_and_on"


@pytest.mark.parametrize("viewport", [VIEWPORT, PHONE], ids=["desktop", "phone"])
def test_a_crowded_experiment_stays_readable(server, alice, alice_team, tiny_spec, viewport):
    """Eight recipes, one named with 75 characters and no space: every row of the speedup
    chart still has its label, legends and names stay inside the canvases, on a desktop
    and on a phone."""
    recipes = RECIPES + [{"name": name, "steps": [{"technique": "xla"}]} for name in
                         [LONG_NAME, "XLA again", "XLA, third try", "XLA on a quiet machine",
                          "XLA (5)"]]
    experiment = measured_experiment(
        alice, alice_team, tiny_spec(name="crowded", recipes=recipes,
                                     training={"epochs": EPOCHS, "batch_size": 64}),
        recipes)
    session = session_of(alice)
    charts = measure(
        server, session, f"experiments/{experiment.pk}/",
        """() => window.accelweb && window.accelweb.state.runs.every((r) => r.series) &&
           window.accelweb.charts.loss.data.datasets.some((d) => d.data.length > 0) &&
           window.accelweb.telemetryChart.data.datasets.length > 0""",
        EXPERIMENT_CHARTS, f"chart-labels-crowded-{viewport['width']}.png", viewport=viewport)
    for name in EXPERIMENT_CHARTS:
        assert_readable(name, charts[name])
    speedup = charts["speedup"]
    assert len(speedup["labels"]) == 10, speedup["labels"]  # 5 as above and 5 more recipes
    label_axis = next(s for s in speedup["scales"] if not s["horizontal"])
    assert len(label_axis["ticks"]) == len(speedup["labels"])
    drawn = "".join(item["text"] for item in speedup["text"])
    assert LONG_NAME in drawn  # on lines of its own, not cut
