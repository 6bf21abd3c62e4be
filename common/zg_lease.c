/* Lease mode: the lease table, admission and settlement (see zg_lease.h and zg_lease_int.h). */
#include "zg_lease_int.h"

struct zl_state zl = {.mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .jfd = {-1, -1}};

bool zg_lease_active(void)
{
    return zl.active;
}

/* ---- the entry table (callers hold mu) ---------------------------------------------------------- */

static uint64_t hash_of(const char *h, const char *grp)
{
    uint64_t x = 1469598103934665603ull;
    for (const char *p = h; *p; p++)
        x = (x ^ (unsigned char)*p) * 1099511628211ull;
    for (const char *p = grp; *p; p++)
        x = (x ^ (unsigned char)*p) * 1099511628211ull;
    return x;
}

/* Slot of (hash, grp), added if absent. Probes at most PROBE_MAX slots; a slot whose lease is gone
 * and that has been idle a minute is reused. -1 when nothing is free nearby (the key is then billed
 * strictly). Slots are never emptied, so probe chains stay intact. */
#define PROBE_MAX 64
static int find_or_add(const char *hash, const char *grp, int64_t now)
{
    uint64_t h = hash_of(hash, grp);
    int reuse = -1;
    for (size_t i = 0; i < PROBE_MAX; i++) {
        int idx = (int)((h + i) % TAB_CAP);
        struct entry *e = &zl.tab[idx];
        if (!e->used) {
            if (reuse < 0)
                reuse = idx;
            break;
        }
        if (strcmp(e->hash, hash) == 0 && strcmp(e->grp, grp) == 0)
            return idx;
        if (reuse < 0 && !e->granted && e->inflight == 0 && !e->refilling && e->granting == 0 &&
            e->unwritten == 0 && now - e->last_ms > 60000)
            reuse = idx;
    }
    if (reuse < 0)
        return -1;
    struct entry *e = &zl.tab[reuse];
    if (!e->used)
        zl.used_idx[zl.n_used++] = reuse;
    memset(e, 0, sizeof *e);
    e->used = true;
    e->last_ms = now;
    zg_record_field(e->hash, sizeof e->hash, hash);
    zg_record_field(e->grp, sizeof e->grp, grp);
    return reuse;
}

/* This process's lease owner name, copied under mu (the writer renames it after a long outage). */
void zl_owner_now(char out[64])
{
    pthread_mutex_lock(&zl.mu);
    memcpy(out, zl.owner, 64);
    pthread_mutex_unlock(&zl.mu);
}

void zl_written(const zg_record *r)
{
    if (r->ref > 0 && (size_t)r->ref <= TAB_CAP && zl.tab[r->ref - 1].unwritten > 0)
        zl.tab[r->ref - 1].unwritten--;
}

uint64_t zl_version_now(void)
{
    return __atomic_load_n(&zl.access_version, __ATOMIC_RELAXED);
}

static bool usable(const struct entry *e, int64_t hold, int min_plan, time_t now)
{
    return e->granted && e->version >= __atomic_load_n(&zl.access_version, __ATOMIC_RELAXED) && now < e->reset &&
           e->slots > 0 && (hold == 0 || e->db_credits - e->held >= hold) && (e->plan > 1 ? e->plan : 1) >= min_plan;
}

/* ---- admission -------------------------------------------------------------------------------------- */

