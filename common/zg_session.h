/* Portal sessions: a random token in an HttpOnly cookie, its SHA-256 in the sessions table. */
#ifndef ZG_SESSION_H
#define ZG_SESSION_H
#include <stdbool.h>
#include <stdint.h>
#include "zg_req.h"

#define ZG_SESSION_COOKIE "zg_session"

/* The signed-in customer. */
typedef struct zg_account {
    int64_t user_id;
    char email[256];
    char token_hash[65];
} zg_account;

/* Start a session for user_id: a new token (its hash stored, expiring after [portal]
 * session_max_days) and the Set-Cookie header on r. 0, or -1 on a database or RNG failure (not
 * answered). */
int zg_session_start(zg_req *r, int64_t user_id);
/* The customer whose session cookie r carries. 0 with *who filled; otherwise answers and returns -1:
 * 401 (no session, unknown, ended or expired; an API key instead of a session says so), 403 (a
 * state-changing request from another origin: zg_portal_same_origin), 503 (database). A session
 * seen more than a minute ago is marked seen now (idle expiry counts from there). */
int zg_session_require(zg_req *r, zg_account *who);
/* End r's session (if any); with clear, also clear the cookie on r. */
void zg_session_end(zg_req *r, bool clear);
/* The customer whose session cookie r carries, without answering: 1 signed in (*who filled), 0
 * not signed in (no cookie, or an ended or expired session), -1 database error. */
int zg_session_peek(zg_req *r, zg_account *who);
/* End every session of user_id except the one whose hash is keep (NULL: all). 0 or -1. */
int zg_session_end_all(zg_req *r, int64_t user_id, const char *keep);
/* The session token from a Cookie header value into out[cap]: 0, or -1 when there is none. */
int zg_session_cookie_token(const char *cookie, char *out, size_t cap);

#endif
