// The usage page's charts, drawn by uPlot (www/vendor/uplot, pinned in www/vendor.lock).
import uPlot from "/vendor/uplot/uPlot.esm.js";

const COLORS = ["#2f5bd3", "#e07b39", "#1e7a3c", "#b3261e", "#7b4fc9", "#0f8b8d", "#c2185b", "#8a5a00", "#5b6478"];

export function color(i) {
  return COLORS[i % COLORS.length];
}

// Seconds at 00:00 UTC of each day from "YYYY-MM-DD" to "YYYY-MM-DD".
export function days(from, to) {
  const out = [];
  for (let t = Date.parse(from + "T00:00:00Z"); t <= Date.parse(to + "T00:00:00Z"); t += 86400000) out.push(t / 1000);
  return out;
}

function size(el) {
  return { width: Math.max(320, el.clientWidth - 24), height: 280 };
}

const money = (v) => "$" + (v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(2) : v.toFixed(4));
const count = (v) => (v >= 1e6 ? (v / 1e6).toFixed(1) + "M" : v >= 1e3 ? (v / 1e3).toFixed(1) + "k" : String(Math.round(v)));
const utcDate = (s) => new Date(s * 1000).toISOString().slice(5, 10);

// Bars per day stacked by series: series[i] = {label, values (dollars per day)}. Each bar is drawn
// at the sum of its series and those below it, tallest first, so the smaller ones paint over.
export function stackedBars(el, x, series) {
  el.replaceChildren();
  const cum = [];
  let run = x.map(() => 0);
  for (const s of series) {
    run = run.map((v, i) => v + (s.values[i] || 0));
    cum.push(run);
  }
  const order = series.map((_, i) => i).reverse();
  const bars = uPlot.paths.bars({ size: [0.7, 48] });
  const opts = {
    ...size(el),
    scales: { x: { time: false } },
    legend: { live: true },
    axes: [{ values: (u, v) => v.map(utcDate) }, { values: (u, v) => v.map(money), size: 76 }],
    series: [{ label: "Day (UTC)", value: (u, v) => (v == null ? "" : new Date(v * 1000).toISOString().slice(0, 10)) }].concat(
      order.map((i) => ({
        label: series[i].label,
        fill: color(i),
        stroke: color(i),
        paths: bars,
        points: { show: false },
        value: (u, v, si, idx) => (idx == null ? "" : money(series[i].values[idx] || 0)),
      })),
    ),
  };
  return new uPlot(opts, [x, ...order.map((i) => cum[i])], el);
}

// Requests (bars, left axis) and tokens (line, right axis) per day.
export function volume(el, x, requests, tokens) {
  el.replaceChildren();
  const opts = {
    ...size(el),
    scales: { x: { time: false }, req: { auto: true }, tok: { auto: true } },
    axes: [
      { values: (u, v) => v.map(utcDate) },
      { scale: "req", values: (u, v) => v.map(count), size: 50 },
      { scale: "tok", side: 1, values: (u, v) => v.map(count), size: 60, grid: { show: false } },
    ],
    series: [
      { label: "Day (UTC)", value: (u, v) => (v == null ? "" : new Date(v * 1000).toISOString().slice(0, 10)) },
      { label: "Requests", scale: "req", fill: "rgba(47,91,211,.35)", stroke: color(0), paths: uPlot.paths.bars({ size: [0.6, 40] }), points: { show: false } },
      { label: "Tokens", scale: "tok", stroke: color(1), width: 2 },
    ],
  };
  return new uPlot(opts, [x, requests, tokens], el);
}
