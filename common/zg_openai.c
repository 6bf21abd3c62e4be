#include "zg_openai.h"
#include "zg_config.h"
#include <stdio.h>
#include <string.h>

static int take_model(zg_call *c, char *why, size_t whylen)
{
    return zg_call_take_model(c, "/api/v1/codex/models", why, whylen);
}

int zg_openai_chat_parse(zg_call *c, char *why, size_t whylen)
{
    if (take_model(c, why, whylen) != 0)
        return -1;
    struct json_object *msgs;
    if (!json_object_object_get_ex(c->json, "messages", &msgs) || !json_object_is_type(msgs, json_type_array)) {
        snprintf(why, whylen, "messages: an array of messages is required");
        return -1;
    }
    if (!zg_json_int(c->json, "max_completion_tokens", &c->max_output))
        zg_json_int(c->json, "max_tokens", &c->max_output);
    zg_json_int(c->json, "n", &c->choices); /* n choices: n times the output */
    return 0;
}

int zg_openai_responses_parse(zg_call *c, char *why, size_t whylen)
{
    if (take_model(c, why, whylen) != 0)
        return -1;
    zg_json_int(c->json, "max_output_tokens", &c->max_output);
    return 0;
}

int zg_openai_codex_route(zg_call *c, char *why, size_t whylen)
{
    int p = zg_provider_parse(c->model.provider);
    if (strcmp(c->model.kind, "chat") == 0 &&
        (p == ZG_PROV_OPENAI || p == ZG_PROV_DEEPSEEK || p == ZG_PROV_MOONSHOT || p == ZG_PROV_ZHIPU))
        return p;
    snprintf(why, whylen, "%s is not served on the OpenAI surface; use %s", c->model.id,
             p == ZG_PROV_ANTHROPIC ? "/api/v1 (Anthropic Messages)"
             : p == ZG_PROV_GEMINI  ? "/api/v1/gemini"
                                    : "/api/v1/images/generations");
    return -1;
}

static int common_headers(zg_call *c)
{
    const zg_provider_conf *pc = c->pc;
    char bearer[600];
    snprintf(bearer, sizeof bearer, "Bearer %s", pc->api_key);
    if (zg_call_header(c, "Authorization", bearer) || zg_call_header(c, "content-type", "application/json") ||
        zg_call_header(c, "Expect", "") ||
        zg_call_header(c, "Accept", c->stream ? "text/event-stream" : "application/json"))
        return -1;
    if (c->provider == ZG_PROV_OPENAI && zg_call_forward(c, "openai-beta"))
        return -1;
    return 0;
}

/* Has the client itself asked for usage in the stream? Then the usage chunk is theirs to see. */
static bool client_wants_usage(struct json_object *j)
{
    struct json_object *so;
    return json_object_object_get_ex(j, "stream_options", &so) && zg_json_bool(so, "include_usage");
}

int zg_openai_chat_prepare(zg_call *c)
{
    const zg_provider_conf *pc = c->pc;
    const char *base = c->provider == ZG_PROV_GEMINI ? pc->openai_base_url : pc->base_url;
    if (zg_call_url(c, base, "/chat/completions", NULL) != 0 || common_headers(c) != 0)
        return -1;
    bool rewrite = strcmp(c->model_name, c->model.id) != 0;
    if (rewrite)
        json_object_object_add(c->json, "model", json_object_new_string(c->model.id));
    if (c->stream && (c->surface_state || !client_wants_usage(c->json))) {
        /* usage only comes in a final chunk when asked for: always ask, hide it from the client */
        struct json_object *so;
        if (!json_object_object_get_ex(c->json, "stream_options", &so) || !json_object_is_type(so, json_type_object)) {
            so = json_object_new_object();
            json_object_object_add(c->json, "stream_options", so);
        }
        json_object_object_add(so, "include_usage", json_object_new_boolean(1));
        c->surface_state = (void *)1; /* hide the usage-only chunk */
        rewrite = true;
    }
    if (!rewrite) {
        zg_call_send_raw(c);
        return 0;
    }
    return zg_call_send_json(c);
}

static const char *skip_blanks(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

/* Is there a member `name` (quoted) whose value starts with `open` ('{' or '['), and for '[' is
 * the empty array? Blanks around the colon and inside [] are allowed. */
static bool member_is(const char *d, size_t n, const char *name, char open)
{
    const char *p = d, *end = d + n;
    size_t nl = strlen(name);
    while ((p = memmem(p, (size_t)(end - p), name, nl)) != NULL) {
        p = skip_blanks(p + nl, end);
        if (p >= end || *p != ':')
            continue;
        p = skip_blanks(p + 1, end);
        if (p >= end || *p != open)
            continue;
        if (open == '{')
            return true;
        p = skip_blanks(p + 1, end);
        if (p < end && *p == ']')
            return true;
    }
    return false;
}

bool zg_openai_chat_hide(zg_call *c, const char *event, size_t elen, const char *data, size_t dlen)
{
    (void)event;
    (void)elen;
    if (!c->surface_state)
        return false;
    /* the usage-only chunk has an empty choices array and a usage object */
    return member_is(data, dlen, "\"choices\"", '[') && member_is(data, dlen, "\"usage\"", '{');
}

int zg_openai_responses_prepare(zg_call *c)
{
    c->r->responses_stream = c->stream;
    if (zg_call_url(c, c->pc->base_url, "/responses", NULL) != 0 || common_headers(c) != 0)
        return -1;
    if (strcmp(c->model_name, c->model.id) == 0) {
        zg_call_send_raw(c);
        return 0;
    }
    json_object_object_add(c->json, "model", json_object_new_string(c->model.id));
    return zg_call_send_json(c);
}
