#include "zg_meter.h"
#include "zg_log.h"
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

/* One billing mode. */
typedef struct zg_meter_ops {
    const char *name;
    int (*admit)(zg_db *db, const zg_settings *cfg, const zg_meter_req *q, zg_admission *out, zg_ticket *t);
    int (*settle)(zg_db *db, const zg_settings *cfg, const zg_meter_req *q, const zg_settlement *s, zg_ticket *t);
    void (*progress)(const zg_ticket *t, const char *request_id, const zg_usage *u, int64_t credits);
    int (*recover)(zg_db *db, const zg_settings *cfg); /* what dead processes left; may be NULL */
    void (*stop)(void);
} zg_meter_ops;

/* ---- strict: one transaction to admit, one to settle ------------------------------------------------- */

static int strict_admit(zg_db *db, const zg_settings *cfg, const zg_meter_req *q, zg_admission *out, zg_ticket *t)
{
    memset(t, 0, sizeof *t);
    t->mode = ZG_BILLING_STRICT;
    t->hold = q->hold;
    int code = ZG_ADMIT_RECALLED;
    /* only leases hold slices of the hour's requests: processes in lease mode may share the
     * database (and zg_meter_admit_strict runs in lease mode); a refusal that recalled them is
     * asked again */
    for (int i = 0; i < 3 && code == ZG_ADMIT_RECALLED; i++)
        code = zg_billing_admit(db, q->key_hash, q->request_id, q->group, q->limit, q->min_plan, q->hold, q->surface,
                                q->model, q->provider, out);
    if (code == ZG_ADMIT_RECALLED)
        code = out->code = ZG_ADMIT_RATE;
    if (code == ZG_ADMIT_DB_ERROR && q->hold > 0)
        zg_billing_cancel(db, cfg, q->request_id); /* it may have committed before the failure */
    return code;
}

static int strict_settle(zg_db *db, const zg_settings *cfg, const zg_meter_req *q, const zg_settlement *s,
                         zg_ticket *t)
{
    (void)t;
    return zg_billing_settle(db, cfg, q->request_id, s, NULL);
}

static void strict_progress(const zg_ticket *t, const char *request_id, const zg_usage *u, int64_t credits)
{
    (void)t, (void)request_id, (void)u, (void)credits; /* the pending row is the record: reaped at its hold */
}

static const zg_meter_ops strict_ops = {"strict", strict_admit, strict_settle, strict_progress, NULL, NULL};

/* ---- lease: admission from per-process leases (zg_lease) --------------------------------------------- */

static int lease_admit(zg_db *db, const zg_settings *cfg, const zg_meter_req *q, zg_admission *out, zg_ticket *t)
{
    int code = zg_lease_admit(db, cfg, q->key_hash, q->request_id, q->group, q->limit, q->min_plan, q->hold,
                              q->surface, q->model, q->provider, out, t);
    if (code == ZG_ADMIT_DB_ERROR && q->hold > 0 && t->mode == ZG_BILLING_STRICT)
        zg_billing_cancel(db, cfg, q->request_id); /* a strict admission inside lease mode */
    return code;
}

static int lease_settle(zg_db *db, const zg_settings *cfg, const zg_meter_req *q, const zg_settlement *s,
                        zg_ticket *t)
{
    return zg_lease_settle(db, cfg, q->request_id, q->surface, q->model, q->provider, s, t);
}

static const zg_meter_ops lease_ops = {"lease", lease_admit, lease_settle, zg_lease_progress, zg_lease_maintain,
                                       zg_lease_stop};

/* ---- the entry point --------------------------------------------------------------------------------- */

static const zg_meter_ops *ops = &strict_ops;

void zg_meter_start(const zg_settings *cfg)
{
    ops = &strict_ops;
    if (cfg->billing_mode == ZG_BILLING_LEASE && zg_lease_start(cfg) == 0 && zg_lease_active())
        ops = &lease_ops;
}

void zg_meter_stop(void)
{
    if (ops->stop)
        ops->stop();
}

const char *zg_meter_mode(void)
{
    return ops->name;
}

int zg_meter_admit(zg_db *db, const zg_settings *cfg, const zg_meter_req *q, zg_admission *out, zg_ticket *t)
{
    return ops->admit(db, cfg, q, out, t);
}

int zg_meter_admit_strict(zg_db *db, const zg_settings *cfg, const zg_meter_req *q, zg_admission *out, zg_ticket *t)
{
    return strict_admit(db, cfg, q, out, t);
}

int zg_meter_settle(zg_db *db, const zg_settings *cfg, const zg_meter_req *q, const zg_settlement *s,
                    zg_ticket *t)
{
    return ops->settle(db, cfg, q, s, t);
}

void zg_meter_progress(const zg_ticket *t, const char *request_id, const zg_usage *u, int64_t credits)
{
    ops->progress(t, request_id, u, credits);
}

#define UPKEEP_SPOOL_S 5
#define UPKEEP_REAP_S 60
#define PURGE_SLICE 5000

void zg_meter_upkeep(zg_db **db, const zg_settings *cfg)
{
    static time_t next_spool, next_reap;
    time_t now = time(NULL);
    if (next_reap == 0) /* soon after start (a respawned process cleans up after the dead one), spread
                         * over 3..12 s so that processes started together do not reap together */
        next_reap = now + 3 + (time_t)(getpid() % 10);
    struct stat st;
    bool spooled = cfg->spool_path[0] && stat(cfg->spool_path, &st) == 0 && st.st_size > 0;
    if (now < next_spool && now < next_reap)
        return;
    if (!*db && !(*db = zg_db_open(cfg)))
        return;
    if (now >= next_spool) {
        next_spool = now + UPKEEP_SPOOL_S;
        if (ops->recover && ops->recover(*db, cfg) < 0)
            zg_warn("replaying what dead processes left failed: %s", zg_db_error(*db));
        if (spooled && zg_billing_replay_spool(*db, cfg) < 0)
            zg_warn("spool replay failed: %s", zg_db_error(*db));
    }
    if (now >= next_reap) {
        next_reap = now + UPKEEP_REAP_S;
        /* a spooled settlement must win over reaping the same request at its hold */
        if (cfg->spool_path[0] && stat(cfg->spool_path, &st) == 0 && st.st_size > 0)
            return;
        int n = zg_billing_reap(*db, cfg->reap_after);
        if (n > 0)
            zg_warn("reaped %d request(s) left pending for more than %d s", n, cfg->reap_after);
        else if (n < 0)
            zg_warn("reaping abandoned requests failed: %s", zg_db_error(*db));
        /* retention, a slice at a time (every process helps; each slice is an index range) */
        n = zg_billing_purge(*db, cfg->usage_keep_days, PURGE_SLICE);
        if (n > 0)
            zg_info("deleted %d usage row(s) older than %d days ([usage] keep_days)", n, cfg->usage_keep_days);
        else if (n < 0)
            zg_warn("deleting old usage rows failed: %s", zg_db_error(*db));
    }
}
