#include "zg_usage.h"
#include "zg_num.h"
#include <json-c/json.h>
#include <string.h>

#define EV(lit) (elen == sizeof(lit) - 1 && memcmp(event, lit, sizeof(lit) - 1) == 0)

static struct json_object *parse(const char *s, size_t n)
{
    if (n == 0 || n > (64u << 20))
        return NULL;
    struct json_tokener *tok = json_tokener_new_ex(64);
    if (!tok)
        return NULL;
    struct json_object *o = json_tokener_parse_ex(tok, s, (int)n);
    if (json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

static struct json_object *get(struct json_object *o, const char *k)
{
    struct json_object *v = NULL;
    if (o && json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, k, &v))
        return v;
    return NULL;
}

/* Integer member k of o into *out when present and an integer; returns whether it was. */
static bool num(struct json_object *o, const char *k, int64_t *out)
{
    struct json_object *v = get(o, k);
    if (!v || !json_object_is_type(v, json_type_int))
        return false;
    int64_t x = json_object_get_int64(v);
    *out = x < 0 ? 0 : x;
    return true;
}

static void anthropic_usage(zg_usage *u, struct json_object *us, bool final)
{
    if (!us)
        return;
    int64_t v, cc = -1, c5 = -1, c1 = -1;
    if (num(us, "input_tokens", &v)) {
        u->input = v;
        u->have_input = true;
    }
    if (num(us, "cache_read_input_tokens", &v))
        u->cache_read = v;
    if (num(us, "cache_creation_input_tokens", &v))
        cc = v;
    struct json_object *cd = get(us, "cache_creation");
    if (cd) {
        if (num(cd, "ephemeral_5m_input_tokens", &v))
            c5 = v;
        if (num(cd, "ephemeral_1h_input_tokens", &v))
            c1 = v;
    }
    if (c5 >= 0 || c1 >= 0) {
        u->cache_write_5m = c5 < 0 ? 0 : c5;
        u->cache_write_1h = c1 < 0 ? 0 : c1;
    } else if (cc >= 0) {
        /* no breakdown: the default cache lifetime is 5 minutes */
        u->cache_write_5m = cc;
        u->cache_write_1h = 0;
    }
    if (num(us, "output_tokens", &v)) {
        u->output = v;
        if (final)
            u->have_output = true;
    }
}

static void openai_chat_usage(zg_usage *u, struct json_object *us)
{
    if (!us || !json_object_is_type(us, json_type_object))
        return;
    int64_t prompt = 0, completion = 0, cached = 0, v;
    if (num(us, "prompt_tokens", &prompt))
        u->have_input = true;
    if (num(us, "completion_tokens", &completion))
        u->have_output = true;
    struct json_object *pd = get(us, "prompt_tokens_details");
    if (num(pd, "cached_tokens", &v))
        cached = v;
    if (num(us, "prompt_cache_hit_tokens", &v)) /* DeepSeek */
        cached = v;
    if (cached == 0 && num(us, "cached_tokens", &v)) /* Moonshot */
        cached = v;
    if (cached > prompt)
        cached = prompt;
    u->input = prompt - cached;
    u->cache_read = cached;
    u->output = completion;
    struct json_object *cd = get(us, "completion_tokens_details");
    if (num(cd, "reasoning_tokens", &v))
        u->reasoning = v;
}

/* Usage of one chat stream chunk: top-level "usage" (OpenAI, DeepSeek, Zhipu, Gemini), else the
 * first choice's "usage" (Moonshot's final chunk without stream_options). */
static void chat_chunk_usage(zg_usage *u, struct json_object *o)
{
    struct json_object *us = get(o, "usage");
    if (!us || !json_object_is_type(us, json_type_object)) {
        struct json_object *ch = get(o, "choices");
        if (ch && json_object_is_type(ch, json_type_array) && json_object_array_length(ch) > 0)
            us = get(json_object_array_get_idx(ch, 0), "usage");
    }
    openai_chat_usage(u, us);
}

/* Does a chat chunk carry a usage object (not only "usage":null, which every chunk of a stream
 * with include_usage has)? A byte scan that may say yes wrongly, never no wrongly. */
static bool has_usage(const char *d, size_t n)
{
    const char *p = d, *end = d + n;
    while ((p = memmem(p, (size_t)(end - p), "\"usage\"", 7)) != NULL) {
        p += 7;
        while (p < end && (*p == ' ' || *p == ':' || *p == '\t' || *p == '\r' || *p == '\n'))
            p++;
        if (p + 4 > end || memcmp(p, "null", 4) != 0)
            return true;
    }
    return false;
}

/* A Responses event without an event: line whose data says it is the terminal one. */
static bool responses_terminal_type(const char *d, size_t n)
{
    static const char *const types[] = {"\"response.completed\"", "\"response.incomplete\"",
                                        "\"response.failed\""};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (memmem(d, n, types[i], strlen(types[i])))
            return true;
    return false;
}

static void responses_usage(zg_usage *u, struct json_object *us)
{
    if (!us || !json_object_is_type(us, json_type_object))
        return;
    int64_t in = 0, out = 0, cached = 0, v;
    if (num(us, "input_tokens", &in))
        u->have_input = true;
    if (num(us, "output_tokens", &out))
        u->have_output = true;
    if (num(get(us, "input_tokens_details"), "cached_tokens", &v))
        cached = v;
    if (cached > in)
        cached = in;
    u->input = in - cached;
    u->cache_read = cached;
    u->output = out;
    if (num(get(us, "output_tokens_details"), "reasoning_tokens", &v))
        u->reasoning = v;
}

static void gemini_chunk(zg_usage *u, struct json_object *o)
{
    struct json_object *um = get(o, "usageMetadata");
    if (um) {
        int64_t prompt = 0, cached = 0, cand = 0, thoughts = 0;
        if (num(um, "promptTokenCount", &prompt))
            u->have_input = true;
        num(um, "cachedContentTokenCount", &cached);
        bool have_cand = num(um, "candidatesTokenCount", &cand);
        bool have_thoughts = num(um, "thoughtsTokenCount", &thoughts);
        if (have_cand || have_thoughts)
            u->have_output = true;
        if (cached > prompt)
            cached = prompt;
        u->input = prompt - cached;
        u->cache_read = cached;
        u->output = cand + thoughts;
        u->reasoning = thoughts;
    }
    struct json_object *c = get(o, "candidates");
    if (c && json_object_is_type(c, json_type_array) && json_object_array_length(c) > 0 &&
        get(json_object_array_get_idx(c, 0), "finishReason"))
        u->finished = true;
}

void zg_usage_from_event(zg_usage *u, zg_usage_kind kind, const char *event, size_t elen, const char *data,
                         size_t dlen)
{
    struct json_object *o = NULL;
    switch (kind) {
    case ZG_USAGE_ANTHROPIC:
        if (EV("message_start")) {
            o = parse(data, dlen);
            anthropic_usage(u, get(get(o, "message"), "usage"), false);
        } else if (EV("message_delta")) {
            o = parse(data, dlen);
            anthropic_usage(u, get(o, "usage"), true);
        } else if (EV("message_stop")) {
            u->finished = true;
        }
        break;
    case ZG_USAGE_OPENAI_CHAT:
        if (dlen == 6 && memcmp(data, "[DONE]", 6) == 0) {
            u->finished = true;
        } else if (has_usage(data, dlen)) {
            o = parse(data, dlen);
            chat_chunk_usage(u, o);
        }
        break;
    case ZG_USAGE_OPENAI_RESPONSES:
        if (EV("response.completed") || EV("response.incomplete") || EV("response.failed")) {
            o = parse(data, dlen);
            responses_usage(u, get(get(o, "response"), "usage"));
            u->finished = true;
        } else if (elen == 0 && responses_terminal_type(data, dlen)) {
            /* no event: line; the data's own type decides */
            o = parse(data, dlen);
            struct json_object *t = get(o, "type");
            const char *ts = t && json_object_is_type(t, json_type_string) ? json_object_get_string(t) : "";
            if (strcmp(ts, "response.completed") == 0 || strcmp(ts, "response.incomplete") == 0 ||
                strcmp(ts, "response.failed") == 0) {
                responses_usage(u, get(get(o, "response"), "usage"));
                u->finished = true;
            }
        }
        break;
    case ZG_USAGE_GEMINI:
        if (memmem(data, dlen, "usageMetadata", 13) || memmem(data, dlen, "finishReason", 12)) {
            o = parse(data, dlen);
            gemini_chunk(u, o);
        }
        break;
    case ZG_USAGE_IMAGES:
        /* stream: true: each image ends with an image_generation.completed event */
        if (EV("image_generation.completed") ||
            (elen == 0 && memmem(data, dlen, "\"image_generation.completed\"", 28) &&
             (o = parse(data, dlen)) != NULL && get(o, "type") &&
             strcmp(json_object_get_string(get(o, "type")), "image_generation.completed") == 0)) {
            u->units++;
            u->finished = true;
        }
        break;
    }
    json_object_put(o);
}

void zg_usage_from_body(zg_usage *u, zg_usage_kind kind, const char *json, size_t len)
{
    struct json_object *o = parse(json, len);
    if (!o)
        return;
    switch (kind) {
    case ZG_USAGE_ANTHROPIC:
        anthropic_usage(u, get(o, "usage"), true);
        u->finished = get(o, "usage") != NULL;
        break;
    case ZG_USAGE_OPENAI_CHAT:
        chat_chunk_usage(u, o);
        u->finished = get(o, "usage") != NULL;
        break;
    case ZG_USAGE_OPENAI_RESPONSES:
        responses_usage(u, get(o, "usage"));
        u->finished = get(o, "usage") != NULL;
        break;
    case ZG_USAGE_GEMINI:
        if (json_object_is_type(o, json_type_array)) {
            size_t n = json_object_array_length(o);
            for (size_t i = 0; i < n; i++)
                gemini_chunk(u, json_object_array_get_idx(o, i));
        } else {
            gemini_chunk(u, o);
        }
        u->finished = u->have_output;
        break;
    case ZG_USAGE_IMAGES: {
        struct json_object *d = get(o, "data");
        if (d && json_object_is_type(d, json_type_array)) {
            u->units = (int64_t)json_object_array_length(d);
            u->finished = true;
        }
        break;
    }
    }
    json_object_put(o);
}

/* Length of the JSON string value following the first occurrence of key (e.g. "\"text\":\""),
 * counting an escape sequence as one byte. */
static size_t string_after(const char *d, size_t n, const char *key)
{
    size_t kl = strlen(key);
    const char *p = memmem(d, n, key, kl);
    if (!p)
        return 0;
    p += kl;
    const char *end = d + n;
    size_t len = 0;
    while (p < end && *p != '"') {
        if (*p == '\\' && p + 1 < end)
            p += (p[1] == 'u' && end - p >= 6) ? 6 : 2;
        else
            p++;
        len++;
    }
    return len;
}

size_t zg_usage_delta_text(zg_usage_kind kind, const char *data, size_t dlen)
{
    size_t n = 0;
    switch (kind) {
    case ZG_USAGE_ANTHROPIC:
        n = string_after(data, dlen, "\"text\":\"");
        if (!n)
            n = string_after(data, dlen, "\"thinking\":\"");
        if (!n)
            n = string_after(data, dlen, "\"partial_json\":\"");
        break;
    case ZG_USAGE_OPENAI_CHAT:
        n = string_after(data, dlen, "\"content\":\"") + string_after(data, dlen, "\"reasoning_content\":\"");
        break;
    case ZG_USAGE_OPENAI_RESPONSES:
        n = string_after(data, dlen, "\"delta\":\"");
        break;
    case ZG_USAGE_GEMINI:
        n = string_after(data, dlen, "\"text\":\"");
        break;
    default:
        break;
    }
    return n;
}

int64_t zg_usage_estimate_output(int64_t text_bytes)
{
    return text_bytes <= 0 ? 0 : (text_bytes + 3) / 4;
}

/* Price of one token kind, scaled to the long-context tier when it applies: cache writes (and a
 * cache read without a tier price) follow the input price's ratio. */
static int64_t tiered(int64_t base, int64_t base_in, int64_t long_in, bool is_long)
{
    if (!is_long || base <= 0 || base_in <= 0)
        return base;
    unsigned __int128 x = (unsigned __int128)base * (uint64_t)long_in / (uint64_t)base_in;
    return x > (unsigned __int128)((int64_t)1 << 40) ? ((int64_t)1 << 40) : (int64_t)x;
}

bool zg_usage_is_long(const zg_usage *u, const zg_model *m)
{
    if (m->long_threshold <= 0)
        return false;
    int64_t k[4] = {u->input, u->cache_read, u->cache_write_5m, u->cache_write_1h};
    int64_t total = 0;
    for (int i = 0; i < 4; i++)
        if (k[i] > 0 && __builtin_add_overflow(total, k[i], &total))
            return true;
    return total > m->long_threshold;
}

int64_t zg_usage_cost(const zg_usage *u, const zg_model *m)
{
    bool is_long = zg_usage_is_long(u, m);
    int64_t base_in = m->price_input < 0 ? 0 : m->price_input;
    int64_t in = is_long ? m->long_input : base_in;
    int64_t cr = is_long && m->long_cache_read >= 0 ? m->long_cache_read
                 : m->price_cache_read < 0         ? in
                                                   : tiered(m->price_cache_read, base_in, m->long_input, is_long);
    int64_t tokens[5] = {u->input, u->output, u->cache_read, u->cache_write_5m, u->cache_write_1h};
    int64_t prices[5] = {
        in,
        is_long ? m->long_output : (m->price_output < 0 ? 0 : m->price_output),
        cr,
        m->price_cache_write_5m < 0 ? in : tiered(m->price_cache_write_5m, base_in, m->long_input, is_long),
        m->price_cache_write_1h < 0 ? in : tiered(m->price_cache_write_1h, base_in, m->long_input, is_long),
    };
    int64_t c = zg_price_tokens(tokens, prices, 5);
    if (u->units > 0 && m->price_unit > 0) {
        int64_t units = u->units > 1000000 ? 1000000 : u->units; /* an upstream's count, clamped */
        int64_t extra;
        if (__builtin_mul_overflow(units, m->price_unit, &extra) || __builtin_add_overflow(c, extra, &c))
            c = INT64_MAX;
    }
    return c;
}

bool zg_usage_final(const zg_usage *u, zg_usage_kind kind)
{
    switch (kind) {
    case ZG_USAGE_ANTHROPIC:   /* message_delta carries the final output count */
    case ZG_USAGE_OPENAI_CHAT: /* the usage chunk comes after every choice */
        return u->have_output || u->finished;
    case ZG_USAGE_OPENAI_RESPONSES:
    case ZG_USAGE_GEMINI: /* the chunk with finishReason carries the totals */
        return u->finished;
    default:
        return false; /* images are counted one by one: only the end of the answer is final */
    }
}
