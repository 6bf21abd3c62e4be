/* Lease mode: the writer thread: batches of settlements, leases given back, rate-limit recalls
 * answered, leases refilled, the journal synced and rotated, the heartbeat. */
#include "zg_lease_int.h"

static const char SQL_VERSION[] =
    "SELECT (SELECT version FROM catalog_version WHERE id = 2), (SELECT COALESCE(MAX(seq), 0) FROM rate_recalls)";
static const char SQL_RECALLS[] = "SELECT seq, user_id, grp FROM rate_recalls WHERE seq > ? ORDER BY seq LIMIT 200";
static const char SQL_HEARTBEAT[] = "UPDATE leases SET renewed_at = NOW(3) WHERE owner = ?";
/* ---- the writer thread -------------------------------------------------------------------------------- */

/* Leases to give back (callers hold mu): idle ones, ones of an older access version, or all. The
 * entry forgets them at once; requests admitted later take a new grant. */
static size_t collect_drops(struct drop *out, size_t cap, int64_t now, bool all)
{
    size_t n = 0;
    for (size_t u = 0; u < zl.n_used && n < cap; u++) {
        struct entry *e = &zl.tab[zl.used_idx[u]];
        if (!e->used || !e->granted || e->inflight > 0 || e->unwritten > 0)
            continue;
        bool idle = now - e->last_ms >= zl.cfg->lease_idle_ms;
        if (!all && !idle && e->version >= zl_version_now())
            continue;
        if (e->db_credits != 0 || e->slots > 0) {
            struct drop *d = &out[n++];
            d->key = e->key_id;
            d->credits = e->db_credits;
            d->slots = time(NULL) < e->reset ? e->slots : 0;
            d->window = e->reset - 3600;
            memcpy(d->grp, e->grp, sizeof d->grp);
            d->op[0] = '\0';
        }
        e->db_credits = 0;
        e->slots = 0;
        e->granted = false;
    }
    return n;
}

/* Recalls of rate-limit slices (zg_rate_recall): every entry of the named user and group gives its
 * unused requests of the hour back, and its lease row forgets its slots. */

struct recalls {
    int64_t seq, user;
    char grp[16];
    struct drop *out;
    size_t *n;
};

static int recall_row(void *ctx, int nc, char **v, const size_t *l)
{
    struct recalls *rc = ctx;
    int64_t seq, user;
    if (nc < 3 || !v[0] || !v[1] || !v[2] || zg_parse_i64(v[0], l[0], 0, INT64_MAX, &seq) ||
        zg_parse_i64(v[1], l[1], 0, INT64_MAX, &user))
        return 0;
    rc->seq = seq;
    time_t now = time(NULL);
    pthread_mutex_lock(&zl.mu);
    for (size_t u = 0; u < zl.n_used && *rc->n < TAB_CAP; u++) {
        struct entry *e = &zl.tab[zl.used_idx[u]];
        if (!e->used || !e->granted || e->user_id != user || strncmp(e->grp, v[2], l[2]) != 0 || e->grp[l[2]])
            continue;
        struct drop *d = &rc->out[(*rc->n)++];
        d->key = e->key_id;
        d->credits = 0;
        d->slots = now < e->reset ? e->slots : 0;
        d->window = e->reset - 3600;
        memcpy(d->grp, e->grp, sizeof d->grp);
        d->op[0] = '\0';
        e->slots = 0;
    }
    pthread_mutex_unlock(&zl.mu);
    return 0;
}

/* Answer the recalls after recall_seq, up to upto; queue the slices to give back in out/n. Returns
 * false when the database failed (asked again at the next poll). */
static bool answer_recalls(zg_db *db, int64_t upto, struct drop *out, size_t *n)
{
    if (zl.recall_seq == 0 && zl.n_used == 0) {
        zl.recall_seq = upto; /* nothing leased yet: older recalls are not ours to answer */
        return true;
    }
    while (zl.recall_seq < upto) {
        struct recalls rc = {.seq = zl.recall_seq, .out = out, .n = n};
        zg_val p[1] = {ZG_INT(zl.recall_seq)};
        if (zg_db_run(db, SQL_RECALLS, p, 1, recall_row, &rc, NULL) != 0)
            return false;
        if (rc.seq == zl.recall_seq)
            break;
        zl.recall_seq = rc.seq;
    }
    zl.recall_seq = upto > zl.recall_seq ? upto : zl.recall_seq;
    return true;
}

/* Extend leases in use that are three quarters spent, so requests rarely wait for a grant (grants
 * grow with the rate a key spends them: zl_merge_grant). */
