#include "zg_auth.h"
#include "zg_db.h"
#include "zg_err.h"
#include "zg_log.h"
#include <ctype.h>
#include <pthread.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>
#include <strings.h>

static void trimmed(const char *s, const char **out, size_t *len)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    *out = s;
    *len = n;
}

static bool nonempty(const char *s)
{
    if (!s)
        return false;
    while (*s == ' ' || *s == '\t')
        s++;
    return *s != '\0';
}

zg_keysrc zg_auth_pick(const zg_auth_input *in, const char **key, size_t *len)
{
    *key = NULL;
    *len = 0;
    if (nonempty(in->x_api_key)) {
        trimmed(in->x_api_key, key, len);
        return ZG_KEYSRC_X_API_KEY;
    }
    if (nonempty(in->authorization)) {
        const char *a;
        size_t n;
        trimmed(in->authorization, &a, &n);
        if (n > 7 && strncasecmp(a, "bearer", 6) == 0 && (a[6] == ' ' || a[6] == '\t')) {
            const char *k = a + 7;
            while (*k == ' ' || *k == '\t')
                k++;
            *key = k;
            *len = n - (size_t)(k - a);
        } else {
            *key = a;
            *len = 0;
        }
        return ZG_KEYSRC_BEARER;
    }
    if (nonempty(in->anthropic_api_key)) {
        trimmed(in->anthropic_api_key, key, len);
        return ZG_KEYSRC_ANTHROPIC_API_KEY;
    }
    if (nonempty(in->x_goog_api_key)) {
        trimmed(in->x_goog_api_key, key, len);
        return ZG_KEYSRC_X_GOOG_API_KEY;
    }
    if (nonempty(in->query_key)) {
        trimmed(in->query_key, key, len);
        return ZG_KEYSRC_QUERY;
    }
    return ZG_KEYSRC_NONE;
}

zg_keysrc zg_auth_from_req(const zg_req *r, char *qbuf, size_t qbuflen, const char **key, size_t *len)
{
    zg_auth_input in = {
        .x_api_key = zg_req_header(r, "x-api-key"),
        .authorization = zg_req_header(r, "authorization"),
        .anthropic_api_key = zg_req_header(r, "anthropic-api-key"),
        .x_goog_api_key = zg_req_header(r, "x-goog-api-key"),
        .query_key = NULL,
    };
    /* ?key= only where Gemini clients need it (a key in a URL ends up in logs and histories) */
    int q = r->proto == ZG_PROTO_GEMINI ? zg_req_query_get(r, "key", qbuf, qbuflen) : -1;
    if (q >= 0)
        in.query_key = qbuf;
    else if (q == ZG_E_TOOBIG && qbuflen > 1) {
        /* an overlong ?key= is still a key attempt: make it fail the format check */
        memset(qbuf, 'x', qbuflen - 1);
        qbuf[qbuflen - 1] = '\0';
        in.query_key = qbuf;
    }
    return zg_auth_pick(&in, key, len);
}

bool zg_auth_key_wellformed(const char *key, size_t len)
{
    if (len < 3 + 32 || len > ZG_KEY_MAX_LEN || memcmp(key, "ck_", 3) != 0)
        return false;
    for (size_t i = 3; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (!isalnum(c) && c != '-' && c != '_')
            return false;
    }
    return true;
}

