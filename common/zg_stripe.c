/* The payment processor (Stripe): webhook signatures, form bodies, events, and the one call the
 * gateway makes (creating a Checkout Session). */
#include "zg_stripe.h"
#include "zg_auth.h"
#include "zg_config.h"
#include "zg_log.h"
#include "zg_num.h"
#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <string.h>

#define SIGS_MAX 16 /* signatures looked at in one header at most */

/* hex HMAC-SHA256 of "t." + payload under secret into hex[65]: 0, or -1 when OpenSSL failed. */
static int mac_hex(const char *payload, size_t len, const char *secret, const char *t, size_t tlen, char hex[65])
{
    unsigned char md[32];
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0), OSSL_PARAM_construct_end()};
    size_t out = 0;
    bool done = ctx && EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret), params) == 1 &&
                EVP_MAC_update(ctx, (const unsigned char *)t, tlen) == 1 &&
                EVP_MAC_update(ctx, (const unsigned char *)".", 1) == 1 &&
                EVP_MAC_update(ctx, (const unsigned char *)payload, len) == 1 &&
                EVP_MAC_final(ctx, md, &out, sizeof md) == 1 && out == sizeof md;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    if (!done)
        return -1;
    zg_auth_hex(md, sizeof md, hex);
    return 0;
}

int zg_stripe_verify(const char *header, const char *payload, size_t len, const char *secret, int64_t now,
                     int64_t tolerance, const char **why)
{
    *why = "no Stripe-Signature header";
    if (!header || !*header)
        return -1;
    *why = "the webhook secret is not configured";
    if (!secret || !*secret)
        return -1;
    const char *t = NULL, *sig[SIGS_MAX];
    size_t tlen = 0, nsig = 0;
    for (const char *p = header; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 2 && p[0] == 't' && p[1] == '=' && !t) {
            t = p + 2;
            tlen = n - 2;
        } else if (n == 67 && strncmp(p, "v1=", 3) == 0 && nsig < SIGS_MAX) {
            sig[nsig++] = p + 3;
        }
        p += n + (end ? 1 : 0);
    }
    int64_t ts;
    *why = "the signature header has no valid timestamp";
    if (!t || zg_parse_i64(t, tlen, 0, INT64_MAX / 2, &ts) != 0)
        return -1;
    *why = "the signature's timestamp is outside the tolerance";
    if (ts < now - tolerance || ts > now + tolerance)
        return -1;
    *why = "no v1 signature in the header";
    if (nsig == 0)
        return -1;
    char want[65];
    *why = "the signature could not be computed";
    if (mac_hex(payload, len, secret, t, tlen, want) != 0)
        return -1;
    int hit = 0;
    for (size_t i = 0; i < nsig; i++)
        hit |= CRYPTO_memcmp(want, sig[i], 64) == 0;
    *why = "no signature matches the payload";
    return hit ? 0 : -1;
}

void zg_stripe_sign(const char *payload, size_t len, const char *secret, int64_t t, char *out, size_t cap)
{
    char ts[24], hex[65];
    int n = snprintf(ts, sizeof ts, "%lld", (long long)t);
    if (mac_hex(payload, len, secret, ts, (size_t)n, hex) != 0)
        hex[0] = '\0'; /* a header no check accepts */
    snprintf(out, cap, "t=%s,v1=%s", ts, hex);
}

static int enc(zg_buf *b, const char *s)
{
    static const char digits[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int rc;
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("-._~", *p)) {
            rc = zg_buf_putc(b, (char)*p);
        } else {
            char e[3] = {'%', digits[*p >> 4], digits[*p & 15]};
            rc = zg_buf_append(b, e, 3);
        }
        if (rc != ZG_OK)
            return rc;
    }
    return ZG_OK;
}

int zg_form_add(zg_buf *b, const char *key, const char *value)
{
    int rc = b->len ? zg_buf_putc(b, '&') : ZG_OK;
    if (rc == ZG_OK)
        rc = enc(b, key);
    if (rc == ZG_OK)
        rc = zg_buf_putc(b, '=');
    return rc == ZG_OK ? enc(b, value) : rc;
}

/* ---- events ------------------------------------------------------------------------------------- */

/* o.name as a printable ASCII token (no blanks) into out[cap]: 0, 1 absent or null, -1 malformed. */
static int token(json_object *o, const char *name, char *out, size_t cap)
{
    json_object *v;
    out[0] = '\0';
    if (!json_object_object_get_ex(o, name, &v) || !v)
        return 1;
    if (!json_object_is_type(v, json_type_string))
        return -1;
    const char *s = json_object_get_string(v);
    size_t n = (size_t)json_object_get_string_len(v);
    if (n == 0 || n >= cap)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return -1;
    memcpy(out, s, n + 1);
    return 0;
}

/* o.name as a JSON integer 0..10^13 (cents), or -1 when absent or not one. */
static int64_t cents(json_object *o, const char *name)
{
    json_object *v;
    if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_int))
        return -1;
    int64_t n = json_object_get_int64(v);
    return n >= 0 && n <= 10000000000000LL ? n : -1;
}

