/* zenn-admin channel: add, list, set, disable, enable, remove, test. */
#include "admin.h"
#include "zg_channel.h"
#include <curl/curl.h>

#define CHANNEL_NAME_CHARS "._-"

static const char SQL_CH_INSERT[] =
    "INSERT INTO channels (name, provider, base_url, anthropic_base_url, openai_base_url, api_key, priority,"
    " weight, max_concurrency, models, plans) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
static const char SQL_CH_LIST[] =
    "SELECT c.name, c.provider, c.base_url, c.api_key, c.priority, c.weight, c.max_concurrency, c.models, c.plans,"
    " c.enabled, c.disabled_reason, c.anthropic_base_url, c.openai_base_url,"
    " (SELECT GROUP_CONCAT(CONCAT(h.model, ' until ', DATE_FORMAT(h.open_until, '%H:%i:%s')) SEPARATOR ', ')"
    "    FROM channel_health h WHERE h.channel = c.name AND h.open_until > NOW(3))"
    " FROM channels c ORDER BY c.provider, c.priority DESC, c.name";
static const char SQL_CH_ONE[] =
    "SELECT provider, base_url, anthropic_base_url, openai_base_url, api_key FROM channels WHERE name = ?";
static const char SQL_CH_SET[] =
    "UPDATE channels SET base_url = COALESCE(?, base_url), anthropic_base_url = COALESCE(?, anthropic_base_url),"
    " openai_base_url = COALESCE(?, openai_base_url), api_key = COALESCE(?, api_key),"
    " priority = COALESCE(?, priority), weight = COALESCE(?, weight),"
    " max_concurrency = COALESCE(?, max_concurrency), models = COALESCE(?, models), plans = COALESCE(?, plans)"
    " WHERE name = ?";
static const char SQL_CH_ENABLE[] = "UPDATE channels SET enabled = ?, disabled_reason = ? WHERE name = ?";
static const char SQL_CH_HEALTH_CLEAR[] = "DELETE FROM channel_health WHERE channel = ?";
static const char SQL_CH_DELETE[] = "DELETE FROM channels WHERE name = ?";
static const char SQL_CH_TEST_MODEL[] =
    "SELECT id FROM models WHERE provider = ? AND kind = 'chat' AND status = 'live' ORDER BY sort_order, id LIMIT 1";

/* The options every add and set share, checked. */
struct chopts {
    const char *base, *abase, *obase, *key, *models, *plans;
    int64_t prio, weight, maxc;
    bool has_prio, has_weight, has_maxc;
};

static bool valid_url(const char *u)
{
    return (strncmp(u, "https://", 8) == 0 || strncmp(u, "http://", 7) == 0) && printable_ascii(u, 500) &&
           !strchr(u, ' ');
}

/* A cell as text, "" for SQL NULL. */
static const char *cell(const rowset *r, size_t row, int column)
{
    const char *v = rs_str(r, row, column);
    return v ? v : "";
}

static int read_opts(const args *g, struct chopts *o)
{
    memset(o, 0, sizeof *o);
    o->base = opt(g, "base-url");
    o->abase = opt(g, "anthropic-base-url");
    o->obase = opt(g, "openai-base-url");
    o->key = opt(g, "key");
    o->models = opt(g, "models");
    o->plans = opt(g, "plans");
    const char *urls[3] = {o->base, o->abase, o->obase};
    for (int i = 0; i < 3; i++)
        if (urls[i] && *urls[i] && !valid_url(urls[i]))
            return bad_usage(g, "bad URL '%s' (http:// or https://, printable, at most 500 bytes)", urls[i]);
    if (o->base && !*o->base)
        return bad_usage(g, "--base-url may not be empty");
    if (o->key && (!*o->key || !printable_ascii(o->key, 500) || strchr(o->key, ' ')))
        return bad_usage(g, "bad --key (1 to 500 printable characters, no spaces)");
    if (o->models && *o->models && !valid_ident(o->models, 2000, MODEL_ID_CHARS ","))
        return bad_usage(g, "bad --models (a comma list of model ids)");
    if (o->plans && zg_channel_plans(o->plans) < 0)
        return bad_usage(g, "bad --plans '%s' (a comma list of pro, max, enterprise)", o->plans);
    const char *p = opt(g, "priority"), *w = opt(g, "weight"), *m = opt(g, "max-concurrency");
    if ((o->has_prio = p) && zg_parse_i64z(p, -1000000, 1000000, &o->prio) != 0)
        return bad_usage(g, "bad --priority '%s' (a whole number; higher is tried first)", p);
    if ((o->has_weight = w) && zg_parse_i64z(w, 1, 1000000, &o->weight) != 0)
        return bad_usage(g, "bad --weight '%s' (1 or more)", w);
    if ((o->has_maxc = m) && zg_parse_i64z(m, 0, 1000000, &o->maxc) != 0)
        return bad_usage(g, "bad --max-concurrency '%s' (0 for no cap)", m);
    return RC_OK;
}

