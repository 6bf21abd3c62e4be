/* codex: the OpenAI surface (chat/completions, responses, models). */
#include "zg_auth.h"
#include "zg_err.h"
#include "zg_models.h"
#include "zg_route.h"
#include "zg_server.h"

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
    {"POST", "/api/v1/codex/chat/completions", zg_route_not_yet, -1},
    {"POST", "/api/v1/codex/responses", zg_route_not_yet, -1},
    {"GET", "/api/v1/codex/responses", websocket, -1},
    {"POST", "/api/v1/responses", zg_route_not_yet, -1},
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
