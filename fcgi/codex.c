/* codex: the OpenAI surface (chat/completions, responses, models) for OpenAI, DeepSeek, Moonshot
 * and Zhipu models. /api/v1/responses is the same as /api/v1/codex/responses. */
#include "zg_auth.h"
#include "zg_config.h"
#include "zg_err.h"
#include "zg_models.h"
#include "zg_openai.h"
#include "zg_route.h"
#include "zg_server.h"
#include <stdio.h>

/* The Responses API is OpenAI's own; the other providers speak chat/completions only. */
static int responses_route(zg_call *c, char *why, size_t whylen)
{
    int p = zg_openai_codex_route(c, why, whylen);
    if (p < 0 || p == ZG_PROV_OPENAI)
        return p;
    snprintf(why, whylen, "%s is served through /api/v1/codex/chat/completions (its provider has no Responses API)",
             c->model.id);
    return -1;
}

static const zg_surface chat = {
    .name = "codex", .rl_group = "codex", .rl_limit = 1, .billed = true, .usage = ZG_USAGE_OPENAI_CHAT,
    .parse = zg_openai_chat_parse, .route = zg_openai_codex_route, .prepare = zg_openai_chat_prepare,
    .hide_event = zg_openai_chat_hide,
};

static const zg_surface responses = {
    .name = "codex", .rl_group = "codex", .rl_limit = 1, .billed = true, .usage = ZG_USAGE_OPENAI_RESPONSES,
    .parse = zg_openai_responses_parse, .route = responses_route, .prepare = zg_openai_responses_prepare,
};

static int do_chat(zg_req *r)
{
    return zg_pipeline_run(r, &chat);
}

static int do_responses(zg_req *r)
{
    return zg_pipeline_run(r, &responses);
}

static int list(zg_req *r)
{
    zg_principal who;
    if (zg_auth_require(r, &who) != 0)
        return 0;
    return zg_models_reply_list(r, ZG_LIST_OPENAI);
}

static int one(zg_req *r)
{
    zg_principal who;
    if (zg_auth_require(r, &who) != 0)
        return 0;
    return zg_models_reply_one(r, r->route_rest);
}

/* Codex CLI tries a WebSocket upgrade first; 426 makes it fall back to HTTP streaming at once. */
static int websocket(zg_req *r)
{
    return zg_err_reply(r, ZG_ERR_UPGRADE, "WebSocket transport is not offered; use HTTP POST with SSE");
}

static const zg_route routes[] = {
    {"GET", "/api/v1/codex/models", list, -1},
    {"GET", "/api/v1/codex/models/*", one, -1},
    {"POST", "/api/v1/codex/chat/completions", do_chat, -1},
    {"POST", "/api/v1/codex/responses", do_responses, -1},
    {"GET", "/api/v1/codex/responses", websocket, -1},
    {"POST", "/api/v1/responses", do_responses, -1},
    {"GET", "/api/v1/responses", websocket, -1},
};

static int handle(zg_req *r)
{
    return zg_dispatch(r, routes, sizeof routes / sizeof routes[0]);
}

int main(int argc, char **argv)
{
    return zg_server_main("codex", ZG_PROTO_OPENAI, handle, argc, argv);
}
