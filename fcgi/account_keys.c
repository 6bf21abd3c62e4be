/* account: the account's balance, plan and lots, and its keys (list, create, rename, limit, revoke). */
#include "account.h"
#include "zg_catalog.h"
#include "zg_db.h"
#include "zg_keys.h"
#include "zg_log.h"
#include "zg_num.h"
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEYS_MAX 200 /* active keys per account */

json_object *account_time(const char *v)
{
    if (!v || strlen(v) < 19)
        return NULL;
    char t[40];
    snprintf(t, sizeof t, "%.10sT%sZ", v, v + 11);
    return json_object_new_string(t);
}

/* Rows as JSON objects: each row handed to a builder with the row's values. */
struct rows {
    json_object *arr;
    json_object *(*build)(char **v);
};

static int add_row(void *ctx, int nc, char **v, const size_t *l)
{
    (void)nc, (void)l;
    struct rows *rs = ctx;
    json_object *o = rs->build(v);
    if (o)
        json_object_array_add(rs->arr, o);
    return 0;
}

json_object *account_int_or_null(const char *v)
{
    return v ? json_object_new_int64(zg_i64_or0(v)) : NULL;
}

void account_csv_start(zg_req *r, const char *filename)
{
    char cd[160];
    snprintf(cd, sizeof cd, "attachment; filename=\"%s\"", filename);
    zg_resp_status(r, 200);
    zg_resp_header(r, "Content-Type", "text/csv; charset=utf-8");
    zg_resp_header(r, "Content-Disposition", cd);
    zg_resp_header(r, "cache-control", "no-store");
}

static json_object *lot(char **v)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "plan", json_object_new_string(v[0] ? v[0] : ""));
    json_object_object_add(o, "multiplier", account_int_or_null(v[1]));
    json_object_object_add(o, "usd_paid", zg_portal_usd_json(zg_i64_or0(v[2])));
    json_object_object_add(o, "credits_granted", account_int_or_null(v[3]));
    json_object_object_add(o, "credits_left", account_int_or_null(v[4]));
    json_object_object_add(o, "created_at", account_time(v[5]));
    return o;
}

struct me {
    char email[256];
    int64_t credits, held, plan;
    bool hit;
};

static int take_me(void *ctx, int nc, char **v, const size_t *l)
{
    struct me *m = ctx;
    if (nc < 4 || !v[0] || l[0] >= sizeof m->email)
        return 1;
    memcpy(m->email, v[0], l[0] + 1);
    m->credits = v[1] ? strtoll(v[1], NULL, 10) : 0;
    m->held = v[2] ? strtoll(v[2], NULL, 10) : 0;
    m->plan = v[3] ? strtoll(v[3], NULL, 10) : 0;
    m->hit = true;
    return 1;
}

static const char SQL_ME[] = "SELECT email, balance, held, zg_plan_rank(id) FROM users WHERE id = ?";
static const char SQL_LOTS[] = "SELECT plan, multiplier, usd_micros, credits_granted, credits_remaining, created_at"
                               " FROM topups WHERE user_id = ? ORDER BY id";

json_object *account_summary(zg_db *db, int64_t user_id)
{
    struct me m = {0};
    zg_val p[] = {ZG_INT(user_id)};
    if (zg_db_run(db, SQL_ME, p, 1, take_me, &m, NULL) != 0 || !m.hit)
        return NULL;
    struct rows lots = {json_object_new_array(), lot};
    if (zg_db_run(db, SQL_LOTS, p, 1, add_row, &lots, NULL) != 0) {
        json_object_put(lots.arr);
        return NULL;
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "email", json_object_new_string(m.email));
    json_object_object_add(o, "plan", json_object_new_string(zg_plan_name((int)m.plan)));
    json_object_object_add(o, "credits", json_object_new_int64(m.credits));
    json_object_object_add(o, "held", json_object_new_int64(m.held));
    json_object_object_add(o, "lots", lots.arr);
    return o;
}

int account_show(zg_req *r)
{
    zg_account who;
    if (zg_session_require(r, &who) != 0)
        return 0;
    json_object *o = account_summary(r->db, who.user_id);
    return o ? zg_portal_reply(r, 200, o) : zg_portal_unavailable(r);
}

int account_session(zg_req *r)
{
    zg_account who;
    int rc = zg_session_peek(r, &who);
    if (rc < 0)
        return zg_portal_unavailable(r);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "signed_in", json_object_new_boolean(rc == 1));
    if (rc == 1) {
        json_object *a = account_summary(r->db, who.user_id);
        if (!a) {
            json_object_put(o);
            return zg_portal_unavailable(r);
        }
        json_object_object_add(o, "account", a);
    }
    return zg_portal_reply(r, 200, o);
}