void zg_auth_hex(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

void zg_auth_hash(const char *key, size_t len, char hex[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(key, len, md, &mdlen, EVP_sha256(), NULL);
    zg_auth_hex(md, sizeof md, hex);
    OPENSSL_cleanse(md, sizeof md); /* the digest of a secret (a key, a token, a password) */
}

int zg_auth_random_id(const char *prefix, char *out, size_t cap)
{
    unsigned char rnd[12];
    size_t o = strlen(prefix);
    if (cap < o + 2 * sizeof rnd + 1 || RAND_bytes(rnd, sizeof rnd) != 1)
        return -1;
    memcpy(out, prefix, o);
    zg_auth_hex(rnd, sizeof rnd, out + o);
    return 0;
}

int zg_auth_token(const char *tag, char *out, size_t cap)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = strlen(tag);
    if (o > 8 || cap < o + ZG_TOKEN_CHARS + 1)
        return -1;
    unsigned char rnd[ZG_KEY_RANDOM_BYTES + 1];
    if (RAND_bytes(rnd, ZG_KEY_RANDOM_BYTES) != 1)
        return -1;
    rnd[ZG_KEY_RANDOM_BYTES] = 0;
    memcpy(out, tag, o);
    /* 32 bytes -> 43 base64url characters (10 full groups + 2 bytes) */
    for (size_t i = 0; i < ZG_KEY_RANDOM_BYTES; i += 3) {
        unsigned v = (unsigned)rnd[i] << 16 | (unsigned)(i + 1 < ZG_KEY_RANDOM_BYTES ? rnd[i + 1] : 0) << 8 |
                     (unsigned)(i + 2 < ZG_KEY_RANDOM_BYTES ? rnd[i + 2] : 0);
        size_t chars = i + 3 <= ZG_KEY_RANDOM_BYTES ? 4 : (ZG_KEY_RANDOM_BYTES - i) + 1;
        for (size_t j = 0; j < chars; j++)
            out[o++] = b64[(v >> (18 - 6 * j)) & 63];
    }
    out[o] = '\0';
    OPENSSL_cleanse(rnd, sizeof rnd);
    return 0;
}

int zg_auth_generate(char key[ZG_KEY_LEN + 1], char prefix[ZG_KEY_PREFIX_LEN + 1])
{
    if (zg_auth_token("ck_", key, ZG_KEY_LEN + 1) != 0 || strlen(key) != ZG_KEY_LEN)
        return -1;
    memcpy(prefix, key, ZG_KEY_PREFIX_LEN);
    prefix[ZG_KEY_PREFIX_LEN] = '\0';
    return 0;
}

int zg_auth_key_hash(zg_req *r, char hex[65])
{
    char qbuf[ZG_KEY_MAX_LEN + 2];
    const char *key;
    size_t len;
    zg_keysrc src = zg_auth_from_req(r, qbuf, sizeof qbuf, &key, &len);
    if (src == ZG_KEYSRC_NONE)
        return zg_err_reply(r, ZG_ERR_AUTH,
                            "Missing API key: send your ck_ key in the x-api-key header or as "
                            "'Authorization: Bearer ck_...'"), -1;
    if (!zg_auth_key_wellformed(key, len))
        return zg_err_reply(r, ZG_ERR_AUTH, "Invalid API key: keys look like ck_ followed by 43 characters"), -1;
    zg_auth_hash(key, len, hex);
    return 0;
}

static const char SQL_AUTH[] = "CALL zg_auth(?)";

/* The one key lookup: row gets code (0 found, 401), user_id, key_id, plan_rank. 0, or -1 when the
 * database could not be asked. */
static int lookup(zg_req *r, const char *hex, int64_t row[4])
{
    row[0] = -1;
    row[1] = row[2] = row[3] = 0;
    zg_val p[1] = {ZG_STR(hex)};
    return zg_db_run(r->db, SQL_AUTH, p, 1, zg_db_row_ints, &(zg_ints){row, 4}, NULL);
}

int zg_auth_require(zg_req *r, zg_principal *who)
{
    char hex[65];
    if (zg_auth_key_hash(r, hex) != 0)
        return -1;
    int64_t row[4];
    if (lookup(r, hex, row) != 0) {
        zg_error("auth lookup failed: %s", zg_db_error(r->db));
        return zg_err_reply(r, ZG_ERR_UNAVAILABLE, "The service is temporarily unavailable; retry shortly"), -1;
    }
    if (row[0] != 0)
        return zg_err_reply(r, ZG_ERR_AUTH, "Invalid API key: unknown or revoked"), -1;
    who->user_id = row[1];
    who->key_id = row[2];
    who->plan_rank = (int)row[3];
    return 0;
}

int zg_auth_optional(zg_req *r, zg_principal *who)
{
    char qbuf[ZG_KEY_MAX_LEN + 2];
    const char *key;
    size_t len;
    if (zg_auth_from_req(r, qbuf, sizeof qbuf, &key, &len) == ZG_KEYSRC_NONE) {
        who->user_id = who->key_id = 0;
        who->plan_rank = 0;
        return 0;
    }
    return zg_auth_require(r, who);
}

/* Keys seen valid lately, so the usual request is not looked up twice (here and at admission): a
 * small table of hashes with the time they were last known good. Staleness is harmless: admission
 * checks the key again. */
#define KNOWN_SLOTS 4096
#define KNOWN_TTL_S 60
static struct {
    char hash[65];
    time_t at;
    int64_t user;
} known[KNOWN_SLOTS];
static pthread_mutex_t known_mu = PTHREAD_MUTEX_INITIALIZER;

static size_t known_slot(const char *hex)
{
    size_t h = 0;
    for (int i = 0; i < 16; i++)
        h = h * 16 + (size_t)(hex[i] <= '9' ? hex[i] - '0' : hex[i] - 'a' + 10);
    return h % KNOWN_SLOTS;
}

void zg_auth_remember(const char hex[65], int64_t user_id)
{
    size_t i = known_slot(hex);
    pthread_mutex_lock(&known_mu);
    memcpy(known[i].hash, hex, 65);
    known[i].at = time(NULL);
    known[i].user = user_id;
    pthread_mutex_unlock(&known_mu);
}

int zg_auth_screen(zg_req *r, const char hex[65], int64_t *user_id)
{
    size_t i = known_slot(hex);
    pthread_mutex_lock(&known_mu);
    bool seen = strcmp(known[i].hash, hex) == 0 && time(NULL) - known[i].at < KNOWN_TTL_S;
    *user_id = seen ? known[i].user : 0;
    pthread_mutex_unlock(&known_mu);
    if (seen)
        return 0;
    int64_t row[4];
    if (lookup(r, hex, row) != 0)
        return 0; /* the database is away: admission decides (a leased key may still be served) */
    if (row[0] != 0)
        return zg_err_reply(r, ZG_ERR_AUTH, "Invalid API key: unknown or revoked"), -1;
    *user_id = row[1];
    zg_auth_remember(hex, row[1]);
    return 0;
}
