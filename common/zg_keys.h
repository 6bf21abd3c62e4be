/* Customer keys as stored (api_keys): the one place that creates, renames, limits and revokes
 * them, shared by zenn-admin and the account API. */
#ifndef ZG_KEYS_H
#define ZG_KEYS_H
#include <stdint.h>
#include "zg_auth.h"
#include "zg_db.h"

#define ZG_KEY_NAME_MAX 100
/* A key's status as shown (SQL over api_keys' columns): an active key past its expires_at shows as
 * 'expired' (zg_key_find refuses it like a revoked one). */
#define ZG_KEY_STATUS_SQL "IF(status = 'active' AND expires_at <= NOW(3), 'expired', status)"

/* Create a key for user_id named name ("" allowed) with a spend limit in credits (-1 = none),
 * expiring expires_s seconds from now (0 = never): draws a new key until its prefix is unused,
 * stores its hash. Fills key (shown once), prefix and *id. 0; -1 on a database error
 * (zg_db_error); -2 when the RNG failed or no unused prefix was drawn. The caller wipes key after
 * use. */
int zg_keys_create(zg_db *db, int64_t user_id, const char *name, int64_t limit, int64_t expires_s,
                   char key[ZG_KEY_LEN + 1], char prefix[ZG_KEY_PREFIX_LEN + 1], int64_t *id);
/* Revoke key id (of user_id when user_id > 0). 1 revoked now, 0 already revoked or not found, -1
 * on a database error. The key stops working at once (the access version trigger). */
int zg_keys_revoke(zg_db *db, int64_t id, int64_t user_id);
/* Set the spend limit of key id (of user_id when > 0) in credits, -1 = none. 1 changed (or the same),
 * 0 not found, -1 database error. */
int zg_keys_set_limit(zg_db *db, int64_t id, int64_t user_id, int64_t limit);
/* Rename key id of user_id. 1 done, 0 not found, -1 database error. */
int zg_keys_rename(zg_db *db, int64_t id, int64_t user_id, const char *name);
/* Revoke keys whose expires_at has passed (at most 1000 a call), so that processes holding them in
 * memory (leases) drop them within a second. The number revoked, or -1 on a database error. */
int zg_keys_expire(zg_db *db);
/* Mint a browser key for user_id's session (the SHA-256 of its token): kind 'browser', named
 * "browser", expiring ttl_s seconds from now, revoked when the session ends (a trigger). Fills key
 * (the caller wipes it), *id and *expires_at (unix seconds). 0, -1 database error, -2 RNG. */
int zg_keys_create_browser(zg_db *db, int64_t user_id, const char *session_hash, int ttl_s,
                           char key[ZG_KEY_LEN + 1], int64_t *id, int64_t *expires_at);

#endif
