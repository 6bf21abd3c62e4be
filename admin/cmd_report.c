/* zenn-admin report, db check and db purge: usage from the rollups, the rollups checked against
 * the raw rows (and repaired), and retention of raw rows. */
#include "admin.h"
#include "zg_csv.h"
#include "zg_uq.h"

/* ---- db check ---------------------------------------------------------------------------------- */

#define CHECK_SUMS                                                                                          \
    "SUM(r), SUM(e), SUM(est), SUM(i), SUM(o), SUM(cr), SUM(c5), SUM(c1), SUM(rs), SUM(un), SUM(c), SUM(cash),"   \
    " SUM(tt), SUM(tn), SUM(du), SUM(dn)"
#define CHECK_COLS                                                                                          \
    " requests r, errors e, estimated est, input_tokens i, output_tokens o, cache_read_tokens cr,"               \
    " cache_write_5m_tokens c5, cache_write_1h_tokens c1, reasoning_tokens rs, units un, credits c, cash_micros cash,"  \
    " ttfb_ms_sum tt, ttfb_n tn, duration_ms_sum du, duration_n dn"
#define CHECK_NEG                                                                                           \
    " -SUM(requests), -SUM(errors), -SUM(estimated), -SUM(input_tokens), -SUM(output_tokens),"                   \
    " -SUM(cache_read_tokens), -SUM(cache_write_5m_tokens), -SUM(cache_write_1h_tokens), -SUM(reasoning_tokens),"  \
    " -SUM(units), -SUM(credits), -SUM(cash_micros), -SUM(ttfb_ms_sum), -SUM(ttfb_n), -SUM(duration_ms_sum),"      \
    " -SUM(duration_n)"

/* Every (user, day, key, model, surface) where the rollup differs from the raw rows it sums, on
 * the days whose raw rows are all kept; one statement, so both sides are one snapshot. */
static const char SQL_CHECK[] =
    "SELECT user_id, DATE_FORMAT(day, '%Y-%m-%d'), key_id, model, surface, " CHECK_SUMS " FROM ("
    " SELECT user_id, day, key_id, model, surface," CHECK_COLS " FROM usage_daily"
    "  WHERE day >= (SELECT raw_from FROM usage_state WHERE id = 1)"
    " UNION ALL"
    " SELECT user_id, day, key_id, model, surface," CHECK_NEG " FROM usage_measures"
    "  WHERE status <> 'pending' AND created_at >= (SELECT raw_from FROM usage_state WHERE id = 1)"
    "  GROUP BY user_id, day, key_id, model, surface) x"
    " GROUP BY user_id, day, key_id, model, surface"
    " HAVING SUM(r) <> 0 OR SUM(e) <> 0 OR SUM(est) <> 0 OR SUM(i) <> 0 OR SUM(o) <> 0 OR SUM(cr) <> 0"
    "  OR SUM(c5) <> 0 OR SUM(c1) <> 0 OR SUM(rs) <> 0 OR SUM(un) <> 0 OR SUM(c) <> 0 OR SUM(cash) <> 0"
    "  OR SUM(tt) <> 0 OR SUM(tn) <> 0 OR SUM(du) <> 0 OR SUM(dn) <> 0"
    " ORDER BY user_id, day LIMIT 1000";
/* What was compared: rollup rows and their requests, raw rows, and the day raw rows start. */
static const char SQL_CHECKED[] =
    "SELECT (SELECT COUNT(*) FROM usage_daily d WHERE d.day >= s.raw_from),"
    " (SELECT COALESCE(SUM(requests), 0) FROM usage_daily d WHERE d.day >= s.raw_from),"
    " (SELECT COUNT(*) FROM usage_log WHERE status <> 'pending' AND created_at >= s.raw_from),"
    " DATE_FORMAT(s.raw_from, '%Y-%m-%d'), DATE_FORMAT(s.lots_from, '%Y-%m-%d')"
    " FROM usage_state s WHERE s.id = 1";
/* Days where the lot pieces do not add up to the money the rollup says was consumed (lot pieces
 * are recorded from usage_state.lots_from on), or took more credits than were billed. */
static const char SQL_CHECK_LOTS[] =
    "SELECT user_id, DATE_FORMAT(day, '%Y-%m-%d'), SUM(lc), SUM(uc), SUM(lcash), SUM(ucash) FROM ("
    " SELECT user_id, day, credits lc, 0 uc, cash_micros lcash, 0 ucash FROM lot_daily"
    "  WHERE day >= (SELECT lots_from FROM usage_state WHERE id = 1)"
    " UNION ALL"
    " SELECT user_id, day, 0, credits, 0, cash_micros FROM usage_daily"
    "  WHERE day >= (SELECT lots_from FROM usage_state WHERE id = 1)) x"
    " GROUP BY user_id, day HAVING SUM(lcash) <> SUM(ucash) OR SUM(lc) > SUM(uc)"
    " ORDER BY user_id, day LIMIT 1000";
static const char SQL_REBUILD[] = "CALL zg_rollup_rebuild(?)";

