/* zg_imgjob: background image generations (see zg_imgjob.h and image_jobs in schema.sql). */
#include "zg_imgjob.h"
#include "zg_auth.h"
#include "zg_billing.h"
#include "zg_buf.h"
#include "zg_catalog.h"
#include "zg_channel.h"
#include "zg_log.h"
#include "zg_upstream.h"
#include "zg_usage.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RENEW_S 1               /* how often a process renews its running jobs (they go stale after
                                 * [images] reclaim_after without) */
#define MAX_TRIES 3             /* claims of one job before it is failed (it keeps killing its process) */
#define RESULT_CAP (64u << 20)  /* the largest upstream answer kept */
#define IDLE_POLL_MS 1000       /* how often an idle runner looks for work */
#define RUNNERS_MAX 64

static const char SQL_ENQUEUE[] =
    "INSERT INTO image_jobs (id, request_id, user_id, key_id, plan_rank, model, body, expires_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, NOW(3) + INTERVAL ? HOUR)";
static const char SQL_CREATED[] = "SELECT FLOOR(UNIX_TIMESTAMP(created_at)) FROM image_jobs WHERE id = ?";
static const char SQL_CLAIM[] =
    "UPDATE image_jobs SET status = 'in_progress', owner = ?, renewed_at = NOW(3),"
    " started_at = COALESCE(started_at, NOW(3)), tries = tries + 1"
    " WHERE status = 'queued' OR (status = 'in_progress' AND renewed_at < NOW(3) - INTERVAL ? SECOND)"
    " ORDER BY created_at LIMIT 1";
static const char SQL_CLAIMED[] =
    "SELECT id, request_id, user_id, plan_rank, model, body, tries FROM image_jobs WHERE owner = ?";
static const char SQL_DONE[] =
    "UPDATE image_jobs SET status = ?, result = ?, error = ?, credits = ?, finished_at = NOW(3), owner = NULL,"
    " expires_at = NOW(3) + INTERVAL ? HOUR WHERE id = ? AND owner = ?";
static const char SQL_RENEW[] =
    "UPDATE image_jobs SET renewed_at = NOW(3) WHERE owner LIKE ? AND status = 'in_progress'";
static const char SQL_GIVE_BACK[] =
    "UPDATE image_jobs SET status = 'queued', owner = NULL, renewed_at = NULL WHERE owner LIKE ?"
    " AND status = 'in_progress'";
static const char SQL_EXPIRED[] = "DELETE FROM image_jobs WHERE expires_at < NOW(3)"
                                  " AND status IN ('completed', 'failed') LIMIT 500";
static const char SQL_SHOW[] =
    "SELECT id, status, FLOOR(UNIX_TIMESTAMP(created_at)), model, result, error, credits FROM image_jobs"
    " WHERE id = ? AND user_id = ? AND expires_at > NOW(3)";

int zg_imgjob_upstream(const zg_provider_conf *pc, char *url, size_t cap, struct curl_slist **headers)
{
    char bearer[600];
    int n = snprintf(url, cap, "%s/images/generations", pc->base_url);
    int b = snprintf(bearer, sizeof bearer, "Authorization: Bearer %s", pc->api_key);
    if (n < 0 || (size_t)n >= cap || b < 0 || (size_t)b >= sizeof bearer || strpbrk(pc->api_key, "\r\n"))
        return -1;
    const char *lines[] = {bearer, "content-type: application/json", "Expect:"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        struct curl_slist *h = curl_slist_append(*headers, lines[i]);
        if (!h)
            return -1;
        *headers = h;
    }
    return 0;
}

/* ---- storing and showing ------------------------------------------------------------------------ */

