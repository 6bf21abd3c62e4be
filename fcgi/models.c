/* models: the catalog in the shape each SDK lists models, the calling key's own figures
 * (/api/v1/key), and protocol-shaped 404s for any other /api/ path the web server hands to it. */
#include "zg_auth.h"
#include "zg_catalog.h"
#include "zg_db.h"
#include "zg_err.h"
#include "zg_models.h"
#include "zg_num.h"
#include "zg_portal.h"
#include "zg_route.h"
#include "zg_server.h"
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

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

static const char SQL_KEY_INFO[] =
    "SELECT k.name, k.prefix, k.spend_limit, k.spent, k.held, u.balance, u.held, zg_plan_rank(u.id),"
    " DATE_FORMAT(k.created_at, '%Y-%m-%dT%H:%i:%sZ')"
    " FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = ?";

struct key_info {
    json_object *o;
};

static int key_row(void *ctx, int nc, char **v, const size_t *l)
{
    (void)l;
    struct key_info *k = ctx;
    if (nc < 9)
        return 1;
    json_object *d = json_object_new_object();
    int64_t spent = zg_i64_or0(v[3]), held = zg_i64_or0(v[4]);
    json_object_object_add(d, "name", json_object_new_string(v[0] ? v[0] : ""));
    json_object_object_add(d, "label", json_object_new_string(v[0] && v[0][0] ? v[0] : v[1] ? v[1] : ""));
    json_object_object_add(d, "prefix", json_object_new_string(v[1] ? v[1] : ""));
    json_object_object_add(d, "created_at", v[8] ? json_object_new_string(v[8]) : NULL);
    /* OpenRouter's members are US dollars as numbers; the exact figures are credits and strings */
    json_object_object_add(d, "limit", v[2] ? json_object_new_double((double)zg_i64_or0(v[2]) / 1e6) : NULL);
    json_object_object_add(d, "usage", json_object_new_double((double)spent / 1e6));
    int64_t left = v[2] ? zg_i64_or0(v[2]) - spent - held : 0;
    json_object_object_add(d, "limit_remaining", v[2] ? json_object_new_double((double)(left > 0 ? left : 0) / 1e6) : NULL);
    json_object_object_add(d, "limit_credits", v[2] ? json_object_new_int64(zg_i64_or0(v[2])) : NULL);
    json_object_object_add(d, "limit_usd", v[2] ? zg_portal_usd_json(zg_i64_or0(v[2])) : NULL);
    json_object_object_add(d, "spent_credits", json_object_new_int64(spent));
    json_object_object_add(d, "spent_usd", zg_portal_usd_json(spent));
    json_object_object_add(d, "held_credits", json_object_new_int64(held));
    json_object_object_add(d, "remaining_credits", v[2] ? json_object_new_int64(left > 0 ? left : 0) : NULL);
    json_object *a = json_object_new_object();
    json_object_object_add(a, "plan", json_object_new_string(zg_plan_name((int)zg_i64_or0(v[7]))));
    json_object_object_add(a, "credits", json_object_new_int64(zg_i64_or0(v[5])));
    json_object_object_add(a, "credits_usd", zg_portal_usd_json(zg_i64_or0(v[5])));
    json_object_object_add(a, "held", json_object_new_int64(zg_i64_or0(v[6])));
    json_object_object_add(d, "account", a);
    k->o = json_object_new_object();
    json_object_object_add(k->o, "data", d);
    return 1;
}

/* /api/v1/key (OpenRouter's shape): the calling key's name, limit, spend and what is left under
 * its limit, and the account's free credits and plan. Needs the key; no session. */
static int key_show(zg_req *r)
{
    r->proto = ZG_PROTO_OPENAI;
    zg_principal who;
    if (zg_auth_require(r, &who) != 0)
        return 0;
    struct key_info k = {NULL};
    zg_val p[] = {ZG_INT(who.key_id)};
    if (zg_db_run(r->db, SQL_KEY_INFO, p, 1, key_row, &k, NULL) != 0 || !k.o)
        return zg_err_reply(r, ZG_ERR_UNAVAILABLE, "the service is briefly unavailable; try again shortly");
    const char *s = json_object_to_json_string_ext(k.o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    zg_resp_header(r, "cache-control", "no-store");
    zg_resp_json(r, 200, s, strlen(s));
    json_object_put(k.o);
    return 0;
}

static const zg_route routes[] = {
    {"GET", "/api/v1/key", key_show, -1},
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
