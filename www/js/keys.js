// The key manager: list, create (shown once), rename, set the spend limit, revoke.
import { api, usd, when } from "./api.js";
import { copyButton, onSubmit, showError } from "./form.js";
import { requireSignIn } from "./nav.js";
import { cell } from "./dom.js";

const tbody = document.querySelector("#keys tbody");
const listError = document.getElementById("keys-error");

function badge(status) {
  const s = document.createElement("span");
  s.className = "badge " + status;
  s.textContent = status;
  return s;
}

function button(label, cls, fn) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = cls;
  b.textContent = label;
  b.addEventListener("click", async () => {
    listError.textContent = "";
    b.disabled = true;
    try {
      await fn();
    } catch (e) {
      listError.textContent = e.message;
      listError.focus();
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

function row(k) {
  const tr = document.createElement("tr");
  tr.dataset.id = k.id;
  tr.append(cell(k.name || "(unnamed)"));
  const key = cell(k.prefix + "…", "mono");
  tr.append(key);
  const st = document.createElement("td");
  st.append(badge(k.status));
  tr.append(st);
  tr.append(cell(usd(k.spent_credits), "num"));
  tr.append(cell(k.limit_credits == null ? "none" : usd(k.limit_credits), "num"));
  tr.append(cell(when(k.created_at)));
  tr.append(cell(when(k.last_used_at)));
  const act = document.createElement("td");
  if (k.status === "active") {
    act.append(
      button("Rename", "link", async () => {
        const name = prompt("New name for this key", k.name || "");
        if (name === null) return;
        await api("PATCH", `/api/v1/account/keys/${k.id}`, { name: name.trim() });
        await load();
      }),
      document.createTextNode(" · "),
      button("Limit", "link", async () => {
        const v = prompt("Spend limit in USD (empty: no limit)", k.limit_credits == null ? "" : String(k.limit_credits / 1e6));
        if (v === null) return;
        await api("PATCH", `/api/v1/account/keys/${k.id}`, { limit_usd: v.trim() === "" ? null : v.trim() });
        await load();
      }),
      document.createTextNode(" · "),
      button(`Revoke`, "link", async () => {
        if (!confirm(`Revoke key ${k.prefix}…? Requests with it stop working at once.`)) return;
        await api("DELETE", `/api/v1/account/keys/${k.id}`);
        await load();
      }),
    );
    act.querySelector("button:last-child").setAttribute("aria-label", `Revoke ${k.name || k.prefix}`);
  }
  tr.append(act);
  return tr;
}

async function load() {
  const data = await api("GET", "/api/v1/account/keys");
  tbody.replaceChildren(...data.keys.map(row));
  document.getElementById("no-keys").hidden = data.keys.length > 0;
}

const form = document.getElementById("create");
onSubmit(form, async (data) => {
  const body = {};
  const name = data.get("name").trim();
  const limit = data.get("limit_usd").trim();
  if (name) body.name = name;
  if (limit) body.limit_usd = limit;
  const k = await api("POST", "/api/v1/account/keys", body);
  document.getElementById("new-key-value").textContent = k.key;
  document.getElementById("new-key").hidden = false;
  form.reset();
  await load();
  document.getElementById("new-key-copy").focus();
});
copyButton(document.getElementById("new-key-copy"), document.getElementById("new-key-value"));

requireSignIn().then((me) => {
  if (me) load().catch((e) => showError(form, e));
});
