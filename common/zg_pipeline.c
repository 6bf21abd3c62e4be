#include "zg_pipeline.h"
#include "zg_conc.h"
#include "zg_auth.h"
#include "zg_config.h"
#include "zg_db.h"
#include "zg_err.h"
#include "zg_inspect.h"
#include "zg_log.h"
#include "zg_finish.h"
#include "zg_upstream.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define JSON_MAX_DEPTH 64

const char *zg_json_str(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

bool zg_json_int(struct json_object *o, const char *key, int64_t *out)
{
    struct json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
        return false;
    int64_t x = json_object_get_int64(v);
    if (x < 0)
        return false;
    *out = x;
    return true;
}

bool zg_json_bool(struct json_object *o, const char *key)
{
    struct json_object *v;
    return o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_boolean) &&
           json_object_get_boolean(v);
}

int zg_call_take_model(zg_call *c, const char *list_path, char *why, size_t whylen)
{
    const char *model = zg_json_str(c->json, "model");
    if (!model || !*model) {
        snprintf(why, whylen, "model: a model name is required (GET %s lists them)", list_path);
        return -1;
    }
    if (strlen(model) >= sizeof c->model_name) {
        snprintf(why, whylen, "model: name too long");
        return -1;
    }
    memcpy(c->model_name, model, strlen(model) + 1);
    c->stream = zg_json_bool(c->json, "stream");
    return 0;
}

int zg_call_header(zg_call *c, const char *name, const char *value)
{
    char line[8192];
    if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
        return -1;
    int n = snprintf(line, sizeof line, "%s: %s", name, value);
    if (n < 0 || (size_t)n >= sizeof line)
        return -1;
    struct curl_slist *l = curl_slist_append(c->headers, line);
    if (!l)
        return -1;
    c->headers = l;
    return 0;
}

int zg_call_forward(zg_call *c, const char *name)
{
    const char *v = zg_req_header(c->r, name);
    return v ? zg_call_header(c, name, v) : 0;
}

int zg_call_url(zg_call *c, const char *base, const char *path, const char *query)
{
    int n = snprintf(c->url, sizeof c->url, "%s%s%s%s", base, path, query && *query ? "?" : "",
                     query && *query ? query : "");
    return n < 0 || (size_t)n >= sizeof c->url ? -1 : 0;
}

int zg_call_send_json(zg_call *c)
{
    size_t len = 0;
    const char *s = json_object_to_json_string_length(c->json, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                                      &len);
    zg_buf_reset(&c->rewritten);
    if (!s || zg_buf_append(&c->rewritten, s, len) != ZG_OK)
        return -1;
    c->send_body = c->rewritten.data;
    c->send_len = c->rewritten.len;
    return 0;
}

void zg_call_send_raw(zg_call *c)
{
    c->send_body = c->r->body.data;
    c->send_len = c->r->body.len;
}

/* Types of the well-known request fields every surface shares, checked before a surface's own
 * parse so a wrong type is a 400 here rather than a silent default or an upstream round trip. A JSON
 * null counts as absent. */
enum { F_NAME, F_BOOL, F_COUNT, F_ARRAY, F_OBJECT };
#define COUNT_MAX 100000000

static const struct {
    const char *name;
    int kind;
} common_fields[] = {
    {"model", F_NAME},
    {"stream", F_BOOL},
    {"max_tokens", F_COUNT},
    {"max_completion_tokens", F_COUNT},
    {"max_output_tokens", F_COUNT},
    {"messages", F_ARRAY},
    {"contents", F_ARRAY},
    {"generationConfig", F_OBJECT},
    {"n", F_COUNT},
};

static int check_field(struct json_object *o, const char *name, int kind, char *why, size_t whylen)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, name, &v) || !v)
        return 0;
    switch (kind) {
    case F_NAME: {
        size_t n = json_object_is_type(v, json_type_string) ? (size_t)json_object_get_string_len(v) : 0;
        if (n == 0 || n > 128 || strlen(json_object_get_string(v)) != n) {
            snprintf(why, whylen, "%s: expected a model name (a non-empty string of at most 128 bytes)", name);
            return -1;
        }
        return 0;
    }
    case F_BOOL:
        if (json_object_is_type(v, json_type_boolean))
            return 0;
        snprintf(why, whylen, "%s: expected true or false", name);
        return -1;
    case F_COUNT: {
        int64_t x = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
        if (x >= 0 && x <= COUNT_MAX)
            return 0;
        snprintf(why, whylen, "%s: expected a whole number from 0 to %d", name, COUNT_MAX);
        return -1;
    }
    case F_ARRAY:
        if (json_object_is_type(v, json_type_array))
            return 0;
        snprintf(why, whylen, "%s: expected an array", name);
        return -1;
    default:
        if (json_object_is_type(v, json_type_object))
            return 0;
        snprintf(why, whylen, "%s: expected an object", name);
        return -1;
    }
}