static int kind_of(const char *type, const char *payment_status)
{
    static const char pre[] = "checkout.session.";
    if (strcmp(type, "charge.refunded") == 0)
        return ZG_EV_REFUND;
    if (strncmp(type, pre, sizeof pre - 1) != 0)
        return ZG_EV_OTHER;
    const char *t = type + sizeof pre - 1;
    if (strcmp(t, "completed") == 0)
        return strcmp(payment_status, "paid") == 0 ? ZG_EV_GRANT
               : strcmp(payment_status, "unpaid") == 0 ? ZG_EV_PENDING
                                                       : ZG_EV_OTHER;
    if (strcmp(t, "async_payment_succeeded") == 0)
        return ZG_EV_GRANT;
    if (strcmp(t, "async_payment_failed") == 0)
        return ZG_EV_FAILED;
    if (strcmp(t, "expired") == 0)
        return ZG_EV_EXPIRED;
    return ZG_EV_OTHER;
}

static int parse_object(json_object *obj, zg_stripe_event *ev, const char **why)
{
    char what[32], status[32];
    token(obj, "object", what, sizeof what);
    if (ev->kind == ZG_EV_REFUND) {
        *why = "a charge.refunded event without a charge, its payment intent or amount_refunded";
        if (strcmp(what, "charge") != 0 || token(obj, "payment_intent", ev->intent, sizeof ev->intent) != 0 ||
            (ev->amount_cents = cents(obj, "amount_refunded")) < 0)
            return -1;
        token(obj, "currency", ev->currency, sizeof ev->currency);
        return 0;
    }
    *why = "a checkout event without a checkout.session object and its id";
    if (strcmp(what, "checkout.session") != 0 || token(obj, "id", ev->session, sizeof ev->session) != 0)
        return -1;
    *why = "a malformed payment_intent, currency or payment_status";
    if (token(obj, "payment_intent", ev->intent, sizeof ev->intent) < 0 ||
        token(obj, "currency", ev->currency, sizeof ev->currency) < 0 ||
        token(obj, "payment_status", status, sizeof status) < 0)
        return -1;
    ev->amount_cents = cents(obj, "amount_total");
    json_object *md, *id;
    if (json_object_object_get_ex(obj, "metadata", &md) && json_object_is_type(md, json_type_object) &&
        json_object_object_get_ex(md, "checkout_id", &id) && json_object_is_type(id, json_type_string)) {
        const char *s = json_object_get_string(id);
        if (zg_parse_i64(s, strlen(s), 1, INT64_MAX, &ev->checkout_id) != 0)
            ev->checkout_id = 0;
    }
    return 0;
}

int zg_stripe_event_parse(const char *json, size_t len, zg_stripe_event *ev, const char **why)
{
    memset(ev, 0, sizeof *ev);
    ev->amount_cents = -1;
    *why = "the body is not a JSON object";
    struct json_tokener *tok = json_tokener_new_ex(64);
    if (!tok || len > ZG_STRIPE_EVENT_MAX) {
        json_tokener_free(tok);
        return -1;
    }
    json_object *o = json_tokener_parse_ex(tok, json, (int)len);
    bool whole = json_tokener_get_error(tok) == json_tokener_success && tok->char_offset == (int)len;
    json_tokener_free(tok);
    int rc = -1;
    json_object *data, *obj;
    char what[16];
    if (!whole || !json_object_is_type(o, json_type_object))
        goto out;
    *why = "not an event object with an id and a type";
    if (token(o, "object", what, sizeof what) != 0 || strcmp(what, "event") != 0 ||
        token(o, "id", ev->id, sizeof ev->id) != 0 || token(o, "type", ev->type, sizeof ev->type) != 0)
        goto out;
    *why = "the event has no data.object";
    if (!json_object_object_get_ex(o, "data", &data) || !json_object_object_get_ex(data, "object", &obj) ||
        !json_object_is_type(obj, json_type_object))
        goto out;
    char status[32] = "";
    json_object *ps;
    if (json_object_object_get_ex(obj, "payment_status", &ps) && json_object_is_type(ps, json_type_string))
        snprintf(status, sizeof status, "%s", json_object_get_string(ps));
    ev->kind = kind_of(ev->type, status);
    rc = ev->kind == ZG_EV_OTHER ? 0 : parse_object(obj, ev, why);
out:
    json_object_put(o);
    return rc;
}

/* ---- the API call ------------------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    zg_buf *b = ud;
    return zg_buf_append(b, p, size * n) == ZG_OK ? size * n : 0;
}

int zg_stripe_post(const zg_settings *s, const char *path, const char *form, size_t len, const char *idem,
                   zg_buf *resp, long *status)
{
    char url[512], auth[300], key[128];
    snprintf(url, sizeof url, "%s%s", s->stripe_api_base, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", s->stripe_secret_key);
    snprintf(key, sizeof key, "Idempotency-Key: %s", idem ? idem : "");
    CURL *e = curl_easy_init();
    if (!e)
        return -1;
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, "Content-Type: application/x-www-form-urlencoded");
    h = curl_slist_append(h, "Accept: application/json");
    if (idem)
        h = curl_slist_append(h, key);
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, form);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_easy_perform(e);
    if (rc == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    else
        zg_warn("stripe: POST %s: %s", path, errbuf[0] ? errbuf : curl_easy_strerror(rc));
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    OPENSSL_cleanse(auth, sizeof auth);
    return rc == CURLE_OK ? 0 : -1;
}
