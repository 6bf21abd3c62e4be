#ifndef ZG_FINISH_H
#define ZG_FINISH_H

/* Finishing threads: a few threads per process that run what follows a stream the relay loop
 * took over (its settlement, which may wait on the database), so that the loop never blocks. */

struct zg_settings;
struct zg_db;

/* Start the threads. 0, or -1 if none could start. */
int zg_finish_start(const struct zg_settings *cfg);
/* Run fn(arg, db) on a finishing thread, in the order given, with a database handle lent for
 * it. Never fails: without memory for the queue it runs fn on the calling thread. */
void zg_finish_defer(void (*fn)(void *arg, struct zg_db *db), void *arg);
/* Run what is queued, then end the threads. */
void zg_finish_stop(void);

#endif