/* The stored channel NAME (provider, base URLs, key) into *r (rs_free it), or exit 1 saying there
 * is none. */
static int find_channel(app *a, const args *g, const char *name, rowset *r)
{
    zg_val pn[1] = {ZG_STR(name)};
    if (query(a, SQL_CH_ONE, pn, 1, r, NULL) != 0)
        return db_fail(a, g, "reading the channel");
    if (r->n != 1) {
        rs_free(r);
        return fail(g, "no channel named '%s'", name);
    }
    return RC_OK;
}

static int check_name(const args *g, const char *name)
{
    if (!valid_ident(name, 64, CHANNEL_NAME_CHARS))
        return bad_usage(g, "bad channel name '%s' (1 to 64 of A-Z a-z 0-9 . _ -)", name);
    if (zg_provider_parse(name) >= 0)
        return bad_usage(g, "'%s' is the name of the provider's channel from zenn.conf; choose another", name);
    return RC_OK;
}

int cmd_channel_add(app *a, const args *g)
{
    const char *name = g->pos[0], *prov = opt(g, "provider");
    int rc = check_name(g, name);
    if (rc != RC_OK)
        return rc;
    struct chopts o;
    if ((rc = read_opts(g, &o)) != RC_OK)
        return rc;
    if (!prov || zg_provider_parse(prov) < 0)
        return bad_usage(g, "--provider: one of anthropic, openai, gemini, deepseek, moonshot, zhipu");
    if (!o.base || !o.key)
        return bad_usage(g, "--base-url and --key are required");
    if (!app_db(a, g))
        return RC_FAIL;
    zg_val p[11] = {ZG_STR(name),
                    ZG_STR(prov),
                    ZG_STR(o.base),
                    ZG_STR(o.abase ? o.abase : ""),
                    ZG_STR(o.obase ? o.obase : ""),
                    ZG_STR(o.key),
                    ZG_INT(o.has_prio ? o.prio : 0),
                    ZG_INT(o.has_weight ? o.weight : 1),
                    ZG_INT(o.has_maxc ? o.maxc : 0),
                    ZG_STR(o.models ? o.models : ""),
                    ZG_STR(o.plans ? o.plans : "")};
    if (query(a, SQL_CH_INSERT, p, 11, NULL, NULL) != 0) {
        if (zg_db_errno(a->db) == 1062)
            return fail(g, "a channel named '%s' exists already (change it with 'channel set')", name);
        return db_fail(a, g, "adding the channel");
    }
    printf("channel %s added (%s, priority %lld, weight %lld)\n", name, prov, (long long)(o.has_prio ? o.prio : 0),
           (long long)(o.has_weight ? o.weight : 1));
    return RC_OK;
}

/* "sk-ant…1234": enough to tell keys apart, never enough to use one. */
static void mask_key(const char *k, char *out, size_t cap)
{
    size_t n = strlen(k);
    if (n < 12)
        snprintf(out, cap, "****");
    else
        snprintf(out, cap, "%.6s\xe2\x80\xa6%s", k, k + n - 4);
}

