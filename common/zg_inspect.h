#ifndef ZG_INSPECT_H
#define ZG_INSPECT_H
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

/* What the gateway must know about a request body before it prices the hold, beyond the fields a
 * surface reads: members given twice (an upstream that keeps the first would serve a request other
 * than the one checked and priced), and input that the provider fetches or expands itself. */

/* Look for an object anywhere in a valid JSON text that names the same member twice (after
 * unescaping, so "model" and "mod\u0065l" are the same). Returns 1 and copies the member's name
 * (cut to fit, NUL-terminated) to name when one is found, 0 when there is none, -1 when memory
 * ran out. The text must already have been accepted by a JSON parser. */
int zg_inspect_duplicate(const char *json, size_t len, char *name, size_t namecap);

/* True when the request makes the provider add input that the body does not carry: documents or
 * images by URL or file id (Anthropic source.type url/file, OpenAI image_url with an http(s) URL,
 * input_file / file parts with file_id or file_url, Gemini fileData), a stored conversation
 * (previous_response_id, conversation), cached contents (Gemini cachedContent), or server-side tools
 * that fetch content (web search or fetch, file search, URL context, MCP servers). */
bool zg_inspect_expands(struct json_object *body);

#endif
