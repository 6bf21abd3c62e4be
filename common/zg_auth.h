#ifndef ZG_AUTH_H
#define ZG_AUTH_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "zg_req.h"

#define ZG_KEY_RANDOM_BYTES 32
#define ZG_KEY_LEN (3 + 43)        /* ck_ + base64url of 32 bytes, no padding */
#define ZG_KEY_PREFIX_LEN 12       /* shown in listings: ck_ + 9 characters */
#define ZG_KEY_MAX_LEN 128

/* Where a key was found. */
typedef enum {
    ZG_KEYSRC_NONE = 0,
    ZG_KEYSRC_X_API_KEY,
    ZG_KEYSRC_BEARER,
    ZG_KEYSRC_ANTHROPIC_API_KEY,
    ZG_KEYSRC_X_GOOG_API_KEY,
    ZG_KEYSRC_QUERY,
} zg_keysrc;

/* The raw places a key can come from; any may be NULL. */
typedef struct zg_auth_input {
    const char *x_api_key;
    const char *authorization;
    const char *anthropic_api_key;
    const char *x_goog_api_key;
    const char *query_key; /* decoded ?key= */
} zg_auth_input;

/* Pick the key: the first non-empty of x-api-key, Authorization (must be "Bearer <key>",
 * scheme case-insensitive), anthropic-api-key, x-goog-api-key, ?key=. Surrounding blanks are
 * trimmed. Sets *key and *len (pointing into the input) and returns its source, or ZG_KEYSRC_NONE.
 * An Authorization header that is present but not Bearer yields an empty key (len 0) from
 * ZG_KEYSRC_BEARER, so it is rejected rather than skipped. */
zg_keysrc zg_auth_pick(const zg_auth_input *in, const char **key, size_t *len);
/* Gather the inputs from a request and pick (see zg_auth_pick). */
zg_keysrc zg_auth_from_req(const zg_req *r, char *qbuf, size_t qbuflen, const char **key, size_t *len);
/* True when key has our format: "ck_" followed by 32..125 base64url characters. */
bool zg_auth_key_wellformed(const char *key, size_t len);
/* SHA-256 of the key as 64 lower-case hex digits (+ NUL). */
void zg_auth_hash(const char *key, size_t len, char hex[65]);
/* p[0..n) as 2n lower-case hex digits + NUL into out (at least 2n + 1 bytes). */
void zg_auth_hex(const unsigned char *p, size_t n, char *out);
/* A new reference from OpenSSL's RNG: prefix + 24 lower-case hex digits (96 random bits), into
 * out[cap]. 0, or -1 when the RNG failed or it does not fit. */
int zg_auth_random_id(const char *prefix, char *out, size_t cap);
#define ZG_TOKEN_CHARS 43          /* base64url of ZG_KEY_RANDOM_BYTES, no padding */
/* A new secret token from OpenSSL's RNG: tag (at most 8 bytes, e.g. "ck_") + ZG_TOKEN_CHARS
 * base64url characters, into out[cap] (cap >= strlen(tag) + ZG_TOKEN_CHARS + 1). 0 or -1. */
int zg_auth_token(const char *tag, char *out, size_t cap);
/* Make a new key from OpenSSL's RNG into key[ZG_KEY_LEN + 1] and its display prefix into
 * prefix[ZG_KEY_PREFIX_LEN + 1]. 0 or -1 if the RNG failed. */
int zg_auth_generate(char key[ZG_KEY_LEN + 1], char prefix[ZG_KEY_PREFIX_LEN + 1]);

/* The authenticated caller. */
typedef struct zg_principal {
    int64_t user_id;
    int64_t key_id;
    int plan_rank; /* ZG_PLAN_* */
} zg_principal;

/* Take the key from r and look it up (one round trip). On success fills *who and returns 0.
 * Otherwise answers 401 (or 503 when the database is unreachable) in r's protocol and returns -1. */
int zg_auth_require(zg_req *r, zg_principal *who);
/* Like zg_auth_require when the request carries a key; with no key at all, succeeds anonymously
 * (who->user_id = 0). */
int zg_auth_optional(zg_req *r, zg_principal *who);
/* Before the request body is read: is the key with this hash one we know? Keys seen valid in the last
 * minute pass at once; others are looked up (one round trip). An unknown or revoked key is answered
 * 401 in r's protocol (-1), so its body is never read or parsed. When the database cannot be asked,
 * the request goes on (0): admission decides. *user_id gets the key's user (0 when the database
 * could not be asked). Thread-safe. */
int zg_auth_screen(zg_req *r, const char hex[65], int64_t *user_id);
/* Note that the key with this hash was just found valid (by admission). */
void zg_auth_remember(const char hex[65], int64_t user_id);
/* Find the key in r and hash it without touching the database. Returns 0 with hex filled, or
 * answers 401 in r's protocol and returns -1 (missing or malformed key). */
int zg_auth_key_hash(zg_req *r, char hex[65]);

#endif
