#include "zg_conc.h"
#include "zg_log.h"
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CONC_SLOTS 8192    /* users with requests in flight or slots held, per process */
#define CONC_STALE_S 30    /* a process that has not renewed its slots for this long is gone */
#define CONC_RENEW_MS 5000 /* how often slots still held are renewed */
#define CONC_IDLE_MS 1000  /* an unused slot is kept this long (far from the cap) */
#define CONC_WAIT_MS 1100  /* a request over the cap asks again once after this (slots kept unused) */

struct entry {
    int64_t user;
    int inflight;      /* this process's requests of the user now */
    int held;          /* slots this process holds in the database */
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

static const char SQL_TAKE[] = "CALL zg_conc_take(?, ?, ?, ?, ?)";
static const char SQL_SET[] = "CALL zg_conc_set(?, ?, ?)";
static const char SQL_RENEW[] = "UPDATE conc_slots SET renewed_at = NOW(3) WHERE owner = ?";
static const char SQL_DROP[] = "DELETE FROM conc_slots WHERE owner = ?";

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void make_owner(void)
{
    char host[64];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(owner, sizeof owner, "%s:%d:%lld", host, (int)getpid(),
             (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

const char *zg_conc_owner(void)
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

/* Ask the database for one more slot of user's (have = the slots this process holds). 1 granted,
 * 0 refused, -1 the database could not be asked. */
static int take(zg_db *db, const zg_settings *cfg, int64_t user, int have, int64_t *held_all)
{
    int64_t row[2] = {0, 0};
    zg_val p[5] = {ZG_STR(zg_conc_owner()), ZG_INT(user), ZG_INT(have), ZG_INT(cfg->concurrent_per_user),
                   ZG_INT(CONC_STALE_S)};
    if (zg_db_run(db, SQL_TAKE, p, 5, zg_db_row_ints, &(zg_ints){row, 2}, NULL) != 0) {
        zg_warn("concurrency slot for user %lld: %s", (long long)user, zg_db_error(db));
        return -1;
    }
    *held_all = row[1];
    return row[0] == 1;
}

static void set_held(zg_db *db, int64_t user, int slots)
{
    zg_val p[3] = {ZG_STR(zg_conc_owner()), ZG_INT(user), ZG_INT(slots)};
    if (zg_db_run(db, SQL_SET, p, 3, NULL, NULL, NULL) != 0)
        zg_warn("giving back concurrency slots of user %lld: %s (they lapse in %d s)", (long long)user,
                zg_db_error(db), CONC_STALE_S);
}

int zg_conc_enter(zg_db *db, const zg_settings *cfg, int64_t user_id)
{
    if (user_id <= 0)
        return ZG_CONC_OK;
    int cap = cfg->concurrent_per_user;
    pthread_mutex_lock(&mu);
    for (int attempt = 0;; attempt++) {
        struct entry *e = find(user_id, true);
        if (!e) { /* thousands of users at once in this process: no room to keep count */
            pthread_mutex_unlock(&mu);
            zg_warn("concurrency table full; user %lld not counted", (long long)user_id);
            return ZG_CONC_OK;
        }
        while (e->busy) /* one change of a user's slots at a time: they are set, not added */
            pthread_cond_wait(&done_cv, &mu);
        if (e->inflight < e->held) { /* a slot this process already holds */
            e->inflight++;
            pthread_mutex_unlock(&mu);
            return ZG_CONC_OK;
        }
        if (e->inflight >= cap) {
            pthread_mutex_unlock(&mu);
            return ZG_CONC_FULL;
        }
        int have = e->held;
        e->busy = true;
        e->inflight++; /* reserved while the database is asked */
        pthread_mutex_unlock(&mu);
        int64_t all = 0;
        int got = take(db, cfg, user_id, have, &all);
        pthread_mutex_lock(&mu);
        e->busy = false;
        pthread_cond_broadcast(&done_cv);
        if (got == 1) {
            e->held = have + 1;
            e->held_all = all;
        } else if (got == 0) {
            e->inflight--;
        } /* else the database could not be asked: admitted on this process's own count */
        if (got != 0 || attempt > 0) {
            pthread_mutex_unlock(&mu);
            return got != 0 ? ZG_CONC_OK : ZG_CONC_FULL;
        }
        /* the cap is reached: another process may keep slots unused for up to CONC_IDLE_MS */
        pthread_mutex_unlock(&mu);
        struct timespec ts = {CONC_WAIT_MS / 1000, (CONC_WAIT_MS % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&mu);
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
        e->idle_ms = now_ms();
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
    int64_t t = now_ms();
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
        if (e->held > e->inflight && (e->inflight > 0 || t - e->idle_ms >= CONC_IDLE_MS)) {
            e->held = e->inflight;
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
