/* account: sign-up, sign-in (with the brute-force limit), sign-out, password change and reset. */
#include "account.h"
#include "zg_auth.h"
#include "zg_config.h"
#include "zg_db.h"
#include "zg_log.h"
#include "zg_passwd.h"
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A request that signs in from a page of another site (login CSRF) is refused; one without any
 * browser origin header (a script) is not a browser's and passes. */
static bool foreign_page(const zg_req *r)
{
    return (zg_req_header(r, "origin") || zg_req_header(r, "sec-fetch-site")) && !zg_portal_same_origin(r);
}

static int refuse_foreign(zg_req *r)
{
    return zg_portal_fail(r, 403, "permission_error", NULL, "this request did not come from the portal's own pages");
}

/* The e-mail and password members of a sign-up or sign-in body; -1 when answered. */
static int credentials(zg_req *r, json_object *o, const char **email, const char **pw, size_t *pwlen)
{
    if (zg_portal_text(r, o, "email", 254, email) < 0)
        return -1;
    if (!*email || !zg_portal_email_ok(*email))
        return zg_portal_bad(r, "email", "enter a valid e-mail address"), -1;
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, "password", &v) || !json_object_is_type(v, json_type_string))
        return zg_portal_bad(r, "password", "enter a password"), -1;
    *pw = json_object_get_string(v);
    *pwlen = (size_t)json_object_get_string_len(v);
    return 0;
}

static const char SQL_USER_ID[] = "SELECT id FROM users WHERE email = ?";

static int user_id_of(zg_db *db, const char *email, int64_t *id)
{
    int64_t v[1] = {0};
    zg_val p[] = {ZG_STR(email)};
    if (zg_db_run(db, SQL_USER_ID, p, 1, zg_db_row_ints, &(zg_ints){v, 1}, NULL) != 0)
        return -1;
    *id = v[0];
    return 0;
}

/* Answer 200/201 with the account and a new session cookie. */
static int signed_in(zg_req *r, int status, int64_t uid)
{
    if (zg_session_start(r, uid) != 0)
        return zg_portal_unavailable(r);
    json_object *o = account_summary(r->db, uid);
    if (!o)
        return zg_portal_unavailable(r);
    return zg_portal_reply(r, status, o);
}

/* ---- sign-up ------------------------------------------------------------------------------------ */

static const char SQL_INVITE_CLAIM[] =
    "UPDATE invites SET used_at = NOW(3) WHERE code_hash = ? AND used_at IS NULL AND expires_at > NOW(3)";
static const char SQL_INVITE_UNCLAIM[] = "UPDATE invites SET used_at = NULL WHERE code_hash = ? AND used_by IS NULL";
static const char SQL_INVITE_USED_BY[] = "UPDATE invites SET used_by = ? WHERE code_hash = ?";
static const char SQL_SIGNUP[] = "INSERT INTO users (email, password_hash) VALUES (?, ?)";

