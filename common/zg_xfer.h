#ifndef ZG_XFER_H
#define ZG_XFER_H
#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "zg_buf.h"
#include "zg_upstream.h"

/* One upstream transfer's state, shared by the two ways a transfer runs: on the calling thread
 * (zg_upstream.c) and in the process's relay loop (zg_loop.c). Internal to those modules. */
typedef struct zg_xfer {
    zg_req *r;
    zg_upstream_cb cb; /* a copy: the caller's may live on a stack that is gone */
    void *ctx;
    CURL *easy;
    zg_upstream_out *out;
    int64_t t0, last_rx, ttfb;
    int idle_s;
    char content_type[128];
    char errbuf[CURL_ERROR_SIZE];
    bool head_sent, aborted, timed_out_head, timed_out_idle;
    /* the providers' rate-limit headers: per limit (requests, tokens, input, output tokens) the
     * seconds until it resets (-1 unknown) and whether none is left */
    int rl_reset_s[4];
    bool rl_empty[4];
    bool too_many; /* the answer's status is 429 */

    /* --- relay loop (zg_loop.c) --- */
    int phase;                 /* ZG_LOOP_* (zg_loop.c) */
    int status;                /* the answer's status, read by the loop when the head arrived */
    bool ended;                /* curl finished the transfer (result in cc) */
    CURLcode cc;
    int client_fd;             /* the web server's connection */
    unsigned fd_events;        /* what epoll watches on it now */
    bool gone;                 /* the web server's connection is closed or failed */
    bool paused;               /* receiving paused: the client reads slower than the upstream sends */
    bool watch_in;             /* still watching the connection for the client leaving */
    bool abort_out;            /* cut the response (shutdown) instead of ending it */
    int64_t last_ping, closing_since;
    zg_buf outq;               /* FastCGI records not yet written */
    size_t out_off;            /* written part of outq */
    int fcgi_id;
    pthread_cond_t cond;       /* the worker waits on it for the head or the end */
    struct zg_xfer *prev, *next; /* the loop's list of transfers */
    struct zg_xfer *cmd_next;  /* the loop's command queue */
    int cmd;
} zg_xfer;

/* Set up x and its easy handle e for a POST of body to url (see zg_upstream_post). The write
 * callback is zg_xfer_write; the caller may replace it. */
void zg_xfer_setup(zg_xfer *x, zg_req *r, CURL *e, const char *url, const struct curl_slist *headers,
                   const char *body, size_t len, int total_s, int idle_s, const zg_upstream_cb *cb, void *ctx,
                   zg_upstream_out *out);

/* curl's write callback: the head (once), then the bytes, to the caller's callbacks. */
size_t zg_xfer_write(char *p, size_t size, size_t n, void *ud);

/* Deliver the head to the caller's on_head once. 0, or its -1. */
int zg_xfer_head(zg_xfer *x);

/* Fill x->out once the transfer is over: `done` when curl reported its end with `cc`. The easy
 * handle is no longer in a multi handle. */
void zg_xfer_finish(zg_xfer *x, bool done, CURLcode cc);

#endif
