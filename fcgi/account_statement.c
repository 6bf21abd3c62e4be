/* account: the monthly statement (/api/v1/account/statements/YYYY-MM, and .csv): opening and
 * closing balance, the top-ups bought, usage per model and per key, and the lots that paid for it
 * (plan, multiplier, credits taken and their cash value). A request counts in the UTC day it
 * started; the balances follow the same rule, so opening + top-ups − usage − refunds = closing
 * (refunds: the unspent credits a card refund took back). */
#include "account.h"
#include "zg_catalog.h"
#include "zg_csv.h"
#include "zg_num.h"
#include "zg_uq.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Balance now, and in one snapshot the credits used and granted in the month and after it. */
static const char SQL_BALANCES[] =
    "SELECT u.balance,"
    " (SELECT COALESCE(SUM(d.credits), 0) FROM usage_daily d WHERE d.user_id = u.id AND d.day >= ?),"
    " (SELECT COALESCE(SUM(t.credits_granted), 0) FROM topups t WHERE t.user_id = u.id AND t.created_at >= ?),"
    " (SELECT COALESCE(SUM(d.credits), 0) FROM usage_daily d WHERE d.user_id = u.id AND d.day >= ? AND d.day < ?),"
    " (SELECT COALESCE(SUM(t.credits_granted), 0) FROM topups t WHERE t.user_id = u.id AND t.created_at >= ?"
    "   AND t.created_at < ?),"
    " (SELECT DATE_FORMAT(lots_from, '%Y-%m-%d') FROM usage_state WHERE id = 1),"
    " (SELECT COALESCE(SUM(f.credits_revoked), 0) FROM refunds f WHERE f.user_id = u.id AND f.created_at >= ?),"
    " (SELECT COALESCE(SUM(f.credits_revoked), 0) FROM refunds f WHERE f.user_id = u.id AND f.created_at >= ?"
    "   AND f.created_at < ?)"
    " FROM users u WHERE u.id = ?";
static const char SQL_TOPUPS[] =
    "SELECT id, created_at, plan, multiplier, usd_micros, credits_granted FROM topups"
    " WHERE user_id = ? AND created_at >= ? AND created_at < ? ORDER BY id";
static const char SQL_LOTS_USED[] =
    "SELECT l.topup_id, t.plan, t.multiplier, t.created_at, SUM(l.credits), SUM(l.cash_micros)"
    " FROM lot_daily l JOIN topups t ON t.id = l.topup_id"
    " WHERE l.user_id = ? AND l.day >= ? AND l.day < ? GROUP BY l.topup_id ORDER BY l.topup_id";

struct bal {
    int64_t balance, used_after, granted_after, used, granted, revoked_after, revoked;
    char lots_from[12];
    bool hit;
};

static int take_bal(void *ctx, int nc, char **v, const size_t *l)
{
    (void)l;
    struct bal *b = ctx;
    if (nc < 8)
        return 1;
    b->revoked_after = zg_i64_or0(v[6]);
    b->revoked = zg_i64_or0(v[7]);
    b->balance = zg_i64_or0(v[0]);
    b->used_after = zg_i64_or0(v[1]);
    b->granted_after = zg_i64_or0(v[2]);
    b->used = zg_i64_or0(v[3]);
    b->granted = zg_i64_or0(v[4]);
    snprintf(b->lots_from, sizeof b->lots_from, "%s", v[5] ? v[5] : "1000-01-01");
    b->hit = true;
    return 1;
}

static int topup_row(void *ctx, int nc, char **v, const size_t *l)
{
    (void)l;
    if (nc < 6)
        return 1;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "lot_id", json_object_new_int64(zg_i64_or0(v[0])));
    json_object_object_add(o, "created_at", account_time(v[1]));
    json_object_object_add(o, "plan", json_object_new_string(v[2] ? v[2] : ""));
    json_object_object_add(o, "multiplier", json_object_new_int64(zg_i64_or0(v[3])));
    json_object_object_add(o, "usd_paid", zg_portal_usd_json(zg_i64_or0(v[4])));
    json_object_object_add(o, "credits", json_object_new_int64(zg_i64_or0(v[5])));
    json_object_array_add(ctx, o);
    return 0;
}

struct lots {
    json_object *arr;
    int64_t credits, cash;
};

