#include "zg_lease.h"
#include "zg_buf.h"
#include "zg_log.h"
#include "zg_num.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TAB_CAP 4096           /* key x group pairs a process leases for at once */
#define LEASE_SHARE 8          /* a lease takes at most 1/8 of what is free */
#define BATCH_MAX 400          /* rows per zg_flush call */
#define QUEUE_WAKE 256         /* queued rows that wake the writer before its period */
#define QUEUE_CAP 1000000      /* rows kept in memory while the database is away */
#define VERSION_POLL_MS 100    /* how often the access version is read */
#define UPKEEP_MS 50           /* how often idle and low leases are looked for */
#define HEARTBEAT_MS 5000      /* how often the leases are marked alive */
#define STALE_OWNER_S 300      /* leases not renewed for this long belong to a lost host */
#define ORPHAN_AFTER_MS 200000 /* without a heartbeat this long, our leases may be reaped: forget them */
#define JOURNAL_ROTATE (8u << 20)
#define RECALL_TRIES 8         /* a refused request asks again this often while slices are recalled */
#define RECALL_WAIT_MS 100     /* between those asks (processes poll for recalls every VERSION_POLL_MS) */

struct entry {
    bool used, granted;
    char hash[65];
    char grp[16];
    int64_t user_id, key_id;
    int plan;
    int64_t limit, hits_db, reset; /* rate figures of the last grant */
    int64_t slots;                 /* requests of the hour left in the lease */
    int64_t db_credits;            /* the lease's credits in the database not yet consumed */
    int64_t held;                  /* holds of requests in flight */
    int inflight;
    int64_t last_ms, low_until_ms;
    uint64_t version;
    int64_t grant_slots, grant_credits; /* size of the last grant: refilled when 3/4 is used */
    bool refilling;
    int granting;        /* grants in flight for this entry (it is not recycled meanwhile) */
    char pending_op[80]; /* a grant whose answer was lost: asked again under the same id */
};

struct row {
    char rid[41], grp[16], surface[16], model[65], provider[33], status[16], reason[24];
    int64_t user, key, hold, credits, rel;
    zg_usage u;
    int est, ups, gen;
    int64_t ttfb, dur;
};

struct drop {
    int64_t key, credits, slots, window;
    char grp[16];
    char op[80]; /* the operation id: a return retried after a lost answer is applied once */
};

static const zg_settings *cfg_;
static bool active;
static char owner[64], host[40];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static struct entry *tab;
static int *used_idx; /* indices of the slots ever used, so scans skip the empty rest */
static size_t n_used;
static struct row *queue;
static size_t qn, qcap;
static volatile uint64_t access_version;
static int jfd[2] = {-1, -1};
static char jpath[2][700];
static int jgen;
static long outstanding[2];
static pthread_t writer;
static bool stopping_;
static unsigned long jwrites; /* journal lines written (atomic), so the writer syncs only when needed */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
    /* journal fields are space-separated: a space would split one */
    for (size_t i = 0; i < n; i++)
        if (dst[i] == ' ' || dst[i] == '\n' || dst[i] == '"' || dst[i] == '\\' || (unsigned char)dst[i] < 0x20)
            dst[i] = '_';
}

bool zg_lease_active(void)
{
    return active;
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
        struct entry *e = &tab[idx];
        if (!e->used) {
            if (reuse < 0)
                reuse = idx;
            break;
        }
        if (strcmp(e->hash, hash) == 0 && strcmp(e->grp, grp) == 0)
            return idx;
        if (reuse < 0 && !e->granted && e->inflight == 0 && !e->refilling && e->granting == 0 &&
            now - e->last_ms > 60000)
            reuse = idx;
    }
    if (reuse < 0)
        return -1;
    struct entry *e = &tab[reuse];
    if (!e->used)
        used_idx[n_used++] = reuse;
    memset(e, 0, sizeof *e);
    e->used = true;
    e->last_ms = now;
    copy_str(e->hash, sizeof e->hash, hash);
    copy_str(e->grp, sizeof e->grp, grp);
    return reuse;
}

/* This process's lease owner name, copied under mu (the writer renames it after a long outage). */
static void owner_now(char out[64])
{
    pthread_mutex_lock(&mu);
    memcpy(out, owner, 64);
    pthread_mutex_unlock(&mu);
}

static uint64_t version_now(void)
{
    return __atomic_load_n(&access_version, __ATOMIC_RELAXED);
}

static bool usable(const struct entry *e, int64_t hold, int min_plan, time_t now)
{
    return e->granted && e->version >= __atomic_load_n(&access_version, __ATOMIC_RELAXED) && now < e->reset &&
           e->slots > 0 && (hold == 0 || e->db_credits - e->held >= hold) && (e->plan > 1 ? e->plan : 1) >= min_plan;
}

/* ---- journal ---------------------------------------------------------------------------------------- */

static void journal_write(int gen, const char *line, size_t n)
{
    int fd = jfd[gen];
    if (fd < 0)
        return;
    /* O_APPEND: each line lands whole at the end, whatever other threads write */
    if (write(fd, line, n) != (ssize_t)n)
        zg_warn("lease journal: write failed: %s", strerror(errno));
    __atomic_fetch_add(&jwrites, 1, __ATOMIC_RELAXED);
}

static int journal_open(void)
{
    for (int g = 0; g < 2; g++) {
        int n = snprintf(jpath[g], sizeof jpath[g], "%s.lease.%s.%d", cfg_->spool_path, owner, g);
        if (n < 0 || (size_t)n >= sizeof jpath[g])
            return -1;
        jfd[g] = open(jpath[g], O_WRONLY | O_CREAT | O_APPEND | O_TRUNC | O_CLOEXEC, 0600);
        if (jfd[g] < 0) {
            zg_error("lease journal %s: %s", jpath[g], strerror(errno));
            return -1;
        }
    }
    /* held for the process's life: a journal whose lock can be taken belongs to a dead process */
    if (flock(jfd[0], LOCK_EX | LOCK_NB) != 0) {
        zg_error("lease journal %s is locked by another process", jpath[0]);
        return -1;
    }
    return 0;
}

/* ---- database calls ------------------------------------------------------------------------------- */