/* Report the differences; *bad gets their count. RC_OK or a failure. */
static int check_once(app *a, const args *g, bool quiet, int64_t *bad, rowset *diff)
{
    rowset c, lots;
    if (query(a, SQL_CHECKED, NULL, 0, &c, NULL) != 0)
        return db_fail(a, g, "reading the rollup");
    if (query(a, SQL_CHECK, NULL, 0, diff, NULL) != 0) {
        rs_free(&c);
        return db_fail(a, g, "comparing the rollup with the raw usage rows");
    }
    if (query(a, SQL_CHECK_LOTS, NULL, 0, &lots, NULL) != 0) {
        rs_free(&c);
        rs_free(diff);
        return db_fail(a, g, "comparing lot pieces with the rollup");
    }
    *bad = (int64_t)(diff->n + lots.n);
    if (!quiet) {
        printf("rollup: %" PRId64 " rows (%" PRId64 " requests) from %s on, against %" PRId64
               " settled raw rows: %s\n",
               rs_i64(&c, 0, 0), rs_i64(&c, 0, 1), rs_str(&c, 0, 3) ? rs_str(&c, 0, 3) : "?", rs_i64(&c, 0, 2),
               diff->n ? "DIFFERENT" : "equal");
        for (size_t i = 0; i < diff->n; i++)
            printf("  user %s day %s key %s model %s surface %s: rollup - raw = %s requests, %s credits,"
                   " %s cash micro-dollars, %s input, %s output tokens\n",
                   rs_str(diff, i, 0), rs_str(diff, i, 1), rs_str(diff, i, 2), rs_str(diff, i, 3),
                   rs_str(diff, i, 4), rs_str(diff, i, 5), rs_str(diff, i, 15), rs_str(diff, i, 16),
                   rs_str(diff, i, 8), rs_str(diff, i, 9));
        printf("lot pieces: from %s on, %s\n", rs_str(&c, 0, 4) ? rs_str(&c, 0, 4) : "?",
               lots.n ? "DIFFERENT from the cash consumed" : "equal to the cash consumed, day by day");
        for (size_t i = 0; i < lots.n; i++)
            printf("  user %s day %s: lots gave %s credits worth %s; the rollup billed %s credits worth %s\n",
                   rs_str(&lots, i, 0), rs_str(&lots, i, 1), rs_str(&lots, i, 2), rs_str(&lots, i, 4),
                   rs_str(&lots, i, 3), rs_str(&lots, i, 5));
    }
    rs_free(&c);
    rs_free(&lots);
    return RC_OK;
}

int cmd_db_check(app *a, const args *g)
{
    if (!app_db(a, g))
        return RC_FAIL;
    int64_t bad = 0;
    rowset diff;
    if (check_once(a, g, false, &bad, &diff) != RC_OK)
        return RC_FAIL;
    if (bad && opt(g, "repair")) {
        int64_t last = -1;
        for (size_t i = 0; i < diff.n; i++) {
            int64_t uid = rs_i64(&diff, i, 0);
            if (uid == last)
                continue;
            last = uid;
            zg_val p[] = {ZG_INT(uid)};
            if (query(a, SQL_REBUILD, p, 1, NULL, NULL) != 0) {
                rs_free(&diff);
                return db_fail(a, g, "rebuilding a user's rollup");
            }
            printf("rebuilt the rollup of user %" PRId64 " from its raw rows\n", uid);
        }
        rs_free(&diff);
        if (check_once(a, g, false, &bad, &diff) != RC_OK)
            return RC_FAIL;
    }
    rs_free(&diff);
    return bad ? fail(g, "%" PRId64 " difference(s)%s", bad,
                      opt(g, "repair") ? " left (lot pieces cannot be rebuilt)" : ": run 'zenn-admin db check --repair'")
               : RC_OK;
}

/* ---- db purge --------------------------------------------------------------------------------- */

int cmd_db_purge(app *a, const args *g)
{
    int64_t keep = a->settings.usage_keep_days;
    const char *s = opt(g, "keep-days");
    if (s && zg_parse_i64z(s, 1, 36500, &keep) != 0)
        return bad_usage(g, "bad --keep-days '%s' (expected 1 to 36500)", s);
    if (!app_db(a, g))
        return RC_FAIL;
    int64_t total = 0;
    for (;;) {
        int n = zg_billing_purge(a->db, (int)keep, 10000);
        if (n < 0)
            return db_fail(a, g, "deleting old usage rows");
        total += n;
        if (n == 0)
            break;
    }
    printf("deleted %" PRId64 " usage row(s) that started more than %" PRId64 " days ago; the rollups keep their"
           " totals\n",
           total, keep);
    return RC_OK;
}

/* ---- report ----------------------------------------------------------------------------------- */

#define REPORT_SUMS                                                                                         \
    "SUM(d.requests), SUM(d.errors), SUM(d.input_tokens), SUM(d.output_tokens),"                                \
    " SUM(d.cache_read_tokens) + SUM(d.cache_write_5m_tokens) + SUM(d.cache_write_1h_tokens), SUM(d.units),"     \
    " SUM(d.credits), SUM(d.cash_micros)"
