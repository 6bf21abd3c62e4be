/* The payment processor's pieces (zg_stripe): webhook signatures (against a signature made by
 * another HMAC implementation), form encoding with bracketed keys, and reading events. */
#include "tap.h"
#include "zg_buf.h"
#include "zg_stripe.h"
#include <stdio.h>
#include <string.h>

#define SECRET "whsec_test_secret"
#define BODY "{\"id\":\"evt_1\",\"object\":\"event\"}"
/* HMAC-SHA256("1700000000." BODY) under SECRET, computed with Python's hmac module */
#define MAC "0c8670ed117751cc551a20e35839447075c42800ea3cf3e8a2fbda99cd1e6edd"
#define T 1700000000

static int verify(const char *header, const char *body, int64_t now)
{
    const char *why = NULL;
    int rc = zg_stripe_verify(header, body, strlen(body), SECRET, now, ZG_STRIPE_TOLERANCE, &why);
    ok(rc == 0 || (why && *why), "a refusal says why (%s)", why ? why : "-");
    return rc;
}

static void signatures(void)
{
    ok(verify("t=1700000000,v1=" MAC, BODY, T) == 0, "a good signature");
    ok(verify("t=1700000000,v1=" MAC, BODY, T + 300) == 0, "300 s later still");
    ok(verify("t=1700000000,v1=" MAC, BODY, T + 301) != 0, "301 s later: stale");
    ok(verify("t=1700000000,v1=" MAC, BODY, T - 301) != 0, "from the future");
    ok(verify("t=1700000000,v0=abc,v1=ffff,v1=" MAC, BODY, T) == 0, "a malformed v1 and a v0 next to a good one");
    ok(verify("t=1700000000,v1=" "0000000000000000000000000000000000000000000000000000000000000000,v1=" MAC, BODY, T) ==
           0,
       "any of several v1 signatures");
    ok(verify("v1=" MAC ",t=1700000000", BODY, T) == 0, "items in any order");
    ok(verify("t=1700000000,v0=" MAC, BODY, T) != 0, "v0 alone is not accepted");
    ok(verify("t=1700000000,v1=" MAC, BODY " ", T) != 0, "one byte more in the body");
    ok(verify("t=1700000001,v1=" MAC, BODY, T) != 0, "another timestamp");
    ok(verify("t=1700000000,v1=" "0" MAC, BODY, T) != 0, "a longer signature");
    ok(verify("t=,v1=" MAC, BODY, T) != 0 && verify("t=17e8,v1=" MAC, BODY, T) != 0 &&
           verify("t=-1,v1=" MAC, BODY, T) != 0 && verify("v1=" MAC, BODY, T) != 0,
       "bad or missing timestamps");
    ok(verify("", BODY, T) != 0 && verify(NULL, BODY, T) != 0 && verify(",,,", BODY, T) != 0, "no header");
    char upper[] = "t=1700000000,v1=" MAC;
    for (char *p = upper + 16; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 32);
    ok(verify(upper, BODY, T) != 0, "hex is lower-case as Stripe sends it");
    const char *why;
    ok(zg_stripe_verify("t=1700000000,v1=" MAC, BODY, strlen(BODY), "", T, 300, &why) != 0, "no secret, no pass");
    ok(zg_stripe_verify("t=1700000000,v1=" MAC, BODY, strlen(BODY), "whsec_other", T, 300, &why) != 0,
       "another secret");
    char h[128];
    zg_stripe_sign(BODY, strlen(BODY), SECRET, T, h, sizeof h);
    is_str(h, "t=1700000000,v1=" MAC, "zg_stripe_sign makes the same header");
    /* sixteen wrong signatures before the right one: only the first 16 are looked at */
    char many[2048] = "t=1700000000";
    for (int i = 0; i < 16; i++)
        strcat(many, ",v1=" "1111111111111111111111111111111111111111111111111111111111111111");
    strcat(many, ",v1=" MAC);
    ok(verify(many, BODY, T) != 0, "at most 16 signatures are compared");
}

static void forms(void)
{
    zg_buf b;
    zg_buf_init(&b, 256);
    ok(zg_form_add(&b, "mode", "payment") == ZG_OK, "a pair");
    zg_form_add(&b, "line_items[0][price_data][unit_amount]", "10000");
    zg_form_add(&b, "success_url", "https://x.test/c?done=co_1&s={CHECKOUT_SESSION_ID}");
    zg_form_add(&b, "name", "Max top-up: 400,000,000 credits (4x) é");
    is_str(zg_buf_cstr(&b),
           "mode=payment&line_items%5B0%5D%5Bprice_data%5D%5Bunit_amount%5D=10000"
           "&success_url=https%3A%2F%2Fx.test%2Fc%3Fdone%3Dco_1%26s%3D%7BCHECKOUT_SESSION_ID%7D"
           "&name=Max%20top-up%3A%20400%2C000%2C000%20credits%20%284x%29%20%C3%A9",
           "keys and values percent-encoded");
    size_t len = b.len;
    ok(zg_form_add(&b, "k", "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234"
                            "5678901234567890123456789012345678901234567890123456789012345678901234567890123456789") ==
           ZG_E_TOOBIG,
       "a form over its cap is refused");
    ok(b.len >= len, "and the buffer keeps what it had");
    zg_buf_free(&b);
}

static int parse(const char *json, zg_stripe_event *ev)
{
    const char *why = NULL;
    int rc = zg_stripe_event_parse(json, strlen(json), ev, &why);
    ok(rc == 0 || (why && *why), "a refusal says why (%s)", why ? why : "-");
    return rc;
}

