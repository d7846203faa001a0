// The experiment page: loss/accuracy curves, run statuses and speedups, kept live over
// the websocket. The database is the record; the socket only notifies (the engine's
// epochs come with their numbers, for the live curves), every (re)connect starts with a
// snapshot, and any other change is read again as one results fragment: the tables and
// the snapshot they were drawn from. A lost message costs nothing.
(function () {
  "use strict";

  const root = document.getElementById("experiment");
  if (!root) return;
  const C = window.accelwebCharts;
  const ENDED = ["succeeded", "failed", "cancelled"];
  let state = JSON.parse(document.getElementById("experiment-snapshot").textContent);

  // What Chart.js last laid out of each dataset (its array, points and radius): a live
  // epoch's new segments are drawn from there (see strokeNew).
  const laidOut = {
    id: "laidOut",
    afterUpdate(chart) {
      for (const d of chart.data.datasets) {
        d.laidOut = { data: d.data, drawn: d.data.length, radius: d.pointRadius };
      }
    },
  };

  // A run's colour: its place among the page's runs, the same in every chart.
  const colorOf = (run) => C.runColor(Math.max(0, state.runs.findIndex((r) => r.id === run.id)));

  function lineChart(canvasId, yLabel, empty, x = C.axis("epoch", { ticks: { precision: 0 } })) {
    return new Chart(document.getElementById(canvasId), {
      type: "line",
      data: { datasets: [] },
      plugins: [laidOut],
      options: C.options({
        parsing: false,
        normalized: true,
        interaction: { mode: "nearest", intersect: false },
        scales: {
          x,
          y: C.axis(yLabel),
        },
        plugins: { legend: C.legend({ byRun: true }), emptyState: { message: empty } },
      }),
    });
  }

  const charts = {
    loss: lineChart("loss-chart", "loss", "No epochs yet: each run's curves appear as it trains."),
    accuracy: lineChart("accuracy-chart", "accuracy", "No epochs yet: each run's curves appear as it trains."),
  };
  // The epoch axis spans the epochs planned: a run's curves grow across charts that stay
  // put while it trains, and show how far it got (new axes were a full update every few
  // epochs, see strokeNew).
  for (const chart of Object.values(charts)) chart.options.scales.x.suggestedMax = state.epochs || undefined;
  const telemetryChart = new Chart(document.getElementById("telemetry-chart"), {
    type: "line",
    data: { datasets: [] },
    options: C.options({
      parsing: false, normalized: true,
      scales: {
        x: C.axis("seconds since the run started"),
        y: C.axis("CPU % / GPU %", { min: 0 }),
        memory: C.axis("memory (MB)", { position: "right", min: 0, grid: { drawOnChartArea: false } }),
      },
      plugins: {
        legend: C.legend({ byRun: true }),
        emptyState: { message: "No hardware samples yet: the runner samples CPU and memory (and GPUs) while a run trains." },
      },
    }),
  });
  // Chart.js draws no error bars: this draws each bar's 95% interval (data point .ci,
  // [low, high] on the value axis) as a whisker, and a dashed line at 1× (no change).
  const errorBars = {
    id: "errorBars",
    afterDatasetsDraw(chart) {
      const { ctx, chartArea } = chart;
      const scale = chart.scales.x;
      ctx.save();
      ctx.beginPath();
      ctx.rect(chartArea.left, chartArea.top, chartArea.right - chartArea.left,
        chartArea.bottom - chartArea.top);
      ctx.clip();
      const one = scale.getPixelForValue(1);
      ctx.strokeStyle = "#6b7280";
      ctx.setLineDash([4, 4]);
      ctx.beginPath();
      ctx.moveTo(one, chartArea.top);
      ctx.lineTo(one, chartArea.bottom);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.strokeStyle = "#111827";
      ctx.lineWidth = 1.5;
      chart.data.datasets.forEach((dataset, i) => {
        if (!chart.isDatasetVisible(i)) return;
        chart.getDatasetMeta(i).data.forEach((bar, j) => {
          const ci = dataset.data[j] && dataset.data[j].ci;
          if (!ci) return;
          const low = scale.getPixelForValue(ci[0]);
          const high = scale.getPixelForValue(ci[1]);
          const cap = Math.max(4, Math.min(8, (bar.height || 12) / 2 - 1));
          ctx.lineWidth = 2;
          ctx.beginPath();
          ctx.moveTo(low, bar.y); ctx.lineTo(high, bar.y);
          ctx.moveTo(low, bar.y - cap); ctx.lineTo(low, bar.y + cap);
          ctx.moveTo(high, bar.y - cap); ctx.lineTo(high, bar.y + cap);
          ctx.stroke();
        });
      });
      ctx.restore();
    },
  };
  const speedupChart = new Chart(document.getElementById("speedup-chart"), {
    type: "bar",
    data: { labels: [], datasets: [] },
    plugins: [errorBars],
    options: C.options({
      indexAxis: "y",
      scales: {
        // Log scale: 0.5x and 2x sit at the same distance from 1x.
        x: C.logAxis(["× faster than the baseline", "(log scale, 1× = same)"]),
        // Every row labelled, its name wrapped onto lines rather than cut at the edge.
        y: { ticks: { autoSkip: false, font: { size: 11 },
          callback(value) { return C.wrap(this.getLabelForValue(value)); } } },
      },
      plugins: {
        emptyState: { message: "" },
        tooltip: {
          callbacks: {
            afterLabel: (ctx) => {
              const ci = ctx.raw && ctx.raw.ci;
              return ci ? `95% CI ${ci[0].toFixed(2)}–${ci[1].toFixed(2)}` : "";
            },
          },
        },
      },
    }),
  });
  const timeChart = lineChart("time-chart", "validation accuracy",
    "No validation accuracy yet: each run's curve appears as it trains.",
    C.axis("training seconds (cumulative)"));
  const tradeoffChart = new Chart(document.getElementById("tradeoff-chart"), {
    type: "scatter",
    data: { datasets: [] },
    plugins: [C.pointLabels],
    options: C.options({
      // Room for the names drawn beside the points at the plot's edges.
      layout: { padding: { top: 4, right: 12 } },
      scales: {
        x: C.axis("latency p50, batch 1 (ms)"),
        y: C.axis("test accuracy"),
      },
      plugins: {
        // The kinds of point, in the kinds' neutral colours (not the first point's).
        legend: { ...C.legend(), labels: { ...C.legend().labels, generateLabels: (chart) =>
          Chart.defaults.plugins.legend.labels.generateLabels(chart).map((item) => {
            const d = chart.data.datasets[item.datasetIndex];
            return { ...item, fillStyle: d.backgroundColor, strokeStyle: d.borderColor };
          }) } },
        emptyState: { message: "No points yet: a run appears here once it has succeeded, with its test accuracy and batch-1 latency." },
        tooltip: {
          callbacks: {
            label: (ctx) => `${ctx.raw.name}: ${ctx.raw.y.toFixed(4)} at ${ctx.raw.x.toFixed(4)} ms`,
          },
        },
      },
    }),
  });
  // Exposed for tests and for the curious: the live charts of this page.
  window.accelweb = {
    charts, speedupChart, telemetryChart, timeChart, tradeoffChart,
    get state() { return state; },
  };

  const SERIES_KEYS = ["loss", "accuracy", "val_loss", "val_accuracy"];
  const LOWEST_IS_BEST = { loss: true, val_loss: true, accuracy: false, val_accuracy: false };
  const curvePoints = () => state.curve_points || 300;
  // Each series' points as Chart.js reads them, kept per series array: a live epoch
  // converts its one new point, not the whole curve again (latency at 50 runs).
  const xyOf = new WeakMap();
  function toXY(points) {
    if (!points) return [];
    let xy = xyOf.get(points);
    if (!xy) { xy = []; xyOf.set(points, xy); }
    for (let i = xy.length; i < points.length; i++) xy.push({ x: points[i][0], y: points[i][1] });
    return xy;
  }

  // Curves come from the server already thinned (min/max per bucket) to a few hundred
  // points per series; live epochs are appended here until a series doubles, then the
  // server's thinned copy is fetched again (loadCurves).
  function curveDatasets(metric) {
    const datasets = [];
    state.runs.forEach((run) => {
      const color = colorOf(run);
      const series = run.series || {};
      const radius = (series[metric] || []).length > 60 ? 0 : 2;
      datasets.push({ label: `${run.name} (train)`, data: toXY(series[metric]), borderColor: color,
        backgroundColor: color, pointRadius: radius, runId: run.id, runName: run.name });
      datasets.push({ label: `${run.name} (validation)`, data: toXY(series[`val_${metric}`]),
        borderColor: color, backgroundColor: color, borderDash: [6, 4], pointRadius: radius,
        runId: run.id, runName: run.name });
    });
    return datasets;
  }

  // The same runs as drawn: their dataset objects stay and take the new points, which
  // spares Chart.js setting each dataset up again on every live epoch. live: the points
  // only grew by a live epoch, which is drawn at once as segments where it can be.
  function setDatasets(chart, datasets, live = false) {
    const old = chart.data.datasets;
    if (old.length === datasets.length &&
        old.every((d, i) => d.label === datasets[i].label && d.runId === datasets[i].runId)) {
      old.forEach((d, i) => { d.data = datasets[i].data; d.pointRadius = datasets[i].pointRadius; });
    } else {
      chart.data.datasets = datasets;
    }
    if (live && strokeNew(chart)) updateAfterPaint(chart);
    else chart.update("none");
  }

  // A live epoch is drawn on the canvas as its lines' new segments over the chart as it
  // stands, when every new point falls inside the axes drawn. A Chart.js update costs
  // 1-3 ms a chart, three charts an epoch: most of the page's share of a live epoch's
  // latency; the segments cost microseconds. The whole chart (the elements tooltips read,
  // ticks that suit the points now) is drawn again once the frame that shows them is
  // painted. False, drawing nothing, when the chart must update now: new axes, runs,
  // arrays or point radius.
  function strokeNew(chart) {
    const { ctx, chartArea: area, scales: { x, y } } = chart;
    if (!area || !x || !y) return false;
    const segments = [];
    for (const [index, d] of chart.data.datasets.entries()) {
      const before = d.laidOut;
      if (!before || before.data !== d.data || before.radius !== d.pointRadius) return false;
      if (d.data.length === before.drawn || !chart.isDatasetVisible(index)) continue;
      const points = d.data.slice(Math.max(0, before.drawn - 1));
      if (points.slice(before.drawn ? 1 : 0).some((p) => !(p.x >= x.min && p.x <= x.max &&
        p.y >= y.min && p.y <= y.max))) return false;
      // Where the dashes stand at the last point drawn: the whole line is one dashed path.
      const laid = chart.getDatasetMeta(index).data;
      let length = 0;
      for (let i = 1; i < before.drawn && i < laid.length; i++) {
        length += Math.hypot(laid[i].x - laid[i - 1].x, laid[i].y - laid[i - 1].y);
      }
      segments.push([d, points.map((p) => [x.getPixelForValue(p.x), y.getPixelForValue(p.y)]),
        length, clipOf(chart, index)]);
    }
    const line = Chart.defaults.elements.line;
    const dot = Chart.defaults.elements.point;
    // The first dataset drawn last, on top, as Chart.js draws them; each line's points
    // (the last one drawn before included) over it.
    for (const [d, pixels, dashAt, clip] of segments.reverse()) {
      ctx.save();
      ctx.beginPath();
      ctx.rect(clip.left, clip.top, clip.right - clip.left, clip.bottom - clip.top);
      ctx.clip();
      ctx.strokeStyle = d.borderColor;
      ctx.lineWidth = d.borderWidth ?? line.borderWidth;
      ctx.setLineDash(d.borderDash || []);
      ctx.lineDashOffset = dashAt;
      ctx.beginPath();
      pixels.forEach(([px, py], i) => (i ? ctx.lineTo(px, py) : ctx.moveTo(px, py)));
      ctx.stroke();
      if (d.pointRadius > 0) {
        ctx.setLineDash([]);
        ctx.fillStyle = d.backgroundColor;
        ctx.lineWidth = dot.borderWidth;
        for (const [px, py] of pixels) {
          ctx.beginPath();
          ctx.arc(px, py, d.pointRadius, 0, 2 * Math.PI);
          ctx.fill();
          ctx.stroke();
        }
      }
      d.laidOut.drawn = d.data.length;
      ctx.restore();
    }
    return true;
  }

  // Where Chart.js clips a dataset's drawing: the plot, widened by what its points and
  // line may overflow (half a point at the axis' end), as its meta's _clip says.
  function clipOf(chart, index) {
    const { chartArea: area, width, height } = chart;
    const clip = chart.getDatasetMeta(index)._clip;
    if (!clip) return area;
    if (clip.disabled) return { left: 0, top: 0, right: width, bottom: height };
    const by = (value) => (value === true ? 0 : value);
    return {
      left: clip.left === false ? 0 : area.left - by(clip.left),
      right: clip.right === false ? width : area.right + by(clip.right),
      top: clip.top === false ? 0 : area.top - by(clip.top),
      bottom: clip.bottom === false ? height : area.bottom + by(clip.bottom),
    };
  }

  const toUpdate = new Set();
  function updateAfterPaint(chart) {
    if (toUpdate.size === 0) {
      // After the frame's paint (a task queued from its animation frame), before the next.
      requestAnimationFrame(() => setTimeout(() => {
        const waiting = [...toUpdate];
        toUpdate.clear();
        for (const c of waiting) c.update("none");
      }, 0));
    }
    toUpdate.add(chart);
  }

  function drawCurves(live = false) {
    for (const [metric, chart] of Object.entries(charts)) setDatasets(chart, curveDatasets(metric), live);
    setDatasets(timeChart, state.runs.map((run) => {
      const color = colorOf(run);
      const points = toXY((run.series || {}).val_accuracy_by_time);
      return { label: run.name, data: points, borderColor: color, backgroundColor: color,
        pointRadius: points.length > 60 ? 0 : 2, runId: run.id };
    }), live);
  }

  function drawTradeoff() {
    const points = (state.tradeoff || []).map((p) => ({ x: p.latency_ms, y: p.accuracy, name: p.name, point: p }));
    const front = points.filter((p) => p.point.pareto).sort((a, b) => a.x - b.x);
    // Room around the points for their names; none without points (no negative latency).
    for (const scale of ["x", "y"]) tradeoffChart.options.scales[scale].grace = points.length ? "8%" : 0;
    // Each point in its run's colour (its name drawn beside it); what kind of point it
    // is shows in its shape: joined and large on the front, small off it, hollow when
    // measured on other hardware. The legend shows the kinds, in neutral colours.
    const colors = (list) => list.map((p) => colorOf({ id: p.point.run_id }));
    const kind = (label, data, style) => ({ label, data, pointBackgroundColor: colors(data),
      pointBorderColor: colors(data), ...style });
    const others = points.filter((p) => !p.point.comparable);
    tradeoffChart.data.datasets = [
      kind("Pareto front", front, { showLine: true, borderColor: "#374151",
        backgroundColor: "#374151", borderWidth: 1.5, pointRadius: 6, pointHoverRadius: 8 }),
      kind("dominated", points.filter((p) => p.point.comparable && !p.point.pareto),
        { borderColor: "#9ca3af", backgroundColor: "#9ca3af", pointRadius: 4 }),
      { ...kind("other hardware", others, { borderColor: "#b45309",
        backgroundColor: "rgba(0,0,0,0)", pointRadius: 5, borderWidth: 2 }),
      pointBackgroundColor: "rgba(0,0,0,0)" },
    ].filter((d) => d.data.length);
    tradeoffChart.update("none");
  }

  let curveStat = "last";
  function drawSummaries() {
    const select = document.getElementById("curve-stat");
    if (select) select.value = curveStat;
    document.querySelectorAll("#curve-table .curve-value").forEach((cell) => {
      const run = state.runs.find((r) => String(r.id) === cell.dataset.runId);
      const summary = run && run.summary && run.summary[cell.dataset.key];
      if (summary) {
        for (const stat of ["last", "best", "min", "max"]) {
          cell.dataset[stat] = summary[stat] === null || summary[stat] === undefined ? "" : String(summary[stat]);
        }
      }
      const value = cell.dataset[curveStat];
      cell.textContent = value === "" || value === undefined ? "" : Number(value).toFixed(4);
    });
  }
  root.addEventListener("change", (e) => {
    if (e.target && e.target.id === "curve-stat") { curveStat = e.target.value; drawSummaries(); }
  });

  // The curves are not in the snapshot (it stays small whatever the epochs): they are
  // fetched, as the server stores them (a few hundred points a series), or every epoch
  // when "full resolution" is ticked. Events that arrive during a fetch are kept and
  // played over its answer; an epoch the answer already holds changes nothing.
  let curvesLoading = null;
  let curvesAgain = false;
  let buffered = [];
  const fullResolution = () => { const box = document.getElementById("full-resolution"); return Boolean(box && box.checked); };
  function loadCurves() {
    if (curvesLoading) { curvesAgain = true; return curvesLoading; }
    const url = `${root.dataset.curvesUrl}${fullResolution() ? "?full=1" : ""}`;
    curvesLoading = fetch(url, { credentials: "same-origin" })
      .then((response) => (response.ok ? response.json() : Promise.reject(response.status)))
      .then((answer) => {
        for (const run of state.runs) {
          const curves = answer.runs[String(run.id)];
          if (curves) Object.assign(run, curves);
        }
        const replay = buffered;
        buffered = [];
        for (const [runId, event] of replay) applyEvent(state.runs.find((r) => r.id === runId), event);
        drawCurves();
        drawTelemetry();
        drawSummaries();
      })
      .catch(() => {})
      .finally(() => {
        curvesLoading = null;
        if (curvesAgain) { curvesAgain = false; loadCurves(); } else buffered = [];
      });
    return curvesLoading;
  }

  function appendEpoch(run, event) {
    // The curves fetched hold every epoch up to last_epoch; an event for one of those
    // (it raced the fetch) changes nothing.
    if (typeof event.epoch !== "number" || event.epoch <= (run.last_epoch || 0)) return;
    run.last_epoch = event.epoch;
    const series = run.series || (run.series = {});
    for (const key of [...SERIES_KEYS, "val_accuracy_by_time"]) series[key] = series[key] || [];
    run.elapsed = (run.elapsed || 0) + (event.seconds || 0);
    const summary = run.summary || (run.summary = {});
    for (const key of SERIES_KEYS) {
      const value = event[key];
      if (value === null || value === undefined) continue;
      series[key].push([event.epoch, value]);
      const s = summary[key] && summary[key].last !== null ? summary[key] : { min: value, max: value };
      s.last = value;
      s.min = Math.min(s.min, value);
      s.max = Math.max(s.max, value);
      s.best = LOWEST_IS_BEST[key] ? s.min : s.max;
      summary[key] = s;
    }
    if (event.val_accuracy !== null && event.val_accuracy !== undefined) {
      series.val_accuracy_by_time.push([Number(run.elapsed.toFixed(4)), event.val_accuracy]);
    }
    // Past twice the points the server keeps, its thinned copy is fetched again.
    if (!fullResolution() && Object.values(series).some((points) => points.length > 2 * curvePoints())) {
      loadCurves();
    }
  }

  function appendTelemetry(run, event) {
    const samples = run.telemetry || (run.telemetry = []);
    const last = samples[samples.length - 1];
    if (last && typeof event.t === "number" && typeof last.t === "number" && event.t <= last.t) return;
    samples.push(event);
    if (!fullResolution() && samples.length > 2 * curvePoints()) loadCurves();
  }

  // One engine event of a run; what it changed is drawn by the caller.
  function applyEvent(run, event) {
    if (!run || !event) return;
    if (curvesLoading) buffered.push([run.id, event]);
    if (event.event === "epoch") appendEpoch(run, event);
    else if (event.event === "telemetry") appendTelemetry(run, event);
  }

  function drawTelemetry() {
    const datasets = [];
    state.runs.forEach((run) => {
      const samples = run.telemetry || [];
      if (!samples.length) return;
      const color = colorOf(run);
      // A run that sampled only once or twice (it trained in a second) is drawn as points:
      // a line of one point draws nothing.
      const radius = samples.length < 3 ? 3 : 0;
      const series = (key) => samples.filter((s) => s[key] !== null && s[key] !== undefined)
        .map((s) => ({ x: s.t, y: s[key] }));
      const line = (label, key, yAxisID, borderDash) => datasets.push({
        label: `${run.name} ${label}`, data: series(key), borderColor: color, backgroundColor: color,
        borderDash, pointRadius: radius, yAxisID, runId: run.id, runName: run.name });
      line("CPU %", "cpu_percent", "y", []);
      line("memory", "rss_mb", "memory", [6, 4]);
      if (samples.some((s) => s.gpu_util !== undefined && s.gpu_util !== null)) {
        line("GPU %", "gpu_util", "y", [2, 2]);
        line("GPU memory", "gpu_mem_mb", "memory", [10, 3]);
      }
    });
    telemetryChart.data.datasets = datasets;
    telemetryChart.update("none");
  }

  function drawSpeedups() {
    const rows = (state.comparison || []).filter((r) => r.inference_speedup || r.train_speedup);
    speedupChart.options.plugins.emptyState.message = rows.length ? "" : whyNoSpeedups();
    // A band per row, tall enough for its two bars and its name on up to three lines.
    const lines = rows.reduce((n, r) => n + Math.max(2, C.wrap(r.name).length), 0);
    const box = speedupChart.canvas.parentNode;
    const height = `${Math.max(260, 110 + 17 * lines + 10 * rows.length)}px`;
    const resized = box.style.height !== height;
    box.style.height = height;
    speedupChart.data.labels = rows.map((r) => r.name);
    speedupChart.data.datasets = [
      { label: "inference (batch-1 latency)", backgroundColor: "#2563eb",
        data: rows.map((r) => ({ x: r.inference_speedup, y: r.name, ci: r.inference_ci })) },
      { label: "training throughput", backgroundColor: "#16a34a",
        data: rows.map((r) => ({ x: r.train_speedup, y: r.name, ci: r.train_ci })) },
    ];
    // The axis must reach the whiskers' ends, and 1× (no change).
    const bounds = C.logBounds(rows.flatMap((r) => [r.inference_speedup, r.train_speedup,
      ...(r.inference_ci || []), ...(r.train_ci || [])]));
    speedupChart.options.scales.x.min = bounds.min;
    speedupChart.options.scales.x.max = bounds.max;
    if (resized) speedupChart.resize();
    speedupChart.update("none");
  }

  // Why the speedup chart is empty, from where the runs and the benchmark stand.
  function whyNoSpeedups() {
    const baseline = state.runs.find((r) => r.baseline);
    const benchmark = state.benchmark;
    if (!state.runs.every((r) => ENDED.includes(r.status))) {
      return "No speedups yet: the benchmark stage runs after every training run has ended.";
    }
    if (baseline && baseline.status !== "succeeded") {
      return "No speedups: the baseline did not succeed, so there is nothing to compare against.";
    }
    if (state.runs.every((r) => r.baseline || r.status !== "succeeded")) {
      return "No speedups: no recipe succeeded.";
    }
    if (benchmark && !ENDED.includes(benchmark.status)) return `No speedups yet: ${benchmark.stage}.`;
    if (benchmark && benchmark.status === "failed") {
      return "No speedups: the benchmark failed (see below); re-benchmark to measure again.";
    }
    return "No speedups yet: waiting for the benchmark stage.";
  }

  function drawRun(run) {
    const row = document.querySelector(`tr[data-run-id="${run.id}"]`);
    if (!row) return;
    const status = row.querySelector(".run-status");
    if (status) {
      status.textContent = run.status.charAt(0).toUpperCase() + run.status.slice(1);
      status.className = `status status-${run.status} run-status`;
    }
    const bar = row.querySelector(".run-progress");
    if (bar) bar.value = run.progress;
    const epochs = row.querySelector(".run-epochs");
    if (epochs) epochs.textContent = `${run.epochs_done}/${state.epochs}`;
    const worker = row.querySelector(".run-worker");
    if (worker) worker.textContent = run.worker || "";
  }

  // The benchmark stage: progress while it measures ("benchmarking: execution 3 of 5"),
  // then the results fragment again, with the speedups and the accuracy/latency front.
  function drawBenchmark(message) {
    const benchmark = message.benchmark;
    if (!benchmark) return;
    state.benchmark = benchmark;
    const ended = ENDED.includes(benchmark.status);
    const stage = document.getElementById("benchmark-stage");
    const bar = document.getElementById("benchmark-progress");
    if (!ended && stage && bar) {
      // A progress tick: drawn in place, no request.
      stage.textContent = benchmark.stage;
      stage.className = `status status-${benchmark.status}`;
      bar.value = benchmark.progress;
    } else {
      // Queued (the section has no bar yet) or ended (speedups, noise floor, sign-offs).
      refreshResults();
    }
  }

  function drawAll() {
    drawCurves();
    drawTelemetry();
    drawSpeedups();
    drawTradeoff();
    drawSummaries();
    state.runs.forEach(drawRun);
  }

  // The snapshot a results fragment was drawn from, read from the database when the
  // fetch was answered. Live events may have taken the page past it since (they are told
  // before they are stored): a run keeps the curves the page drew, and how far it got
  // when that is further on in the same status. A run the database holds more epochs of
  // than the page drew missed some: the curves are fetched again. Only the charts whose
  // data changed are drawn again: a chart given new datasets forgets the runs hidden in
  // its legend.
  function takeSnapshot(fresh) {
    const ids = (s) => s.runs.map((r) => r.id).join();
    const speedups = (s) => JSON.stringify([s.comparison, s.runs.map((r) => r.status), s.benchmark]);
    const runsChanged = ids(fresh) !== ids(state);
    const speedupsChanged = speedups(fresh) !== speedups(state);
    const tradeoffChanged = JSON.stringify(fresh.tradeoff) !== JSON.stringify(state.tradeoff);
    let missed = false;
    for (const run of fresh.runs) {
      const old = state.runs.find((r) => r.id === run.id);
      if (old && old.status === run.status && (old.epochs_done || 0) > (run.epochs_done || 0)) {
        Object.assign(run, { epochs_done: old.epochs_done, progress: old.progress });
      }
      if (old && (old.last_epoch || 0) >= (run.last_epoch || 0)) {
        Object.assign(run, { series: old.series, telemetry: old.telemetry, summary: old.summary,
          elapsed: old.elapsed, last_epoch: old.last_epoch });
      } else if (run.last_epoch) {
        missed = true;
      }
    }
    state = fresh;
    if (runsChanged) { drawCurves(); drawTelemetry(); }
    if (runsChanged || speedupsChanged) drawSpeedups();
    if (runsChanged || tradeoffChanged) drawTradeoff();
    drawSummaries();
    state.runs.forEach(drawRun);
    if (missed) loadCurves();
  }

  let refreshing = null;
  let refreshAgain = false;
  function refreshResults() {
    // Tables are rendered by the server, so the page and a reload always agree; the
    // snapshot in the fragment brings what the charts draw of the same evidence (the
    // speedups, the accuracy/latency front): one request, one read of it.
    // A change told while a fetch is in flight may be newer than its answer: fetch again.
    if (refreshing) { refreshAgain = true; return refreshing; }
    refreshing = fetch(root.dataset.resultsUrl, { credentials: "same-origin" })
      .then((response) => (response.ok ? response.text() : Promise.reject(response.status)))
      // Server-rendered, escaped template output (not data): safe to put in place.
      .then((html) => {
        document.getElementById("results").innerHTML = html;
        takeSnapshot(JSON.parse(document.getElementById("experiment-snapshot").textContent));
      })
      .catch(() => {})
      .finally(() => {
        refreshing = null;
        if (refreshAgain) { refreshAgain = false; refreshResults(); }
      });
    return refreshing;
  }

  function mergeRun(update) {
    const run = state.runs.find((r) => r.id === update.id);
    if (!run) return null;
    const wasEnded = ENDED.includes(run.status);
    Object.assign(run, update);
    return { run, restarted: wasEnded && !ENDED.includes(run.status) };
  }

  function onMessage(message) {
    if (message.type === "heartbeat") return;
    if (message.type === "snapshot") {
      const ended = (s) => s.runs.filter((r) => ENDED.includes(r.status)).length;
      const bench = (s) => (s.benchmark ? `${s.benchmark.id}:${s.benchmark.status}` : "");
      // A run or the benchmark ended while the socket was down: the tables are stale.
      const changed = ended(message.snapshot) !== ended(state) ||
        bench(message.snapshot) !== bench(state);
      // Until the curves are fetched again, each run keeps the ones it had.
      for (const run of message.snapshot.runs) {
        const old = state.runs.find((r) => r.id === run.id);
        if (old) Object.assign(run, { series: old.series, telemetry: old.telemetry }, { last_epoch: Math.min(run.last_epoch || 0, old.last_epoch || 0) });
      }
      state = message.snapshot;
      drawAll();
      loadCurves();
      if (changed) refreshResults();
      return;
    }
    // A sign-off or comment added or removed elsewhere: the server draws both with the
    // results. A comment's "run" is an id, not a run's state.
    if (message.type === "signoff" || message.type === "comment") { refreshResults(); return; }
    if (message.type === "benchmark") { drawBenchmark(message); return; }
    if (!message.run) return;
    const merged = mergeRun(message.run);
    // A run the page does not know: its row and its state come with the results.
    if (!merged) { refreshResults(); return; }
    if (merged.restarted) {
      Object.assign(merged.run, { telemetry: [], series: {}, summary: {}, elapsed: 0, last_epoch: 0 });
    }
    // A batch ("events": what the engine printed within a few milliseconds) or one event.
    const events = message.events || (message.event ? [message.event] : []);
    for (const event of events) applyEvent(merged.run, event);
    if (events.some((event) => event.event === "epoch")) { drawCurves(!curvesLoading); drawSummaries(); }
    if (events.some((event) => event.event === "telemetry")) drawTelemetry();
    drawRun(merged.run);
    // A run started, ended or was reset: its tables, the speedups and the accuracy/latency
    // front, as the server has them now.
    if (message.type === "status") refreshResults();
  }

  root.addEventListener("change", (e) => {
    if (e.target && e.target.id === "full-resolution") loadCurves();
  });

  drawAll();
  loadCurves();
  window.accelwebLiveSocket(root.dataset.wsPath, { onMessage });
})();
