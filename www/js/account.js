import { api, usd, when } from "./api.js";
import { onSubmit } from "./form.js";
import { requireSignIn } from "./nav.js";
import { cell } from "./dom.js";

function show(me) {
  document.getElementById("credits").textContent = Number(me.credits).toLocaleString("en-US");
  document.getElementById("credits-usd").textContent = `${usd(me.credits)} of list-price usage`;
  document.getElementById("held").textContent = Number(me.held).toLocaleString("en-US");
  document.getElementById("plan").textContent = me.plan === "none" ? "None yet" : me.plan[0].toUpperCase() + me.plan.slice(1);
  document.getElementById("plan-note").textContent = me.plan === "none" ? "Top up to use the API." : "";
  const rows = me.lots.map((l) => {
    const tr = document.createElement("tr");
    tr.append(cell(when(l.created_at)), cell(l.plan), cell(`${l.multiplier}×`, "num"), cell(`$${Number(l.usd_paid).toFixed(2)}`, "num"),
      cell(Number(l.credits_granted).toLocaleString("en-US"), "num"), cell(Number(l.credits_left).toLocaleString("en-US"), "num"));
    return tr;
  });
  document.querySelector("#lots tbody").replaceChildren(...rows);
  document.getElementById("no-lots").hidden = rows.length > 0;
}

requireSignIn().then((me) => {
  if (me) show(me);
});

const form = document.getElementById("password-form");
onSubmit(form, async (data) => {
  document.getElementById("password-done").hidden = true;
  await api("POST", "/api/v1/account/password", { current: data.get("current"), new: data.get("new") });
  form.reset();
  document.getElementById("password-done").hidden = false;
});
