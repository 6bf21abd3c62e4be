/* account: the payment processor's webhook (POST /api/v1/stripe/webhook). The signature is checked
 * over the raw body before anything in it is read; each event then runs one transaction that
 * records its id and acts on the checkout the gateway made (sql: zg_checkout_event,
 * zg_checkout_refund), so any number of deliveries, in any order, grant a paid checkout once.
 * Answers: 200 applied or nothing to do (duplicates too, so the processor stops retrying), 400
 * unsigned or malformed, 503 when the database failed (the processor delivers it again). */
#include "account.h"
#include "zg_config.h"
#include "zg_log.h"
#include "zg_num.h"
#include "zg_stripe.h"
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* A procedure's answer: outcome, checkout_id, and (zg_checkout_event) topup_id, credits, receipt. */
struct outcome {
    char what[32], receipt[48];
    int64_t checkout;
};

static int take_outcome(void *ctx, int nc, char **v, const size_t *l)
{
    (void)l;
    struct outcome *o = ctx;
    if (nc < 2)
        return 1;
    snprintf(o->what, sizeof o->what, "%s", v[0] ? v[0] : "");
    o->checkout = zg_i64_or0(v[1]);
    if (nc >= 5 && v[4])
        snprintf(o->receipt, sizeof o->receipt, "%s", v[4]);
    return 1;
}

static const char SQL_EVENT[] = "CALL zg_checkout_event(?, ?, ?, ?, ?, ?, ?, ?, ?)";
static const char SQL_REFUND[] = "CALL zg_checkout_refund(?, ?, ?, ?)";

static const char *const kind_names[] = {"", "grant", "pending", "failed", "expired", "refund"};

int account_stripe_webhook(zg_req *r)
{
    const zg_settings *s = r->cfg;
    if (!s->stripe_webhook_secret[0])
        return zg_portal_fail(r, 503, "payments_unavailable", NULL,
                              "webhooks are not set up: [stripe] webhook_secret is empty");
    if (zg_portal_read(r, ZG_STRIPE_EVENT_MAX) != 0)
        return 0;
    const char *why;
    if (zg_stripe_verify(zg_req_header(r, "stripe-signature"), r->body.data, r->body.len, s->stripe_webhook_secret,
                         (int64_t)time(NULL), ZG_STRIPE_TOLERANCE, &why) != 0) {
        zg_warn("stripe webhook from %s refused: %s", zg_portal_addr(r), why);
        return zg_portal_fail(r, 400, "invalid_signature", NULL, "%s", why);
    }
    zg_stripe_event ev;
    if (zg_stripe_event_parse(r->body.data, r->body.len, &ev, &why) != 0) {
        zg_warn("stripe webhook: a signed event the gateway cannot read: %s", why);
        return zg_portal_bad(r, NULL, why);
    }
    struct outcome out = {"ignored", "", 0};
    int rc = 0;
    if (ev.kind == ZG_EV_REFUND) {
        zg_val p[] = {ZG_STR(ev.id), ZG_STR(ev.type), ZG_STR(ev.intent), ZG_INT(ev.amount_cents)};
        rc = zg_db_run(r->db, SQL_REFUND, p, 4, take_outcome, &out, NULL);
    } else if (ev.kind != ZG_EV_OTHER) {
        zg_val p[] = {ZG_STR(ev.id),
                      ZG_STR(ev.type),
                      ZG_STR(kind_names[ev.kind]),
                      ZG_STR(ev.session),
                      ev.checkout_id ? ZG_INT(ev.checkout_id) : ZG_NULLV,
                      ev.amount_cents >= 0 ? ZG_INT(ev.amount_cents) : ZG_NULLV,
                      ev.currency[0] ? ZG_STR(ev.currency) : ZG_NULLV,
                      ev.intent[0] ? ZG_STR(ev.intent) : ZG_NULLV,
                      ZG_STR(s->invoice_prefix)};
        rc = zg_db_run(r->db, SQL_EVENT, p, 9, take_outcome, &out, NULL);
    }
    if (rc != 0) {
        zg_error("stripe webhook: event %s (%s) not applied, the processor will deliver it again: %s", ev.id,
                 ev.type, zg_db_error(r->db));
        return zg_portal_unavailable(r);
    }
    if (strcmp(out.what, "mismatch") == 0)
        zg_error("stripe webhook: event %s paid checkout #%" PRId64 " another amount or currency than it asked "
                 "(%" PRId64 " %s cents): nothing granted, settle it by hand",
                 ev.id, out.checkout, ev.amount_cents, ev.currency);
    else if (strcmp(out.what, "unknown_session") == 0 || strcmp(out.what, "unknown_payment") == 0)
        zg_warn("stripe webhook: event %s (%s) names no checkout of this gateway", ev.id, ev.type);
    else
        zg_info("stripe webhook: event %s (%s): %s%s%s", ev.id, ev.type, out.what, out.receipt[0] ? ", receipt " : "",
                out.receipt);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "received", json_object_new_boolean(1));
    json_object_object_add(o, "outcome", json_object_new_string(out.what));
    return zg_portal_reply(r, 200, o);
}