int zg_imgjob_enqueue(zg_db *db, const zg_settings *cfg, const zg_imgjob_new *j, char id[ZG_IMGJOB_ID_LEN + 1],
                      int64_t *created)
{
    if (zg_auth_random_id("img_", id, ZG_IMGJOB_ID_LEN + 1) != 0)
        return -1;
    zg_val p[] = {ZG_STR(id),         ZG_STR(j->request_id), ZG_INT(j->user_id),         ZG_INT(j->key_id),
                  ZG_INT(j->plan_rank), ZG_STR(j->model),    ZG_STRN(j->body, j->len), ZG_INT(cfg->image_keep_hours)};
    if (zg_db_run(db, SQL_ENQUEUE, p, 8, NULL, NULL, NULL) != 0)
        return -1;
    int64_t t[1] = {(int64_t)time(NULL)};
    zg_val q[] = {ZG_STR(id)};
    zg_db_run(db, SQL_CREATED, q, 1, zg_db_row_ints, &(zg_ints){t, 1}, NULL);
    *created = t[0];
    return 0;
}

static int show_row(void *ctx, int ncols, char **v, const size_t *lens)
{
    json_object **out = ctx;
    (void)lens;
    if (ncols < 7)
        return -1;
    json_object *o = NULL;
    /* completed: the upstream's answer (created, data, usage, ...) with our fields on top */
    if (v[4] && strcmp(v[1], "completed") == 0) {
        o = json_tokener_parse(v[4]);
        if (o && !json_object_is_type(o, json_type_object)) {
            json_object_put(o);
            o = NULL;
        }
    }
    if (!o)
        o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(v[0]));
    json_object_object_add(o, "object", json_object_new_string("image.generation"));
    json_object_object_add(o, "status", json_object_new_string(v[1]));
    json_object_object_add(o, "created", json_object_new_int64(v[2] ? strtoll(v[2], NULL, 10) : 0));
    json_object_object_add(o, "model", json_object_new_string(v[3] ? v[3] : ""));
    if (v[6])
        json_object_object_add(o, "credits", json_object_new_int64(strtoll(v[6], NULL, 10)));
    if (strcmp(v[1], "failed") == 0) {
        json_object *e = json_object_new_object();
        json_object_object_add(e, "message", json_object_new_string(v[5] ? v[5] : "the image could not be made"));
        json_object_object_add(e, "type", json_object_new_string("image_generation_failed"));
        json_object_object_add(o, "error", e);
    }
    *out = o;
    return 0;
}

int zg_imgjob_show(zg_db *db, const char *id, int64_t user_id, json_object **out)
{
    *out = NULL;
    zg_val p[] = {ZG_STR(id), ZG_INT(user_id)};
    if (zg_db_run(db, SQL_SHOW, p, 2, show_row, out, NULL) != 0) {
        json_object_put(*out);
        *out = NULL;
        return -1;
    }
    return *out ? 1 : 0;
}

/* ---- running ------------------------------------------------------------------------------------ */

static char owner_prefix[120]; /* host:pid:start: this process's jobs are owner LIKE 'prefix#%' */
static atomic_bool stopping;
static pthread_t runners[RUNNERS_MAX];
static int nrunners;
static atomic_uint claims;
static atomic_int running; /* jobs this process is carrying out now */

struct job {
    char id[ZG_IMGJOB_ID_LEN + 1], request_id[41], model[65];
    int64_t user_id, plan_rank, tries;
    char *body;
    size_t len;
};

static int claimed_row(void *ctx, int ncols, char **v, const size_t *lens)
{
    struct job *j = ctx;
    if (ncols < 7 || !v[0] || !v[1] || !v[4] || !v[5])
        return -1;
    snprintf(j->id, sizeof j->id, "%s", v[0]);
    snprintf(j->request_id, sizeof j->request_id, "%s", v[1]);
    j->user_id = strtoll(v[2] ? v[2] : "0", NULL, 10);
    j->plan_rank = strtoll(v[3] ? v[3] : "1", NULL, 10);
    snprintf(j->model, sizeof j->model, "%s", v[4]);
    free(j->body);
    j->body = malloc(lens[5] + 1);
    if (!j->body)
        return -1;
    memcpy(j->body, v[5], lens[5]);
    j->body[lens[5]] = '\0';
    j->len = lens[5];
    j->tries = strtoll(v[6] ? v[6] : "1", NULL, 10);
    return 0;
}