static int check_common_fields(struct json_object *o, char *why, size_t whylen)
{
    for (size_t i = 0; i < sizeof common_fields / sizeof common_fields[0]; i++)
        if (check_field(o, common_fields[i].name, common_fields[i].kind, why, whylen) != 0)
            return -1;
    struct json_object *gc;
    if (json_object_object_get_ex(o, "generationConfig", &gc) && gc &&
        (check_field(gc, "maxOutputTokens", F_COUNT, why, whylen) != 0 ||
         check_field(gc, "candidateCount", F_COUNT, why, whylen) != 0))
        return -1;
    return 0;
}

/* An error found before admission: the key still decides first (401 beats 400/404/413/503). */
static int limit_for(const zg_settings *cfg, int which);

static int reject_after_auth(zg_call *c, zg_errkind kind, const char *msg)
{
    zg_principal who;
    if (zg_auth_require(c->r, &who) != 0)
        return 0;
    /* not counted against the limit, but the caller still learns where it stands */
    zg_admission rl;
    int limit = limit_for(c->r->cfg, c->sf->rl_limit);
    if (zg_billing_rate_peek(c->r->db, who.user_id, c->sf->rl_group, limit, &rl) == 0)
        zg_resp_ratelimit(c->r, rl.rl_limit, rl.rl_limit - rl.rl_used, rl.rl_reset);
    return zg_err_reply(c->r, kind, "%s", msg);
}

static int limit_for(const zg_settings *cfg, int which)
{
    switch (which) {
    case 1:
        return cfg->rl_codex;
    case 2:
        return cfg->rl_images;
    case 3:
        return cfg->rl_count_tokens;
    default:
        return cfg->rl_messages;
    }
}

/* ---- the pipeline ----------------------------------------------------------------------------------- */

static void call_free(zg_call *c)
{
    json_object_put(c->json);
    curl_slist_free_all(c->headers);
    zg_buf_free(&c->rewritten);
    zg_buf_free(&c->body_copy);
    zg_sse_free(&c->sse);
    free(c);
}

static int admit_reply(zg_call *c)
{
    zg_req *r = c->r;
    zg_admission *a = &c->adm;
    if (a->code != ZG_ADMIT_BAD_KEY && a->code != ZG_ADMIT_DB_ERROR)
        zg_resp_ratelimit(r, a->rl_limit, a->rl_limit - a->rl_used, a->rl_reset);
    switch (a->code) {
    case ZG_ADMIT_OK:
        return 1;
    case ZG_ADMIT_BAD_KEY:
        return zg_err_reply(r, ZG_ERR_AUTH, "Invalid API key: unknown or revoked");
    case ZG_ADMIT_PLAN:
        return zg_err_reply(r, ZG_ERR_PLAN, "Your plan (%s) does not unlock %s: it needs %s or higher",
                            zg_plan_name(a->who.plan_rank < 1 ? 1 : a->who.plan_rank), c->model.id,
                            zg_plan_name(c->model.min_plan));
    case ZG_ADMIT_RATE:
        return zg_err_reply(r, ZG_ERR_RATE, "Rate limit reached: %lld requests per hour for this endpoint group",
                            (long long)a->rl_limit);
    case ZG_ADMIT_BALANCE:
        return zg_err_reply(r, ZG_ERR_BALANCE,
                            "Insufficient credits for this request (it reserves %lld credits); top up at /checkout",
                            (long long)c->hold);
    case ZG_ADMIT_KEY_LIMIT:
        return zg_err_reply(r, ZG_ERR_KEY_LIMIT,
                            "This API key has reached its spend limit; raise the key limit or use another key");
    default: /* the database failed (and what the admission may have committed is undone) */
        return zg_err_reply(r, ZG_ERR_UNAVAILABLE, "The service is temporarily unavailable; retry shortly");
    }
}

