/* images: image generation (gpt-image-2, OpenAI images payload) billed per image returned, and the
 * list of image, video and audio models. */
#include "zg_auth.h"
#include "zg_config.h"
#include "zg_models.h"
#include "zg_pipeline.h"
#include "zg_route.h"
#include "zg_server.h"
#include <stdio.h>
#include <string.h>

#define MAX_IMAGES 10

static int parse(zg_call *c, char *why, size_t whylen)
{
    const char *model = zg_json_str(c->json, "model");
    if (!model)
        model = "gpt-image-2";
    if (!*model || strlen(model) >= sizeof c->model_name) {
        snprintf(why, whylen, "model: invalid model name");
        return -1;
    }
    memcpy(c->model_name, model, strlen(model) + 1);
    const char *prompt = zg_json_str(c->json, "prompt");
    if (!prompt || !*prompt) {
        snprintf(why, whylen, "prompt: a text prompt is required");
        return -1;
    }
    c->units = 1;
    struct json_object *n;
    if (json_object_object_get_ex(c->json, "n", &n) &&
        (!zg_json_int(c->json, "n", &c->units) || c->units < 1 || c->units > MAX_IMAGES)) {
        snprintf(why, whylen, "n: the number of images must be an integer from 1 to %d", MAX_IMAGES);
        return -1;
    }
    return 0;
}

static int route(zg_call *c, char *why, size_t whylen)
{
    if (strcmp(c->model.kind, "image") == 0 && zg_provider_parse(c->model.provider) == ZG_PROV_OPENAI)
        return ZG_PROV_OPENAI;
    snprintf(why, whylen, "%s is not an image model; GET /api/v1/images/generations lists them", c->model.id);
    return -1;
}

static int prepare(zg_call *c)
{
    const zg_provider_conf *pc = c->pc;
    char bearer[600];
    snprintf(bearer, sizeof bearer, "Bearer %s", pc->api_key);
    if (zg_call_url(c, pc->base_url, "/images/generations", NULL) != 0 ||
        zg_call_header(c, "Authorization", bearer) || zg_call_header(c, "content-type", "application/json") ||
        zg_call_header(c, "Expect", ""))
        return -1;
    /* image generation is silent for minutes: wait for it, never re-submit */
    c->total_timeout = c->r->cfg->image_timeout;
    c->idle_timeout = c->r->cfg->image_timeout;
    /* the body must name the catalog model: OpenAI's own default for a missing model is another one */
    const char *asked = zg_json_str(c->json, "model");
    if (asked && strcmp(asked, c->model.id) == 0) {
        zg_call_send_raw(c);
        return 0;
    }
    json_object_object_add(c->json, "model", json_object_new_string(c->model.id));
    return zg_call_send_json(c);
}

static const zg_surface images = {
    .name = "images", .rl_group = "images", .rl_limit = 2, .billed = true, .usage = ZG_USAGE_IMAGES,
    .parse = parse, .route = route, .prepare = prepare,
};

static int generate(zg_req *r)
{
    return zg_pipeline_run(r, &images);
}

static int list(zg_req *r)
{
    zg_principal who;
    if (zg_auth_optional(r, &who) != 0)
        return 0;
    return zg_models_reply_list(r, ZG_LIST_IMAGES);
}

static const zg_route routes[] = {
    {"GET", "/api/v1/images/generations", list, -1},
    {"POST", "/api/v1/images/generations", generate, -1},
};

static int handle(zg_req *r)
{
    return zg_dispatch(r, routes, sizeof routes / sizeof routes[0]);
}

int main(int argc, char **argv)
{
    return zg_server_main("images", ZG_PROTO_OPENAI, handle, argc, argv);
}