#define REFILL_MAX 64
static void refill(zg_db *db, int64_t now)
{
    struct {
        int idx;
        char hash[65], grp[16];
        int64_t limit, want, slots;
        char op[80];
    } todo[REFILL_MAX];
    int n = 0;
    pthread_mutex_lock(&zl.mu);
    for (size_t u = 0; u < zl.n_used && n < REFILL_MAX; u++) {
        int i = zl.used_idx[u];
        struct entry *e = &zl.tab[i];
        /* a grant whose answer was lost is asked for again under its id (nothing new is granted),
         * so that what it reserved is known here and given back like any lease */
        bool probe = e->used && e->pending_op[0] && !e->refilling;
        if (!probe && (!e->used || !e->granted || e->refilling || e->version < zl_version_now() ||
                       now - e->last_ms >= zl.cfg->lease_idle_ms / 2 || e->low_until_ms > now))
            continue;
        if (!probe && !zl_running_low(e))
            continue;
        bool credits_low = !probe && zl_credits_low(e);
        bool slots_low = !probe && zl_slots_low(e);
        e->refilling = true;
        todo[n].idx = i;
        memcpy(todo[n].hash, e->hash, sizeof e->hash);
        memcpy(todo[n].grp, e->grp, sizeof e->grp);
        todo[n].limit = e->limit;
        todo[n].want = credits_low ? zl_ask_credits(e) : 0;
        todo[n].slots = slots_low ? zl_ask_slots(e) : 0;
        zl_take_op(e, todo[n].op, sizeof todo[n].op);
        n++;
    }
    pthread_mutex_unlock(&zl.mu);
    for (int k = 0; k < n; k++) {
        struct grant g;
        int rc = zl_take_lease(db, todo[k].hash, todo[k].grp, (int)todo[k].limit, 1, 0, todo[k].want,
                            -(int)todo[k].slots, todo[k].op, &g);
        pthread_mutex_lock(&zl.mu);
        struct entry *e = &zl.tab[todo[k].idx];
        e->refilling = false;
        if (rc != 0)
            memcpy(e->pending_op, todo[k].op, sizeof e->pending_op);
        else if (g.v[0] == 0)
            zl_merge_grant(e, &g, e->last_ms);
        pthread_mutex_unlock(&zl.mu);
    }
}

static void rotate_journal(void)
{
    struct stat st;
    int other = 1 - zl.jgen;
    if (zl.jfd[zl.jgen] < 0 || fstat(zl.jfd[zl.jgen], &st) != 0 || (size_t)st.st_size < JOURNAL_ROTATE)
        return;
    pthread_mutex_lock(&zl.mu);
    if (zl.outstanding[other] == 0) {
        /* everything admitted into the other file is written: it can start over */
        if (ftruncate(zl.jfd[other], 0) == 0)
            zl.jgen = other;
    }
    pthread_mutex_unlock(&zl.mu);
}

