#ifndef ZG_DBHOST_H
#define ZG_DBHOST_H
#include "zg_config.h"
#include <stdbool.h>
#include <stdint.h>

/* Which database server of [database] hosts a new connection tries first. Servers are tried in
 * their listed order, except that one that failed (refused a connection, or answered that it is not
 * ready: a Galera node outside the primary component) is tried after the others for
 * ZG_DBHOST_DOWN_MS. A connection made to a server other than the first usable one is "away" and
 * is closed once it is ZG_DBHOST_AWAY_MS old, so that a node goes back to its own database server
 * soon after that server returns. State is per process, shared by its threads. */

#define ZG_DBHOST_MAX ZG_DB_HOSTS_MAX /* the servers [database] hosts may list */
#define ZG_DBHOST_DOWN_MS 10000
#define ZG_DBHOST_AWAY_MS 30000

/* Fill order[] with the indexes 0..n-1 to try at time now (monotonic ms); returns n. */
int zg_dbhost_order(int n, int64_t now, int *order);
/* Note the outcome of using server i at time now: ok clears its failure, !ok puts it last. */
void zg_dbhost_mark(int i, bool ok, int64_t now);
/* True when a connection made to server i at time made_at should be closed at time now: it went to
 * a fallback and has been there for ZG_DBHOST_AWAY_MS (the servers listed before it may be back). */
bool zg_dbhost_away(int i, int64_t made_at, int64_t now);
/* Forget every failure (tests). */
void zg_dbhost_reset(void);

/* Milliseconds to wait before retry number attempt (1, 2, ...) of a transaction that lost a write
 * conflict (deadlock 1213, or a Galera certification failure, reported the same way): a short,
 * growing, randomised pause so that the transactions that collided do not collide again. */
int zg_dbhost_conflict_pause_ms(int attempt);

#endif
