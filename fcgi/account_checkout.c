/* account: card top-ups. The plans a checkout may buy, starting a checkout (a pending record, then
 * the processor's Checkout Session), and a checkout's state for the page that waits for it. The
 * credits themselves are granted by the signed webhook (account_webhook.c), never here. */
#include "account.h"
#include "zg_auth.h"
#include "zg_catalog.h"
#include "zg_config.h"
#include "zg_log.h"
#include "zg_num.h"
#include "zg_stripe.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USD 1000000
#define CENT 10000 /* micro-dollars in a cent */

static bool payments_on(const zg_req *r)
{
    return r->cfg->stripe_secret_key[0] != '\0';
}

static json_object *plan_json(int plan, int64_t min, int64_t max, int64_t pack)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "plan", json_object_new_string(zg_plan_name(plan)));
    json_object_object_add(o, "multiplier", json_object_new_int(zg_plan_multiplier(plan)));
    json_object_object_add(o, "min_usd", zg_portal_usd_json(min));
    json_object_object_add(o, "max_usd", zg_portal_usd_json(max));
    json_object_object_add(o, "pack_usd", pack ? zg_portal_usd_json(pack) : NULL);
    return o;
}

int account_plans(zg_req *r)
{
    const zg_settings *s = r->cfg;
    json_object *o = json_object_new_object(), *a = json_object_new_array();
    json_object_array_add(a, plan_json(ZG_PLAN_PRO, s->pro_min_micros, s->pro_max_micros, 0));
    json_object_array_add(a, plan_json(ZG_PLAN_MAX, s->max_pack_micros, s->max_pack_micros * s->max_packs,
                                       s->max_pack_micros));
    json_object_array_add(a, plan_json(ZG_PLAN_ENTERPRISE, s->enterprise_pack_micros,
                                       s->enterprise_pack_micros * s->max_packs, s->enterprise_pack_micros));
    json_object_object_add(o, "payments", json_object_new_boolean(payments_on(r)));
    json_object_object_add(o, "currency", json_object_new_string(s->stripe_currency));
    json_object_object_add(o, "plans", a);
    return zg_portal_reply(r, 200, o);
}

/* A plan's name as a title ("Max"). */
static const char *plan_title(int plan)
{
    return plan == ZG_PLAN_PRO ? "Pro" : plan == ZG_PLAN_MAX ? "Max" : "Enterprise";
}

/* Is usd (micro-dollars) a purchase of plan the settings allow? NULL, or why not. */
static const char *amount_refused(const zg_settings *s, int plan, int64_t usd, char *msg, size_t cap)
{
    if (plan == ZG_PLAN_PRO) {
        if (usd % CENT != 0 || usd < s->pro_min_micros || usd > s->pro_max_micros) {
            snprintf(msg, cap, "Pro top-ups are from $%" PRId64 " to $%" PRId64 ", in whole cents",
                     s->pro_min_micros / USD, s->pro_max_micros / USD);
            return msg;
        }
        return NULL;
    }
    int64_t pack = plan == ZG_PLAN_MAX ? s->max_pack_micros : s->enterprise_pack_micros;
    if (usd <= 0 || usd % pack != 0 || usd / pack > s->max_packs) {
        snprintf(msg, cap, "%s is sold in packs of $%" PRId64 ": 1 to %d packs", plan_title(plan), pack / USD,
                 s->max_packs);
        return msg;
    }
    return NULL;
}

/* The portal's own address for the processor to send the customer back to: [portal] url, or the
 * scheme and Host of this request. */
static void portal_base(const zg_req *r, char *out, size_t cap)
{
    const char *u = r->cfg->portal_url, *host = zg_req_header(r, "host");
    if (u[0])
        snprintf(out, cap, "%s", u);
    else
        snprintf(out, cap, "%s://%s", zg_portal_https(r) ? "https" : "http", host && *host ? host : "localhost");
}

struct pending {
    int64_t id, usd;
    char ref[28], status[16], plan[16], url[2048];
    bool hit;
};

static int take_pending(void *ctx, int nc, char **v, const size_t *l)
{
    struct pending *p = ctx;
    if (nc < 6 || !v[0])
        return 1;
    p->id = zg_i64_or0(v[0]);
    snprintf(p->ref, sizeof p->ref, "%s", v[1] ? v[1] : "");
    snprintf(p->status, sizeof p->status, "%s", v[2] ? v[2] : "");
    snprintf(p->plan, sizeof p->plan, "%s", v[3] ? v[3] : "");
    p->usd = zg_i64_or0(v[4]);
    if (v[5] && l[5] < sizeof p->url)
        memcpy(p->url, v[5], l[5] + 1);
    p->hit = true;
    return 1;
}