static const char SQL_LEASE[] = "CALL zg_lease(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
static const char SQL_FLUSH[] = "CALL zg_flush(?, ?)";
static const char SQL_DROP[] = "CALL zg_lease_drop(?, ?, ?, ?, ?, ?, ?)";
static const char SQL_DIRECT[] =
    "CALL zg_settle_direct(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
static const char SQL_VERSION[] =
    "SELECT (SELECT version FROM catalog_version WHERE id = 2), (SELECT COALESCE(MAX(seq), 0) FROM rate_recalls)";
static const char SQL_RECALLS[] = "SELECT seq, user_id, grp FROM rate_recalls WHERE seq > ? ORDER BY seq LIMIT 200";
static const char SQL_HEARTBEAT[] = "UPDATE leases SET renewed_at = NOW(3) WHERE owner = ?";
static const char SQL_STALE[] =
    "SELECT DISTINCT owner FROM leases WHERE renewed_at < NOW(3) - INTERVAL ? SECOND LIMIT 100";

static int settle_direct(zg_db *db, const char *own, const struct row *r)
{
    zg_val p[24] = {
        ZG_STR(own),         ZG_STR(r->grp),      ZG_INT(r->rel),     ZG_STR(r->rid),
        ZG_INT(r->user),     ZG_INT(r->key),      ZG_STR(r->surface), ZG_STR(r->model),
        ZG_STR(r->provider), ZG_INT(r->hold),     ZG_STR(r->status),  ZG_STR(r->reason),
        ZG_INT(r->credits),  ZG_INT(r->u.input),  ZG_INT(r->u.output), ZG_INT(r->u.cache_read),
        ZG_INT(r->u.cache_write_5m), ZG_INT(r->u.cache_write_1h), ZG_INT(r->u.reasoning), ZG_INT(r->u.units),
        ZG_INT(r->est),
        r->ups > 0 ? ZG_INT(r->ups) : ZG_NULLV,
        r->ttfb >= 0 ? ZG_INT(r->ttfb > 2000000000 ? 2000000000 : r->ttfb) : ZG_NULLV,
        r->dur >= 0 ? ZG_INT(r->dur > 2000000000 ? 2000000000 : r->dur) : ZG_NULLV,
    };
    return zg_db_run(db, SQL_DIRECT, p, 24, NULL, NULL, NULL);
}

static void json_row(zg_buf *b, const struct row *r)
{
    char tail[96];
    zg_buf_printf(b, "[\"%s\",%lld,%lld,\"%s\",\"%s\",\"%s\",\"%s\",%lld,\"%s\",\"%s\",%lld,%lld,", r->rid,
                  (long long)r->user, (long long)r->key, r->grp, r->surface, r->model, r->provider,
                  (long long)r->hold, r->status, r->reason, (long long)r->credits, (long long)r->rel);
    zg_buf_printf(b, "%lld,%lld,%lld,%lld,%lld,%lld,%lld,%d,", (long long)r->u.input, (long long)r->u.output,
                  (long long)r->u.cache_read, (long long)r->u.cache_write_5m, (long long)r->u.cache_write_1h,
                  (long long)r->u.reasoning, (long long)r->u.units, r->est);
    int64_t ttfb = r->ttfb > 2000000000 ? 2000000000 : r->ttfb, dur = r->dur > 2000000000 ? 2000000000 : r->dur;
    char a[24] = "null", c[24] = "null", d[24] = "null";
    if (r->ups > 0)
        snprintf(a, sizeof a, "%d", r->ups);
    if (ttfb >= 0)
        snprintf(c, sizeof c, "%lld", (long long)ttfb);
    if (dur >= 0)
        snprintf(d, sizeof d, "%lld", (long long)dur);
    snprintf(tail, sizeof tail, "%s,%s,%s]", a, c, d);
    zg_buf_puts(b, tail);
}

static int db_unavailable(unsigned e)
{
    return e == 0 || e >= 2000 || e == 1053 || e == 1927 || e == 4031 || e == 1205 || e == 1213;
}

/* Write rows[0..n) in batches. Returns how many leading rows were written (or written before, or
 * refused as bad data and logged); the rest must be retried. */
static size_t write_rows(zg_db *db, struct row *rows, size_t n)
{
    zg_buf b;
    zg_buf_init(&b, 64u << 20);
    size_t done = 0;
    while (done < n) {
        size_t m = n - done < BATCH_MAX ? n - done : BATCH_MAX;
        zg_buf_reset(&b);
        zg_buf_puts(&b, "[");
        for (size_t i = 0; i < m; i++) {
            if (i)
                zg_buf_puts(&b, ",");
            json_row(&b, &rows[done + i]);
        }
        zg_buf_puts(&b, "]");
        zg_val p[2] = {ZG_STR(owner), ZG_STRN(b.data, b.len)};
        if (zg_db_run(db, SQL_FLUSH, p, 2, NULL, NULL, NULL) == 0) {
            done += m;
            continue;
        }
        unsigned e = zg_db_errno(db);
        if (db_unavailable(e)) {
            zg_warn("lease: writing %zu settlements failed (will retry): %s", m, zg_db_error(db));
            break;
        }
        /* refused as a batch (a request already written, or bad data): one by one, idempotently */
        zg_warn("lease: batch of %zu refused (%s); writing it row by row", m, zg_db_error(db));
        size_t i;
        for (i = 0; i < m; i++) {
            const struct row *r = &rows[done + i];
            if (settle_direct(db, owner, r) == 0)
                continue;
            if (db_unavailable(zg_db_errno(db)))
                break;
            zg_error("lease: settlement of %s refused by the database (%s): %s credits=%lld", r->rid,
                     zg_db_error(db), r->reason, (long long)r->credits);
        }
        done += i;
        if (i < m)
            break;
    }
    zg_buf_free(&b);
    return done;
}

/* ---- admission -------------------------------------------------------------------------------------- */

struct grant {
    int64_t v[10];
};