static void settle(zg_call *c, const zg_upstream_out *up)
{
    zg_req *r = c->r;
    zg_settlement s = {.status = "settled", .upstream_status = c->up_status, .ttfb_ms = up->ttfb_ms,
                       .duration_ms = up->duration_ms, .channel = c->attempts ? c->chan.name : NULL,
                       .attempts = c->attempts};
    zg_usage *u = &c->usage;
    if (!c->is_sse && c->body_copy.len)
        zg_usage_from_body(u, c->sf->usage, c->body_copy.data, c->body_copy.len);
    bool reached = up->result != ZG_UP_CONNECT;
    switch (up->result) {
    case ZG_UP_OK:
        if (!c->up_ok)
            s.end_reason = "upstream_error";
        else if (c->is_sse && !u->finished)
            s.end_reason = "upstream_dropped";
        else
            s.end_reason = "complete";
        break;
    case ZG_UP_CONNECT:
        s.end_reason = "upstream_unreachable";
        break;
    case ZG_UP_TIMEOUT:
        s.end_reason = "upstream_timeout";
        break;
    case ZG_UP_CLIENT_GONE:
        s.end_reason = "client_closed";
        break;
    default:
        s.end_reason = "upstream_dropped";
    }
    /* A client that left never pays less than what was generated: the upstream was read to its
     * final usage (see relay_on); when that could not be had, the hold is the floor. */
    bool floor_hold = false;
    if (c->left && reached) {
        floor_hold = c->up_ok && !zg_usage_final(u, c->sf->usage) && !(up->result == ZG_UP_OK && !c->is_sse);
        s.end_reason = "client_closed";
    }
    /* What was not reported is estimated, by documented rules, once the upstream accepted the
     * request: input from the request size, output from the text relayed (ceil(bytes / 4)). */
    if (reached && c->up_ok && strcmp(s.end_reason, "complete") != 0 && !u->finished) {
        if (!u->have_input && c->sf->usage != ZG_USAGE_IMAGES) {
            u->input = c->input_estimate;
            s.estimated = true;
        }
        if (!u->have_output) {
            int64_t est = zg_usage_estimate_output(u->text_bytes);
            if (est > u->output)
                u->output = est;
            s.estimated = true;
        }
    }
    s.credits = zg_usage_cost(u, &c->model);
    if (floor_hold && s.credits < c->hold) {
        s.credits = c->hold;
        s.estimated = true;
    }
    s.usage = *u;
    if (zg_meter_settle(r->db, r->cfg, &c->meter, &s, &c->ticket) != 0)
        zg_error("request %s: settlement lost", r->request_id);
}

/* On a finishing thread: a stream the relay loop took over has ended. Settle it, then let the
 * response end (the loop writes the end of the request) and free it. */
static void finish_detached(void *arg, zg_db *db)
{
    zg_call *c = arg;
    zg_req *r = c->r;
    r->db = db;
    if (c->sf->billed)
        settle(c, &c->up);
    zg_conc_leave(db, r->cfg, c->conc_user);
    call_free(c);
    zg_req_release(r);
}

static void finish_later(zg_call *c)
{
    zg_finish_defer(finish_detached, c);
}