static const char SQL_CO_ADD[] =
    "INSERT IGNORE INTO checkouts (ref, user_id, plan, usd_micros, multiplier, credits, currency, client_key)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
static const char SQL_CO_BY_REF[] = "SELECT id, ref, status, plan, usd_micros, url FROM checkouts WHERE ref = ?";
static const char SQL_CO_BY_KEY[] =
    "SELECT id, ref, status, plan, usd_micros, url FROM checkouts WHERE user_id = ? AND client_key = ?";
static const char SQL_CO_OPEN[] =
    "UPDATE checkouts SET session_id = ?, url = ?, status = 'open', updated_at = NOW(3)"
    " WHERE id = ? AND status = 'creating'";
static const char SQL_CO_FAILED[] =
    "UPDATE checkouts SET status = 'failed', note = ?, updated_at = NOW(3) WHERE id = ? AND status = 'creating'";

/* n with thousands separators ("400,000,000") into out[32]. */
static const char *grouped(int64_t n, char out[32])
{
    char d[24];
    int len = snprintf(d, sizeof d, "%" PRId64, n < 0 ? 0 : n), k = 0;
    for (int i = 0; i < len; i++) {
        if (i && (len - i) % 3 == 0)
            out[k++] = ',';
        out[k++] = d[i];
    }
    out[k] = '\0';
    return out;
}

/* The form that creates the processor's session for checkout p. */
static int session_form(const zg_req *r, const zg_account *who, const struct pending *p, int plan, int64_t credits,
                        zg_buf *f)
{
    char base[300], c[32], cents[32], name[160], idbuf[32], creds[32], uid[32];
    portal_base(r, base, sizeof base);
    snprintf(name, sizeof name, "%s top-up: %s credits (%dx)", plan_title(plan), grouped(credits, c),
             zg_plan_multiplier(plan));
    snprintf(cents, sizeof cents, "%" PRId64, p->usd / CENT);
    snprintf(idbuf, sizeof idbuf, "%" PRId64, p->id);
    snprintf(creds, sizeof creds, "%" PRId64, credits);
    snprintf(uid, sizeof uid, "%" PRId64, who->user_id);
    char ok_url[700], no_url[700];
    snprintf(ok_url, sizeof ok_url, "%s/checkout?done=%s&session_id={CHECKOUT_SESSION_ID}", base, p->ref);
    snprintf(no_url, sizeof no_url, "%s/checkout?canceled=%s", base, p->ref);
    const char *kv[][2] = {
        {"mode", "payment"},
        {"client_reference_id", p->ref},
        {"customer_email", who->email},
        {"line_items[0][quantity]", "1"},
        {"line_items[0][price_data][currency]", r->cfg->stripe_currency},
        {"line_items[0][price_data][unit_amount]", cents},
        {"line_items[0][price_data][product_data][name]", name},
        {"metadata[checkout_id]", idbuf},
        {"metadata[plan]", zg_plan_name(plan)},
        {"metadata[credits]", creds},
        {"metadata[user_id]", uid},
        {"payment_intent_data[metadata][checkout_id]", idbuf},
        {"success_url", ok_url},
        {"cancel_url", no_url},
    };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (zg_form_add(f, kv[i][0], kv[i][1]) != ZG_OK)
            return -1;
    return 0;
}

/* The processor's answer: 0 with the session's id and url, or -1 with a message for the customer. */
static int session_answer(const zg_buf *b, long status, char *id, size_t idcap, char *url, size_t urlcap, char *msg,
                          size_t msgcap)
{
    json_object *o = json_tokener_parse(zg_buf_cstr(b)), *v, *e;
    int rc = -1;
    snprintf(msg, msgcap, "the payment processor answered HTTP %ld", status);
    if (status == 200 && o && json_object_object_get_ex(o, "id", &v) && json_object_is_type(v, json_type_string) &&
        (size_t)json_object_get_string_len(v) < idcap && json_object_object_get_ex(o, "url", &e) &&
        json_object_is_type(e, json_type_string) && (size_t)json_object_get_string_len(e) < urlcap &&
        strncmp(json_object_get_string(e), "http", 4) == 0) {
        snprintf(id, idcap, "%s", json_object_get_string(v));
        snprintf(url, urlcap, "%s", json_object_get_string(e));
        rc = 0;
    } else if (o && json_object_object_get_ex(o, "error", &e) && json_object_object_get_ex(e, "message", &v)) {
        snprintf(msg, msgcap, "the payment processor refused the checkout: %.150s", json_object_get_string(v));
    }
    json_object_put(o);
    return rc;
}