static int lot_row(void *ctx, int nc, char **v, const size_t *l)
{
    (void)l;
    struct lots *s = ctx;
    if (nc < 6)
        return 1;
    json_object *o = json_object_new_object();
    int64_t c = zg_i64_or0(v[4]), cash = zg_i64_or0(v[5]);
    json_object_object_add(o, "lot_id", json_object_new_int64(zg_i64_or0(v[0])));
    json_object_object_add(o, "plan", json_object_new_string(v[1] ? v[1] : ""));
    json_object_object_add(o, "multiplier", json_object_new_int64(zg_i64_or0(v[2])));
    json_object_object_add(o, "bought_at", account_time(v[3]));
    json_object_object_add(o, "credits", json_object_new_int64(c));
    json_object_object_add(o, "cost_usd", zg_portal_usd_json(c));
    json_object_object_add(o, "cash_micros", json_object_new_int64(cash));
    json_object_object_add(o, "cash_usd", zg_portal_usd_json(cash));
    json_object_array_add(s->arr, o);
    s->credits += c;
    s->cash += cash;
    return 0;
}

/* The statement of user_id for the month starting on day m0 as JSON; NULL when the database failed. */
static json_object *statement(zg_req *r, int64_t user_id, int32_t m0)
{
    int32_t m1 = zg_uq_next_month(m0), today = zg_uq_today();
    char d0[12], d1[12], last[12], month[8];
    zg_uq_date_fmt(m0, d0, sizeof d0);
    zg_uq_date_fmt(m1, d1, sizeof d1);
    zg_uq_date_fmt(m1 - 1, last, sizeof last);
    snprintf(month, sizeof month, "%.7s", d0);
    struct bal b = {0};
    zg_val pb[] = {ZG_STR(d1), ZG_STR(d1), ZG_STR(d0), ZG_STR(d1), ZG_STR(d0),
                   ZG_STR(d1), ZG_STR(d1), ZG_STR(d0), ZG_STR(d1), ZG_INT(user_id)};
    if (zg_db_run(r->db, SQL_BALANCES, pb, 10, take_bal, &b, NULL) != 0 || !b.hit)
        return NULL;
    json_object *topups = json_object_new_array(), *model_tot = NULL;
    struct lots lots = {json_object_new_array(), 0, 0};
    zg_val pt[] = {ZG_INT(user_id), ZG_STR(d0), ZG_STR(d1)};
    json_object *by_model = account_usage_grouped(r, user_id, m0, m1 - 1, ZG_DIM_MODEL, &model_tot);
    json_object *by_key = by_model ? account_usage_grouped(r, user_id, m0, m1 - 1, ZG_DIM_KEY, NULL) : NULL;
    if (!by_key || zg_db_run(r->db, SQL_TOPUPS, pt, 3, topup_row, topups, NULL) != 0 ||
        zg_db_run(r->db, SQL_LOTS_USED, pt, 3, lot_row, &lots, NULL) != 0) {
        json_object_put(by_model);
        json_object_put(by_key);
        json_object_put(model_tot);
        json_object_put(topups);
        json_object_put(lots.arr);
        return NULL;
    }
    int64_t closing = b.balance + b.used_after - b.granted_after + b.revoked_after;
    int64_t opening = closing + b.used - b.granted + b.revoked;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "month", json_object_new_string(month));
    json_object_object_add(o, "from", json_object_new_string(d0));
    json_object_object_add(o, "to", json_object_new_string(last));
    json_object_object_add(o, "complete", json_object_new_boolean(today >= m1));
    json_object_object_add(o, "opening_credits", json_object_new_int64(opening));
    json_object_object_add(o, "opening_usd", zg_portal_usd_json(opening));
    json_object_object_add(o, "topups", topups);
    json_object_object_add(o, "topup_credits", json_object_new_int64(b.granted));
    json_object_object_add(o, "refund_credits", json_object_new_int64(b.revoked));
    json_object_object_add(o, "usage", model_tot);
    json_object_object_add(o, "closing_credits", json_object_new_int64(closing));
    json_object_object_add(o, "closing_usd", zg_portal_usd_json(closing));
    json_object_object_add(o, "by_model", by_model);
    json_object_object_add(o, "by_key", by_key);
    json_object_object_add(o, "lots", lots.arr);
    /* credits billed beyond every lot: an overdraft, repaid from the next top-up */
    int64_t overdraft = b.used - lots.credits;
    bool recorded = strcmp(b.lots_from, d0) <= 0;
    json_object_object_add(o, "overdraft_credits", recorded ? json_object_new_int64(overdraft) : NULL);
    json_object_object_add(o, "lots_recorded_from", recorded ? NULL : json_object_new_string(b.lots_from));
    return o;
}

/* ---- CSV: one line per figure: section, item, detail, requests, credits, usd, cash_usd ---------- */

static const char *str(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && v ? json_object_get_string(v) : "";
}

