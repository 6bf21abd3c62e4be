#include "zg_upstream.h"
#include "zg_fcgi.h"
#include "zg_loop.h"
#include "zg_xfer.h"
#include "zg_gate.h"
#include "zg_clock.h"
#include "zg_config.h"
#include <stdbool.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* A transfer's curl handles. The multi handle keeps the upstream connections that stay open after
 * a request; idle pairs wait in a per-process stack for the next request on any thread (worker
 * threads come and go with the load, and libcurl cannot share one connection cache between
 * threads that run transfers at once). */
struct pair {
    CURL *easy;
    CURLM *multi;
};
#define IDLE_PAIRS 64
static struct pair idle_pairs[IDLE_PAIRS];
static int nidle;
static pthread_mutex_t pairs_mu = PTHREAD_MUTEX_INITIALIZER;

static int pair_take(struct pair *p)
{
    pthread_mutex_lock(&pairs_mu);
    int got = nidle > 0;
    if (got)
        *p = idle_pairs[--nidle];
    pthread_mutex_unlock(&pairs_mu);
    if (got)
        return 0;
    p->easy = curl_easy_init();
    p->multi = curl_multi_init();
    if (p->easy && p->multi)
        return 0;
    if (p->multi)
        curl_multi_cleanup(p->multi);
    if (p->easy)
        curl_easy_cleanup(p->easy);
    return -1;
}

static void pair_give(struct pair *p)
{
    pthread_mutex_lock(&pairs_mu);
    int kept = nidle < IDLE_PAIRS;
    if (kept)
        idle_pairs[nidle++] = *p;
    pthread_mutex_unlock(&pairs_mu);
    if (!kept) {
        curl_multi_cleanup(p->multi);
        curl_easy_cleanup(p->easy);
    }
}

void zg_upstream_cleanup(void)
{
    pthread_mutex_lock(&pairs_mu);
    while (nidle > 0) {
        nidle--;
        curl_multi_cleanup(idle_pairs[nidle].multi);
        curl_easy_cleanup(idle_pairs[nidle].easy);
    }
    pthread_mutex_unlock(&pairs_mu);
}

/* Run the transfer on this thread: its own multi handle, polled with the FastCGI connection so a
 * client that goes away is noticed at once. */
static void transfer(zg_xfer *x, CURLM *multi)
{
    zg_req *r = x->r;
    const zg_upstream_cb *cb = &x->cb;
    curl_multi_add_handle(multi, x->easy);
    int ping_ms = (r->cfg ? r->cfg->ping_interval : 5) * 1000;
    int64_t last_ping = x->t0;
    int watch = r->fcgx != NULL;
    int running = 1;
    while (running) {
        CURLMcode mc = curl_multi_perform(multi, &running);
        if (mc != CURLM_OK || !running)
            break;
        struct curl_waitfd wfd = {.fd = watch ? r->fcgx->ipcFd : -1, .events = CURL_WAIT_POLLIN, .revents = 0};
        int nfds = 0;
        int gate = zg_gate_pause();
        curl_multi_poll(multi, watch ? &wfd : NULL, watch ? 1u : 0u, 250, &nfds);
        zg_gate_resume(gate);
        if (watch && wfd.revents) {
            /* the client left (or the web server sent something unexpected): stop watching; the
             * callbacks decide whether the transfer goes on without a reader */
            if (zg_fcgi_client_left(wfd.fd) && !r->client_gone) {
                r->client_gone = true;
                if (!cb->on_gone || cb->on_gone(x->ctx) != 0) {
                    x->aborted = true;
                    break;
                }
            }
            watch = 0;
        }
        int64_t t = zg_clock_ms();
        if (cb->head_timeout_ms > 0 && x->ttfb < 0 && t - x->t0 >= cb->head_timeout_ms) {
            x->timed_out_head = true;
            break;
        }
        if (t - x->last_rx >= (int64_t)x->idle_s * 1000) {
            x->timed_out_idle = true;
            break;
        }
        if (cb->on_idle && t - x->last_rx >= ping_ms && t - last_ping >= ping_ms) {
            last_ping = t;
            if (cb->on_idle(x->ctx) != 0) {
                x->aborted = true;
                break;
            }
        }
    }
    CURLcode cc = CURLE_OK;
    bool done = false;
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(multi, &left)) != NULL)
        if (m->msg == CURLMSG_DONE && m->easy_handle == x->easy) {
            cc = m->data.result;
            done = true;
        }
    curl_multi_remove_handle(multi, x->easy);
    zg_xfer_finish(x, done, cc);
}

/* Run the transfer in the relay loop; once the answer has started, let the loop finish it. 1 when
 * it did (the request is detached), 0 when the transfer is over here, -1 when the loop could not
 * take it (nothing was sent). */
static int via_loop(zg_req *r, const char *url, const struct curl_slist *headers, const char *body, size_t len,
                    int total_s, int idle_s, const zg_upstream_cb *cb, void *ctx, zg_upstream_out *out)
{
    zg_xfer *x = calloc(1, sizeof *x);
    CURL *e = x ? curl_easy_init() : NULL;
    if (!e) {
        free(x);
        return -1;
    }
    zg_xfer_setup(x, r, e, url, headers, body, len, total_s, idle_s, cb, ctx, out);
    int gate = zg_gate_pause();
    int ph = zg_loop_begin(x);
    zg_gate_resume(gate);
    if (ph < 0) {
        curl_easy_cleanup(e);
        free(x);
        return -1;
    }
    if (ph == ZG_LOOP_HEAD) {
        if (zg_xfer_head(x) != 0) {
            zg_loop_cancel(x);
        } else if (r->started && !r->client_gone && zg_resp_flush(r) == 0) {
            zg_loop_detach(x); /* x, r and ctx belong to the loop from here */
            return 1;
        } else {
            gate = zg_gate_pause();
            zg_loop_attach(x);
            zg_gate_resume(gate);
        }
    }
    zg_xfer_finish(x, x->ended, x->cc);
    zg_loop_release(x);
    return 0;
}

int zg_upstream_post(zg_req *r, const char *url, const struct curl_slist *headers, const char *body, size_t len,
                     int total_s, int idle_s, const zg_upstream_cb *cb, void *ctx, zg_upstream_out *out)
{
    memset(out, 0, sizeof *out);
    out->ttfb_ms = -1;
    if (cb->on_end && r->fcgx && !r->fcgx->keepConnection && zg_loop_on()) {
        int rc = via_loop(r, url, headers, body, len, total_s, idle_s, cb, ctx, out);
        if (rc >= 0)
            return rc;
    }
    struct pair pr;
    if (pair_take(&pr) != 0) {
        out->result = ZG_UP_ERROR;
        snprintf(out->error, sizeof out->error, "curl init failed");
        return 0;
    }
    zg_xfer x;
    memset(&x, 0, sizeof x);
    zg_xfer_setup(&x, r, pr.easy, url, headers, body, len, total_s, idle_s, cb, ctx, out);
    transfer(&x, pr.multi);
    pair_give(&pr);
    return 0;
}