/* A new operation id: this process's name and a sequence number. */
static void new_op(char *op, size_t cap)
{
    static unsigned long long seq;
    snprintf(op, cap, "%s#%llu", owner, __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
}

/* Take the entry's lost operation, if any, so that exactly one caller asks again under its id;
 * else a new id (callers hold mu). */
static void take_op(struct entry *e, char *op, size_t cap)
{
    if (e->pending_op[0]) {
        snprintf(op, cap, "%s", e->pending_op);
        e->pending_op[0] = '\0';
    } else {
        new_op(op, cap);
    }
}

/* Call zg_lease as operation op: repeated after a lost answer, it answers its first grant. */
static int take_lease(zg_db *db, const char *hash, const char *grp, int limit, int min_plan, int64_t need,
                      int64_t want, int want_slots, const char *op, struct grant *g)
{
    char own[64];
    owner_now(own);
    zg_val p[10] = {ZG_STR(hash),  ZG_STR(own), ZG_STR(grp),  ZG_INT(limit),
                    ZG_INT(min_plan), ZG_INT(need), ZG_INT(want), ZG_INT(want_slots),
                    ZG_INT(LEASE_SHARE), ZG_STR(op)};
    for (int i = 0; i < 10; i++)
        g->v[i] = 0;
    g->v[0] = -1;
    return zg_db_run(db, SQL_LEASE, p, 10, zg_db_row_ints, &(zg_ints){g->v, 10}, NULL);
}

/* Raise the access version this process knows (never lower it). */
static void see_version(uint64_t v)
{
    uint64_t cur = __atomic_load_n(&access_version, __ATOMIC_RELAXED);
    while (v > cur && !__atomic_compare_exchange_n(&access_version, &cur, v, false, __ATOMIC_RELAXED,
                                                   __ATOMIC_RELAXED)) {
    }
}

/* Add a successful grant to an entry (callers hold mu). The key was checked at access version
 * g->v[9], so the entry is good until a later version is seen. */
static void merge_grant(struct entry *e, const struct grant *g, int64_t now)
{
    e->user_id = g->v[1];
    e->key_id = g->v[2];
    e->plan = (int)g->v[3];
    e->limit = g->v[4];
    if (e->reset != g->v[6])
        e->slots = 0; /* a new hour: what was left of the old one is gone */
    e->reset = g->v[6];
    e->db_credits += g->v[7];
    e->slots += g->v[8];
    if (g->v[7] > 0)
        e->grant_credits = g->v[7];
    if (g->v[8] > 0) {
        e->grant_slots = g->v[8];
        e->hits_db = g->v[5];
    }
    e->version = g->v[9] > 0 ? (uint64_t)g->v[9] : 0;
    see_version(e->version);
    e->granted = true;
    e->last_ms = now;
}

/* Journal an admission: 'A' for a leased request, 'P' for one admitted strictly (a pending row). */
static void journal_admit(char kind, int gen, const char *request_id, int64_t user, int64_t key, const char *group,
                          const char *surface, const char *model, const char *provider, int64_t hold)
{
    char line[400];
    char s_[16], m_[65], p_[33];
    copy_str(s_, sizeof s_, surface);
    copy_str(m_, sizeof m_, model);
    copy_str(p_, sizeof p_, provider);
    int n = snprintf(line, sizeof line, "%c %s %lld %lld %s %s %s %s %lld\n", kind, request_id, (long long)user,
                     (long long)key, group, s_, m_, p_, (long long)hold);
    if (n > 0 && (size_t)n < sizeof line)
        journal_write(gen, line, (size_t)n);
}

static void sleep_ms(int ms)
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
        sleep_ms(RECALL_WAIT_MS);
    }
    if (code != ZG_ADMIT_OK || hold <= 0 || !active)
        return code;
    /* a pending row: journalled so that a sibling settles it within seconds if this process dies */
    pthread_mutex_lock(&mu);
    t->gen = jgen;
    outstanding[t->gen]++;
    pthread_mutex_unlock(&mu);
    t->journaled = true;
    t->hold = hold;
    journal_admit('P', t->gen, request_id, out->who.user_id, out->who.key_id, group, surface, model, provider,
                  hold);
    return code;
}

/* take_lease, asking again while the hour's unused slices are being recalled from other processes;
 * a recall that frees nothing in time is a plain 429. */
static int take_lease_recalled(zg_db *db, const char *hash, const char *grp, int limit, int min_plan, int64_t need,
                               int64_t want, int want_slots, const char *op, struct grant *g)
{
    for (int i = 0;; i++) {
        int rc = take_lease(db, hash, grp, limit, min_plan, need, want, want_slots, op, g);
        if (rc != 0 || g->v[0] != ZG_ADMIT_RECALLED)
            return rc;
        if (i == RECALL_TRIES) {
            g->v[0] = ZG_ADMIT_RATE;
            return 0;
        }
        sleep_ms(RECALL_WAIT_MS);
    }
}

