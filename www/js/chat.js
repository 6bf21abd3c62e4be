// /chat: talk to any live model the plan unlocks, or make images with GPT Image 2, through the
// gateway's own API with a short-lived browser key. Answers stream in and are rendered as Markdown,
// sanitized; conversations stay in this browser (chat-store.js).
import { marked } from "/vendor/marked/marked.esm.js";
import DOMPurify from "/vendor/dompurify/purify.es.mjs";
import { api, usd } from "./api.js";
import { requireSignIn } from "./nav.js";
import * as store from "./chat-store.js";
import { costOf, startImage, streamText, waitImage } from "./chat-api.js";

const PROVIDERS = { anthropic: "Anthropic", openai: "OpenAI", gemini: "Google Gemini", deepseek: "DeepSeek",
  moonshot: "Moonshot", zhipu: "Zhipu" };
const RANK = { none: 0, pro: 1, max: 2, enterprise: 3 };

const $ = (id) => document.getElementById(id);
let models = new Map(); // id -> catalog entry
let running = null; // AbortController of the answer being made
const pictures = new Map(); // image job id -> image sources (never stored: the gateway keeps them a day)

// ---- rendering -----------------------------------------------------------------------------------

function price(m) {
  const p = m.pricing || {};
  const d = (c) => "$" + (c / 1e6).toLocaleString("en-US", { maximumFractionDigits: 4 });
  if (p.unit === "credits_per_image") return `${d(p.per_image)} per image`;
  return `${d(p.input)} in / ${d(p.output)} out per 1M tokens`;
}

// Markdown to safe DOM: no raw HTML from a model reaches the page unsanitized.
function markdown(text) {
  const frag = document.createElement("div");
  frag.innerHTML = DOMPurify.sanitize(marked.parse(text || "", { gfm: true, breaks: false }),
    { USE_PROFILES: { html: true }, FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select"] });
  for (const a of frag.querySelectorAll("a[href]")) {
    a.target = "_blank";
    a.rel = "noopener noreferrer";
  }
  for (const pre of frag.querySelectorAll("pre")) {
    const wrap = document.createElement("div");
    wrap.className = "code";
    pre.replaceWith(wrap);
    const b = document.createElement("button");
    b.type = "button";
    b.className = "secondary";
    b.textContent = "Copy";
    b.setAttribute("aria-label", "Copy code");
    b.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(pre.innerText);
        b.textContent = "Copied";
      } catch {
        b.textContent = "Copy failed";
      }
      setTimeout(() => (b.textContent = "Copy"), 2000);
    });
    wrap.append(pre, b);
  }
  return frag;
}

// Plain words for an error, with what to do about it.
function explain(e) {
  const s = e.status;
  if (s === 402) return { text: e.message, link: ["/checkout", "Top up"] };
  if (s === 403) return { text: `${e.message}. Pick another model, or upgrade your plan.`, link: ["/pricing", "See plans"] };
  if (s === 429) return { text: `Too many requests right now${e.retryAfter ? `; try again in ${e.retryAfter} s` : "; wait a moment and try again"}. (${e.message})` };
  if (s === 503) return { text: `Not available right now: ${e.message}` };
  if (s === 401) return { text: "Your session has ended. Sign in again.", link: ["/login?next=/chat", "Sign in"] };
  if (s === 0) return { text: e.message };
  if (s >= 500) return { text: `The model's provider failed to answer (${e.message}). Try again, or pick another model.` };
  return { text: e.message };
}

function bubble(msg) {
  const el = document.createElement("div");
  el.className = "msg " + msg.role + (msg.error ? " error" : "");
  const body = document.createElement("div");
  body.className = "body";
  el.append(body);
  fill(el, msg);
  return el;
}

function fill(el, msg) {
  const body = el.querySelector(".body");
  el.classList.toggle("error", !!msg.error);
  body.replaceChildren();
  if (msg.role === "user") {
    body.textContent = msg.content;
  } else if (msg.error) {
    const p = document.createElement("p");
    p.textContent = msg.error.text;
    body.append(p);
    if (msg.error.link) {
      const a = document.createElement("a");
      a.href = msg.error.link[0];
      a.textContent = msg.error.link[1];
      body.append(a);
    }
  } else if (msg.kind === "image") {
    const srcs = msg.job && pictures.get(msg.job);
    if (srcs && srcs.length) {
      for (const src of srcs) {
        const img = document.createElement("img");
        img.src = src;
        img.alt = "Generated image: " + msg.prompt;
        body.append(img);
      }
    } else {
      const p = document.createElement("p");
      p.className = "muted";
      p.textContent = msg.state === "queued" ? "Queued…" : msg.state === "in_progress" ? "Drawing…" : msg.state || "Starting…";
      body.append(p);
    }
  } else {
    body.append(...markdown(msg.content).childNodes);
  }
  el.querySelector(".meta")?.remove();
  if (msg.role === "assistant" && !msg.error && (msg.model || msg.cost != null || msg.stopped)) {
    const meta = document.createElement("div");
    meta.className = "meta";
    const m = document.createElement("span");
    m.textContent = msg.model || "";
    meta.append(m);
    if (msg.cost != null) {
      const c = document.createElement("span");
      c.className = "cost";
      c.textContent = "Cost " + usd(msg.cost);
      meta.append(c);
    }
    if (msg.stopped) {
      const st = document.createElement("span");
      st.textContent = msg.kind === "image" ? "stopped waiting (the image is still made and billed)"
        : "stopped: billed for what was generated (see Usage)";
      meta.append(st);
    }
    el.append(meta);
  }
}

