/* zenn-admin topup, balance, usage, reap and spool replay. */
#include "admin.h"

/* ============================================================================ money */

static const char SQL_TOPUP[] = "CALL zg_topup(?, ?, ?, ?, ?, ?)";

int cmd_topup(app *a, const args *g)
{
    const char *email = g->pos[0], *plan_s = g->pos[1], *usd_s = g->pos[2];
    int plan = zg_plan_parse(plan_s);
    if (plan < 0)
        return bad_usage(g, "unknown plan '%s' (expected pro, max or enterprise)", plan_s);
    int64_t usd;
    if (!parse_usd(usd_s, &usd) || usd <= 0)
        return bad_usage(g, "bad USD amount '%s' (expected a positive decimal like 20 or 12.50, at most 6 decimals)",
                         usd_s);
    if (!app_db(a, g))
        return RC_FAIL;
    int64_t uid;
    int rc = find_user(a, g, email, &uid);
    if (rc != RC_OK)
        return rc;
    int mult = zg_plan_multiplier(plan);
    const char *plan_name = zg_plan_name(plan);
    /* the reference makes the grant safe to repeat: the same reference grants once */
    char ref[65];
    const char *ref_opt = opt(g, "ref");
    if (ref_opt) {
        if (!valid_ident(ref_opt, 64, "_-.:/#"))
            return bad_usage(g, "bad --ref '%s' (1 to 64 of A-Z a-z 0-9 _ - . : / #)", ref_opt);
        snprintf(ref, sizeof ref, "%s", ref_opt);
    } else if (zg_auth_random_id("admin-", ref, sizeof ref) != 0) {
        return fail(g, "no random bytes for a top-up reference");
    }
    zg_val p[] = {ZG_INT(uid), ZG_STR(plan_name), ZG_INT(usd), ZG_INT(mult), ZG_STR(ref),
                  ZG_STR(a->settings.invoice_prefix)};
    rowset r;
    if (query(a, SQL_TOPUP, p, 6, &r, NULL) != 0) {
        fprintf(stderr, "zenn-admin: the outcome is unknown: run the same command with --ref %s again, it grants "
                        "at most once\n", ref);
        return db_fail(a, g, "granting the top-up");
    }
    if (r.n == 0 || r.ncols < 5) {
        rs_free(&r);
        return fail(g, "zg_topup returned no result");
    }
    numbuf b1, b2;
    if (rs_i64(&r, 0, 0) == 1)
        printf("already granted: reference %s is lot #%" PRId64 " (%" PRId64 " credits); nothing added\n", ref,
               rs_i64(&r, 0, 1), rs_i64(&r, 0, 2));
    else
        printf("granted %" PRId64 " credits to %s (%s plan: %s USD x%d, lot #%" PRId64 ", reference %s)\n",
               rs_i64(&r, 0, 2), email, plan_name, fmt_usd(usd, b1), mult, rs_i64(&r, 0, 1), ref);
    printf("balance: %" PRId64 " credits (%s USD at list price)\n", rs_i64(&r, 0, 3), fmt_usd(rs_i64(&r, 0, 3), b2));
    const char *receipt = rs_str(&r, 0, 4);
    if (receipt)
        printf("receipt: %s\n", receipt);
    rs_free(&r);
    return RC_OK;
}

static const char SQL_BALANCE[] = "SELECT balance, held, zg_plan_rank(id) FROM users WHERE id = ?";
static const char SQL_LOTS[] = "SELECT id, plan, multiplier, credits_granted, credits_remaining, usd_micros, created_at"
                               " FROM topups WHERE user_id = ? ORDER BY id";

