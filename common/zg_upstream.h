#ifndef ZG_UPSTREAM_H
#define ZG_UPSTREAM_H
#include <curl/curl.h>
#include <stdint.h>
#include "zg_req.h"

/* How an upstream call ended. */
typedef enum {
    ZG_UP_OK = 0,       /* the upstream answered completely (any HTTP status) */
    ZG_UP_CONNECT,      /* could not connect or resolve: nothing reached the upstream */
    ZG_UP_TIMEOUT,      /* no answer (or not all of it) within the total or idle timeout */
    ZG_UP_DROPPED,      /* the upstream closed or broke the connection before the end */
    ZG_UP_CLIENT_GONE,  /* our client went away; the upstream transfer was aborted */
    ZG_UP_ERROR,        /* any other transfer failure */
} zg_up_result;

typedef struct zg_upstream_out {
    zg_up_result result;
    int status;          /* upstream HTTP status, 0 if none */
    int64_t ttfb_ms;     /* until the first response byte, -1 if none */
    int64_t duration_ms;
    int retry_after_s;   /* the answer's retry-after (seconds or an HTTP date) or retry-after-ms, 0 if none */
    char error[256];     /* transfer error text, for logs (never contains keys) */
} zg_upstream_out;

/* Callbacks from the transfer, on the calling thread (but see on_end). Return 0 to go on, -1 to abort (the
 * result is then ZG_UP_CLIENT_GONE). */
typedef struct zg_upstream_cb {
    /* Status and Content-Type, once, before the first body byte (or at the end for empty bodies). */
    int (*on_head)(void *ctx, int status, const char *content_type);
    /* Body bytes as they arrive. */
    int (*on_body)(void *ctx, const char *p, size_t n);
    /* The upstream has been silent for the ping interval (keep the client's connection alive). */
    int (*on_idle)(void *ctx);
    /* The client went away (r->client_gone is set): -1 ends the transfer, 0 reads on. NULL = end it. */
    int (*on_gone)(void *ctx);
    /* > 0: the answer's status line must arrive within this many ms, else the transfer ends as
     * ZG_UP_TIMEOUT with status 0 (the caller may try elsewhere: nothing was received) */
    int head_timeout_ms;
    /* Optional: the transfer may go on in the process's relay loop (zg_loop.h) once the response
     * to the client has started; zg_upstream_post then returns 1 at once, the callbacks above are
     * called on the loop thread, and on_end there when the transfer is over, with out filled. */
    void (*on_end)(void *ctx, zg_upstream_out *out);
} zg_upstream_cb;


/* POST body to url with exactly the given headers (curl adds Host and Content-Length; no Expect,
 * no compression) and stream the answer through cb. Waits at most `total_s` seconds overall and
 * `idle_s` seconds between bytes; watches r's FastCGI connection so a client that goes away is
 * noticed at once (cb->on_gone decides whether the transfer goes on). Upstream connections are kept
 * open for the next request of any thread of the process. Returns 0 when the transfer is over (out
 * says how), 1 when it goes on in the relay loop (cb->on_end): the caller must then leave r and
 * ctx alone. */
int zg_upstream_post(zg_req *r, const char *url, const struct curl_slist *headers, const char *body, size_t len,
                      int total_s, int idle_s, const zg_upstream_cb *cb, void *ctx, zg_upstream_out *out);

/* Close the upstream connections kept open for reuse (at process exit, after the last transfer). */
void zg_upstream_cleanup(void);

#endif
