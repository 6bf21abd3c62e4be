/* libFuzzer harness: key and header extraction. The input is split at NUL bytes into the five key
 * sources plus a query string; the picked key must lie inside its source, the format check must
 * agree with a plain reimplementation, and query decoding must stay in bounds. */
#include "zg_auth.h"
#include "zg_req.h"
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static bool wellformed_ref(const char *k, size_t n)
{
    if (n < 35 || n > ZG_KEY_MAX_LEN || strncmp(k, "ck_", 3) != 0)
        return false;
    for (size_t i = 3; i < n; i++)
        if (!isalnum((unsigned char)k[i]) && k[i] != '-' && k[i] != '_')
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    const char *field[6] = {NULL, NULL, NULL, NULL, NULL, NULL};
    size_t nf = 0;
    const char *p = copy;
    while (nf < 6 && p <= copy + size) {
        field[nf++] = (*p == '\x01') ? NULL : p; /* a leading 0x01 stands for an absent source */
        p += strlen(p) + 1;
    }
    zg_auth_input in = {field[0], field[1], field[2], field[3], field[4]};
    const char *key;
    size_t len;
    zg_keysrc src = zg_auth_pick(&in, &key, &len);
    if (src != ZG_KEYSRC_NONE) {
        const char *from = src == ZG_KEYSRC_X_API_KEY           ? in.x_api_key
                           : src == ZG_KEYSRC_BEARER            ? in.authorization
                           : src == ZG_KEYSRC_ANTHROPIC_API_KEY ? in.anthropic_api_key
                           : src == ZG_KEYSRC_X_GOOG_API_KEY    ? in.x_goog_api_key
                                                                : in.query_key;
        if (!from || !key || key < from || key + len > from + strlen(from))
            abort();
        if (zg_auth_key_wellformed(key, len) != wellformed_ref(key, len))
            abort();
        char hex[65];
        zg_auth_hash(key, len, hex);
        if (strlen(hex) != 64)
            abort();
    } else if (key || len) {
        abort();
    }
    if (field[5]) {
        zg_req r;
        memset(&r, 0, sizeof r);
        r.query = field[5];
        char out[ZG_KEY_MAX_LEN + 2];
        int n = zg_req_query_get(&r, "key", out, sizeof out);
        if (n >= 0 && ((size_t)n >= sizeof out || out[n] != '\0'))
            abort();
        char tiny[1];
        n = zg_req_query_get(&r, "alt", tiny, sizeof tiny);
        if (n > 0)
            abort();
    }
    free(copy);
    return 0;
}
