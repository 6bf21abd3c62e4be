/* zenn-admin invite create, user reset-password: what the customer portal needs from the operator. */
#include "admin.h"

static const char SQL_INVITE_ADD[] =
    "INSERT INTO invites (code_hash, note, expires_at) VALUES (?, ?, NOW(3) + INTERVAL ? DAY)";

int cmd_invite_create(app *a, const args *g)
{
    const char *note = opt(g, "note"), *days_s = opt(g, "days");
    int64_t days = 14;
    if (note && !valid_text(note, 100))
        return bad_usage(g, "bad --note (1 to 100 bytes, no control characters)");
    if (days_s && zg_parse_i64(days_s, strlen(days_s), 1, 3650, &days) != 0)
        return bad_usage(g, "bad --days '%s' (1 to 3650)", days_s);
    if (!app_db(a, g))
        return RC_FAIL;
    char code[3 + ZG_TOKEN_CHARS + 1], hash[65];
    if (zg_auth_token("zi_", code, sizeof code) != 0)
        return fail(g, "the random number generator failed");
    zg_auth_hash(code, strlen(code), hash);
    zg_val p[] = {ZG_STR(hash), ZG_STR(note ? note : ""), ZG_INT(days)};
    int rc = query(a, SQL_INVITE_ADD, p, 3, NULL, NULL) == 0 ? RC_OK : db_fail(a, g, "storing the invitation");
    if (rc == RC_OK) {
        printf("%s\n", code);
        fflush(stdout);
        fprintf(stderr, "invitation code valid for %lld days, for one sign-up (shown once)\n", (long long)days);
    }
    OPENSSL_cleanse(code, sizeof code);
    return rc;
}

static const char SQL_RESET_ADD[] =
    "INSERT INTO password_resets (token_hash, user_id, expires_at) VALUES (?, ?, NOW(3) + INTERVAL 1 HOUR)";

int cmd_user_reset_password(app *a, const args *g)
{
    const char *email = g->pos[0];
    if (!app_db(a, g))
        return RC_FAIL;
    int64_t uid;
    int rc = find_user(a, g, email, &uid);
    if (rc != RC_OK)
        return rc;
    char token[3 + ZG_TOKEN_CHARS + 1], hash[65];
    if (zg_auth_token("zr_", token, sizeof token) != 0)
        return fail(g, "the random number generator failed");
    zg_auth_hash(token, strlen(token), hash);
    zg_val p[] = {ZG_STR(hash), ZG_INT(uid)};
    rc = query(a, SQL_RESET_ADD, p, 2, NULL, NULL) == 0 ? RC_OK : db_fail(a, g, "storing the reset link");
    if (rc == RC_OK) {
        const char *base = a->settings.portal_url; /* without a trailing slash */
        printf("%s/reset?token=%s\n", base, token);
        fflush(stdout);
        fprintf(stderr, "one-time link for %s, valid for 1 hour%s\n", email,
                base[0] ? "" : " (set [portal] url to print the full address)");
    }
    OPENSSL_cleanse(token, sizeof token);
    return rc;
}
