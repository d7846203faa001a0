// The experiment page: loss/accuracy curves, run statuses and speedups, kept live over
// the websocket. The database is the record; the socket only notifies, and every
// (re)connect starts with a snapshot, so a lost message costs nothing.
(function () {
  "use strict";

  const root = document.getElementById("experiment");
  if (!root) return;
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f"];
  const ENDED = ["succeeded", "failed", "cancelled"];
  const liveState = document.getElementById("live-state");
  let state = JSON.parse(document.getElementById("experiment-snapshot").textContent);

  function lineChart(canvasId, yLabel) {
    return new Chart(document.getElementById(canvasId), {
      type: "line",
      data: { datasets: [] },
      options: {
        animation: false,
        parsing: false,
        normalized: true,
        interaction: { mode: "nearest", intersect: false },
        scales: {
          x: { type: "linear", title: { display: true, text: "epoch" }, ticks: { precision: 0 } },
          y: { title: { display: true, text: yLabel } },
        },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
      },
    });
  }

  const charts = {
    loss: lineChart("loss-chart", "loss"),
    accuracy: lineChart("accuracy-chart", "accuracy"),
  };
  const telemetryChart = new Chart(document.getElementById("telemetry-chart"), {
    type: "line",
    data: { datasets: [] },
    options: {
      animation: false, parsing: false, normalized: true,
      scales: {
        x: { type: "linear", title: { display: true, text: "seconds since the run started" } },
        y: { title: { display: true, text: "CPU % / GPU %" }, min: 0 },
        memory: { position: "right", title: { display: true, text: "memory (MB)" }, min: 0,
          grid: { drawOnChartArea: false } },
      },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
    },
  });
  const speedupChart = new Chart(document.getElementById("speedup-chart"), {
    type: "bar",
    data: { labels: [], datasets: [] },
    options: {
      animation: false,
      indexAxis: "y",
      // Log scale: 0.5x and 2x sit at the same distance from 1x.
      scales: { x: { type: "logarithmic", title: { display: true, text: "× faster than the baseline (log scale, 1 = same)" } } },
      plugins: {
        legend: { position: "bottom", labels: { boxWidth: 12 } },
        tooltip: {
          callbacks: {
            afterLabel: (ctx) => {
              const ci = ctx.raw && ctx.raw.ci;
              return ci ? `95% CI ${ci[0].toFixed(2)}–${ci[1].toFixed(2)}` : "";
            },
          },
        },
      },
    },
  });
  // Exposed for tests and for the curious: the live charts of this page.
  window.accelweb = { charts, speedupChart, telemetryChart, get state() { return state; } };

  function curveDatasets(metric) {
    const datasets = [];
    state.runs.forEach((run, index) => {
      const color = COLORS[index % COLORS.length];
      const points = (key) => run.epochs
        .filter((e) => e[key] !== null && e[key] !== undefined)
        .map((e) => ({ x: e.epoch, y: e[key] }));
      datasets.push({ label: `${run.name} (train)`, data: points(metric), borderColor: color,
        backgroundColor: color, pointRadius: 2, runId: run.id });
      datasets.push({ label: `${run.name} (validation)`, data: points(`val_${metric}`),
        borderColor: color, backgroundColor: color, borderDash: [6, 4], pointRadius: 2,
        runId: run.id });
    });
    return datasets;
  }

  function drawCurves() {
    for (const [metric, chart] of Object.entries(charts)) {
      chart.data.datasets = curveDatasets(metric);
      chart.update("none");
    }
  }

  function drawTelemetry() {
    const datasets = [];
    state.runs.forEach((run, index) => {
      const samples = run.telemetry || [];
      if (!samples.length) return;
      const color = COLORS[index % COLORS.length];
      const series = (key) => samples.filter((s) => s[key] !== null && s[key] !== undefined)
        .map((s) => ({ x: s.t, y: s[key] }));
      datasets.push({ label: `${run.name} CPU %`, data: series("cpu_percent"), borderColor: color,
        backgroundColor: color, pointRadius: 0, yAxisID: "y" });
      datasets.push({ label: `${run.name} memory`, data: series("rss_mb"), borderColor: color,
        backgroundColor: color, borderDash: [6, 4], pointRadius: 0, yAxisID: "memory" });
      if (samples.some((s) => s.gpu_util !== undefined && s.gpu_util !== null)) {
        datasets.push({ label: `${run.name} GPU %`, data: series("gpu_util"), borderColor: color,
          backgroundColor: color, borderDash: [2, 2], pointRadius: 0, yAxisID: "y" });
        datasets.push({ label: `${run.name} GPU memory`, data: series("gpu_mem_mb"),
          borderColor: color, backgroundColor: color, borderDash: [10, 3], pointRadius: 0,
          yAxisID: "memory" });
      }
    });
    telemetryChart.data.datasets = datasets;
    telemetryChart.update("none");
  }

  function drawSpeedups() {
    const rows = (state.comparison || []).filter((r) => r.inference_speedup || r.train_speedup);
    document.getElementById("speedup-empty").hidden = rows.length > 0;
    speedupChart.canvas.hidden = rows.length === 0;
    speedupChart.data.labels = rows.map((r) => r.name);
    speedupChart.data.datasets = [
      { label: "inference (batch-1 latency)", backgroundColor: "#2563eb",
        data: rows.map((r) => ({ x: r.inference_speedup, y: r.name, ci: r.inference_ci })) },
      { label: "training throughput", backgroundColor: "#16a34a",
        data: rows.map((r) => ({ x: r.train_speedup, y: r.name, ci: null })) },
    ];
    speedupChart.update("none");
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

  function drawAll() {
    drawCurves();
    drawTelemetry();
    drawSpeedups();
    state.runs.forEach(drawRun);
  }

  let refreshing = null;
  function refreshResults() {
    // Tables are rendered by the server, so the page and a reload always agree.
    if (refreshing) return refreshing;
    refreshing = fetch(root.dataset.resultsUrl, { credentials: "same-origin" })
      .then((response) => (response.ok ? response.text() : Promise.reject(response.status)))
      .then((html) => { document.getElementById("results").innerHTML = html; state.runs.forEach(drawRun); })
      .catch(() => {})
      .finally(() => { refreshing = null; });
    return refreshing;
  }

  function mergeRun(update) {
    const run = state.runs.find((r) => r.id === update.id);
    if (!run) return null;
    const wasEnded = ENDED.includes(run.status);
    Object.assign(run, update);
    return { run, justEnded: !wasEnded && ENDED.includes(run.status), restarted: wasEnded && !ENDED.includes(run.status) };
  }

  function onMessage(message) {
    if (message.type === "snapshot") {
      const ended = (s) => s.runs.filter((r) => ENDED.includes(r.status)).length;
      const changed = ended(message.snapshot) !== ended(state);
      state = message.snapshot;
      drawAll();
      if (changed) refreshResults();
      return;
    }
    if (!message.run) return;
    const merged = mergeRun(message.run);
    if (!merged) { resync(); return; }
    if (merged.restarted) { merged.run.epochs = []; merged.run.telemetry = []; }
    const event = message.event;
    if (event && event.event === "epoch") {
      const epochs = merged.run.epochs;
      if (!epochs.some((e) => e.epoch === event.epoch)) {
        epochs.push(event);
        epochs.sort((a, b) => a.epoch - b.epoch);
      }
      drawCurves();
    }
    if (event && event.event === "telemetry") {
      const samples = merged.run.telemetry || (merged.run.telemetry = []);
      samples.push(event);
      if (samples.length > 600) samples.splice(0, samples.length - 600);
      drawTelemetry();
    }
    if (message.comparison) { state.comparison = message.comparison; drawSpeedups(); }
    drawRun(merged.run);
    if (message.type === "status") refreshResults();
  }

  let socket = null;
  let retryDelay = 500;
  function resync() {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "resync" }));
  }
  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${window.location.host}${root.dataset.wsPath}`);
    socket.onopen = () => { retryDelay = 500; liveState.textContent = "live"; liveState.className = "live on"; };
    socket.onmessage = (e) => onMessage(JSON.parse(e.data));
    socket.onclose = (e) => {
      liveState.className = "live off";
      if (e.code === 4401 || e.code === 4404) { liveState.textContent = "no access"; return; }
      liveState.textContent = `reconnecting in ${Math.round(retryDelay / 1000)} s`;
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 30000);
    };
  }

  drawAll();
  connect();
})();