static void events(void)
{
    zg_stripe_event ev;
    ok(parse("{\"id\":\"evt_1\",\"object\":\"event\",\"type\":\"checkout.session.completed\",\"data\":{\"object\":"
             "{\"id\":\"cs_test_1\",\"object\":\"checkout.session\",\"payment_status\":\"paid\",\"amount_total\":10000,"
             "\"currency\":\"usd\",\"payment_intent\":\"pi_1\",\"metadata\":{\"checkout_id\":\"42\"}}}}",
             &ev) == 0,
       "a paid checkout");
    is_int(ev.kind, ZG_EV_GRANT, "grants");
    is_str(ev.id, "evt_1", "event id");
    is_str(ev.session, "cs_test_1", "session");
    is_str(ev.intent, "pi_1", "payment intent");
    is_str(ev.currency, "usd", "currency");
    is_int(ev.amount_cents, 10000, "amount");
    is_int(ev.checkout_id, 42, "the gateway's checkout id");
    ok(parse("{\"id\":\"evt_2\",\"object\":\"event\",\"type\":\"checkout.session.completed\",\"data\":{\"object\":"
             "{\"id\":\"cs_test_1\",\"object\":\"checkout.session\",\"payment_status\":\"unpaid\","
             "\"amount_total\":10000,\"currency\":\"usd\",\"payment_intent\":null,\"metadata\":{}}}}",
             &ev) == 0 &&
           ev.kind == ZG_EV_PENDING && ev.intent[0] == '\0' && ev.checkout_id == 0,
       "completed but unpaid: pending, no intent yet");
    const char *kinds[][2] = {{"checkout.session.async_payment_succeeded", "1"},
                              {"checkout.session.async_payment_failed", "3"},
                              {"checkout.session.expired", "4"},
                              {"checkout.session.created", "0"}};
    for (size_t i = 0; i < 4; i++) {
        char j[512];
        snprintf(j, sizeof j,
                 "{\"id\":\"evt_k\",\"object\":\"event\",\"type\":\"%s\",\"data\":{\"object\":{\"id\":\"cs_1\","
                 "\"object\":\"checkout.session\",\"payment_status\":\"paid\"}}}",
                 kinds[i][0]);
        ok(parse(j, &ev) == 0 && ev.kind == kinds[i][1][0] - '0', "%s", kinds[i][0]);
    }
    ok(parse("{\"id\":\"evt_r\",\"object\":\"event\",\"type\":\"charge.refunded\",\"data\":{\"object\":{\"id\":\"ch_1\","
             "\"object\":\"charge\",\"payment_intent\":\"pi_1\",\"amount_refunded\":2500,\"currency\":\"usd\"}}}",
             &ev) == 0 &&
           ev.kind == ZG_EV_REFUND && ev.amount_cents == 2500 && strcmp(ev.intent, "pi_1") == 0,
       "a refund");
    ok(parse("{\"id\":\"evt_r\",\"object\":\"event\",\"type\":\"charge.refunded\",\"data\":{\"object\":{\"id\":\"ch_1\","
             "\"object\":\"charge\",\"amount_refunded\":2500}}}",
             &ev) != 0,
       "a refund without its payment intent");
    ok(parse("{\"id\":\"evt_r\",\"object\":\"event\",\"type\":\"charge.refunded\",\"data\":{\"object\":{\"id\":\"ch_1\","
             "\"object\":\"charge\",\"payment_intent\":\"pi_1\",\"amount_refunded\":-5}}}",
             &ev) != 0,
       "a negative refund");
    ok(parse("{\"id\":\"evt_p\",\"object\":\"event\",\"type\":\"payment_intent.created\",\"data\":{\"object\":{}}}",
             &ev) == 0 &&
           ev.kind == ZG_EV_OTHER,
       "other events parse as nothing to do");
    ok(parse("{\"id\":\"evt_x\",\"object\":\"event\",\"type\":\"checkout.session.completed\",\"data\":{\"object\":"
             "{\"object\":\"checkout.session\",\"payment_status\":\"paid\"}}}",
             &ev) != 0,
       "a session without an id");
    ok(parse("{\"id\":\"evt_x\",\"object\":\"event\",\"type\":\"checkout.session.completed\",\"data\":{\"object\":"
             "{\"id\":\"cs 1\",\"object\":\"checkout.session\",\"payment_status\":\"paid\"}}}",
             &ev) != 0,
       "an id with a blank");
    ok(parse("{\"id\":\"evt_x\",\"object\":\"event\",\"type\":\"checkout.session.completed\",\"data\":{\"object\":"
             "{\"id\":\"cs_1\",\"object\":\"checkout.session\",\"payment_status\":\"paid\",\"amount_total\":\"100\","
             "\"metadata\":{\"checkout_id\":\"x1\"}}}}",
             &ev) == 0 &&
           ev.amount_cents == -1 && ev.checkout_id == 0,
       "an amount that is not a number and a bad metadata id are left unknown");
    ok(parse("{\"object\":\"event\",\"type\":\"x\",\"data\":{\"object\":{}}}", &ev) != 0, "no id");
    ok(parse("{\"id\":\"evt_1\",\"object\":\"charge\",\"type\":\"x\",\"data\":{\"object\":{}}}", &ev) != 0,
       "not an event");
    ok(parse("{\"id\":\"evt_1\",\"object\":\"event\",\"type\":\"x\"}", &ev) != 0, "no data");
    ok(parse("[]", &ev) != 0 && parse("", &ev) != 0 && parse("{\"id\":\"evt_1\"} x", &ev) != 0, "not an object");
}

int main(void)
{
    signatures();
    forms();
    events();
    return tap_done();
}
