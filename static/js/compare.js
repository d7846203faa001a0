// The compare page: the chosen runs' validation accuracy, overlaid, against the epoch or
// the cumulative training seconds. The server sends each curve already thinned.
(function () {
  "use strict";

  const canvas = document.getElementById("compare-chart");
  const source = document.getElementById("compare-data");
  if (!canvas || !source) return;
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f"];
  const data = JSON.parse(source.textContent);
  const axis = document.getElementById("compare-axis");

  const chart = new Chart(canvas, {
    type: "line",
    data: { datasets: [] },
    options: {
      animation: false,
      parsing: false,
      normalized: true,
      interaction: { mode: "nearest", intersect: false },
      scales: {
        x: { type: "linear", title: { display: true, text: "epoch" } },
        y: { title: { display: true, text: "validation accuracy" } },
      },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
    },
  });
  window.accelweb = { compareChart: chart };

  function draw() {
    const byTime = axis && axis.value === "seconds";
    const key = byTime ? "val_accuracy_by_time" : "val_accuracy";
    chart.options.scales.x.title.text = byTime ? "training seconds (cumulative)" : "epoch";
    chart.options.scales.x.ticks = byTime ? {} : { precision: 0 };  // whole epochs only
    chart.data.datasets = data.runs.map((run, index) => {
      const color = COLORS[index % COLORS.length];
      const points = (run[key] || []).map((p) => ({ x: p[0], y: p[1] }));
      return { label: run.label, data: points, borderColor: color, backgroundColor: color,
        pointRadius: points.length > 60 ? 0 : 2, runId: run.id };
    });
    chart.update("none");
  }

  if (axis) axis.addEventListener("change", draw);
  draw();
})();
