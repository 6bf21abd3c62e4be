#include "zg_err.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct errdef {
    int status;
    const char *anthropic; /* error.type */
    const char *openai;    /* error.type */
    const char *oai_code;  /* error.code, NULL for null */
    const char *gemini;    /* error.status */
};

static const struct errdef defs[ZG_ERR_COUNT] = {
    [ZG_ERR_INVALID] = {400, "invalid_request_error", "invalid_request_error", NULL, "INVALID_ARGUMENT"},
    [ZG_ERR_AUTH] = {401, "authentication_error", "invalid_request_error", "invalid_api_key", "UNAUTHENTICATED"},
    [ZG_ERR_BALANCE] = {402, "billing_error", "insufficient_quota", "insufficient_quota", "RESOURCE_EXHAUSTED"},
    [ZG_ERR_KEY_LIMIT] = {402, "billing_error", "insufficient_quota", "key_spend_limit_reached",
                          "RESOURCE_EXHAUSTED"},
    [ZG_ERR_PLAN] = {403, "permission_error", "invalid_request_error", "model_not_available", "PERMISSION_DENIED"},
    [ZG_ERR_NOT_FOUND] = {404, "not_found_error", "invalid_request_error", "not_found", "NOT_FOUND"},
    [ZG_ERR_MODEL_NOT_FOUND] = {404, "not_found_error", "invalid_request_error", "model_not_found", "NOT_FOUND"},
    [ZG_ERR_METHOD] = {405, "invalid_request_error", "invalid_request_error", "method_not_allowed",
                       "INVALID_ARGUMENT"},
    [ZG_ERR_TOO_LARGE] = {413, "request_too_large", "invalid_request_error", "request_too_large",
                          "INVALID_ARGUMENT"},
    [ZG_ERR_UPGRADE] = {426, "invalid_request_error", "invalid_request_error", "upgrade_required",
                        "FAILED_PRECONDITION"},
    [ZG_ERR_RATE] = {429, "rate_limit_error", "rate_limit_error", "rate_limit_exceeded", "RESOURCE_EXHAUSTED"},
    [ZG_ERR_INTERNAL] = {500, "api_error", "server_error", "internal_error", "INTERNAL"},
    [ZG_ERR_NOT_IMPLEMENTED] = {501, "api_error", "server_error", "not_implemented", "UNIMPLEMENTED"},
    [ZG_ERR_UPSTREAM] = {502, "api_error", "server_error", "upstream_error", "UNAVAILABLE"},
    [ZG_ERR_COMING_SOON] = {503, "api_error", "server_error", "model_coming_soon", "UNAVAILABLE"},
    [ZG_ERR_UNAVAILABLE] = {503, "overloaded_error", "server_error", "service_unavailable", "UNAVAILABLE"},
    [ZG_ERR_TIMEOUT] = {504, "timeout_error", "server_error", "upstream_timeout", "DEADLINE_EXCEEDED"},
};

int zg_err_status(zg_errkind kind)
{
    return (unsigned)kind < ZG_ERR_COUNT ? defs[kind].status : 500;
}

int zg_err_body(zg_buf *out, zg_proto proto, zg_errkind kind, const char *msg)
{
    if ((unsigned)kind >= ZG_ERR_COUNT)
        kind = ZG_ERR_INTERNAL;
    const struct errdef *d = &defs[kind];
    int rc;
    switch (proto) {
    case ZG_PROTO_OPENAI:
        rc = zg_buf_puts(out, "{\"error\":{\"message\":\"");
        rc = rc ? rc : zg_buf_json_str(out, msg, strlen(msg));
        rc = rc ? rc : zg_buf_printf(out, "\",\"type\":\"%s\",\"param\":null,\"code\":", d->openai);
        if (!rc)
            rc = d->oai_code ? zg_buf_printf(out, "\"%s\"}}", d->oai_code) : zg_buf_puts(out, "null}}");
        return rc;
    case ZG_PROTO_GEMINI:
        rc = zg_buf_printf(out, "{\"error\":{\"code\":%d,\"message\":\"", d->status);
        rc = rc ? rc : zg_buf_json_str(out, msg, strlen(msg));
        return rc ? rc : zg_buf_printf(out, "\",\"status\":\"%s\"}}", d->gemini);
    case ZG_PROTO_ANTHROPIC:
    default:
        rc = zg_buf_printf(out, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":\"", d->anthropic);
        rc = rc ? rc : zg_buf_json_str(out, msg, strlen(msg));
        return rc ? rc : zg_buf_puts(out, "\"}}");
    }
}

/* Whether the caller already set retry-after (a wait of its own: the in-flight cap's 1 s). */
static bool has_retry_after(const zg_req *r)
{
    const char *h = zg_buf_cstr(&r->headers);
    for (const char *p = h; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
        if (strncasecmp(p, "retry-after:", 12) == 0)
            return true;
    return false;
}

int zg_err_reply(zg_req *r, zg_errkind kind, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    zg_buf b;
    zg_buf_init(&b, 4096);
    zg_err_body(&b, r->proto, kind, msg);
    if (r->started) {
        /* mid-stream: the status is gone; say it as the protocol's error event */
        if (r->responses_stream) {
            /* the Responses API's own error event: {"type":"error","code","message","param"} */
            const struct errdef *d = &defs[(unsigned)kind < ZG_ERR_COUNT ? kind : ZG_ERR_INTERNAL];
            zg_buf_reset(&b);
            zg_buf_printf(&b, "{\"type\":\"error\",\"code\":\"%s\",\"message\":\"",
                          d->oai_code ? d->oai_code : d->openai);
            zg_buf_json_str(&b, msg, strlen(msg));
            zg_buf_puts(&b, "\",\"param\":null}");
            zg_resp_write(r, "event: error\ndata: ", 19);
        } else if (r->proto == ZG_PROTO_ANTHROPIC) {
            zg_resp_write(r, "event: error\ndata: ", 19);
        } else {
            zg_resp_write(r, "data: ", 6);
        }
        zg_resp_write(r, b.data, b.len);
        zg_resp_write(r, "\n\n", 2);
        zg_resp_flush(r);
    } else {
        int st = zg_err_status(kind);
        if (st == 401 || st == 402 || st == 403)
            zg_resp_header(r, "x-should-retry", "false");
        if (kind == ZG_ERR_RATE && r->rl_set && !has_retry_after(r)) {
            char ra[32];
            long long wait = (long long)r->rl_reset - (long long)time(NULL);
            snprintf(ra, sizeof ra, "%lld", wait < 1 ? 1 : wait);
            zg_resp_header(r, "retry-after", ra);
        }
        zg_resp_json(r, st, b.data, b.len);
    }
    zg_buf_free(&b);
    return 0;
}
