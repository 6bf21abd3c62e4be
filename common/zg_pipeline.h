#ifndef ZG_PIPELINE_H
#define ZG_PIPELINE_H
#include <curl/curl.h>
#include <json-c/json.h>
#include <stdbool.h>
#include "zg_billing.h"
#include "zg_meter.h"
#include "zg_catalog.h"
#include "zg_channel.h"
#include "zg_upstream.h"
#include "zg_req.h"
#include "zg_sse.h"
#include "zg_usage.h"

/* The state of one metered request as it goes through the pipeline. Surfaces read it and fill the
 * upstream request in their prepare hook. */
typedef struct zg_call {
    int64_t conc_user; /* the user whose slot of requests in flight this request holds (0: none) */
    zg_req *r;
    const struct zg_surface *sf;
    struct json_object *json;  /* the parsed request body (an object) */
    char model_name[129];      /* as the client asked */
    zg_model model;            /* resolved catalog entry */
    int provider;              /* zg_provider serving it */
    bool stream;               /* the client asked for a stream */
    int64_t max_output;        /* the client's output cap, 0 if none */
    int64_t units;             /* images asked for (per-unit models) */
    int64_t choices;           /* outputs generated at once (n, candidateCount); 0 = one */
    int64_t context_window;    /* widened by a request option (Anthropic's 1M beta); 0 = the model's */
    int64_t input_estimate;    /* tokens, from the body size */
    bool background;           /* run in the background (the surface's enqueue hook), answered at once */
    char key_hash[65];
    zg_admission adm;
    zg_meter_req meter; /* what was admitted */
    zg_ticket ticket;   /* how it was admitted: settled the same way */
    int64_t hold;
    /* the attempt: the channel tried and its provider settings (what prepare hooks read) */
    zg_channel_try route;
    zg_channel chan;
    const zg_provider_conf *pc;
    int attempts;              /* upstream attempts made */
    bool can_retry;            /* another channel may be tried if this attempt fails before answering */
    bool retry;                /* the attempt's answer was a failover status, kept from the client */
    /* the upstream request, filled by the surface's prepare hook */
    char url[1536];
    struct curl_slist *headers;
    const char *send_body;
    size_t send_len;
    zg_buf rewritten;          /* owns a rewritten body when send_body points at it */
    int total_timeout;         /* seconds; 0 = the configured default */
    int idle_timeout;          /* seconds between upstream bytes; 0 = the configured default */
    /* relay state */
    zg_sse sse;
    bool is_sse;
    int up_status;
    bool up_ok;                /* upstream answered 2xx */
    zg_usage usage;
    bool left;                 /* the client went away while the upstream was still answering */
    bool final_noted;          /* the final usage was written to the journal */
    zg_buf body_copy;          /* non-SSE response kept for usage parsing */
    void *surface_state;       /* for the surface's own use */
    zg_upstream_out up;        /* how the last attempt ended */
    /* Set by the pipeline: called on the relay loop's thread when a stream it took over ended
     * (zg_relay_run returned 1), after the relay's own end of it. */
    void (*finish)(struct zg_call *c);
} zg_call;

/* A surface: how one protocol plugs into the shared pipeline. */
typedef struct zg_surface {
    const char *name;      /* usage_log.surface: messages, codex, gemini, images */
    const char *rl_group;  /* rate-limit bucket */
    int rl_limit;          /* which limit: 0 messages, 1 codex, 2 images, 3 count_tokens */
    bool billed;           /* false: no hold, no usage row (count_tokens) */
    zg_usage_kind usage;
    /* From c->json (and the path), fill model_name, stream, max_output, units. Return 0, or -1 with
     * a client-facing reason in why (answered 400). */
    int (*parse)(zg_call *c, char *why, size_t whylen);
    /* Which provider serves c->model on this surface (zg_provider), or -1 with a reason in why
     * (answered 400). NULL: the model's own provider. */
    int (*route)(zg_call *c, char *why, size_t whylen);
    /* Fill c->url, c->headers, c->send_body/len. 0, or -1 (answered 500). */
    int (*prepare)(zg_call *c);
    /* Optional: for a request parse marked c->background, admitted in the database (never from a
     * lease: another process may finish it), store it for the background and answer (202). 0, or
     * -1 when it could not be stored (the admission is undone and 503 answered). */
    int (*enqueue)(zg_call *c);
    /* Optional: return true to keep an upstream SSE event from the client (it is still metered). */
    bool (*hide_event)(zg_call *c, const char *event, size_t elen, const char *data, size_t dlen);
} zg_surface;

#define ZG_BODY_COPY_CAP (64u << 20)
#define ZG_SSE_EVENT_CAP (16u << 20)

/* The upstream part of an admitted request (zg_relay.c): pick a channel, call it, relay the answer,
 * fail over while nothing reached the client. *up says how the last attempt ended. Returns 0, or 1
 * when the stream goes on in the relay loop (c->finish is called there at its end; the caller
 * must leave c and its request alone). */
int zg_relay_run(zg_call *c, zg_upstream_out *up);

/* Serve one metered request: authenticate (401), read and parse the body (413/400), resolve the
 * model (404 unknown, 503 coming soon, 400 wrong surface), admit it in one round trip (403 plan,
 * 429 rate, 402 balance or key limit), call the upstream and relay its answer as it arrives, then
 * settle exactly once from the reported usage. Every answer is in r->proto's shape. Returns 0. */
int zg_pipeline_run(zg_req *r, const zg_surface *sf);

/* Helpers for prepare hooks. */
/* Append "Name: value" to c->headers (CR/LF refused). 0 or -1. */
int zg_call_header(zg_call *c, const char *name, const char *value);
/* Forward the client's header `name` unchanged if present. */
int zg_call_forward(zg_call *c, const char *name);
/* Set c->url to base + path (+ "?" + query when query is non-empty). 0 or -1 if too long. */
int zg_call_url(zg_call *c, const char *base, const char *path, const char *query);
/* Send c->json re-serialised (after the hook changed it) instead of the client's bytes. */
int zg_call_send_json(zg_call *c);
/* Send the client's body bytes unchanged. */
void zg_call_send_raw(zg_call *c);
/* Take "model" (required, not empty, fits model_name) and "stream" from the body. On failure
 * writes a reason naming `list_path` (where models are listed) to why and returns -1. */
int zg_call_take_model(zg_call *c, const char *list_path, char *why, size_t whylen);
/* Member `key` of object o as a string (NULL if absent or not a string). */
const char *zg_json_str(struct json_object *o, const char *key);
/* Member `key` of o as a non-negative integer into *out; returns true if it was one. */
bool zg_json_int(struct json_object *o, const char *key, int64_t *out);
/* Member `key` of o as a boolean (false if absent). */
bool zg_json_bool(struct json_object *o, const char *key);

#endif
