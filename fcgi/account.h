/* account: the customer portal's API (/api/v1/account/...). account.c is the route table;
 * account_auth.c signs customers up, in and out and changes passwords; account_keys.c shows the
 * account and manages its keys; account_usage.c answers usage analytics and the request log;
 * account_statement.c the monthly statements; account_checkout.c card top-ups, account_webhook.c the
 * payment processor's events, account_receipts.c the receipts. */
#ifndef ACCOUNT_H
#define ACCOUNT_H
#include "zg_db.h"
#include "zg_portal.h"
#include "zg_req.h"
#include "zg_session.h"

int account_signup(zg_req *r);
int account_login(zg_req *r);
int account_logout(zg_req *r);
int account_password(zg_req *r);
int account_reset(zg_req *r);
int account_show(zg_req *r);
int account_session(zg_req *r);
int account_keys_list(zg_req *r);
int account_keys_create(zg_req *r);
int account_keys_update(zg_req *r);
int account_keys_revoke(zg_req *r);
/* POST /api/v1/account/chat-key: a browser key for /chat, valid an hour, bound to the session. */
int account_chat_key(zg_req *r);
int account_usage(zg_req *r);
int account_usage_csv(zg_req *r);
int account_requests(zg_req *r);
int account_requests_csv(zg_req *r);
int account_statement(zg_req *r);
int account_plans(zg_req *r);
int account_checkout(zg_req *r);
int account_checkout_show(zg_req *r);
int account_receipts(zg_req *r);
int account_receipt(zg_req *r);
int account_stripe_webhook(zg_req *r);

/* The account of user_id as the portal shows it: email, plan, credits, held, lots. NULL on a
 * database error. */
json_object *account_summary(zg_db *db, int64_t user_id);
/* Usage of user_id over the UTC days d0..d1 grouped by one dimension (zg_dim) as a JSON array of
 * rows with every measure (account_usage.c), and *totals (may be NULL) over them. NULL when the
 * database failed. */
json_object *account_usage_grouped(zg_req *r, int64_t user_id, int32_t d0, int32_t d1, int dim, json_object **totals);
/* A column's integer text as a JSON integer, or NULL (JSON null) for SQL NULL. */
json_object *account_int_or_null(const char *v);
/* Start a CSV download named filename (text/csv, attachment, not cached). */
void account_csv_start(zg_req *r, const char *filename);
/* A DATETIME(3) value ("YYYY-MM-DD HH:MM:SS.fff", UTC) as ISO 8601 JSON ("…T…Z"), or null. */
json_object *account_time(const char *v);

#endif
