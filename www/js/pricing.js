// Every model of the catalog, grouped by provider, with its list prices.
import { api } from "./api.js";
import { initNav } from "./nav.js";
import { cell } from "./dom.js";

const PROVIDERS = { anthropic: "Anthropic", openai: "OpenAI", gemini: "Google Gemini", deepseek: "DeepSeek",
  moonshot: "Moonshot", zhipu: "Zhipu" };

function dollars(credits) {
  if (credits == null) return "—";
  const v = credits / 1e6;
  return "$" + v.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 4 });
}

function table(models) {
  const t = document.createElement("table");
  t.innerHTML = `<thead><tr><th scope="col">Model</th><th scope="col">Status</th><th scope="col">Plan</th>
    <th scope="col" class="num">Input / 1M</th><th scope="col" class="num">Output / 1M</th>
    <th scope="col" class="num">Cache read / 1M</th></tr></thead><tbody></tbody>`;
  const body = t.querySelector("tbody");
  for (const m of models) {
    const tr = document.createElement("tr");
    tr.dataset.model = m.id;
    const name = document.createElement("td");
    const strong = document.createElement("strong");
    strong.textContent = m.display_name || m.id;
    const id = document.createElement("div");
    id.className = "mono muted";
    id.textContent = m.id;
    name.append(strong, id);
    const st = document.createElement("td");
    const b = document.createElement("span");
    b.className = "badge " + (m.status === "live" ? "live" : "soon");
    b.textContent = m.status === "live" ? "Live" : "Coming soon";
    st.append(b);
    tr.append(name, st, cell(m.min_plan === "pro" ? "Any plan" : m.min_plan[0].toUpperCase() + m.min_plan.slice(1) + " and up"));
    const p = m.pricing || {};
    if (p.unit === "credits_per_image") {
      const td = cell(`${dollars(p.per_image)} per image`, "num");
      td.colSpan = 3;
      tr.append(td);
    } else {
      tr.append(cell(dollars(p.input), "num"), cell(dollars(p.output), "num"), cell(dollars(p.cache_read), "num"));
    }
    body.append(tr);
  }
  return t;
}

async function load() {
  const data = await api("GET", "/api/v1/models");
  const groups = new Map();
  for (const m of data.data) {
    if (!groups.has(m.provider)) groups.set(m.provider, []);
    groups.get(m.provider).push(m);
  }
  const out = document.getElementById("models");
  for (const [prov, models] of groups) {
    const h = document.createElement("h3");
    h.textContent = PROVIDERS[prov] || prov;
    out.append(h, table(models));
  }
}

initNav();
load().catch((e) => {
  document.getElementById("models-error").textContent = "The model list could not be loaded: " + e.message;
});