#define REPORT_WHERE " WHERE d.day BETWEEN ? AND ?"
static const char SQL_REPORT_USER[] = "SELECT u.email, " REPORT_SUMS
                                      " FROM usage_daily d JOIN users u ON u.id = d.user_id" REPORT_WHERE
                                      " GROUP BY d.user_id ORDER BY SUM(d.credits) DESC, u.email";
static const char SQL_REPORT_MODEL[] = "SELECT d.model, " REPORT_SUMS " FROM usage_daily d" REPORT_WHERE
                                       " GROUP BY d.model ORDER BY SUM(d.credits) DESC, d.model";
static const char SQL_REPORT_DAY[] = "SELECT DATE_FORMAT(d.day, '%Y-%m-%d'), " REPORT_SUMS
                                     " FROM usage_daily d" REPORT_WHERE " GROUP BY d.day ORDER BY d.day";

static bool parse_day(const char *s, char out[11])
{
    char t[20];
    if (!parse_since(s, t) || strlen(s) != 10)
        return false;
    memcpy(out, t, 10);
    out[10] = '\0';
    return true;
}

int cmd_report(app *a, const args *g)
{
    const char *by = opt(g, "by") ? opt(g, "by") : "user";
    const char *sql = strcmp(by, "user") == 0 ? SQL_REPORT_USER
                    : strcmp(by, "model") == 0 ? SQL_REPORT_MODEL
                    : strcmp(by, "day") == 0 ? SQL_REPORT_DAY : NULL;
    if (!sql)
        return bad_usage(g, "bad --by '%s' (expected user, model or day)", by);
    char since[11], until[11]; /* UTC days; by default the last 30 */
    zg_uq_date_fmt(zg_uq_today(), until, sizeof until);
    zg_uq_date_fmt(zg_uq_today() - 29, since, sizeof since);
    const char *s;
    if ((s = opt(g, "since")) && !parse_day(s, since))
        return bad_usage(g, "bad --since '%s' (expected YYYY-MM-DD, UTC)", s);
    if ((s = opt(g, "until")) && !parse_day(s, until))
        return bad_usage(g, "bad --until '%s' (expected YYYY-MM-DD, UTC)", s);
    if (strcmp(since, until) > 0)
        return bad_usage(g, "--since %s is after --until %s", since, until);
    if (!app_db(a, g))
        return RC_FAIL;
    rowset r;
    zg_val p[] = {ZG_STR(since), ZG_STR(until)};
    if (query(a, sql, p, 2, &r, NULL) != 0)
        return db_fail(a, g, "reading the rollup");
    if (opt(g, "csv")) {
        zg_buf b;
        zg_buf_init(&b, (size_t)1 << 30);
        zg_csv_text(&b, true, by, strlen(by));
        zg_buf_puts(&b, ",requests,errors,input_tokens,output_tokens,cache_tokens,images,credits,cost_usd,cash_usd\r\n");
        for (size_t i = 0; i < r.n; i++) {
            const char *k = rs_str(&r, i, 0);
            zg_csv_text(&b, true, k, k ? strlen(k) : 0);
            for (int c = 1; c <= 7; c++)
                zg_csv_int(&b, false, rs_i64(&r, i, c));
            zg_csv_micros(&b, false, rs_i64(&r, i, 7));
            zg_csv_micros(&b, false, rs_i64(&r, i, 8));
            zg_csv_end(&b);
        }
        fwrite(b.data, 1, b.len, stdout);
        zg_buf_free(&b);
    } else {
        static const col cols[] = {
            {0, C_STR, NULL, "KEY", NULL},     {1, C_INT, NULL, "REQUESTS", NULL}, {2, C_INT, NULL, "ERRORS", NULL},
            {3, C_INT, NULL, "IN", NULL},      {4, C_INT, NULL, "OUT", NULL},      {5, C_INT, NULL, "CACHE", NULL},
            {6, C_INT, NULL, "IMAGES", NULL},  {7, C_USD, NULL, "COST USD", NULL}, {8, C_USD, NULL, "CASH USD", NULL},
        };
        col c[9];
        memcpy(c, cols, sizeof c);
        c[0].head = strcmp(by, "user") == 0 ? "USER" : strcmp(by, "model") == 0 ? "MODEL" : "DAY";
        printf("usage %s to %s (UTC days), by %s\n", since, until, by);
        rows_table(&r, c, 9, "");
        int64_t credits = 0, cash = 0, req = 0;
        for (size_t i = 0; i < r.n; i++) {
            req += rs_i64(&r, i, 1);
            credits += rs_i64(&r, i, 7);
            cash += rs_i64(&r, i, 8);
        }
        numbuf b1, b2;
        printf("total: %" PRId64 " requests, %s USD at list price, %s USD of top-up money\n", req,
               fmt_usd(credits, b1), fmt_usd(cash, b2));
    }
    rs_free(&r);
    return RC_OK;
}
