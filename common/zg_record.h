/* One finished (or admitted) request as the billing paths carry it, and its one codec: the lines
 * of the lease journal and of the spool, and the rows of a batched settlement (zg_flush). */
#ifndef ZG_RECORD_H
#define ZG_RECORD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "zg_buf.h"
#include "zg_usage.h"

/* What a finished request owes. */
typedef struct zg_settlement {
    const char *status;     /* "settled" or "abandoned" */
    const char *end_reason; /* complete, upstream_error, upstream_dropped, upstream_timeout,
                               upstream_unreachable, client_closed, abandoned */
    int64_t credits;
    zg_usage usage;
    bool estimated;
    int upstream_status;    /* 0 = none */
    int64_t ttfb_ms, duration_ms; /* -1 = none */
    const char *channel;    /* the channel that answered (NULL: none reached) */
    int attempts;           /* upstream attempts made (0 counts as 1) */
} zg_settlement;

/* A request: who and what it was admitted for, and what it owes. */
typedef struct zg_record {
    char rid[41], grp[16], surface[16], model[65], provider[33], status[16], reason[24];
    int64_t user, key, hold, credits;
    int64_t rel; /* the part of credits that came out of a lease (leased settlements) */
    zg_usage u;
    int est, ups;
    int64_t ttfb, dur; /* -1 = none */
    char channel[65];  /* "" = none */
    int attempts;      /* >= 1 */
    int tag;           /* the caller's own (lease mode: the journal file); never encoded */
    int ref;           /* the caller's own too (lease mode: 1 + the lease entry rel came out of,
                          0 none); never encoded */
} zg_record;

/* Line kinds, the first field of a line:
 *   'A' leased admission     A rid user key group surface model provider hold
 *   'P' strict admission     P rid user key group surface model provider hold
 *   'S' leased settlement    S rid user key group surface model provider hold SETTLEMENT
 *   'D' strict settlement done (only the id)                        D rid
 *   'U' final usage reported U rid credits input output cache_read cw5m cw1h reasoning units
 *   'X' spooled settlement   X rid SETTLEMENT
 * where SETTLEMENT = status end_reason credits released input output cache_read cw5m cw1h
 * reasoning units estimated upstream_status ttfb_ms duration_ms channel attempts (channel "-" for
 * none; lines written before channels end after duration_ms). Fields are separated by one
 * space and never contain one; a line ends with '\n'. */
enum { ZG_REC_LINE_MAX = 700 };

/* Copy src into dst[cap] as a line field: cut to fit; blanks, quotes, backslashes and controls
 * become '_' (NULL gives ""). */
void zg_record_field(char *dst, size_t cap, const char *src);
/* Fill r's settlement fields from s (strings cut to fit, as zg_record_field). */
void zg_record_settlement(zg_record *r, const zg_settlement *s);
/* A settlement whose strings point into r (valid while r is). */
zg_settlement zg_record_as_settlement(const zg_record *r);
/* Format r as a line of kind into out[cap] (cap >= ZG_REC_LINE_MAX always fits). Returns the
 * length, or 0 when kind is unknown or the line does not fit. */
size_t zg_record_line(int kind, const zg_record *r, char *out, size_t cap);
/* Parse one line (modified in place) into r: returns its kind, or 0 when malformed. Fields a kind
 * does not carry are zero; an admission ('A', 'P') comes back as its abandonment (status and
 * reason "abandoned", credits = hold, estimated, no times). Also reads a spool line of the older
 * form without a kind (rid SETTLEMENT less "released"), as 'X'. */
int zg_record_parse(char *line, zg_record *r);
/* Append r to b as one row of zg_flush's JSON array: [request_id, user_id, key_id, group,
 * surface, model, provider, hold, status, end_reason, credits, released, input, output,
 * cache_read, cache_write_5m, cache_write_1h, reasoning, units, estimated, upstream_status,
 * ttfb_ms, duration_ms] (no upstream status and times out of range as null, times capped at
 * 2e9 ms). ZG_OK or b's error. */
int zg_record_json(zg_buf *b, const zg_record *r);
/* A time in milliseconds as the database stores it: -1 (none) stays, above 2e9 is capped. */
int64_t zg_record_ms(int64_t ms);

#endif
