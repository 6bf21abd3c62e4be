/* zenn-admin key: create, list, revoke, limit. */
#include "admin.h"

/* ============================================================================ keys */

static const char SQL_KEY_ADD[] =
    "INSERT INTO api_keys (user_id, key_hash, prefix, name, spend_limit) VALUES (?, ?, ?, ?, ?)";

int cmd_key_create(app *a, const args *g)
{
    const char *email = g->pos[0], *name = opt(g, "name"), *lim = opt(g, "limit-usd");
    if (name && !valid_text(name, 100))
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
    char key[ZG_KEY_LEN + 1], prefix[ZG_KEY_PREFIX_LEN + 1], hash[65];
    rc = RC_FAIL;
    for (int attempt = 0; attempt < 5; attempt++) {
        if (zg_auth_generate(key, prefix) != 0) {
            fail(g, "the random number generator failed");
            break;
        }
        zg_auth_hash(key, strlen(key), hash);
        zg_val p[] = {ZG_INT(uid), ZG_STR(hash), ZG_STR(prefix), ZG_STR(name ? name : ""),
                      limit >= 0 ? ZG_INT(limit) : ZG_NULLV};
        if (query(a, SQL_KEY_ADD, p, 5, NULL, NULL) == 0) {
            rc = RC_OK;
            break;
        }
        if (zg_db_errno(a->db) != 1062) { /* a prefix (or hash) collision: draw again */
            db_fail(a, g, "storing the key");
            break;
        }
    }
    if (rc == RC_OK) {
        printf("%s\n", key);
        fflush(stdout);
        fprintf(stderr, "key %s\xe2\x80\xa6 created for %s (shown once; store it now)\n", prefix, email);
    } else if (zg_db_errno(a->db) == 1062) {
        fail(g, "could not draw an unused key prefix");
    }
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(hash, sizeof hash);
    return rc;
}

static const char SQL_KEY_LIST[] = "SELECT prefix, name, status, spend_limit, spent, held, created_at, last_used_at,"
                                   " revoked_at FROM api_keys WHERE user_id = ? ORDER BY id";

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
        j_print(rows_json(&r, cols, 11));
    else
        rows_table(&r, cols, 11, "");
    rs_free(&r);
    return RC_OK;
}

static const char SQL_KEY_REVOKE[] =
    "UPDATE api_keys SET status = 'revoked', revoked_at = NOW(3) WHERE id = ? AND status = 'active'";

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
    zg_val p[] = {ZG_INT(rs_i64(&k, 0, 0))};
    int64_t n = 0;
    if (query(a, SQL_KEY_REVOKE, p, 1, NULL, &n) != 0)
        rc = db_fail(a, g, "revoking the key");
    else if (n == 0)
        rc = fail(g, "key %s is already revoked (since %s)", prefix,
                  rs_str(&k, 0, 2) ? rs_str(&k, 0, 2) : "an unknown time");
    else
        printf("revoked key %s of %s\n", prefix, rs_str(&k, 0, 3));
    rs_free(&k);
    return rc;
}

static const char SQL_KEY_LIMIT[] = "UPDATE api_keys SET spend_limit = ? WHERE id = ?";

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
    zg_val p[] = {limit >= 0 ? ZG_INT(limit) : ZG_NULLV, ZG_INT(rs_i64(&k, 0, 0))};
    if (query(a, SQL_KEY_LIMIT, p, 2, NULL, NULL) != 0) {
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
