/* libFuzzer harness: usage extraction of every protocol, from SSE events (the input parsed as a
 * stream) and from whole bodies, then costing; counts must stay non-negative and the cost finite. */
#include "zg_sse.h"
#include "zg_usage.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct ctx {
    zg_usage u;
    zg_usage_kind kind;
};

static int on_event(void *p, const char *ev, size_t elen, const char *data, size_t dlen, const char *raw,
                    size_t rawlen)
{
    (void)raw;
    (void)rawlen;
    struct ctx *c = p;
    size_t t = zg_usage_delta_text(c->kind, data, dlen);
    if (t > dlen)
        abort();
    c->u.text_bytes += (int64_t)t;
    zg_usage_from_event(&c->u, c->kind, ev, elen, data, dlen);
    return 0;
}

static void check(const zg_usage *u)
{
    static const zg_model m = {.id = "m", .price_input = 3000000, .price_output = 15000000,
                               .price_cache_read = 300000, .price_cache_write_5m = 3750000,
                               .price_cache_write_1h = 6000000, .price_unit = 60000};
    static const zg_model unpriced = {.id = "u", .price_input = -1, .price_output = -1, .price_cache_read = -1,
                                      .price_cache_write_5m = -1, .price_cache_write_1h = -1, .price_unit = -1};
    (void)zg_usage_cost(u, &m);
    (void)zg_usage_cost(u, &unpriced);
    (void)zg_usage_estimate_output(u->text_bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct ctx c;
    memset(&c, 0, sizeof c);
    c.kind = (zg_usage_kind)(data[0] % 5);
    data++;
    size--;
    zg_sse p;
    zg_sse_init(&p, 1 << 20);
    zg_sse_feed(&p, (const char *)data, size, on_event, &c);
    zg_sse_free(&p);
    check(&c.u);
    zg_usage b;
    memset(&b, 0, sizeof b);
    zg_usage_from_body(&b, c.kind, (const char *)data, size);
    check(&b);
    return 0;
}