function showConversation() {
  const c = store.current();
  const box = $("messages");
  box.replaceChildren(...(c ? c.messages.map(bubble) : []));
  box.scrollTop = box.scrollHeight;
  showList();
  // images of this conversation still being drawn, or to fetch again after a reload
  if (c) for (const m of c.messages) if (m.kind === "image" && m.job && !pictures.has(m.job) && !m.error) followImage(c, m, null);
}

function showList() {
  const c = store.current();
  const list = $("conversations");
  list.replaceChildren();
  for (const x of store.conversations()) {
    const li = document.createElement("li");
    const open = document.createElement("button");
    open.type = "button";
    open.className = "open";
    open.textContent = x.title;
    open.setAttribute("aria-current", c && x.id === c.id ? "true" : "false");
    open.addEventListener("click", () => {
      store.select(x.id);
      showConversation();
    });
    const del = document.createElement("button");
    del.type = "button";
    del.className = "delete";
    del.textContent = "×";
    del.setAttribute("aria-label", "Delete conversation: " + x.title);
    del.addEventListener("click", () => {
      if (!confirm(`Delete "${x.title}"?`)) return;
      store.remove(x.id);
      showConversation();
    });
    li.append(open, del);
    list.append(li);
  }
}

// ---- asking --------------------------------------------------------------------------------------

function busy(on) {
  $("send").disabled = on;
  $("stop").hidden = !on;
  $("model").disabled = on;
}

async function followImage(c, msg, signal) {
  const el = () => [...$("messages").children][c.messages.indexOf(msg)];
  try {
    const d = await waitImage(msg.job, signal, (state) => {
      msg.state = state;
      if (store.current() === c && el()) fill(el(), msg);
    });
    if (d.status === "failed") {
      msg.error = { text: `The image could not be made: ${d.error.message}` };
    } else {
      const fmt = (d.output_format || "png").replace("jpg", "jpeg");
      pictures.set(msg.job, (d.data || []).map((x) => (x.b64_json ? `data:image/${fmt};base64,` + x.b64_json : x.url)));
      msg.state = "completed";
      msg.cost = d.credits;
    }
  } catch (e) {
    if (e.name === "AbortError") throw e; // Stop: the caller says so (the image is still made)
    msg.error = e.status === 404 ? { text: "This image is no longer kept (images are kept for a day)." } : explain(e);
  }
  store.put(c, msg);
  if (store.current() === c && el()) fill(el(), msg);
}

async function send(text) {
  const model = models.get($("model").value);
  if (!model || !text.trim()) return;
  const c = store.current() || store.create();
  const q = { role: "user", content: text };
  store.put(c, q);
  $("messages").append(bubble(q));
  const a = { role: "assistant", content: "", model: model.display_name || model.id };
  const el = bubble(a);
  $("messages").append(el);
  el.scrollIntoView({ block: "end" });
  showList();
  running = new AbortController();
  busy(true);
  try {
    if (model.kind === "image") {
      a.kind = "image";
      a.prompt = text;
      a.state = "queued";
      fill(el, a);
      a.job = await startImage(model, text, running.signal);
      store.put(c, a);
      await followImage(c, a, running.signal);
    } else {
      const r = await streamText(model, c.messages, running.signal,
        (t) => {
          a.content = t;
          fill(el, a);
          el.scrollIntoView({ block: "end" });
        });
      a.content = r.text;
      a.cost = costOf(model, r.usage);
      store.put(c, a);
      fill(el, a);
    }
  } catch (e) {
    if (e.name === "AbortError") {
      a.stopped = true;
      if (!a.content && a.kind !== "image") a.content = "*Stopped.*";
    } else {
      a.error = explain(e);
    }
    store.put(c, a);
    fill(el, a);
  } finally {
    running = null;
    busy(false);
    $("prompt").focus();
  }
}

// ---- start ---------------------------------------------------------------------------------------

async function loadModels(me) {
  const data = await api("GET", "/api/v1/models");
  const rank = Math.max(RANK[me.plan] ?? 0, 1);
  const usable = data.data.filter((m) => m.status === "live" && (m.kind === "chat" || m.kind === "image") &&
    (RANK[m.min_plan] ?? 1) <= rank);
  const sel = $("model");
  const groups = new Map();
  for (const m of usable) {
    models.set(m.id, m);
    if (!groups.has(m.provider)) groups.set(m.provider, []);
    groups.get(m.provider).push(m);
  }
  for (const [prov, list] of groups) {
    const g = document.createElement("optgroup");
    g.label = PROVIDERS[prov] || prov;
    for (const m of list) {
      const o = document.createElement("option");
      o.value = m.id;
      o.textContent = `${m.display_name || m.id} — ${price(m)}`;
      g.append(o);
    }
    sel.append(g);
  }
  const last = store.lastModel();
  if (last && models.has(last)) sel.value = last;
  note();
}

function note() {
  const m = models.get($("model").value);
  $("model-note").textContent = m && m.kind === "image" ? "Describe the picture; it appears here when ready." : "";
}

async function main() {
  const me = await requireSignIn();
  if (!me) return;
  store.open(me.email);
  try {
    await loadModels(me);
  } catch (e) {
    $("chat-error").textContent = "The model list could not be loaded: " + e.message;
  }
  $("model").addEventListener("change", () => {
    store.rememberModel($("model").value);
    note();
  });
  $("new-chat").addEventListener("click", () => {
    store.create();
    showConversation();
    $("prompt").focus();
  });
  $("composer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("prompt").value;
    if (!t.trim() || running) return;
    $("prompt").value = "";
    send(t);
  });
  $("prompt").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("stop").addEventListener("click", () => running && running.abort());
  showConversation();
}

main().catch((e) => {
  $("chat-error").textContent = "The chat could not start: " + e.message;
});
