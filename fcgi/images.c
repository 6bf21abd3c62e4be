/* images: image generation (gpt-image-2, OpenAI images payload) billed per image returned, at once
 * or in the background ("background": true: 202 with a job id, then GET .../generations/{id}), and
 * the list of image, video and audio models. */
#include "zg_auth.h"
#include "zg_config.h"
#include "zg_err.h"
#include "zg_imgjob.h"
#include "zg_models.h"
#include "zg_pipeline.h"
#include "zg_route.h"
#include "zg_server.h"
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAX_IMAGES 10

static const char rewritten = 1; /* c->surface_state when parse changed the body */

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
    /* "background": true (or Prefer: respond-async) runs it as a job; a string is OpenAI's own
     * background option (transparent, opaque, auto) and goes upstream */
    struct json_object *bg;
    if (json_object_object_get_ex(c->json, "background", &bg) && json_object_is_type(bg, json_type_boolean)) {
        c->background = json_object_get_boolean(bg);
        json_object_object_del(c->json, "background");
        c->surface_state = (void *)&rewritten;
    }
    const char *prefer = zg_req_header(c->r, "prefer");
    if (prefer && strcasestr(prefer, "respond-async"))
        c->background = true;
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
    if (zg_imgjob_upstream(c->pc, c->url, sizeof c->url, &c->headers) != 0)
        return -1;
    /* image generation is silent for minutes: wait for it, never re-submit */
    c->total_timeout = c->r->cfg->image_timeout;
    c->idle_timeout = c->r->cfg->image_timeout;
    /* the body must name the catalog model: OpenAI's own default for a missing model is another one */
    const char *asked = zg_json_str(c->json, "model");
    if (asked && strcmp(asked, c->model.id) == 0 && c->surface_state != &rewritten) {
        zg_call_send_raw(c);
        return 0;
    }
    json_object_object_add(c->json, "model", json_object_new_string(c->model.id));
    return zg_call_send_json(c);
}

/* Store an admitted background request as a job and answer 202 with its id. */
static int enqueue(zg_call *c)
{
    json_object_object_add(c->json, "model", json_object_new_string(c->model.id));
    size_t len = 0;
    const char *body =
        json_object_to_json_string_length(c->json, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    zg_imgjob_new j = {.request_id = c->r->request_id, .user_id = c->adm.who.user_id, .key_id = c->adm.who.key_id,
                       .plan_rank = c->adm.who.plan_rank, .model = c->model.id, .body = body, .len = len};
    char id[ZG_IMGJOB_ID_LEN + 1];
    int64_t created = 0;
    if (!body || zg_imgjob_enqueue(c->r->db, c->r->cfg, &j, id, &created) != 0)
        return -1;
    char out[256], loc[128];
    int n = snprintf(out, sizeof out, "{\"id\":\"%s\",\"object\":\"image.generation\",\"status\":\"queued\","
                     "\"created\":%lld,\"model\":\"%s\"}", id, (long long)created, c->model.id);
    snprintf(loc, sizeof loc, "/api/v1/images/generations/%s", id);
    zg_resp_header(c->r, "location", loc);
    zg_resp_json(c->r, 202, out, (size_t)n);
    return 0;
}

static const zg_surface images = {
    .name = "images", .rl_group = "images", .rl_limit = 2, .billed = true, .usage = ZG_USAGE_IMAGES,
    .parse = parse, .route = route, .prepare = prepare, .enqueue = enqueue,
};

/* GET /api/v1/images/generations/{id}: a background job of the key's user. */
static int show(zg_req *r)
{
    zg_principal who;
    if (zg_auth_require(r, &who) != 0)
        return 0;
    const char *id = r->route_rest ? r->route_rest : "";
    json_object *o = NULL;
    int rc = strlen(id) == ZG_IMGJOB_ID_LEN ? zg_imgjob_show(r->db, id, who.user_id, &o) : 0;
    if (rc < 0)
        return zg_err_reply(r, ZG_ERR_UNAVAILABLE, "The service is temporarily unavailable; retry shortly");
    if (rc == 0)
        return zg_err_reply(r, ZG_ERR_NOT_FOUND, "No image generation '%.40s' for this account (finished ones are kept "
                                                 "%d hours)", id, r->cfg->image_keep_hours);
    size_t len = 0;
    const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    zg_resp_header(r, "cache-control", "no-store");
    zg_resp_json(r, 200, s, len);
    json_object_put(o);
    return 0;
}

static const zg_server_hooks hooks = {zg_imgjob_start, zg_imgjob_upkeep, zg_imgjob_stop};

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
    {"GET", "/api/v1/images/generations/*", show, -1},
};

static int handle(zg_req *r)
{
    return zg_dispatch(r, routes, sizeof routes / sizeof routes[0]);
}

int main(int argc, char **argv)
{
    zg_server_set_hooks(&hooks);
    return zg_server_main("images", ZG_PROTO_OPENAI, handle, argc, argv);
}
