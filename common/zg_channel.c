/* zg_channel: the channel table in memory, picking a channel, circuits (see zg_channel.h). The
 * database side (loading, sharing circuits, disabling) is zg_channel_db.c. */
#include "zg_channel.h"
#include "zg_catalog.h"
#include "zg_clock.h"
#include "zg_log.h"
#include "zg_slots.h"
#include <stdatomic.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct zg_chan_row *rows; /* the stored channels (mu) */
static int nrows;

/* Requests in flight per channel id in this process (mu); kept across reloads. */
#define LIVE_MAX 1024
static struct {
    int id, inflight;
} live[LIVE_MAX];
static int nlive;

/* Circuits per (channel, model) (mu). Times are wall-clock ms, as shared through the database. */
#define HEALTH_MAX 2048
struct health {
    int id;
    char name[65], model[65];
    int fails;
    int64_t window_ms;  /* when the current failure window started */
    int64_t open_until; /* 0: closed; past: half-open */
    bool probing;       /* a request is probing the half-open circuit */
};
static struct health health[HEALTH_MAX];
static int nhealth;

/* The channel that last served a key and model (mu). */
#define STICKY_SLOTS 4096
static struct {
    uint64_t h;
    int id;
    int64_t at;
} sticky[STICKY_SLOTS];

/* Writes waiting for the main thread (mu). */
#define WRITES_MAX 256
static struct zg_chan_write writes[WRITES_MAX];
static int nwrites;

static void line_wake(int provider);

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t fnv(const char *a, const char *b)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = a; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL;
    for (const char *p = b; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h ? h : 1;
}

bool zg_channel_failover_status(int status)
{
    return status == 429 || status == 500 || status == 502 || status == 503 || status == 504 || status == 529 ||
           status == 401 || status == 403;
}

int zg_channel_outcome(int status, bool unanswered)
{
    if (status == 401 || status == 403)
        return ZG_CH_AUTH;
    if (status == 429 || status >= 500 || unanswered)
        return ZG_CH_FAIL;
    return ZG_CH_OK;
}

int zg_channel_serves(const char *models, const char *model)
{
    if (!models || !*models)
        return 1;
    size_t ml = strlen(model);
    for (const char *p = models; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == ml && memcmp(p, model, n) == 0)
            return 1;
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

int zg_channel_plans(const char *plans)
{
    int mask = 0;
    if (!plans || !*plans)
        return 0;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", plans);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int r = zg_plan_parse(t);
        if (r < 0)
            return -1;
        mask |= 1 << r;
    }
    return mask;
}

/* ---- state helpers (callers hold mu) ---------------------------------------------------------------- */

static int *inflight_of(int id, bool add)
{
    for (int i = 0; i < nlive; i++)
        if (live[i].id == id)
            return &live[i].inflight;
    if (!add || nlive == LIVE_MAX)
        return NULL;
    live[nlive].id = id;
    live[nlive].inflight = 0;
    return &live[nlive++].inflight;
}

static struct health *health_of(int id, const char *model, bool add)
{
    for (int i = 0; i < nhealth; i++)
        if (health[i].id == id && strcmp(health[i].model, model) == 0)
            return &health[i];
    if (!add)
        return NULL;
    int slot = nhealth < HEALTH_MAX ? nhealth++ : -1;
    if (slot < 0) /* full: reuse a closed circuit */
        for (int i = 0; i < nhealth && slot < 0; i++)
            if (!health[i].open_until && !health[i].probing)
                slot = i;
    if (slot < 0)
        return NULL;
    memset(&health[slot], 0, sizeof health[slot]);
    health[slot].id = id;
    snprintf(health[slot].model, sizeof health[slot].model, "%s", model);
    return &health[slot];
}

static void queue_write(int kind, int id, const char *name, const char *model, int64_t until, const char *reason)
{
    if (nwrites == WRITES_MAX)
        return; /* the local state still holds; other processes learn of it later or not at all */
    struct zg_chan_write *w = &writes[nwrites++];
    memset(w, 0, sizeof *w);
    w->kind = kind;
    w->id = id;
    snprintf(w->name, sizeof w->name, "%s", name);
    snprintf(w->model, sizeof w->model, "%s", model ? model : "");
    w->until_ms = until;
    snprintf(w->reason, sizeof w->reason, "%s", reason ? reason : "");
}