static int answer_checkout(zg_req *r, int status, const struct pending *p)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(p->ref));
    json_object_object_add(o, "url", json_object_new_string(p->url));
    json_object_object_add(o, "plan", json_object_new_string(p->plan));
    json_object_object_add(o, "usd", zg_portal_usd_json(p->usd));
    return zg_portal_reply(r, status, o);
}

/* A repeated request (same Idempotency-Key): the same checkout, or 409 when it asked for another. */
static int repeated(zg_req *r, const struct pending *p, const char *plan, int64_t usd)
{
    if (strcmp(p->plan, plan) != 0 || p->usd != usd)
        return zg_portal_fail(r, 409, "conflict", NULL, "this Idempotency-Key was used for another checkout");
    if (strcmp(p->status, "open") != 0 || !p->url[0])
        return zg_portal_fail(r, 409, "conflict", NULL, "this checkout is %s; start a new one",
                              strcmp(p->status, "creating") == 0 ? "still being set up" : p->status);
    return answer_checkout(r, 200, p);
}

/* The caller's Idempotency-Key header: NULL when absent, "" when malformed. */
static const char *client_key(const zg_req *r)
{
    const char *k = zg_req_header(r, "idempotency-key");
    if (!k)
        return NULL;
    size_t n = strlen(k);
    if (n == 0 || n > 64)
        return "";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)k[i] <= ' ' || (unsigned char)k[i] >= 0x7f)
            return "";
    return k;
}

int account_checkout(zg_req *r)
{
    zg_account who;
    if (zg_session_require(r, &who) != 0)
        return 0;
    if (!payments_on(r))
        return zg_portal_fail(r, 503, "payments_unavailable", NULL,
                              "card payments are not set up on this service; ask its operator how to top up");
    const char *ck = client_key(r);
    if (ck && !*ck)
        return zg_portal_bad(r, NULL, "Idempotency-Key must be 1 to 64 printable characters");
    json_object *o = zg_portal_body(r);
    if (!o)
        return 0;
    const char *plan_s = NULL;
    int64_t usd = -1;
    char msg[200];
    int rc = 0, plan;
    if (zg_portal_text(r, o, "plan", 16, &plan_s) < 0)
        goto out;
    if (!plan_s || (plan = zg_plan_parse(plan_s)) < 0) {
        rc = zg_portal_bad(r, "plan", "choose a plan: pro, max or enterprise");
        goto out;
    }
    int u = zg_portal_usd(r, o, "usd", &usd);
    if (u < 0)
        goto out;
    if (u > 0 || amount_refused(r->cfg, plan, usd, msg, sizeof msg)) {
        rc = zg_portal_bad(r, "usd", u > 0 ? "enter the amount in US dollars" : msg);
        goto out;
    }
    struct pending p = {0};
    char ref[sizeof p.ref];
    if (zg_auth_random_id("co_", ref, sizeof ref) != 0) {
        rc = zg_portal_fail(r, 500, "server_error", NULL, "no random bytes for a checkout reference; try again");
        goto out;
    }
    int mult = zg_plan_multiplier(plan);
    int64_t credits = usd * mult;
    zg_val add[] = {ZG_STR(ref), ZG_INT(who.user_id), ZG_STR(zg_plan_name(plan)), ZG_INT(usd), ZG_INT(mult),
                    ZG_INT(credits), ZG_STR(r->cfg->stripe_currency), ck ? ZG_STR(ck) : ZG_NULLV};
    zg_val by_ref[] = {ZG_STR(ref)};
    if (zg_db_run(r->db, SQL_CO_ADD, add, 8, NULL, NULL, NULL) != 0 ||
        zg_db_run(r->db, SQL_CO_BY_REF, by_ref, 1, take_pending, &p, NULL) != 0) {
        rc = zg_portal_unavailable(r);
        goto out;
    }
    if (!p.hit) { /* not added: the caller's key names an earlier checkout */
        zg_val by_key[] = {ZG_INT(who.user_id), ZG_STR(ck ? ck : "")};
        if (!ck || zg_db_run(r->db, SQL_CO_BY_KEY, by_key, 2, take_pending, &p, NULL) != 0 || !p.hit)
            rc = zg_portal_unavailable(r);
        else
            rc = repeated(r, &p, zg_plan_name(plan), usd);
        goto out;
    }
    zg_buf form, resp;
    zg_buf_init(&form, 16384);
    zg_buf_init(&resp, 256 * 1024);
    long status = 0;
    int sent = -1;
    if (session_form(r, &who, &p, plan, credits, &form) == ZG_OK) {
        /* the same Idempotency-Key makes the second try answer the first one's session */
        for (int attempt = 0; attempt < 2 && sent != 0; attempt++) {
            zg_buf_reset(&resp);
            sent = zg_stripe_post(r->cfg, "/v1/checkout/sessions", form.data, form.len, ref, &resp, &status);
        }
    }
    char sid[256], url[2048];
    if (sent != 0) {
        zg_warn("checkout %s: the payment processor did not answer", ref);
        rc = zg_portal_fail(r, 503, "payments_unavailable", NULL,
                            "the payment processor could not be reached; nothing was charged, try again");
    } else if (session_answer(&resp, status, sid, sizeof sid, url, sizeof url, msg, sizeof msg) != 0) {
        zg_warn("checkout %s: %s", ref, msg);
        zg_val f[] = {ZG_STR(msg), ZG_INT(p.id)};
        zg_db_run(r->db, SQL_CO_FAILED, f, 2, NULL, NULL, NULL);
        rc = zg_portal_fail(r, 502, "payment_error", NULL, "%s", msg);
    } else {
        zg_val op[] = {ZG_STR(sid), ZG_STR(url), ZG_INT(p.id)};
        if (zg_db_run(r->db, SQL_CO_OPEN, op, 3, NULL, NULL, NULL) != 0) {
            rc = zg_portal_unavailable(r);
        } else {
            snprintf(p.url, sizeof p.url, "%s", url);
            zg_info("checkout %s: user %" PRId64 " %s %" PRId64 " micro-USD", ref, who.user_id, p.plan, usd);
            rc = answer_checkout(r, 201, &p);
        }
    }
    zg_buf_free(&form);
    zg_buf_free(&resp);
out:
    json_object_put(o);
    return rc;
}

