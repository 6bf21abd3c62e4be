/* zg_inspect: duplicate members and input the provider expands; and the hold and tiered cost they
 * feed (zg_billing_hold_estimate, zg_usage_cost). */
#include "zg_billing.h"
#include "zg_inspect.h"
#include "zg_usage.h"
#include "tap.h"
#include <stdlib.h>

static struct json_object *parse(const char *s)
{
    return json_tokener_parse(s);
}

int main(void)
{
    static const struct {
        const char *json;
        int rc;
        const char *name;
    } dups[] = {
        {"{\"model\":\"a\",\"max_tokens\":1}", 0, ""},
        {"{\"model\":\"claude-opus-4-7\",\"model\":\"claude-haiku-4-5\"}", 1, "model"},
        {"{\"model\":\"a\",\"mod\\u0065l\":\"b\"}", 1, "model"},
        {"{\"m\\\"x\":1,\"m\\\"x\":2}", 1, "m\"x"},
        {"{\"stream\":true,\"x\":{\"stream\":false}}", 0, ""},
        {"{\"a\":{\"b\":1,\"b\":2}}", 1, "b"},
        {"{\"a\":[{\"t\":1},{\"t\":2}],\"b\":[{\"t\":1,\"t\":2}]}", 1, "t"},
        {"{\"s\":\"{\\\"model\\\":1,\\\"model\\\":2}\"}", 0, ""},
        {"{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}", 1, "\xf0\x9f\x98\x80"},
        {"[{\"n\":1},{\"n\":2}]", 0, ""},
        {"{\"max_tokens\":1,\"stream\":false,\"max_tokens\":9}", 1, "max_tokens"},
        {"{}", 0, ""},
    };
    for (size_t i = 0; i < sizeof dups / sizeof dups[0]; i++) {
        char name[64] = "";
        int rc = zg_inspect_duplicate(dups[i].json, strlen(dups[i].json), name, sizeof name);
        is_int(rc, dups[i].rc, "duplicate scan of %s", dups[i].json);
        if (dups[i].rc == 1)
            is_str(name, dups[i].name, "names the duplicate");
    }
    /* many members, one duplicate at the end: found (sorted, not quadratic) */
    size_t cap = 2000000;
    char *big = malloc(cap);
    size_t k = 0;
    big[k++] = '{';
    for (int i = 0; i < 100000; i++)
        k += (size_t)snprintf(big + k, cap - k, "\"k%d\":%d,", i, i);
    k += (size_t)snprintf(big + k, cap - k, "\"k77\":0}");
    char name[64];
    is_int(zg_inspect_duplicate(big, k, name, sizeof name), 1, "a duplicate among 100,000 members");
    is_str(name, "k77", "named");
    free(big);

    static const struct {
        const char *json;
        bool expands;
    } ex[] = {
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", false},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"document\",\"source\":{\"type\":\"url\","
         "\"url\":\"https://x/y.pdf\"}}]}]}",
         true},
        {"{\"messages\":[{\"content\":[{\"type\":\"image\",\"source\":{\"type\":\"file\",\"file_id\":\"f\"}}]}]}", true},
        {"{\"messages\":[{\"content\":[{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"data\":\"AA\"}}]}]}",
         false},
        {"{\"model\":\"gpt-5.5\",\"previous_response_id\":\"resp_1\",\"input\":\"go on\"}", true},
        {"{\"model\":\"gpt-5.5\",\"previous_response_id\":null,\"input\":\"go on\"}", false},
        {"{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_file\",\"file_id\":\"file-1\"}]}]}", true},
        {"{\"messages\":[{\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x/a.png\"}}]}]}",
         true},
        {"{\"messages\":[{\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,AA\"}}]}]}",
         false},
        {"{\"contents\":[{\"parts\":[{\"fileData\":{\"fileUri\":\"gs://b/o\"}}]}]}", true},
        {"{\"cachedContent\":\"cachedContents/abc\",\"contents\":[]}", true},
        {"{\"tools\":[{\"type\":\"web_search_20250305\",\"name\":\"web_search\"}]}", true},
        {"{\"tools\":[{\"googleSearch\":{}}]}", true},
        {"{\"tools\":[{\"name\":\"f\",\"input_schema\":{\"properties\":{\"file_id\":{\"type\":\"string\"},"
         "\"source\":{\"type\":\"url\"}}}}]}",
         false},
        {"{\"messages\":[{\"content\":\"my file_id is fileData\"}]}", false},
    };
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) {
        struct json_object *o = parse(ex[i].json);
        ok(o != NULL, "parsed %zu", i);
        is_int(zg_inspect_expands(o), ex[i].expands, "expands: %s", ex[i].json);
        json_object_put(o);
    }

    /* holds: Opus-like prices, $15 / $75, 200K window, long tier above 200K at 2x / 1.5x */
    zg_settings cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.hold_output_cap = 4096;
    cfg.hold_input_cap = 32768;
    zg_model m;
    memset(&m, 0, sizeof m);
    m.price_input = 15000000;
    m.price_output = 75000000;
    m.price_cache_read = 1500000;
    m.price_cache_write_5m = 18750000;
    m.price_cache_write_1h = 30000000;
    m.price_unit = -1;
    m.context_window = 200000;
    m.long_threshold = 200000;
    m.long_input = 30000000;
    m.long_output = 112500000;
    m.long_cache_read = 3000000;
    zg_hold_req q = {.input_tokens = 100, .max_output = 0};
    int64_t absent = zg_billing_hold_estimate(&cfg, &m, &q);
    q.max_output = 128000;
    is_int(zg_billing_hold_estimate(&cfg, &m, &q), absent, "no max_tokens holds what a large one does");
    is_int(absent, (100 * 15000000LL + 4096 * 75000000LL + 500000) / 1000000, "100 in + 4096 out");
    q.max_output = 100;
    is_int(zg_billing_hold_estimate(&cfg, &m, &q), (100 * 15000000LL + 100 * 75000000LL) / 1000000,
           "a small cap holds the small cap");
    q.choices = 8;
    is_int(zg_billing_hold_estimate(&cfg, &m, &q), (100 * 15000000LL + 800 * 75000000LL) / 1000000,
           "n = 8 holds 8 outputs");
    q.choices = 0;
    q.expands = true;
    is_int(zg_billing_hold_estimate(&cfg, &m, &q), (200000 * 15000000LL + 100 * 75000000LL) / 1000000,
           "expanded input holds the context window");
    m.expand_input = 50000;
    is_int(zg_billing_hold_estimate(&cfg, &m, &q), (50000 * 15000000LL + 100 * 75000000LL) / 1000000,
           "or the model's expand_input");
    m.expand_input = 0;
    q.context_window = 1000000;
    is_int(zg_billing_hold_estimate(&cfg, &m, &q), (1000000 * 30000000LL + 100 * 112500000LL) / 1000000,
           "the 1M window at the long tier");

    /* tiered cost: the whole request at the long prices once input of all kinds passes the threshold */
    zg_usage u = {.input = 150000, .cache_read = 50000, .output = 1000};
    is_int(zg_usage_cost(&u, &m), (150000 * 15000000LL + 50000 * 1500000LL + 1000 * 75000000LL) / 1000000,
           "200,000 input tokens: base prices");
    u.input = 150001;
    is_int(zg_usage_cost(&u, &m), (150001 * 30000000LL + 50000 * 3000000LL + 1000 * 112500000LL) / 1000000,
           "200,001: long prices");
    u = (zg_usage){.input = 200001, .cache_write_5m = 1000, .cache_write_1h = 1000};
    is_int(zg_usage_cost(&u, &m), (200001 * 30000000LL + 1000 * 37500000LL + 1000 * 60000000LL) / 1000000,
           "cache writes scale with the input price");
    m.long_threshold = 0;
    is_int(zg_usage_cost(&u, &m), (200001 * 15000000LL + 1000 * 18750000LL + 1000 * 30000000LL + 500000) / 1000000,
           "no tier: base prices");
    u = (zg_usage){.units = INT64_MAX};
    m.price_unit = 60000;
    ok(zg_usage_cost(&u, &m) > 0, "an absurd unit count does not overflow");
    return tap_done();
}
