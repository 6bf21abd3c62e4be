#ifndef ZG_DB_H
#define ZG_DB_H
#include <stddef.h>
#include <stdint.h>
#include "zg_config.h"

/* A handle for running statements, used by one thread at a time: either one MariaDB connection
 * of its own (zg_db_new) or a borrower that takes a connection from a process's pool for each
 * statement and gives it back (zg_db_borrower). Statements are prepared once per connection and
 * reused; a lost connection is re-established and the statement retried once. Opaque. */
typedef struct zg_db zg_db;

/* A fixed set of connections shared by a process's threads, lent out one statement at a time, so
 * that a process holds at most that many connections whatever its concurrency. Opaque. */
typedef struct zg_db_pool zg_db_pool;

typedef enum { ZG_V_NULL = 0, ZG_V_INT, ZG_V_STR } zg_vtype;

/* A statement parameter. */
typedef struct zg_val {
    zg_vtype type;
    int64_t i;
    const char *s;
    size_t n;
} zg_val;

#define ZG_INT(x) ((zg_val){.type = ZG_V_INT, .i = (int64_t)(x)})
#define ZG_STR(x) ((zg_val){.type = ZG_V_STR, .s = (x), .n = strlen(x)})
#define ZG_STRN(x, len) ((zg_val){.type = ZG_V_STR, .s = (x), .n = (len)})
#define ZG_NULLV ((zg_val){.type = ZG_V_NULL})

/* Called once per result row; vals[i] is NULL for SQL NULL, else NUL-terminated text of lens[i]
 * bytes. Return non-zero to ignore the remaining rows. */
typedef int (*zg_row_fn)(void *ctx, int ncols, char **vals, const size_t *lens);

/* Call once per process before any thread uses the database. */
void zg_db_global_init(void);
/* Release this thread's client-library state; call as a thread that used the database exits. */
void zg_db_thread_end(void);
/* Open a connection from the settings (not connected until first use). Never NULL unless OOM. */
zg_db *zg_db_new(const zg_settings *s);
/* Close the connection and its statements (a borrower: just the handle). */
void zg_db_free(zg_db *db);
/* A pool of `size` (>= 1) connections, each connected on first use. NULL on OOM. */
zg_db_pool *zg_db_pool_new(const zg_settings *s, int size);
/* Close every connection; no borrower may be in use. */
void zg_db_pool_free(zg_db_pool *p);
/* A handle that borrows one of p's connections for each statement (waiting at most 6 x [database]
 * timeout seconds for one to be free, else the statement fails with "database busy" as a lost
 * connection would). Free it with zg_db_free. NULL on OOM. */
zg_db *zg_db_borrower(zg_db_pool *p);
/* Make p the process's pool (before any thread calls zg_db_open). */
void zg_db_pool_set_process(zg_db_pool *p);
/* A handle for a thread of this process: a borrower from the process's pool when it has one,
 * else a connection of its own (zg_db_new). NULL on OOM. */
zg_db *zg_db_open(const zg_settings *s);
/* Connect now if not connected. 0 or -1 (message from zg_db_error). */
int zg_db_connect(zg_db *db);
/* Run a prepared statement with params. `sql` must be a string with static storage: statements are
 * cached per connection by its address; every row of every result set goes to fn (may be NULL).
 * *affected (may be NULL) gets the affected-row count. Retries once after reconnecting on a lost
 * connection (also when the statement may already have run: the answer was lost; with [database]
 * hosts on the next server), after a short random pause on deadlock or Galera write conflict (1213:
 * rolled back whole; at least 8 times and for 3 s), and on the next [database] hosts server when
 * one is not ready (1047: not run), so every statement run through it must be safe to repeat:
 * reads, and calls that are idempotent by their own key (a request id, an operation id, a top-up reference). A statement gets
 * at most [database] timeout seconds to answer. 0 or -1. */
int zg_db_run(zg_db *db, const char *sql, const zg_val *params, int nparams, zg_row_fn fn, void *ctx,
              int64_t *affected);
/* Run SQL through the text protocol (for DDL and routines, which cannot be prepared).
 * Consumes all results. 0 or -1. */
int zg_db_exec_text(zg_db *db, const char *sql, size_t len);
/* The last error message on this connection. */
const char *zg_db_error(const zg_db *db);
/* The last server error number (0 if none, or a client error such as 2006). */
unsigned zg_db_errno(const zg_db *db);
/* Number of statement executions so far (round trips), for benchmarks. */
uint64_t zg_db_round_trips(const zg_db *db);

/* Destination of zg_db_row_ints: up to n integers. */
typedef struct zg_ints {
    int64_t *v;
    int n;
} zg_ints;

/* Row callback helper: copies columns 0..min(ncols, n)-1 of the first row as int64 into the
 * zg_ints given as ctx; NULL or non-numeric becomes 0. For single-row numeric answers. */
int zg_db_row_ints(void *ctx, int ncols, char **vals, const size_t *lens);
/* For row callbacks: copy a cell (v, n; NULL is "") into dst[cap], cut to fit. */
void zg_db_cell_str(char *dst, size_t cap, const char *v, size_t n);
/* For row callbacks: a cell as an integer, def when NULL or not one. */
int64_t zg_db_cell_int(const char *v, size_t n, int64_t def);

#endif
