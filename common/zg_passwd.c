#include "zg_passwd.h"
#include "zg_auth.h"
#include "zg_buf.h"
#include <crypt.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

/* A yescrypt setting used to spend the same time when there is no hash to check against. */
static const char DUMMY_SETTING[] = "$y$j9T$2Zc0Ivq1JWnL7Bq6D8Xb3.";

const char *zg_passwd_weakness(const char *pw, size_t len)
{
    if (len < ZG_PASSWD_MIN)
        return "the password must be at least 10 characters long";
    if (len > ZG_PASSWD_MAX)
        return "the password must be at most 1,024 bytes long";
    if (memchr(pw, '\0', len))
        return "the password must not contain a NUL byte";
    if (zg_utf8_check(pw, len) != len)
        return "the password is not valid UTF-8";
    return NULL;
}

/* crypt_rn into a heap struct crypt_data (32 KiB: too big for a worker's stack); the result is
 * copied to out[ZG_PASSWD_HASH_MAX]. 0 or -1. */
static int run_crypt(const char *ph, const char *setting, char *out)
{
    struct crypt_data *d = calloc(1, sizeof *d);
    if (!d)
        return -1;
    const char *h = crypt_rn(ph, setting, d, (int)sizeof *d);
    int rc = -1;
    if (h && h[0] != '*' && strlen(h) < ZG_PASSWD_HASH_MAX) {
        memcpy(out, h, strlen(h) + 1);
        rc = 0;
    }
    OPENSSL_cleanse(d, sizeof *d);
    free(d);
    return rc;
}

int zg_passwd_hash(const char *pw, size_t len, char *out)
{
    char setting[CRYPT_GENSALT_OUTPUT_SIZE], ph[65];
    if (!crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof setting))
        return -1;
    zg_auth_hash(pw, len, ph); /* crypt sees the SHA-256 as hex: any length fits its input */
    int rc = run_crypt(ph, setting, out);
    OPENSSL_cleanse(ph, sizeof ph);
    return rc;
}

bool zg_passwd_check(const char *pw, size_t len, const char *stored)
{
    char ph[65], got[ZG_PASSWD_HASH_MAX];
    bool real = stored && strncmp(stored, "$y$", 3) == 0 && strlen(stored) < ZG_PASSWD_HASH_MAX;
    zg_auth_hash(pw, len, ph); /* crypt sees the SHA-256 as hex: any length fits its input */
    int rc = run_crypt(ph, real ? stored : DUMMY_SETTING, got);
    OPENSSL_cleanse(ph, sizeof ph);
    if (rc != 0 || !real)
        return false;
    size_t n = strlen(stored);
    return strlen(got) == n && CRYPTO_memcmp(got, stored, n) == 0;
}
