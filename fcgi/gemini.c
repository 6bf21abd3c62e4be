/* gemini: Google's native Gemini API (generateContent, streamGenerateContent, countTokens, models,
 * under /v1beta/ and /v1/) and its OpenAI-compatible chat/completions. */
#include "zg_auth.h"
#include "zg_config.h"
#include "zg_models.h"
#include "zg_openai.h"
#include "zg_route.h"
#include "zg_server.h"
#include <stdio.h>
#include <string.h>

/* "MODEL:ACTION" from the path into the call; action goes to surface_state as a static string. */
static int parse_native(zg_call *c, char *why, size_t whylen)
{
    const char *rest = c->r->route_rest;
    const char *colon = strrchr(rest, ':');
    if (!colon || colon == rest || (size_t)(colon - rest) >= sizeof c->model_name) {
        snprintf(why, whylen, "Expected .../models/MODEL:generateContent, :streamGenerateContent or :countTokens");
        return -1;
    }
    memcpy(c->model_name, rest, (size_t)(colon - rest));
    c->model_name[colon - rest] = '\0';
    const char *action = colon + 1;
    if (strcmp(action, "generateContent") == 0)
        c->surface_state = "generateContent";
    else if (strcmp(action, "streamGenerateContent") == 0)
        c->surface_state = "streamGenerateContent";
    else if (strcmp(action, "countTokens") == 0)
        c->surface_state = "countTokens";
    else {
        snprintf(why, whylen, "Unknown method '%.64s': use generateContent, streamGenerateContent or countTokens",
                 action);
        return -1;
    }
    c->stream = strcmp(c->surface_state, "streamGenerateContent") == 0;
    struct json_object *gc;
    if (json_object_object_get_ex(c->json, "generationConfig", &gc)) {
        zg_json_int(gc, "maxOutputTokens", &c->max_output);
        zg_json_int(gc, "candidateCount", &c->choices); /* candidates: that many times the output */
    }
    return 0;
}

static int route_gemini(zg_call *c, char *why, size_t whylen)
{
    int p = zg_provider_parse(c->model.provider);
    if (p == ZG_PROV_GEMINI && strcmp(c->model.kind, "chat") == 0)
        return p;
    snprintf(why, whylen, "%s is not served on the Gemini surface; use %s", c->model.id,
             p == ZG_PROV_ANTHROPIC ? "/api/v1" : "/api/v1/codex");
    return -1;
}

static int prepare_native(zg_call *c)
{
    const zg_provider_conf *pc = c->pc;
    const char *version = strncmp(c->r->path, "/api/v1/gemini/v1/", 18) == 0 ? "v1" : "v1beta";
    char path[256], alt[16];
    snprintf(path, sizeof path, "/%s/models/%s:%s", version, c->model.id, (const char *)c->surface_state);
    int q = zg_req_query_get(c->r, "alt", alt, sizeof alt);
    if (zg_call_url(c, pc->base_url, path, q > 0 && strcmp(alt, "sse") == 0 ? "alt=sse" : NULL) != 0 ||
        zg_call_header(c, "x-goog-api-key", pc->api_key) || zg_call_header(c, "content-type", "application/json") ||
        zg_call_header(c, "Expect", ""))
        return -1;
    zg_call_send_raw(c);
    return 0;
}

static const zg_surface native = {
    .name = "gemini", .rl_group = "messages", .rl_limit = 0, .billed = true, .usage = ZG_USAGE_GEMINI,
    .parse = parse_native, .route = route_gemini, .prepare = prepare_native,
};

static const zg_surface count = {
    .name = "gemini", .rl_group = "count_tokens", .rl_limit = 3, .billed = false, .usage = ZG_USAGE_GEMINI,
    .parse = parse_native, .route = route_gemini, .prepare = prepare_native,
};

/* Google's OpenAI-compatible chat: the codex surface's code, Gemini routing, the same
 * rate-limit group as /messages. */
static const zg_surface openai_chat = {
    .name = "gemini", .rl_group = "messages", .rl_limit = 0, .billed = true, .usage = ZG_USAGE_OPENAI_CHAT,
    .parse = zg_openai_chat_parse, .route = route_gemini, .prepare = zg_openai_chat_prepare,
    .hide_event = zg_openai_chat_hide,
};

static int generate(zg_req *r)
{
    size_t n = strlen(r->route_rest);
    const char *suffix = ":countTokens";
    size_t sl = strlen(suffix);
    bool is_count = n > sl && strcmp(r->route_rest + n - sl, suffix) == 0;
    return zg_pipeline_run(r, is_count ? &count : &native);
}

static int chat(zg_req *r)
{
    return zg_pipeline_run(r, &openai_chat);
}

static int native_list(zg_req *r)
{
    zg_principal who;
    if (zg_auth_require(r, &who) != 0)
        return 0;
    return zg_models_reply_gemini_list(r);
}

static int native_one(zg_req *r)
{
    zg_principal who;
    if (zg_auth_require(r, &who) != 0)
        return 0;
    return zg_models_reply_gemini_one(r, r->route_rest);
}

static int openai_list(zg_req *r)
{
    zg_principal who;
    if (zg_auth_require(r, &who) != 0)
        return 0;
    return zg_models_reply_list(r, ZG_LIST_GEMINI);
}

static const zg_route routes[] = {
    {"GET", "/api/v1/gemini/v1beta/models", native_list, ZG_PROTO_GEMINI},
    {"GET", "/api/v1/gemini/v1/models", native_list, ZG_PROTO_GEMINI},
    {"GET", "/api/v1/gemini/v1beta/models/*", native_one, ZG_PROTO_GEMINI},
    {"GET", "/api/v1/gemini/v1/models/*", native_one, ZG_PROTO_GEMINI},
    {"POST", "/api/v1/gemini/v1beta/models/*", generate, ZG_PROTO_GEMINI},
    {"POST", "/api/v1/gemini/v1/models/*", generate, ZG_PROTO_GEMINI},
    {"GET", "/api/v1/gemini/v1beta/openai/models", openai_list, ZG_PROTO_OPENAI},
    {"GET", "/api/v1/gemini/models", openai_list, ZG_PROTO_OPENAI},
    {"POST", "/api/v1/gemini/chat/completions", chat, ZG_PROTO_OPENAI},
    {"POST", "/api/v1/gemini/v1beta/openai/chat/completions", chat, ZG_PROTO_OPENAI},
};

static int handle(zg_req *r)
{
    return zg_dispatch(r, routes, sizeof routes / sizeof routes[0]);
}

int main(int argc, char **argv)
{
    return zg_server_main("gemini", ZG_PROTO_GEMINI, handle, argc, argv);
}
