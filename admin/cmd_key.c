/* zenn-admin key: create, list, revoke, limit. */
#include "admin.h"

/* ============================================================================ keys */

int cmd_key_create(app *a, const args *g)
{
    const char *email = g->pos[0], *name = opt(g, "name"), *lim = opt(g, "limit-usd");
    if (name && !valid_text(name, ZG_KEY_NAME_MAX))
        return bad_usage(g, "bad --name (1 to 100 bytes, no control characters)");
    int64_t limit = -1;
    if (lim && !parse_usd(lim, &limit))
        return bad_usage(g, "bad --limit-usd '%s' (expected a decimal like 5 or 2.50, at most 6 decimals)", lim);
    if (!app_db(a, g))
        return RC_FAIL;
    int64_t uid;
    int rc = find_user(a, g, email, &uid);
    if (rc != RC_OK)
        return rc;
    char key[ZG_KEY_LEN + 1], prefix[ZG_KEY_PREFIX_LEN + 1];
    int64_t id = 0;
    int k = zg_keys_create(a->db, uid, name ? name : "", limit, 0, key, prefix, &id);
    rc = k == 0 ? RC_OK : RC_FAIL;
    if (k == -1)
        db_fail(a, g, "storing the key");
    else if (k == -2)
        fail(g, "could not draw an unused key (the random number generator failed or every prefix drawn was taken)");
    if (rc == RC_OK) {
        printf("%s\n", key);
        fflush(stdout);
        fprintf(stderr, "key %s\xe2\x80\xa6 created for %s (shown once; store it now)\n", prefix, email);
    }
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

static const char SQL_KEY_LIST[] = "SELECT prefix, name, " ZG_KEY_STATUS_SQL ","
                                   " spend_limit, spent, held, created_at, last_used_at, revoked_at, kind, expires_at"
                                   " FROM api_keys WHERE user_id = ? ORDER BY id";

int cmd_key_list(app *a, const args *g)
{
    static const col cols[] = {
        {0, C_STR, "prefix", "PREFIX", NULL},
        {1, C_STR, "name", "NAME", NULL},
        {2, C_STR, "status", "STATUS", NULL},
        {3, C_USD, "limit_usd", "LIMIT USD", "none"},
        {3, C_INT, "limit_credits", NULL, NULL},
        {4, C_USD, "spent_usd", "SPENT USD", NULL},
        {4, C_INT, "spent_credits", NULL, NULL},
        {5, C_INT, "held_credits", NULL, NULL},
        {6, C_TIME, "created_at", "CREATED", NULL},
        {7, C_TIME, "last_used_at", "LAST USED", "never"},
        {8, C_TIME, "revoked_at", NULL, NULL},
        {9, C_STR, "kind", "KIND", NULL},
        {10, C_TIME, "expires_at", "EXPIRES", "never"},
    };
    const char *email = g->pos[0];
    if (!app_db(a, g))
        return RC_FAIL;
    int64_t uid;
    int rc = find_user(a, g, email, &uid);
    if (rc != RC_OK)
        return rc;
    zg_val p[] = {ZG_INT(uid)};
    rowset r;
    if (query(a, SQL_KEY_LIST, p, 1, &r, NULL) != 0)
        return db_fail(a, g, "listing keys");
    if (opt(g, "json"))
        j_print(rows_json(&r, cols, 13));
    else
        rows_table(&r, cols, 13, "");
    rs_free(&r);
    return RC_OK;
}

int cmd_key_revoke(app *a, const args *g)
{
    const char *prefix = g->pos[0];
    int rc = check_prefix(g, prefix);
    if (rc != RC_OK)
        return rc;
    if (!app_db(a, g))
        return RC_FAIL;
    rowset k;
    rc = find_key(a, g, prefix, &k);
    if (rc != RC_OK)
        return rc;
    int n = zg_keys_revoke(a->db, rs_i64(&k, 0, 0), 0);
    if (n < 0)
        rc = db_fail(a, g, "revoking the key");
    else if (n == 0)
        rc = fail(g, "key %s is already revoked (since %s)", prefix,
                  rs_str(&k, 0, 2) ? rs_str(&k, 0, 2) : "an unknown time");
    else
        printf("revoked key %s of %s\n", prefix, rs_str(&k, 0, 3));
    rs_free(&k);
    return rc;
}

int cmd_key_limit(app *a, const args *g)
{
    const char *prefix = g->pos[0], *lim = g->pos[1];
    int64_t limit = -1;
    int rc = check_prefix(g, prefix);
    if (rc != RC_OK)
        return rc;
    if (strcmp(lim, "none") != 0 && !parse_usd(lim, &limit))
        return bad_usage(g, "bad limit '%s' (expected USD like 5 or 2.50, or 'none')", lim);
    if (!app_db(a, g))
        return RC_FAIL;
    rowset k;
    rc = find_key(a, g, prefix, &k);
    if (rc != RC_OK)
        return rc;
    if (zg_keys_set_limit(a->db, rs_i64(&k, 0, 0), 0, limit) < 0) {
        rs_free(&k);
        return db_fail(a, g, "setting the limit");
    }
    numbuf b1, b2;
    if (limit < 0)
        printf("key %s: no spend limit\n", prefix);
    else
        printf("key %s: spend limit %s USD (%" PRId64 " credits)\n", prefix, fmt_usd(limit, b1), limit);
    int64_t spent = rs_i64(&k, 0, 5);
    if (limit >= 0 && spent >= limit)
        fprintf(stderr, "zenn-admin: note: key %s has already spent %s USD; its requests will be refused\n", prefix,
                fmt_usd(spent, b2));
    if (strcmp(rs_str(&k, 0, 1), "active") != 0)
        fprintf(stderr, "zenn-admin: note: key %s is revoked\n", prefix);
    rs_free(&k);
    return RC_OK;
}
