/* The upstream part of a metered request: pick a channel, call it, relay its answer as it arrives,
 * and fail over to another channel while nothing has reached the client (see zg_channel.h). */
#include "zg_pipeline.h"
#include "zg_config.h"
#include "zg_err.h"
#include "zg_gate.h"
#include "zg_log.h"
#include <stdio.h>
#include <string.h>
#include <strings.h>


static int relay_on(zg_call *c);

static int on_head(void *ctx, int status, const char *ctype)
{
    zg_call *c = ctx;
    zg_req *r = c->r;
    c->up_status = status;
    if (c->can_retry && zg_channel_failover_status(status)) {
        c->retry = true; /* nothing of this answer reaches the client: another channel is tried */
        return -1;
    }
    c->up_ok = status >= 200 && status < 300;
    c->is_sse = strncasecmp(ctype, "text/event-stream", 17) == 0;
    zg_resp_status(r, status > 0 ? status : 502);
    zg_resp_header(r, "Content-Type", *ctype ? ctype : "application/json");
    if (c->is_sse) {
        zg_resp_header(r, "Cache-Control", "no-cache");
        zg_resp_header(r, "X-Accel-Buffering", "no");
    }
    if (!c->up_ok)
        zg_resp_header(r, "x-should-retry", status == 429 || status >= 500 ? "true" : "false");
    /* a JSON answer is held until it is complete (see on_body), so a transfer that breaks off
     * becomes a protocol-shaped 502/504 instead of a cut body behind a 200; streams (SSE, or
     * Gemini's streamed JSON array) are relayed as they come */
    if ((c->is_sse || c->stream) && !r->client_gone)
        zg_resp_start(r);
    return relay_on(c);
}

/* Once the final usage is known, note it in the journal, so a process that dies before settling
 * bills what the upstream reported rather than the hold. */
static void note_final(zg_call *c)
{
    if (c->final_noted || !c->sf->billed || !zg_usage_final(&c->usage, c->sf->usage))
        return;
    c->final_noted = true;
    zg_meter_progress(&c->ticket, c->r->request_id, &c->usage, zg_usage_cost(&c->usage, &c->model));
}

static int on_event(void *ctx, const char *ev, size_t elen, const char *data, size_t dlen, const char *raw,
                    size_t rawlen)
{
    zg_call *c = ctx;
    c->usage.text_bytes += (int64_t)zg_usage_delta_text(c->sf->usage, data, dlen);
    zg_usage_from_event(&c->usage, c->sf->usage, ev, elen, data, dlen);
    note_final(c);
    if (c->r->client_gone || (c->sf->hide_event && c->sf->hide_event(c, ev, elen, data, dlen)))
        return 0;
    zg_resp_write(c->r, raw, rawlen); /* a failed write marks the client gone: see relay_on */
    return 0;
}

/* After each piece of the upstream's answer: go on relaying, or, once the client has left, go on
 * reading (relaying nothing) until the final usage has arrived, so a client that leaves early pays
 * for what the model generated; then stop the transfer (-1). */
static int relay_on(zg_call *c)
{
    if (!c->r->client_gone)
        return 0;
    c->left = true;
    return zg_usage_final(&c->usage, c->sf->usage) && c->choices <= 1 ? -1 : 0;
}

static int on_body(void *ctx, const char *p, size_t n)
{
    zg_call *c = ctx;
    if (c->is_sse) {
        int rc = zg_sse_feed(&c->sse, p, n, on_event, c);
        if (rc == ZG_E_TOOBIG) {
            /* an absurd event: pass the bytes through unparsed rather than fail the stream */
            const char *raw;
            size_t len = zg_sse_pending(&c->sse, &raw);
            if (!c->r->client_gone)
                zg_resp_write(c->r, raw, len);
            zg_buf_reset(&c->sse.buf);
            c->sse.scan = c->sse.start = 0;
        } else if (rc != 0) {
            return -1;
        }
        if (!c->r->client_gone)
            zg_resp_flush(c->r);
        return relay_on(c);
    }
    if (!c->r->started && !c->r->client_gone) {
        if (zg_buf_append(&c->body_copy, p, n) == ZG_OK)
            return 0;
        /* too big to hold: relay what is held and the rest as it arrives */
        zg_resp_write(c->r, c->body_copy.data, c->body_copy.len);
    } else if (c->body_copy.len < ZG_BODY_COPY_CAP) {
        zg_buf_append(&c->body_copy, p, n); /* kept for usage parsing */
    }
    if (!c->r->client_gone && zg_resp_write(c->r, p, n) == 0 && c->stream)
        zg_resp_flush(c->r); /* a streamed JSON array (Gemini without alt=sse): each piece as it comes */
    return relay_on(c);
}