int account_signup(zg_req *r)
{
    if (foreign_page(r))
        return refuse_foreign(r);
    if (r->cfg->signup == ZG_SIGNUP_CLOSED)
        return zg_portal_fail(r, 403, "permission_error", NULL, "sign-up is closed on this service");
    json_object *o = zg_portal_body(r);
    if (!o)
        return 0;
    const char *email, *pw, *invite = NULL;
    size_t pwlen;
    char code_hash[65] = "", hash[ZG_PASSWD_HASH_MAX];
    int rc = 0;
    if (credentials(r, o, &email, &pw, &pwlen) != 0)
        goto out;
    const char *weak = zg_passwd_weakness(pw, pwlen);
    if (weak) {
        rc = zg_portal_bad(r, "password", weak);
        goto out;
    }
    if (r->cfg->signup == ZG_SIGNUP_INVITE) {
        if (zg_portal_text(r, o, "invite", 128, &invite) < 0)
            goto out;
        if (!invite) {
            rc = zg_portal_bad(r, "invite", "sign-up needs an invitation code on this service");
            goto out;
        }
        zg_auth_hash(invite, strlen(invite), code_hash);
        zg_val p[] = {ZG_STR(code_hash)};
        int64_t n = 0;
        if (zg_db_run(r->db, SQL_INVITE_CLAIM, p, 1, NULL, NULL, &n) != 0) {
            rc = zg_portal_unavailable(r);
            goto out;
        }
        if (n == 0) {
            rc = zg_portal_bad(r, "invite", "this invitation code is unknown, used or expired");
            goto out;
        }
    }
    if (zg_passwd_hash(pw, pwlen, hash) != 0) {
        rc = zg_portal_fail(r, 500, "server_error", NULL, "the password could not be stored; try again");
        goto undo;
    }
    zg_val p[] = {ZG_STR(email), ZG_STR(hash)};
    if (zg_db_run(r->db, SQL_SIGNUP, p, 2, NULL, NULL, NULL) != 0) {
        rc = zg_db_errno(r->db) == 1062
                 ? zg_portal_fail(r, 409, "conflict", "email", "an account with this e-mail address exists; sign in")
                 : zg_portal_unavailable(r);
        goto undo;
    }
    int64_t uid = 0;
    if (user_id_of(r->db, email, &uid) != 0 || uid == 0) {
        rc = zg_portal_unavailable(r);
        goto out;
    }
    if (code_hash[0]) {
        zg_val q[] = {ZG_INT(uid), ZG_STR(code_hash)};
        if (zg_db_run(r->db, SQL_INVITE_USED_BY, q, 2, NULL, NULL, NULL) != 0)
            zg_warn("signup: could not note who used an invitation: %s", zg_db_error(r->db));
    }
    zg_info("signup: user %lld", (long long)uid);
    rc = signed_in(r, 201, uid);
    goto out;
undo:
    if (code_hash[0]) {
        zg_val q[] = {ZG_STR(code_hash)};
        zg_db_run(r->db, SQL_INVITE_UNCLAIM, q, 1, NULL, NULL, NULL);
    }
out:
    OPENSSL_cleanse(hash, sizeof hash);
    json_object_put(o);
    return rc;
}

/* ---- sign-in ------------------------------------------------------------------------------------ */

/* Failures within the window, by account and by address, with the seconds until the oldest of
 * each leaves it. */
static const char SQL_FAILURES[] =
    "SELECT COUNT(*), COALESCE(TIMESTAMPDIFF(SECOND, NOW(3), MIN(at)) + ?, 0) FROM login_failures"
    " WHERE email = ? AND at > NOW(3) - INTERVAL ? SECOND"
    " UNION ALL "
    "SELECT COUNT(*), COALESCE(TIMESTAMPDIFF(SECOND, NOW(3), MIN(at)) + ?, 0) FROM login_failures"
    " WHERE addr = ? AND at > NOW(3) - INTERVAL ? SECOND";
static const char SQL_FAILED[] = "INSERT INTO login_failures (email, addr) VALUES (?, ?)";
static const char SQL_FAILED_OLD[] = "DELETE FROM login_failures WHERE at < NOW(3) - INTERVAL ? SECOND LIMIT 100";
static const char SQL_FAILED_CLEAR[] = "DELETE FROM login_failures WHERE email = ?";
static const char SQL_LOGIN[] = "SELECT id, password_hash, status FROM users WHERE email = ?";

struct counts {
    int64_t n[2], wait[2];
    int rows;
};

static int take_count(void *ctx, int nc, char **v, const size_t *l)
{
    struct counts *c = ctx;
    (void)l;
    if (nc >= 2 && c->rows < 2) {
        c->n[c->rows] = v[0] ? strtoll(v[0], NULL, 10) : 0;
        c->wait[c->rows] = v[1] ? strtoll(v[1], NULL, 10) : 0;
        c->rows++;
    }
    return 0;
}

struct login_row {
    int64_t id;
    char hash[ZG_PASSWD_HASH_MAX];
    bool active, hit;
};

static int take_login(void *ctx, int nc, char **v, const size_t *l)
{
    struct login_row *u = ctx;
    if (nc < 3 || !v[0])
        return 1;
    u->id = strtoll(v[0], NULL, 10);
    if (v[1] && l[1] < sizeof u->hash)
        memcpy(u->hash, v[1], l[1] + 1);
    u->active = v[2] && strcmp(v[2], "active") == 0;
    u->hit = true;
    return 1;
}

