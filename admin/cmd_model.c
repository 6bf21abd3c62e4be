/* zenn-admin model: list, set, alias, unalias. */
#include "admin.h"

static const char SQL_MODEL_EXISTS[] = "SELECT COUNT(*) FROM models WHERE id = ?";

/* ============================================================================ models */

static const char SQL_MODEL_LIST[] =
    "SELECT m.id, m.display_name, m.provider, m.kind, m.status, m.min_plan, m.price_input, m.price_output,"
    " m.price_cache_read, m.price_cache_write_5m, m.price_cache_write_1h, m.price_unit, m.created_unix,"
    " m.sort_order, (SELECT GROUP_CONCAT(a.alias ORDER BY a.alias SEPARATOR ',') FROM model_aliases a"
    " WHERE a.model_id = m.id) FROM models m ORDER BY m.sort_order, m.id";

int cmd_model_list(app *a, const args *g)
{
    static const col cols[] = {
        {0, C_STR, "id", "ID", NULL},          {1, C_STR, "display_name", NULL, NULL},
        {4, C_STR, "status", "STATUS", NULL},   {2, C_STR, "provider", "PROVIDER", NULL},
        {3, C_STR, "kind", "KIND", NULL},       {5, C_STR, "min_plan", "PLAN", NULL},
        {6, C_PRICE, NULL, "INPUT", NULL},      {7, C_PRICE, NULL, "OUTPUT", NULL},
        {8, C_PRICE, NULL, "C.READ", NULL},     {9, C_PRICE, NULL, "C.W5M", NULL},
        {10, C_PRICE, NULL, "C.W1H", NULL},     {11, C_PRICE, NULL, "IMAGE", NULL},
        {14, C_STR, NULL, "ALIASES", NULL},     {12, C_INT, "created_unix", NULL, NULL},
        {13, C_INT, "sort_order", NULL, NULL},
    };
    static const char *const price_keys[] = {"input", "output", "cache_read", "cache_write_5m", "cache_write_1h",
                                             "per_image"};
    if (!app_db(a, g))
        return RC_FAIL;
    rowset m;
    if (query(a, SQL_MODEL_LIST, NULL, 0, &m, NULL) != 0)
        return db_fail(a, g, "listing models");
    if (!opt(g, "json")) {
        rows_table(&m, cols, 15, "");
        printf("Prices in USD per million tokens (= credits per token); IMAGE in USD per image"
               " (x 1,000,000 = credits).\n");
        rs_free(&m);
        return RC_OK;
    }
    json_object *arr = rows_json(&m, cols, 15);
    for (size_t i = 0; i < m.n; i++) {
        json_object *o = json_object_array_get_idx(arr, i), *prices = json_object_new_object();
        for (int c = 0; c < 6; c++) {
            json_object *pr = NULL;
            if (rs_str(&m, i, 6 + c)) {
                int64_t v = rs_i64(&m, i, 6 + c);
                pr = json_object_new_object();
                json_object_object_add(pr, c == 5 ? "usd" : "usd_per_mtok", j_usd(v));
                json_object_object_add(pr, c == 5 ? "credits" : "credits_per_mtok", json_object_new_int64(v));
            }
            json_object_object_add(prices, price_keys[c], pr);
        }
        json_object_object_add(o, "prices", prices);
        json_object *aliases = json_object_new_array();
        for (const char *p = rs_str(&m, i, 14); p && *p;) {
            size_t l = strcspn(p, ",");
            json_object_array_add(aliases, json_object_new_string_len(p, (int)l));
            p += l + (p[l] == ',');
        }
        json_object_object_add(o, "aliases", aliases);
    }
    j_print(arr);
    rs_free(&m);
    return RC_OK;
}

static const char SQL_MODEL_UPDATE[] =
    "UPDATE models SET status = COALESCE(?, status), min_plan = COALESCE(?, min_plan),"
    " display_name = COALESCE(?, display_name), provider = COALESCE(?, provider), kind = COALESCE(?, kind),"
    " price_input = IF(?, ?, price_input), price_output = IF(?, ?, price_output),"
    " price_cache_read = IF(?, ?, price_cache_read), price_cache_write_5m = IF(?, ?, price_cache_write_5m),"
    " price_cache_write_1h = IF(?, ?, price_cache_write_1h), price_unit = IF(?, ?, price_unit) WHERE id = ?";
static const char SQL_MODEL_TIER[] =
    "UPDATE models SET context_window = IF(?, ?, context_window), expand_input = IF(?, ?, expand_input),"
    " long_threshold = IF(?, ?, long_threshold), long_input = IF(?, ?, long_input),"
    " long_output = IF(?, ?, long_output), long_cache_read = IF(?, ?, long_cache_read) WHERE id = ?";
static const char SQL_MODEL_INSERT[] =
    "INSERT INTO models (id, status, min_plan, display_name, provider, kind, price_input, price_output,"
    " price_cache_read, price_cache_write_5m, price_cache_write_1h, price_unit, created_unix, sort_order)"
    " SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, UNIX_TIMESTAMP(), COALESCE(MAX(sort_order), 0) + 1 FROM models";
