#include "zg_catalog.h"
#include "zg_log.h"
#include "zg_num.h"
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct alias {
    char name[129];
    size_t model;
};

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static zg_model *models;
static size_t nmodels;
static struct alias *aliases;
static size_t naliases;
static int64_t loaded_version = -1;
static time_t checked_at;
static pthread_mutex_t refresh_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t refreshed = PTHREAD_COND_INITIALIZER;
static bool refreshing; /* a thread is checking the version (refresh_mu) */

const char *zg_plan_name(int rank)
{
    static const char *names[] = {"none", "pro", "max", "enterprise"};
    return rank >= 0 && rank <= 3 ? names[rank] : "none";
}

int zg_plan_parse(const char *name)
{
    for (int i = 1; i <= 3; i++)
        if (strcmp(name, zg_plan_name(i)) == 0)
            return i;
    return -1;
}

int zg_plan_multiplier(int rank)
{
    return rank == ZG_PLAN_ENTERPRISE ? 6 : rank == ZG_PLAN_MAX ? 4 : 1;
}

static const char SQL_VERSION[] = "SELECT version FROM catalog_version WHERE id = 1";
static const char SQL_MODELS[] =
    "SELECT id, display_name, provider, kind, status, min_plan, price_input, price_output, price_cache_read,"
    " price_cache_write_5m, price_cache_write_1h, price_unit, created_unix, context_window, expand_input,"
    " long_threshold, long_input, long_output, long_cache_read"
    " FROM models ORDER BY sort_order, id";
static const char SQL_ALIASES[] = "SELECT alias, model_id FROM model_aliases ORDER BY alias";

struct load {
    zg_model *m;
    size_t n, cap;
    struct alias *a;
    size_t na, acap;
    int oom;
};

static int model_row(void *ctx, int nc, char **v, const size_t *l)
{
    struct load *ld = ctx;
    if (nc < 19)
        return 1;
    if (ld->n == ld->cap) {
        size_t nc2 = ld->cap ? ld->cap * 2 : 64;
        zg_model *p = realloc(ld->m, nc2 * sizeof *p);
        if (!p) {
            ld->oom = 1;
            return 1;
        }
        ld->m = p;
        ld->cap = nc2;
    }
    zg_model *m = &ld->m[ld->n++];
    memset(m, 0, sizeof *m);
    zg_db_cell_str(m->id, sizeof m->id, v[0], l[0]);
    zg_db_cell_str(m->display_name, sizeof m->display_name, v[1], l[1]);
    zg_db_cell_str(m->provider, sizeof m->provider, v[2], l[2]);
    zg_db_cell_str(m->kind, sizeof m->kind, v[3], l[3]);
    m->status = v[4] && strcmp(v[4], "live") == 0 ? ZG_MODEL_LIVE : ZG_MODEL_COMING_SOON;
    m->min_plan = v[5] ? zg_plan_parse(v[5]) : ZG_PLAN_PRO;
    if (m->min_plan < 0)
        m->min_plan = ZG_PLAN_PRO;
    m->price_input = zg_db_cell_int(v[6], l[6], -1);
    m->price_output = zg_db_cell_int(v[7], l[7], -1);
    m->price_cache_read = zg_db_cell_int(v[8], l[8], -1);
    m->price_cache_write_5m = zg_db_cell_int(v[9], l[9], -1);
    m->price_cache_write_1h = zg_db_cell_int(v[10], l[10], -1);
    m->price_unit = zg_db_cell_int(v[11], l[11], -1);
    m->created = zg_db_cell_int(v[12], l[12], 0);
    m->context_window = zg_db_cell_int(v[13], l[13], 0);
    m->expand_input = zg_db_cell_int(v[14], l[14], 0);
    m->long_threshold = zg_db_cell_int(v[15], l[15], 0);
    m->long_input = zg_db_cell_int(v[16], l[16], -1);
    m->long_output = zg_db_cell_int(v[17], l[17], -1);
    m->long_cache_read = zg_db_cell_int(v[18], l[18], -1);
    if (m->long_threshold < 0 || m->long_input < 0 || m->long_output < 0)
        m->long_threshold = 0; /* an incomplete tier is no tier */
    return 0;
}

