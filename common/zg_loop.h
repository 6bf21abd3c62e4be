#ifndef ZG_LOOP_H
#define ZG_LOOP_H
#include <stdbool.h>
#include "zg_xfer.h"

/* The process's relay loop: one thread that runs streamed upstream transfers with curl's multi
 * socket interface on epoll and writes their answers to the web server without blocking, so an
 * open stream costs a transfer's memory and two descriptors instead of a worker thread. A worker
 * thread admits the request, starts the transfer here and waits for the answer's head; once the
 * response has started it lets go (zg_req_detach) and serves the next request, while the loop
 * relays the rest, and a finishing thread settles it (zg_finish.h). */

struct zg_settings;

/* Start the loop thread and the finishing threads (zg_finish_start). 0, or -1 (streams then stay
 * on their worker threads). */
int zg_loop_start(const struct zg_settings *cfg);
/* True while transfers may be started in the loop. */
bool zg_loop_on(void);
/* Wait until every transfer in the loop has ended and been settled, then stop its threads. */
void zg_loop_stop(void);

/* What zg_loop_begin and the calls after it return. */
enum { ZG_LOOP_HEAD = 1, ZG_LOOP_DONE = 2 };

/* The calls below are for zg_upstream.c, on the worker thread that owns x. */
/* Start x's transfer (set up with zg_xfer_setup) in the loop; wait until its head arrived
 * (ZG_LOOP_HEAD: the transfer is paused, the caller delivers the head) or it ended
 * (ZG_LOOP_DONE: x->ended and x->cc tell how). -1 if the loop is not running. */
int zg_loop_begin(zg_xfer *x);
/* After the head: relay the rest with the callbacks running on the loop thread, and wait for the
 * end (ZG_LOOP_DONE). */
int zg_loop_attach(zg_xfer *x);
/* After the head: end the transfer as aborted and wait (ZG_LOOP_DONE). */
int zg_loop_cancel(zg_xfer *x);
/* After the head, the response started and flushed: the loop takes the request over (its
 * connection, its writes through zg_req_detach) and calls x->cb.on_end at the end. The caller
 * must not touch x, its request or its callbacks' context afterwards. */
void zg_loop_detach(zg_xfer *x);
/* Free a transfer that ended with ZG_LOOP_DONE (after zg_xfer_finish); the loop frees a detached
 * one with it too. */
void zg_loop_release(zg_xfer *x);

#endif
