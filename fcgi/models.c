/* models: the catalog in the shape each SDK lists models, and protocol-shaped 404s for any other
 * /api/ path the web server hands to it. */
#include "zg_auth.h"
#include "zg_models.h"
#include "zg_route.h"
#include "zg_server.h"

/* /api/v1/models is the public catalog; a key, if sent, must be valid. */
static int list_public(zg_req *r)
{
    zg_principal who;
    if (zg_auth_optional(r, &who) != 0)
        return 0;
    return zg_models_reply_list(r, ZG_LIST_ALL);
}

static int one_public(zg_req *r)
{
    zg_principal who;
    if (zg_auth_optional(r, &who) != 0)
        return 0;
    return zg_models_reply_one(r, r->route_rest);
}

/* {base}/v1/models is where the Anthropic SDK lists models: authenticated, like the provider. */
static int list_sdk(zg_req *r)
{
    zg_principal who;
    if (zg_auth_require(r, &who) != 0)
        return 0;
    return zg_models_reply_list(r, ZG_LIST_ALL);
}

static int one_sdk(zg_req *r)
{
    zg_principal who;
    if (zg_auth_require(r, &who) != 0)
        return 0;
    return zg_models_reply_one(r, r->route_rest);
}

static const zg_route routes[] = {
    {"GET", "/api/v1/models", list_public, -1},
    {"GET", "/api/v1/models/*", one_public, -1},
    {"GET", "/api/v1/v1/models", list_sdk, -1},
    {"GET", "/api/v1/v1/models/*", one_sdk, -1},
};

static int handle(zg_req *r)
{
    r->proto = zg_route_proto_for(r->path);
    return zg_dispatch(r, routes, sizeof routes / sizeof routes[0]);
}

int main(int argc, char **argv)
{
    return zg_server_main("models", ZG_PROTO_ANTHROPIC, handle, argc, argv);
}
