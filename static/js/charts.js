// Chart.js setup shared by the experiment and compare pages (loaded before them): one
// colour per run, round ticks on log axes, legends that keep out of the plot and hide a
// run's lines together, run names drawn next to points, and an empty state that says why.
// Every chart sits in a .chart-canvas box of fixed height (maintainAspectRatio: false), so
// its plot keeps its size whatever the legend holds.
(function () {
  "use strict";

  const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d",
    "#4d7c0f", "#1e3a8a", "#a16207", "#475569", "#c026d3"];
  // A run's colour is its place on the page: the same run, the same colour in every chart.
  const runColor = (index) => PALETTE[index % PALETTE.length];

  const FONT = { size: 11 };
  const MUTED = "#6b7280";

  // A log axis ticks at 1, 2 and 5 times a power of ten: "0.5×", "1×", "2×", "10×".
  const MANTISSAS = [1, 2, 5];
  const round = (value) => Number(value.toPrecision(3));
  function roundSteps(low, high) {
    const values = [];
    for (let k = Math.floor(Math.log10(low)) - 1; k <= Math.ceil(Math.log10(high)) + 1; k++) {
      for (const m of MANTISSAS) values.push(round(m * 10 ** k));
    }
    return values;
  }
  // The axis from the round value at or below `low` to the one at or above `high`; at
  // least 0.5× to 2×, so 1× (no change) has a tick on each side.
  function logBounds(values) {
    const positive = values.filter((v) => typeof v === "number" && v > 0 && Number.isFinite(v));
    const low = Math.min(0.5, ...positive.map((v) => v / 1.1));
    const high = Math.max(2, ...positive.map((v) => v * 1.1));
    const steps = roundSteps(low, high);
    return {
      min: Math.max(...steps.filter((v) => v <= low)),
      max: Math.min(...steps.filter((v) => v >= high)),
    };
  }
  const times = (value) => `${round(value)}×`;
  // As many round ticks as fit the axis' width: 1-2-5, else 1-5, else the powers of ten
  // (every one of these sets holds 1×).
  const TICK_SETS = [[1, 2, 5], [1, 5], [1]];
  function roundLogTicks(scale) {
    const room = Math.max(2, Math.floor((scale.width || scale.maxWidth || 300) / 44));
    const inside = (v) => v >= scale.min * 0.999 && v <= scale.max * 1.001;
    let values = [];
    for (const set of TICK_SETS) {
      values = roundSteps(scale.min, scale.max).filter((v) => inside(v) &&
        set.includes(round(v / 10 ** Math.floor(Math.log10(v) + 1e-9))));
      if (values.length <= room) break;
    }
    if (values.length > room) {
      const every = Math.ceil(values.length / room);
      values = values.filter((v, i) => i % every === 0 || v === 1);
    }
    scale.ticks = values.map((value) => ({ value }));
  }
  function logAxis(title) {
    return {
      type: "logarithmic",
      title: { display: true, text: title, font: FONT },
      afterBuildTicks: roundLogTicks,
      ticks: { callback: (value) => times(value), autoSkip: false, maxRotation: 0, font: FONT },
    };
  }

  // A long label as lines of at most `width` characters, broken between words (a word
  // longer than a line, between its characters).
  function wrap(text, width = 22) {
    const lines = [];
    let line = "";
    const words = String(text).split(/\s+/).flatMap((word) => word.match(new RegExp(`.{1,${width}}`, "gu")) || []);
    for (const word of words) {
      if (line && line.length + 1 + word.length > width) { lines.push(line); line = ""; }
      line = line ? `${line} ${word}` : word;
    }
    if (line) lines.push(line);
    return lines;
  }

  // A name cut to `width` characters in its middle, for legends and point labels: its
  // start and its end (a run's name after its experiment's) stay; tooltips say it all.
  const short = (text, width = 32) => {
    const chars = [...String(text)];
    if (chars.length <= width) return String(text);
    const head = Math.ceil((width - 1) * 0.4);
    return `${chars.slice(0, head).join("")}…${chars.slice(chars.length - (width - 1 - head)).join("")}`;
  };

  // The legend under the plot, small; `byRun`: one item per run (its runId), which hides
  // or shows every line of that run (train and validation, CPU and memory) at once.
  function legend({ byRun = false } = {}) {
    const options = { position: "bottom", labels: { boxWidth: 10, boxHeight: 10, padding: 8, font: FONT } };
    if (!byRun) return options;
    options.labels.generateLabels = (chart) => {
      const items = new Map();
      chart.data.datasets.forEach((d, i) => {
        const key = d.runId === undefined ? `dataset-${i}` : d.runId;
        const item = items.get(key);
        if (item) { item.hidden = item.hidden && !chart.isDatasetVisible(i); return; }
        items.set(key, {
          text: short(d.runName || d.label, Math.max(24, Math.floor(chart.width / 11))), fillStyle: d.borderColor, strokeStyle: d.borderColor,
          lineWidth: 0, hidden: !chart.isDatasetVisible(i), datasetIndex: i, runId: d.runId,
          fontColor: Chart.defaults.color,
        });
      });
      return [...items.values()];
    };
    options.onClick = (event, item, control) => {
      const chart = control.chart;
      chart.data.datasets.forEach((d, i) => {
        if (i === item.datasetIndex || (item.runId !== undefined && d.runId === item.runId)) {
          chart.setDatasetVisibility(i, item.hidden);
        }
      });
      chart.update();
    };
    return options;
  }

  // Draws each point's name (data point .name) beside it, in its dataset's point colour,
  // on the free side that keeps it inside the plot and off the labels already placed.
  const pointLabels = {
    id: "pointLabels",
    afterDatasetsDraw(chart) {
      const { ctx, chartArea: area } = chart;
      const placed = [];
      const points = [];
      chart.data.datasets.forEach((d, i) => {
        if (!chart.isDatasetVisible(i)) return;
        chart.getDatasetMeta(i).data.forEach((element, j) => {
          const point = d.data[j];
          if (!point || !point.name) return;
          const color = Array.isArray(d.pointBorderColor) ? d.pointBorderColor[j] : d.borderColor;
          points.push({ x: element.x, y: element.y, r: (element.options.radius || 3) + 3,
            name: short(point.name, 28), color });
        });
      });
      ctx.save();
      ctx.font = `${FONT.size}px ${Chart.defaults.font.family}`;
      ctx.textBaseline = "middle";
      ctx.textAlign = "left";
      const height = FONT.size + 2;
      const clear = (box) => box.left >= area.left && box.right <= area.right &&
        box.top >= area.top && box.bottom <= area.bottom &&
        !placed.some((b) => b.left < box.right && box.left < b.right && b.top < box.bottom &&
          box.top < b.bottom) &&
        !points.some((p) => p.x + p.r > box.left && p.x - p.r < box.right &&
          p.y + p.r > box.top && p.y - p.r < box.bottom);
      for (const p of points) {
        const width = ctx.measureText(p.name).width;
        const candidates = [
          [p.x + p.r, p.y], [p.x - p.r - width, p.y],
          [p.x - width / 2, p.y - p.r - height / 2], [p.x - width / 2, p.y + p.r + height / 2],
          [p.x + p.r, p.y - height], [p.x - p.r - width, p.y - height],
          [p.x + p.r, p.y + height], [p.x - p.r - width, p.y + height],
        ].map(([left, y]) => ({ left, right: left + width, top: y - height / 2, bottom: y + height / 2, y }));
        let box = candidates.find(clear);
        if (!box) {
          // Nowhere free: the side with room, kept inside the plot.
          const left = Math.min(Math.max(area.left, candidates[0].left), area.right - width);
          const y = Math.min(Math.max(area.top + height / 2, p.y), area.bottom - height / 2);
          box = { left, right: left + width, top: y - height / 2, bottom: y + height / 2, y };
        }
        placed.push(box);
        ctx.lineWidth = 3;
        ctx.strokeStyle = "rgba(255,255,255,0.85)";
        ctx.strokeText(p.name, box.left, box.y);
        ctx.fillStyle = p.color || "#111827";
        ctx.fillText(p.name, box.left, box.y);
      }
      ctx.restore();
    },
  };

  // When no dataset has a point, the plot says why (options.plugins.emptyState.message).
  const emptyState = {
    id: "emptyState",
    afterDraw(chart, args, options) {
      const message = options && options.message;
      if (!message || chart.data.datasets.some((d) => d.data && d.data.length)) return;
      const { ctx, chartArea: area } = chart;
      if (!area) return;
      ctx.save();
      ctx.font = `${FONT.size + 1}px ${Chart.defaults.font.family}`;
      ctx.fillStyle = MUTED;
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      const width = area.right - area.left - 16;
      const lines = [];
      for (const word of message.split(/\s+/)) {
        const last = lines[lines.length - 1];
        if (last !== undefined && ctx.measureText(`${last} ${word}`).width <= width) lines[lines.length - 1] = `${last} ${word}`;
        else lines.push(word);
      }
      const middle = (area.top + area.bottom) / 2;
      const step = FONT.size + 5;
      // On a white ground: grid lines and the 1× line do not run through the words.
      const widest = Math.max(...lines.map((line) => ctx.measureText(line).width));
      ctx.fillStyle = "rgba(255,255,255,0.92)";
      ctx.fillRect((area.left + area.right - widest) / 2 - 6, middle - (lines.length * step) / 2 - 4,
        widest + 12, lines.length * step + 8);
      ctx.fillStyle = MUTED;
      lines.forEach((line, i) => {
        ctx.fillText(line, (area.left + area.right) / 2, middle + (i - (lines.length - 1) / 2) * step);
      });
      ctx.restore();
    },
  };

  // Options every chart of these pages starts from; `extra` is merged over them.
  function options(extra = {}) {
    return {
      animation: false,
      maintainAspectRatio: false,
      layout: { padding: { top: 4, right: 8 } },
      ...extra,
      plugins: { legend: legend(), emptyState: { message: "" }, ...(extra.plugins || {}) },
    };
  }
  // A linear axis with a title; ticks flat, thinned to what fits.
  function axis(title, extra = {}) {
    return {
      type: "linear",
      ...extra,
      title: { display: true, text: title, font: FONT },
      ticks: { maxRotation: 0, autoSkipPadding: 10, font: FONT, ...(extra.ticks || {}) },
    };
  }

  Chart.register(emptyState);
  window.accelwebCharts = {
    runColor, logBounds, logAxis, times, wrap, short, legend, pointLabels, options, axis,
  };
})();