void *zl_writer_main(void *arg)
{
    (void)arg;
    zg_db *db = zg_db_open(zl.cfg);
    while (!db) {
        /* nothing can be written without one: keep asking (what is queued waits in the journal) */
        zg_error("lease writer: out of memory for a database handle; retrying");
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
        db = zg_db_open(zl.cfg);
    }
    zg_record *batch = NULL;
    size_t bn = 0;
    struct drop *drops = calloc(TAB_CAP, sizeof *drops);
    size_t dn = 0;
    int64_t last_poll = 0, last_beat = zg_clock_ms(), backoff_until = 0, last_upkeep = 0;
    bool final_done = false;
    unsigned long synced = 0;
    for (;;) {
        pthread_mutex_lock(&zl.mu);
        if (!zl.stopping && zl.qn < QUEUE_WAKE) {
            struct timespec ts = zg_clock_deadline(zl.cfg->flush_ms);
            pthread_cond_timedwait(&zl.wake, &zl.mu, &ts);
        }
        bool stop = zl.stopping;
        int64_t now = zg_clock_ms();
        if (now < backoff_until && !stop) {
            /* the database failed a moment ago: wait out the backoff */
            struct timespec ts = zg_clock_deadline(backoff_until - now);
            pthread_cond_timedwait(&zl.wake, &zl.mu, &ts);
            pthread_mutex_unlock(&zl.mu);
            continue;
        }
        /* take the queue, after whatever an earlier failed attempt left */
        if (zl.qn) {
            zg_record *nb = realloc(batch, (bn + zl.qn) * sizeof *nb);
            if (nb) {
                batch = nb;
                memcpy(batch + bn, zl.queue, zl.qn * sizeof *zl.queue);
                bn += zl.qn;
                zl.qn = 0;
            }
        }
        pthread_mutex_unlock(&zl.mu);

        /* the journal reaches the disk at least once per period: a power loss forgets at most
         * the requests of the last flush_ms */
        unsigned long jw = __atomic_load_n(&zl.jwrites, __ATOMIC_RELAXED);
        if (jw != synced) {
            synced = jw;
            for (int g = 0; g < 2; g++)
                if (zl.jfd[g] >= 0)
                    fdatasync(zl.jfd[g]);
        }
        bool ok = true;
        if (bn) {
            size_t w = zl_write_rows(db, batch, bn);
            pthread_mutex_lock(&zl.mu);
            for (size_t i = 0; i < w; i++) {
                zl.outstanding[batch[i].tag]--;
                zl_written(&batch[i]);
            }
            pthread_mutex_unlock(&zl.mu);
            memmove(batch, batch + w, (bn - w) * sizeof *batch);
            bn -= w;
            ok = bn == 0;
            now = zg_clock_ms(); /* a write may have waited long (a row lock, a slow database) */
        }
        bool upkeep = stop || now - last_upkeep >= UPKEEP_MS;
        if (upkeep)
            last_upkeep = now;
        if (now - last_poll >= VERSION_POLL_MS) {
            int64_t v[2] = {-1, 0};
            if (zg_db_run(db, SQL_VERSION, NULL, 0, zg_db_row_ints, &(zg_ints){v, 2}, NULL) == 0) {
                last_poll = now;
                if (v[0] > 0)
                    zl_see_version((uint64_t)v[0]);
                if (v[1] > zl.recall_seq && drops) {
                    size_t before = dn;
                    if (answer_recalls(db, v[1], drops, &dn))
                        upkeep = upkeep || dn > before;
                    else
                        ok = false;
                }
            } else {
                ok = false;
            }
        }
        if (drops && upkeep && dn) {
            /* slices of the hour go back at once: nothing in the settlements depends on them */
            size_t k = 0;
            while (k < dn && drops[k].credits == 0 && zl_drop_one(db, zl.owner, &drops[k]) == 0)
                k++;
            memmove(drops, drops + k, (dn - k) * sizeof *drops);
            dn -= k;
        }
        if (ok && drops && upkeep) {
            /* leases go back only once the settlements that consumed them are written */
            pthread_mutex_lock(&zl.mu);
            dn += collect_drops(drops + dn, TAB_CAP - dn, now, stop);
            pthread_mutex_unlock(&zl.mu);
            size_t k = 0;
            while (k < dn && zl_drop_one(db, zl.owner, &drops[k]) == 0)
                k++;
            if (k < dn)
                zg_warn("lease: giving back %zu lease(s) failed (will retry): %s", dn - k, zg_db_error(db));
            memmove(drops, drops + k, (dn - k) * sizeof *drops);
            dn -= k;
            ok = dn == 0;
        }
        /* low leases are looked for every UPKEEP_MS, and at once when a request saw one */
        if (ok && (upkeep || __atomic_exchange_n(&zl.refill_due, false, __ATOMIC_RELAXED)))
            refill(db, now);
        if (now - last_beat >= HEARTBEAT_MS(zl.cfg)) {
            zg_val p[1] = {ZG_STR(zl.owner)};
            if (zg_db_run(db, SQL_HEARTBEAT, p, 1, NULL, NULL, NULL) == 0) {
                last_beat = now;
            } else if (now - last_beat >= ORPHAN_AFTER_MS(zl.cfg)) {
                /* our leases may be reaped as a lost host's: forget them, and lease anew under a new
                 * name once the database is back */
                pthread_mutex_lock(&zl.mu);
                for (size_t i = 0; i < TAB_CAP; i++) {
                    zl.tab[i].db_credits = 0;
                    zl.tab[i].slots = 0;
                    zl.tab[i].granted = false;
                }
                dn = 0;
                size_t len = strlen(zl.owner);
                snprintf(zl.owner + (len > 56 ? 56 : len), sizeof zl.owner - (len > 56 ? 56 : len), ".%lld",
                         (long long)(now / 1000 % 10000000));
                pthread_mutex_unlock(&zl.mu);
                last_beat = now;
                zg_warn("lease: no heartbeat for %d s; leases forgotten, now leasing as %s",
                        (int)(ORPHAN_AFTER_MS(zl.cfg) / 1000), zl.owner);
            }
        }
        if (!ok)
            backoff_until = now + 200;
        rotate_journal();
        if (stop) {
            if (ok && !final_done) {
                final_done = true;
                struct drop all = {0};
                if (zl_drop_one(db, zl.owner, &all) == 0) {
                    /* everything is written and given back: the journal has nothing left to say */
                    for (int g = 0; g < 2; g++)
                        if (zl.jpath[g][0])
                            unlink(zl.jpath[g]);
                    break;
                }
            }
            if (ok || now - last_beat > 10000) /* the database is away: the journal stays for replay */
                break;
            final_done = false;
        }
    }
    free(batch);
    free(drops);
    zg_db_free(db);
    zg_db_thread_end();
    return NULL;
}
