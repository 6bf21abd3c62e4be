#ifndef ZG_USAGE_H
#define ZG_USAGE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "zg_catalog.h"

/* Token counts of one request in disjoint categories (so each is priced once):
 * input excludes cached and cache-written tokens; output includes reasoning tokens
 * (reasoning is recorded separately for information only). */
typedef struct zg_usage {
    int64_t input, output, cache_read, cache_write_5m, cache_write_1h, reasoning, units;
    bool have_input;   /* the upstream reported input usage */
    bool have_output;  /* the upstream reported final output usage */
    bool finished;     /* a terminal event/complete body was seen */
    int64_t text_bytes; /* bytes of generated text relayed, for estimates */
} zg_usage;

/* Protocols whose usage we read. */
typedef enum {
    ZG_USAGE_ANTHROPIC = 0,
    ZG_USAGE_OPENAI_CHAT,
    ZG_USAGE_OPENAI_RESPONSES,
    ZG_USAGE_GEMINI,
    ZG_USAGE_IMAGES,
} zg_usage_kind;

/* Read usage from one SSE event of the given protocol (data is the event's JSON). Unrelated events
 * cost a few byte comparisons. Malformed JSON is ignored. */
void zg_usage_from_event(zg_usage *u, zg_usage_kind kind, const char *event, size_t elen, const char *data,
                         size_t dlen);
/* True once the usage read so far from a stream of this protocol is the upstream's final report (what
 * it bills): later events cannot change it. */
bool zg_usage_final(const zg_usage *u, zg_usage_kind kind);
/* Read usage from a complete non-streamed response body. */
void zg_usage_from_body(zg_usage *u, zg_usage_kind kind, const char *json, size_t len);
/* Length in bytes of the generated text carried by a stream delta event (0 for other events);
 * a byte scan, no JSON parse. */
size_t zg_usage_delta_text(zg_usage_kind kind, const char *data, size_t dlen);
/* Output tokens estimated from relayed text: ceil(text_bytes / 4). */
int64_t zg_usage_estimate_output(int64_t text_bytes);
/* Credits owed for u at m's prices: every category at its price (cache writes without their own
 * price at the input price), summed exactly and rounded once, half up; plus units x per-unit price.
 * When u's input of all kinds exceeds m's long-context threshold, every category is priced at the
 * long tier (zg_usage_is_long). */
int64_t zg_usage_cost(const zg_usage *u, const zg_model *m);
/* True when u's input (input + cache read + cache writes) exceeds m's long-context threshold. */
bool zg_usage_is_long(const zg_usage *u, const zg_model *m);

#endif
