#ifndef ZG_CONC_H
#define ZG_CONC_H
#include <stdint.h>
#include "zg_config.h"
#include "zg_db.h"

/* The per-user cap on requests in flight ([limits] concurrent_per_user), across processes and web
 * nodes. Each process holds slots of a user's allowance in MariaDB (zg_conc_take, zg_conc_set) and
 * hands them to its own requests; a slot a request gave back stays with the process for the next
 * request of that user while the user is far from the cap (given back after a second unused), and
 * goes back at once near the cap. A process that dies loses its slots after CONC_STALE_S seconds
 * without renewal. While the database cannot be asked, the cap holds per process. */

/* Outcome of zg_conc_enter. */
enum { ZG_CONC_OK = 0, ZG_CONC_FULL = 1 };

/* A request of user_id (> 0) wants to start: ZG_CONC_OK (a slot is its own until zg_conc_leave) or
 * ZG_CONC_FULL (the user has the cap's number of requests in flight; answer 429). Waits at most
 * about a second for slots another process keeps unused; the database is asked from a thread of
 * its own (zg_db_open). Thread-safe. */
int zg_conc_enter(const zg_settings *cfg, int64_t user_id);
/* The request of user_id that entered has ended (exactly once per ZG_CONC_OK). */
void zg_conc_leave(zg_db *db, const zg_settings *cfg, int64_t user_id);
/* For the main thread, about every second: give back slots unused for a second, renew the rest. */
void zg_conc_upkeep(zg_db *db, const zg_settings *cfg);
/* Give back every slot (at exit, after the workers stopped). */
void zg_conc_stop(zg_db *db);

#endif