static const char SQL_MODEL_CHECK[] =
    "SELECT status, kind, provider, price_input IS NULL OR price_output IS NULL, price_unit IS NULL"
    " FROM models WHERE id = ?";

int cmd_model_set(app *a, const args *g)
{
    static const char *const price_opts[6] = {"input", "output", "cache-read", "cache-write-5m", "cache-write-1h",
                                              "per-image"};
    const char *id = g->pos[0];
    const char *status = opt(g, "status"), *plan_s = opt(g, "min-plan"), *display = opt(g, "display-name");
    const char *provider = opt(g, "provider"), *kind = opt(g, "kind");
    if (!valid_ident(id, 64, MODEL_ID_CHARS))
        return bad_usage(g, "bad model id '%s' (1 to 64 of A-Z a-z 0-9 %s)", id, MODEL_ID_CHARS);
    if (status && strcmp(status, "live") != 0 && strcmp(status, "coming_soon") != 0)
        return bad_usage(g, "bad --status '%s' (expected live or coming_soon)", status);
    const char *plan = NULL;
    if (plan_s) {
        int rank = zg_plan_parse(plan_s);
        if (rank < 0)
            return bad_usage(g, "bad --min-plan '%s' (expected pro, max or enterprise)", plan_s);
        plan = zg_plan_name(rank);
    }
    if (display && !valid_text(display, 128))
        return bad_usage(g, "bad --display-name (1 to 128 bytes, no control characters)");
    if (provider && !valid_ident(provider, 32, "_-"))
        return bad_usage(g, "bad --provider '%s' (1 to 32 of A-Z a-z 0-9 _ -)", provider);
    if (kind && strcmp(kind, "chat") != 0 && strcmp(kind, "image") != 0 && strcmp(kind, "video") != 0 &&
        strcmp(kind, "audio") != 0)
        return bad_usage(g, "bad --kind '%s' (expected chat, image, video or audio)", kind);
    bool given[6] = {false};
    int64_t price[6] = {0};
    bool any = status || plan || display || provider || kind;
    for (int i = 0; i < 6; i++) {
        const char *v = opt(g, price_opts[i]);
        if (!v)
            continue;
        given[i] = any = true;
        price[i] = -1; /* none: SQL NULL */
        if (strcmp(v, "none") == 0)
            continue;
        bool ok = i == 5 ? zg_parse_i64z(v, 0, INT64_MAX / 2, &price[i]) == 0 : parse_usd(v, &price[i]);
        if (!ok)
            return bad_usage(g, "bad --%s '%s' (expected %s, or 'none')", price_opts[i], v,
                             i == 5 ? "whole credits per image" : "USD per million tokens like 3 or 0.075");
    }
    /* context and long-context tier: token counts, then USD per million tokens */
    static const char *const tier_opts[6] = {"context", "expand-input", "long-threshold", "long-input",
                                             "long-output", "long-cache-read"};
    bool tgiven[6] = {false};
    int64_t tier[6] = {0};
    for (int i = 0; i < 6; i++) {
        const char *v = opt(g, tier_opts[i]);
        if (!v)
            continue;
        tgiven[i] = any = true;
        tier[i] = -1;
        if (strcmp(v, "none") == 0)
            continue;
        bool ok = i < 3 ? zg_parse_i64z(v, 1, (int64_t)1 << 40, &tier[i]) == 0 : parse_usd(v, &tier[i]);
        if (!ok)
            return bad_usage(g, "bad --%s '%s' (expected %s, or 'none')", tier_opts[i], v,
                             i < 3 ? "a whole number of tokens" : "USD per million tokens like 6 or 0.6");
    }
    if (!any)
        return bad_usage(g, "nothing to change: give at least one option");
    if (!app_db(a, g))
        return RC_FAIL;
    int64_t exists = 0;
    zg_val pid[] = {ZG_STR(id)};
    if (query_i64(a, SQL_MODEL_EXISTS, pid, 1, 0, &exists) != 0)
        return db_fail(a, g, "looking up the model");
    zg_val pv[6];
    for (int i = 0; i < 6; i++)
        pv[i] = given[i] && price[i] >= 0 ? ZG_INT(price[i]) : ZG_NULLV;
#define SV(s) ((s) ? ZG_STR(s) : ZG_NULLV)
    int64_t changed = 0;
    if (exists) {
        zg_val p[18] = {SV(status), SV(plan), SV(display), SV(provider), SV(kind)};
        for (int i = 0; i < 6; i++) {
            p[5 + 2 * i] = ZG_INT(given[i]);
            p[6 + 2 * i] = pv[i];
        }
        p[17] = ZG_STR(id);
        if (query(a, SQL_MODEL_UPDATE, p, 18, NULL, &changed) != 0)
            return db_fail(a, g, "updating the model");
        printf("model %s %s\n", id, changed ? "updated" : "unchanged");
    } else {
        if (!provider || !display)
            return fail(g, "no model '%s' (to create it, give --provider and --display-name)", id);
        const char *st = status ? status : "coming_soon";
        zg_val p[12] = {ZG_STR(id), ZG_STR(st), ZG_STR(plan ? plan : "pro"), ZG_STR(display), ZG_STR(provider),
                        ZG_STR(kind ? kind : "chat")};
        for (int i = 0; i < 6; i++)
            p[6 + i] = pv[i];
        if (query(a, SQL_MODEL_INSERT, p, 12, NULL, NULL) != 0) {
            if (zg_db_errno(a->db) == 1062)
                return fail(g, "model '%s' was created concurrently; run the command again", id);
            return db_fail(a, g, "creating the model");
        }
        printf("model %s created (%s)\n", id, st);
    }
#undef SV
    bool tier_any = false;
    zg_val pt[13];
    for (int i = 0; i < 6; i++) {
        tier_any = tier_any || tgiven[i];
        pt[2 * i] = ZG_INT(tgiven[i]);
        pt[2 * i + 1] = tgiven[i] && tier[i] >= 0 ? ZG_INT(tier[i]) : ZG_NULLV;
    }
    pt[12] = ZG_STR(id);
    if (tier_any && query(a, SQL_MODEL_TIER, pt, 13, NULL, NULL) != 0)
        return db_fail(a, g, "updating the model's context and long-context tier");
    rowset c;
    if (query(a, SQL_MODEL_CHECK, pid, 1, &c, NULL) == 0 && c.n == 1 && strcmp(rs_str(&c, 0, 0), "live") == 0) {
        const char *k = rs_str(&c, 0, 1), *prov = rs_str(&c, 0, 2);
        if (strcmp(k, "chat") == 0 && rs_i64(&c, 0, 3))
            fprintf(stderr, "zenn-admin: warning: live chat model %s has no input or output price\n", id);
        if (strcmp(k, "image") == 0 && rs_i64(&c, 0, 4))
            fprintf(stderr, "zenn-admin: warning: live image model %s has no --per-image price\n", id);
        if (zg_provider_parse(prov) < 0)
            fprintf(stderr, "zenn-admin: warning: live model %s names provider '%s', which the gateway cannot reach\n",
                    id, prov);
    }
    rs_free(&c);
    return RC_OK;
}

