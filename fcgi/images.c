/* images: image generation (gpt-image-2) and the list of image, video and audio models. */
#include "zg_auth.h"
#include "zg_models.h"
#include "zg_route.h"
#include "zg_server.h"

static int list(zg_req *r)
{
    zg_principal who;
    if (zg_auth_optional(r, &who) != 0)
        return 0;
    return zg_models_reply_list(r, ZG_LIST_IMAGES);
}

static const zg_route routes[] = {
    {"GET", "/api/v1/images/generations", list, -1},
    {"POST", "/api/v1/images/generations", zg_route_not_yet, -1},
};

static int handle(zg_req *r)
{
    return zg_dispatch(r, routes, sizeof routes / sizeof routes[0]);
}

int main(int argc, char **argv)
{
    return zg_server_main("images", ZG_PROTO_OPENAI, handle, argc, argv);
}