static int on_gone(void *ctx)
{
    return relay_on(ctx);
}

/* Send a held JSON answer once the upstream transfer completed. */
static void release_body(zg_call *c)
{
    zg_req *r = c->r;
    if (c->is_sse || r->started || r->client_gone)
        return;
    char len[32];
    snprintf(len, sizeof len, "%zu", c->body_copy.len);
    zg_resp_header(r, "Content-Length", len);
    if (zg_resp_write(r, c->body_copy.data ? c->body_copy.data : "", c->body_copy.len) == 0)
        zg_resp_flush(r);
}

static int on_idle(void *ctx)
{
    zg_call *c = ctx;
    if (!c->is_sse || !c->r->started || c->r->client_gone)
        return 0;
    /* an SSE comment: ignored by clients, keeps proxies and the client's idle timers alive */
    if (zg_resp_write(c->r, ": ping\n\n", 8) == 0)
        zg_resp_flush(c->r);
    return relay_on(c);
}

/* The end of a stream that broke: tell the client in the protocol's own terms. */
static void stream_error(zg_call *c, zg_errkind kind, const char *msg)
{
    if (c->r->client_gone)
        return;
    if (!c->r->started) {
        zg_buf_reset(&c->r->headers); /* drop the upstream's content type held for a JSON answer */
        zg_err_reply(c->r, kind, "%s", msg);
        return;
    }
    if (c->is_sse)
        zg_err_reply(c->r, kind, "%s", msg); /* written as an error event */
    else
        zg_resp_abort(c->r); /* a cut JSON body must not look complete */
}

/* Make the call ready for another attempt (nothing of the last one reached the client); the
 * response headers go back to what admission set (keep: their length then). */
static void attempt_reset(zg_call *c, size_t keep)
{
    curl_slist_free_all(c->headers);
    c->headers = NULL;
    c->url[0] = '\0';
    c->send_body = NULL;
    c->send_len = 0;
    zg_buf_reset(&c->rewritten);
    zg_buf_reset(&c->body_copy);
    zg_sse_free(&c->sse);
    zg_sse_init(&c->sse, ZG_SSE_EVENT_CAP);
    memset(&c->usage, 0, sizeof c->usage);
    c->is_sse = c->up_ok = c->retry = false;
    c->up_status = 0;
    zg_buf_truncate(&c->r->headers, keep);
}

/* The breaker's view of an attempt that ended with `up`. */
static int outcome_of(const zg_call *c, const zg_upstream_out *up)
{
    return zg_channel_outcome(c->up_status,
                              up->result == ZG_UP_CONNECT || (up->result == ZG_UP_TIMEOUT && !c->up_status));
}

/* The breaker learns how an attempt ended. True when another channel is to be tried: nothing of
 * this attempt reached the client. */
static bool attempt_over(zg_call *c, zg_upstream_out *up, int *last_status, int *last_retry_after)
{
    zg_req *r = c->r;
    if (c->retry)
        up->result = ZG_UP_OK; /* an answer was read (and kept from the client) */
    int outcome = outcome_of(c, up);
    char why[300];
    if (c->up_status)
        snprintf(why, sizeof why, "HTTP %d", c->up_status);
    else
        snprintf(why, sizeof why, "%s", up->error);
    zg_channel_result(&c->route, r->cfg, &c->chan, outcome, up->retry_after_s, why);
    bool untouched = !r->started && !r->client_gone;
    bool again = c->retry || (untouched && c->can_retry &&
                              (up->result == ZG_UP_CONNECT || (up->result == ZG_UP_TIMEOUT && !c->up_status)));
    if (!again)
        return false;
    zg_info("request %s: channel %s failed (%s); trying another", r->request_id, c->chan.name, why);
    *last_status = c->up_status;
    *last_retry_after = up->retry_after_s;
    return true;
}

/* The last attempt is over: what the client still needs to hear. */
static void answer_end(zg_call *c, const zg_upstream_out *up)
{
    if (up->result != ZG_UP_OK)
        zg_info("request %s: upstream %s (channel %s): %s", c->r->request_id,
                zg_provider_name((zg_provider)c->provider), c->chan.name, up->error);
    switch (up->result) {
    case ZG_UP_OK:
        release_body(c);
        if (c->is_sse && c->up_ok && !c->usage.finished)
            stream_error(c, ZG_ERR_UPSTREAM, "The upstream stream ended before it was complete");
        break;
    case ZG_UP_CONNECT:
        stream_error(c, ZG_ERR_UPSTREAM, "The upstream provider could not be reached");
        break;
    case ZG_UP_TIMEOUT:
        stream_error(c, ZG_ERR_TIMEOUT, "The upstream provider did not answer in time");
        break;
    case ZG_UP_CLIENT_GONE:
        break;
    default:
        stream_error(c, ZG_ERR_UPSTREAM, "The upstream connection failed before the answer was complete");
    }
}

