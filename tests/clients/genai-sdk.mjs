// Drive the Google GenAI SDK (@google/genai; 3.x calls {base}/v1/models/...)
// against the gateway's Gemini surface.
//
//   node genai-sdk.mjs generate|generate_stream|count_tokens ...
//
// ZG_CLIENT_MODEL model id (gemini-3-flash-preview).  The SDK sends the key as
// x-goog-api-key.  Retries are off (httpOptions.retryOptions.attempts = 1).
import { load, need, run } from './common.mjs';

const sdk = '@google/genai';
const { GoogleGenAI } = load(sdk);
const ai = new GoogleGenAI({
  apiKey: need('ZG_CLIENT_KEY'),
  httpOptions: { baseUrl: need('ZG_CLIENT_BASE'), timeout: 30000, retryOptions: { attempts: 1 } },
});
const model = process.env.ZG_CLIENT_MODEL || 'gemini-3-flash-preview';

await run(sdk, {
  async generate() {
    const r = await ai.models.generateContent({ model, contents: 'Say hello' });
    return { text: r.text, finish_reason: r.candidates?.[0]?.finishReason, usage: r.usageMetadata };
  },
  async generate_stream() {
    const s = await ai.models.generateContentStream({ model, contents: 'Say hello' });
    let text = '';
    let chunks = 0;
    let usage = null;
    let finish = null;
    for await (const c of s) {
      chunks++;
      text += c.text ?? '';
      if (c.usageMetadata) usage = c.usageMetadata;
      if (c.candidates?.[0]?.finishReason) finish = c.candidates[0].finishReason;
    }
    return { text, chunks, finish_reason: finish, usage };
  },
  async count_tokens() {
    const r = await ai.models.countTokens({ model, contents: 'Say hello' });
    return { total_tokens: r.totalTokens };
  },
});
