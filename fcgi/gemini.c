/* gemini: Google's native Gemini API and its OpenAI-compatible surface. */
#include "zg_auth.h"
#include "zg_models.h"
#include "zg_route.h"
#include "zg_server.h"

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
    {"POST", "/api/v1/gemini/v1beta/models/*", zg_route_not_yet, ZG_PROTO_GEMINI},
    {"POST", "/api/v1/gemini/v1/models/*", zg_route_not_yet, ZG_PROTO_GEMINI},
    {"GET", "/api/v1/gemini/v1beta/openai/models", openai_list, ZG_PROTO_OPENAI},
    {"GET", "/api/v1/gemini/models", openai_list, ZG_PROTO_OPENAI},
    {"POST", "/api/v1/gemini/chat/completions", zg_route_not_yet, ZG_PROTO_OPENAI},
    {"POST", "/api/v1/gemini/v1beta/openai/chat/completions", zg_route_not_yet, ZG_PROTO_OPENAI},
};

static int handle(zg_req *r)
{
    return zg_dispatch(r, routes, sizeof routes / sizeof routes[0]);
}

int main(int argc, char **argv)
{
    return zg_server_main("gemini", ZG_PROTO_GEMINI, handle, argc, argv);
}
