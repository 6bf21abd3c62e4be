/* messages: the Anthropic Messages surface (/messages and /messages/count_tokens, also under the
 * extra /v1 that the Anthropic SDK and Claude Code add to the base URL). */
#include "zg_config.h"
#include "zg_pipeline.h"
#include "zg_route.h"
#include "zg_server.h"
#include <stdio.h>
#include <string.h>

static int parse(zg_call *c, char *why, size_t whylen)
{
    if (zg_call_take_model(c, "/api/v1/models", why, whylen) != 0)
        return -1;
    zg_json_int(c->json, "max_tokens", &c->max_output);
    /* the 1M-context beta widens what the provider may read: inputs it expands are held for it */
    const char *beta = zg_req_header(c->r, "anthropic-beta");
    if (beta && strstr(beta, "context-1m"))
        c->context_window = 1000000;
    return 0;
}

/* claude-* go to Anthropic; DeepSeek, Moonshot and Zhipu models through their Anthropic-compatible
 * endpoints when one is configured. */
static int route(zg_call *c, char *why, size_t whylen)
{
    int p = zg_provider_parse(c->model.provider);
    if (p == ZG_PROV_ANTHROPIC)
        return p;
    if ((p == ZG_PROV_DEEPSEEK || p == ZG_PROV_MOONSHOT || p == ZG_PROV_ZHIPU) &&
        c->r->cfg->prov[p].anthropic_base_url[0])
        return p;
    snprintf(why, whylen, "%s is not served on the Anthropic surface; use %s", c->model.id,
             p == ZG_PROV_GEMINI ? "/api/v1/gemini" : "/api/v1/codex");
    return -1;
}

static int prepare_path(zg_call *c, const char *path)
{
    const zg_provider_conf *pc = c->pc;
    const char *base = c->provider == ZG_PROV_ANTHROPIC ? pc->base_url : pc->anthropic_base_url;
    char beta[16];
    int q = zg_req_query_get(c->r, "beta", beta, sizeof beta);
    if (zg_call_url(c, base, path, q > 0 && strcmp(beta, "true") == 0 ? "beta=true" : NULL) != 0)
        return -1;
    const char *version = zg_req_header(c->r, "anthropic-version");
    if (zg_call_header(c, "x-api-key", pc->api_key) || zg_call_header(c, "anthropic-version", version && *version ? version : "2023-06-01") ||
        zg_call_forward(c, "anthropic-beta") || zg_call_header(c, "content-type", "application/json") ||
        zg_call_header(c, "Expect", "") || zg_call_header(c, "Accept", c->stream ? "text/event-stream" : "application/json"))
        return -1;
    if (strcmp(c->model_name, c->model.id) == 0) {
        zg_call_send_raw(c);
        return 0;
    }
    /* an alias: the upstream gets the catalog id */
    json_object_object_add(c->json, "model", json_object_new_string(c->model.id));
    return zg_call_send_json(c);
}

static int prepare_messages(zg_call *c)
{
    return prepare_path(c, "/v1/messages");
}

static int prepare_count(zg_call *c)
{
    return prepare_path(c, "/v1/messages/count_tokens");
}

static const zg_surface messages = {
    .name = "messages", .rl_group = "messages", .rl_limit = 0, .billed = true, .usage = ZG_USAGE_ANTHROPIC,
    .parse = parse, .route = route, .prepare = prepare_messages,
};

static const zg_surface count_tokens = {
    .name = "messages", .rl_group = "count_tokens", .rl_limit = 3, .billed = false, .usage = ZG_USAGE_ANTHROPIC,
    .parse = parse, .route = route, .prepare = prepare_count,
};

static int create(zg_req *r)
{
    return zg_pipeline_run(r, &messages);
}

static int count(zg_req *r)
{
    return zg_pipeline_run(r, &count_tokens);
}

static const zg_route routes[] = {
    {"POST", "/api/v1/messages", create, -1},
    {"POST", "/api/v1/v1/messages", create, -1},
    {"POST", "/api/v1/messages/count_tokens", count, -1},
    {"POST", "/api/v1/v1/messages/count_tokens", count, -1},
};

static int handle(zg_req *r)
{
    return zg_dispatch(r, routes, sizeof routes / sizeof routes[0]);
}

int main(int argc, char **argv)
{
    return zg_server_main("messages", ZG_PROTO_ANTHROPIC, handle, argc, argv);
}
