#include "zg_req.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

void zg_resp_status(zg_req *r, int status)
{
    if (!r->started)
        r->status = status;
}

static bool header_safe(const char *s)
{
    for (; *s; s++)
        if (*s == '\r' || *s == '\n' || *s == '\0')
            return false;
    return true;
}

int zg_resp_header(zg_req *r, const char *name, const char *value)
{
    if (r->started || !header_safe(name) || !header_safe(value))
        return -1;
    if (zg_buf_puts(&r->headers, name) || zg_buf_puts(&r->headers, ": ") ||
        zg_buf_puts(&r->headers, value) || zg_buf_puts(&r->headers, "\r\n"))
        return -1;
    return 0;
}

void zg_resp_ratelimit(zg_req *r, int64_t limit, int64_t remaining, int64_t reset_unix)
{
    r->rl_limit = limit;
    r->rl_remaining = remaining < 0 ? 0 : remaining;
    r->rl_reset = reset_unix;
    r->rl_set = true;
}

static int put(zg_req *r, const void *p, size_t n)
{
    if (r->client_gone)
        return -1;
    if (r->sink) {
        if (r->sink->put(r->sink_ctx, p, n) == 0)
            return 0;
        r->client_gone = true;
        return -1;
    }
    if (n && FCGX_PutStr(p, (int)n, r->fcgx->out) != (int)n) {
        r->client_gone = true;
        return -1;
    }
    return 0;
}

int zg_resp_start(zg_req *r)
{
    if (r->started)
        return r->client_gone ? -1 : 0;
    r->started = true;
    char head[512];
    int n = snprintf(head, sizeof head, "Status: %d\r\nrequest-id: %s\r\n", r->status, r->request_id);
    if (r->rl_set)
        n += snprintf(head + n, sizeof head - (size_t)n,
                      "x-ratelimit-limit: %lld\r\nx-ratelimit-remaining: %lld\r\nx-ratelimit-reset: %lld\r\n",
                      (long long)r->rl_limit, (long long)r->rl_remaining, (long long)r->rl_reset);
    if (put(r, head, (size_t)n) || put(r, r->headers.data ? r->headers.data : "", r->headers.len) ||
        put(r, "\r\n", 2))
        return -1;
    return 0;
}

int zg_resp_write(zg_req *r, const void *p, size_t n)
{
    if (zg_resp_start(r))
        return -1;
    return put(r, p, n);
}

int zg_resp_flush(zg_req *r)
{
    if (zg_resp_start(r))
        return -1;
    if (r->sink ? r->sink->flush(r->sink_ctx) != 0 : FCGX_FFlush(r->fcgx->out) != 0) {
        r->client_gone = true;
        return -1;
    }
    return 0;
}

void zg_resp_abort(zg_req *r)
{
    if (r->sink) {
        r->sink->abort(r->sink_ctx);
        r->client_gone = true;
        return;
    }
    if (!r->fcgx)
        return;
    if (r->started && !r->client_gone)
        FCGX_FFlush(r->fcgx->out);
    shutdown(r->fcgx->ipcFd, SHUT_RDWR);
    r->client_gone = true;
}

int zg_resp_json(zg_req *r, int status, const char *json, size_t n)
{
    zg_resp_status(r, status);
    zg_resp_header(r, "Content-Type", "application/json");
    char len[32];
    snprintf(len, sizeof len, "%zu", n);
    zg_resp_header(r, "Content-Length", len);
    if (zg_resp_write(r, json, n))
        return -1;
    return 0;
}
