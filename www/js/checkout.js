// /checkout: pick a plan and amount, see the credits it grants, pay on the processor's page; back
// here, wait for the payment's confirmation (the webhook may land after the redirect).
import { api, ApiError, usd } from "./api.js";
import { onSubmit } from "./form.js";
import { requireSignIn } from "./nav.js";

const el = (id) => document.getElementById(id);
const n = (v) => Number(v || 0).toLocaleString("en-US");
const dollars = (v) => "$" + Number(v).toLocaleString("en-US", { minimumFractionDigits: 0, maximumFractionDigits: 2 });
let plans = {};

function plan() {
  return el("checkout-form").querySelector("input[name=plan]:checked").value;
}

// The amount asked, in dollars (NaN when the input is not a number).
function amount() {
  const p = plans[plan()];
  if (!p) return NaN;
  if (!p.pack_usd) return Number(el("usd").value);
  const packs = Number(el("packs").value);
  return Number.isInteger(packs) ? packs * Number(p.pack_usd) : NaN;
}

function preview() {
  const p = plans[plan()];
  if (!p) return;
  const packed = !!p.pack_usd;
  el("usd-field").hidden = packed;
  el("packs-field").hidden = !packed;
  const usdv = amount();
  if (!Number.isFinite(usdv) || usdv <= 0) {
    el("preview").textContent = "";
    el("preview-note").textContent = "";
    return;
  }
  const credits = Math.round(usdv * 1e6) * p.multiplier;
  el("preview").textContent = `${dollars(usdv)} → ${n(credits)} credits`;
  el("preview-note").textContent = `${usd(credits)} of usage at list price (${p.multiplier}× credits per dollar).`;
}

function setup(cfg) {
  for (const p of cfg.plans) plans[p.plan] = p;
  const pro = plans.pro, max = plans.max, ent = plans.enterprise;
  el("usd").min = Number(pro.min_usd);
  el("usd").max = Number(pro.max_usd);
  el("usd-hint").textContent = `From ${dollars(pro.min_usd)} to ${dollars(pro.max_usd)}.`;
  el("max-pack").textContent = dollars(max.pack_usd);
  el("ent-pack").textContent = dollars(ent.pack_usd);
  const maxPacks = Math.round(Number(max.max_usd) / Number(max.pack_usd));
  el("packs").max = maxPacks;
  el("packs-hint").textContent = `1 to ${maxPacks} packs.`;
  const want = new URLSearchParams(location.search).get("plan");
  if (want && plans[want]) el("checkout-form").querySelector(`input[value="${want}"]`).checked = true;
  if (!cfg.payments) {
    el("payments-off").hidden = false;
    el("pay").disabled = true;
  }
  preview();
}

function notice(text, warn) {
  const r = el("result");
  r.className = warn ? "notice warn" : "notice";
  r.textContent = "";
  r.append(...(Array.isArray(text) ? text : [text]));
  r.hidden = false;
}

// Back from the processor: poll the checkout until its payment is confirmed (or failed).
async function waitFor(ref) {
  notice("Payment submitted. Waiting for the confirmation from the payment processor…");
  const started = Date.now();
  for (;;) {
    let c;
    try {
      c = await api("GET", `/api/v1/account/checkout/${encodeURIComponent(ref)}`);
    } catch (e) {
      notice(e.message, true);
      return;
    }
    if (c.status === "paid" || c.status === "refunded") {
      const link = document.createElement("a");
      link.href = `/account/receipts/${c.receipt}`;
      link.textContent = `receipt ${c.receipt}`;
      notice([`Paid: ${n(c.credits)} credits added (${c.plan[0].toUpperCase() + c.plan.slice(1)}, ${c.multiplier}×). `,
        `Your balance is now `, Object.assign(document.createElement("strong"), { id: "balance", textContent: `${n(c.balance)} credits` }),
        ". See your ", link, "."]);
      el("result").focus();
      return;
    }
    if (c.status === "failed" || c.status === "expired" || c.status === "mismatch") {
      notice(c.status === "mismatch"
        ? "The payment did not match this checkout; nothing was added. Contact the operator with the reference " + c.id + "."
        : `This checkout ${c.status === "failed" ? "failed" : "expired"}; nothing was charged. Start a new one below.`, true);
      return;
    }
    const waited = Date.now() - started;
    if (waited > 120000) {
      notice(c.status === "processing"
        ? "Your bank payment is still clearing. The credits are added as soon as it is confirmed; this page can be closed."
        : "The confirmation has not arrived yet. The credits are added as soon as it does; reload this page to check.", true);
      return;
    }
    await new Promise((r) => setTimeout(r, waited < 10000 ? 1000 : 3000));
  }
}

const form = el("checkout-form");
form.addEventListener("change", preview);
form.addEventListener("input", preview);
onSubmit(form, async () => {
  const p = plan(), value = amount();
  try {
    const c = await api("POST", "/api/v1/account/checkout", { plan: p, usd: Number.isFinite(value) ? String(value) : null });
    location.assign(c.url);
    await new Promise(() => {}); // leaving the page: keep the button disabled
  } catch (e) {
    // the amount of a pack plan is entered as a number of packs
    if (e instanceof ApiError && e.field === "usd" && plans[p] && plans[p].pack_usd) throw new ApiError(e.status, e.message, "packs");
    throw e;
  }
});

requireSignIn().then(async (me) => {
  if (!me) return;
  try {
    setup(await api("GET", "/api/v1/account/plans"));
  } catch (e) {
    notice(e.message, true);
  }
  const q = new URLSearchParams(location.search);
  if (q.get("done")) waitFor(q.get("done"));
  else if (q.get("canceled")) notice("Checkout canceled: nothing was charged.", true);
});
