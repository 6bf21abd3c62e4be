#ifndef ZG_OPENAI_H
#define ZG_OPENAI_H
#include "zg_pipeline.h"

/* Pipeline hooks shared by every OpenAI-shaped surface (codex and Gemini's OpenAI-compatible
 * endpoint), so they meter identically. */

/* chat/completions: model, stream, max_completion_tokens / max_tokens. */
int zg_openai_chat_parse(zg_call *c, char *why, size_t whylen);
/* chat/completions upstream request: Bearer provider key, the provider's chat URL (Gemini: its
 * OpenAI-compatible root), stream_options.include_usage forced on for streams. */
int zg_openai_chat_prepare(zg_call *c);
/* Hide the usage-only final chunk from clients that did not ask for include_usage. */
bool zg_openai_chat_hide(zg_call *c, const char *event, size_t elen, const char *data, size_t dlen);
/* responses: model, stream, max_output_tokens. */
int zg_openai_responses_parse(zg_call *c, char *why, size_t whylen);
/* responses upstream request to the provider's /responses. */
int zg_openai_responses_prepare(zg_call *c);
/* Route for codex: gpt-* to OpenAI, deepseek-* DeepSeek, kimi-* Moonshot, glm-* Zhipu (by the
 * catalog's provider); anything else answered 400 naming the right base URL. */
int zg_openai_codex_route(zg_call *c, char *why, size_t whylen);

#endif
