// Drive the OpenAI Node SDK against the gateway's OpenAI-compatible surface.
//
//   node openai-sdk.mjs chat|chat_stream|responses|responses_stream|images|models ...
//
// ZG_CLIENT_MODEL model id (gpt-5.5).  The SDK sends the key as Authorization: Bearer.
// chat_stream is sent as a plain client would: no stream_options.
// Retries are off so that every request the SDK sends is one the test expects.
import { load, need, run } from './common.mjs';

const sdk = 'openai';
const mod = load(sdk);
const OpenAI = mod.OpenAI || mod.default;
const client = new OpenAI({
  baseURL: need('ZG_CLIENT_BASE'),
  apiKey: need('ZG_CLIENT_KEY'),
  maxRetries: 0,
  timeout: 30000,
});
const model = process.env.ZG_CLIENT_MODEL || 'gpt-5.5';
const messages = [{ role: 'user', content: 'Say hello' }];

await run(sdk, {
  async chat() {
    const r = await client.chat.completions.create({ model, messages });
    return { id: r.id, model: r.model, text: r.choices[0].message.content,
      finish_reason: r.choices[0].finish_reason, usage: r.usage };
  },
  async chat_stream() {
    const s = await client.chat.completions.create({ model, messages, stream: true });
    let text = '';
    let finish = null;
    let chunks = 0;
    let usage = null;
    for await (const c of s) {
      chunks++;
      const ch = c.choices[0];
      if (ch?.delta?.content) text += ch.delta.content;
      if (ch?.finish_reason) finish = ch.finish_reason;
      if (c.usage) usage = c.usage;
    }
    return { text, finish_reason: finish, chunks, usage };
  },
  async responses() {
    const r = await client.responses.create({ model, input: 'Say hello' });
    return { id: r.id, status: r.status, text: r.output_text, usage: r.usage };
  },
  async responses_stream() {
    const s = client.responses.stream({ model, input: 'Say hello' });
    const events = [];
    let deltas = '';
    s.on('event', (ev) => events.push(ev.type));
    s.on('response.output_text.delta', (ev) => { deltas += ev.delta; });
    const r = await s.finalResponse();
    return { id: r.id, status: r.status, text: r.output_text, deltas, usage: r.usage, events };
  },
  async images() {
    // images.generate posts to {baseURL}/images/generations: give the driver the /api/v1 base
    const r = await client.images.generate({ model: 'gpt-image-2', prompt: 'A small red apple', n: 2 });
    return { n: r.data.length, b64: r.data.every((d) => typeof d.b64_json === 'string' && d.b64_json.length > 0) };
  },
  async models() {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    return { ids };
  },
});