int cmd_balance(app *a, const args *g)
{
    static const col lot_cols[] = {
        {0, C_INT, NULL, "LOT", NULL},
        {1, C_STR, "plan", "PLAN", NULL},
        {2, C_INT, "multiplier", "MULT", NULL},
        {3, C_INT, "credits_granted", "GRANTED", NULL},
        {4, C_INT, "credits_remaining", "REMAINING", NULL},
        {5, C_USD, "usd", "PAID USD", NULL},
        {6, C_TIME, NULL, "CREATED", NULL},
    };
    const char *email = g->pos[0];
    if (!app_db(a, g))
        return RC_FAIL;
    int64_t uid;
    int rc = find_user(a, g, email, &uid);
    if (rc != RC_OK)
        return rc;
    zg_val p[] = {ZG_INT(uid)};
    rowset u, lots;
    if (query(a, SQL_BALANCE, p, 1, &u, NULL) != 0)
        return db_fail(a, g, "reading the balance");
    if (query(a, SQL_LOTS, p, 1, &lots, NULL) != 0) {
        rs_free(&u);
        return db_fail(a, g, "reading the top-ups");
    }
    int64_t credits = rs_i64(&u, 0, 0), held = rs_i64(&u, 0, 1);
    const char *plan = zg_plan_name((int)rs_i64(&u, 0, 2));
    if (opt(g, "json")) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "email", json_object_new_string(email));
        json_object_object_add(o, "credits", json_object_new_int64(credits));
        json_object_object_add(o, "held", json_object_new_int64(held));
        json_object_object_add(o, "plan", json_object_new_string(plan));
        json_object_object_add(o, "lots", rows_json(&lots, lot_cols, 7));
        j_print(o);
    } else {
        numbuf b1, b2, b3;
        printf("user:       %s\nplan:       %s\n", email, plan);
        printf("credits:    %" PRId64 " (%s USD at list price)\n", credits, fmt_usd(credits, b1));
        printf("held:       %" PRId64 " (%s USD, reserved by requests in flight)\n", held, fmt_usd(held, b2));
        printf("available:  %" PRId64 " (%s USD)\n", credits - held, fmt_usd(credits - held, b3));
        printf("top-ups:%s\n", lots.n ? "" : "    none");
        if (lots.n)
            rows_table(&lots, lot_cols, 7, "  ");
    }
    rs_free(&u);
    rs_free(&lots);
    return RC_OK;
}

static const char SQL_USAGE[] =
    "SELECT * FROM (SELECT request_id, created_at, model, surface, provider, status, end_reason, credits,"
    " cash_micros, input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens,"
    " reasoning_tokens, units, estimated, upstream_status, ttfb_ms, duration_ms, id"
    " FROM usage_log WHERE user_id = ? AND created_at >= ? ORDER BY created_at DESC, id DESC LIMIT ?) t"
    " ORDER BY created_at, id";

int cmd_usage(app *a, const args *g)
{
    static const col cols[] = {
        {1, C_TIME, NULL, "CREATED", NULL},
        {0, C_STR, "request_id", "REQUEST", NULL},
        {1, C_STR, "created_at", NULL, NULL},
        {2, C_STR, "model", "MODEL", NULL},
        {3, C_STR, "surface", NULL, NULL},
        {4, C_STR, "provider", NULL, NULL},
        {5, C_STR, "status", "STATUS", NULL},
        {6, C_STR, "end_reason", "END", NULL},
        {7, C_INT, "credits", "CREDITS", NULL},
        {8, C_INT, "cash_micros", NULL, NULL},
        {8, C_USD, NULL, "CASH USD", NULL},
        {9, C_INT, "input_tokens", "IN", NULL},
        {10, C_INT, "output_tokens", "OUT", NULL},
        {11, C_INT, "cache_read_tokens", "CACHE-R", NULL},
        {12, C_INT, "cache_write_5m_tokens", NULL, NULL},
        {13, C_INT, "cache_write_1h_tokens", NULL, NULL},
        {14, C_INT, "reasoning_tokens", NULL, NULL},
        {15, C_INT, "units", NULL, NULL},
        {16, C_BOOL, "estimated", "EST", NULL},
        {17, C_INT, "upstream_status", NULL, NULL},
        {18, C_INT, "ttfb_ms", NULL, NULL},
        {19, C_INT, "duration_ms", NULL, NULL},
    };
    const int ncols = (int)(sizeof cols / sizeof cols[0]);
    const char *email = g->pos[0];
    char since[20] = "1000-01-01 00:00:00";
    const char *s = opt(g, "since");
    if (s && !parse_since(s, since))
        return bad_usage(g, "bad --since '%s' (expected YYYY-MM-DD or 'YYYY-MM-DD HH:MM:SS')", s);
    int64_t limit = 100;
    if ((s = opt(g, "limit")) && zg_parse_i64z(s, 1, 1000000, &limit) != 0)
        return bad_usage(g, "bad --limit '%s' (expected 1 to 1000000)", s);
    if (!app_db(a, g))
        return RC_FAIL;
    int64_t uid;
    int rc = find_user(a, g, email, &uid);
    if (rc != RC_OK)
        return rc;
    zg_val p[] = {ZG_INT(uid), ZG_STR(since), ZG_INT(limit)};
    rowset r;
    if (query(a, SQL_USAGE, p, 3, &r, NULL) != 0)
        return db_fail(a, g, "reading usage");
    if (opt(g, "json")) {
        j_print(rows_json(&r, cols, ncols));
    } else {
        rows_table(&r, cols, ncols, "");
        int64_t credits = 0, cash = 0;
        for (size_t i = 0; i < r.n; i++) {
            credits += rs_i64(&r, i, 7);
            cash += rs_i64(&r, i, 8);
        }
        numbuf b1, b2;
        printf("%zu request%s: %" PRId64 " credits (%s USD at list price), %s USD of top-up money\n", r.n,
               r.n == 1 ? "" : "s", credits, fmt_usd(credits, b1), fmt_usd(cash, b2));
    }
    rs_free(&r);
    return RC_OK;
}