int zg_lease_admit(zg_db *db, const zg_settings *cfg, const char *key_hash, const char *request_id,
                   const char *group, int limit, int min_plan, int64_t hold, const char *surface,
                   const char *model, const char *provider, zg_admission *out, zg_ticket *t)
{
    (void)cfg;
    memset(t, 0, sizeof *t);
    memset(out, 0, sizeof *out);
    if (!active)
        return strict_admit(db, key_hash, request_id, group, limit, min_plan, hold, surface, model, provider, out,
                            t);
    int64_t now = now_ms();
    pthread_mutex_lock(&mu);
    int idx = find_or_add(key_hash, group, now);
    if (idx < 0 || tab[idx].low_until_ms > now) {
        pthread_mutex_unlock(&mu);
        return strict_admit(db, key_hash, request_id, group, limit, min_plan, hold, surface, model, provider, out,
                            t);
    }
    struct entry *e = &tab[idx];
    for (int attempt = 0; attempt < 2; attempt++) {
        if (usable(e, hold, min_plan, time(NULL))) {
            e->slots--;
            e->last_ms = now;
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
                pthread_mutex_unlock(&mu);
                return 0;
            }
            e->held += hold;
            e->inflight++;
            t->gen = jgen;
            outstanding[t->gen]++;
            int64_t user = e->user_id, key = e->key_id;
            pthread_mutex_unlock(&mu);
            journal_admit('A', t->gen, request_id, user, key, group, surface, model, provider, hold);
            return 0;
        }
        if (attempt == 1)
            break;
        /* take or extend the lease: credits only when the free part cannot cover this hold, or
         * when the key changed since the grant (a new spend limit must be checked again) */
        int64_t avail = e->db_credits - e->held;
        int64_t need = hold > 0 && avail < hold ? hold - (avail > 0 ? avail : 0) : 0;
        if (hold > 0 && e->granted && e->version < __atomic_load_n(&access_version, __ATOMIC_RELAXED))
            need = need > hold ? need : hold;
        int64_t want = need > 0 ? (cfg_->lease_credits > need ? cfg_->lease_credits : need) : 0;
        /* requests of the hour only when this process has none left of the current one */
        int want_slots = e->granted && e->slots > 0 && time(NULL) < e->reset ? 0 : cfg_->lease_slots;
        char op[80];
        take_op(e, op, sizeof op);
        e->granting++;
        pthread_mutex_unlock(&mu);
        struct grant g;
        int rc = take_lease_recalled(db, key_hash, group, limit, min_plan, need, want, want_slots, op, &g);
        pthread_mutex_lock(&mu);
        e->granting--;
        if (rc != 0) {
            /* the grant may have been committed before the answer was lost: the next grant for this
             * entry asks under the same id and so receives it instead of a second one */
            memcpy(e->pending_op, op, sizeof e->pending_op);
            pthread_mutex_unlock(&mu);
            zg_error("lease for %s failed: %s", request_id, zg_db_error(db));
            out->code = ZG_ADMIT_DB_ERROR;
            t->mode = ZG_BILLING_LEASE; /* nothing to cancel */
            return out->code;
        }
        int code = (int)g.v[0];
        if (code == 1) {
            /* too little free credit for a lease: this key is admitted the strict way for a while */
            e->low_until_ms = now + 1000;
            pthread_mutex_unlock(&mu);
            return strict_admit(db, key_hash, request_id, group, limit, min_plan, hold, surface, model, provider,
                                out, t);
        }
        if (code != 0) {
            pthread_mutex_unlock(&mu);
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
        merge_grant(e, &g, now);
    }
    pthread_mutex_unlock(&mu);
    /* a grant smaller than this request needs (others took the rest meanwhile) */
    return strict_admit(db, key_hash, request_id, group, limit, min_plan, hold, surface, model, provider, out, t);
}

/* ---- settlement ------------------------------------------------------------------------------------- */

static void journal_settle(const struct row *r)
{
    char line[700];
    int n = snprintf(line, sizeof line,
                     "S %s %lld %lld %s %s %s %s %lld %s %s %lld %lld %lld %lld %lld %lld %lld %lld %lld %d %d %lld "
                     "%lld\n",
                     r->rid, (long long)r->user, (long long)r->key, r->grp, r->surface, r->model, r->provider,
                     (long long)r->hold, r->status, r->reason, (long long)r->credits, (long long)r->rel,
                     (long long)r->u.input, (long long)r->u.output, (long long)r->u.cache_read,
                     (long long)r->u.cache_write_5m, (long long)r->u.cache_write_1h, (long long)r->u.reasoning,
                     (long long)r->u.units, r->est, r->ups, (long long)r->ttfb, (long long)r->dur);
    if (n > 0 && (size_t)n < sizeof line)
        journal_write(r->gen, line, (size_t)n);
}

int zg_lease_settle(zg_db *db, const zg_settings *cfg, const char *request_id, const char *surface,
                    const char *model, const char *provider, const zg_settlement *s, zg_ticket *t)
{
    if (t->mode != ZG_BILLING_LEASE) {
        int rc = zg_billing_settle(db, cfg, request_id, s, NULL);
        if (t->journaled) {
            char line[64];
            int n = snprintf(line, sizeof line, "D %s\n", request_id);
            if (rc == 0 && n > 0 && (size_t)n < sizeof line)
                journal_write(t->gen, line, (size_t)n);
            pthread_mutex_lock(&mu);
            outstanding[t->gen]--;
            pthread_mutex_unlock(&mu);
        }
        return rc;
    }
    struct row r;
    memset(&r, 0, sizeof r);
    copy_str(r.rid, sizeof r.rid, request_id);
    copy_str(r.surface, sizeof r.surface, surface);
    copy_str(r.model, sizeof r.model, model);
    copy_str(r.provider, sizeof r.provider, provider);
    copy_str(r.status, sizeof r.status, s->status);
    copy_str(r.reason, sizeof r.reason, s->end_reason);
    r.hold = t->hold;
    r.credits = s->credits;
    r.u = s->usage;
    r.est = s->estimated ? 1 : 0;
    r.ups = s->upstream_status;
    r.ttfb = s->ttfb_ms;
    r.dur = s->duration_ms;
    r.gen = t->gen;

    pthread_mutex_lock(&mu);
    struct entry *e = &tab[t->entry];
    e->held -= t->hold;
    e->inflight--;
    e->last_ms = now_ms();
    r.rel = s->credits < e->db_credits ? s->credits : e->db_credits;
    if (r.rel < 0)
        r.rel = 0;
    e->db_credits -= r.rel;
    r.user = e->user_id;
    r.key = e->key_id;
    copy_str(r.grp, sizeof r.grp, e->grp);
    pthread_mutex_unlock(&mu);

    journal_settle(&r);

    pthread_mutex_lock(&mu);
    if (qn == qcap && qcap < QUEUE_CAP) {
        size_t ncap = qcap ? qcap * 2 : 1024;
        struct row *q = realloc(queue, ncap * sizeof *q);
        if (q) {
            queue = q;
            qcap = ncap;
        }
    }
    if (qn < qcap) {
        queue[qn++] = r;
        if (qn >= QUEUE_WAKE)
            pthread_cond_signal(&wake);
        pthread_mutex_unlock(&mu);
        return 0;
    }
    pthread_mutex_unlock(&mu);
    /* the queue is full (the database has been away for long): the journal keeps this one, and the
     * row is written now or, failing that, when the journal is replayed */
    char own[64];
    owner_now(own);
    int rc = settle_direct(db, own, &r);
    if (rc != 0)
        zg_error("lease: settlement of %s kept only in the journal: %s", request_id, zg_db_error(db));
    pthread_mutex_lock(&mu);
    outstanding[r.gen]--;
    pthread_mutex_unlock(&mu);
    return rc == 0 ? 0 : -1;
}