int account_login(zg_req *r)
{
    if (foreign_page(r))
        return refuse_foreign(r);
    json_object *o = zg_portal_body(r);
    if (!o)
        return 0;
    const char *email, *pw;
    size_t pwlen;
    int rc = 0;
    struct login_row u;
    memset(&u, 0, sizeof u);
    if (credentials(r, o, &email, &pw, &pwlen) != 0)
        goto out;
    if (pwlen == 0 || pwlen > ZG_PASSWD_MAX) {
        rc = zg_portal_fail(r, 401, "authentication_error", NULL, "wrong e-mail address or password");
        goto out;
    }
    const char *addr = zg_portal_addr(r);
    int win = r->cfg->login_window_s;
    struct counts c = {0};
    zg_val f[] = {ZG_INT(win), ZG_STR(email), ZG_INT(win), ZG_INT(win), ZG_STR(addr), ZG_INT(win)};
    if (zg_db_run(r->db, SQL_FAILURES, f, 6, take_count, &c, NULL) != 0) {
        rc = zg_portal_unavailable(r);
        goto out;
    }
    for (int i = 0; i < c.rows; i++)
        if (c.n[i] >= r->cfg->login_max_failures) {
            char ra[24];
            snprintf(ra, sizeof ra, "%lld", (long long)(c.wait[i] > 0 ? c.wait[i] : 1));
            zg_resp_header(r, "retry-after", ra);
            rc = zg_portal_fail(r, 429, "rate_limit_error", NULL,
                                "too many failed sign-ins; try again in %s seconds", ra);
            goto out;
        }
    zg_val p[] = {ZG_STR(email)};
    if (zg_db_run(r->db, SQL_LOGIN, p, 1, take_login, &u, NULL) != 0) {
        rc = zg_portal_unavailable(r);
        goto out;
    }
    /* an unknown address costs the same hashing time as a wrong password */
    bool good = zg_passwd_check(pw, pwlen, u.hit && u.hash[0] ? u.hash : NULL);
    if (!good) {
        zg_val q[] = {ZG_STR(email), ZG_STR(addr)};
        zg_val old[] = {ZG_INT(win > 86400 ? win : 86400)};
        if (zg_db_run(r->db, SQL_FAILED, q, 2, NULL, NULL, NULL) != 0 ||
            zg_db_run(r->db, SQL_FAILED_OLD, old, 1, NULL, NULL, NULL) != 0)
            zg_warn("login: could not count a failed sign-in: %s", zg_db_error(r->db));
        rc = zg_portal_fail(r, 401, "authentication_error", NULL, "wrong e-mail address or password");
        goto out;
    }
    if (!u.active) {
        rc = zg_portal_fail(r, 403, "permission_error", NULL, "this account is disabled; contact support");
        goto out;
    }
    zg_db_run(r->db, SQL_FAILED_CLEAR, p, 1, NULL, NULL, NULL);
    zg_session_end(r, false); /* a session the browser already had is not carried over */
    rc = signed_in(r, 200, u.id);
out:
    OPENSSL_cleanse(&u, sizeof u);
    json_object_put(o);
    return rc;
}

int account_logout(zg_req *r)
{
    if (foreign_page(r))
        return refuse_foreign(r);
    zg_session_end(r, true);
    return zg_portal_reply(r, 204, NULL);
}

/* ---- passwords ---------------------------------------------------------------------------------- */

static const char SQL_HASH_OF[] = "SELECT id, password_hash, status FROM users WHERE id = ?";
static const char SQL_SET_PASSWORD[] = "UPDATE users SET password_hash = ? WHERE id = ?";

