// /account/receipts/NUMBER: one receipt, printable.
import { api } from "./api.js";
import { requireSignIn } from "./nav.js";
import { cell } from "./dom.js";

const el = (id) => document.getElementById(id);
const n = (v) => Number(v || 0).toLocaleString("en-US");

function money(v, currency) {
  return Number(v).toLocaleString("en-US", { style: "currency", currency: (currency || "usd").toUpperCase() });
}

function utc(iso) {
  return iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "") : "";
}

function show(r) {
  const plan = r.plan[0].toUpperCase() + r.plan.slice(1);
  document.title = `Receipt ${r.number} · zenn-gateway`;
  el("title").textContent = `Receipt ${r.number}`;
  const s = r.seller || {};
  el("seller").textContent = [s.name || "zenn-gateway", s.address, s.tax_id ? `Tax ID: ${s.tax_id}` : null, s.email]
    .filter(Boolean).join("\n");
  el("buyer").textContent = r.buyer;
  el("number").textContent = r.number;
  el("date").textContent = utc(r.issued_at);
  el("what").textContent = `${plan} top-up at ${r.multiplier}× credits per dollar`;
  el("paid").textContent = money(r.usd_paid, r.currency);
  el("credits").textContent = `${n(r.credits)} credits`;
  el("method").textContent = r.method === "card" ? "Card (Stripe)" : "Bank transfer / added by the operator";
  el("ref").textContent = r.payment_ref;
  el("refunds-box").hidden = !r.refunds.length;
  el("refunds").querySelector("tbody").replaceChildren(...r.refunds.map((f) => {
    const tr = document.createElement("tr");
    tr.append(cell(utc(f.at)), cell(money(f.usd, r.currency), "num"), cell(n(f.credits_revoked), "num"));
    return tr;
  }));
  el("sheet").hidden = false;
}

el("print").addEventListener("click", () => window.print());

requireSignIn().then(async (me) => {
  if (!me) return;
  const m = /\/account\/receipts\/([A-Z0-9-]{1,40})$/.exec(location.pathname);
  try {
    if (!m) throw new Error("No such receipt.");
    show(await api("GET", `/api/v1/account/receipts/${m[1]}`));
  } catch (e) {
    el("error").textContent = e.status === 404 ? "There is no such receipt on this account." : e.message;
  }
});