void zg_lease_progress(const zg_ticket *t, const char *request_id, const zg_usage *u, int64_t credits)
{
    if (!active || (t->mode != ZG_BILLING_LEASE && !t->journaled) || t->hold <= 0)
        return;
    char line[300];
    int n = snprintf(line, sizeof line, "U %s %lld %lld %lld %lld %lld %lld %lld %lld\n", request_id,
                     (long long)credits, (long long)u->input, (long long)u->output, (long long)u->cache_read,
                     (long long)u->cache_write_5m, (long long)u->cache_write_1h, (long long)u->reasoning,
                     (long long)u->units);
    if (n > 0 && (size_t)n < sizeof line)
        journal_write(t->gen, line, (size_t)n);
}

/* ---- the writer thread -------------------------------------------------------------------------------- */

/* Give a lease back (d->key 0: every lease of own) as operation d->op (a new one when empty): a
 * return retried after a lost answer is applied once. */
static int drop_one(zg_db *db, const char *own, struct drop *d)
{
    if (!d->op[0])
        new_op(d->op, sizeof d->op);
    zg_val p[7] = {ZG_STR(own), ZG_INT(d->key), ZG_STR(d->grp), ZG_INT(d->credits), ZG_INT(d->slots),
                   ZG_INT(d->window), ZG_STR(d->op)};
    return zg_db_run(db, SQL_DROP, p, 7, NULL, NULL, NULL);
}

/* Leases to give back (callers hold mu): idle ones, ones of an older access version, or all. The
 * entry forgets them at once; requests admitted later take a new grant. */