/* A new operation id: this process's name and a sequence number. */
void zl_new_op(char *op, size_t cap)
{
    static unsigned long long seq;
    snprintf(op, cap, "%s#%llu", zl.owner, __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
}

/* Take the entry's lost operation, if any, so that exactly one caller asks again under its id;
 * else a new id (callers hold mu). */
void zl_take_op(struct entry *e, char *op, size_t cap)
{
    if (e->pending_op[0]) {
        snprintf(op, cap, "%s", e->pending_op);
        e->pending_op[0] = '\0';
    } else {
        zl_new_op(op, cap);
    }
}

/* Raise the access version this process knows (never lower it). */
void zl_see_version(uint64_t v)
{
    uint64_t cur = __atomic_load_n(&zl.access_version, __ATOMIC_RELAXED);
    while (v > cur && !__atomic_compare_exchange_n(&zl.access_version, &cur, v, false, __ATOMIC_RELAXED,
                                                   __ATOMIC_RELAXED)) {
    }
}

/* Double or halve an asked size after a grant that came `age` ms after the one before. */
static int64_t resize(int64_t ask, int64_t base, int64_t cap, int64_t age)
{
    if (ask <= 0)
        ask = base;
    if (age < GROW_FAST_MS && ask <= cap / 2)
        return ask * 2;
    if (age > SHRINK_SLOW_MS && ask / 2 >= base)
        return ask / 2;
    return ask;
}

/* Add a successful grant to an entry (callers hold mu). The key was checked at access version
 * g->v[9], so the entry is good until a later version is seen. */
void zl_merge_grant(struct entry *e, const struct grant *g, int64_t now)
{
    int64_t t = zg_clock_ms();
    e->user_id = g->v[1];
    e->key_id = g->v[2];
    e->plan = (int)g->v[3];
    e->limit = g->v[4];
    if (e->reset != g->v[6])
        e->slots = 0; /* a new hour: what was left of the old one is gone */
    e->reset = g->v[6];
    e->db_credits += g->v[7];
    e->slots += g->v[8];
    if (g->v[7] > 0) {
        if (e->credits_at_ms)
            e->ask_credits = resize(e->ask_credits, zl.cfg->lease_credits, zl.cfg->lease_credits * GROW_CREDITS,
                                    t - e->credits_at_ms);
        e->credits_at_ms = t;
        e->grant_credits = g->v[7];
    }
    if (g->v[8] > 0) {
        if (e->slots_at_ms)
            e->ask_slots = resize(e->ask_slots, zl.cfg->lease_slots, (int64_t)zl.cfg->lease_slots * GROW_SLOTS,
                                  t - e->slots_at_ms);
        e->slots_at_ms = t;
        e->grant_slots = g->v[8];
        e->hits_db = g->v[5];
    }
    e->version = g->v[9] > 0 ? (uint64_t)g->v[9] : 0;
    zl_see_version(e->version);
    e->granted = true;
    e->last_ms = now;
}

int64_t zl_ask_slots(const struct entry *e)
{
    return e->ask_slots > 0 ? e->ask_slots : zl.cfg->lease_slots;
}

int64_t zl_ask_credits(const struct entry *e)
{
    return e->ask_credits > 0 ? e->ask_credits : zl.cfg->lease_credits;
}

bool zl_credits_low(const struct entry *e)
{
    return e->grant_credits > 0 && (e->db_credits - e->held) * 4 <= e->grant_credits;
}

bool zl_slots_low(const struct entry *e)
{
    return e->slots * 4 <= e->grant_slots;
}

bool zl_running_low(const struct entry *e)
{
    return e->granted && (zl_credits_low(e) || zl_slots_low(e));
}

void zl_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int strict_admit(zg_db *db, const char *key_hash, const char *request_id, const char *group, int limit,
                        int min_plan, int64_t hold, const char *surface, const char *model, const char *provider,
                        zg_admission *out, zg_ticket *t)
{
    t->mode = ZG_BILLING_STRICT;
    int code;
    for (int i = 0;; i++) {
        code = zg_billing_admit(db, key_hash, request_id, group, limit, min_plan, hold, surface, model, provider,
                                out);
        if (code != ZG_ADMIT_RECALLED)
            break;
        if (i == RECALL_TRIES) {
            out->code = code = ZG_ADMIT_RATE;
            break;
        }
        zl_sleep_ms(RECALL_WAIT_MS);
    }
    if (code != ZG_ADMIT_OK || hold <= 0 || !zl.active)
        return code;
    /* a pending row: journalled so that a sibling settles it within seconds if this process dies */
    pthread_mutex_lock(&zl.mu);
    t->gen = zl.jgen;
    zl.outstanding[t->gen]++;
    pthread_mutex_unlock(&zl.mu);
    t->journaled = true;
    t->hold = hold;
    zl_journal_admit('P', t->gen, request_id, out->who.user_id, out->who.key_id, group, surface, model, provider,
                  hold);
    return code;
}

/* take_lease, asking again while the hour's unused slices are being recalled from other processes;
 * a recall that frees nothing in time is a plain 429. */
static int take_lease_recalled(zg_db *db, const char *hash, const char *grp, int limit, int min_plan, int64_t need,
                               int64_t want, int want_slots, const char *op, struct grant *g)
{
    for (int i = 0;; i++) {
        int rc = zl_take_lease(db, hash, grp, limit, min_plan, need, want, want_slots, op, g);
        if (rc != 0 || g->v[0] != ZG_ADMIT_RECALLED)
            return rc;
        if (i == RECALL_TRIES) {
            g->v[0] = ZG_ADMIT_RATE;
            return 0;
        }
        zl_sleep_ms(RECALL_WAIT_MS);
    }
}

int zg_lease_admit(zg_db *db, const zg_settings *cfg, const char *key_hash, const char *request_id,
                   const char *group, int limit, int min_plan, int64_t hold, const char *surface,
                   const char *model, const char *provider, zg_admission *out, zg_ticket *t)
{
    (void)cfg;
    memset(t, 0, sizeof *t);
    memset(out, 0, sizeof *out);
    if (!zl.active)
        return strict_admit(db, key_hash, request_id, group, limit, min_plan, hold, surface, model, provider, out,
                            t);
    int64_t now = zg_clock_ms();
    pthread_mutex_lock(&zl.mu);
    int idx = find_or_add(key_hash, group, now);
    if (idx < 0 || zl.tab[idx].low_until_ms > now) {
        pthread_mutex_unlock(&zl.mu);
        return strict_admit(db, key_hash, request_id, group, limit, min_plan, hold, surface, model, provider, out,
                            t);
    }
    struct entry *e = &zl.tab[idx];
    for (int attempt = 0; attempt < 2; attempt++) {
        if (usable(e, hold, min_plan, time(NULL))) {
            e->slots--;
            e->last_ms = now;
            /* three quarters spent: the writer extends the lease before it runs out */
            if (!e->refilling && zl_running_low(e))
                __atomic_store_n(&zl.refill_due, true, __ATOMIC_RELAXED);
            out->code = ZG_ADMIT_OK;
            out->who.user_id = e->user_id;
            out->who.key_id = e->key_id;
            out->who.plan_rank = e->plan;
            out->rl_limit = e->limit;
            out->rl_used = e->hits_db - e->slots;
            out->rl_reset = e->reset;
            t->mode = ZG_BILLING_LEASE;
            t->entry = idx;
            t->hold = hold;
            if (hold == 0) {
                /* an unbilled request (count_tokens): counted against the limit, never settled */
                pthread_mutex_unlock(&zl.mu);
                return 0;
            }
            e->held += hold;
            e->inflight++;
            t->gen = zl.jgen;
            zl.outstanding[t->gen]++;
            int64_t user = e->user_id, key = e->key_id;
            pthread_mutex_unlock(&zl.mu);
            zl_journal_admit('A', t->gen, request_id, user, key, group, surface, model, provider, hold);
            return 0;
        }
        if (attempt == 1)
            break;
        /* take or extend the lease: credits only when the free part cannot cover this hold, or
         * when the key changed since the grant (a new spend limit must be checked again) */
        int64_t avail = e->db_credits - e->held;
        int64_t need = hold > 0 && avail < hold ? hold - (avail > 0 ? avail : 0) : 0;
        if (hold > 0 && e->granted && e->version < __atomic_load_n(&zl.access_version, __ATOMIC_RELAXED))
            need = need > hold ? need : hold;
        int64_t ask = zl_ask_credits(e);
        int64_t want = need > 0 ? (ask > need ? ask : need) : 0;
        /* requests of the hour only when this process has none left of the current one */
        int want_slots = e->granted && e->slots > 0 && time(NULL) < e->reset ? 0 : (int)zl_ask_slots(e);
        char op[80];
        zl_take_op(e, op, sizeof op);
        e->granting++;
        pthread_mutex_unlock(&zl.mu);
        struct grant g;
        int rc = take_lease_recalled(db, key_hash, group, limit, min_plan, need, want, want_slots, op, &g);
        pthread_mutex_lock(&zl.mu);
        e->granting--;
        if (rc != 0) {
            /* the grant may have been committed before the answer was lost: the next grant for this
             * entry asks under the same id and so receives it instead of a second one */
            memcpy(e->pending_op, op, sizeof e->pending_op);
            pthread_mutex_unlock(&zl.mu);
            zg_error("lease for %s failed: %s", request_id, zg_db_error(db));
            out->code = ZG_ADMIT_DB_ERROR;
            t->mode = ZG_BILLING_LEASE; /* nothing to cancel */
            return out->code;
        }
        int code = (int)g.v[0];
        if (code == 1) {
            /* too little free credit for a lease: this key is admitted the strict way for a while */
            e->low_until_ms = now + 1000;
            pthread_mutex_unlock(&zl.mu);
            return strict_admit(db, key_hash, request_id, group, limit, min_plan, hold, surface, model, provider,
                                out, t);
        }
        if (code != 0) {
            pthread_mutex_unlock(&zl.mu);
            out->code = code;
            out->who.user_id = g.v[1];
            out->who.key_id = g.v[2];
            out->who.plan_rank = (int)g.v[3];
            out->rl_limit = g.v[4];
            out->rl_used = g.v[5];
            out->rl_reset = g.v[6];
            t->mode = ZG_BILLING_LEASE;
            return code;
        }
        zl_merge_grant(e, &g, now);
    }
    pthread_mutex_unlock(&zl.mu);
    /* a grant smaller than this request needs (others took the rest meanwhile) */
    return strict_admit(db, key_hash, request_id, group, limit, min_plan, hold, surface, model, provider, out, t);
}

/* ---- settlement ------------------------------------------------------------------------------------- */

int zg_lease_settle(zg_db *db, const zg_settings *cfg, const char *request_id, const char *surface,
                    const char *model, const char *provider, const zg_settlement *s, zg_ticket *t)
{
    if (t->mode != ZG_BILLING_LEASE) {
        int rc = zg_billing_settle(db, cfg, request_id, s, NULL);
        if (t->journaled) {
            zg_record d;
            memset(&d, 0, sizeof d);
            zg_record_field(d.rid, sizeof d.rid, request_id);
            if (rc == 0)
                zl_journal_record('D', t->gen, &d);
            pthread_mutex_lock(&zl.mu);
            zl.outstanding[t->gen]--;
            pthread_mutex_unlock(&zl.mu);
        }
        return rc;
    }
    zg_record r;
    memset(&r, 0, sizeof r);
    zg_record_field(r.rid, sizeof r.rid, request_id);
    zg_record_field(r.surface, sizeof r.surface, surface);
    zg_record_field(r.model, sizeof r.model, model);
    zg_record_field(r.provider, sizeof r.provider, provider);
    zg_record_settlement(&r, s);
    r.hold = t->hold;
    r.tag = t->gen;

    pthread_mutex_lock(&zl.mu);
    struct entry *e = &zl.tab[t->entry];
    e->held -= t->hold;
    e->inflight--;
    e->last_ms = zg_clock_ms();
    r.rel = s->credits < e->db_credits ? s->credits : e->db_credits;
    if (r.rel < 0)
        r.rel = 0;
    e->db_credits -= r.rel;
    if (r.rel > 0) {
        e->unwritten++;
        r.ref = t->entry + 1;
    }
    r.user = e->user_id;
    r.key = e->key_id;
    zg_record_field(r.grp, sizeof r.grp, e->grp);
    pthread_mutex_unlock(&zl.mu);

    zl_journal_record('S', r.tag, &r);

    pthread_mutex_lock(&zl.mu);
    if (zl.qn == zl.qcap && zl.qcap < QUEUE_CAP) {
        size_t ncap = zl.qcap ? zl.qcap * 2 : 1024;
        zg_record *q = realloc(zl.queue, ncap * sizeof *q);
        if (q) {
            zl.queue = q;
            zl.qcap = ncap;
        }
    }
    if (zl.qn < zl.qcap) {
        zl.queue[zl.qn++] = r;
        if (zl.qn >= QUEUE_WAKE)
            pthread_cond_signal(&zl.wake);
        pthread_mutex_unlock(&zl.mu);
        return 0;
    }
    pthread_mutex_unlock(&zl.mu);
    /* the queue is full (the database has been away for long): the journal keeps this one, and the
     * row is written now or, failing that, when the journal is replayed */
    char own[64];
    zl_owner_now(own);
    int rc = zl_settle_direct(db, own, &r);
    if (rc != 0)
        zg_error("lease: settlement of %s kept only in the journal: %s", request_id, zg_db_error(db));
    pthread_mutex_lock(&zl.mu);
    zl.outstanding[r.tag]--;
    zl_written(&r);
    pthread_mutex_unlock(&zl.mu);
    return rc == 0 ? 0 : -1;
}

void zg_lease_progress(const zg_ticket *t, const char *request_id, const zg_usage *u, int64_t credits)
{
    if (!zl.active || (t->mode != ZG_BILLING_LEASE && !t->journaled) || t->hold <= 0)
        return;
    zg_record r;
    memset(&r, 0, sizeof r);
    zg_record_field(r.rid, sizeof r.rid, request_id);
    r.credits = credits;
    r.u = *u;
    zl_journal_record('U', t->gen, &r);
}

/* ---- start and stop ----------------------------------------------------------------------------------- */

int zg_lease_start(const zg_settings *cfg)
{
    zl.cfg = cfg;
    if (cfg->billing_mode != ZG_BILLING_LEASE)
        return 0;
    snprintf(zl.owner, sizeof zl.owner, "%s:%ld:%lld", cfg->node_name, (long)getpid(), (long long)time(NULL));
    zl.tab = calloc(TAB_CAP, sizeof *zl.tab);
    zl.used_idx = calloc(TAB_CAP, sizeof *zl.used_idx);
    if (!zl.tab || !zl.used_idx || !cfg->spool_path[0] || zl_journal_open() != 0) {
        zg_error("lease mode unavailable (journal or memory); billing strictly");
        free(zl.tab);
        zl.tab = NULL;
        return -1;
    }
    if (pthread_create(&zl.writer, NULL, zl_writer_main, NULL) != 0) {
        zg_error("lease writer thread: cannot start; billing strictly");
        return -1;
    }
    zl.active = true;
    zg_info("billing with leases as %s", zl.owner);
    return 0;
}

void zg_lease_stop(void)
{
    if (!zl.active)
        return;
    pthread_mutex_lock(&zl.mu);
    zl.stopping = true;
    pthread_cond_signal(&zl.wake);
    pthread_mutex_unlock(&zl.mu);
    pthread_join(zl.writer, NULL);
    zl.active = false;
    for (int g = 0; g < 2; g++)
        if (zl.jfd[g] >= 0) {
            fsync(zl.jfd[g]);
            close(zl.jfd[g]);
            zl.jfd[g] = -1;
        }
    free(zl.queue);
    zl.queue = NULL;
    zl.qn = zl.qcap = 0;
}
