/* zenn-admin checkout list: card top-ups as the gateway recorded them, to find the ones that need
 * the operator (a payment of another amount: mismatch) or to answer a customer. */
#include "admin.h"

static const char SQL_CHECKOUTS[] =
    "SELECT c.ref, u.email, c.status, c.plan, c.usd_micros, c.credits, c.created_at, r.number, c.refunded_cents * 10000,"
    " c.session_id, c.payment_intent, c.note"
    " FROM checkouts c JOIN users u ON u.id = c.user_id LEFT JOIN receipts r ON r.topup_id = c.topup_id"
    " WHERE (? IS NULL OR c.status = ?) AND (? IS NULL OR u.email = ?) ORDER BY c.id DESC LIMIT ?";

static const char *const STATUSES[] = {"creating", "open",   "processing", "paid",
                                       "failed",   "expired", "mismatch",  "refunded"};

int cmd_checkout_list(app *a, const args *g)
{
    static const col cols[] = {
        {0, C_STR, "id", "ID", NULL},
        {1, C_STR, "email", "EMAIL", NULL},
        {2, C_STR, "status", "STATUS", NULL},
        {3, C_STR, "plan", "PLAN", NULL},
        {4, C_USD, "usd", "USD", NULL},
        {5, C_INT, "credits", "CREDITS", NULL},
        {6, C_TIME, "created_at", "CREATED", NULL},
        {7, C_STR, "receipt", "RECEIPT", NULL},
        {8, C_USD, "refunded_usd", NULL, NULL},
        {9, C_STR, "session_id", NULL, NULL},
        {10, C_STR, "payment_intent", NULL, NULL},
        {11, C_STR, "note", "NOTE", NULL},
    };
    const char *status = opt(g, "status"), *email = opt(g, "email"), *lim = opt(g, "limit");
    bool known = status == NULL;
    for (size_t i = 0; !known && i < sizeof STATUSES / sizeof STATUSES[0]; i++)
        known = strcmp(status, STATUSES[i]) == 0;
    if (!known)
        return bad_usage(g, "unknown --status '%s' (creating, open, processing, paid, failed, expired, mismatch, "
                            "refunded)",
                         status);
    int64_t limit = 100;
    if (lim && zg_parse_i64z(lim, 1, 100000, &limit) != 0)
        return bad_usage(g, "bad --limit '%s' (1 to 100000)", lim);
    if (!app_db(a, g))
        return RC_FAIL;
    zg_val p[] = {status ? ZG_STR(status) : ZG_NULLV, status ? ZG_STR(status) : ZG_NULLV,
                  email ? ZG_STR(email) : ZG_NULLV,   email ? ZG_STR(email) : ZG_NULLV, ZG_INT(limit)};
    rowset r;
    if (query(a, SQL_CHECKOUTS, p, 5, &r, NULL) != 0)
        return db_fail(a, g, "listing checkouts");
    if (opt(g, "json"))
        j_print(rows_json(&r, cols, 12));
    else
        rows_table(&r, cols, 12, "");
    rs_free(&r);
    return RC_OK;
}
