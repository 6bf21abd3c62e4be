/* libFuzzer harness: what the webhook reads before and after its signature check. Whatever a
 * Stripe-Signature header and a body hold, checking never crashes and never passes without the
 * secret; an event that parses has the fields the gateway needs for its kind. The first line of the
 * input is the header, the rest the body. */
#include "zg_stripe.h"
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    char *nl = memchr(s, '\n', size);
    const char *body = nl ? nl + 1 : "";
    if (nl)
        *nl = '\0';
    size_t blen = nl ? size - (size_t)(nl + 1 - s) : 0;
    const char *why;
    /* no header made without the secret may pass: the fuzzer does not know it */
    if (zg_stripe_verify(s, body, blen, "whsec_fuzz_3b1f0c9e2d", 1700000000, 300, &why) == 0)
        abort();
    char h[128];
    zg_stripe_sign(body, blen, "whsec_fuzz_3b1f0c9e2d", 1700000000, h, sizeof h);
    if (zg_stripe_verify(h, body, blen, "whsec_fuzz_3b1f0c9e2d", 1700000000, 300, &why) != 0)
        abort();
    zg_stripe_event ev;
    if (zg_stripe_event_parse(body, blen, &ev, &why) == 0) {
        if (!ev.id[0] || !ev.type[0])
            abort();
        if ((ev.kind == ZG_EV_GRANT || ev.kind == ZG_EV_PENDING || ev.kind == ZG_EV_FAILED ||
             ev.kind == ZG_EV_EXPIRED) &&
            !ev.session[0])
            abort();
        if (ev.kind == ZG_EV_REFUND && (!ev.intent[0] || ev.amount_cents < 0))
            abort();
    }
    free(s);
    return 0;
}
