// /account/statements/YYYY-MM: a month's statement, printable, with its CSV.
import { api, usd } from "./api.js";
import { requireSignIn } from "./nav.js";
import { cell } from "./dom.js";

const n = (v) => Number(v || 0).toLocaleString("en-US");
const money = (micros) => usd(micros);
const el = (id) => document.getElementById(id);

function monthOf(path) {
  const m = /\/account\/statements\/(\d{4}-\d{2})$/.exec(path);
  return m ? m[1] : new Date().toISOString().slice(0, 7);
}

function shift(month, by) {
  const d = new Date(month + "-01T00:00:00Z");
  d.setUTCMonth(d.getUTCMonth() + by);
  return d.toISOString().slice(0, 7);
}

function rows(id, list, make, empty) {
  const trs = list.map((x) => {
    const tr = document.createElement("tr");
    tr.append(...make(x));
    return tr;
  });
  if (!trs.length) {
    const tr = document.createElement("tr");
    const td = cell(empty, "muted");
    td.colSpan = el(id).querySelectorAll("th").length;
    tr.append(td);
    trs.push(tr);
  }
  el(id).querySelector("tbody").replaceChildren(...trs);
}

const usage = (name) => (r) => [cell(name(r)), cell(n(r.requests), "num"), cell(n(r.input_tokens), "num"),
  cell(n(r.output_tokens), "num"), cell(usd(r.credits), "num"), cell(money(r.cash_micros), "num")];

function show(me, s) {
  document.title = `Statement ${s.month} · zenn-gateway`;
  el("title").textContent = `Statement for ${s.month}${s.complete ? "" : " (to date)"}`;
  el("account").textContent = me.email;
  el("period").textContent = `${s.from} to ${s.to}`;
  el("opening").textContent = `${n(s.opening_credits)} credits (${usd(s.opening_credits)})`;
  el("topped").textContent = `${n(s.topup_credits)} credits`;
  el("used").textContent = `${n(s.usage.credits)} credits (${usd(s.usage.credits)}) in ${n(s.usage.requests)} requests, paid with ${money(s.usage.cash_micros)} of top-up money`;
  el("closing").textContent = `${n(s.closing_credits)} credits (${usd(s.closing_credits)})`;
  rows("topups", s.topups, (t) => [cell(new Date(t.created_at).toLocaleDateString()), cell(t.plan), cell(`${t.multiplier}×`, "num"),
    cell(`$${Number(t.usd_paid).toFixed(2)}`, "num"), cell(n(t.credits), "num")], "No top-ups this month.");
  rows("models", s.by_model, usage((r) => r.model), "No usage this month.");
  rows("keys", s.by_key, usage((r) => (r.key_name ? `${r.key_name} (${r.key_prefix})` : r.key_prefix)), "No usage this month.");
  rows("lots", s.lots, (l) => [cell(`#${l.lot_id}`), cell(new Date(l.bought_at).toLocaleDateString()), cell(l.plan),
    cell(`${l.multiplier}×`, "num"), cell(n(l.credits), "num"), cell(money(l.cash_micros), "num")], "No lot was drawn on this month.");
  el("lots-note").textContent = s.lots_recorded_from
    ? `Lot pieces are recorded from ${s.lots_recorded_from} on.`
    : s.overdraft_credits > 0
      ? `${n(s.overdraft_credits)} credits were billed beyond every lot (an overdraft, repaid from the next top-up).`
      : "Every credit billed this month came from the lots above, oldest first.";
  el("sheet").hidden = false;
}

const month = monthOf(location.pathname);
el("prev").href = `/account/statements/${shift(month, -1)}`;
el("next").href = `/account/statements/${shift(month, 1)}`;
el("next").hidden = month >= new Date().toISOString().slice(0, 7);
el("csv").href = `/api/v1/account/statements/${month}.csv`;
el("print").addEventListener("click", () => print());

requireSignIn().then(async (me) => {
  if (!me) return;
  try {
    show(me, await api("GET", `/api/v1/account/statements/${month}`));
  } catch (e) {
    el("error").textContent = e.message;
  }
});