/* ---- a checkout's state ------------------------------------------------------------------------- */

static const char SQL_CO_SHOW[] =
    "SELECT c.ref, c.status, c.plan, c.multiplier, c.usd_micros, c.credits, c.created_at, r.number, u.balance,"
    " c.refunded_cents"
    " FROM checkouts c JOIN users u ON u.id = c.user_id LEFT JOIN receipts r ON r.topup_id = c.topup_id"
    " WHERE c.ref = ? AND c.user_id = ?";

static int take_show(void *ctx, int nc, char **v, const size_t *l)
{
    (void)l;
    if (nc < 10)
        return 1;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(v[0] ? v[0] : ""));
    json_object_object_add(o, "status", json_object_new_string(v[1] ? v[1] : ""));
    json_object_object_add(o, "plan", json_object_new_string(v[2] ? v[2] : ""));
    json_object_object_add(o, "multiplier", account_int_or_null(v[3]));
    json_object_object_add(o, "usd", zg_portal_usd_json(zg_i64_or0(v[4])));
    json_object_object_add(o, "credits", account_int_or_null(v[5]));
    json_object_object_add(o, "created_at", account_time(v[6]));
    json_object_object_add(o, "receipt", v[7] ? json_object_new_string(v[7]) : NULL);
    json_object_object_add(o, "balance", account_int_or_null(v[8]));
    json_object_object_add(o, "refunded_usd", zg_portal_usd_json(zg_i64_or0(v[9]) * CENT));
    *(json_object **)ctx = o;
    return 1;
}

int account_checkout_show(zg_req *r)
{
    zg_account who;
    if (zg_session_require(r, &who) != 0)
        return 0;
    const char *ref = r->route_rest ? r->route_rest : "";
    json_object *o = NULL;
    zg_val p[] = {ZG_STR(ref), ZG_INT(who.user_id)};
    if (strlen(ref) != 27 || strncmp(ref, "co_", 3) != 0)
        return zg_portal_fail(r, 404, "not_found_error", NULL, "no such checkout");
    if (zg_db_run(r->db, SQL_CO_SHOW, p, 2, take_show, &o, NULL) != 0)
        return zg_portal_unavailable(r);
    if (!o)
        return zg_portal_fail(r, 404, "not_found_error", NULL, "no such checkout");
    return zg_portal_reply(r, 200, o);
}