/* Claim the oldest claimable job under a new owner name: 1 (*j filled), 0 none, -1 error. */
static int claim(zg_db *db, const zg_settings *cfg, struct job *j, char *owner, size_t cap)
{
    snprintf(owner, cap, "%s#%u", owner_prefix, atomic_fetch_add(&claims, 1));
    zg_val p[] = {ZG_STR(owner), ZG_INT(cfg->image_reclaim_s)};
    int64_t n = 0;
    if (zg_db_run(db, SQL_CLAIM, p, 2, NULL, NULL, &n) != 0)
        return -1;
    if (n == 0)
        return 0;
    j->id[0] = '\0';
    zg_val q[] = {ZG_STR(owner)};
    if (zg_db_run(db, SQL_CLAIMED, q, 1, claimed_row, j, NULL) != 0 || !j->id[0])
        return -1;
    return 1;
}

struct collect {
    zg_buf body;
    int status;
    bool too_big;
};

static int on_head(void *ctx, int status, const char *ct)
{
    (void)ct;
    ((struct collect *)ctx)->status = status;
    return 0;
}

static int on_body(void *ctx, const char *p, size_t n)
{
    struct collect *k = ctx;
    if (zg_buf_append(&k->body, p, n) != ZG_OK) {
        k->too_big = true;
        return -1;
    }
    return 0;
}

static int on_idle(void *ctx)
{
    (void)ctx;
    return atomic_load(&stopping) ? -1 : 0;
}

/* The upstream's error message from its JSON answer, else a default, into out[cap]. */
static void upstream_message(const struct collect *k, char *out, size_t cap)
{
    snprintf(out, cap, "the upstream answered HTTP %d", k->status);
    json_object *o = k->body.len ? json_tokener_parse(k->body.data) : NULL, *e, *m;
    if (o && json_object_object_get_ex(o, "error", &e) && json_object_object_get_ex(e, "message", &m) &&
        json_object_is_type(m, json_type_string))
        snprintf(out, cap, "the upstream answered HTTP %d: %.300s", k->status, json_object_get_string(m));
    json_object_put(o);
}

/* Record how the job ended (only while it is still ours) after settling its request. */
static void finish(zg_db *db, const zg_settings *cfg, const struct job *j, const char *owner, const char *status,
                   const char *result, size_t rlen, const char *error, int64_t credits)
{
    zg_val p[] = {ZG_STR(status),
                  result ? ZG_STRN(result, rlen) : ZG_NULLV,
                  error ? ZG_STR(error) : ZG_NULLV,
                  ZG_INT(credits),
                  ZG_INT(cfg->image_keep_hours),
                  ZG_STR(j->id),
                  ZG_STR(owner)};
    int64_t n = 0;
    if (zg_db_run(db, SQL_DONE, p, 7, NULL, NULL, &n) != 0)
        zg_error("image job %s: recording its end failed: %s", j->id, zg_db_error(db));
    else if (n == 0)
        zg_warn("image job %s: claimed by another process meanwhile; its answer is kept", j->id);
}

