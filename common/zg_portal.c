#include "zg_portal.h"
#include "zg_inspect.h"
#include "zg_num.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int zg_portal_fail(zg_req *r, int status, const char *type, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_object *err = json_object_new_object(), *o = json_object_new_object();
    json_object_object_add(err, "type", json_object_new_string(type));
    json_object_object_add(err, "message", json_object_new_string(msg));
    json_object_object_add(err, "field", field ? json_object_new_string(field) : NULL);
    json_object_object_add(o, "error", err);
    return zg_portal_reply(r, status, o);
}

int zg_portal_bad(zg_req *r, const char *field, const char *msg)
{
    return zg_portal_fail(r, 400, "invalid_request_error", field, "%s", msg);
}

int zg_portal_unavailable(zg_req *r)
{
    zg_resp_header(r, "retry-after", "5");
    return zg_portal_fail(r, 503, "service_unavailable", NULL, "the service is briefly unavailable; try again shortly");
}

int zg_portal_query(zg_req *r, zg_qparam *p, size_t n)
{
    uint32_t seen = 0;
    for (size_t i = 0; i < n; i++) {
        p[i].set = false;
        p[i].out[0] = '\0';
    }
    const char *q = r->query;
    while (q && *q) {
        size_t len = strcspn(q, "&"), nl = strcspn(q, "=&");
        size_t i = 0;
        while (i < n && !(strlen(p[i].name) == nl && memcmp(p[i].name, q, nl) == 0))
            i++;
        if (nl > 0 && i == n)
            return zg_portal_fail(r, 400, "invalid_request_error", NULL, "unknown parameter '%.*s'",
                                  (int)(nl > 40 ? 40 : nl), q) - 1;
        if (i < n && i < 32 && (seen & (1u << i)))
            return zg_portal_fail(r, 400, "invalid_request_error", p[i].name, "%s is given twice", p[i].name) - 1;
        if (i < n) {
            seen |= i < 32 ? 1u << i : 0;
            int got = zg_req_query_get(r, p[i].name, p[i].out, p[i].cap);
            if (got == ZG_E_TOOBIG)
                return zg_portal_fail(r, 400, "invalid_request_error", p[i].name, "%s is too long", p[i].name) - 1;
            p[i].set = got > 0;
            if (got <= 0)
                p[i].out[0] = '\0';
        }
        q += len;
        if (*q == '&')
            q++;
    }
    return 0;
}

json_object *zg_portal_usd_json(int64_t micros)
{
    char t[40];
    zg_fmt_usd(micros, t, sizeof t);
    return json_object_new_string(t);
}

int zg_portal_reply(zg_req *r, int status, json_object *o)
{
    zg_resp_header(r, "cache-control", "no-store");
    if (!o) {
        zg_resp_status(r, status);
        zg_resp_start(r);
        return 0;
    }
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    zg_resp_json(r, status, s, strlen(s));
    json_object_put(o);
    return 0;
}

int zg_portal_read(zg_req *r, size_t max)
{
    const char *cl = zg_req_header(r, "content-length");
    int64_t n = 0;
    int rc = cl && zg_parse_i64(cl, strlen(cl), 0, INT64_MAX, &n) == 0 && (uint64_t)n > max ? ZG_E_TOOBIG
                                                                                           : zg_req_read_body(r);
    if (rc == ZG_E_TOOBIG || (rc == ZG_OK && r->body.len > max))
        return zg_portal_fail(r, 413, "request_too_large", NULL, "the request body is larger than %zu bytes", max),
               -1;
    if (rc != ZG_OK)
        return zg_portal_bad(r, NULL, "the request body could not be read"), -1;
    return 0;
}

