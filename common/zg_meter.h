#ifndef ZG_METER_H
#define ZG_METER_H
#include "zg_billing.h"
#include "zg_config.h"
#include "zg_db.h"
#include "zg_lease.h"

/* Metering: the one entry point through which a request is admitted, followed and settled, and
 * through which a process cleans up after dead workers, whichever billing mode runs. The mode is
 * chosen once by zg_meter_start ([billing] mode): "strict" (zg_billing: one admission and one
 * settlement transaction per request) or "lease" (zg_lease: admission from per-process leases,
 * settlements in batches). Callers never test which. */

/* What is being admitted. */
typedef struct zg_meter_req {
    const char *key_hash, *request_id;
    const char *group; /* rate-limit bucket */
    int limit;         /* requests per hour of that bucket */
    int min_plan;
    int64_t hold;      /* credits; 0 = an unbilled request (counted, never settled) */
    const char *surface, *model, *provider;
} zg_meter_req;

/* Start metering in this process as cfg says (before the workers start; cfg outlives them). A
 * lease mode that cannot start (journal unwritable) falls back to strict and logs why. */
void zg_meter_start(const zg_settings *cfg);
/* Write what is queued and give back what is held (after the workers stopped). */
void zg_meter_stop(void);
/* The mode running: "strict" or "lease". */
const char *zg_meter_mode(void);

/* Admit a request: auth, plan, rate limit and hold. Returns out->code (ZG_ADMIT_*); t says how to
 * settle it. A database failure is ZG_ADMIT_DB_ERROR, and whatever it may have committed is undone
 * (settled as abandoned at 0 credits, or spooled) before this returns. */
int zg_meter_admit(zg_db *db, const zg_settings *cfg, const zg_meter_req *q, zg_admission *out, zg_ticket *t);
/* Admit as zg_meter_admit, but always in the database (strict), whatever the mode: for work that
 * another process may finish and settle (zg_billing_settle by its request id). */
int zg_meter_admit_strict(zg_db *db, const zg_settings *cfg, const zg_meter_req *q, zg_admission *out,
                          zg_ticket *t);
/* Settle an admitted request exactly once. 0, or -1 when it could be neither written nor kept for a
 * later write (logged loudly). */
int zg_meter_settle(zg_db *db, const zg_settings *cfg, const zg_meter_req *q, const zg_settlement *s,
                    zg_ticket *t);
/* The upstream's final usage is known (cost in credits): kept so that a process that dies before
 * settling bills it rather than the hold. */
void zg_meter_progress(const zg_ticket *t, const char *request_id, const zg_usage *u, int64_t credits);

/* Upkeep for a process's main thread, between signals, never on a request's path: replay what
 * dead processes left (lease journals), the settlement spool when it holds something (every 5 s),
 * and settle requests abandoned by dead workers (every 60 s, never while the spool holds
 * something). *db is opened on first use and kept. */
void zg_meter_upkeep(zg_db **db, const zg_settings *cfg);

#endif
