#ifndef ZG_ROUTE_H
#define ZG_ROUTE_H
#include "zg_req.h"

/* One entry of a program's route table. `path` is matched against the request path exactly, or,
 * when it ends in '*', as a prefix (the rest goes to r->route_rest and must be non-empty).
 * `method` is "GET", "POST", ... or NULL for any. `proto` (if >= 0) overrides the program's
 * protocol for this path, so errors on it come in the right shape. */
typedef struct zg_route {
    const char *method;
    const char *path;
    int (*handler)(zg_req *r);
    int proto;
} zg_route;

/* Run the first route whose path and method match. A path that matches only with other methods
 * gets 405 with an Allow header; no match gets 404 naming the path. Always returns 0. */
int zg_dispatch(zg_req *r, const zg_route *routes, size_t n);
/* The protocol a path belongs to by its surface: /api/v1/codex and /api/v1/responses are OpenAI,
 * /api/v1/images OpenAI, /api/v1/gemini Gemini (its /openai/ and /chat/completions paths OpenAI),
 * everything else Anthropic. */
zg_proto zg_route_proto_for(const char *path);

#endif