json_object *zg_portal_body(zg_req *r)
{
    if (zg_portal_read(r, ZG_PORTAL_BODY_MAX) != 0)
        return NULL;
    if (r->body.len == 0) {
        zg_portal_bad(r, NULL, "a JSON object is expected in the request body");
        return NULL;
    }
    struct json_tokener *tok = json_tokener_new_ex(16);
    if (!tok) {
        zg_portal_fail(r, 500, "server_error", NULL, "out of memory");
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *o = json_tokener_parse_ex(tok, r->body.data, (int)r->body.len);
    bool whole = json_tokener_get_error(tok) == json_tokener_success && tok->char_offset == (int)r->body.len;
    json_tokener_free(tok);
    char dup[64];
    if (!whole || !o) {
        zg_portal_bad(r, NULL, "the request body is not valid JSON (UTF-8)");
    } else if (!json_object_is_type(o, json_type_object)) {
        zg_portal_bad(r, NULL, "the request body must be a JSON object");
    } else if (zg_inspect_duplicate(r->body.data, r->body.len, dup, sizeof dup) != 0) {
        zg_portal_bad(r, NULL, "a member is named twice in the request body");
    } else {
        return o;
    }
    json_object_put(o);
    return NULL;
}

static bool has_controls(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return true;
    return false;
}

int zg_portal_text(zg_req *r, json_object *o, const char *name, size_t max, const char **out)
{
    json_object *v = NULL;
    *out = NULL;
    if (!json_object_object_get_ex(o, name, &v) || !v)
        return 1;
    char msg[160];
    if (!json_object_is_type(v, json_type_string)) {
        snprintf(msg, sizeof msg, "%s must be a string", name);
        zg_portal_bad(r, name, msg);
        return -1;
    }
    const char *s = json_object_get_string(v);
    size_t n = (size_t)json_object_get_string_len(v);
    if (n == 0 || n > max || strlen(s) != n || has_controls(s, n)) {
        snprintf(msg, sizeof msg, "%s must be 1 to %zu bytes of text without control characters", name, max);
        zg_portal_bad(r, name, msg);
        return -1;
    }
    *out = s;
    return 0;
}

int zg_portal_usd(zg_req *r, json_object *o, const char *name, int64_t *micros)
{
    json_object *v = NULL;
    *micros = -1;
    if (!json_object_object_get_ex(o, name, &v))
        return 1;
    if (!v)
        return 2;
    char text[48];
    if (json_object_is_type(v, json_type_string))
        snprintf(text, sizeof text, "%s", json_object_get_string(v));
    else if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double))
        snprintf(text, sizeof text, "%s", json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
    else
        text[0] = '\0';
    int64_t m;
    if (!text[0] || zg_parse_usd_micros(text, &m) != 0 || m < 0 || m > (int64_t)1000000 * 1000000) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s must be an amount in US dollars from 0 to 1,000,000 (like 5 or 2.50), or null",
                 name);
        zg_portal_bad(r, name, msg);
        return -1;
    }
    *micros = m;
    return 0;
}

bool zg_portal_email_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 3 || n > 254 || zg_utf8_check(s, n) != n)
        return false;
    const char *at = strchr(s, '@');
    if (!at || at == s || strchr(at + 1, '@') || !at[1] || !strchr(at + 1, '.') || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f || s[i] == '<' || s[i] == '>' || s[i] == '"')
            return false;
    return true;
}

bool zg_portal_same_origin(const zg_req *r)
{
    const char *origin = zg_req_header(r, "origin"), *host = zg_req_header(r, "host");
    if (origin && *origin) {
        if (!host || !*host)
            return false;
        const char *scheme = zg_portal_https(r) ? "https://" : "http://";
        size_t sl = strlen(scheme);
        return strncmp(origin, scheme, sl) == 0 && strcmp(origin + sl, host) == 0;
    }
    const char *site = zg_req_header(r, "sec-fetch-site");
    return site && strcmp(site, "same-origin") == 0;
}

bool zg_portal_https(const zg_req *r)
{
    const char *https = zg_req_param(r, "HTTPS");
    return https && (strcmp(https, "on") == 0 || strcmp(https, "1") == 0);
}

const char *zg_portal_addr(const zg_req *r)
{
    const char *a = zg_req_param(r, "REMOTE_ADDR");
    return a && *a && strlen(a) < 64 ? a : "unknown";
}
