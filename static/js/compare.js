// The compare page: the chosen runs' validation accuracy, overlaid, against the epoch or
// the cumulative training seconds. The server sends each curve already thinned.
(function () {
  "use strict";

  const canvas = document.getElementById("compare-chart");
  const source = document.getElementById("compare-data");
  if (!canvas || !source) return;
  const C = window.accelwebCharts;
  const data = JSON.parse(source.textContent);
  const axis = document.getElementById("compare-axis");

  const chart = new Chart(canvas, {
    type: "line",
    data: { datasets: [] },
    options: C.options({
      parsing: false,
      normalized: true,
      interaction: { mode: "nearest", intersect: false },
      scales: {
        x: C.axis("epoch"),
        y: C.axis("validation accuracy"),
      },
      plugins: {
        legend: C.legend({ byRun: true }),
        emptyState: { message: "No validation accuracy to draw: none of these runs recorded one." },
      },
    }),
  });
  window.accelweb = { compareChart: chart };

  function draw() {
    const byTime = axis && axis.value === "seconds";
    const key = byTime ? "val_accuracy_by_time" : "val_accuracy";
    chart.options.scales.x.title.text = byTime ? "training seconds (cumulative)" : "epoch";
    chart.options.scales.x.ticks.precision = byTime ? undefined : 0;  // whole epochs only
    chart.data.datasets = data.runs.map((run, index) => {
      const color = C.runColor(index);
      const points = (run[key] || []).map((p) => ({ x: p[0], y: p[1] }));
      return { label: run.label, data: points, borderColor: color, backgroundColor: color,
        pointRadius: points.length > 60 ? 0 : 2, runId: run.id };
    });
    chart.update("none");
  }

  if (axis) axis.addEventListener("change", draw);
  draw();
})();
