/* The account API's plumbing (the customer portal's programs): its error shape, JSON bodies,
 * field checks, and the same-origin rule for requests that change state. */
#ifndef ZG_PORTAL_H
#define ZG_PORTAL_H
#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include "zg_req.h"

#define ZG_PORTAL_BODY_MAX 65536

/* Answer {"error":{"type":T,"message":M,"field":F}} (field null when NULL) with status (headers such
 * as retry-after are added by the caller first). Always returns 0, so handlers can return it. */
int zg_portal_fail(zg_req *r, int status, const char *type, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* The shorthand errors: 400 invalid_request_error about field; 401 not signed in; 503 the database. */
int zg_portal_bad(zg_req *r, const char *field, const char *msg);
int zg_portal_unavailable(zg_req *r);
/* Answer o as JSON with status (o is released; NULL answers an empty body). Returns 0. */
int zg_portal_reply(zg_req *r, int status, json_object *o);
/* Read the whole body, at most max bytes (413 naming the limit before reading when Content-Length
 * says more), or answer 400 when it cannot be read. 0, or answered and -1. */
int zg_portal_read(zg_req *r, size_t max);
/* Read the body as one JSON object: at most ZG_PORTAL_BODY_MAX bytes (413), UTF-8, no member named
 * twice, nothing after it (400). NULL when answered with an error; release the object with
 * json_object_put. */
json_object *zg_portal_body(zg_req *r);
/* Member name of o as text: a JSON string of 1..max bytes without control characters. Returns 0
 * with *out (valid while o lives), 1 when absent or null (*out NULL), or answers 400 naming the field
 * and returns -1. */
int zg_portal_text(zg_req *r, json_object *o, const char *name, size_t max, const char **out);
/* Micro-units (credits, micro-dollars) as a JSON string of dollars with six decimals ("1.250000"). */
json_object *zg_portal_usd_json(int64_t micros);
/* Member name of o as US dollars (a JSON number or string like 5 or 2.50, 0..1,000,000, at most six
 * decimals) in micro-dollars. 0 with *micros; 1 absent (*micros -1), 2 null (*micros -1), or answers
 * 400 and returns -1. */
int zg_portal_usd(zg_req *r, json_object *o, const char *name, int64_t *micros);
/* A query-string parameter a handler accepts: its decoded value goes to out (cap bytes). */
typedef struct zg_qparam {
    const char *name;
    char *out;
    size_t cap;
    bool set; /* given with a non-empty value */
} zg_qparam;
/* Read the query string into p[0..n): an unknown name, a name given twice or a value longer than
 * its room answers 400 naming it and returns -1; else 0. Empty values count as absent. */
int zg_portal_query(zg_req *r, zg_qparam *p, size_t n);
/* A plausible e-mail address: 3..254 bytes, one '@' with text on both sides, a dot in the domain,
 * no blanks or control characters, UTF-8. */
bool zg_portal_email_ok(const char *s);
/* Did a state-changing request come from the portal's own pages? Its Origin names this host (and
 * scheme), or, without Origin, Sec-Fetch-Site says same-origin. */
bool zg_portal_same_origin(const zg_req *r);
/* Did the request come over HTTPS (the web server's HTTPS parameter)? */
bool zg_portal_https(const zg_req *r);
/* The client's address (REMOTE_ADDR), or "unknown". */
const char *zg_portal_addr(const zg_req *r);

#endif
