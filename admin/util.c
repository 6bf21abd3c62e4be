/* zenn-admin plumbing: failures and usage errors, the database connection, queries, option and
 * value parsing, user and key lookups. */
#include "admin.h"

_Noreturn void oom(void)
{
    fputs("zenn-admin: out of memory\n", stderr);
    exit(RC_FAIL);
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom();
    return q;
}

char *xstrndup(const char *s, size_t n)
{
    char *d = xrealloc(NULL, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void vmsg(const args *g, const char *fmt, va_list ap)
{
    fputs("zenn-admin: ", stderr);
    if (g && g->verb) {
        fputs(g->verb->noun, stderr);
        if (g->verb->verb)
            fprintf(stderr, " %s", g->verb->verb);
        fputs(": ", stderr);
    }
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

/* Report a failure of a well-formed command; returns RC_FAIL. */
__attribute__((format(printf, 2, 3))) int fail(const args *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(g, fmt, ap);
    va_end(ap);
    return RC_FAIL;
}

/* Report bad usage (including a malformed value); returns RC_USAGE. */
__attribute__((format(printf, 2, 3))) int bad_usage(const args *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(g, fmt, ap);
    va_end(ap);
    if (g && g->verb)
        fprintf(stderr, "usage: zenn-admin %s%s%s %s\n(see 'zenn-admin %s%s%s --help')\n", g->verb->noun,
                g->verb->verb ? " " : "", g->verb->verb ? g->verb->verb : "", g->verb->synopsis, g->verb->noun,
                g->verb->verb ? " " : "", g->verb->verb ? g->verb->verb : "");
    return RC_USAGE;
}

int db_fail(const app *a, const args *g, const char *what)
{
    return fail(g, "%s: database error %u: %s", what, zg_db_errno(a->db), zg_db_error(a->db));
}

/* Load the settings and connect, once. NULL after reporting the problem. */
zg_db *app_db(app *a, const args *g)
{
    if (a->db)
        return a->db;
    char err[600];
    if (zg_settings_load(&a->settings, a->config_path, err, sizeof err) != 0) {
        fail(g, "configuration: %s", err);
        return NULL;
    }
    zg_db_global_init();
    /* operator commands may run long statements (migrations): a longer wait than the programs' */
    if (a->settings.db_timeout < 600)
        a->settings.db_timeout = 600;
    a->db = zg_db_new(&a->settings);
    if (!a->db)
        oom();
    if (zg_db_connect(a->db) != 0) {
        const zg_settings *s = &a->settings;
        fail(g, "cannot connect to database '%s' at %s%s (config %s): %s", s->db_name,
             s->db_socket[0] ? "socket " : "host ", s->db_socket[0] ? s->db_socket : s->db_host, s->path,
             zg_db_error(a->db));
        return NULL;
    }
    return a->db;
}

/* ---------------------------------------------------------------------------- result rows */

const char *opt(const args *g, const char *name)
{
    for (int i = 0; i < g->nopt; i++)
        if (strlen(name) == g->opt[i].nlen && strncmp(name, g->opt[i].name, g->opt[i].nlen) == 0)
            return g->opt[i].value;
    return NULL;
}

/* Dollars: digits with an optional '.' and up to 6 decimals; no sign, exponent or blanks. */
bool parse_usd(const char *s, int64_t *micros)
{
    /* zg_parse_usd_micros takes "-0.5" as 0.5: insist on a leading digit or '.' here */
    if (!s || !((*s >= '0' && *s <= '9') || *s == '.'))
        return false;
    return zg_parse_usd_micros(s, micros) == 0;
}

bool printable_ascii(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* Roughly an e-mail address: printable ASCII without blanks, at most 254 bytes, exactly one '@'
 * with something on both sides, and a domain that neither starts nor ends with a dot. */
bool valid_email(const char *s)
{
    if (!printable_ascii(s, 254))
        return false;
    const char *at = strchr(s, '@');
    if (!at || strchr(at + 1, '@') || at == s || at[1] == '\0' || at - s > 64)
        return false;
    return at[1] != '.' && s[strlen(s) - 1] != '.';
}

/* Letters, digits and the characters in extra; 1..max bytes. */
bool valid_ident(const char *s, size_t max, const char *extra)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr(extra, c)))
            return false;
    }
    return true;
}