/* ---- keys -------------------------------------------------------------------------------------- */

static json_object *key_json(char **v)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", account_int_or_null(v[0]));
    json_object_object_add(o, "name", json_object_new_string(v[1] ? v[1] : ""));
    json_object_object_add(o, "prefix", json_object_new_string(v[2] ? v[2] : ""));
    json_object_object_add(o, "created_at", account_time(v[3]));
    json_object_object_add(o, "last_used_at", account_time(v[4]));
    json_object_object_add(o, "spent_credits", account_int_or_null(v[5]));
    json_object_object_add(o, "limit_credits", account_int_or_null(v[6]));
    json_object_object_add(o, "status", json_object_new_string(v[7] ? v[7] : ""));
    json_object_object_add(o, "revoked_at", account_time(v[8]));
    json_object_object_add(o, "expires_at", account_time(v[9]));
    return o;
}

/* The key manager's keys: the browser keys minted for /chat are not among them. */
#define KEY_COLS                                                                                              \
    "id, name, prefix, created_at, last_used_at, spent, spend_limit, " ZG_KEY_STATUS_SQL ", revoked_at, expires_at"
static const char SQL_KEYS[] = "SELECT " KEY_COLS " FROM api_keys WHERE user_id = ? AND kind = 'api' ORDER BY id DESC";
static const char SQL_KEY[] = "SELECT " KEY_COLS " FROM api_keys WHERE id = ? AND user_id = ? AND kind = 'api'";
static const char SQL_ACTIVE_KEYS[] =
    "SELECT COUNT(*) FROM api_keys WHERE user_id = ? AND status = 'active' AND kind = 'api'";

/* "expires_in_days": absent or null (0 into *days), else an integer from 1 to 3650. 0, or -1
 * answered 400. */
static int expiry_days(zg_req *r, json_object *o, int64_t *days)
{
    json_object *v;
    *days = 0;
    if (!json_object_object_get_ex(o, "expires_in_days", &v) || !v)
        return 0;
    if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1 || json_object_get_int64(v) > 3650) {
        zg_portal_bad(r, "expires_in_days", "expires_in_days: a whole number of days from 1 to 3650, or leave it out");
        return -1;
    }
    *days = json_object_get_int64(v);
    return 0;
}

/* One key of who as JSON, NULL when it is not theirs (or the database failed: *err). */
static json_object *one_key(zg_req *r, int64_t id, int64_t user_id, bool *err)
{
    struct rows rs = {json_object_new_array(), key_json};
    zg_val p[] = {ZG_INT(id), ZG_INT(user_id)};
    *err = zg_db_run(r->db, SQL_KEY, p, 2, add_row, &rs, NULL) != 0;
    json_object *k = json_object_array_length(rs.arr) ? json_object_get(json_object_array_get_idx(rs.arr, 0)) : NULL;
    json_object_put(rs.arr);
    return k;
}

int account_keys_list(zg_req *r)
{
    zg_account who;
    if (zg_session_require(r, &who) != 0)
        return 0;
    struct rows rs = {json_object_new_array(), key_json};
    zg_val p[] = {ZG_INT(who.user_id)};
    if (zg_db_run(r->db, SQL_KEYS, p, 1, add_row, &rs, NULL) != 0) {
        json_object_put(rs.arr);
        return zg_portal_unavailable(r);
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "keys", rs.arr);
    return zg_portal_reply(r, 200, o);
}

int account_keys_create(zg_req *r)
{
    zg_account who;
    if (zg_session_require(r, &who) != 0)
        return 0;
    json_object *o = zg_portal_body(r);
    if (!o)
        return 0;
    int rc = 0;
    const char *name;
    int64_t limit, active[1] = {0};
    int64_t days;
    if (zg_portal_text(r, o, "name", ZG_KEY_NAME_MAX, &name) < 0 || zg_portal_usd(r, o, "limit_usd", &limit) < 0 ||
        expiry_days(r, o, &days) < 0)
        goto out;
    zg_val p[] = {ZG_INT(who.user_id)};
    if (zg_db_run(r->db, SQL_ACTIVE_KEYS, p, 1, zg_db_row_ints, &(zg_ints){active, 1}, NULL) != 0) {
        rc = zg_portal_unavailable(r);
        goto out;
    }
    if (active[0] >= KEYS_MAX) {
        rc = zg_portal_fail(r, 409, "conflict", NULL, "an account can hold at most %d active keys; revoke one first",
                            KEYS_MAX);
        goto out;
    }
    char key[ZG_KEY_LEN + 1], prefix[ZG_KEY_PREFIX_LEN + 1];
    int64_t id = 0;
    int k = zg_keys_create(r->db, who.user_id, name ? name : "", limit, days * 86400, key, prefix, &id);
    if (k != 0) {
        rc = k == -1 ? zg_portal_unavailable(r)
                     : zg_portal_fail(r, 500, "server_error", NULL, "no key could be made; try again");
        goto out;
    }
    bool err;
    json_object *j = one_key(r, id, who.user_id, &err);
    if (!j) {
        OPENSSL_cleanse(key, sizeof key);
        rc = zg_portal_unavailable(r);
        goto out;
    }
    json_object_object_add(j, "key", json_object_new_string(key));
    OPENSSL_cleanse(key, sizeof key);
    zg_info("account: user %lld created key %s", (long long)who.user_id, prefix);
    rc = zg_portal_reply(r, 201, j);
out:
    json_object_put(o);
    return rc;
}

