#ifndef ZG_LEASE_H
#define ZG_LEASE_H
#include <stdbool.h>
#include <stdint.h>
#include "zg_billing.h"
#include "zg_config.h"
#include "zg_db.h"

/* Billing mode "lease": admission without a database round trip.
 *
 * A process reserves, per key and rate-limit group, a slice of the key's free credits (a lease,
 * counted in users.held and api_keys.held like any hold, and recorded in the leases table) and a
 * slice of the hour's request count, in one transaction (procedure zg_lease). Requests are then
 * admitted against the slice in memory. Each admission and each settlement is appended to the
 * process's journal file (no fsync per request) and settlements are written to the database in
 * batches, one transaction every flush_ms (procedure zg_flush), which also consumes the lease. A
 * lease unused for lease_idle_ms is given back. A process that dies leaves its journal: a sibling
 * process replays it (every request in it billed once: finished ones at their cost, unfinished
 * ones at what the upstream reported, or their hold) and releases the dead process's leases. Keys too
 * poor for a lease (less than 8 x the request's hold free) are admitted the strict way, one round
 * trip per request; their admissions are journalled too, so a sibling settles them just as fast.
 * When the hour's request count is used up while other processes hold unused slices of it, the slices
 * are recalled (every process polls for recalls) and the request asks again before it is refused. */

/* How one request was admitted; filled by zg_lease_admit, consumed by zg_lease_settle. */
typedef struct zg_ticket {
    int mode; /* ZG_BILLING_STRICT: a pending usage row; ZG_BILLING_LEASE: in memory */
    int entry;
    int gen;
    int64_t hold;
    bool journaled; /* a strict admission noted in this process's journal (lease mode running) */
} zg_ticket;

/* Start lease mode in this process when cfg->billing_mode says so: open the journal, start the
 * writer thread. Call once, before the workers start. 0, or -1 (logged; the process then bills
 * strictly). cfg must outlive the process. */
int zg_lease_start(const zg_settings *cfg);
/* Write what is queued, give back every lease and remove the journal. Call after the workers
 * stopped. */
void zg_lease_stop(void);
/* True when lease mode is running in this process. */
bool zg_lease_active(void);

/* Admit a request: from this process's lease when possible, else by taking or extending a lease,
 * else the strict way (zg_billing_admit). Same codes and rate-limit figures as zg_billing_admit;
 * fills *t. */
int zg_lease_admit(zg_db *db, const zg_settings *cfg, const char *key_hash, const char *request_id,
                   const char *group, int limit, int min_plan, int64_t hold, const char *surface,
                   const char *model, const char *provider, zg_admission *out, zg_ticket *t);
/* Settle an admitted request exactly once: strict tickets through zg_billing_settle, lease
 * tickets by journalling and queueing the settlement for the next batch. 0, or -1 (logged). */
int zg_lease_settle(zg_db *db, const zg_settings *cfg, const char *request_id, const char *surface,
                    const char *model, const char *provider, const zg_settlement *s, zg_ticket *t);

/* Note in the journal that the upstream reported its final usage (cost in credits), so that if this
 * process dies before settling, the request is billed what was reported instead of its hold. A
 * no-op for requests the journal does not know. */
void zg_lease_progress(const zg_ticket *t, const char *request_id, const zg_usage *u, int64_t credits);

/* Upkeep for the main thread: replay journals of dead processes on this host and release
 * leases whose owner stopped renewing them long ago (a lost host). Returns how many requests
 * were replayed, -1 on error. */
int zg_lease_maintain(zg_db *db, const zg_settings *cfg);

#endif