/* ============================================================================ reap */

#define REAP_BATCH 500 /* the LIMIT below */
static const char SQL_REAP_FIND[] = "SELECT request_id, hold_credits FROM usage_log WHERE status = 'pending'"
                                    " AND created_at < NOW(3) - INTERVAL ? SECOND ORDER BY id LIMIT 500";
/* A request whose worker died is charged the hold placed before its upstream call, flagged estimated. */
static const char SQL_REAP_SETTLE[] =
    "CALL zg_settle(?, 'abandoned', 'abandoned', ?, 0, 0, 0, 0, 0, 0, 0, 1, NULL, NULL, NULL, NULL, 1)";

/* Apply the settlements spooled while the database was unreachable. 0, or -1 (reported). */
static int replay_spool(app *a, const args *g, bool verbose)
{
    struct stat st;
    long long left = 0;
    int n = 0;
    /* a program may be replaying it right now (it holds the spool's lock): wait for it, up to 30 s */
    for (int tries = 0; tries < 60; tries++) {
        int k = zg_billing_replay_spool(a->db, &a->settings);
        if (k < 0) {
            fail(g, "cannot replay the spool %s: %s", a->settings.spool_path, zg_db_error(a->db));
            return -1;
        }
        n += k;
        left = stat(a->settings.spool_path, &st) == 0 ? (long long)st.st_size : 0;
        if (left == 0 || k > 0 || zg_db_errno(a->db) != 0) /* done, or the database refused */
            break;
        struct timespec ts = {0, 500 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (verbose || n > 0)
        printf("spool %s: replayed %d settlement(s)%s\n", a->settings.spool_path, n,
               left > 0 ? "; some remain (database errors, see the log)" : "");
    return left > 0 ? -1 : 0;
}

int cmd_spool_replay(app *a, const args *g)
{
    if (!app_db(a, g))
        return RC_FAIL;
    return replay_spool(a, g, true) == 0 ? RC_OK : RC_FAIL;
}

int cmd_reap(app *a, const args *g)
{
    const char *s = opt(g, "older-than");
    int64_t older = -1;
    if (s && zg_parse_i64z(s, 0, 10 * 365 * 86400LL, &older) != 0)
        return bad_usage(g, "bad --older-than '%s' (expected whole seconds)", s);
    if (!app_db(a, g))
        return RC_FAIL;
    /* spooled settlements first: reaping would charge those requests their hold instead */
    if (replay_spool(a, g, false) != 0)
        return fail(g, "settlements are still spooled; not reaping until they are applied");
    if (older < 0)
        older = a->settings.reap_after;
    int64_t reaped = 0, charged = 0;
    for (;;) {
        rowset r;
        zg_val p[] = {ZG_INT(older)};
        if (query(a, SQL_REAP_FIND, p, 1, &r, NULL) != 0)
            return db_fail(a, g, "finding pending requests");
        int64_t settled_now = 0;
        for (size_t i = 0; i < r.n; i++) {
            zg_val q[] = {ZG_STR(rs_str(&r, i, 0)), ZG_INT(rs_i64(&r, i, 1))};
            int64_t res = -1;
            if (query_i64(a, SQL_REAP_SETTLE, q, 2, -1, &res) != 0) {
                rs_free(&r);
                printf("reaped %" PRId64 " request(s) before the error\n", reaped);
                return db_fail(a, g, "settling an abandoned request");
            }
            if (res == 0) { /* 1: settled meanwhile by its worker */
                settled_now++;
                charged += rs_i64(&r, i, 1);
            }
        }
        size_t got = r.n;
        rs_free(&r);
        reaped += settled_now;
        if (got < REAP_BATCH || settled_now == 0)
            break;
    }
    numbuf b;
    printf("reaped %" PRId64 " request(s) pending for more than %" PRId64 "s; charged %" PRId64
           " credits of holds (%s USD at list price)\n",
           reaped, older, charged, fmt_usd(charged, b));
    return RC_OK;
}
