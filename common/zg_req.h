#ifndef ZG_REQ_H
#define ZG_REQ_H
#include <fcgiapp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "zg_buf.h"

/* Which protocol the caller speaks: decides the shape of every error we answer. */
typedef enum { ZG_PROTO_ANTHROPIC = 0, ZG_PROTO_OPENAI, ZG_PROTO_GEMINI } zg_proto;

struct zg_settings;
struct zg_db;

/* Where a response's bytes go once its request was detached from its worker thread (zg_loop.c):
 * instead of libfcgi's stream. put/flush return -1 once the client is gone; end is called once
 * the request is settled (from any thread). */
typedef struct zg_resp_sink {
    int (*put)(void *ctx, const void *p, size_t n);
    int (*flush)(void *ctx);
    void (*abort)(void *ctx);
    void (*end)(void *ctx);
} zg_resp_sink;

/* One FastCGI request being served by one worker thread, with its response state.
 * Fields are read by route code; write them only through the zg_req_* / zg_resp_* calls. */
typedef struct zg_req {
    FCGX_Request *fcgx;
    const struct zg_settings *cfg;
    struct zg_db *db;
    zg_proto proto;
    char request_id[40];
    const char *method;  /* "GET", "POST", ... ("" if absent) */
    char path[2048];     /* REQUEST_URI up to '?', percent-decoding not applied */
    const char *query;   /* after '?', or "" */
    const char *route_rest; /* the part of path matched by a route's trailing '*' */
    zg_buf body;         /* filled by zg_req_read_body */
    bool body_read;
    /* response */
    int status;
    zg_buf headers;      /* "Name: value\r\n" lines added so far */
    bool started;        /* status line and headers written */
    bool client_gone;    /* a write or flush to the client failed */
    bool responses_stream; /* an OpenAI Responses stream: errors go out as `event: error` */
    /* rate-limit headers, added to every response once set */
    int64_t rl_limit, rl_remaining, rl_reset;
    bool rl_set;
    /* set once detached: the response goes on elsewhere (zg_req_detach) */
    const zg_resp_sink *sink;
    void *sink_ctx;
} zg_req;

/* Prepare r for the accepted FastCGI request (parses REQUEST_URI, makes a request id). */
void zg_req_begin(zg_req *r, FCGX_Request *fcgx, const struct zg_settings *cfg, struct zg_db *db,
                  zg_proto proto);
/* Release per-request memory; r may be reused by zg_req_begin. */
void zg_req_end(zg_req *r);
/* FastCGI parameter (e.g. "CONTENT_TYPE"), or NULL. */
const char *zg_req_param(const zg_req *r, const char *name);
/* Request header by its HTTP name, case-insensitive ("x-api-key" -> HTTP_X_API_KEY), or NULL.
 * Content-Type and Content-Length are found too. */
const char *zg_req_header(const zg_req *r, const char *name);
/* Decoded value of query parameter `name` into out (NUL-terminated). Returns its length, -1 if
 * absent, ZG_E_TOOBIG if it does not fit. */
int zg_req_query_get(const zg_req *r, const char *name, char *out, size_t outlen);
/* True when the path equals `p` exactly. */
bool zg_req_path_is(const zg_req *r, const char *p);
/* Read the whole body (Content-Length or until EOF for chunked uploads) up to cfg->max_body_bytes.
 * ZG_OK, ZG_E_TOOBIG (the rest is drained) or ZG_E_IO. */
int zg_req_read_body(zg_req *r);

/* Hand r's response over to sink: libfcgi's stream buffers of the request are freed (what was
 * written must have been flushed), later writes go to the sink from whichever thread owns r now,
 * and this thread's request is marked as given away (zg_req_take_detached). r and r->fcgx must
 * have been allocated with malloc: zg_req_release frees them. */
void zg_req_detach(zg_req *r, const zg_resp_sink *sink, void *ctx);
/* Whether the request this thread just served was detached (clears the mark). */
bool zg_req_take_detached(void);
/* Free a request allocated as zg_req_detach requires, with its FastCGI request; a detached one's
 * sink is ended first. */
void zg_req_release(zg_req *r);

/* Make a fresh random request id "req_" + 24 hex digits into out (at least 29 bytes). */
void zg_request_id_new(char *out, size_t outlen);

/* --- response (zg_resp.c) --- */

/* Set the status code (before the response starts). */
void zg_resp_status(zg_req *r, int status);
/* Add a header (before the response starts). CR/LF in name or value are refused. */
int zg_resp_header(zg_req *r, const char *name, const char *value);
/* Record rate-limit figures; they go out as x-ratelimit-* headers on the response. */
void zg_resp_ratelimit(zg_req *r, int64_t limit, int64_t remaining, int64_t reset_unix);
/* Write the status line and headers now (adds request-id and rate-limit headers). */
int zg_resp_start(zg_req *r);
/* Write body bytes (starts the response if needed). -1 once the client is gone. */
int zg_resp_write(zg_req *r, const void *p, size_t n);
/* Push buffered bytes to the web server. -1 (and r->client_gone) when the client is gone. */
int zg_resp_flush(zg_req *r);
/* Cut a response that has started but cannot be completed (the upstream broke off a non-streamed
 * body): what was written is flushed, then the connection to the web server is shut down without
 * ending the request, so the client sees a broken transfer instead of a short body that looks
 * whole. Marks the client gone. */
void zg_resp_abort(zg_req *r);
/* A whole JSON response: status, content-type application/json, body. */
int zg_resp_json(zg_req *r, int status, const char *json, size_t n);

#endif