/* Carry one claimed job to its end: upstream over the channels, settle once, record. */
static void run(zg_db *db, const zg_settings *cfg, struct job *j, const char *owner)
{
    zg_settlement s = {.status = "settled", .end_reason = "upstream_error", .ttfb_ms = -1, .duration_ms = -1};
    char err[400] = "";
    zg_model m;
    if (j->tries > MAX_TRIES) {
        snprintf(err, sizeof err, "the job was interrupted %d times; nothing was billed", (int)j->tries - 1);
        s.end_reason = "abandoned";
    } else if (zg_catalog_refresh(db) != 0 || zg_catalog_find(j->model, strlen(j->model), &m) != 0) {
        zg_warn("image job %s: model %s unknown now", j->id, j->model);
        snprintf(err, sizeof err, "the model %s is not served any more; nothing was billed", j->model);
    }
    if (err[0]) { /* it never reached an upstream: settled at nothing */
        zg_billing_settle(db, cfg, j->request_id, &s, NULL);
        finish(db, cfg, j, owner, "failed", NULL, 0, err, 0);
        return;
    }
    struct collect k = {.status = 0};
    zg_buf_init(&k.body, RESULT_CAP);
    zg_channel_try rt;
    zg_channel_begin(&rt, ZG_PROV_OPENAI, m.id, (int)j->plan_rank, "");
    zg_channel ch;
    zg_upstream_out up;
    memset(&up, 0, sizeof up);
    up.result = ZG_UP_CONNECT;
    int attempts = 0;
    while (!atomic_load(&stopping) && zg_channel_next_wait(&rt, cfg, &ch) == 0) {
        attempts++;
        char url[1536];
        struct curl_slist *h = NULL;
        if (zg_imgjob_upstream(&ch.conf, url, sizeof url, &h) != 0) {
            curl_slist_free_all(h);
            up.result = ZG_UP_CONNECT; /* unreached */
            k.status = 0;
            snprintf(up.error, sizeof up.error, "the request for channel %s could not be built", ch.name);
            break;
        }
        zg_buf_reset(&k.body);
        k.status = 0;
        k.too_big = false;
        zg_req rq; /* no client: nothing to watch or answer */
        memset(&rq, 0, sizeof rq);
        rq.cfg = cfg;
        rq.db = db;
        zg_upstream_cb cb = {.on_head = on_head, .on_body = on_body, .on_idle = on_idle};
        zg_upstream_post(&rq, url, h, j->body, j->len, cfg->image_timeout, cfg->image_timeout, &cb, &k, &up);
        curl_slist_free_all(h);
        bool unanswered = up.result == ZG_UP_CONNECT || (up.result == ZG_UP_TIMEOUT && !k.status);
        char why[80];
        if (k.status)
            snprintf(why, sizeof why, "HTTP %d", k.status);
        else
            snprintf(why, sizeof why, "%.60s", up.error);
        zg_channel_result(&rt, cfg, &ch, zg_channel_outcome(k.status, unanswered), up.retry_after_s, why);
        bool again = (up.result == ZG_UP_CONNECT || (up.result == ZG_UP_OK && zg_channel_failover_status(k.status))) &&
                     zg_channel_may_retry(&rt, cfg, attempts);
        if (!again)
            break;
        zg_info("image job %s: channel %s failed (%s); trying another", j->id, ch.name, why);
    }
    zg_channel_end(&rt);
    if (atomic_load(&stopping) && (up.result != ZG_UP_OK || !attempts)) {
        zg_buf_free(&k.body);
        return; /* handed back to the queue by zg_imgjob_stop */
    }
    s.upstream_status = k.status;
    s.ttfb_ms = up.ttfb_ms;
    s.duration_ms = up.duration_ms;
    s.channel = attempts ? ch.name : NULL;
    s.attempts = attempts;
    bool ok = up.result == ZG_UP_OK && k.status >= 200 && k.status < 300 && !k.too_big;
    if (ok) {
        zg_usage_from_body(&s.usage, ZG_USAGE_IMAGES, k.body.data, k.body.len);
        s.end_reason = "complete";
        s.credits = zg_usage_cost(&s.usage, &m);
    } else if (up.result == ZG_UP_TIMEOUT) {
        s.end_reason = "upstream_timeout";
        snprintf(err, sizeof err, "the upstream did not answer within %d s; nothing was billed", cfg->image_timeout);
    } else if (!attempts || up.result == ZG_UP_CONNECT) {
        s.end_reason = "upstream_unreachable";
        snprintf(err, sizeof err, "no upstream could be reached; nothing was billed");
    } else if (k.too_big) {
        snprintf(err, sizeof err, "the upstream's answer was larger than %u MiB; nothing was billed", RESULT_CAP >> 20);
    } else if (up.result == ZG_UP_OK) {
        upstream_message(&k, err, sizeof err);
    } else {
        snprintf(err, sizeof err, "the upstream connection failed before the answer was complete; nothing was billed");
    }
    /* settle first: a job recorded as ended must never leave its request pending */
    if (zg_billing_settle(db, cfg, j->request_id, &s, NULL) != 0)
        zg_error("image job %s: settlement of %s lost", j->id, j->request_id);
    if (ok) {
        zg_info("image job %s: %lld image(s), %lld credits", j->id, (long long)s.usage.units, (long long)s.credits);
        finish(db, cfg, j, owner, "completed", k.body.data, k.body.len, NULL, s.credits);
    } else {
        zg_info("image job %s failed: %s", j->id, err);
        finish(db, cfg, j, owner, "failed", NULL, 0, err, 0);
    }
    zg_buf_free(&k.body);
}