/* Free text for names: 1..max bytes, no control characters (UTF-8 is allowed). */
bool valid_text(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < ' ' || (unsigned char)s[i] == 0x7f)
            return false;
    return true;
}

#define KEY_PREFIX_CHARS "_-"

/* "YYYY-MM-DD" or "YYYY-MM-DD HH:MM:SS" (or with 'T'), normalised into out. */
bool parse_since(const char *s, char out[20])
{
    size_t n = strlen(s);
    if (n != 10 && n != 19)
        return false;
    static const char pattern[] = "dddd-dd-dd dd:dd:dd";
    for (size_t i = 0; i < n; i++) {
        char p = pattern[i], c = s[i];
        if (p == 'd' ? !(c >= '0' && c <= '9') : p == ' ' ? (c != ' ' && c != 'T') : c != p)
            return false;
    }
    int64_t year, mon, day, hh = 0, mm = 0, ss = 0;
    zg_parse_i64(s, 4, 0, 9999, &year);
    zg_parse_i64(s + 5, 2, 0, 99, &mon);
    zg_parse_i64(s + 8, 2, 0, 99, &day);
    if (n == 19) {
        zg_parse_i64(s + 11, 2, 0, 99, &hh);
        zg_parse_i64(s + 14, 2, 0, 99, &mm);
        zg_parse_i64(s + 17, 2, 0, 99, &ss);
    }
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (year < 1000 || mon < 1 || mon > 12 || day < 1 || day > mdays[mon - 1] || (mon == 2 && day == 29 && !leap) ||
        hh > 23 || mm > 59 || ss > 59)
        return false;
    snprintf(out, 20, "%.10s %s", s, n == 19 ? s + 11 : "00:00:00");
    return true;
}

/* ---------------------------------------------------------------------------- lookups */

const char SQL_USER_ID[] = "SELECT id FROM users WHERE email = ?";

/* The user's id, or a reported failure (RC_FAIL). */
int find_user(app *a, const args *g, const char *email, int64_t *id)
{
    zg_val p[] = {ZG_STR(email)};
    if (query_i64(a, SQL_USER_ID, p, 1, 0, id) != 0)
        return db_fail(a, g, "looking up the user");
    if (*id <= 0)
        return fail(g, "no user with e-mail '%s' (see 'zenn-admin user list')", email);
    return RC_OK;
}

/* A key's display prefix as 'key list' shows it: "ck_" and 9 base64url characters. */
int check_prefix(const args *g, const char *prefix)
{
    if (strncmp(prefix, "ck_", 3) != 0 || !valid_ident(prefix, 16, KEY_PREFIX_CHARS))
        return bad_usage(g, "'%s' is not a key prefix (like ck_AbCdEfGhJ, as 'key list' shows)", prefix);
    return RC_OK;
}

static const char SQL_KEY_FIND[] = "SELECT k.id, k.status, k.revoked_at, u.email, k.spend_limit, k.spent, k.prefix"
                                   " FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.prefix = ?";

/* The key with exactly this prefix, as a one-row rowset of SQL_KEY_FIND; or a reported failure.
 * (The column compares case-insensitively; prefixes are case-sensitive base64url.) */
int find_key(app *a, const args *g, const char *prefix, rowset *key)
{
    zg_val p[] = {ZG_STR(prefix)};
    if (query(a, SQL_KEY_FIND, p, 1, key, NULL) != 0)
        return db_fail(a, g, "looking up the key");
    if (key->n == 0 || strcmp(rs_str(key, 0, 6), prefix) != 0) {
        rs_free(key);
        return fail(g, "no key with prefix '%s'", prefix);
    }
    return RC_OK;
}