/* On the relay loop's thread: the stream it took over has ended. */
static void on_end(void *ctx, zg_upstream_out *up)
{
    zg_call *c = ctx;
    int last_status, last_retry_after;
    attempt_over(c, up, &last_status, &last_retry_after); /* never again: the client has the head */
    answer_end(c, up);
    zg_channel_end(&c->route);
    c->finish(c);
}

int zg_relay_run(zg_call *c, zg_upstream_out *up)
{
    zg_req *r = c->r;
    const zg_settings *cfg = r->cfg;
    memset(up, 0, sizeof *up);
    up->ttfb_ms = -1;
    zg_channel_begin(&c->route, c->provider, c->model.id, c->adm.who.plan_rank, c->key_hash);
    int last_status = 0, last_retry_after = 0;
    size_t admitted_headers = r->headers.len; /* x-ratelimit-*: on every answer */
    for (;;) {
        int got = zg_channel_next(&c->route, cfg, &c->chan);
        if (got == -3) {
            /* every channel left is at its cap: wait in line, without holding a CPU slot */
            int gate = zg_gate_pause();
            got = zg_channel_next_wait(&c->route, cfg, &c->chan);
            zg_gate_resume(gate);
        }
        if (got == -2 && !c->attempts) {
            up->result = ZG_UP_CONNECT;
            snprintf(up->error, sizeof up->error, "every channel at its cap for %d s", cfg->queue_timeout_s);
            zg_resp_header(r, "retry-after", "5");
            zg_resp_header(r, "x-should-retry", "true");
            zg_err_reply(r, ZG_ERR_RATE, "Every upstream channel for %s is at capacity (waited %d s); nothing was "
                         "billed; retry shortly", c->model.id, cfg->queue_timeout_s);
            break;
        }
        if (got != 0) {
            if (!c->attempts) {
                up->result = ZG_UP_CONNECT;
                snprintf(up->error, sizeof up->error, "no channel can take the request");
                zg_resp_header(r, "retry-after", "5");
                zg_err_reply(r, ZG_ERR_UNAVAILABLE, "No upstream channel for %s can take the request now (all busy "
                             "or cooling down); nothing was billed; retry shortly", c->model.id);
            } else {
                /* every channel tried failed before answering the client: one error for them all */
                char ra[16];
                snprintf(ra, sizeof ra, "%d", last_retry_after > 0 ? last_retry_after : cfg->cooldown_s);
                zg_resp_header(r, "retry-after", ra);
                zg_resp_header(r, "x-should-retry", "true");
                zg_err_reply(r, ZG_ERR_UNAVAILABLE, "Every upstream channel for %s failed (last: %s); retry in %s s",
                             c->model.id, last_status ? "an HTTP error" : "no answer", ra);
                c->up_status = last_status;
                c->up_ok = false;
            }
            break;
        }
        c->attempts++;
        c->pc = &c->chan.conf;
        attempt_reset(c, admitted_headers);
        c->can_retry = zg_channel_may_retry(&c->route, cfg, c->attempts);
        memset(up, 0, sizeof *up);
        up->ttfb_ms = -1;
        if (c->sf->prepare(c) != 0 || !c->send_body) {
            /* this channel has no address for this surface (or the body could not be built) */
            zg_channel_end(&c->route);
            c->attempts--;
            if (c->route.ntried < ZG_CHANNEL_MAX_TRIED)
                continue;
            zg_err_reply(r, ZG_ERR_INTERNAL, "Could not build the upstream request");
            up->result = ZG_UP_CONNECT;
            break;
        }
        zg_upstream_cb cb = {on_head, on_body, on_idle, on_gone, c->can_retry && c->stream ? cfg->head_timeout_ms : 0,
                             c->finish && c->stream ? on_end : NULL};
        if (zg_upstream_post(r, c->url, c->headers, c->send_body, c->send_len,
                             c->total_timeout ? c->total_timeout : cfg->total_timeout,
                             c->idle_timeout ? c->idle_timeout : cfg->idle_timeout, &cb, c, up) == 1)
            return 1; /* the relay loop goes on with it (on_end) */
        if (attempt_over(c, up, &last_status, &last_retry_after))
            continue;
        answer_end(c, up);
        break;
    }
    zg_channel_end(&c->route);
    return 0;
}