static void *runner(void *arg)
{
    const zg_settings *cfg = arg;
    zg_db *db = NULL;
    struct job j;
    memset(&j, 0, sizeof j);
    char owner[160];
    while (!atomic_load(&stopping)) {
        if (!db && !(db = zg_db_open(cfg))) {
            usleep(IDLE_POLL_MS * 1000);
            continue;
        }
        int c = claim(db, cfg, &j, owner, sizeof owner);
        if (c == 1) {
            atomic_fetch_add(&running, 1);
            run(db, cfg, &j, owner);
            atomic_fetch_sub(&running, 1);
            continue;
        }
        if (c < 0)
            zg_warn("image jobs: claiming failed: %s", zg_db_error(db));
        for (int i = 0; i < IDLE_POLL_MS / 50 && !atomic_load(&stopping); i++)
            usleep(50 * 1000);
    }
    free(j.body);
    zg_db_free(db);
    return NULL;
}

void zg_imgjob_start(const zg_settings *cfg)
{
    if (nrunners)
        return;
    snprintf(owner_prefix, sizeof owner_prefix, "%s:%d:%lld", cfg->node_name, (int)getpid(), (long long)time(NULL));
    int n = cfg->image_workers < RUNNERS_MAX ? cfg->image_workers : RUNNERS_MAX;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 256 * 1024);
    for (int i = 0; i < n; i++)
        if (pthread_create(&runners[nrunners], &a, runner, (void *)cfg) == 0)
            nrunners++;
    pthread_attr_destroy(&a);
    zg_info("image jobs: %d runner(s)", nrunners);
}

/* owner LIKE pattern of this process's jobs (no LIKE metacharacters in the prefix but '_' and '%'
 * escaped) into out[cap]. */
static void owner_pattern(char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = owner_prefix; *p && o + 3 < cap; p++) {
        if (*p == '%' || *p == '_' || *p == '\\')
            out[o++] = '\\';
        out[o++] = *p;
    }
    snprintf(out + o, cap - o, "#%%");
}

void zg_imgjob_upkeep(zg_db *db, const zg_settings *cfg)
{
    static time_t next_renew, next_sweep;
    (void)cfg;
    time_t now = time(NULL);
    if (!db || !nrunners)
        return;
    if (now >= next_renew && atomic_load(&running) > 0) {
        next_renew = now + RENEW_S;
        char pat[260];
        owner_pattern(pat, sizeof pat);
        zg_val p[] = {ZG_STR(pat)};
        if (zg_db_run(db, SQL_RENEW, p, 1, NULL, NULL, NULL) != 0)
            zg_warn("image jobs: renewing failed: %s", zg_db_error(db));
    }
    if (now >= next_sweep) {
        next_sweep = now + 60;
        int64_t n = 0;
        if (zg_db_run(db, SQL_EXPIRED, NULL, 0, NULL, NULL, &n) == 0 && n > 0)
            zg_info("image jobs: %lld expired result(s) deleted", (long long)n);
    }
}

void zg_imgjob_stop(zg_db *db)
{
    if (!nrunners)
        return;
    atomic_store(&stopping, true);
    /* a runner waiting on the upstream notices within its idle ping; one still in a transfer after
     * that is left to finish what it can while the others hand their jobs back */
    for (int i = 0; i < nrunners; i++)
        pthread_join(runners[i], NULL);
    nrunners = 0;
    if (db) {
        char pat[260];
        owner_pattern(pat, sizeof pat);
        zg_val p[] = {ZG_STR(pat)};
        int64_t n = 0;
        if (zg_db_run(db, SQL_GIVE_BACK, p, 1, NULL, NULL, &n) == 0 && n > 0)
            zg_info("image jobs: %lld handed back to the queue", (long long)n);
    }
}
