#include "zg_conc.h"
#include "zg_clock.h"
#include "zg_log.h"
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CONC_SLOTS 8192    /* users with requests in flight or slots held, per process */
#define CONC_STALE_S 30    /* a process that has not renewed its slots for this long is gone */
#define CONC_RENEW_MS 5000 /* how often slots still held are renewed */
#define CONC_IDLE_MS 1000  /* an unused slot is kept this long (far from the cap) */
#define CONC_PEAK_MS 5000  /* slots for the peak of this window are kept (far from the cap) */
#define CONC_CHUNK 4       /* slots taken at once far from the cap */
#define CONC_ASK_MS 300    /* the longest a request waits for the database to grant a slot */
#define CONC_WAIT_MS 1100  /* a request over the cap asks again once after this (slots kept unused) */

struct entry {
    int64_t user;
    int inflight;      /* this process's requests of the user now */
    int held;          /* slots this process holds in the database */
    int peak;          /* the most in flight in this window: slots kept for */
    int64_t peak_ms;   /* when the window began */
    int64_t held_all;  /* the user's slots, all processes, at the last grant */
    int64_t idle_ms;   /* when inflight last dropped to 0 with slots kept */
    bool busy;         /* a thread is changing this user's slots in the database */
};

static struct entry tab[CONC_SLOTS];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER; /* an entry stopped being busy */
static pthread_once_t owner_once = PTHREAD_ONCE_INIT;
static char owner[160];
static int64_t last_renew_ms;

static const char SQL_TAKE[] = "CALL zg_conc_take(?, ?, ?, ?, ?, ?)";
static const char SQL_SET[] = "CALL zg_conc_set(?, ?, ?)";
static const char SQL_RENEW[] = "UPDATE conc_slots SET renewed_at = NOW(3) WHERE owner = ?";
static const char SQL_DROP[] = "DELETE FROM conc_slots WHERE owner = ?";