void zg_channel_install(struct zg_chan_row *r, int n)
{
    pthread_mutex_lock(&mu);
    struct zg_chan_row *old = rows;
    rows = r;
    nrows = n;
    line_wake(-1); /* caps or channels changed: the waiting requests look again */
    pthread_mutex_unlock(&mu);
    free(old);
}

void zg_channel_note_open(const char *name, const char *model, int64_t until)
{
    pthread_mutex_lock(&mu);
    int id = 0;
    for (int i = 0; i < nrows && !id; i++)
        if (strcmp(rows[i].ch.name, name) == 0)
            id = rows[i].ch.id;
    for (int p = 0; p < ZG_PROV_COUNT && !id; p++)
        if (strcmp(zg_provider_name((zg_provider)p), name) == 0)
            id = -(p + 1);
    struct health *h = id ? health_of(id, model, true) : NULL;
    if (h && until > h->open_until && !h->probing) {
        h->open_until = until;
        snprintf(h->name, sizeof h->name, "%s", name);
    }
    pthread_mutex_unlock(&mu);
}

int zg_channel_take_writes(struct zg_chan_write *w, int cap)
{
    pthread_mutex_lock(&mu);
    int n = nwrites < cap ? nwrites : cap;
    memcpy(w, writes, (size_t)n * sizeof *w);
    memmove(writes, writes + n, (size_t)(nwrites - n) * sizeof *writes);
    nwrites -= n;
    pthread_mutex_unlock(&mu);
    return n;
}

/* ---- routing ------------------------------------------------------------------------------------------ */

void zg_channel_begin(zg_channel_try *rt, int provider, const char *model, int plan, const char *key_hash)
{
    memset(rt, 0, sizeof *rt);
    rt->provider = provider;
    snprintf(rt->model, sizeof rt->model, "%s", model);
    rt->plan = plan;
    rt->slot = -1;
    rt->t0_ms = zg_clock_ms();
    snprintf(rt->key_hash, sizeof rt->key_hash, "%s", key_hash ? key_hash : "");
}

struct cand {
    const zg_channel *ch;
    bool probe;
    int slot; /* the host slot taken for it (zg_slots), -1 none */
};

static bool tried(const zg_channel_try *rt, int id)
{
    for (int i = 0; i < rt->ntried; i++)
        if (rt->tried[i] == id)
            return true;
    return false;
}

/* Whether ch can take rt's request now (callers hold mu): 1 yes (*probe: as the half-open probe),
 * 2 only as a last resort (its circuit is open), 3 not until a request on it ends (at its cap),
 * 0 no. */
static int usable(const zg_channel_try *rt, const zg_channel *ch, int64_t now, bool *probe, int64_t *until)
{
    *probe = false;
    *until = 0;
    if (tried(rt, ch->id))
        return 0;
    int *inf = inflight_of(ch->id, false);
    if (ch->max_conc && inf && *inf >= ch->max_conc)
        return 3;
    struct health *h = health_of(ch->id, rt->model, false);
    if (h && h->open_until) {
        *until = h->open_until;
        if (now < h->open_until || h->probing)
            return 2;
        *probe = true;
    }
    return 1;
}