/* Store pw as uid's password, end all of uid's sessions and sign this browser in again. */
static int new_password(zg_req *r, int64_t uid, const char *pw, size_t len)
{
    char hash[ZG_PASSWD_HASH_MAX];
    if (zg_passwd_hash(pw, len, hash) != 0)
        return zg_portal_fail(r, 500, "server_error", NULL, "the password could not be stored; try again");
    zg_val p[] = {ZG_STR(hash), ZG_INT(uid)};
    int rc = zg_db_run(r->db, SQL_SET_PASSWORD, p, 2, NULL, NULL, NULL);
    OPENSSL_cleanse(hash, sizeof hash);
    if (rc != 0 || zg_session_end_all(r, uid, NULL) != 0)
        return zg_portal_unavailable(r);
    return signed_in(r, 200, uid);
}

static int new_password_member(zg_req *r, json_object *o, const char *name, const char **pw, size_t *len)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_string))
        return zg_portal_bad(r, name, "enter a new password"), -1;
    *pw = json_object_get_string(v);
    *len = (size_t)json_object_get_string_len(v);
    const char *weak = zg_passwd_weakness(*pw, *len);
    return weak ? (zg_portal_bad(r, name, weak), -1) : 0;
}

int account_password(zg_req *r)
{
    zg_account who;
    if (zg_session_require(r, &who) != 0)
        return 0;
    json_object *o = zg_portal_body(r);
    if (!o)
        return 0;
    int rc = 0;
    const char *pw;
    size_t len;
    json_object *cur = NULL;
    struct login_row u;
    memset(&u, 0, sizeof u);
    if (!json_object_object_get_ex(o, "current", &cur) || !json_object_is_type(cur, json_type_string)) {
        rc = zg_portal_bad(r, "current", "enter your current password");
        goto out;
    }
    if (new_password_member(r, o, "new", &pw, &len) != 0)
        goto out;
    zg_val p[] = {ZG_INT(who.user_id)};
    if (zg_db_run(r->db, SQL_HASH_OF, p, 1, take_login, &u, NULL) != 0) {
        rc = zg_portal_unavailable(r);
        goto out;
    }
    size_t clen = (size_t)json_object_get_string_len(cur);
    if (clen > ZG_PASSWD_MAX ||
        !zg_passwd_check(json_object_get_string(cur), clen, u.hit && u.hash[0] ? u.hash : NULL)) {
        rc = zg_portal_bad(r, "current", "the current password is wrong");
        goto out;
    }
    rc = new_password(r, who.user_id, pw, len);
out:
    OPENSSL_cleanse(&u, sizeof u);
    json_object_put(o);
    return rc;
}

static const char SQL_RESET_CLAIM[] = "UPDATE password_resets SET used_at = NOW(3)"
                                      " WHERE token_hash = ? AND used_at IS NULL AND expires_at > NOW(3)";
static const char SQL_RESET_USER[] = "SELECT user_id FROM password_resets WHERE token_hash = ?";

int account_reset(zg_req *r)
{
    if (foreign_page(r))
        return refuse_foreign(r);
    json_object *o = zg_portal_body(r);
    if (!o)
        return 0;
    int rc = 0;
    const char *token, *pw;
    size_t len;
    if (zg_portal_text(r, o, "token", 128, &token) < 0)
        goto out;
    if (!token) {
        rc = zg_portal_bad(r, "token", "the reset link is incomplete; ask for a new one");
        goto out;
    }
    if (new_password_member(r, o, "password", &pw, &len) != 0)
        goto out;
    char th[65];
    zg_auth_hash(token, strlen(token), th);
    zg_val p[] = {ZG_STR(th)};
    int64_t n = 0, uid[1] = {0};
    if (zg_db_run(r->db, SQL_RESET_CLAIM, p, 1, NULL, NULL, &n) != 0) {
        rc = zg_portal_unavailable(r);
        goto out;
    }
    if (n == 0) {
        rc = zg_portal_bad(r, "token", "this reset link is unknown, used or expired; ask for a new one");
        goto out;
    }
    if (zg_db_run(r->db, SQL_RESET_USER, p, 1, zg_db_row_ints, &(zg_ints){uid, 1}, NULL) != 0 || !uid[0]) {
        rc = zg_portal_unavailable(r);
        goto out;
    }
    rc = new_password(r, uid[0], pw, len);
out:
    json_object_put(o);
    return rc;
}
