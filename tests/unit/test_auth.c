#include "zg_auth.h"
#include "tap.h"

#define K "ck_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ"

int main(void)
{
    static const struct {
        const char *what;
        zg_auth_input in;
        zg_keysrc src;
        const char *key; /* expected key text; "" for an empty key */
    } picks[] = {
        {"nothing", {0}, ZG_KEYSRC_NONE, NULL},
        {"x-api-key", {.x_api_key = K}, ZG_KEYSRC_X_API_KEY, K},
        {"bearer", {.authorization = "Bearer " K}, ZG_KEYSRC_BEARER, K},
        {"bearer lower-case scheme", {.authorization = "bearer " K}, ZG_KEYSRC_BEARER, K},
        {"bearer extra blanks", {.authorization = "  Bearer    " K "  "}, ZG_KEYSRC_BEARER, K},
        {"basic auth is not a key", {.authorization = "Basic Zm9vOmJhcg=="}, ZG_KEYSRC_BEARER, ""},
        {"bare bearer", {.authorization = "Bearer"}, ZG_KEYSRC_BEARER, ""},
        {"anthropic-api-key", {.anthropic_api_key = K}, ZG_KEYSRC_ANTHROPIC_API_KEY, K},
        {"x-goog-api-key", {.x_goog_api_key = K}, ZG_KEYSRC_X_GOOG_API_KEY, K},
        {"query key", {.query_key = K}, ZG_KEYSRC_QUERY, K},
        {"x-api-key wins over bearer", {.x_api_key = "ck_first", .authorization = "Bearer ck_second"},
         ZG_KEYSRC_X_API_KEY, "ck_first"},
        {"bearer wins over anthropic-api-key", {.authorization = "Bearer ck_b", .anthropic_api_key = "ck_a"},
         ZG_KEYSRC_BEARER, "ck_b"},
        {"anthropic-api-key wins over goog", {.anthropic_api_key = "ck_a", .x_goog_api_key = "ck_g"},
         ZG_KEYSRC_ANTHROPIC_API_KEY, "ck_a"},
        {"goog wins over query", {.x_goog_api_key = "ck_g", .query_key = "ck_q"}, ZG_KEYSRC_X_GOOG_API_KEY, "ck_g"},
        {"empty x-api-key is skipped", {.x_api_key = "  ", .authorization = "Bearer ck_b"}, ZG_KEYSRC_BEARER,
         "ck_b"},
        {"x-api-key trimmed", {.x_api_key = " " K "\t"}, ZG_KEYSRC_X_API_KEY, K},
    };
    for (size_t i = 0; i < sizeof picks / sizeof picks[0]; i++) {
        const char *key;
        size_t len;
        zg_keysrc src = zg_auth_pick(&picks[i].in, &key, &len);
        is_int(src, picks[i].src, "pick source: %s", picks[i].what);
        if (picks[i].key) {
            char got[256] = "";
            if (key && len < sizeof got) {
                memcpy(got, key, len);
                got[len] = '\0';
            }
            is_str(got, picks[i].key, "pick key: %s", picks[i].what);
        }
    }

    static const struct {
        const char *key;
        bool ok;
    } fmt[] = {
        {K, true},
        {"ck_short", false},
        {"sk_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ", false},
        {"CK_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ", false},
        {"ck_abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQ", false},
        {"ck_abcdefghijklmnopqrstuvwxyz'ABCDEFGHIJKLMNOPQ", false},
        {"ck_abcdefghijklmnopqrstuvwxyz\"ABCDEFGHIJKLMNOP", false},
        {"ck_abcdefghijklmnopqrstuvwxyz-_CDEFGHIJKLMNOPQ", true},
        {"ck_0123456789012345678901234567890", false},
        {"ck_01234567890123456789012345678901", true},
        {"", false},
        {"ck_", false},
    };
    for (size_t i = 0; i < sizeof fmt / sizeof fmt[0]; i++)
        is_int(zg_auth_key_wellformed(fmt[i].key, strlen(fmt[i].key)), fmt[i].ok, "format case %zu", i);
    char longkey[200];
    memset(longkey, 'a', sizeof longkey);
    memcpy(longkey, "ck_", 3);
    is_int(zg_auth_key_wellformed(longkey, sizeof longkey), false, "overlong key refused");
    is_int(zg_auth_key_wellformed("ck_abcdefghijklmnopqrstuvwxyzAB\0DEFGHIJKLMNOPQ", 46), false,
           "NUL inside key refused");

    char hex[65];
    zg_auth_hash("abc", 3, hex);
    is_str(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "sha-256 of 'abc'");
    zg_auth_hash("", 0, hex);
    is_str(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "sha-256 of ''");

    char k1[ZG_KEY_LEN + 1], k2[ZG_KEY_LEN + 1], p1[ZG_KEY_PREFIX_LEN + 1], p2[ZG_KEY_PREFIX_LEN + 1];
    is_int(zg_auth_generate(k1, p1), 0, "generate key");
    is_int(zg_auth_generate(k2, p2), 0, "generate second key");
    is_int(strlen(k1), ZG_KEY_LEN, "generated key length");
    ok(zg_auth_key_wellformed(k1, strlen(k1)), "generated key is well-formed");
    ok(strcmp(k1, k2) != 0, "two keys differ");
    ok(strncmp(k1, p1, ZG_KEY_PREFIX_LEN) == 0 && strlen(p1) == ZG_KEY_PREFIX_LEN, "prefix is the key's start");
    return tap_done();
}