int cmd_channel_list(app *a, const args *g)
{
    if (!app_db(a, g))
        return RC_FAIL;
    rowset r;
    if (query(a, SQL_CH_LIST, NULL, 0, &r, NULL) != 0)
        return db_fail(a, g, "listing the channels");
    bool json = opt(g, "json") != NULL;
    json_object *arr = json ? json_object_new_array() : NULL;
    if (!json)
        printf("%-20s %-10s %4s %6s %5s %-8s %-14s %s\n", "NAME", "PROVIDER", "PRIO", "WEIGHT", "MAX", "STATUS",
               "KEY", "BASE URL / MODELS / PLANS / OPEN CIRCUITS");
    for (size_t i = 0; i < r.n; i++) {
        char masked[64];
        mask_key(cell(&r, i, 3), masked, sizeof masked);
        bool on = strcmp(cell(&r, i, 9), "1") == 0;
        const char *reason = cell(&r, i, 10), *open = cell(&r, i, 13);
        if (json) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "name", json_object_new_string(cell(&r, i, 0)));
            json_object_object_add(o, "provider", json_object_new_string(cell(&r, i, 1)));
            json_object_object_add(o, "base_url", json_object_new_string(cell(&r, i, 2)));
            json_object_object_add(o, "anthropic_base_url", json_object_new_string(cell(&r, i, 11)));
            json_object_object_add(o, "openai_base_url", json_object_new_string(cell(&r, i, 12)));
            json_object_object_add(o, "key", json_object_new_string(masked));
            json_object_object_add(o, "priority", json_object_new_int64(rs_i64(&r, i, 4)));
            json_object_object_add(o, "weight", json_object_new_int64(rs_i64(&r, i, 5)));
            json_object_object_add(o, "max_concurrency", json_object_new_int64(rs_i64(&r, i, 6)));
            json_object_object_add(o, "models", json_object_new_string(cell(&r, i, 7)));
            json_object_object_add(o, "plans", json_object_new_string(cell(&r, i, 8)));
            json_object_object_add(o, "enabled", json_object_new_boolean(on));
            json_object_object_add(o, "disabled_reason", *reason ? json_object_new_string(reason) : NULL);
            json_object_object_add(o, "open_circuits", *open ? json_object_new_string(open) : NULL);
            json_object_array_add(arr, o);
            continue;
        }
        printf("%-20s %-10s %4s %6s %5s %-8s %-14s %s\n", cell(&r, i, 0), cell(&r, i, 1), cell(&r, i, 4),
               cell(&r, i, 5), strcmp(cell(&r, i, 6), "0") == 0 ? "-" : cell(&r, i, 6),
               on ? "enabled" : "disabled", masked, cell(&r, i, 2));
        if (*cell(&r, i, 7) || *cell(&r, i, 8))
            printf("%-20s models: %s; plans: %s\n", "", *cell(&r, i, 7) ? cell(&r, i, 7) : "all",
                   *cell(&r, i, 8) ? cell(&r, i, 8) : "all");
        if (!on && *reason)
            printf("%-20s disabled: %s\n", "", reason);
        if (*open)
            printf("%-20s open circuits: %s\n", "", open);
    }
    if (json)
        j_print(arr);
    rs_free(&r);
    return RC_OK;
}

int cmd_channel_set(app *a, const args *g)
{
    const char *name = g->pos[0];
    struct chopts o;
    int rc = read_opts(g, &o);
    if (rc != RC_OK)
        return rc;
    if (opt(g, "provider"))
        return bad_usage(g, "a channel's provider cannot change: add a new channel");
    if (!o.base && !o.abase && !o.obase && !o.key && !o.models && !o.plans && !o.has_prio && !o.has_weight &&
        !o.has_maxc)
        return bad_usage(g, "nothing to change: give at least one option");
    if (!app_db(a, g))
        return RC_FAIL;
#define SV(s) ((s) ? ZG_STR(s) : ZG_NULLV)
    zg_val p[10] = {SV(o.base),   SV(o.abase),  SV(o.obase),
                    SV(o.key),    o.has_prio ? ZG_INT(o.prio) : ZG_NULLV,
                    o.has_weight ? ZG_INT(o.weight) : ZG_NULLV,
                    o.has_maxc ? ZG_INT(o.maxc) : ZG_NULLV,
                    SV(o.models), SV(o.plans),  ZG_STR(name)};
#undef SV
    int64_t changed = 0;
    if (query(a, SQL_CH_SET, p, 10, NULL, &changed) != 0)
        return db_fail(a, g, "changing the channel");
    rowset r;
    if ((rc = find_channel(a, g, name, &r)) != RC_OK)
        return rc;
    rs_free(&r);
    printf("channel %s %s\n", name, changed ? "updated" : "unchanged");
    return RC_OK;
}

static int set_enabled(app *a, const args *g, bool on)
{
    const char *name = g->pos[0], *reason = opt(g, "reason");
    if (reason && !valid_text(reason, 250))
        return bad_usage(g, "bad --reason (1 to 250 bytes, no control characters)");
    if (!app_db(a, g))
        return RC_FAIL;
    zg_val p[3] = {ZG_INT(on ? 1 : 0), on ? ZG_NULLV : ZG_STR(reason ? reason : "disabled by an operator"),
                   ZG_STR(name)};
    int64_t changed = 0;
    if (query(a, SQL_CH_ENABLE, p, 3, NULL, &changed) != 0)
        return db_fail(a, g, "changing the channel");
    rowset r;
    int rc = find_channel(a, g, name, &r);
    if (rc != RC_OK)
        return rc;
    rs_free(&r);
    zg_val pn[1] = {ZG_STR(name)};
    /* enabling also forgets its open circuits: the operator says it works again */
    if (on && query(a, SQL_CH_HEALTH_CLEAR, pn, 1, NULL, NULL) != 0)
        return db_fail(a, g, "clearing the channel's circuits");
    printf("channel %s %s%s\n", name, on ? "enabled" : "disabled", changed ? "" : " (it was already)");
    return RC_OK;
}

int cmd_channel_disable(app *a, const args *g)
{
    return set_enabled(a, g, false);
}

int cmd_channel_enable(app *a, const args *g)
{
    return set_enabled(a, g, true);
}