static int alias_row(void *ctx, int nc, char **v, const size_t *l)
{
    struct load *ld = ctx;
    if (nc < 2 || !v[0] || !v[1])
        return 0;
    size_t idx = 0;
    while (idx < ld->n && strcmp(ld->m[idx].id, v[1]) != 0)
        idx++;
    if (idx == ld->n)
        return 0;
    if (ld->na == ld->acap) {
        size_t nc2 = ld->acap ? ld->acap * 2 : 32;
        struct alias *p = realloc(ld->a, nc2 * sizeof *p);
        if (!p) {
            ld->oom = 1;
            return 1;
        }
        ld->a = p;
        ld->acap = nc2;
    }
    zg_db_cell_str(ld->a[ld->na].name, sizeof ld->a[ld->na].name, v[0], l[0]);
    ld->a[ld->na].model = idx;
    ld->na++;
    return 0;
}

void zg_catalog_invalidate(void)
{
    pthread_mutex_lock(&refresh_mu);
    checked_at = 0;
    pthread_mutex_unlock(&refresh_mu);
}

/* Check the version and load the catalog when it moved. background: the main thread's periodic
 * check; otherwise a request's, which only ever loads a catalog the process does not have yet. */
static int refresh(zg_db *db, bool background)
{
    time_t now = time(NULL);
    pthread_mutex_lock(&refresh_mu);
    /* one thread checks at a time; requests go on with the catalog they have, so during a database
     * outage no request waits for a check */
    if (loaded_version >= 0 && (refreshing || !background)) {
        pthread_mutex_unlock(&refresh_mu);
        return 0;
    }
    if (refreshing) { /* no catalog yet and another thread is loading it: wait for it */
        while (refreshing)
            pthread_cond_wait(&refreshed, &refresh_mu);
        int rc = loaded_version >= 0 ? 0 : -1;
        pthread_mutex_unlock(&refresh_mu);
        return rc;
    }
    refreshing = true;
    checked_at = now;
    int64_t have = loaded_version;
    pthread_mutex_unlock(&refresh_mu);

    int64_t ver[1] = {-1};
    struct load ld = {0};
    bool ok = zg_db_run(db, SQL_VERSION, NULL, 0, zg_db_row_ints, &(zg_ints){ver, 1}, NULL) == 0;
    if (!ok)
        zg_warn("catalog version check failed: %s", zg_db_error(db));
    bool load = ok && ver[0] != have;
    if (load && (zg_db_run(db, SQL_MODELS, NULL, 0, model_row, &ld, NULL) != 0 ||
                 zg_db_run(db, SQL_ALIASES, NULL, 0, alias_row, &ld, NULL) != 0 || ld.oom)) {
        zg_warn("catalog load failed: %s", ld.oom ? "out of memory" : zg_db_error(db));
        free(ld.m);
        free(ld.a);
        load = false;
    }
    if (load) {
        pthread_rwlock_wrlock(&lock);
        free(models);
        free(aliases);
        models = ld.m;
        nmodels = ld.n;
        aliases = ld.a;
        naliases = ld.na;
        pthread_rwlock_unlock(&lock);
        zg_debug("catalog loaded: version %lld, %zu models, %zu aliases", (long long)ver[0], ld.n, ld.na);
    }
    pthread_mutex_lock(&refresh_mu);
    if (load)
        loaded_version = ver[0];
    refreshing = false;
    pthread_cond_broadcast(&refreshed);
    int rc = loaded_version >= 0 ? 0 : -1;
    pthread_mutex_unlock(&refresh_mu);
    return rc;
}

int zg_catalog_refresh(zg_db *db)
{
    return refresh(db, false);
}

void zg_catalog_upkeep(zg_db *db)
{
    refresh(db, true);
}

int zg_catalog_find(const char *name, size_t len, zg_model *out)
{
    if (len >= 7 && memcmp(name, "models/", 7) == 0) {
        name += 7;
        len -= 7;
    }
    int rc = -1;
    pthread_rwlock_rdlock(&lock);
    for (size_t i = 0; i < nmodels && rc; i++)
        if (strlen(models[i].id) == len && memcmp(models[i].id, name, len) == 0) {
            *out = models[i];
            rc = 0;
        }
    for (size_t i = 0; i < naliases && rc; i++)
        if (strlen(aliases[i].name) == len && memcmp(aliases[i].name, name, len) == 0) {
            *out = models[aliases[i].model];
            rc = 0;
        }
    pthread_rwlock_unlock(&lock);
    return rc;
}

int zg_catalog_list(zg_model **out, size_t *n)
{
    pthread_rwlock_rdlock(&lock);
    *n = nmodels;
    *out = malloc((nmodels ? nmodels : 1) * sizeof **out);
    if (*out && nmodels)
        memcpy(*out, models, nmodels * sizeof **out);
    pthread_rwlock_unlock(&lock);
    return *out ? 0 : -1;
}
