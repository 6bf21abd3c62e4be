/* messages: the Anthropic Messages surface. */
#include "zg_route.h"
#include "zg_server.h"

static const zg_route routes[] = {
    {"POST", "/api/v1/messages", zg_route_not_yet, -1},
    {"POST", "/api/v1/v1/messages", zg_route_not_yet, -1},
    {"POST", "/api/v1/messages/count_tokens", zg_route_not_yet, -1},
    {"POST", "/api/v1/v1/messages/count_tokens", zg_route_not_yet, -1},
};

static int handle(zg_req *r)
{
    return zg_dispatch(r, routes, sizeof routes / sizeof routes[0]);
}

int main(int argc, char **argv)
{
    return zg_server_main("messages", ZG_PROTO_ANTHROPIC, handle, argc, argv);
}