static size_t collect_drops(struct drop *out, size_t cap, int64_t now, bool all)
{
    size_t n = 0;
    for (size_t u = 0; u < n_used && n < cap; u++) {
        struct entry *e = &tab[used_idx[u]];
        if (!e->used || !e->granted || e->inflight > 0)
            continue;
        bool idle = now - e->last_ms >= cfg_->lease_idle_ms;
        if (!all && !idle && e->version >= version_now())
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
static int64_t recall_seq; /* the last recall answered (writer thread only) */

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
    pthread_mutex_lock(&mu);
    for (size_t u = 0; u < n_used && *rc->n < TAB_CAP; u++) {
        struct entry *e = &tab[used_idx[u]];
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
    pthread_mutex_unlock(&mu);
    return 0;
}

/* Answer the recalls after recall_seq, up to upto; queue the slices to give back in out/n. Returns
 * false when the database failed (asked again at the next poll). */
static bool answer_recalls(zg_db *db, int64_t upto, struct drop *out, size_t *n)
{
    if (recall_seq == 0 && n_used == 0) {
        recall_seq = upto; /* nothing leased yet: older recalls are not ours to answer */
        return true;
    }
    while (recall_seq < upto) {
        struct recalls rc = {.seq = recall_seq, .out = out, .n = n};
        zg_val p[1] = {ZG_INT(recall_seq)};
        if (zg_db_run(db, SQL_RECALLS, p, 1, recall_row, &rc, NULL) != 0)
            return false;
        if (rc.seq == recall_seq)
            break;
        recall_seq = rc.seq;
    }
    recall_seq = upto > recall_seq ? upto : recall_seq;
    return true;
}

/* Extend leases in use that are three quarters spent, so requests rarely wait for a grant. */
#define REFILL_MAX 64
static void refill(zg_db *db, int64_t now)
{
    struct {
        int idx;
        char hash[65], grp[16];
        int64_t limit, want;
        bool slots;
        char op[80];
    } todo[REFILL_MAX];
    int n = 0;
    pthread_mutex_lock(&mu);
    for (size_t u = 0; u < n_used && n < REFILL_MAX; u++) {
        int i = used_idx[u];
        struct entry *e = &tab[i];
        /* a grant whose answer was lost is asked for again under its id (nothing new is granted),
         * so that what it reserved is known here and given back like any lease */
        bool probe = e->used && e->pending_op[0] && !e->refilling;
        if (!probe && (!e->used || !e->granted || e->refilling || e->version < version_now() ||
                       now - e->last_ms >= cfg_->lease_idle_ms / 2 || e->low_until_ms > now))
            continue;
        bool credits_low = !probe && e->grant_credits > 0 && (e->db_credits - e->held) * 4 <= e->grant_credits;
        bool slots_low = !probe && e->slots * 4 <= e->grant_slots;
        if (!probe && !credits_low && !slots_low)
            continue;
        e->refilling = true;
        todo[n].idx = i;
        memcpy(todo[n].hash, e->hash, sizeof e->hash);
        memcpy(todo[n].grp, e->grp, sizeof e->grp);
        todo[n].limit = e->limit;
        todo[n].want = credits_low ? cfg_->lease_credits : 0;
        todo[n].slots = slots_low;
        take_op(e, todo[n].op, sizeof todo[n].op);
        n++;
    }
    pthread_mutex_unlock(&mu);
    for (int k = 0; k < n; k++) {
        struct grant g;
        int rc = take_lease(db, todo[k].hash, todo[k].grp, (int)todo[k].limit, 1, 0, todo[k].want,
                            todo[k].slots ? -cfg_->lease_slots : 0, todo[k].op, &g);
        pthread_mutex_lock(&mu);
        struct entry *e = &tab[todo[k].idx];
        e->refilling = false;
        if (rc != 0)
            memcpy(e->pending_op, todo[k].op, sizeof e->pending_op);
        else if (g.v[0] == 0)
            merge_grant(e, &g, e->last_ms);
        pthread_mutex_unlock(&mu);
    }
}

static void rotate_journal(void)
{
    struct stat st;
    int other = 1 - jgen;
    if (jfd[jgen] < 0 || fstat(jfd[jgen], &st) != 0 || (size_t)st.st_size < JOURNAL_ROTATE)
        return;
    pthread_mutex_lock(&mu);
    if (outstanding[other] == 0) {
        /* everything admitted into the other file is written: it can start over */
        if (ftruncate(jfd[other], 0) == 0)
            jgen = other;
    }
    pthread_mutex_unlock(&mu);
}

static void *writer_main(void *arg)
{
    (void)arg;
    zg_db *db = zg_db_new(cfg_);
    while (!db) {
        /* nothing can be written without one: keep asking (what is queued waits in the journal) */
        zg_error("lease writer: out of memory for a database handle; retrying");
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
        db = zg_db_new(cfg_);
    }
    struct row *batch = NULL;
    size_t bn = 0;
    struct drop *drops = calloc(TAB_CAP, sizeof *drops);
    size_t dn = 0;
    int64_t last_poll = 0, last_beat = now_ms(), backoff_until = 0, last_upkeep = 0;
    bool final_done = false;
    unsigned long synced = 0;
    for (;;) {
        pthread_mutex_lock(&mu);
        if (!stopping_ && qn < QUEUE_WAKE) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)cfg_->flush_ms * 1000000L;
            ts.tv_sec += ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&wake, &mu, &ts);
        }
        bool stop = stopping_;
        int64_t now = now_ms();
        if (now < backoff_until && !stop) {
            /* the database failed a moment ago: wait out the backoff */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)(backoff_until - now) * 1000000L;
            ts.tv_sec += ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&wake, &mu, &ts);
            pthread_mutex_unlock(&mu);
            continue;
        }
        /* take the queue, after whatever an earlier failed attempt left */
        if (qn) {
            struct row *nb = realloc(batch, (bn + qn) * sizeof *nb);
            if (nb) {
                batch = nb;
                memcpy(batch + bn, queue, qn * sizeof *queue);
                bn += qn;
                qn = 0;
            }
        }
        pthread_mutex_unlock(&mu);

        /* the journal reaches the disk at least once per period: a power loss forgets at most
         * the requests of the last flush_ms */
        unsigned long jw = __atomic_load_n(&jwrites, __ATOMIC_RELAXED);
        if (jw != synced) {
            synced = jw;
            for (int g = 0; g < 2; g++)
                if (jfd[g] >= 0)
                    fdatasync(jfd[g]);
        }
        bool ok = true;
        if (bn) {
            size_t w = write_rows(db, batch, bn);
            pthread_mutex_lock(&mu);
            for (size_t i = 0; i < w; i++)
                outstanding[batch[i].gen]--;
            pthread_mutex_unlock(&mu);
            memmove(batch, batch + w, (bn - w) * sizeof *batch);
            bn -= w;
            ok = bn == 0;
        }
        bool upkeep = stop || now - last_upkeep >= UPKEEP_MS;
        if (upkeep)
            last_upkeep = now;
        if (now - last_poll >= VERSION_POLL_MS) {
            int64_t v[2] = {-1, 0};
            if (zg_db_run(db, SQL_VERSION, NULL, 0, zg_db_row_ints, &(zg_ints){v, 2}, NULL) == 0) {
                last_poll = now;
                if (v[0] > 0)
                    see_version((uint64_t)v[0]);
                if (v[1] > recall_seq && drops) {
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
            while (k < dn && drops[k].credits == 0 && drop_one(db, owner, &drops[k]) == 0)
                k++;
            memmove(drops, drops + k, (dn - k) * sizeof *drops);
            dn -= k;
        }
        if (ok && drops && upkeep) {
            /* leases go back only once the settlements that consumed them are written */
            pthread_mutex_lock(&mu);
            dn += collect_drops(drops + dn, TAB_CAP - dn, now, stop);
            pthread_mutex_unlock(&mu);
            size_t k = 0;
            while (k < dn && drop_one(db, owner, &drops[k]) == 0)
                k++;
            if (k < dn)
                zg_warn("lease: giving back %zu lease(s) failed (will retry): %s", dn - k, zg_db_error(db));
            memmove(drops, drops + k, (dn - k) * sizeof *drops);
            dn -= k;
            ok = dn == 0;
        }
        if (ok && upkeep)
            refill(db, now);
        if (now - last_beat >= HEARTBEAT_MS) {
            zg_val p[1] = {ZG_STR(owner)};
            if (zg_db_run(db, SQL_HEARTBEAT, p, 1, NULL, NULL, NULL) == 0) {
                last_beat = now;
            } else if (now - last_beat >= ORPHAN_AFTER_MS) {
                /* our leases may be reaped as a lost host's: forget them, and lease anew under a new
                 * name once the database is back */
                pthread_mutex_lock(&mu);
                for (size_t i = 0; i < TAB_CAP; i++) {
                    tab[i].db_credits = 0;
                    tab[i].slots = 0;
                    tab[i].granted = false;
                }
                dn = 0;
                size_t L = strlen(owner);
                snprintf(owner + (L > 56 ? 56 : L), sizeof owner - (L > 56 ? 56 : L), ".%lld",
                         (long long)(now / 1000 % 10000000));
                pthread_mutex_unlock(&mu);
                last_beat = now;
                zg_warn("lease: no heartbeat for %d s; leases forgotten, now leasing as %s",
                        ORPHAN_AFTER_MS / 1000, owner);
            }
        }
        if (!ok)
            backoff_until = now + 200;
        rotate_journal();
        if (stop) {
            if (ok && !final_done) {
                final_done = true;
                struct drop all = {0};
                if (drop_one(db, owner, &all) == 0) {
                    /* everything is written and given back: the journal has nothing left to say */
                    for (int g = 0; g < 2; g++)
                        if (jpath[g][0])
                            unlink(jpath[g]);
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

/* ---- start and stop ----------------------------------------------------------------------------------- */

int zg_lease_start(const zg_settings *cfg)
{
    cfg_ = cfg;
    if (cfg->billing_mode != ZG_BILLING_LEASE)
        return 0;
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    for (char *p = host; *p; p++)
        if (*p == ':' || *p == '/' || *p == ' ' || *p == '.')
            *p = *p == '.' ? '.' : '_';
    snprintf(owner, sizeof owner, "%s:%ld:%lld", host, (long)getpid(), (long long)time(NULL));
    tab = calloc(TAB_CAP, sizeof *tab);
    used_idx = calloc(TAB_CAP, sizeof *used_idx);
    if (!tab || !used_idx || !cfg->spool_path[0] || journal_open() != 0) {
        zg_error("lease mode unavailable (journal or memory); billing strictly");
        free(tab);
        tab = NULL;
        return -1;
    }
    if (pthread_create(&writer, NULL, writer_main, NULL) != 0) {
        zg_error("lease writer thread: cannot start; billing strictly");
        return -1;
    }
    active = true;
    zg_info("billing with leases as %s", owner);
    return 0;
}

void zg_lease_stop(void)
{
    if (!active)
        return;
    pthread_mutex_lock(&mu);
    stopping_ = true;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&mu);
    pthread_join(writer, NULL);
    active = false;
    for (int g = 0; g < 2; g++)
        if (jfd[g] >= 0) {
            fsync(jfd[g]);
            close(jfd[g]);
            jfd[g] = -1;
        }
    free(queue);
    queue = NULL;
    qn = qcap = 0;
}

/* ---- replaying a dead process's journal ---------------------------------------------------------------- */

/* Token counts in journal order: input, output, cache read, cache writes 5m and 1h, reasoning, units. */
static void take_usage(zg_usage *u, const int64_t *v)
{
    u->input = v[0];
    u->output = v[1];
    u->cache_read = v[2];
    u->cache_write_5m = v[3];
    u->cache_write_1h = v[4];
    u->reasoning = v[5];
    u->units = v[6];
}

/* Parse one journal line into r: 'A' (leased admission) or 'P' (strict admission: a pending row),
 * 'S' (leased settlement), 'D' (strict settlement done: only the id), 'U' (final usage reported:
 * id, credits and usage); 0 when malformed. */
static int parse_line(char *line, struct row *r)
{
    char *f[24];
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(line, " \n", &save); t && n < 24; t = strtok_r(NULL, " \n", &save))
        f[n++] = t;
    memset(r, 0, sizeof *r);
    if (n < 2 || f[0][1] || !strchr("APSDU", f[0][0]))
        return 0;
    int kind = f[0][0];
    copy_str(r->rid, sizeof r->rid, f[1]);
    if (kind == 'D')
        return n == 2 ? 'D' : 0;
    if (kind == 'U') {
        int64_t v[8];
        if (n != 10)
            return 0;
        for (int i = 0; i < 8; i++)
            if (zg_parse_i64z(f[2 + i], 0, INT64_MAX, &v[i]))
                return 0;
        r->credits = v[0];
        take_usage(&r->u, v + 1);
        return 'U';
    }
    if (((kind == 'A' || kind == 'P') && n != 9) || (kind == 'S' && n != 24))
        return 0;
    copy_str(r->grp, sizeof r->grp, f[4]);
    copy_str(r->surface, sizeof r->surface, f[5]);
    copy_str(r->model, sizeof r->model, f[6]);
    copy_str(r->provider, sizeof r->provider, f[7]);
    if (zg_parse_i64z(f[2], 0, INT64_MAX, &r->user) || zg_parse_i64z(f[3], 0, INT64_MAX, &r->key) ||
        zg_parse_i64z(f[8], 0, INT64_MAX, &r->hold))
        return 0;
    if (kind == 'A' || kind == 'P') {
        copy_str(r->status, sizeof r->status, "abandoned");
        copy_str(r->reason, sizeof r->reason, "abandoned");
        r->credits = r->hold;
        r->est = 1;
        r->ttfb = r->dur = -1;
        return kind;
    }
    copy_str(r->status, sizeof r->status, f[9]);
    copy_str(r->reason, sizeof r->reason, f[10]);
    int64_t v[13];
    for (int i = 0; i < 13; i++)
        if (zg_parse_i64z(f[11 + i], INT64_MIN, INT64_MAX, &v[i]))
            return 0;
    r->credits = v[0];
    r->rel = 0; /* the owner's leases are released whole after the replay */
    take_usage(&r->u, v + 2);
    r->est = (int)v[9];
    r->ups = (int)v[10];
    r->ttfb = v[11];
    r->dur = v[12];
    return 'S';
}

/* The lines of a dead owner's journal, by kind. */
struct replay {
    struct row *v[5]; /* A, P, S, D, U */
    size_t n[5], cap[5];
};

static int kind_index(int kind)
{
    return kind == 'A' ? 0 : kind == 'P' ? 1 : kind == 'S' ? 2 : kind == 'D' ? 3 : 4;
}

/* Read a journal file line by line (any size) into rp. -1 when memory ran out. */
static int replay_read(const char *path, struct replay *rp)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    char *line = NULL;
    size_t lcap = 0;
    int rc = 0;
    while (rc == 0 && getline(&line, &lcap, f) > 0) {
        struct row r;
        int kind = parse_line(line, &r);
        if (!kind)
            continue;
        int k = kind_index(kind);
        if (rp->n[k] == rp->cap[k]) {
            size_t nc = rp->cap[k] ? rp->cap[k] * 2 : 64;
            struct row *x = realloc(rp->v[k], nc * sizeof *x);
            if (!x) {
                rc = -1;
                break;
            }
            rp->v[k] = x;
            rp->cap[k] = nc;
        }
        rp->v[k][rp->n[k]++] = r;
    }
    free(line);
    fclose(f);
    return rc;
}

static int by_rid(const void *a, const void *b)
{
    return strcmp(((const struct row *)a)->rid, ((const struct row *)b)->rid);
}

static const struct row *find_rid(const struct replay *rp, int k, const char *rid)
{
    struct row key;
    memcpy(key.rid, rid, sizeof key.rid);
    return rp->n[k] ? bsearch(&key, rp->v[k], rp->n[k], sizeof key, by_rid) : NULL;
}

/* A request admitted and never settled: billed what the upstream reported when its final usage was
 * noted, else its hold (estimated). Status abandoned either way. */
static void unfinished(struct row *r, const struct replay *rp)
{
    const struct row *u = find_rid(rp, 4, r->rid);
    if (!u)
        return;
    r->credits = u->credits;
    r->u = u->u;
    r->est = 0;
}

/* Settle a strict admission left pending (zg_settle: a no-op when it was settled meanwhile). */
static int settle_pending(zg_db *db, const struct row *r)
{
    zg_settlement st = {.status = "abandoned", .end_reason = "abandoned", .credits = r->credits, .usage = r->u,
                        .estimated = r->est != 0, .upstream_status = 0, .ttfb_ms = -1, .duration_ms = -1};
    return zg_billing_settle(db, cfg_, r->rid, &st, NULL);
}

/* Replay both journal files of a dead owner; 0 when everything reached the database (or the spool). */
static int replay_owner(zg_db *db, const char *own, const char *p0, const char *p1, int *count)
{
    struct replay rp;
    memset(&rp, 0, sizeof rp);
    int rc = replay_read(p0, &rp) || replay_read(p1, &rp) ? -1 : 0;
    for (int k = 2; k < 5; k++)
        if (rp.n[k])
            qsort(rp.v[k], rp.n[k], sizeof *rp.v[k], by_rid);
    /* finished requests at their cost */
    for (size_t i = 0; rc == 0 && i < rp.n[2]; i++) {
        if (settle_direct(db, own, &rp.v[2][i]) != 0) {
            zg_warn("lease replay of %s: %s", rp.v[2][i].rid, zg_db_error(db));
            if (db_unavailable(zg_db_errno(db)))
                rc = -1;
        } else {
            (*count)++;
        }
    }
    /* leased admissions that never finished */
    for (size_t i = 0; rc == 0 && i < rp.n[0]; i++) {
        struct row *r = &rp.v[0][i];
        if (find_rid(&rp, 2, r->rid))
            continue;
        unfinished(r, &rp);
        if (settle_direct(db, own, r) != 0) {
            zg_warn("lease replay of %s: %s", r->rid, zg_db_error(db));
            if (db_unavailable(zg_db_errno(db)))
                rc = -1;
        } else {
            (*count)++;
        }
    }
    /* strict admissions whose settlement was not noted */
    for (size_t i = 0; rc == 0 && i < rp.n[1]; i++) {
        struct row *r = &rp.v[1][i];
        if (find_rid(&rp, 3, r->rid))
            continue;
        unfinished(r, &rp);
        if (settle_pending(db, r) != 0)
            rc = -1;
        else
            (*count)++;
    }
    if (rc == 0) {
        struct drop all = {0};
        rc = drop_one(db, own, &all);
    }
    for (int k = 0; k < 5; k++)
        free(rp.v[k]);
    return rc;
}

struct owners {
    char o[100][72];
    int n;
};

static int collect_owner(void *ctx, int nc, char **v, const size_t *l)
{
    struct owners *oc = ctx;
    if (nc >= 1 && v[0] && l[0] < sizeof oc->o[0] && oc->n < 100)
        memcpy(oc->o[oc->n++], v[0], l[0] + 1);
    return 0;
}

static bool pid_alive(long pid)
{
    return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

int zg_lease_maintain(zg_db *db, const zg_settings *cfg)
{
    if (!cfg->spool_path[0])
        return 0;
    char dir[600], base[600];
    const char *slash = strrchr(cfg->spool_path, '/');
    if (slash) {
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - cfg->spool_path), cfg->spool_path);
        snprintf(base, sizeof base, "%s.lease.", slash + 1);
    } else {
        snprintf(dir, sizeof dir, ".");
        snprintf(base, sizeof base, "%s.lease.", cfg->spool_path);
    }
    if (!dir[0])
        snprintf(dir, sizeof dir, "/");
    char myhost[40];
    if (gethostname(myhost, sizeof myhost) != 0)
        snprintf(myhost, sizeof myhost, "localhost");
    myhost[sizeof myhost - 1] = '\0';
    for (char *p = myhost; *p; p++)
        if (*p == ':' || *p == '/' || *p == ' ')
            *p = '_';
    int replayed = 0, rc = 0;
    char mine[64] = "";
    if (active)
        owner_now(mine);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    size_t bl = strlen(base);
    while ((de = readdir(d))) {
        size_t nl = strlen(de->d_name);
        if (nl <= bl + 2 || strncmp(de->d_name, base, bl) != 0 || strcmp(de->d_name + nl - 2, ".0") != 0)
            continue;
        char own[600];
        snprintf(own, sizeof own, "%.*s", (int)(nl - bl - 2), de->d_name + bl);
        if (active && strncmp(own, mine, strlen(own)) == 0)
            continue;
        /* host:pid:start; another host's journal (a shared directory) is not ours to judge */
        char *c1 = strchr(own, ':');
        if (!c1 || (size_t)(c1 - own) != strlen(myhost) || strncmp(own, myhost, strlen(myhost)) != 0)
            continue;
        int64_t pid = 0;
        char *c2 = strchr(c1 + 1, ':');
        if (!c2 || zg_parse_i64(c1 + 1, (size_t)(c2 - c1 - 1), 1, INT32_MAX, &pid) != 0)
            continue;
        if (pid_alive((long)pid))
            continue;
        char p0[1200], p1[1200];
        snprintf(p0, sizeof p0, "%s/%s", dir, de->d_name);
        snprintf(p1, sizeof p1, "%s/%.*s1", dir, (int)(nl - 1), de->d_name);
        int fd = open(p0, O_RDWR | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            close(fd);
            continue;
        }
        struct stat st;
        if (fstat(fd, &st) == 0 && st.st_nlink == 0) { /* replayed meanwhile by another process */
            close(fd);
            continue;
        }
        int n = 0;
        if (replay_owner(db, own, p0, p1, &n) == 0) {
            unlink(p1);
            unlink(p0);
            replayed += n;
            zg_warn("replayed the lease journal of dead process %s: %d request(s) billed or confirmed", own, n);
        } else {
            rc = -1;
        }
        close(fd);
    }
    closedir(d);

    /* leases of a host that stopped renewing them long ago */
    static time_t next_stale;
    time_t now = time(NULL);
    if (now >= next_stale) {
        next_stale = now + 60;
        struct owners oc;
        oc.n = 0;
        zg_val a[1] = {ZG_INT(STALE_OWNER_S)};
        if (zg_db_run(db, SQL_STALE, a, 1, collect_owner, &oc, NULL) == 0) {
            for (int i = 0; i < oc.n; i++) {
                if (active && strcmp(oc.o[i], mine) == 0)
                    continue;
                struct drop all = {0};
                if (drop_one(db, oc.o[i], &all) == 0)
                    zg_warn("released the leases of %s: not renewed for %d s", oc.o[i], STALE_OWNER_S);
            }
        }
    }
    return rc < 0 ? -1 : replayed;
}
