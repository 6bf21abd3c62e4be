#ifndef ZG_SERVER_H
#define ZG_SERVER_H
#include "zg_config.h"
#include "zg_db.h"
#include "zg_req.h"

/* A route program's request handler. It must answer (through zg_resp_* or zg_err_reply) and
 * return 0; if it returns without having answered, the server answers 500. */
typedef int (*zg_handler)(zg_req *r);

/* Run a FastCGI program: parse argv (--config PATH, --listen SOCKET|:PORT, --threads MAX, --help),
 * load settings, serve on fd 0 (or the --listen socket) with worker threads started and ended
 * with the load (about [server] idle_threads waiting, at most [server] threads), sharing a pool
 * of [database] connections, and
 * serve until SIGTERM/SIGINT, then let in-flight requests finish and exit 0. Returns the exit code. */
int zg_server_main(const char *name, zg_proto proto, zg_handler handler, int argc, char **argv);

/* A program's own background work (optional; set before zg_server_main). */
typedef struct zg_server_hooks {
    /* after the settings are loaded and metering started, before the first request */
    void (*start)(const zg_settings *cfg);
    /* on the main thread about every second (db may be NULL while the database is away) */
    void (*upkeep)(zg_db *db, const zg_settings *cfg);
    /* after the workers stopped, before the process exits (db may be NULL) */
    void (*stop)(zg_db *db);
} zg_server_hooks;
/* Register the program's hooks (h outlives the program). */
void zg_server_set_hooks(const zg_server_hooks *h);

/* True once shutdown has begun (long streams may check it; they are still allowed to finish). */
int zg_server_stopping(void);

#endif
