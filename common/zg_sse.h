#ifndef ZG_SSE_H
#define ZG_SSE_H
#include <stddef.h>
#include "zg_buf.h"

/* Incremental Server-Sent Events parser. Bytes go in as they arrive; each complete event (ended by
 * a blank line; LF, CRLF or CR line ends) comes out once with its raw bytes, so a relay can pass
 * events through byte for byte: the raw bytes of all events delivered, in order, are exactly the
 * bytes fed. */
typedef struct zg_sse {
    zg_buf buf;    /* bytes of the event being assembled */
    size_t scan;   /* where line scanning resumes */
    size_t start;  /* start of the current line */
    zg_buf data;   /* scratch for multi-line data fields */
    int cr;        /* the last line end seen was a CR: a LF right after it belongs to it */
    int skip;      /* passing an event over the cap through, unparsed, until its blank line */
    int skip_line; /* while skipping: the current line has content */
} zg_sse;

/* One event: `event` is the event field ("" when absent), `data` the data field(s) joined by '\n'
 * ("" when absent; comment-only events have both empty), `raw` the exact bytes including the
 * terminating blank line. An event larger than the cap is passed on unparsed, in pieces, as events
 * with empty `event` and `data` whose raw bytes are its bytes; so is the LF of a CRLF whose CR
 * ended the previous event when that LF arrives in a later feed. Return non-zero to stop parsing
 * (zg_sse_feed returns that value). */
typedef int (*zg_sse_fn)(void *ctx, const char *event, size_t elen, const char *data, size_t dlen,
                         const char *raw, size_t rawlen);

/* Initialise with a cap on one event's size (at least 1). */
void zg_sse_init(zg_sse *p, size_t cap);
void zg_sse_free(zg_sse *p);
/* Feed bytes; calls fn for each event completed. 0, ZG_E_NOMEM, or the callback's non-zero return.
 * (ZG_E_TOOBIG is no longer returned: an event over the cap is passed through unparsed.) */
int zg_sse_feed(zg_sse *p, const char *bytes, size_t n, zg_sse_fn fn, void *ctx);
/* Bytes of an unterminated trailing event (the stream ended mid-event); 0 if none. */
size_t zg_sse_pending(const zg_sse *p, const char **raw);

#endif