static const char SQL_ALIAS_TARGET[] = "SELECT model_id FROM model_aliases WHERE alias = ?";
static const char SQL_ALIAS_SET[] =
    "INSERT INTO model_aliases (alias, model_id) VALUES (?, ?) ON DUPLICATE KEY UPDATE model_id = VALUES(model_id)";
static const char SQL_ALIAS_DEL[] = "DELETE FROM model_aliases WHERE alias = ?";

int cmd_model_alias(app *a, const args *g)
{
    const char *alias = g->pos[0], *id = g->pos[1];
    if (!valid_ident(alias, 128, ALIAS_CHARS) || strncmp(alias, "models/", 7) == 0)
        return bad_usage(g, "bad alias '%s' (1 to 128 of A-Z a-z 0-9 %s, not starting with models/)", alias,
                         ALIAS_CHARS);
    if (!valid_ident(id, 64, MODEL_ID_CHARS))
        return bad_usage(g, "bad model id '%s'", id);
    if (!app_db(a, g))
        return RC_FAIL;
    int64_t n = 0;
    zg_val pa[] = {ZG_STR(alias)}, pm[] = {ZG_STR(id)};
    if (query_i64(a, SQL_MODEL_EXISTS, pm, 1, 0, &n) != 0)
        return db_fail(a, g, "looking up the model");
    if (n == 0)
        return fail(g, "no model '%s' (see 'zenn-admin model list')", id);
    if (query_i64(a, SQL_MODEL_EXISTS, pa, 1, 0, &n) != 0)
        return db_fail(a, g, "looking up the alias");
    if (n)
        return fail(g, "'%s' is a model id; an alias cannot shadow it", alias);
    rowset old;
    if (query(a, SQL_ALIAS_TARGET, pa, 1, &old, NULL) != 0)
        return db_fail(a, g, "looking up the alias");
    zg_val p[] = {ZG_STR(alias), ZG_STR(id)};
    int rc = RC_OK;
    if (query(a, SQL_ALIAS_SET, p, 2, NULL, NULL) != 0)
        rc = db_fail(a, g, "setting the alias");
    else if (old.n == 0)
        printf("alias %s -> %s created\n", alias, id);
    else if (strcmp(rs_str(&old, 0, 0), id) == 0)
        printf("alias %s -> %s unchanged\n", alias, id);
    else
        printf("alias %s -> %s (was %s)\n", alias, id, rs_str(&old, 0, 0));
    rs_free(&old);
    return rc;
}

int cmd_model_unalias(app *a, const args *g)
{
    const char *alias = g->pos[0];
    if (!valid_ident(alias, 128, ALIAS_CHARS))
        return bad_usage(g, "bad alias '%s'", alias);
    if (!app_db(a, g))
        return RC_FAIL;
    zg_val p[] = {ZG_STR(alias)};
    int64_t n = 0;
    if (query(a, SQL_ALIAS_DEL, p, 1, NULL, &n) != 0)
        return db_fail(a, g, "removing the alias");
    if (n == 0)
        return fail(g, "no alias '%s'", alias);
    printf("alias %s removed\n", alias);
    return RC_OK;
}