static uint64_t next_random(void)
{
    static _Thread_local uint64_t s;
    if (!s)
        s = (uint64_t)zg_clock_ms() * 6364136223846793005ULL ^ (uint64_t)(uintptr_t)&s;
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

/* The provider's default channel from zenn.conf into *def (id 0 when it has no key). */
static void default_channel(const zg_channel_try *rt, const zg_settings *cfg, zg_channel *def)
{
    memset(def, 0, sizeof *def);
    int p = rt->provider;
    if (p >= 0 && p < ZG_PROV_COUNT && cfg->prov[p].api_key[0]) {
        def->id = -(p + 1);
        snprintf(def->name, sizeof def->name, "%s", zg_provider_name((zg_provider)p));
        def->provider = p;
        def->conf = cfg->prov[p];
        def->weight = 1;
    }
}

/* What candidates() left out: channels at their cap, channels with an open circuit, and whether
 * the one candidate is such a channel (the last resort). */
struct tally {
    int capped, open;
    bool fell_back;
    int capped_ids[16]; /* the first channels at their cap */
};

/* The channels rt may try now, into c[0..64) (callers hold mu; def outlives c). An open circuit
 * sheds load to the other channels but never refuses a request on its own: when every channel's
 * circuit is open (and none is only at its cap), the one that reopens first is tried. */
static int candidates(const zg_channel_try *rt, const zg_channel *def, int64_t now, struct cand *c, struct tally *t)
{
    int n = 0;
    memset(t, 0, sizeof *t);
    bool probe;
    int64_t until, best_until = 0;
    const zg_channel *fallback = NULL;
    const zg_channel *all[65];
    int na = 0;
    if (def->id)
        all[na++] = def;
    for (int i = 0; i < nrows && na < 65; i++) {
        const struct zg_chan_row *r = &rows[i];
        if (r->ch.provider == rt->provider && r->enabled && zg_channel_serves(r->models, rt->model) &&
            (!r->plans || (r->plans & (1 << rt->plan))))
            all[na++] = &r->ch;
    }
    for (int i = 0; i < na && n < 64; i++) {
        int u = usable(rt, all[i], now, &probe, &until), slot = -1;
        if (u == 1 && all[i]->max_conc) {
            /* counted for the host: the slot is held from here, given back if it is not picked */
            slot = zg_slots_take(all[i]->id, all[i]->max_conc, rt->plan);
            if (slot == -1)
                u = 3;
        }
        if (u == 1)
            c[n++] = (struct cand){all[i], probe, slot < 0 ? -1 : slot};
        else if (u == 3) {
            if (t->capped < 16)
                t->capped_ids[t->capped] = all[i]->id;
            t->capped++;
        }
        else if (u == 2) {
            t->open++;
            if (!fallback || until < best_until) {
                fallback = all[i];
                best_until = until;
            }
        }
    }
    /* the last resort only when nothing is merely busy: a channel at its cap is waited for rather
     * than sending the request where it is expected to fail */
    if (!n && fallback && !t->capped) {
        int slot = fallback->max_conc ? zg_slots_take(fallback->id, fallback->max_conc, rt->plan) : -2;
        if (slot == -1) {
            t->capped++;
            return 0;
        }
        c[n++] = (struct cand){fallback, false, slot < 0 ? -1 : slot};
        t->fell_back = true;
    }
    return n;
}

int zg_channel_remaining(const zg_channel_try *rt)
{
    return rt->left;
}

bool zg_channel_may_retry(const zg_channel_try *rt, const zg_settings *cfg, int attempts)
{
    return attempts < cfg->max_attempts && zg_clock_ms() - rt->t0_ms < cfg->failover_budget_ms && rt->left > 0;
}

static int channel_next(zg_channel_try *rt, const zg_settings *cfg, zg_channel *out, int wait_ms);

#define POLL_MS 25 /* how often a waiting request looks at the host's slots */

/* Requests waiting for a channel at its cap, best plan first, then oldest (mu). */
struct waiter {
    pthread_cond_t cv;
    int plan, provider;
    bool woken;
    struct waiter *next;
};
static struct waiter *line;

/* Wake the first waiter of provider (-1: every waiter) not woken yet (callers hold mu). */
static void line_wake(int provider)
{
    for (struct waiter *w = line; w; w = w->next)
        if ((provider < 0 || w->provider == provider) && !w->woken) {
            w->woken = true;
            pthread_cond_signal(&w->cv);
            if (provider >= 0)
                return;
        }
}

/* Wait (callers hold mu) until a request on one of rt's channels ends and one can take rt's, at
 * most wait_ms: candidates into c (> 0), -2 when the wait ran out, 0 when no channel is left. */
static int wait_in_line(const zg_channel_try *rt, const zg_channel *def, struct cand *c, struct tally *t,
                        int wait_ms)
{
    struct waiter w = {.plan = rt->plan, .provider = rt->provider};
    pthread_cond_init(&w.cv, NULL);
    struct waiter **pp = &line;
    while (*pp && (*pp)->plan >= w.plan)
        pp = &(*pp)->next;
    w.next = *pp;
    *pp = &w;
    /* other processes see the wait (a lower plan there leaves these channels to it) and end requests
     * on them without waking this thread: look again at least every POLL_MS */
    int nids = t->capped < 16 ? t->capped : 16, ids[16];
    memcpy(ids, t->capped_ids, sizeof ids);
    for (int i = 0; i < nids; i++)
        zg_slots_waiting(ids[i], rt->plan, 1);
    int64_t end = zg_clock_ms() + wait_ms;
    int n;
    for (;;) {
        int64_t left = end - zg_clock_ms();
        struct timespec until = zg_clock_deadline(left < POLL_MS ? (left > 0 ? (int)left : 0) : POLL_MS);
        pthread_cond_timedwait(&w.cv, &mu, &until);
        w.woken = false;
        n = candidates(rt, def, wall_ms(), c, t);
        if (n > 0 || !t->capped)
            break;
        if (zg_clock_ms() >= end) {
            n = -2;
            break;
        }
        /* what ended was not for us (another plan's channel): pass the wake-up down the line */
        for (struct waiter *x = w.next; x; x = x->next)
            if (x->provider == w.provider && !x->woken) {
                x->woken = true;
                pthread_cond_signal(&x->cv);
                break;
            }
    }
    for (pp = &line; *pp != &w; pp = &(*pp)->next)
        ;
    *pp = w.next;
    pthread_cond_destroy(&w.cv);
    for (int i = 0; i < nids; i++)
        zg_slots_waiting(ids[i], rt->plan, -1);
    return n;
}

int zg_channel_waiting(void)
{
    int n = 0;
    pthread_mutex_lock(&mu);
    for (struct waiter *w = line; w; w = w->next)
        n++;
    pthread_mutex_unlock(&mu);
    return n;
}

int zg_channel_next_wait(zg_channel_try *rt, const zg_settings *cfg, zg_channel *out)
{
    return channel_next(rt, cfg, out, cfg->queue_timeout_s * 1000);
}

int zg_channel_next(zg_channel_try *rt, const zg_settings *cfg, zg_channel *out)
{
    return channel_next(rt, cfg, out, 0);
}

static int channel_next(zg_channel_try *rt, const zg_settings *cfg, zg_channel *out, int wait_ms)
{
    if (rt->holding)
        zg_channel_end(rt);
    if (rt->ntried == ZG_CHANNEL_MAX_TRIED)
        return -1;
    static atomic_bool slots_ready;
    if (!atomic_load(&slots_ready)) {
        char path[600];
        snprintf(path, sizeof path, "%s.slots", cfg->spool_path);
        zg_slots_init(cfg->spool_path[0] ? path : NULL);
        atomic_store(&slots_ready, true);
    }
    zg_channel def;
    default_channel(rt, cfg, &def);
    int64_t now = wall_ms();
    pthread_mutex_lock(&mu);
    struct cand c[64];
    struct tally t;
    int n = candidates(rt, &def, now, c, &t);
    if (!n && t.capped && wait_ms > 0)
        n = wait_in_line(rt, &def, c, &t, wait_ms);
    if (n <= 0) {
        pthread_mutex_unlock(&mu);
        return n == -2 ? -2 : t.capped && !wait_ms ? -3 : -1;
    }
    /* the highest tier; in it the sticky channel, else a weighted random one */
    int top = c[0].ch->priority;
    for (int i = 1; i < n; i++)
        top = c[i].ch->priority > top ? c[i].ch->priority : top;
    uint64_t hk = fnv(rt->key_hash, rt->model);
    int sslot = (int)(hk % STICKY_SLOTS);
    int pick = -1;
    if (cfg->sticky_s > 0 && sticky[sslot].h == hk && now - sticky[sslot].at < (int64_t)cfg->sticky_s * 1000)
        for (int i = 0; i < n && pick < 0; i++)
            if (c[i].ch->priority == top && c[i].ch->id == sticky[sslot].id && !c[i].probe)
                pick = i;
    if (pick < 0) {
        /* a half-open circuit is probed first: one request decides whether it is back */
        for (int i = 0; i < n && pick < 0; i++)
            if (c[i].ch->priority == top && c[i].probe)
                pick = i;
    }
    if (pick < 0) {
        int64_t total = 0;
        for (int i = 0; i < n; i++)
            if (c[i].ch->priority == top)
                total += c[i].ch->weight > 0 ? c[i].ch->weight : 1;
        int64_t r = (int64_t)(next_random() % (uint64_t)total);
        for (int i = 0; i < n && pick < 0; i++) {
            if (c[i].ch->priority != top)
                continue;
            r -= c[i].ch->weight > 0 ? c[i].ch->weight : 1;
            if (r < 0)
                pick = i;
        }
    }
    *out = *c[pick].ch;
    for (int i = 0; i < n; i++)
        if (i != pick && c[i].slot >= 0)
            zg_slots_give(c[i].ch->id, c[i].slot);
    rt->slot = c[pick].slot;
    int *inf = inflight_of(out->id, true);
    if (inf)
        (*inf)++;
    if (c[pick].probe) {
        struct health *h = health_of(out->id, rt->model, false);
        if (h)
            h->probing = true;
    }
    pthread_mutex_unlock(&mu);
    rt->tried[rt->ntried++] = out->id;
    rt->holding = out->id;
    rt->probing = c[pick].probe;
    /* what is left once this one is tried, from the same look: the other candidates, else one more
     * open circuit as the last resort */
    rt->left = rt->ntried == ZG_CHANNEL_MAX_TRIED ? 0
               : t.fell_back                      ? t.open > 1
               : n > 1                            ? n - 1
                                                  : t.open > 0;
    return 0;
}

/* Give back the in-flight count (and the probe) that rt holds (callers hold mu). */
static void release(zg_channel_try *rt)
{
    if (!rt->holding)
        return;
    int *inf = inflight_of(rt->holding, false);
    if (inf && *inf > 0)
        (*inf)--;
    if (rt->slot >= 0)
        zg_slots_give(rt->holding, rt->slot);
    rt->slot = -1;
    if (line)
        line_wake(rt->provider); /* the best-placed request waiting for one of these channels */
    if (rt->probing) {
        struct health *h = health_of(rt->holding, rt->model, false);
        if (h)
            h->probing = false;
    }
    rt->holding = 0;
    rt->probing = false;
}

void zg_channel_end(zg_channel_try *rt)
{
    if (!rt->holding)
        return;
    pthread_mutex_lock(&mu);
    release(rt);
    pthread_mutex_unlock(&mu);
}

void zg_channel_result(zg_channel_try *rt, const zg_settings *cfg, const zg_channel *ch, int outcome, int retry_after_s,
                     const char *reason)
{
    int64_t now = wall_ms();
    pthread_mutex_lock(&mu);
    if (rt->holding == ch->id)
        release(rt);
    if (outcome == ZG_CH_OK) {
        struct health *h = health_of(ch->id, rt->model, false);
        if (h) {
            if (h->open_until) {
                queue_write(2, ch->id, ch->name, rt->model, 0, NULL);
                zg_info("channel %s: %s answers again; circuit closed", ch->name, rt->model);
            }
            h->fails = 0;
            h->open_until = 0;
            h->probing = false;
        }
        uint64_t hk = fnv(rt->key_hash, rt->model);
        int s = (int)(hk % STICKY_SLOTS);
        sticky[s].h = hk;
        sticky[s].id = ch->id;
        sticky[s].at = now;
        pthread_mutex_unlock(&mu);
        return;
    }
    if (outcome == ZG_CH_AUTH && ch->id > 0) {
        /* the provider refuses this account: nobody should use it until an operator looks */
        for (int i = 0; i < nrows; i++)
            if (rows[i].ch.id == ch->id)
                rows[i].enabled = 0;
        queue_write(3, ch->id, ch->name, NULL, 0, reason);
        pthread_mutex_unlock(&mu);
        zg_error("channel %s disabled: %s", ch->name, reason ? reason : "refused by the upstream");
        return;
    }
    struct health *h = health_of(ch->id, rt->model, true);
    if (!h) {
        pthread_mutex_unlock(&mu);
        return;
    }
    snprintf(h->name, sizeof h->name, "%s", ch->name);
    if (now - h->window_ms > (int64_t)cfg->breaker_window_s * 1000) {
        h->window_ms = now;
        h->fails = 0;
    }
    h->fails++;
    bool was_probe = h->open_until != 0;
    int wait_s = 0;
    if (outcome == ZG_CH_AUTH)
        wait_s = 3600; /* the default channel's key is refused: fix zenn.conf */
    else if (retry_after_s > 0)
        wait_s = retry_after_s < 3600 ? retry_after_s : 3600;
    else if (was_probe || h->fails >= cfg->breaker_failures)
        wait_s = cfg->cooldown_s;
    if (wait_s) {
        h->open_until = now + (int64_t)wait_s * 1000;
        h->probing = false;
        queue_write(1, ch->id, ch->name, rt->model, h->open_until, reason);
        pthread_mutex_unlock(&mu);
        zg_warn("channel %s: circuit for %s open for %d s (%s)", ch->name, rt->model, wait_s,
                reason ? reason : "failures");
        return;
    }
    pthread_mutex_unlock(&mu);
}
