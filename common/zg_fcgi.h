#ifndef ZG_FCGI_H
#define ZG_FCGI_H
#include <stdbool.h>
#include <stddef.h>
#include "zg_buf.h"

/* FastCGI records written without libfcgi, for a response that goes on after its worker thread
 * let go of it (zg_loop.c): the body as FCGI_STDOUT records, then the end of the request. */

/* Append p[0..n) to out as FCGI_STDOUT records of request `id` (at most 65,535 bytes each; n = 0
 * appends nothing). ZG_OK, or ZG_E_TOOBIG / ZG_E_NOMEM with out unchanged. */
int zg_fcgi_stdout(zg_buf *out, int id, const void *p, size_t n);

/* Append the end of request `id`: the empty FCGI_STDOUT record that closes the body, then
 * FCGI_END_REQUEST with application status 0 and FCGI_REQUEST_COMPLETE. ZG_OK or as above. */
int zg_fcgi_end(zg_buf *out, int id);

/* Write q's bytes from *off to fd (non-blocking) until done or the socket is full; *off moves on,
 * and q is emptied (and *off reset) once all of it is written. 0, or -1 when the connection
 * failed (not for a full socket). */
int zg_fcgi_send(int fd, zg_buf *q, size_t *off);

/* Has the web server closed FastCGI connection fd (the client left) or sent FCGI_ABORT_REQUEST?
 * Looks without reading or blocking. */
bool zg_fcgi_client_left(int fd);

#endif
