/* account: receipts. One per granted top-up (card or manual), numbered PREFIX-YYYY-NNNNNN without
 * gaps within a year; the list, and each one with the seller ([invoice]), the buyer and any refunds. */
#include "account.h"
#include "zg_config.h"
#include "zg_num.h"
#include <stdio.h>
#include <string.h>

#define RECEIPTS_MAX 1000 /* listed at most, newest first */
#define CENT 10000

static const char SQL_LIST[] =
    "SELECT r.number, r.issued_at, r.plan, r.multiplier, r.usd_micros, r.credits, r.currency, r.method,"
    " r.payment_ref, COALESCE(SUM(f.amount_cents), 0), COALESCE(SUM(f.credits_revoked), 0)"
    " FROM receipts r LEFT JOIN refunds f ON f.topup_id = r.topup_id"
    " WHERE r.user_id = ? GROUP BY r.id ORDER BY r.id DESC LIMIT 1000";
static const char SQL_ONE[] =
    "SELECT r.number, r.issued_at, r.plan, r.multiplier, r.usd_micros, r.credits, r.currency, r.method,"
    " r.payment_ref, COALESCE(SUM(f.amount_cents), 0), COALESCE(SUM(f.credits_revoked), 0), u.email, r.topup_id"
    " FROM receipts r JOIN users u ON u.id = r.user_id LEFT JOIN refunds f ON f.topup_id = r.topup_id"
    " WHERE r.number = ? AND r.user_id = ? GROUP BY r.id";
static const char SQL_REFUNDS[] =
    "SELECT created_at, amount_cents, credits_revoked FROM refunds WHERE topup_id = ? ORDER BY id";

struct found {
    json_object *o;
    int64_t topup_id;
};

/* A receipt row (SQL_LIST's columns) as JSON. */
static json_object *receipt(char **v)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "number", json_object_new_string(v[0] ? v[0] : ""));
    json_object_object_add(o, "issued_at", account_time(v[1]));
    json_object_object_add(o, "plan", json_object_new_string(v[2] ? v[2] : ""));
    json_object_object_add(o, "multiplier", account_int_or_null(v[3]));
    json_object_object_add(o, "usd_paid", zg_portal_usd_json(zg_i64_or0(v[4])));
    json_object_object_add(o, "credits", account_int_or_null(v[5]));
    json_object_object_add(o, "currency", json_object_new_string(v[6] ? v[6] : ""));
    json_object_object_add(o, "method", json_object_new_string(v[7] ? v[7] : ""));
    json_object_object_add(o, "payment_ref", json_object_new_string(v[8] ? v[8] : ""));
    json_object_object_add(o, "refunded_usd", zg_portal_usd_json(zg_i64_or0(v[9]) * CENT));
    json_object_object_add(o, "credits_revoked", account_int_or_null(v[10]));
    return o;
}

static int list_row(void *ctx, int nc, char **v, const size_t *l)
{
    (void)l;
    if (nc >= 11)
        json_object_array_add(ctx, receipt(v));
    return 0;
}

static int one_row(void *ctx, int nc, char **v, const size_t *l)
{
    (void)l;
    struct found *f = ctx;
    if (nc < 13)
        return 1;
    f->o = receipt(v);
    json_object_object_add(f->o, "buyer", json_object_new_string(v[11] ? v[11] : ""));
    f->topup_id = zg_i64_or0(v[12]);
    return 1;
}

static int refund_row(void *ctx, int nc, char **v, const size_t *l)
{
    (void)l;
    if (nc < 3)
        return 1;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "at", account_time(v[0]));
    json_object_object_add(o, "usd", zg_portal_usd_json(zg_i64_or0(v[1]) * CENT));
    json_object_object_add(o, "credits_revoked", account_int_or_null(v[2]));
    json_object_array_add(ctx, o);
    return 0;
}

int account_receipts(zg_req *r)
{
    zg_account who;
    if (zg_session_require(r, &who) != 0)
        return 0;
    json_object *a = json_object_new_array();
    zg_val p[] = {ZG_INT(who.user_id)};
    if (zg_db_run(r->db, SQL_LIST, p, 1, list_row, a, NULL) != 0) {
        json_object_put(a);
        return zg_portal_unavailable(r);
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "receipts", a);
    json_object_object_add(o, "truncated", json_object_new_boolean(json_object_array_length(a) >= RECEIPTS_MAX));
    return zg_portal_reply(r, 200, o);
}

static json_object *text_or_null(const char *s)
{
    return s[0] ? json_object_new_string(s) : NULL;
}

int account_receipt(zg_req *r)
{
    zg_account who;
    if (zg_session_require(r, &who) != 0)
        return 0;
    const char *number = r->route_rest ? r->route_rest : "";
    if (!number[0] || strlen(number) > 40)
        return zg_portal_fail(r, 404, "not_found_error", NULL, "no such receipt");
    struct found f = {NULL, 0};
    zg_val p[] = {ZG_STR(number), ZG_INT(who.user_id)};
    if (zg_db_run(r->db, SQL_ONE, p, 2, one_row, &f, NULL) != 0)
        return zg_portal_unavailable(r);
    if (!f.o)
        return zg_portal_fail(r, 404, "not_found_error", NULL, "no such receipt");
    json_object *refunds = json_object_new_array();
    zg_val q[] = {ZG_INT(f.topup_id)};
    if (zg_db_run(r->db, SQL_REFUNDS, q, 1, refund_row, refunds, NULL) != 0) {
        json_object_put(refunds);
        json_object_put(f.o);
        return zg_portal_unavailable(r);
    }
    const zg_settings *s = r->cfg;
    json_object *seller = json_object_new_object();
    json_object_object_add(seller, "name", text_or_null(s->seller_name));
    json_object_object_add(seller, "address", text_or_null(s->seller_address));
    json_object_object_add(seller, "tax_id", text_or_null(s->seller_tax_id));
    json_object_object_add(seller, "email", text_or_null(s->seller_email));
    json_object_object_add(f.o, "seller", seller);
    json_object_object_add(f.o, "refunds", refunds);
    return zg_portal_reply(r, 200, f.o);
}
