/* One upstream transfer's curl handle: its options, the answer's headers (content type,
 * retry-after, the providers' rate-limit headers) and how the transfer ended. */
#include "zg_xfer.h"
#include "zg_clock.h"
#include "zg_config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* A header's value (trimmed) if the line is "name: value", else NULL; *vl its length. */
static const char *header_value(const char *p, size_t len, const char *name, size_t *vl)
{
    size_t nl = strlen(name);
    if (len <= nl || strncasecmp(p, name, nl) != 0 || p[nl] != ':')
        return NULL;
    const char *v = p + nl + 1;
    size_t n = len - nl - 1;
    while (n && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
        n--;
    *vl = n;
    return v;
}

/* retry-after: delay-seconds or an HTTP date; retry-after-ms: milliseconds. */
static void note_retry_after(zg_xfer *x, const char *p, size_t len)
{
    size_t vl;
    char buf[64];
    const char *v = header_value(p, len, "retry-after", &vl);
    int ms = 0;
    if (!v) {
        v = header_value(p, len, "retry-after-ms", &vl);
        ms = 1;
    }
    if (!v || !vl || vl >= sizeof buf)
        return;
    memcpy(buf, v, vl);
    buf[vl] = '\0';
    char *end;
    long n = strtol(buf, &end, 10);
    int64_t s = -1;
    if (end != buf && (*end == '\0' || *end == '.'))
        s = ms ? (n + 999) / 1000 : n;
    else if (!ms) {
        time_t t = curl_getdate(buf, NULL);
        if (t > 0)
            s = (int64_t)(t - time(NULL));
    }
    if (s > 0 && x->out)
        x->out->retry_after_s = s > 86400 ? 86400 : (int)s;
}

/* A duration as OpenAI writes it ("1s", "6m0s", "20ms", "1h2m3.5s") in whole seconds, rounded up;
 * -1 if it is not one. */
static int parse_duration(const char *v, size_t n)
{
    double total = 0;
    size_t i = 0;
    if (!n)
        return -1;
    while (i < n) {
        char num[32];
        size_t k = 0;
        while (i < n && k < sizeof num - 1 && ((v[i] >= '0' && v[i] <= '9') || v[i] == '.'))
            num[k++] = v[i++];
        num[k] = '\0';
        if (!k || i == n)
            return -1;
        double d = strtod(num, NULL), unit;
        if (i + 1 < n && v[i] == 'm' && v[i + 1] == 's')
            unit = 0.001, i += 2;
        else if (v[i] == 'h')
            unit = 3600, i++;
        else if (v[i] == 'm')
            unit = 60, i++;
        else if (v[i] == 's')
            unit = 1, i++;
        else
            return -1;
        total += d * unit;
        if (total > 86400)
            return 86400;
    }
    int s = (int)total;
    return s < total ? s + 1 : s;
}

/* An RFC 3339 time ("2026-11-27T10:00:30Z", as Anthropic writes it) as seconds from now; -1 if it
 * is not one. */
static int parse_reset_time(const char *v, size_t n)
{
    char buf[40];
    struct tm tm;
    if (n < 19 || n >= sizeof buf)
        return -1;
    memcpy(buf, v, n);
    buf[n] = '\0';
    memset(&tm, 0, sizeof tm);
    if (sscanf(buf, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
               &tm.tm_sec) != 6)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    int64_t d = (int64_t)timegm(&tm) - (int64_t)time(NULL);
    return d < 0 ? 0 : d > 86400 ? 86400 : (int)d + 1;
}

/* The providers' rate-limit headers: which limit (requests, tokens, input, output tokens), and
 * whether the value is the reset (Anthropic: an RFC 3339 time; OpenAI: a duration) or what is left. */
static const struct {
    const char *name;
    int kind;
    bool reset, rfc3339;
} rl_headers[] = {
    {"anthropic-ratelimit-requests-remaining", 0, false, true},
    {"anthropic-ratelimit-requests-reset", 0, true, true},
    {"anthropic-ratelimit-tokens-remaining", 1, false, true},
    {"anthropic-ratelimit-tokens-reset", 1, true, true},
    {"anthropic-ratelimit-input-tokens-remaining", 2, false, true},
    {"anthropic-ratelimit-input-tokens-reset", 2, true, true},
    {"anthropic-ratelimit-output-tokens-remaining", 3, false, true},
    {"anthropic-ratelimit-output-tokens-reset", 3, true, true},
    {"x-ratelimit-remaining-requests", 0, false, false},
    {"x-ratelimit-reset-requests", 0, true, false},
    {"x-ratelimit-remaining-tokens", 1, false, false},
    {"x-ratelimit-reset-tokens", 1, true, false},
};

static void note_rate_limit(zg_xfer *x, const char *p, size_t len)
{
    size_t vl;
    for (size_t i = 0; i < sizeof rl_headers / sizeof rl_headers[0]; i++) {
        const char *v = header_value(p, len, rl_headers[i].name, &vl);
        if (!v)
            continue;
        int k = rl_headers[i].kind;
        if (!rl_headers[i].reset)
            x->rl_empty[k] = vl == 1 && v[0] == '0';
        else
            x->rl_reset_s[k] = rl_headers[i].rfc3339 ? parse_reset_time(v, vl) : parse_duration(v, vl);
        return;
    }
}

/* For a 429 without retry-after: how long until the limit that ran out resets (the latest of
 * those reported empty, else the soonest reported), 0 if the headers do not say. */
static int rate_limit_wait(const zg_xfer *x)
{
    int empty = -1, soonest = -1;
    for (int k = 0; k < 4; k++) {
        int r = x->rl_reset_s[k];
        if (r < 0)
            continue;
        if (x->rl_empty[k] && r > empty)
            empty = r;
        if (soonest < 0 || r < soonest)
            soonest = r;
    }
    int w = empty >= 0 ? empty : soonest;
    return w > 0 ? w : 0;
}

int zg_xfer_head(zg_xfer *x)
{
    if (x->head_sent)
        return 0;
    x->head_sent = 1;
    long code = x->status; /* read by the relay loop, which owns the handle */
    if (!code)
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    return x->cb.on_head(x->ctx, (int)code, x->content_type);
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    zg_xfer *x = ud;
    size_t len = size * n;
    x->last_rx = zg_clock_ms();
    if (x->ttfb < 0)
        x->ttfb = x->last_rx - x->t0;
    size_t vl;
    const char *v = header_value(p, len, "content-type", &vl);
    if (v) {
        if (vl >= sizeof x->content_type)
            vl = sizeof x->content_type - 1;
        memcpy(x->content_type, v, vl);
        x->content_type[vl] = '\0';
    } else if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        x->content_type[0] = '\0'; /* a new response (after 100 Continue) */
        if (x->out)
            x->out->retry_after_s = 0;
        /* the rate-limit headers matter only to a 429 (rate_limit_wait): others skip them */
        const char *sp = memchr(p, ' ', len);
        x->too_many = sp && (size_t)(p + len - sp) > 4 && memcmp(sp + 1, "429", 3) == 0;
        memset(x->rl_reset_s, 0xff, sizeof x->rl_reset_s);
        memset(x->rl_empty, 0, sizeof x->rl_empty);
    } else if (len > 11 && (p[0] == 'r' || p[0] == 'R')) {
        note_retry_after(x, p, len);
    } else if (x->too_many && len > 18 && (p[0] == 'a' || p[0] == 'A' || p[0] == 'x' || p[0] == 'X')) {
        note_rate_limit(x, p, len);
    }
    return len;
}

