// Setup for each client with this gateway's own base URLs (the README's "Client set-ups").
import { copyButton } from "./form.js";
import { initNav } from "./nav.js";

const G = location.origin;
const SECTIONS = [
  ["Claude Code", "Anthropic surface; the key is sent as x-api-key.",
    `export ANTHROPIC_BASE_URL=${G}/api/v1\nexport ANTHROPIC_API_KEY=ck_...\nclaude --model claude-sonnet-4-6`],
  ["Codex CLI", "Add a provider to ~/.codex/config.toml, then export the key.",
    `model = "gpt-5.5"\nmodel_provider = "zenn"\n\n[model_providers.zenn]\nname = "Zenn"\nbase_url = "${G}/api/v1/codex"\nenv_key = "ZENN_API_KEY"\nwire_api = "responses"`,
    `export ZENN_API_KEY=ck_...\ncodex exec "hello"`],
  ["Gemini CLI", "Set the base URL and key, and select API-key auth in ~/.gemini/settings.json.",
    `export GOOGLE_GEMINI_BASE_URL=${G}/api/v1/gemini\nexport GEMINI_API_KEY=ck_...`,
    `{\n  "security": { "auth": { "selectedType": "gemini-api-key" } }\n}`],
  ["OpenCode", "In ~/.config/opencode/opencode.json:",
    JSON.stringify({ provider: {
      anthropic: { options: { baseURL: `${G}/api/v1`, apiKey: "ck_..." } },
      "zenn-codex": { npm: "@ai-sdk/openai-compatible", name: "Zenn (OpenAI)", options: { baseURL: `${G}/api/v1/codex`, apiKey: "ck_..." },
        models: { "gpt-5.5": {} } },
    } }, null, 2)],
  ["Cursor", "Settings → Models → Custom OpenAI model: set the base URL below and your key; Verify lists the models.",
    `${G}/api/v1/codex`],
  ["curl", "Any surface works with plain HTTP.",
    `curl ${G}/api/v1/messages \\\n  -H "x-api-key: ck_..." -H "content-type: application/json" \\\n  -d '{"model":"claude-haiku-4-5","max_tokens":64,"messages":[{"role":"user","content":"Hello"}]}'`],
];

const out = document.getElementById("docs");
for (const [title, text, ...blocks] of SECTIONS) {
  const sec = document.createElement("section");
  sec.className = "card";
  const h = document.createElement("h2");
  h.textContent = title;
  const p = document.createElement("p");
  p.textContent = text;
  sec.append(h, p);
  for (const b of blocks) {
    const wrap = document.createElement("div");
    wrap.className = "copyable";
    const pre = document.createElement("pre");
    const code = document.createElement("code");
    code.textContent = b;
    pre.append(code);
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = "secondary";
    btn.textContent = "Copy";
    btn.setAttribute("aria-label", `Copy the ${title} setup`);
    copyButton(btn, code);
    wrap.append(pre, btn);
    sec.append(wrap);
  }
  out.append(sec);
}
initNav();
