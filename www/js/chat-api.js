// /chat's calls to the gateway's own API surfaces, with the short-lived browser key the account
// API mints for the session: Anthropic models on /api/v1/messages, the others on the OpenAI
// surface, gpt-image-2 as a background image job that is polled until it is done.
import { api, ApiError } from "./api.js";

let browserKey = null; // { key, expires_at (unix s) }; in memory only

async function key(fresh) {
  const now = Date.now() / 1000;
  if (fresh || !browserKey || browserKey.expires_at - now < 300) {
    browserKey = await api("POST", "/api/v1/account/chat-key");
  }
  return browserKey.key;
}

// An error answer as an ApiError with the gateway's message (any of the three shapes).
async function failure(res) {
  let msg = `HTTP ${res.status}`;
  try {
    const d = await res.json();
    const e = d.error || {};
    msg = e.message || msg;
  } catch {
    // not JSON: keep the status
  }
  return new ApiError(res.status, msg, null, res.headers.get("retry-after"));
}

// POST with the browser key; a 401 (the key expired or the session was renewed) mints a new key once.
async function post(path, headers, body, signal) {
  for (let attempt = 0; ; attempt++) {
    const k = await key(attempt > 0);
    let res;
    try {
      res = await fetch(path, { method: "POST", signal, headers: { ...headers(k), "content-type": "application/json" },
        body: JSON.stringify(body) });
    } catch (e) {
      if (e.name === "AbortError") throw e;
      throw new ApiError(0, "The service cannot be reached. Check your connection and try again.");
    }
    if (res.status === 401 && attempt === 0) continue;
    if (!res.ok) throw await failure(res);
    return res;
  }
}

// Server-sent events of a streamed answer: calls onEvent(name, data) for each.
async function readEvents(res, onEvent) {
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent(name, data.join("\n"));
    }
  }
}

function history(messages) {
  return messages.filter((m) => (m.role === "user" || m.role === "assistant") && m.kind !== "image" && !m.error && m.content)
    .map((m) => ({ role: m.role, content: m.content }));
}

// Stream a text answer of model (a catalog entry) to messages. onText(text so far); resolves with
// { text, usage: { input, output, cache_read } }.
export async function streamText(model, messages, signal, onText) {
  let text = "";
  const usage = { input: 0, output: 0, cache_read: 0 };
  if (model.provider === "anthropic") {
    const res = await post("/api/v1/messages", (k) => ({ "x-api-key": k, "anthropic-version": "2023-06-01" }),
      { model: model.id, max_tokens: 4096, stream: true, messages: history(messages) }, signal);
    await readEvents(res, (name, data) => {
      const d = JSON.parse(data);
      if (name === "content_block_delta" && d.delta && d.delta.type === "text_delta") {
        text += d.delta.text;
        onText(text);
      } else if (name === "message_start" && d.message && d.message.usage) {
        const u = d.message.usage;
        usage.input = (u.input_tokens || 0) + (u.cache_creation_input_tokens || 0);
        usage.cache_read = u.cache_read_input_tokens || 0;
      } else if (name === "message_delta" && d.usage) {
        usage.output = d.usage.output_tokens || usage.output;
      } else if (name === "error") {
        throw new ApiError(502, (d.error && d.error.message) || "The answer broke off.");
      }
    });
    return { text, usage };
  }
  const res = await post("/api/v1/codex/chat/completions", (k) => ({ authorization: "Bearer " + k }),
    { model: model.id, stream: true, stream_options: { include_usage: true }, messages: history(messages) }, signal);
  await readEvents(res, (name, data) => {
    if (data === "[DONE]") return;
    const d = JSON.parse(data);
    if (d.error) throw new ApiError(502, d.error.message || "The answer broke off.");
    const delta = d.choices && d.choices[0] && d.choices[0].delta;
    if (delta && typeof delta.content === "string" && delta.content) {
      text += delta.content;
      onText(text);
    }
    if (d.usage) {
      const cached = (d.usage.prompt_tokens_details && d.usage.prompt_tokens_details.cached_tokens) || 0;
      usage.input = (d.usage.prompt_tokens || 0) - cached;
      usage.cache_read = cached;
      usage.output = d.usage.completion_tokens || 0;
    }
  });
  return { text, usage };
}

// Start a background image generation: its job id.
export async function startImage(model, prompt, signal) {
  const res = await post("/api/v1/images/generations", (k) => ({ authorization: "Bearer " + k }),
    { model: model.id, prompt, background: true }, signal);
  return (await res.json()).id;
}

// The job's state (the gateway's JSON) once it is completed or failed; polls every 1.5 s.
export async function waitImage(id, signal, onState) {
  for (;;) {
    if (signal && signal.aborted) throw new DOMException("stopped", "AbortError");
    const k = await key(false);
    let res;
    try {
      res = await fetch("/api/v1/images/generations/" + encodeURIComponent(id), { headers: { authorization: "Bearer " + k }, signal });
    } catch (e) {
      if (e.name === "AbortError") throw e;
      res = null; // the network hiccuped: ask again
    }
    if (res && res.status === 401) {
      await key(true);
    } else if (res && !res.ok && res.status < 500) {
      throw await failure(res);
    } else if (res && res.ok) {
      const d = await res.json();
      if (onState) onState(d.status);
      if (d.status === "completed" || d.status === "failed") return d;
    }
    await new Promise((r) => setTimeout(r, 1500));
  }
}

// Credits an answer cost at the model's list prices (what the gateway bills), from its usage.
export function costOf(model, usage) {
  const p = model.pricing || {};
  if (p.unit === "credits_per_image") return (usage.images || 0) * (p.per_image || 0);
  const per = (tokens, price) => (tokens || 0) * (price || 0) / 1e6;
  return Math.round(per(usage.input, p.input) + per(usage.output, p.output) + per(usage.cache_read, p.cache_read ?? p.input));
}