/* The key id in the path (/api/v1/account/keys/{id}); 0 when it is not a number. */
static int64_t path_id(const zg_req *r)
{
    int64_t id = 0;
    const char *s = r->route_rest;
    if (!s || zg_parse_i64(s, strlen(s), 1, INT64_MAX, &id) != 0)
        return 0;
    return id;
}

static int no_such_key(zg_req *r)
{
    return zg_portal_fail(r, 404, "not_found_error", NULL, "no such key on this account");
}

int account_keys_update(zg_req *r)
{
    zg_account who;
    if (zg_session_require(r, &who) != 0)
        return 0;
    int64_t id = path_id(r);
    if (!id)
        return no_such_key(r);
    json_object *o = zg_portal_body(r);
    if (!o)
        return 0;
    int rc = 0;
    const char *name;
    int64_t limit;
    int tn = zg_portal_text(r, o, "name", ZG_KEY_NAME_MAX, &name);
    int tl = tn < 0 ? -1 : zg_portal_usd(r, o, "limit_usd", &limit);
    if (tn < 0 || tl < 0)
        goto out;
    if (tn == 1 && tl == 1) {
        rc = zg_portal_bad(r, NULL, "nothing to change: give name and/or limit_usd");
        goto out;
    }
    int k = 1;
    if (tn == 0)
        k = zg_keys_rename(r->db, id, who.user_id, name);
    if (k == 1 && tl != 1)
        k = zg_keys_set_limit(r->db, id, who.user_id, limit);
    if (k < 0) {
        rc = zg_portal_unavailable(r);
        goto out;
    }
    if (k == 0) {
        rc = no_such_key(r);
        goto out;
    }
    bool err;
    json_object *j = one_key(r, id, who.user_id, &err);
    rc = j ? zg_portal_reply(r, 200, j) : err ? zg_portal_unavailable(r) : no_such_key(r);
out:
    json_object_put(o);
    return rc;
}

int account_keys_revoke(zg_req *r)
{
    zg_account who;
    if (zg_session_require(r, &who) != 0)
        return 0;
    int64_t id = path_id(r);
    if (!id)
        return no_such_key(r);
    int k = zg_keys_revoke(r->db, id, who.user_id);
    if (k < 0)
        return zg_portal_unavailable(r);
    bool err;
    json_object *j = one_key(r, id, who.user_id, &err);
    if (!j)
        return err ? zg_portal_unavailable(r) : no_such_key(r);
    if (k == 1)
        zg_info("account: user %lld revoked key %lld", (long long)who.user_id, (long long)id);
    return zg_portal_reply(r, 200, j);
}

/* ---- the browser key of /chat ------------------------------------------------------------------- */

#define CHAT_KEY_TTL_S 3600

int account_chat_key(zg_req *r)
{
    zg_account who;
    if (zg_session_require(r, &who) != 0)
        return 0;
    char key[ZG_KEY_LEN + 1];
    int64_t id = 0, expires = 0;
    int k = zg_keys_create_browser(r->db, who.user_id, who.token_hash, CHAT_KEY_TTL_S, key, &id, &expires);
    if (k != 0)
        return k == -1 ? zg_portal_unavailable(r)
                       : zg_portal_fail(r, 500, "server_error", NULL, "no key could be made; try again");
    json_object *o = json_object_new_object();
    json_object_object_add(o, "key", json_object_new_string(key));
    OPENSSL_cleanse(key, sizeof key);
    json_object_object_add(o, "expires_at", json_object_new_int64(expires));
    json_object_object_add(o, "expires_in", json_object_new_int(CHAT_KEY_TTL_S));
    zg_resp_header(r, "Cache-Control", "no-store");
    return zg_portal_reply(r, 201, o);
}