int zg_pipeline_run(zg_req *r, const zg_surface *sf)
{
    zg_call *c = calloc(1, sizeof *c); /* it may outlive this call: see finish_later */
    if (!c)
        return zg_err_reply(r, ZG_ERR_UNAVAILABLE, "The service is temporarily unavailable; retry shortly");
    c->r = r;
    c->sf = sf;
    zg_buf_init(&c->rewritten, (size_t)r->cfg->max_body_bytes * 2 + 4096);
    zg_buf_init(&c->body_copy, ZG_BODY_COPY_CAP);
    zg_sse_init(&c->sse, ZG_SSE_EVENT_CAP);
    char why[256] = "";

    if (zg_auth_key_hash(r, c->key_hash) != 0 || zg_auth_screen(r, c->key_hash, &c->conc_user) != 0)
        goto done; /* a missing, malformed or unknown key: 401 before the body is read */
    /* the user's requests in flight, across processes and nodes: over the cap, 429 before the
     * body is read, nothing admitted or billed */
    if (zg_conc_enter(r->cfg, c->conc_user) != ZG_CONC_OK) {
        c->conc_user = 0;
        zg_resp_header(r, "retry-after", "1");
        snprintf(why, sizeof why, "Too many requests in flight: at most %d at once per account; retry when one has "
                                  "finished", r->cfg->concurrent_per_user);
        reject_after_auth(c, ZG_ERR_RATE, why); /* with the hour's x-ratelimit-* figures, as every answer */
        goto done;
    }
    int brc = zg_req_read_body(r);
    if (brc == ZG_E_TOOBIG) {
        char msg[128];
        snprintf(msg, sizeof msg, "Request body exceeds the limit of %lld bytes", (long long)r->cfg->max_body_bytes);
        reject_after_auth(c, ZG_ERR_TOO_LARGE, msg);
        goto done;
    }
    if (brc != ZG_OK) {
        reject_after_auth(c, ZG_ERR_INVALID, "The request body could not be read completely");
        goto done;
    }
    /* json-c lets overlong forms and encoded surrogates through: nothing malformed may go upstream */
    size_t bad = zg_utf8_check(r->body.data ? r->body.data : "", r->body.len);
    if (bad < r->body.len) {
        snprintf(why, sizeof why, "Request body is not valid UTF-8 (at byte %zu)", bad);
        reject_after_auth(c, ZG_ERR_INVALID, why);
        goto done;
    }
    struct json_tokener *tok = json_tokener_new_ex(JSON_MAX_DEPTH);
    if (tok) {
        json_tokener_set_flags(tok, JSON_TOKENER_VALIDATE_UTF8); /* RFC 8259: JSON text is UTF-8 */
        c->json = json_tokener_parse_ex(tok, r->body.data, (int)r->body.len);
        enum json_tokener_error je = json_tokener_get_error(tok);
        if (je != json_tokener_success || tok->char_offset != (int)r->body.len) {
            snprintf(why, sizeof why, "Request body is not valid JSON: %s",
                     je == json_tokener_success ? "trailing data after the JSON value"
                     : je == json_tokener_continue ? "unexpected end of input"
                                                   : json_tokener_error_desc(je));
            json_object_put(c->json);
            c->json = NULL;
        }
        json_tokener_free(tok);
    }
    if (!c->json || !json_object_is_type(c->json, json_type_object)) {
        reject_after_auth(c, ZG_ERR_INVALID, why[0] ? why : "Request body must be a JSON object");
        goto done;
    }
    /* a member given twice could be read one way here and another way upstream */
    char dup[64];
    int drc = zg_inspect_duplicate(r->body.data, r->body.len, dup, sizeof dup);
    if (drc != 0) {
        snprintf(why, sizeof why, drc > 0 ? "Request body names the member \"%s\" twice in one object: each member "
                                            "may appear once"
                                          : "Request body is too complex to check%s",
                 drc > 0 ? dup : "");
        reject_after_auth(c, ZG_ERR_INVALID, why);
        goto done;
    }
    if (check_common_fields(c->json, why, sizeof why) != 0 || sf->parse(c, why, sizeof why) != 0) {
        reject_after_auth(c, ZG_ERR_INVALID, why);
        goto done;
    }
    if (zg_catalog_refresh(r->db) != 0) {
        zg_err_reply(r, ZG_ERR_UNAVAILABLE, "The service is temporarily unavailable; retry shortly");
        goto done;
    }
    if (zg_catalog_find(c->model_name, strlen(c->model_name), &c->model) != 0) {
        snprintf(why, sizeof why, "Unknown model '%.128s'. List the models with GET /api/v1/models", c->model_name);
        reject_after_auth(c, ZG_ERR_MODEL_NOT_FOUND, why);
        goto done;
    }
    if (c->model.status != ZG_MODEL_LIVE) {
        snprintf(why, sizeof why, "%s is listed but Coming Soon: the API does not serve it yet (nothing was billed)",
                 c->model.id);
        reject_after_auth(c, ZG_ERR_COMING_SOON, why);
        goto done;
    }
    c->provider = sf->route ? sf->route(c, why, sizeof why) : zg_provider_parse(c->model.provider);
    if (c->provider < 0) {
        if (!why[0])
            snprintf(why, sizeof why, "%s is not served on this endpoint", c->model.id);
        reject_after_auth(c, ZG_ERR_INVALID, why);
        goto done;
    }
    c->input_estimate = (int64_t)(r->body.len + 3) / 4;
    if (sf->billed) {
        zg_hold_req q = {.input_tokens = c->input_estimate, .max_output = c->max_output, .choices = c->choices,
                         .units = c->units, .expands = zg_inspect_expands(c->json), .context_window = c->context_window};
        c->hold = zg_billing_hold_estimate(r->cfg, &c->model, &q);
    }
    c->meter = (zg_meter_req){.key_hash = c->key_hash, .request_id = r->request_id, .group = sf->rl_group,
                             .limit = limit_for(r->cfg, sf->rl_limit), .min_plan = c->model.min_plan, .hold = c->hold,
                             .surface = sf->name, .model = c->model.id,
                             .provider = zg_provider_name((zg_provider)c->provider)};
    bool bg = c->background && sf->enqueue;
    if (bg)
        zg_meter_admit_strict(r->db, r->cfg, &c->meter, &c->adm, &c->ticket);
    else
        zg_meter_admit(r->db, r->cfg, &c->meter, &c->adm, &c->ticket);
    if (admit_reply(c) != 1)
        goto done;
    zg_auth_remember(c->key_hash, c->adm.who.user_id);
    if (bg) {
        if (sf->enqueue(c) != 0) {
            zg_billing_cancel(r->db, r->cfg, r->request_id);
            zg_err_reply(r, ZG_ERR_UNAVAILABLE, "The service is temporarily unavailable; nothing was billed; retry "
                                                "shortly");
        }
        goto done;
    }

    /* Admitted: from here on the request is settled exactly once, whatever happens. */
    c->finish = finish_later;
    if (zg_relay_run(c, &c->up) == 1)
        return 0; /* a stream the relay loop took over: settled by finish_detached */
    if (sf->billed)
        settle(c, &c->up);
done:
    zg_conc_leave(r->db, r->cfg, c->conc_user);
    call_free(c);
    return 0;
}
