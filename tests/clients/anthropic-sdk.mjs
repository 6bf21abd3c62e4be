// Drive the Anthropic TypeScript SDK against the gateway.
//
//   node anthropic-sdk.mjs create|stream|count_tokens|models ...
//
// ZG_CLIENT_SDK   package to load: @anthropic-ai/sdk (1.x, default) or
//                 anthropic-sdk-0 (the 0.x line installed under that name)
// ZG_CLIENT_AUTH  apiKey (default: 1.x sends it as Bearer, 0.x as x-api-key) or
//                 authToken (Bearer in both)
// ZG_CLIENT_MODEL model id (claude-haiku-4-5)
// Retries are off so that every request the SDK sends is one the test expects.
import { load, need, run } from './common.mjs';

const sdk = process.env.ZG_CLIENT_SDK || '@anthropic-ai/sdk';
const mod = load(sdk);
const Anthropic = mod.Anthropic || mod.default;
const auth = process.env.ZG_CLIENT_AUTH || 'apiKey';
const key = need('ZG_CLIENT_KEY');
const client = new Anthropic({
  baseURL: need('ZG_CLIENT_BASE'),
  ...(auth === 'authToken' ? { authToken: key, apiKey: null } : { apiKey: key, authToken: null }),
  maxRetries: 0,
  timeout: 30000,
});
const model = process.env.ZG_CLIENT_MODEL || 'claude-haiku-4-5';
const messages = [{ role: 'user', content: 'Say hello' }];

function text(msg) {
  return msg.content.filter((b) => b.type === 'text').map((b) => b.text).join('');
}

await run(sdk, {
  async create() {
    const m = await client.messages.create({ model, max_tokens: 64, messages });
    return { id: m.id, model: m.model, text: text(m), stop_reason: m.stop_reason, usage: m.usage };
  },
  async stream() {
    const s = client.messages.stream({ model, max_tokens: 64, messages });
    const events = [];
    let deltas = '';
    s.on('streamEvent', (ev) => events.push(ev.type));
    s.on('text', (t) => { deltas += t; });
    const m = await s.finalMessage();
    return { id: m.id, text: text(m), deltas, stop_reason: m.stop_reason, usage: m.usage, events };
  },
  async count_tokens() {
    const r = await client.messages.countTokens({ model, messages });
    return { input_tokens: r.input_tokens };
  },
  async models() {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    return { ids };
  },
});