int cmd_channel_remove(app *a, const args *g)
{
    const char *name = g->pos[0];
    if (!app_db(a, g))
        return RC_FAIL;
    zg_val pn[1] = {ZG_STR(name)};
    int64_t gone = 0;
    if (query(a, SQL_CH_DELETE, pn, 1, NULL, &gone) != 0)
        return db_fail(a, g, "removing the channel");
    if (!gone)
        return fail(g, "no channel named '%s'", name);
    if (query(a, SQL_CH_HEALTH_CLEAR, pn, 1, NULL, NULL) != 0)
        return db_fail(a, g, "clearing the channel's circuits");
    printf("channel %s removed (usage rows keep its name)\n", name);
    return RC_OK;
}

static size_t sink(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

int cmd_channel_test(app *a, const args *g)
{
    const char *name = g->pos[0], *model = opt(g, "model");
    if (model && !valid_ident(model, 64, MODEL_ID_CHARS))
        return bad_usage(g, "bad --model '%s'", model);
    if (!app_db(a, g))
        return RC_FAIL;
    zg_provider_conf pc;
    memset(&pc, 0, sizeof pc);
    char prov[33] = "";
    int p = zg_provider_parse(name);
    if (p >= 0) { /* the provider's channel from zenn.conf */
        pc = a->settings.prov[p];
        snprintf(prov, sizeof prov, "%s", name);
    } else {
        rowset r;
        int rc = find_channel(a, g, name, &r);
        if (rc != RC_OK)
            return rc;
        snprintf(prov, sizeof prov, "%s", cell(&r, 0, 0));
        snprintf(pc.base_url, sizeof pc.base_url, "%s", cell(&r, 0, 1));
        snprintf(pc.anthropic_base_url, sizeof pc.anthropic_base_url, "%s", cell(&r, 0, 2));
        snprintf(pc.openai_base_url, sizeof pc.openai_base_url, "%s", cell(&r, 0, 3));
        snprintf(pc.api_key, sizeof pc.api_key, "%s", cell(&r, 0, 4));
        rs_free(&r);
        p = zg_provider_parse(prov);
    }
    char mbuf[65] = "";
    if (!model) {
        rowset r;
        zg_val pp[1] = {ZG_STR(prov)};
        if (query(a, SQL_CH_TEST_MODEL, pp, 1, &r, NULL) != 0)
            return db_fail(a, g, "choosing a model");
        if (r.n == 1)
            snprintf(mbuf, sizeof mbuf, "%s", cell(&r, 0, 0));
        rs_free(&r);
        if (!mbuf[0])
            return fail(g, "no live chat model of %s in the catalog: give --model", prov);
        model = mbuf;
    }
    /* the smallest real request the provider's API takes: one output token */
    char url[1200], body[512], auth[600];
    struct curl_slist *h = NULL;
    if (p == ZG_PROV_ANTHROPIC) {
        snprintf(url, sizeof url, "%s/v1/messages", pc.base_url);
        snprintf(body, sizeof body, "{\"model\":\"%s\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\","
                 "\"content\":\"ping\"}]}", model);
        snprintf(auth, sizeof auth, "x-api-key: %s", pc.api_key);
        h = curl_slist_append(h, "anthropic-version: 2023-06-01");
    } else if (p == ZG_PROV_GEMINI) {
        snprintf(url, sizeof url, "%s/v1beta/models/%s:generateContent", pc.base_url, model);
        snprintf(body, sizeof body, "{\"contents\":[{\"parts\":[{\"text\":\"ping\"}]}],"
                 "\"generationConfig\":{\"maxOutputTokens\":1}}");
        snprintf(auth, sizeof auth, "x-goog-api-key: %s", pc.api_key);
    } else {
        snprintf(url, sizeof url, "%s/chat/completions", pc.base_url);
        snprintf(body, sizeof body, "{\"model\":\"%s\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\","
                 "\"content\":\"ping\"}]}", model);
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", pc.api_key);
    }
    h = curl_slist_append(h, auth);
    h = curl_slist_append(h, "content-type: application/json");
    CURL *e = curl_easy_init();
    if (!e || !h)
        oom();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(e);
    long code = 0;
    double secs = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(e, CURLINFO_TOTAL_TIME, &secs);
    curl_easy_cleanup(e);
    OPENSSL_cleanse(auth, sizeof auth);
    curl_slist_free_all(h);
    if (cc != CURLE_OK) {
        printf("channel %s: %s unreachable after %.0f ms: %s\n", name, model, secs * 1000, curl_easy_strerror(cc));
        return RC_FAIL;
    }
    printf("channel %s: %s answered HTTP %ld in %.0f ms\n", name, model, code, secs * 1000);
    return code >= 200 && code < 300 ? RC_OK : RC_FAIL;
}
