#include "zg_models.h"
#include "zg_catalog.h"
#include "zg_err.h"
#include "zg_log.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int load_catalog(zg_req *r, zg_model **list, size_t *n)
{
    if (zg_catalog_refresh(r->db) != 0 || zg_catalog_list(list, n) != 0) {
        zg_err_reply(r, ZG_ERR_UNAVAILABLE, "The model catalog is temporarily unavailable; retry shortly");
        return -1;
    }
    return 0;
}

static int shown(const zg_model *m, zg_list_filter f)
{
    int chat = strcmp(m->kind, "chat") == 0;
    switch (f) {
    case ZG_LIST_OPENAI:
        return chat && (strcmp(m->provider, "openai") == 0 || strcmp(m->provider, "deepseek") == 0 ||
                        strcmp(m->provider, "moonshot") == 0 || strcmp(m->provider, "zhipu") == 0);
    case ZG_LIST_GEMINI:
        return chat && strcmp(m->provider, "gemini") == 0;
    case ZG_LIST_IMAGES:
        return !chat;
    default:
        return 1;
    }
}

static void price(zg_buf *b, const char *name, int64_t v, int *first)
{
    if (v < 0)
        return;
    zg_buf_printf(b, "%s\"%s\":%lld", *first ? "" : ",", name, (long long)v);
    *first = 0;
}

static void entry(zg_buf *b, const zg_model *m)
{
    char iso[32];
    time_t t = (time_t)m->created;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
    zg_buf_puts(b, "{\"id\":\"");
    zg_buf_json_str(b, m->id, strlen(m->id));
    zg_buf_puts(b, "\",\"object\":\"model\",\"type\":\"model\",\"display_name\":\"");
    zg_buf_json_str(b, m->display_name, strlen(m->display_name));
    zg_buf_printf(b, "\",\"created\":%lld,\"created_at\":\"%s\",\"owned_by\":\"%s\",\"provider\":\"%s\","
                     "\"kind\":\"%s\",\"status\":\"%s\",\"min_plan\":\"%s\",\"pricing\":{",
                  (long long)m->created, iso, m->provider, m->provider, m->kind,
                  m->status == ZG_MODEL_LIVE ? "live" : "coming_soon", zg_plan_name(m->min_plan));
    int first = 1;
    if (strcmp(m->kind, "chat") == 0) {
        zg_buf_puts(b, "\"unit\":\"credits_per_million_tokens\"");
        first = 0;
        price(b, "input", m->price_input, &first);
        price(b, "output", m->price_output, &first);
        price(b, "cache_read", m->price_cache_read, &first);
        price(b, "cache_write_5m", m->price_cache_write_5m, &first);
        price(b, "cache_write_1h", m->price_cache_write_1h, &first);
    } else if (m->price_unit >= 0) {
        zg_buf_printf(b, "\"unit\":\"credits_per_image\",\"per_image\":%lld", (long long)m->price_unit);
    }
    zg_buf_puts(b, "}");
    if (m->context_window > 0)
        zg_buf_printf(b, ",\"context_window\":%lld", (long long)m->context_window);
    if (m->long_threshold > 0) {
        /* above the threshold (input of all kinds) the whole request is priced at these */
        zg_buf_printf(b, ",\"long_context\":{\"threshold\":%lld", (long long)m->long_threshold);
        first = 0;
        price(b, "input", m->long_input, &first);
        price(b, "output", m->long_output, &first);
        price(b, "cache_read", m->long_cache_read, &first);
        zg_buf_puts(b, "}");
    }
    zg_buf_puts(b, "}");
}

static int send(zg_req *r, zg_buf *b)
{
    int rc;
    if (b->len == b->cap)
        rc = zg_err_reply(r, ZG_ERR_INTERNAL, "model list too large");
    else
        rc = zg_resp_json(r, 200, zg_buf_cstr(b), b->len);
    zg_buf_free(b);
    return rc;
}

int zg_models_reply_list(zg_req *r, zg_list_filter filter)
{
    zg_model *list;
    size_t n;
    if (load_catalog(r, &list, &n) != 0)
        return 0;
    zg_buf b;
    zg_buf_init(&b, 1 << 20);
    zg_buf_puts(&b, "{\"object\":\"list\",\"data\":[");
    const char *first = NULL, *last = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!shown(&list[i], filter))
            continue;
        if (first)
            zg_buf_putc(&b, ',');
        else
            first = list[i].id;
        last = list[i].id;
        entry(&b, &list[i]);
    }
    zg_buf_puts(&b, "],\"has_more\":false,\"first_id\":");
    if (first)
        zg_buf_printf(&b, "\"%s\",\"last_id\":\"%s\"}", first, last);
    else
        zg_buf_puts(&b, "null,\"last_id\":null}");
    free(list);
    return send(r, &b);
}

int zg_models_reply_one(zg_req *r, const char *name)
{
    zg_model *list;
    size_t n;
    if (load_catalog(r, &list, &n) != 0)
        return 0;
    free(list);
    zg_model m;
    if (zg_catalog_find(name, strlen(name), &m) != 0)
        return zg_err_reply(r, ZG_ERR_MODEL_NOT_FOUND, "Unknown model '%s'; GET /api/v1/models lists them", name);
    zg_buf b;
    zg_buf_init(&b, 1 << 16);
    entry(&b, &m);
    return send(r, &b);
}

static void gemini_entry(zg_buf *b, const zg_model *m)
{
    zg_buf_puts(b, "{\"name\":\"models/");
    zg_buf_json_str(b, m->id, strlen(m->id));
    zg_buf_puts(b, "\",\"baseModelId\":\"");
    zg_buf_json_str(b, m->id, strlen(m->id));
    zg_buf_puts(b, "\",\"version\":\"001\",\"displayName\":\"");
    zg_buf_json_str(b, m->display_name, strlen(m->display_name));
    zg_buf_puts(b, "\",\"description\":\"");
    zg_buf_json_str(b, m->display_name, strlen(m->display_name));
    zg_buf_printf(b, " via zenn-gateway\",\"inputTokenLimit\":1048576,\"outputTokenLimit\":65536,"
                     "\"supportedGenerationMethods\":[\"generateContent\",\"streamGenerateContent\","
                     "\"countTokens\"],\"thinking\":true,\"status\":\"%s\"}",
                  m->status == ZG_MODEL_LIVE ? "live" : "coming_soon");
}

int zg_models_reply_gemini_list(zg_req *r)
{
    zg_model *list;
    size_t n;
    if (load_catalog(r, &list, &n) != 0)
        return 0;
    zg_buf b;
    zg_buf_init(&b, 1 << 20);
    zg_buf_puts(&b, "{\"models\":[");
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        if (!shown(&list[i], ZG_LIST_GEMINI))
            continue;
        if (any)
            zg_buf_putc(&b, ',');
        any = 1;
        gemini_entry(&b, &list[i]);
    }
    zg_buf_puts(&b, "]}");
    free(list);
    return send(r, &b);
}

int zg_models_reply_gemini_one(zg_req *r, const char *name)
{
    zg_model *list;
    size_t n;
    if (load_catalog(r, &list, &n) != 0)
        return 0;
    free(list);
    zg_model m;
    if (zg_catalog_find(name, strlen(name), &m) != 0 || !shown(&m, ZG_LIST_GEMINI))
        return zg_err_reply(r, ZG_ERR_MODEL_NOT_FOUND,
                            "models/%s is not found; GET /api/v1/gemini/v1beta/models lists them", name);
    zg_buf b;
    zg_buf_init(&b, 1 << 16);
    gemini_entry(&b, &m);
    return send(r, &b);
}