static void make_owner(void)
{
    const char *host = zg_node_name();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(owner, sizeof owner, "%s:%d:%lld", host, (int)getpid(),
             (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* This process's name in conc_slots (host:pid:start). */
static const char *zg_conc_owner(void)
{
    pthread_once(&owner_once, make_owner);
    return owner;
}

/* The user's entry, made if missing (mu held). NULL when the table is full. */
static struct entry *find(int64_t user, bool make)
{
    size_t h = (size_t)((uint64_t)user * 0x9E3779B97F4A7C15ull >> 40) % CONC_SLOTS;
    struct entry *free_e = NULL;
    for (size_t i = 0; i < 64; i++) {
        struct entry *e = &tab[(h + i) % CONC_SLOTS];
        if (e->user == user)
            return e;
        if (!free_e && (e->user == 0 || (e->inflight == 0 && e->held == 0 && !e->busy)))
            free_e = e;
    }
    if (!make || !free_e)
        return NULL;
    memset(free_e, 0, sizeof *free_e);
    free_e->user = user;
    return free_e;
}

/* Ask the database for up to `want` more slots of user's (have = the slots this process holds).
 * Returns how many were granted (0: the cap is reached), or -1 when the database could not be asked. */
static int take(zg_db *db, const zg_settings *cfg, int64_t user, int have, int want, int64_t *held_all)
{
    int64_t row[2] = {0, 0};
    zg_val p[6] = {ZG_STR(zg_conc_owner()), ZG_INT(user), ZG_INT(have), ZG_INT(want),
                   ZG_INT(cfg->concurrent_per_user), ZG_INT(CONC_STALE_S)};
    if (zg_db_run(db, SQL_TAKE, p, 6, zg_db_row_ints, &(zg_ints){row, 2}, NULL) != 0) {
        zg_warn("concurrency slot for user %lld: %s", (long long)user, zg_db_error(db));
        return -1;
    }
    *held_all = row[1];
    return (int)row[0];
}

static void set_held(zg_db *db, int64_t user, int slots)
{
    zg_val p[3] = {ZG_STR(zg_conc_owner()), ZG_INT(user), ZG_INT(slots)};
    if (zg_db_run(db, SQL_SET, p, 3, NULL, NULL, NULL) != 0)
        zg_warn("giving back concurrency slots of user %lld: %s (they lapse in %d s)", (long long)user,
                zg_db_error(db), CONC_STALE_S);
}

/* A take run by a thread of its own, so that a request waits for the database at most
 * CONC_ASK_MS: past that (the database is slow or away) it goes on by this process's own count. */
struct job {
    int64_t user;
    int have, want, got, refs; /* refs: the asking request and the helper (mu) */
    int64_t all;
    const zg_settings *cfg;
    bool done;
};

static void job_drop(struct job *j) /* mu held */
{
    if (--j->refs == 0)
        free(j);
}

static void *take_thread(void *arg)
{
    struct job *j = arg;
    zg_db *db = zg_db_open(j->cfg);
    int64_t all = 0;
    int got = db ? take(db, j->cfg, j->user, j->have, j->want, &all) : -1;
    zg_db_free(db);
    zg_db_thread_end();
    pthread_mutex_lock(&mu);
    struct entry *e = find(j->user, false); /* kept: busy */
    if (e) {
        e->busy = false;
        if (got > 0) {
            e->held = j->have + got;
            e->held_all = all;
        }
    }
    j->got = got;
    j->all = all;
    j->done = true;
    pthread_cond_broadcast(&done_cv);
    job_drop(j);
    pthread_mutex_unlock(&mu);
    return NULL;
}

int zg_conc_enter(const zg_settings *cfg, int64_t user_id)
{
    if (user_id <= 0)
        return ZG_CONC_OK;
    int cap = cfg->concurrent_per_user;
    bool waited = false; /* over the cap once already */
    pthread_mutex_lock(&mu);
    struct timespec until = zg_clock_deadline(CONC_ASK_MS);
    for (;;) {
        struct entry *e = find(user_id, true);
        if (!e) { /* thousands of users at once in this process: no room to keep count */
            pthread_mutex_unlock(&mu);
            zg_warn("concurrency table full; user %lld not counted", (long long)user_id);
            return ZG_CONC_OK;
        }
        if (e->inflight < e->held || (e->busy && e->inflight < cap)) {
            if (e->inflight < e->held) { /* a slot this process already holds */
            } else if (pthread_cond_timedwait(&done_cv, &mu, &until) == 0) {
                continue; /* a change of this user's slots ended: look again */
            } /* else the database is slow: this process's own count decides */
            e = find(user_id, true);
            if (e) {
                e->inflight++;
                if (e->inflight > e->peak)
                    e->peak = e->inflight;
            }
            pthread_mutex_unlock(&mu);
            return ZG_CONC_OK;
        }
        if (e->inflight >= cap) {
            pthread_mutex_unlock(&mu);
            return ZG_CONC_FULL;
        }
        struct job *j = calloc(1, sizeof *j);
        if (!j) {
            e->inflight++;
            pthread_mutex_unlock(&mu);
            return ZG_CONC_OK;
        }
        /* far from the cap (as last seen) a few at once, so a growing load asks less often; never
         * more than this process can serve (mod_fcgid's one-request processes take one each) */
        int want = e->held_all * 2 < cap ? CONC_CHUNK : 1;
        if (want > cfg->threads - e->inflight)
            want = cfg->threads - e->inflight > 1 ? cfg->threads - e->inflight : 1;
        *j = (struct job){.user = user_id, .have = e->held, .want = want, .refs = 2, .cfg = cfg};
        e->busy = true; /* one change of a user's slots at a time: they are set, not added */
        e->inflight++;  /* reserved while the database is asked */
        pthread_t tid;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        if (pthread_create(&tid, &attr, take_thread, j) != 0) {
            pthread_attr_destroy(&attr);
            e->busy = false;
            free(j);
            pthread_mutex_unlock(&mu);
            return ZG_CONC_OK; /* no thread to ask with: this process's own count decides */
        }
        pthread_attr_destroy(&attr);
        while (!j->done && pthread_cond_timedwait(&done_cv, &mu, &until) == 0)
            ;
        int got = j->done ? j->got : -1; /* not answered in time: admitted on the process's count */
        job_drop(j);
        e = find(user_id, false);
        if (got > 0 && e && e->inflight > e->peak)
            e->peak = e->inflight;
        if (got != 0) {
            pthread_mutex_unlock(&mu);
            return ZG_CONC_OK;
        }
        if (e)
            e->inflight--;
        if (waited) {
            pthread_mutex_unlock(&mu);
            return ZG_CONC_FULL;
        }
        /* the cap is reached: another process may keep slots unused for up to CONC_IDLE_MS */
        waited = true;
        pthread_mutex_unlock(&mu);
        struct timespec ts = {CONC_WAIT_MS / 1000, (CONC_WAIT_MS % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&mu);
        until = zg_clock_deadline(CONC_ASK_MS);
    }
}

void zg_conc_leave(zg_db *db, const zg_settings *cfg, int64_t user_id)
{
    if (user_id <= 0)
        return;
    pthread_mutex_lock(&mu);
    struct entry *e = find(user_id, false);
    if (!e || e->inflight <= 0) {
        pthread_mutex_unlock(&mu);
        return;
    }
    e->inflight--;
    if (e->held > e->inflight && e->inflight == 0)
        e->idle_ms = zg_clock_ms();
    /* near the cap nothing is kept unused: another process's request may need it (when a change
     * is under way, the upkeep gives it back within a second) */
    if (e->held <= e->inflight || e->held_all * 2 < cfg->concurrent_per_user || e->busy) {
        pthread_mutex_unlock(&mu);
        return;
    }
    e->held = e->inflight;
    e->busy = true;
    int give = e->held;
    pthread_mutex_unlock(&mu);
    set_held(db, user_id, give);
    pthread_mutex_lock(&mu);
    e->busy = false;
    pthread_cond_broadcast(&done_cv);
    pthread_mutex_unlock(&mu);
}

void zg_conc_upkeep(zg_db *db, const zg_settings *cfg)
{
    (void)cfg;
    int64_t t = zg_clock_ms();
    struct {
        int64_t user;
        int slots;
    } gives[256];
    int n = 0;
    bool any = false;
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < CONC_SLOTS && n < 256; i++) {
        struct entry *e = &tab[i];
        if (e->user == 0 || e->held == 0 || e->busy)
            continue;
        /* keep what the last second needed at its peak; an idle user's slots go after CONC_IDLE_MS */
        int keep = e->peak > e->inflight ? e->peak : e->inflight;
        if (e->inflight == 0 && t - e->idle_ms >= CONC_IDLE_MS)
            keep = 0;
        if (t - e->peak_ms >= CONC_PEAK_MS) {
            e->peak = e->inflight;
            e->peak_ms = t;
        }
        if (e->held > keep) {
            e->held = keep;
            e->busy = true;
            gives[n].user = e->user;
            gives[n].slots = e->held;
            n++;
        }
        any = any || e->held > 0;
    }
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < n; i++)
        set_held(db, gives[i].user, gives[i].slots);
    pthread_mutex_lock(&mu);
    for (int i = 0; i < n; i++) {
        struct entry *e = find(gives[i].user, false);
        if (e)
            e->busy = false;
    }
    if (n)
        pthread_cond_broadcast(&done_cv);
    pthread_mutex_unlock(&mu);
    if (any && t - last_renew_ms >= CONC_RENEW_MS) {
        last_renew_ms = t;
        zg_val p[1] = {ZG_STR(zg_conc_owner())};
        if (zg_db_run(db, SQL_RENEW, p, 1, NULL, NULL, NULL) != 0)
            zg_warn("renewing concurrency slots: %s", zg_db_error(db));
    }
}

void zg_conc_stop(zg_db *db)
{
    pthread_mutex_lock(&mu);
    bool any = false;
    for (size_t i = 0; i < CONC_SLOTS; i++) {
        any = any || tab[i].held > 0;
        tab[i].held = 0;
    }
    pthread_mutex_unlock(&mu);
    if (!any)
        return;
    zg_val p[1] = {ZG_STR(zg_conc_owner())};
    if (zg_db_run(db, SQL_DROP, p, 1, NULL, NULL, NULL) != 0)
        zg_warn("giving back concurrency slots at exit: %s (they lapse in %d s)", zg_db_error(db), CONC_STALE_S);
}
