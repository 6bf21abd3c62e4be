/* The payment processor (Stripe): webhook signatures, form-encoded requests, the events the
 * gateway acts on. Pure functions apart from zg_stripe_post, so each has a unit test. */
#ifndef ZG_STRIPE_H
#define ZG_STRIPE_H
#include <stdbool.h>
#include <stdint.h>
#include "zg_buf.h"

struct zg_settings;

#define ZG_STRIPE_TOLERANCE 300    /* seconds a signed event's timestamp may be off */
#define ZG_STRIPE_EVENT_MAX 262144 /* bytes of a webhook body read at most */

/* Check a Stripe-Signature header ("t=TIMESTAMP,v1=HEX,v1=HEX,..." ) against payload[len]: some v1
 * must equal the hex HMAC-SHA256 of "TIMESTAMP." + payload under secret (compared in constant time)
 * and TIMESTAMP be within tolerance seconds of now. 0 when it holds; -1 with *why set. */
int zg_stripe_verify(const char *header, const char *payload, size_t len, const char *secret, int64_t now,
                     int64_t tolerance, const char **why);
/* The header value a signer would send for payload at time t (tests and the stand-in's twin); one
 * without a signature when OpenSSL failed. */
void zg_stripe_sign(const char *payload, size_t len, const char *secret, int64_t t, char *out, size_t cap);

/* Append key=value to a form body (application/x-www-form-urlencoded; '&' between pairs), both
 * percent-encoded. ZG_OK or the buffer's error. */
int zg_form_add(zg_buf *b, const char *key, const char *value);

/* What the gateway reads from an event. Kinds: checkout events by what they mean for the checkout. */
enum { ZG_EV_OTHER = 0, ZG_EV_GRANT, ZG_EV_PENDING, ZG_EV_FAILED, ZG_EV_EXPIRED, ZG_EV_REFUND };
typedef struct zg_stripe_event {
    char id[256], type[64];
    int kind;
    char session[256];        /* checkout events: the session's id */
    char intent[256];         /* the payment intent (checkout events when paid; refunds) */
    char currency[8];
    int64_t amount_cents;     /* checkout: amount_total; refund: the charge's amount_refunded; -1 absent */
    int64_t checkout_id;      /* metadata.checkout_id, 0 absent */
} zg_stripe_event;

/* Parse an event's JSON: 0 with *ev filled, -1 with *why when it is not an event object (or a field
 * the gateway needs is malformed). Events of other types parse with kind ZG_EV_OTHER. */
int zg_stripe_event_parse(const char *json, size_t len, zg_stripe_event *ev, const char **why);

/* POST form to api_base + path with the secret key and Idempotency-Key idem (may be NULL): 0 with
 * the HTTP *status and the body in resp (capped), or -1 when no answer came (outcome unknown). */
int zg_stripe_post(const struct zg_settings *s, const char *path, const char *form, size_t len, const char *idem,
                   zg_buf *resp, long *status);

#endif
