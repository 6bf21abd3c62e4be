// /account/receipts: every receipt of the account, newest first.
import { api, when } from "./api.js";
import { requireSignIn } from "./nav.js";
import { cell } from "./dom.js";

const money = (v) => "$" + Number(v).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

function row(r) {
  const tr = document.createElement("tr");
  const a = document.createElement("a");
  a.href = `/account/receipts/${r.number}`;
  a.textContent = r.number;
  const first = document.createElement("td");
  first.append(a);
  tr.append(first, cell(when(r.issued_at)), cell(`${r.plan} ${r.multiplier}×`), cell(money(r.usd_paid), "num"),
    cell(Number(r.credits).toLocaleString("en-US"), "num"), cell(r.method === "card" ? "Card" : "Bank transfer / manual"),
    cell(Number(r.refunded_usd) > 0 ? money(r.refunded_usd) : "—", "num"));
  return tr;
}

requireSignIn().then(async (me) => {
  if (!me) return;
  try {
    const { receipts } = await api("GET", "/api/v1/account/receipts");
    document.querySelector("#receipts tbody").replaceChildren(...receipts.map(row));
    document.getElementById("none").hidden = receipts.length > 0;
  } catch (e) {
    document.getElementById("error").textContent = e.message;
  }
});