static int64_t i64(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && v ? json_object_get_int64(v) : 0;
}

static void line(zg_buf *b, const char *section, const char *item, const char *detail, const int64_t *requests,
                 int64_t credits, const int64_t *cash)
{
    zg_csv_text(b, true, section, strlen(section));
    zg_csv_text(b, false, item, strlen(item));
    zg_csv_text(b, false, detail, strlen(detail));
    if (requests)
        zg_csv_int(b, false, *requests);
    else
        zg_buf_putc(b, ',');
    zg_csv_int(b, false, credits);
    zg_csv_micros(b, false, credits);
    if (cash)
        zg_csv_micros(b, false, *cash);
    else
        zg_buf_putc(b, ',');
    zg_csv_end(b);
}

static void rows_csv(zg_buf *b, json_object *arr, const char *section, const char *item_key, const char *detail_key)
{
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *o = json_object_array_get_idx(arr, i);
        int64_t req = i64(o, "requests"), cash = i64(o, "cash_micros");
        line(b, section, str(o, item_key), detail_key ? str(o, detail_key) : "", &req, i64(o, "credits"), &cash);
    }
}

static void statement_csv(zg_buf *b, json_object *s)
{
    zg_buf_puts(b, "section,item,detail,requests,credits,usd,cash_usd\r\n");
    line(b, "balance", "opening", str(s, "from"), NULL, i64(s, "opening_credits"), NULL);
    json_object *a;
    json_object_object_get_ex(s, "topups", &a);
    for (size_t i = 0; i < json_object_array_length(a); i++) {
        json_object *o = json_object_array_get_idx(a, i);
        char detail[80];
        snprintf(detail, sizeof detail, "%s x%lld, paid %s USD", str(o, "plan"), (long long)i64(o, "multiplier"),
                 str(o, "usd_paid"));
        line(b, "topup", str(o, "created_at"), detail, NULL, i64(o, "credits"), NULL);
    }
    json_object_object_get_ex(s, "by_model", &a);
    rows_csv(b, a, "model", "model", NULL);
    json_object_object_get_ex(s, "by_key", &a);
    rows_csv(b, a, "key", "key_prefix", "key_name");
    json_object_object_get_ex(s, "lots", &a);
    for (size_t i = 0; i < json_object_array_length(a); i++) {
        json_object *o = json_object_array_get_idx(a, i);
        char item[32], detail[64];
        snprintf(item, sizeof item, "lot %lld", (long long)i64(o, "lot_id"));
        snprintf(detail, sizeof detail, "%s x%lld", str(o, "plan"), (long long)i64(o, "multiplier"));
        int64_t cash = i64(o, "cash_micros");
        line(b, "lot", item, detail, NULL, i64(o, "credits"), &cash);
    }
    json_object *u;
    json_object_object_get_ex(s, "usage", &u);
    int64_t req = i64(u, "requests"), cash = i64(u, "cash_micros");
    line(b, "usage", "total", "", &req, i64(u, "credits"), &cash);
    if (i64(s, "refund_credits"))
        line(b, "refund", "credits taken back", "", NULL, i64(s, "refund_credits"), NULL);
    line(b, "balance", "closing", str(s, "to"), NULL, i64(s, "closing_credits"), NULL);
}

int account_statement(zg_req *r)
{
    zg_account who;
    if (zg_session_require(r, &who) != 0)
        return 0;
    const char *rest = r->route_rest ? r->route_rest : "";
    char m[8];
    size_t n = strlen(rest);
    bool csv = n == 11 && strcmp(rest + 7, ".csv") == 0;
    int32_t m0;
    if ((n != 7 && !csv) || (snprintf(m, sizeof m, "%.7s", rest), zg_uq_month(m, &m0)) != 0)
        return zg_portal_fail(r, 404, "not_found_error", NULL, "no such statement: use /statements/YYYY-MM");
    if (m0 > zg_uq_today())
        return zg_portal_fail(r, 404, "not_found_error", NULL, "no statement for %s yet: the month has not begun", m);
    json_object *s = statement(r, who.user_id, m0);
    if (!s)
        return zg_portal_unavailable(r);
    if (!csv)
        return zg_portal_reply(r, 200, s);
    zg_buf b;
    zg_buf_init(&b, 4u << 20);
    statement_csv(&b, s);
    json_object_put(s);
    char fn[40];
    snprintf(fn, sizeof fn, "statement-%s.csv", m);
    account_csv_start(r, fn);
    zg_resp_write(r, b.data, b.len);
    zg_buf_free(&b);
    return 0;
}
