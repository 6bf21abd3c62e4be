// /usage: totals, charts, breakdowns and the request log of a period; refreshes itself every few
// seconds while the page is visible, so a request made elsewhere shows up without a reload.
import { api, usd } from "./api.js";
import { requireSignIn } from "./nav.js";
import { cell } from "./dom.js";
import { clearErrors, showError } from "./form.js";
import { days, stackedBars, volume } from "./charts.js";

const REFRESH_MS = 3000;
const range = document.getElementById("range");
const filters = document.getElementById("log-filters");
const state = { from: "", to: "", cursor: null, paged: false, last: "", keysLoaded: false };

const utcDay = (d) => d.toISOString().slice(0, 10);
const n = (v) => Number(v || 0).toLocaleString("en-US");
const ms = (v) => (v == null ? "–" : v >= 1000 ? (v / 1000).toFixed(1) + " s" : v + " ms");
const tokens = (r) => r.input_tokens + r.output_tokens + r.cache_read_tokens + r.cache_write_5m_tokens + r.cache_write_1h_tokens;

function preset(p) {
  const now = new Date();
  const to = utcDay(now);
  if (p === "today") return [to, to];
  if (p === "month") return [to.slice(0, 8) + "01", to];
  const from = new Date(now.getTime() - (Number(p) - 1) * 86400000);
  return [utcDay(from), to];
}

function setRange(from, to) {
  state.from = from;
  state.to = to;
  range.elements.from.value = from;
  range.elements.to.value = to;
}

function query(extra) {
  const q = new URLSearchParams({ from: state.from, to: state.to });
  for (const [k, v] of Object.entries(extra || {})) if (v) q.set(k, v);
  return q.toString();
}

function logQuery() {
  const f = new FormData(filters);
  return { key: f.get("key"), model: f.get("model"), status: f.get("status") };
}

function renderTotals(t) {
  document.getElementById("t-cost").textContent = usd(t.credits);
  document.getElementById("t-cash").textContent = `${usd(t.cash_micros)} of top-up money`;
  document.getElementById("t-requests").textContent = n(t.requests);
  document.getElementById("t-errors").textContent = `${n(t.errors)} failed`;
  document.getElementById("t-tokens").textContent = `${n(t.input_tokens)} / ${n(t.output_tokens)}`;
  document.getElementById("t-cache").textContent = `${n(t.cache_read_tokens)} read from cache`;
  document.getElementById("t-ttfb").textContent = ms(t.avg_ttfb_ms);
  document.getElementById("t-duration").textContent = `${ms(t.avg_duration_ms)} average duration`;
}

function renderCharts(rows) {
  const x = days(state.from, state.to);
  const at = new Map(x.map((s, i) => [new Date(s * 1000).toISOString().slice(0, 10), i]));
  const byModel = new Map();
  const req = x.map(() => 0), tok = x.map(() => 0);
  for (const r of rows) {
    const i = at.get(r.day);
    if (i === undefined) continue;
    if (!byModel.has(r.model)) byModel.set(r.model, { label: r.model, values: x.map(() => 0), total: 0 });
    const s = byModel.get(r.model);
    s.values[i] += r.credits / 1e6;
    s.total += r.credits;
    req[i] += r.requests;
    tok[i] += tokens(r);
  }
  const series = [...byModel.values()].sort((a, b) => b.total - a.total);
  stackedBars(document.getElementById("spend-chart"), x, series);
  volume(document.getElementById("volume-chart"), x, req, tok);
}

function renderTable(id, rows, name) {
  const trs = rows
    .slice()
    .sort((a, b) => b.credits - a.credits)
    .map((r) => {
      const tr = document.createElement("tr");
      tr.append(cell(name(r)), cell(n(r.requests), "num"), cell(n(tokens(r)), "num"), cell(usd(r.credits), "num"));
      return tr;
    });
  if (!trs.length) {
    const tr = document.createElement("tr");
    const td = cell("No usage in this period.", "muted");
    td.colSpan = 4;
    tr.append(td);
    trs.push(tr);
  }
  document.querySelector(`#${id} tbody`).replaceChildren(...trs);
}

function outcome(r) {
  if (r.status === "pending") return "in flight";
  if (r.end_reason === "complete") return "ok";
  return r.end_reason + (r.upstream_status && r.upstream_status !== 200 ? ` (${r.upstream_status})` : "");
}

