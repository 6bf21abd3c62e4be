#include "zg_session.h"
#include "zg_auth.h"
#include "zg_config.h"
#include "zg_db.h"
#include "zg_log.h"
#include "zg_portal.h"
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#define TOKEN_TAG "zs_"
#define TOKEN_LEN (3 + ZG_TOKEN_CHARS)

int zg_session_cookie_token(const char *cookie, char *out, size_t cap)
{
    static const char name[] = ZG_SESSION_COOKIE "=";
    for (const char *p = cookie; p && *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > sizeof name - 1 && strncmp(p, name, sizeof name - 1) == 0) {
            size_t v = n - (sizeof name - 1);
            while (v && p[sizeof name - 1 + v - 1] == ' ')
                v--;
            if (v == 0 || v >= cap)
                return -1;
            memcpy(out, p + sizeof name - 1, v);
            out[v] = '\0';
            return 0;
        }
        p = end;
    }
    return -1;
}

static void set_cookie(zg_req *r, const char *token, long max_age)
{
    char c[200];
    snprintf(c, sizeof c, "%s=%s; Path=/; Max-Age=%ld; HttpOnly; SameSite=Lax%s", ZG_SESSION_COOKIE, token, max_age,
             zg_portal_https(r) ? "; Secure" : "");
    zg_resp_header(r, "set-cookie", c);
    OPENSSL_cleanse(c, sizeof c);
}

static const char SQL_SESSION_ADD[] =
    "INSERT INTO sessions (token_hash, user_id, expires_at) VALUES (?, ?, NOW(3) + INTERVAL ? SECOND)";

int zg_session_start(zg_req *r, int64_t user_id)
{
    char token[TOKEN_LEN + 1], hash[65];
    if (zg_auth_token(TOKEN_TAG, token, sizeof token) != 0)
        return -1;
    zg_auth_hash(token, strlen(token), hash);
    zg_val p[] = {ZG_STR(hash), ZG_INT(user_id), ZG_INT(r->cfg->session_max_s)};
    int rc = zg_db_run(r->db, SQL_SESSION_ADD, p, 3, NULL, NULL, NULL);
    if (rc == 0)
        set_cookie(r, token, r->cfg->session_max_s);
    OPENSSL_cleanse(token, sizeof token);
    return rc;
}

struct found {
    int64_t user_id, stale;
    char email[256];
    bool hit;
};

static int take(void *ctx, int nc, char **v, const size_t *l)
{
    struct found *f = ctx;
    if (nc < 3 || !v[0] || !v[1] || !v[2] || l[1] >= sizeof f->email)
        return 1;
    f->user_id = strtoll(v[0], NULL, 10);
    memcpy(f->email, v[1], l[1] + 1);
    f->stale = strtoll(v[2], NULL, 10);
    f->hit = true;
    return 1;
}

static const char SQL_SESSION_GET[] =
    "SELECT s.user_id, u.email, s.seen_at < NOW(3) - INTERVAL 60 SECOND FROM sessions s"
    " JOIN users u ON u.id = s.user_id"
    " WHERE s.token_hash = ? AND s.expires_at > NOW(3) AND s.seen_at > NOW(3) - INTERVAL ? SECOND"
    " AND u.status = 'active'";
static const char SQL_SESSION_SEEN[] = "UPDATE sessions SET seen_at = NOW(3) WHERE token_hash = ?";

/* Look up the session whose token hash is in who->token_hash: 1 found (*who filled, marked seen
 * when stale), 0 none, -1 database error. */
static int lookup(zg_req *r, zg_account *who)
{
    struct found f = {0};
    zg_val p[] = {ZG_STR(who->token_hash), ZG_INT(r->cfg->session_idle_s)};
    if (zg_db_run(r->db, SQL_SESSION_GET, p, 2, take, &f, NULL) != 0)
        return -1;
    if (!f.hit)
        return 0;
    if (f.stale) {
        zg_val s[] = {ZG_STR(who->token_hash)};
        if (zg_db_run(r->db, SQL_SESSION_SEEN, s, 1, NULL, NULL, NULL) != 0)
            zg_warn("session: could not mark a session seen: %s", zg_db_error(r->db));
    }
    who->user_id = f.user_id;
    memcpy(who->email, f.email, sizeof who->email);
    return 1;
}

/* The hash of r's session token into who->token_hash; -1 when r has no session cookie. */
static int cookie_hash(const zg_req *r, zg_account *who)
{
    char token[128];
    const char *cookie = zg_req_header(r, "cookie");
    if (!cookie || zg_session_cookie_token(cookie, token, sizeof token) != 0)
        return -1;
    zg_auth_hash(token, strlen(token), who->token_hash);
    OPENSSL_cleanse(token, sizeof token);
    return 0;
}

int zg_session_peek(zg_req *r, zg_account *who)
{
    memset(who, 0, sizeof *who);
    if (cookie_hash(r, who) != 0)
        return 0;
    return lookup(r, who);
}

int zg_session_require(zg_req *r, zg_account *who)
{
    memset(who, 0, sizeof *who);
    if (cookie_hash(r, who) != 0) {
        char q[8];
        const char *k;
        size_t kl;
        if (zg_auth_from_req(r, q, sizeof q, &k, &kl) != ZG_KEYSRC_NONE)
            return zg_portal_fail(r, 401, "authentication_error", NULL,
                                  "the account API takes a signed-in session, not an API key; sign in at /login"),
                   -1;
        return zg_portal_fail(r, 401, "authentication_error", NULL, "not signed in; sign in at /login"), -1;
    }
    const char *m = r->method;
    bool changes = strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0 && strcmp(m, "OPTIONS") != 0;
    if (changes && !zg_portal_same_origin(r))
        return zg_portal_fail(r, 403, "permission_error", NULL,
                              "this request did not come from the portal's own pages (Origin)"),
               -1;
    int rc = lookup(r, who);
    if (rc < 0)
        return zg_portal_unavailable(r), -1;
    if (rc == 0) {
        set_cookie(r, "", 0);
        return zg_portal_fail(r, 401, "authentication_error", NULL, "your session has ended; sign in again at /login"),
               -1;
    }
    return 0;
}

static const char SQL_SESSION_END[] = "DELETE FROM sessions WHERE token_hash = ?";

void zg_session_end(zg_req *r, bool clear)
{
    zg_account who;
    if (cookie_hash(r, &who) == 0) {
        zg_val p[] = {ZG_STR(who.token_hash)};
        if (zg_db_run(r->db, SQL_SESSION_END, p, 1, NULL, NULL, NULL) != 0)
            zg_warn("session: could not end a session: %s", zg_db_error(r->db));
    }
    if (clear)
        set_cookie(r, "", 0);
}

static const char SQL_SESSION_END_ALL[] = "DELETE FROM sessions WHERE user_id = ? AND token_hash <> ?";

int zg_session_end_all(zg_req *r, int64_t user_id, const char *keep)
{
    zg_val p[] = {ZG_INT(user_id), ZG_STR(keep ? keep : "")};
    return zg_db_run(r->db, SQL_SESSION_END_ALL, p, 2, NULL, NULL, NULL);
}
