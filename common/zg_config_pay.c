/* The payment settings: [stripe] (the processor), [plans] (what a checkout may buy) and [invoice]
 * (the seller on receipts). */
#include "zg_config.h"
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define USD 1000000 /* micro-dollars per dollar */

/* [plans] key as whole dollars in 1..max into *micros. */
static int dollars(const zg_config *c, const char *key, int64_t max, int64_t *micros, char *err, size_t errlen)
{
    int64_t v = *micros / USD;
    if (zg_config_int(c, "plans", key, 1, max, &v, err, errlen) != 0)
        return -1;
    *micros = v * USD;
    return 0;
}

static int strs(const zg_config *c, zg_settings *s, char *err, size_t errlen)
{
    return zg_config_str(c, "stripe", "api_base", s->stripe_api_base, sizeof s->stripe_api_base, err, errlen) ||
           zg_config_str(c, "stripe", "secret_key", s->stripe_secret_key, sizeof s->stripe_secret_key, err,
                         errlen) ||
           zg_config_str(c, "stripe", "webhook_secret", s->stripe_webhook_secret, sizeof s->stripe_webhook_secret,
                         err, errlen) ||
           zg_config_str(c, "stripe", "currency", s->stripe_currency, sizeof s->stripe_currency, err, errlen) ||
           zg_config_str(c, "invoice", "prefix", s->invoice_prefix, sizeof s->invoice_prefix, err, errlen) ||
           zg_config_str(c, "invoice", "seller_name", s->seller_name, sizeof s->seller_name, err, errlen) ||
           zg_config_str(c, "invoice", "seller_address", s->seller_address, sizeof s->seller_address, err,
                         errlen) ||
           zg_config_str(c, "invoice", "seller_tax_id", s->seller_tax_id, sizeof s->seller_tax_id, err, errlen) ||
           zg_config_str(c, "invoice", "seller_email", s->seller_email, sizeof s->seller_email, err, errlen) ||
           zg_config_env_str("ZENN_STRIPE_API_BASE", s->stripe_api_base, sizeof s->stripe_api_base, err, errlen) ||
           zg_config_env_str("ZENN_STRIPE_SECRET_KEY", s->stripe_secret_key, sizeof s->stripe_secret_key, err,
                             errlen) ||
           zg_config_env_str("ZENN_STRIPE_WEBHOOK_SECRET", s->stripe_webhook_secret, sizeof s->stripe_webhook_secret,
                             err, errlen)
               ? -1
               : 0;
}

int zg_settings_pay(zg_settings *s, const zg_config *c, char *err, size_t errlen)
{
    snprintf(s->stripe_api_base, sizeof s->stripe_api_base, "https://api.stripe.com");
    s->stripe_secret_key[0] = s->stripe_webhook_secret[0] = '\0';
    snprintf(s->stripe_currency, sizeof s->stripe_currency, "usd");
    s->pro_min_micros = 5LL * USD;
    s->pro_max_micros = 5000LL * USD;
    s->max_pack_micros = 100LL * USD;
    s->enterprise_pack_micros = 1000LL * USD;
    s->max_packs = 20;
    snprintf(s->invoice_prefix, sizeof s->invoice_prefix, "ZG");
    s->seller_name[0] = s->seller_address[0] = s->seller_tax_id[0] = s->seller_email[0] = '\0';
    if (strs(c, s, err, errlen) != 0)
        return -1;
    zg_config_trim_slashes(s->stripe_api_base);
    if (strncmp(s->stripe_api_base, "https://", 8) != 0 && strncmp(s->stripe_api_base, "http://", 7) != 0) {
        snprintf(err, errlen, "[stripe] api_base: expected an http(s):// address, got '%.80s'", s->stripe_api_base);
        return -1;
    }
    const char *cur = s->stripe_currency;
    if (strlen(cur) != 3 || !islower((unsigned char)cur[0]) || !islower((unsigned char)cur[1]) ||
        !islower((unsigned char)cur[2])) {
        snprintf(err, errlen, "[stripe] currency: expected three lower-case letters (usd), got '%s'", cur);
        return -1;
    }
    /* a receipt number is PREFIX-YYYY-NNNNNN: letters, digits and dashes keep it readable */
    if (!s->invoice_prefix[0] || strspn(s->invoice_prefix, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") !=
                                     strlen(s->invoice_prefix)) {
        snprintf(err, errlen, "[invoice] prefix: expected 1 to 16 of A-Z 0-9 -, got '%s'", s->invoice_prefix);
        return -1;
    }
    int64_t packs = s->max_packs;
    if (dollars(c, "pro_min_usd", 999999, &s->pro_min_micros, err, errlen) ||
        dollars(c, "pro_max_usd", 999999, &s->pro_max_micros, err, errlen) ||
        dollars(c, "max_pack_usd", 999999, &s->max_pack_micros, err, errlen) ||
        dollars(c, "enterprise_pack_usd", 999999, &s->enterprise_pack_micros, err, errlen) ||
        zg_config_int(c, "plans", "max_packs", 1, 1000, &packs, err, errlen))
        return -1;
    s->max_packs = (int)packs;
    if (s->pro_min_micros > s->pro_max_micros) {
        snprintf(err, errlen, "[plans] pro_min_usd is above pro_max_usd");
        return -1;
    }
    return 0;
}
