#ifndef ZG_SERVER_H
#define ZG_SERVER_H
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

/* True once shutdown has begun (long streams may check it; they are still allowed to finish). */
int zg_server_stopping(void);

#endif