size_t zg_xfer_write(char *p, size_t size, size_t n, void *ud)
{
    zg_xfer *x = ud;
    size_t len = size * n;
    x->last_rx = zg_clock_ms();
    if (zg_xfer_head(x) != 0 || x->cb.on_body(x->ctx, p, len) != 0) {
        x->aborted = true;
        return CURL_WRITEFUNC_ERROR;
    }
    return len;
}

void zg_xfer_setup(zg_xfer *x, zg_req *r, CURL *e, const char *url, const struct curl_slist *headers,
                   const char *body, size_t len, int total_s, int idle_s, const zg_upstream_cb *cb, void *ctx,
                   zg_upstream_out *out)
{
    const zg_settings *cfg = r->cfg;
    x->r = r;
    x->cb = *cb;
    x->ctx = ctx;
    x->easy = e;
    x->out = out;
    x->t0 = x->last_rx = zg_clock_ms();
    x->ttfb = -1;
    x->idle_s = idle_s;
    memset(x->rl_reset_s, 0xff, sizeof x->rl_reset_s); /* -1: no reset reported */
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)(cfg ? cfg->connect_timeout : 10));
    curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)total_s);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, zg_xfer_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 16384L); /* per stream: small for thousands of them */
}

void zg_xfer_finish(zg_xfer *x, bool done, CURLcode cc)
{
    zg_upstream_out *out = x->out;
    long code = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    out->status = (int)code;
    if (code == 429 && !out->retry_after_s)
        out->retry_after_s = rate_limit_wait(x);
    out->ttfb_ms = x->ttfb;
    out->duration_ms = zg_clock_ms() - x->t0;
    if (x->aborted) {
        out->result = ZG_UP_CLIENT_GONE;
        snprintf(out->error, sizeof out->error, "client went away");
        return;
    }
    if (x->timed_out_head) {
        out->result = ZG_UP_TIMEOUT;
        out->status = 0;
        snprintf(out->error, sizeof out->error, "no answer within %d ms", x->cb.head_timeout_ms);
        return;
    }
    if (x->timed_out_idle) {
        out->result = ZG_UP_TIMEOUT;
        snprintf(out->error, sizeof out->error, "upstream idle for %d s", x->idle_s);
        return;
    }
    if (!done) {
        out->result = ZG_UP_ERROR;
        snprintf(out->error, sizeof out->error, "transfer did not complete");
        return;
    }
    switch (cc) {
    case CURLE_OK:
        out->result = ZG_UP_OK;
        if (zg_xfer_head(x) != 0)
            out->result = ZG_UP_CLIENT_GONE;
        return;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
        out->result = code ? ZG_UP_DROPPED : ZG_UP_CONNECT;
        break;
    case CURLE_OPERATION_TIMEDOUT:
        out->result = ZG_UP_TIMEOUT;
        break;
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_HTTP2_STREAM:
        out->result = ZG_UP_DROPPED;
        break;
    default:
        out->result = ZG_UP_ERROR;
    }
    snprintf(out->error, sizeof out->error, "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc));
}
