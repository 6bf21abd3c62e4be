#ifndef ZG_ERR_H
#define ZG_ERR_H
#include "zg_buf.h"
#include "zg_req.h"

/* What went wrong, independent of protocol. Each kind has one HTTP status and one spelling in each
 * protocol's error JSON. */
typedef enum {
    ZG_ERR_INVALID = 0,      /* 400 malformed or invalid request */
    ZG_ERR_AUTH,             /* 401 missing / invalid key */
    ZG_ERR_BALANCE,          /* 402 insufficient credits */
    ZG_ERR_KEY_LIMIT,        /* 402 the key's spend limit is reached */
    ZG_ERR_PLAN,             /* 403 the plan does not unlock the model */
    ZG_ERR_NOT_FOUND,        /* 404 no such path */
    ZG_ERR_MODEL_NOT_FOUND,  /* 404 unknown model */
    ZG_ERR_METHOD,           /* 405 method not allowed on this path */
    ZG_ERR_TOO_LARGE,        /* 413 body over the cap */
    ZG_ERR_UPGRADE,          /* 426 websocket upgrade not offered */
    ZG_ERR_RATE,             /* 429 per-user rate limit */
    ZG_ERR_INTERNAL,         /* 500 */
    ZG_ERR_NOT_IMPLEMENTED,  /* 501 route not yet available */
    ZG_ERR_UPSTREAM,         /* 502 upstream unreachable or broken */
    ZG_ERR_COMING_SOON,      /* 503 model listed but not enabled */
    ZG_ERR_UNAVAILABLE,      /* 503 service (database) unavailable */
    ZG_ERR_TIMEOUT,          /* 504 upstream timed out */
    ZG_ERR_COUNT
} zg_errkind;

/* HTTP status of a kind. */
int zg_err_status(zg_errkind kind);
/* Append the protocol-shaped error JSON for kind and message to out:
 *   anthropic {"type":"error","error":{"type":T,"message":M}}
 *   openai    {"error":{"message":M,"type":T,"param":null,"code":C}}
 *   gemini    {"error":{"code":S,"message":M,"status":G}} */
int zg_err_body(zg_buf *out, zg_proto proto, zg_errkind kind, const char *msg);
/* Answer the request with an error in r->proto's shape: sets the status, adds x-should-retry: false
 * on 401/402/403, writes the body. If the response has already started (a stream), writes the
 * error as a final SSE event instead. Always returns 0 so handlers can `return zg_err_reply(...)`. */
int zg_err_reply(zg_req *r, zg_errkind kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
