#include "zg_keys.h"
#include <openssl/crypto.h>
#include <string.h>

static const char SQL_KEY_ADD[] =
    "INSERT INTO api_keys (user_id, key_hash, prefix, name, spend_limit, kind, expires_at, session_hash)"
    " VALUES (?, ?, ?, ?, ?, ?, IF(? > 0, NOW(3) + INTERVAL ? SECOND, NULL), ?)";
static const char SQL_KEY_ID[] = "SELECT id, COALESCE(FLOOR(UNIX_TIMESTAMP(expires_at)), 0) FROM api_keys"
                                 " WHERE key_hash = ?";

/* What a new key is besides its secret. */
struct key_spec {
    int64_t user_id;
    const char *name, *kind, *session_hash; /* session_hash may be NULL */
    int64_t limit, expires_s;               /* -1 no limit; 0 never expires */
};

/* Draw keys until one's prefix is unused and store it as k says: the one place a key is made. Fills
 * key, prefix, *id and *expires_at (unix seconds, 0 = never). 0, -1 database error, -2 RNG or no
 * unused prefix. */
static int insert_key(zg_db *db, const struct key_spec *k, char key[ZG_KEY_LEN + 1],
                      char prefix[ZG_KEY_PREFIX_LEN + 1], int64_t *id, int64_t *expires_at)
{
    char hash[65];
    for (int attempt = 0; attempt < 5; attempt++) {
        if (zg_auth_generate(key, prefix) != 0)
            return -2;
        zg_auth_hash(key, strlen(key), hash);
        zg_val p[] = {ZG_INT(k->user_id),
                      ZG_STR(hash),
                      ZG_STR(prefix),
                      ZG_STR(k->name ? k->name : ""),
                      k->limit >= 0 ? ZG_INT(k->limit) : ZG_NULLV,
                      ZG_STR(k->kind),
                      ZG_INT(k->expires_s),
                      ZG_INT(k->expires_s),
                      k->session_hash ? ZG_STR(k->session_hash) : ZG_NULLV};
        if (zg_db_run(db, SQL_KEY_ADD, p, 9, NULL, NULL, NULL) == 0) {
            int64_t v[2] = {0, 0};
            zg_val q[] = {ZG_STR(hash)};
            int rc = zg_db_run(db, SQL_KEY_ID, q, 1, zg_db_row_ints, &(zg_ints){v, 2}, NULL);
            OPENSSL_cleanse(hash, sizeof hash);
            *id = v[0];
            *expires_at = v[1];
            return rc == 0 ? 0 : -1;
        }
        if (zg_db_errno(db) != 1062) /* a prefix (or hash) collision: draw again */
            break;
    }
    OPENSSL_cleanse(hash, sizeof hash);
    OPENSSL_cleanse(key, ZG_KEY_LEN + 1);
    return zg_db_errno(db) == 1062 ? -2 : -1;
}

int zg_keys_create(zg_db *db, int64_t user_id, const char *name, int64_t limit, int64_t expires_s,
                   char key[ZG_KEY_LEN + 1], char prefix[ZG_KEY_PREFIX_LEN + 1], int64_t *id)
{
    struct key_spec k = {.user_id = user_id, .name = name, .kind = "api", .limit = limit, .expires_s = expires_s};
    int64_t expires_at;
    return insert_key(db, &k, key, prefix, id, &expires_at);
}

static const char SQL_KEY_REVOKE[] = "UPDATE api_keys SET status = 'revoked', revoked_at = NOW(3)"
                                     " WHERE id = ? AND (? = 0 OR user_id = ?) AND status = 'active'";

int zg_keys_revoke(zg_db *db, int64_t id, int64_t user_id)
{
    zg_val p[] = {ZG_INT(id), ZG_INT(user_id), ZG_INT(user_id)};
    int64_t n = 0;
    if (zg_db_run(db, SQL_KEY_REVOKE, p, 3, NULL, NULL, &n) != 0)
        return -1;
    return n > 0 ? 1 : 0;
}

static const char SQL_KEY_EXISTS[] = "SELECT COUNT(*) FROM api_keys WHERE id = ? AND (? = 0 OR user_id = ?)";

/* After an UPDATE that changed n rows: 1 when the key exists (changed, or already so), 0 when not. */
static int found(zg_db *db, int64_t n, int64_t id, int64_t user_id)
{
    if (n > 0)
        return 1;
    int64_t v[1] = {0};
    zg_val p[] = {ZG_INT(id), ZG_INT(user_id), ZG_INT(user_id)};
    if (zg_db_run(db, SQL_KEY_EXISTS, p, 3, zg_db_row_ints, &(zg_ints){v, 1}, NULL) != 0)
        return -1;
    return v[0] > 0 ? 1 : 0;
}

static const char SQL_KEY_LIMIT[] = "UPDATE api_keys SET spend_limit = ? WHERE id = ? AND (? = 0 OR user_id = ?)";

int zg_keys_set_limit(zg_db *db, int64_t id, int64_t user_id, int64_t limit)
{
    zg_val p[] = {limit >= 0 ? ZG_INT(limit) : ZG_NULLV, ZG_INT(id), ZG_INT(user_id), ZG_INT(user_id)};
    int64_t n = 0;
    if (zg_db_run(db, SQL_KEY_LIMIT, p, 4, NULL, NULL, &n) != 0)
        return -1;
    return found(db, n, id, user_id);
}

static const char SQL_KEY_RENAME[] = "UPDATE api_keys SET name = ? WHERE id = ? AND user_id = ?";

int zg_keys_rename(zg_db *db, int64_t id, int64_t user_id, const char *name)
{
    zg_val p[] = {ZG_STR(name), ZG_INT(id), ZG_INT(user_id)};
    int64_t n = 0;
    if (zg_db_run(db, SQL_KEY_RENAME, p, 3, NULL, NULL, &n) != 0)
        return -1;
    return found(db, n, id, user_id);
}

static const char SQL_KEYS_EXPIRE[] = "UPDATE api_keys SET status = 'revoked', revoked_at = NOW(3)"
                                      " WHERE expires_at <= NOW(3) AND status = 'active' LIMIT 1000";

int zg_keys_expire(zg_db *db)
{
    int64_t n = 0;
    if (zg_db_run(db, SQL_KEYS_EXPIRE, NULL, 0, NULL, NULL, &n) != 0)
        return -1;
    return (int)n;
}

int zg_keys_create_browser(zg_db *db, int64_t user_id, const char *session_hash, int ttl_s,
                           char key[ZG_KEY_LEN + 1], int64_t *id, int64_t *expires_at)
{
    struct key_spec k = {.user_id = user_id, .name = "browser", .kind = "browser", .session_hash = session_hash,
                         .limit = -1, .expires_s = ttl_s};
    char prefix[ZG_KEY_PREFIX_LEN + 1];
    return insert_key(db, &k, key, prefix, id, expires_at);
}