function logRow(r) {
  const tr = document.createElement("tr");
  const o = cell(outcome(r), r.end_reason && !["complete", "client_closed"].includes(r.end_reason) ? "bad" : "");
  tr.append(
    cell(new Date(r.created_at).toLocaleString()),
    cell(r.key_name ? `${r.key_name} (${r.key_prefix})` : r.key_prefix),
    cell(r.model),
    o,
    cell(n(r.input_tokens), "num"),
    cell(n(r.output_tokens), "num"),
    cell(n(r.cache_read_tokens + r.cache_write_5m_tokens + r.cache_write_1h_tokens), "num"),
    cell(r.credits == null ? "–" : usd(r.credits) + (r.estimated ? "*" : ""), "num"),
    cell(ms(r.ttfb_ms), "num"),
    cell(ms(r.duration_ms), "num"),
    cell(r.request_id, "mono"),
  );
  return tr;
}

async function loadLog(append) {
  const q = query({ ...logQuery(), cursor: append ? state.cursor : "" });
  const d = await api("GET", `/api/v1/account/requests?${q}`);
  const body = document.querySelector("#log tbody");
  const rows = d.requests.map(logRow);
  if (append) body.append(...rows);
  else body.replaceChildren(...rows);
  state.cursor = d.next_cursor;
  document.getElementById("more").hidden = !d.next_cursor;
  document.getElementById("log-empty").hidden = body.children.length > 0;
  document.getElementById("requests-csv").href = `/api/v1/account/requests.csv?${query(logQuery())}`;
}

function fillSelect(id, values) {
  const sel = document.getElementById(id);
  const keep = sel.value;
  const opts = [sel.options[0]];
  for (const [value, label] of values) {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = label;
    opts.push(o);
  }
  sel.replaceChildren(...opts);
  sel.value = keep;
}

// The day,model rows summed per model (the by-model table needs no query of its own).
function perModel(rows) {
  const m = new Map();
  for (const r of rows) {
    const t = m.get(r.model) || { model: r.model, requests: 0, credits: 0, input_tokens: 0, output_tokens: 0,
      cache_read_tokens: 0, cache_write_5m_tokens: 0, cache_write_1h_tokens: 0 };
    for (const k of Object.keys(t)) if (k !== "model") t[k] += r[k];
    m.set(r.model, t);
  }
  return [...m.values()];
}

async function loadUsage() {
  const [daily, byKey] = await Promise.all([
    api("GET", `/api/v1/account/usage?${query({ group_by: "day,model" })}`),
    api("GET", `/api/v1/account/usage?${query({ group_by: "key" })}`),
  ]);
  const sig = JSON.stringify([daily.rows, byKey.rows]);
  if (sig === state.last) return false;
  state.last = sig;
  const byModel = { rows: perModel(daily.rows) };
  renderTotals(daily.totals);
  renderCharts(daily.rows);
  renderTable("by-key", byKey.rows, (r) => (r.key_name ? `${r.key_name} (${r.key_prefix})` : r.key_prefix));
  renderTable("by-model", byModel.rows, (r) => r.model);
  fillSelect("f-model", byModel.rows.map((r) => [r.model, r.model]));
  if (!state.keysLoaded) {
    const k = await api("GET", "/api/v1/account/keys");
    fillSelect("f-key", k.keys.map((key) => [key.prefix, key.name ? `${key.name} (${key.prefix})` : key.prefix]));
    state.keysLoaded = true;
  }
  document.getElementById("usage-csv").href = `/api/v1/account/usage.csv?${query({ group_by: "day,model" })}`;
  document.getElementById("statement").href = `/account/statements/${state.to.slice(0, 7)}`;
  return true;
}

async function refresh(full) {
  const changed = await loadUsage();
  if (full || (changed && !state.paged)) await loadLog(false);
  document.getElementById("updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
}

async function show(from, to) {
  clearErrors(range);
  setRange(from, to);
  state.last = "";
  state.paged = false;
  try {
    await refresh(true);
  } catch (e) {
    showError(range, e);
  }
}

for (const b of range.querySelectorAll("[data-preset]")) {
  b.addEventListener("click", () => {
    for (const o of range.querySelectorAll("[data-preset]")) o.setAttribute("aria-pressed", String(o === b));
    show(...preset(b.dataset.preset));
  });
}
range.addEventListener("submit", (ev) => {
  ev.preventDefault();
  for (const o of range.querySelectorAll("[data-preset]")) o.setAttribute("aria-pressed", "false");
  show(range.elements.from.value, range.elements.to.value);
});
filters.addEventListener("change", () => {
  state.paged = false;
  loadLog(false).catch((e) => showError(range, e));
});
document.getElementById("more").addEventListener("click", () => {
  state.paged = true;
  loadLog(true).catch((e) => showError(range, e));
});
let resizeTimer = 0;
addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    state.last = "";
    loadUsage().catch(() => {});
  }, 200);
});

requireSignIn().then((me) => {
  if (!me) return;
  show(...preset("30"));
  setInterval(() => {
    if (document.visibilityState === "visible") refresh(false).catch(() => {});
  }, REFRESH_MS);
});
