/*
 * zenn-admin: the operator's command-line tool for zenn-gateway.
 *
 *   zenn-admin [--config PATH] NOUN [VERB] [ARGS...] [--OPTIONS]
 *
 * The configuration comes from --config PATH (accepted before or after the command), else
 * $ZENN_CONFIG, else the compiled-in default. Every statement that carries operator input is a
 * prepared statement with parameters; the text protocol is used only for the SQL embedded at build
 * time (schema migrations and the model catalog).
 *
 * Exit status: 0 success; 1 the command was well-formed but failed (unknown user, key or model,
 * duplicate, database or configuration error); 2 bad usage (unknown command or option, wrong
 * number of arguments, malformed value such as a bad USD amount, plan or e-mail address).
 *
 * Money: 1 credit = 1 micro-dollar of list price. USD amounts are parsed exactly into micro-dollars
 * (at most 6 decimals); a top-up grants USD x 1e6 x the plan's multiplier credits.
 */
#include "zg_auth.h"
#include "zg_billing.h"
#include "zg_catalog.h"
#include "zg_config.h"
#include "zg_db.h"
#include "zg_log.h"
#include "zg_num.h"

#include <inttypes.h>
#include <json.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* The embedded SQL texts (admin/sql_embed.c, generated from sql/ by admin/embed.sh). */
extern const char zg_sql_schema[];
extern const char zg_sql_catalog[];
extern const char zg_sql_migrate_2[];
extern const char zg_sql_migrate_3[];

#ifndef ZG_SYSCONFDIR
#define ZG_SYSCONFDIR "/usr/local/etc"
#endif

enum { RC_OK = 0, RC_FAIL = 1, RC_USAGE = 2 };

/* Forward migrations: each is applied once, in order, when the database is below its version. To
 * change the schema, append {N + 1, "what", zg_sql_migration_N_plus_1} (embedded like the schema);
 * never edit an entry that has shipped. */
static const struct migration {
    int version;
    const char *name;
    const char *sql;
} MIGRATIONS[] = {
    {1, "initial schema", zg_sql_schema},
    {2, "leases and batched settlement", zg_sql_migrate_2},
    {3, "holds for what a request can cost, long-context tiers, rate-limit recalls, idempotent money calls",
     zg_sql_migrate_3},
};
#define N_MIGRATIONS ((int)(sizeof MIGRATIONS / sizeof MIGRATIONS[0]))

/* ============================================================================ plumbing */

typedef struct app {
    const char *config_path; /* NULL: $ZENN_CONFIG, else the default */
    zg_settings settings;
    zg_db *db; /* opened on first use */
} app;

struct verb;

#define MAX_POS 4
#define MAX_OPTS 16

/* A parsed command line: positional arguments and --options, in the order given. */
typedef struct args {
    const struct verb *verb;
    int npos;
    const char *pos[MAX_POS];
    int nopt;
    struct {
        const char *name; /* points into argv; nlen bytes */
        size_t nlen;
        const char *value; /* "" for a flag */
    } opt[MAX_OPTS];
} args;

typedef int (*cmd_fn)(app *a, const args *g);

/* One command. verb is NULL for one-word commands (topup, balance, usage, reap). opts lists the
 * accepted options separated by spaces; a trailing '=' means the option takes a value. */
typedef struct verb {
    const char *noun, *verb;
    cmd_fn fn;
    int min_pos, max_pos;
    const char *opts;
    const char *synopsis;
    const char *summary;
    const char *help;
} verb;

static _Noreturn void oom(void)
{
    fputs("zenn-admin: out of memory\n", stderr);
    exit(RC_FAIL);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom();
    return q;
}

static char *xstrndup(const char *s, size_t n)
{
    char *d = xrealloc(NULL, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static void vmsg(const args *g, const char *fmt, va_list ap)
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
__attribute__((format(printf, 2, 3))) static int fail(const args *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(g, fmt, ap);
    va_end(ap);
    return RC_FAIL;
}

/* Report bad usage (including a malformed value); returns RC_USAGE. */
__attribute__((format(printf, 2, 3))) static int bad_usage(const args *g, const char *fmt, ...)
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

static int db_fail(const app *a, const args *g, const char *what)
{
    return fail(g, "%s: database error %u: %s", what, zg_db_errno(a->db), zg_db_error(a->db));
}

/* Load the settings and connect, once. NULL after reporting the problem. */
static zg_db *app_db(app *a, const args *g)
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

/* Every row of a query, copied (NULL cells stay NULL). */
typedef struct rowset {
    int ncols;
    size_t n, cap;
    char **cell;
} rowset;

static int rs_collect(void *ctx, int ncols, char **vals, const size_t *lens)
{
    rowset *r = ctx;
    if (r->n == 0)
        r->ncols = ncols;
    if (ncols != r->ncols)
        return 0; /* a later result set of another shape */
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->cell = xrealloc(r->cell, r->cap * (size_t)ncols * sizeof *r->cell);
    }
    for (int i = 0; i < ncols; i++)
        r->cell[r->n * (size_t)ncols + (size_t)i] = vals[i] ? xstrndup(vals[i], lens[i]) : NULL;
    r->n++;
    return 0;
}

static void rs_free(rowset *r)
{
    for (size_t i = 0; i < r->n * (size_t)r->ncols; i++)
        free(r->cell[i]);
    free(r->cell);
    memset(r, 0, sizeof *r);
}

static const char *rs_str(const rowset *r, size_t row, int col)
{
    return row < r->n && col < r->ncols ? r->cell[row * (size_t)r->ncols + (size_t)col] : NULL;
}

/* The cell as an integer; 0 when NULL or not an integer. */
static int64_t rs_i64(const rowset *r, size_t row, int col)
{
    int64_t v = 0;
    const char *s = rs_str(r, row, col);
    if (s && zg_parse_i64z(s, INT64_MIN, INT64_MAX, &v) != 0)
        v = 0;
    return v;
}

/* Run a prepared statement; rows (if rs) are collected into a fresh *rs. 0 or -1. */
static int query(app *a, const char *sql, const zg_val *p, int np, rowset *rs, int64_t *affected)
{
    if (rs)
        memset(rs, 0, sizeof *rs);
    return zg_db_run(a->db, sql, p, np, rs ? rs_collect : NULL, rs, affected);
}

/* A single integer answer (first column of the first row); def when there is no row. */
static int query_i64(app *a, const char *sql, const zg_val *p, int np, int64_t def, int64_t *out)
{
    rowset rs;
    if (query(a, sql, p, np, &rs, NULL) != 0)
        return -1;
    *out = rs.n && rs_str(&rs, 0, 0) ? rs_i64(&rs, 0, 0) : def;
    rs_free(&rs);
    return 0;
}

/* ---------------------------------------------------------------------------- output */

typedef char numbuf[32];

static const char *fmt_usd(int64_t micros, numbuf b)
{
    zg_fmt_usd(micros, b, sizeof(numbuf));
    return b;
}

/* Dollars with trailing zeros trimmed to at least 2 decimals ("15.00", "0.0028"); still exact. */
static const char *fmt_usd_short(int64_t micros, numbuf b)
{
    zg_fmt_usd(micros, b, sizeof(numbuf));
    size_t l = strlen(b);
    char *dot = strchr(b, '.');
    while (dot && l > (size_t)(dot - b) + 3 && b[l - 1] == '0')
        b[--l] = '\0';
    return b;
}

static json_object *j_usd(int64_t micros)
{
    numbuf b;
    return json_object_new_string(fmt_usd(micros, b));
}

static void j_print(json_object *o)
{
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
}

/* How a result column is shown: C_INT as a number; C_USD (micro-dollars or credits) as "12.500000";
 * C_PRICE like C_USD but trimmed in tables; C_BOOL as true/false ("yes"/"" in tables); C_PLAN a
 * plan rank as its name; C_TIME a DATETIME(3), without milliseconds in tables. SQL NULL is JSON
 * null, and in tables `none` (default "-"), as is an empty C_STR. */
typedef enum { C_STR, C_INT, C_USD, C_PRICE, C_BOOL, C_PLAN, C_TIME } col_type;

typedef struct col {
    int idx; /* column of the rowset */
    col_type type;
    const char *json; /* key in --json objects, or NULL */
    const char *head; /* table header, or NULL */
    const char *none;
} col;

static json_object *col_json(const rowset *r, size_t i, const col *c)
{
    const char *s = rs_str(r, i, c->idx);
    int64_t v = rs_i64(r, i, c->idx);
    if (!s)
        return NULL;
    switch (c->type) {
    case C_INT: return json_object_new_int64(v);
    case C_USD:
    case C_PRICE: return j_usd(v);
    case C_BOOL: return json_object_new_boolean(v != 0);
    case C_PLAN: return json_object_new_string(zg_plan_name((int)v));
    default: return json_object_new_string(s);
    }
}

static const char *col_text(const rowset *r, size_t i, const col *c, numbuf b)
{
    const char *s = rs_str(r, i, c->idx);
    int64_t v = rs_i64(r, i, c->idx);
    if (!s || (c->type == C_STR && !*s))
        return c->none ? c->none : "-";
    switch (c->type) {
    case C_USD: return fmt_usd(v, b);
    case C_PRICE: return fmt_usd_short(v, b);
    case C_BOOL: return v ? "yes" : "";
    case C_PLAN: return zg_plan_name((int)v);
    case C_TIME: snprintf(b, sizeof(numbuf), "%.19s", s); return b;
    default: return s;
    }
}

/* The rows as a JSON array of objects with the columns that have a json key. */
static json_object *rows_json(const rowset *r, const col *cols, int ncols)
{
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < r->n; i++) {
        json_object *o = json_object_new_object();
        for (int c = 0; c < ncols; c++)
            if (cols[c].json)
                json_object_object_add(o, cols[c].json, col_json(r, i, &cols[c]));
        json_object_array_add(arr, o);
    }
    return arr;
}

/* The rows as an aligned table of the columns that have a header, numbers right-aligned. */
static void rows_table(const rowset *r, const col *cols, int ncols, const char *indent)
{
    size_t w[32] = {0};
    numbuf b;
    ncols = ncols > 32 ? 32 : ncols;
    for (int c = 0; c < ncols; c++)
        for (size_t i = 0; cols[c].head && i <= r->n; i++) {
            size_t l = strlen(i == 0 ? cols[c].head : col_text(r, i - 1, &cols[c], b));
            w[c] = l > w[c] ? l : w[c];
        }
    int last = 0;
    for (int c = 0; c < ncols; c++)
        last = cols[c].head ? c : last;
    for (size_t i = 0; i <= r->n; i++) {
        const char *sep = indent;
        for (int c = 0; c <= last; c++) {
            if (!cols[c].head)
                continue;
            const char *s = i == 0 ? cols[c].head : col_text(r, i - 1, &cols[c], b);
            bool right = cols[c].type == C_INT || cols[c].type == C_USD || cols[c].type == C_PRICE;
            printf("%s%*s", sep, right ? (int)w[c] : c == last ? 0 : -(int)w[c], s);
            sep = "  ";
        }
        putchar('\n');
    }
}

/* ---------------------------------------------------------------------------- validation */

static const char *opt(const args *g, const char *name)
{
    for (int i = 0; i < g->nopt; i++)
        if (strlen(name) == g->opt[i].nlen && strncmp(name, g->opt[i].name, g->opt[i].nlen) == 0)
            return g->opt[i].value;
    return NULL;
}

/* Dollars: digits with an optional '.' and up to 6 decimals; no sign, exponent or blanks. */
static bool parse_usd(const char *s, int64_t *micros)
{
    /* zg_parse_usd_micros takes "-0.5" as 0.5: insist on a leading digit or '.' here */
    if (!s || !((*s >= '0' && *s <= '9') || *s == '.'))
        return false;
    return zg_parse_usd_micros(s, micros) == 0;
}

static bool printable_ascii(const char *s, size_t max)
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
static bool valid_email(const char *s)
{
    if (!printable_ascii(s, 254))
        return false;
    const char *at = strchr(s, '@');
    if (!at || strchr(at + 1, '@') || at == s || at[1] == '\0' || at - s > 64)
        return false;
    return at[1] != '.' && s[strlen(s) - 1] != '.';
}

/* Letters, digits and the characters in extra; 1..max bytes. */
static bool valid_ident(const char *s, size_t max, const char *extra)
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
static bool valid_text(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < ' ' || (unsigned char)s[i] == 0x7f)
            return false;
    return true;
}

#define MODEL_ID_CHARS "._-:@+"
#define ALIAS_CHARS "._-:@+/"
#define KEY_PREFIX_CHARS "_-"

/* "YYYY-MM-DD" or "YYYY-MM-DD HH:MM:SS" (or with 'T'), normalised into out. */
static bool parse_since(const char *s, char out[20])
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

static const char SQL_USER_ID[] = "SELECT id FROM users WHERE email = ?";

/* The user's id, or a reported failure (RC_FAIL). */
static int find_user(app *a, const args *g, const char *email, int64_t *id)
{
    zg_val p[] = {ZG_STR(email)};
    if (query_i64(a, SQL_USER_ID, p, 1, 0, id) != 0)
        return db_fail(a, g, "looking up the user");
    if (*id <= 0)
        return fail(g, "no user with e-mail '%s' (see 'zenn-admin user list')", email);
    return RC_OK;
}

/* A key's display prefix as 'key list' shows it: "ck_" and 9 base64url characters. */
static int check_prefix(const args *g, const char *prefix)
{
    if (strncmp(prefix, "ck_", 3) != 0 || !valid_ident(prefix, 16, KEY_PREFIX_CHARS))
        return bad_usage(g, "'%s' is not a key prefix (like ck_AbCdEfGhJ, as 'key list' shows)", prefix);
    return RC_OK;
}

static const char SQL_KEY_FIND[] = "SELECT k.id, k.status, k.revoked_at, u.email, k.spend_limit, k.spent, k.prefix"
                                   " FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.prefix = ?";

/* The key with exactly this prefix, as a one-row rowset of SQL_KEY_FIND; or a reported failure.
 * (The column compares case-insensitively; prefixes are case-sensitive base64url.) */
static int find_key(app *a, const args *g, const char *prefix, rowset *key)
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

static const char SQL_MODEL_EXISTS[] = "SELECT COUNT(*) FROM models WHERE id = ?";

/* ============================================================================ db */

typedef int (*stmt_fn)(void *ud, const char *sql, size_t len, int line);

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return false;
    return true;
}

/* Split a SQL script into statements the way the mariadb client does: statements end with the
 * current delimiter (";" until a "DELIMITER xx" line changes it) outside quotes and comments;
 * "-- ", "#" and non-executable block comments are dropped; blank statements are skipped. Calls
 * fn with each statement and the line it starts on. 0, or -1 with a message in err (or fn's -1). */
static int sql_split(const char *sql, stmt_fn fn, void *ud, char *err, size_t errlen)
{
    char delim[16] = ";";
    size_t dlen = 1, n = strlen(sql), i = 0;
    size_t cap = n + 1, len = 0;
    char *cur = xrealloc(NULL, cap);
    int line = 1, start = 1, rc = 0;
    bool bol = true;
    while (i < n && rc == 0) {
        if (bol) {
            bol = false;
            size_t j = i;
            while (j < n && (sql[j] == ' ' || sql[j] == '\t'))
                j++;
            if (n - j >= 9 && strncasecmp(sql + j, "delimiter", 9) == 0 &&
                (j + 9 == n || sql[j + 9] == ' ' || sql[j + 9] == '\t' || sql[j + 9] == '\r' || sql[j + 9] == '\n')) {
                if (!blank(cur, len)) {
                    snprintf(err, errlen, "line %d: DELIMITER inside an unterminated statement", line);
                    rc = -1;
                    break;
                }
                j += 9;
                while (j < n && (sql[j] == ' ' || sql[j] == '\t'))
                    j++;
                size_t k = j;
                while (k < n && sql[k] != ' ' && sql[k] != '\t' && sql[k] != '\r' && sql[k] != '\n')
                    k++;
                if (k == j || k - j >= sizeof delim) {
                    snprintf(err, errlen, "line %d: bad DELIMITER", line);
                    rc = -1;
                    break;
                }
                memcpy(delim, sql + j, k - j);
                delim[k - j] = '\0';
                dlen = k - j;
                len = 0;
                while (k < n && sql[k] != '\n')
                    k++;
                i = k; /* the newline is handled below */
                continue;
            }
        }
        char c = sql[i];
        if (c == '\n') {
            line++;
            bol = true;
            cur[len++] = c;
            i++;
            continue;
        }
        if (blank(cur, len))
            start = line;
        if ((c == '-' && i + 2 <= n && sql[i + 1] == '-' &&
             (i + 2 == n || sql[i + 2] == ' ' || sql[i + 2] == '\t' || sql[i + 2] == '\r' || sql[i + 2] == '\n')) ||
            c == '#') {
            while (i < n && sql[i] != '\n')
                i++;
            continue;
        }
        if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
            const char *end = strstr(sql + i + 2, "*/");
            if (!end) {
                snprintf(err, errlen, "line %d: unterminated comment", line);
                rc = -1;
                break;
            }
            bool executable = i + 2 < n && sql[i + 2] == '!'; /* kept, delimiters inside ignored */
            for (const char *q = sql + i; q < end + 2; q++) {
                line += *q == '\n';
                if (executable)
                    cur[len++] = *q;
            }
            if (!executable)
                cur[len++] = ' ';
            i = (size_t)(end - sql) + 2;
            continue;
        }
        if (c == '\'' || c == '"' || c == '`') {
            size_t j = i + 1;
            for (;;) {
                if (j >= n) {
                    snprintf(err, errlen, "line %d: unterminated %c quote", line, c);
                    rc = -1;
                    break;
                }
                if (sql[j] == '\\' && c != '`' && j + 1 < n) {
                    j += 2;
                    continue;
                }
                if (sql[j] == c) {
                    if (j + 1 < n && sql[j + 1] == c) {
                        j += 2;
                        continue;
                    }
                    break;
                }
                j++;
            }
            if (rc)
                break;
            for (size_t q = i; q <= j; q++) {
                line += sql[q] == '\n';
                cur[len++] = sql[q];
            }
            i = j + 1;
            continue;
        }
        if (strncmp(sql + i, delim, dlen) == 0) {
            if (!blank(cur, len))
                rc = fn(ud, cur, len, start);
            len = 0;
            i += dlen;
            continue;
        }
        cur[len++] = c;
        i++;
    }
    if (rc == 0 && !blank(cur, len))
        rc = fn(ud, cur, len, start);
    free(cur);
    return rc;
}

struct exec_ctx {
    app *a;
    const args *g;
    const char *what;
};

static int exec_statement(void *ud, const char *sql, size_t len, int line)
{
    struct exec_ctx *x = ud;
    if (zg_db_exec_text(x->a->db, sql, len) == 0)
        return 0;
    fail(x->g, "%s, statement at line %d: database error %u: %s", x->what, line, zg_db_errno(x->a->db),
         zg_db_error(x->a->db));
    return -1;
}

/* Run every statement of an embedded script. RC_OK or RC_FAIL (reported). */
static int run_script(app *a, const args *g, const char *what, const char *sql)
{
    struct exec_ctx x = {a, g, what};
    char err[256] = "";
    if (sql_split(sql, exec_statement, &x, err, sizeof err) != 0)
        return err[0] ? fail(g, "%s: %s", what, err) : RC_FAIL;
    return RC_OK;
}

static const char SQL_HAS_SCHEMA[] = "SELECT COUNT(*) FROM information_schema.tables"
                                     " WHERE table_schema = DATABASE() AND table_name = 'schema_version'";
static const char SQL_SCHEMA_VERSION[] = "SELECT COALESCE(MAX(version), 0) FROM schema_version";

/* The database's schema version (0 for an empty database). 0 or -1. */
static int schema_version(app *a, int64_t *v)
{
    int64_t has = 0;
    if (query_i64(a, SQL_HAS_SCHEMA, NULL, 0, 0, &has) != 0)
        return -1;
    *v = 0;
    return has ? query_i64(a, SQL_SCHEMA_VERSION, NULL, 0, 0, v) : 0;
}

static const char SQL_LOCK[] = "SELECT GET_LOCK('zenn-gateway.migrate', 60)";
static const char SQL_UNLOCK[] = "SELECT RELEASE_LOCK('zenn-gateway.migrate')";
static const char SQL_RECORD_VERSION[] = "INSERT IGNORE INTO schema_version (version) VALUES (?)";
static const char SQL_COUNT_MODELS[] = "SELECT COUNT(*) FROM models";

static int migrate_locked(app *a, const args *g)
{
    int64_t cur;
    if (schema_version(a, &cur) != 0)
        return db_fail(a, g, "reading the schema version");
    int latest = MIGRATIONS[N_MIGRATIONS - 1].version;
    if (cur > latest)
        return fail(g, "the database is at schema version %" PRId64 ", newer than this zenn-admin knows (%d);"
                       " upgrade zenn-admin",
                    cur, latest);
    for (int i = 0; i < N_MIGRATIONS; i++) {
        const struct migration *m = &MIGRATIONS[i];
        if (m->version <= cur)
            continue;
        char what[96];
        snprintf(what, sizeof what, "migration %d (%s)", m->version, m->name);
        if (run_script(a, g, what, m->sql) != RC_OK)
            return RC_FAIL;
        zg_val p[] = {ZG_INT(m->version)};
        if (query(a, SQL_RECORD_VERSION, p, 1, NULL, NULL) != 0)
            return db_fail(a, g, "recording the schema version");
        printf("applied migration %d (%s)\n", m->version, m->name);
        cur = m->version;
    }
    if (run_script(a, g, "loading the model catalog", zg_sql_catalog) != RC_OK)
        return RC_FAIL;
    int64_t models = 0;
    if (query_i64(a, SQL_COUNT_MODELS, NULL, 0, 0, &models) != 0)
        return db_fail(a, g, "counting models");
    printf("schema at version %" PRId64 "; catalog: %" PRId64 " models\n", cur, models);
    return RC_OK;
}

static int cmd_db_migrate(app *a, const args *g)
{
    if (!app_db(a, g))
        return RC_FAIL;
    int64_t locked = 0;
    if (query_i64(a, SQL_LOCK, NULL, 0, 0, &locked) != 0)
        return db_fail(a, g, "taking the migration lock");
    if (locked != 1)
        return fail(g, "another migration is running (lock zenn-gateway.migrate is held)");
    int rc = migrate_locked(a, g);
    query(a, SQL_UNLOCK, NULL, 0, NULL, NULL);
    return rc;
}

static const char SQL_STATUS[] =
    "SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM users WHERE status = 'active'),"
    " (SELECT COUNT(*) FROM api_keys WHERE status = 'active'), (SELECT COUNT(*) FROM api_keys WHERE status = 'revoked'),"
    " (SELECT COUNT(*) FROM models), (SELECT COUNT(*) FROM models WHERE status = 'live'),"
    " (SELECT COUNT(*) FROM model_aliases), (SELECT COUNT(*) FROM topups),"
    " (SELECT COALESCE(SUM(usd_micros), 0) FROM topups), (SELECT COUNT(*) FROM usage_log),"
    " (SELECT COUNT(*) FROM usage_log WHERE status = 'pending'),"
    " (SELECT COUNT(*) FROM usage_log WHERE status = 'pending' AND created_at < NOW(3) - INTERVAL ? SECOND),"
    " (SELECT version FROM catalog_version WHERE id = 1)";

static const char SQL_STATUS_LEASES[] = "SELECT COUNT(*) FROM leases";
static const char SQL_STATUS_LEASED[] = "SELECT COALESCE(SUM(credits), 0) FROM leases";

static int cmd_db_status(app *a, const args *g)
{
    if (!app_db(a, g))
        return RC_FAIL;
    const zg_settings *s = &a->settings;
    int64_t ver;
    if (schema_version(a, &ver) != 0)
        return db_fail(a, g, "reading the schema version");
    int latest = MIGRATIONS[N_MIGRATIONS - 1].version;
    printf("database:        %s at %s %s\n", s->db_name, s->db_socket[0] ? "socket" : "host",
           s->db_socket[0] ? s->db_socket : s->db_host);
    if (ver == 0) {
        printf("schema version:  none (empty database)\n");
        return fail(g, "the schema is not installed: run 'zenn-admin db migrate'");
    }
    printf("schema version:  %" PRId64 "%s\n", ver,
           ver < latest ? " (migrations pending: run 'zenn-admin db migrate')"
                        : ver > latest ? " (newer than this zenn-admin)" : " (current)");
    rowset r;
    zg_val p[] = {ZG_INT(s->reap_after)};
    if (query(a, SQL_STATUS, p, 1, &r, NULL) != 0)
        return db_fail(a, g, "counting");
    numbuf b;
    printf("catalog version: %" PRId64 "\n", rs_i64(&r, 0, 12));
    printf("users:           %" PRId64 " (%" PRId64 " active)\n", rs_i64(&r, 0, 0), rs_i64(&r, 0, 1));
    printf("api keys:        %" PRId64 " active, %" PRId64 " revoked\n", rs_i64(&r, 0, 2), rs_i64(&r, 0, 3));
    printf("models:          %" PRId64 " (%" PRId64 " live), %" PRId64 " aliases\n", rs_i64(&r, 0, 4),
           rs_i64(&r, 0, 5), rs_i64(&r, 0, 6));
    printf("top-ups:         %" PRId64 " (%s USD in total)\n", rs_i64(&r, 0, 7), fmt_usd(rs_i64(&r, 0, 8), b));
    printf("usage rows:      %" PRId64 "\n", rs_i64(&r, 0, 9));
    printf("pending:         %" PRId64 " (%" PRId64 " older than %ds%s)\n", rs_i64(&r, 0, 10), rs_i64(&r, 0, 11),
           s->reap_after, rs_i64(&r, 0, 11) ? ": run 'zenn-admin reap'" : "");
    rs_free(&r);
    if (ver >= 2) {
        int64_t lv[2] = {0, 0};
        if (query_i64(a, SQL_STATUS_LEASES, NULL, 0, 0, &lv[0]) == 0 &&
            query_i64(a, SQL_STATUS_LEASED, NULL, 0, 0, &lv[1]) == 0)
            printf("leases:          %" PRId64 " held by gateway processes (%s USD of list price)\n", lv[0],
                   fmt_usd(lv[1], b));
    }
    return RC_OK;
}

/* ============================================================================ users */

static const char SQL_USER_ADD[] = "INSERT INTO users (email) VALUES (?)";

static int cmd_user_add(app *a, const args *g)
{
    const char *email = g->pos[0];
    if (!valid_email(email))
        return bad_usage(g, "'%s' is not a valid e-mail address", email);
    if (!app_db(a, g))
        return RC_FAIL;
    zg_val p[] = {ZG_STR(email)};
    if (query(a, SQL_USER_ADD, p, 1, NULL, NULL) != 0) {
        if (zg_db_errno(a->db) == 1062)
            return fail(g, "a user with e-mail '%s' already exists", email);
        return db_fail(a, g, "adding the user");
    }
    int64_t id = 0;
    if (query_i64(a, SQL_USER_ID, p, 1, 0, &id) != 0)
        return db_fail(a, g, "reading the new user");
    printf("added user %s (id %" PRId64 ")\n", email, id);
    return RC_OK;
}

static const char SQL_USER_LIST[] =
    "SELECT u.id, u.email, u.status, zg_plan_rank(u.id), u.balance, u.held,"
    " (SELECT COUNT(*) FROM api_keys k WHERE k.user_id = u.id AND k.status = 'active'), u.created_at"
    " FROM users u ORDER BY u.id";

static int cmd_user_list(app *a, const args *g)
{
    static const col cols[] = {
        {0, C_INT, "id", "ID", NULL},          {1, C_STR, "email", "EMAIL", NULL},
        {2, C_STR, "status", "STATUS", NULL},  {3, C_PLAN, "plan", "PLAN", NULL},
        {4, C_INT, "credits", "CREDITS", NULL}, {5, C_INT, "held", "HELD", NULL},
        {6, C_INT, "active_keys", "KEYS", NULL}, {7, C_TIME, "created_at", "CREATED", NULL},
    };
    if (!app_db(a, g))
        return RC_FAIL;
    rowset r;
    if (query(a, SQL_USER_LIST, NULL, 0, &r, NULL) != 0)
        return db_fail(a, g, "listing users");
    if (opt(g, "json"))
        j_print(rows_json(&r, cols, 8));
    else
        rows_table(&r, cols, 8, "");
    rs_free(&r);
    return RC_OK;
}

/* ============================================================================ money */

static const char SQL_TOPUP[] = "CALL zg_topup(?, ?, ?, ?, ?)";

static int cmd_topup(app *a, const args *g)
{
    const char *email = g->pos[0], *plan_s = g->pos[1], *usd_s = g->pos[2];
    int plan = zg_plan_parse(plan_s);
    if (plan < 0)
        return bad_usage(g, "unknown plan '%s' (expected pro, max or enterprise)", plan_s);
    int64_t usd;
    if (!parse_usd(usd_s, &usd) || usd <= 0)
        return bad_usage(g, "bad USD amount '%s' (expected a positive decimal like 20 or 12.50, at most 6 decimals)",
                         usd_s);
    if (!app_db(a, g))
        return RC_FAIL;
    int64_t uid;
    int rc = find_user(a, g, email, &uid);
    if (rc != RC_OK)
        return rc;
    int mult = zg_plan_multiplier(plan);
    const char *plan_name = zg_plan_name(plan);
    /* the reference makes the grant safe to repeat: the same reference grants once */
    char ref[65];
    const char *ref_opt = opt(g, "ref");
    if (ref_opt) {
        if (!valid_ident(ref_opt, 64, "_-.:/#"))
            return bad_usage(g, "bad --ref '%s' (1 to 64 of A-Z a-z 0-9 _ - . : / #)", ref_opt);
        snprintf(ref, sizeof ref, "%s", ref_opt);
    } else {
        unsigned char rnd[12];
        if (RAND_bytes(rnd, sizeof rnd) != 1)
            return fail(g, "no random bytes for a top-up reference");
        int k = snprintf(ref, sizeof ref, "admin-");
        for (size_t i = 0; i < sizeof rnd; i++)
            k += snprintf(ref + k, sizeof ref - (size_t)k, "%02x", rnd[i]);
    }
    zg_val p[] = {ZG_INT(uid), ZG_STR(plan_name), ZG_INT(usd), ZG_INT(mult), ZG_STR(ref)};
    rowset r;
    if (query(a, SQL_TOPUP, p, 5, &r, NULL) != 0) {
        fprintf(stderr, "zenn-admin: the outcome is unknown: run the same command with --ref %s again, it grants "
                        "at most once\n", ref);
        return db_fail(a, g, "granting the top-up");
    }
    if (r.n == 0 || r.ncols < 4) {
        rs_free(&r);
        return fail(g, "zg_topup returned no result");
    }
    numbuf b1, b2;
    if (rs_i64(&r, 0, 0) == 1)
        printf("already granted: reference %s is lot #%" PRId64 " (%" PRId64 " credits); nothing added\n", ref,
               rs_i64(&r, 0, 1), rs_i64(&r, 0, 2));
    else
        printf("granted %" PRId64 " credits to %s (%s plan: %s USD x%d, lot #%" PRId64 ", reference %s)\n",
               rs_i64(&r, 0, 2), email, plan_name, fmt_usd(usd, b1), mult, rs_i64(&r, 0, 1), ref);
    printf("balance: %" PRId64 " credits (%s USD at list price)\n", rs_i64(&r, 0, 3), fmt_usd(rs_i64(&r, 0, 3), b2));
    rs_free(&r);
    return RC_OK;
}

static const char SQL_BALANCE[] = "SELECT balance, held, zg_plan_rank(id) FROM users WHERE id = ?";
static const char SQL_LOTS[] = "SELECT id, plan, multiplier, credits_granted, credits_remaining, usd_micros, created_at"
                               " FROM topups WHERE user_id = ? ORDER BY id";

static int cmd_balance(app *a, const args *g)
{
    static const col lot_cols[] = {
        {0, C_INT, NULL, "LOT", NULL},
        {1, C_STR, "plan", "PLAN", NULL},
        {2, C_INT, "multiplier", "MULT", NULL},
        {3, C_INT, "credits_granted", "GRANTED", NULL},
        {4, C_INT, "credits_remaining", "REMAINING", NULL},
        {5, C_USD, "usd", "PAID USD", NULL},
        {6, C_TIME, NULL, "CREATED", NULL},
    };
    const char *email = g->pos[0];
    if (!app_db(a, g))
        return RC_FAIL;
    int64_t uid;
    int rc = find_user(a, g, email, &uid);
    if (rc != RC_OK)
        return rc;
    zg_val p[] = {ZG_INT(uid)};
    rowset u, lots;
    if (query(a, SQL_BALANCE, p, 1, &u, NULL) != 0)
        return db_fail(a, g, "reading the balance");
    if (query(a, SQL_LOTS, p, 1, &lots, NULL) != 0) {
        rs_free(&u);
        return db_fail(a, g, "reading the top-ups");
    }
    int64_t credits = rs_i64(&u, 0, 0), held = rs_i64(&u, 0, 1);
    const char *plan = zg_plan_name((int)rs_i64(&u, 0, 2));
    if (opt(g, "json")) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "email", json_object_new_string(email));
        json_object_object_add(o, "credits", json_object_new_int64(credits));
        json_object_object_add(o, "held", json_object_new_int64(held));
        json_object_object_add(o, "plan", json_object_new_string(plan));
        json_object_object_add(o, "lots", rows_json(&lots, lot_cols, 7));
        j_print(o);
    } else {
        numbuf b1, b2, b3;
        printf("user:       %s\nplan:       %s\n", email, plan);
        printf("credits:    %" PRId64 " (%s USD at list price)\n", credits, fmt_usd(credits, b1));
        printf("held:       %" PRId64 " (%s USD, reserved by requests in flight)\n", held, fmt_usd(held, b2));
        printf("available:  %" PRId64 " (%s USD)\n", credits - held, fmt_usd(credits - held, b3));
        printf("top-ups:%s\n", lots.n ? "" : "    none");
        if (lots.n)
            rows_table(&lots, lot_cols, 7, "  ");
    }
    rs_free(&u);
    rs_free(&lots);
    return RC_OK;
}

static const char SQL_USAGE[] =
    "SELECT * FROM (SELECT request_id, created_at, model, surface, provider, status, end_reason, credits,"
    " cash_micros, input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens,"
    " reasoning_tokens, units, estimated, upstream_status, ttfb_ms, duration_ms, id"
    " FROM usage_log WHERE user_id = ? AND created_at >= ? ORDER BY created_at DESC, id DESC LIMIT ?) t"
    " ORDER BY created_at, id";

static int cmd_usage(app *a, const args *g)
{
    static const col cols[] = {
        {1, C_TIME, NULL, "CREATED", NULL},
        {0, C_STR, "request_id", "REQUEST", NULL},
        {1, C_STR, "created_at", NULL, NULL},
        {2, C_STR, "model", "MODEL", NULL},
        {3, C_STR, "surface", NULL, NULL},
        {4, C_STR, "provider", NULL, NULL},
        {5, C_STR, "status", "STATUS", NULL},
        {6, C_STR, "end_reason", "END", NULL},
        {7, C_INT, "credits", "CREDITS", NULL},
        {8, C_INT, "cash_micros", NULL, NULL},
        {8, C_USD, NULL, "CASH USD", NULL},
        {9, C_INT, "input_tokens", "IN", NULL},
        {10, C_INT, "output_tokens", "OUT", NULL},
        {11, C_INT, "cache_read_tokens", "CACHE-R", NULL},
        {12, C_INT, "cache_write_5m_tokens", NULL, NULL},
        {13, C_INT, "cache_write_1h_tokens", NULL, NULL},
        {14, C_INT, "reasoning_tokens", NULL, NULL},
        {15, C_INT, "units", NULL, NULL},
        {16, C_BOOL, "estimated", "EST", NULL},
        {17, C_INT, "upstream_status", NULL, NULL},
        {18, C_INT, "ttfb_ms", NULL, NULL},
        {19, C_INT, "duration_ms", NULL, NULL},
    };
    const int ncols = (int)(sizeof cols / sizeof cols[0]);
    const char *email = g->pos[0];
    char since[20] = "1000-01-01 00:00:00";
    const char *s = opt(g, "since");
    if (s && !parse_since(s, since))
        return bad_usage(g, "bad --since '%s' (expected YYYY-MM-DD or 'YYYY-MM-DD HH:MM:SS')", s);
    int64_t limit = 100;
    if ((s = opt(g, "limit")) && zg_parse_i64z(s, 1, 1000000, &limit) != 0)
        return bad_usage(g, "bad --limit '%s' (expected 1 to 1000000)", s);
    if (!app_db(a, g))
        return RC_FAIL;
    int64_t uid;
    int rc = find_user(a, g, email, &uid);
    if (rc != RC_OK)
        return rc;
    zg_val p[] = {ZG_INT(uid), ZG_STR(since), ZG_INT(limit)};
    rowset r;
    if (query(a, SQL_USAGE, p, 3, &r, NULL) != 0)
        return db_fail(a, g, "reading usage");
    if (opt(g, "json")) {
        j_print(rows_json(&r, cols, ncols));
    } else {
        rows_table(&r, cols, ncols, "");
        int64_t credits = 0, cash = 0;
        for (size_t i = 0; i < r.n; i++) {
            credits += rs_i64(&r, i, 7);
            cash += rs_i64(&r, i, 8);
        }
        numbuf b1, b2;
        printf("%zu request%s: %" PRId64 " credits (%s USD at list price), %s USD of top-up money\n", r.n,
               r.n == 1 ? "" : "s", credits, fmt_usd(credits, b1), fmt_usd(cash, b2));
    }
    rs_free(&r);
    return RC_OK;
}

/* ============================================================================ keys */

static const char SQL_KEY_ADD[] =
    "INSERT INTO api_keys (user_id, key_hash, prefix, name, spend_limit) VALUES (?, ?, ?, ?, ?)";

static int cmd_key_create(app *a, const args *g)
{
    const char *email = g->pos[0], *name = opt(g, "name"), *lim = opt(g, "limit-usd");
    if (name && !valid_text(name, 100))
        return bad_usage(g, "bad --name (1 to 100 bytes, no control characters)");
    int64_t limit = -1;
    if (lim && !parse_usd(lim, &limit))
        return bad_usage(g, "bad --limit-usd '%s' (expected a decimal like 5 or 2.50, at most 6 decimals)", lim);
    if (!app_db(a, g))
        return RC_FAIL;
    int64_t uid;
    int rc = find_user(a, g, email, &uid);
    if (rc != RC_OK)
        return rc;
    char key[ZG_KEY_LEN + 1], prefix[ZG_KEY_PREFIX_LEN + 1], hash[65];
    rc = RC_FAIL;
    for (int attempt = 0; attempt < 5; attempt++) {
        if (zg_auth_generate(key, prefix) != 0) {
            fail(g, "the random number generator failed");
            break;
        }
        zg_auth_hash(key, strlen(key), hash);
        zg_val p[] = {ZG_INT(uid), ZG_STR(hash), ZG_STR(prefix), ZG_STR(name ? name : ""),
                      limit >= 0 ? ZG_INT(limit) : ZG_NULLV};
        if (query(a, SQL_KEY_ADD, p, 5, NULL, NULL) == 0) {
            rc = RC_OK;
            break;
        }
        if (zg_db_errno(a->db) != 1062) { /* a prefix (or hash) collision: draw again */
            db_fail(a, g, "storing the key");
            break;
        }
    }
    if (rc == RC_OK) {
        printf("%s\n", key);
        fflush(stdout);
        fprintf(stderr, "key %s\xe2\x80\xa6 created for %s (shown once; store it now)\n", prefix, email);
    } else if (zg_db_errno(a->db) == 1062) {
        fail(g, "could not draw an unused key prefix");
    }
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(hash, sizeof hash);
    return rc;
}

static const char SQL_KEY_LIST[] = "SELECT prefix, name, status, spend_limit, spent, held, created_at, last_used_at,"
                                   " revoked_at FROM api_keys WHERE user_id = ? ORDER BY id";

static int cmd_key_list(app *a, const args *g)
{
    static const col cols[] = {
        {0, C_STR, "prefix", "PREFIX", NULL},
        {1, C_STR, "name", "NAME", NULL},
        {2, C_STR, "status", "STATUS", NULL},
        {3, C_USD, "limit_usd", "LIMIT USD", "none"},
        {3, C_INT, "limit_credits", NULL, NULL},
        {4, C_USD, "spent_usd", "SPENT USD", NULL},
        {4, C_INT, "spent_credits", NULL, NULL},
        {5, C_INT, "held_credits", NULL, NULL},
        {6, C_TIME, "created_at", "CREATED", NULL},
        {7, C_TIME, "last_used_at", "LAST USED", "never"},
        {8, C_TIME, "revoked_at", NULL, NULL},
    };
    const char *email = g->pos[0];
    if (!app_db(a, g))
        return RC_FAIL;
    int64_t uid;
    int rc = find_user(a, g, email, &uid);
    if (rc != RC_OK)
        return rc;
    zg_val p[] = {ZG_INT(uid)};
    rowset r;
    if (query(a, SQL_KEY_LIST, p, 1, &r, NULL) != 0)
        return db_fail(a, g, "listing keys");
    if (opt(g, "json"))
        j_print(rows_json(&r, cols, 11));
    else
        rows_table(&r, cols, 11, "");
    rs_free(&r);
    return RC_OK;
}

static const char SQL_KEY_REVOKE[] =
    "UPDATE api_keys SET status = 'revoked', revoked_at = NOW(3) WHERE id = ? AND status = 'active'";

static int cmd_key_revoke(app *a, const args *g)
{
    const char *prefix = g->pos[0];
    int rc = check_prefix(g, prefix);
    if (rc != RC_OK)
        return rc;
    if (!app_db(a, g))
        return RC_FAIL;
    rowset k;
    rc = find_key(a, g, prefix, &k);
    if (rc != RC_OK)
        return rc;
    zg_val p[] = {ZG_INT(rs_i64(&k, 0, 0))};
    int64_t n = 0;
    if (query(a, SQL_KEY_REVOKE, p, 1, NULL, &n) != 0)
        rc = db_fail(a, g, "revoking the key");
    else if (n == 0)
        rc = fail(g, "key %s is already revoked (since %s)", prefix,
                  rs_str(&k, 0, 2) ? rs_str(&k, 0, 2) : "an unknown time");
    else
        printf("revoked key %s of %s\n", prefix, rs_str(&k, 0, 3));
    rs_free(&k);
    return rc;
}

static const char SQL_KEY_LIMIT[] = "UPDATE api_keys SET spend_limit = ? WHERE id = ?";

static int cmd_key_limit(app *a, const args *g)
{
    const char *prefix = g->pos[0], *lim = g->pos[1];
    int64_t limit = -1;
    int rc = check_prefix(g, prefix);
    if (rc != RC_OK)
        return rc;
    if (strcmp(lim, "none") != 0 && !parse_usd(lim, &limit))
        return bad_usage(g, "bad limit '%s' (expected USD like 5 or 2.50, or 'none')", lim);
    if (!app_db(a, g))
        return RC_FAIL;
    rowset k;
    rc = find_key(a, g, prefix, &k);
    if (rc != RC_OK)
        return rc;
    zg_val p[] = {limit >= 0 ? ZG_INT(limit) : ZG_NULLV, ZG_INT(rs_i64(&k, 0, 0))};
    if (query(a, SQL_KEY_LIMIT, p, 2, NULL, NULL) != 0) {
        rs_free(&k);
        return db_fail(a, g, "setting the limit");
    }
    numbuf b1, b2;
    if (limit < 0)
        printf("key %s: no spend limit\n", prefix);
    else
        printf("key %s: spend limit %s USD (%" PRId64 " credits)\n", prefix, fmt_usd(limit, b1), limit);
    int64_t spent = rs_i64(&k, 0, 5);
    if (limit >= 0 && spent >= limit)
        fprintf(stderr, "zenn-admin: note: key %s has already spent %s USD; its requests will be refused\n", prefix,
                fmt_usd(spent, b2));
    if (strcmp(rs_str(&k, 0, 1), "active") != 0)
        fprintf(stderr, "zenn-admin: note: key %s is revoked\n", prefix);
    rs_free(&k);
    return RC_OK;
}

/* ============================================================================ models */

static const char SQL_MODEL_LIST[] =
    "SELECT m.id, m.display_name, m.provider, m.kind, m.status, m.min_plan, m.price_input, m.price_output,"
    " m.price_cache_read, m.price_cache_write_5m, m.price_cache_write_1h, m.price_unit, m.created_unix,"
    " m.sort_order, (SELECT GROUP_CONCAT(a.alias ORDER BY a.alias SEPARATOR ',') FROM model_aliases a"
    " WHERE a.model_id = m.id) FROM models m ORDER BY m.sort_order, m.id";

static int cmd_model_list(app *a, const args *g)
{
    static const col cols[] = {
        {0, C_STR, "id", "ID", NULL},          {1, C_STR, "display_name", NULL, NULL},
        {4, C_STR, "status", "STATUS", NULL},   {2, C_STR, "provider", "PROVIDER", NULL},
        {3, C_STR, "kind", "KIND", NULL},       {5, C_STR, "min_plan", "PLAN", NULL},
        {6, C_PRICE, NULL, "INPUT", NULL},      {7, C_PRICE, NULL, "OUTPUT", NULL},
        {8, C_PRICE, NULL, "C.READ", NULL},     {9, C_PRICE, NULL, "C.W5M", NULL},
        {10, C_PRICE, NULL, "C.W1H", NULL},     {11, C_PRICE, NULL, "IMAGE", NULL},
        {14, C_STR, NULL, "ALIASES", NULL},     {12, C_INT, "created_unix", NULL, NULL},
        {13, C_INT, "sort_order", NULL, NULL},
    };
    static const char *const price_keys[] = {"input", "output", "cache_read", "cache_write_5m", "cache_write_1h",
                                             "per_image"};
    if (!app_db(a, g))
        return RC_FAIL;
    rowset m;
    if (query(a, SQL_MODEL_LIST, NULL, 0, &m, NULL) != 0)
        return db_fail(a, g, "listing models");
    if (!opt(g, "json")) {
        rows_table(&m, cols, 15, "");
        printf("Prices in USD per million tokens (= credits per token); IMAGE in USD per image"
               " (x 1,000,000 = credits).\n");
        rs_free(&m);
        return RC_OK;
    }
    json_object *arr = rows_json(&m, cols, 15);
    for (size_t i = 0; i < m.n; i++) {
        json_object *o = json_object_array_get_idx(arr, i), *prices = json_object_new_object();
        for (int c = 0; c < 6; c++) {
            json_object *pr = NULL;
            if (rs_str(&m, i, 6 + c)) {
                int64_t v = rs_i64(&m, i, 6 + c);
                pr = json_object_new_object();
                json_object_object_add(pr, c == 5 ? "usd" : "usd_per_mtok", j_usd(v));
                json_object_object_add(pr, c == 5 ? "credits" : "credits_per_mtok", json_object_new_int64(v));
            }
            json_object_object_add(prices, price_keys[c], pr);
        }
        json_object_object_add(o, "prices", prices);
        json_object *aliases = json_object_new_array();
        for (const char *p = rs_str(&m, i, 14); p && *p;) {
            size_t l = strcspn(p, ",");
            json_object_array_add(aliases, json_object_new_string_len(p, (int)l));
            p += l + (p[l] == ',');
        }
        json_object_object_add(o, "aliases", aliases);
    }
    j_print(arr);
    rs_free(&m);
    return RC_OK;
}

static const char SQL_MODEL_UPDATE[] =
    "UPDATE models SET status = COALESCE(?, status), min_plan = COALESCE(?, min_plan),"
    " display_name = COALESCE(?, display_name), provider = COALESCE(?, provider), kind = COALESCE(?, kind),"
    " price_input = IF(?, ?, price_input), price_output = IF(?, ?, price_output),"
    " price_cache_read = IF(?, ?, price_cache_read), price_cache_write_5m = IF(?, ?, price_cache_write_5m),"
    " price_cache_write_1h = IF(?, ?, price_cache_write_1h), price_unit = IF(?, ?, price_unit) WHERE id = ?";
static const char SQL_MODEL_TIER[] =
    "UPDATE models SET context_window = IF(?, ?, context_window), expand_input = IF(?, ?, expand_input),"
    " long_threshold = IF(?, ?, long_threshold), long_input = IF(?, ?, long_input),"
    " long_output = IF(?, ?, long_output), long_cache_read = IF(?, ?, long_cache_read) WHERE id = ?";
static const char SQL_MODEL_INSERT[] =
    "INSERT INTO models (id, status, min_plan, display_name, provider, kind, price_input, price_output,"
    " price_cache_read, price_cache_write_5m, price_cache_write_1h, price_unit, created_unix, sort_order)"
    " SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, UNIX_TIMESTAMP(), COALESCE(MAX(sort_order), 0) + 1 FROM models";
static const char SQL_MODEL_CHECK[] =
    "SELECT status, kind, provider, price_input IS NULL OR price_output IS NULL, price_unit IS NULL"
    " FROM models WHERE id = ?";

static int cmd_model_set(app *a, const args *g)
{
    static const char *const price_opts[6] = {"input", "output", "cache-read", "cache-write-5m", "cache-write-1h",
                                              "per-image"};
    const char *id = g->pos[0];
    const char *status = opt(g, "status"), *plan_s = opt(g, "min-plan"), *display = opt(g, "display-name");
    const char *provider = opt(g, "provider"), *kind = opt(g, "kind");
    if (!valid_ident(id, 64, MODEL_ID_CHARS))
        return bad_usage(g, "bad model id '%s' (1 to 64 of A-Z a-z 0-9 %s)", id, MODEL_ID_CHARS);
    if (status && strcmp(status, "live") != 0 && strcmp(status, "coming_soon") != 0)
        return bad_usage(g, "bad --status '%s' (expected live or coming_soon)", status);
    const char *plan = NULL;
    if (plan_s) {
        int rank = zg_plan_parse(plan_s);
        if (rank < 0)
            return bad_usage(g, "bad --min-plan '%s' (expected pro, max or enterprise)", plan_s);
        plan = zg_plan_name(rank);
    }
    if (display && !valid_text(display, 128))
        return bad_usage(g, "bad --display-name (1 to 128 bytes, no control characters)");
    if (provider && !valid_ident(provider, 32, "_-"))
        return bad_usage(g, "bad --provider '%s' (1 to 32 of A-Z a-z 0-9 _ -)", provider);
    if (kind && strcmp(kind, "chat") != 0 && strcmp(kind, "image") != 0 && strcmp(kind, "video") != 0 &&
        strcmp(kind, "audio") != 0)
        return bad_usage(g, "bad --kind '%s' (expected chat, image, video or audio)", kind);
    bool given[6] = {false};
    int64_t price[6] = {0};
    bool any = status || plan || display || provider || kind;
    for (int i = 0; i < 6; i++) {
        const char *v = opt(g, price_opts[i]);
        if (!v)
            continue;
        given[i] = any = true;
        price[i] = -1; /* none: SQL NULL */
        if (strcmp(v, "none") == 0)
            continue;
        bool ok = i == 5 ? zg_parse_i64z(v, 0, INT64_MAX / 2, &price[i]) == 0 : parse_usd(v, &price[i]);
        if (!ok)
            return bad_usage(g, "bad --%s '%s' (expected %s, or 'none')", price_opts[i], v,
                             i == 5 ? "whole credits per image" : "USD per million tokens like 3 or 0.075");
    }
    /* context and long-context tier: token counts, then USD per million tokens */
    static const char *const tier_opts[6] = {"context", "expand-input", "long-threshold", "long-input",
                                             "long-output", "long-cache-read"};
    bool tgiven[6] = {false};
    int64_t tier[6] = {0};
    for (int i = 0; i < 6; i++) {
        const char *v = opt(g, tier_opts[i]);
        if (!v)
            continue;
        tgiven[i] = any = true;
        tier[i] = -1;
        if (strcmp(v, "none") == 0)
            continue;
        bool ok = i < 3 ? zg_parse_i64z(v, 1, (int64_t)1 << 40, &tier[i]) == 0 : parse_usd(v, &tier[i]);
        if (!ok)
            return bad_usage(g, "bad --%s '%s' (expected %s, or 'none')", tier_opts[i], v,
                             i < 3 ? "a whole number of tokens" : "USD per million tokens like 6 or 0.6");
    }
    if (!any)
        return bad_usage(g, "nothing to change: give at least one option");
    if (!app_db(a, g))
        return RC_FAIL;
    int64_t exists = 0;
    zg_val pid[] = {ZG_STR(id)};
    if (query_i64(a, SQL_MODEL_EXISTS, pid, 1, 0, &exists) != 0)
        return db_fail(a, g, "looking up the model");
    zg_val pv[6];
    for (int i = 0; i < 6; i++)
        pv[i] = given[i] && price[i] >= 0 ? ZG_INT(price[i]) : ZG_NULLV;
#define SV(s) ((s) ? ZG_STR(s) : ZG_NULLV)
    int64_t changed = 0;
    if (exists) {
        zg_val p[18] = {SV(status), SV(plan), SV(display), SV(provider), SV(kind)};
        for (int i = 0; i < 6; i++) {
            p[5 + 2 * i] = ZG_INT(given[i]);
            p[6 + 2 * i] = pv[i];
        }
        p[17] = ZG_STR(id);
        if (query(a, SQL_MODEL_UPDATE, p, 18, NULL, &changed) != 0)
            return db_fail(a, g, "updating the model");
        printf("model %s %s\n", id, changed ? "updated" : "unchanged");
    } else {
        if (!provider || !display)
            return fail(g, "no model '%s' (to create it, give --provider and --display-name)", id);
        const char *st = status ? status : "coming_soon";
        zg_val p[12] = {ZG_STR(id), ZG_STR(st), ZG_STR(plan ? plan : "pro"), ZG_STR(display), ZG_STR(provider),
                        ZG_STR(kind ? kind : "chat")};
        for (int i = 0; i < 6; i++)
            p[6 + i] = pv[i];
        if (query(a, SQL_MODEL_INSERT, p, 12, NULL, NULL) != 0) {
            if (zg_db_errno(a->db) == 1062)
                return fail(g, "model '%s' was created concurrently; run the command again", id);
            return db_fail(a, g, "creating the model");
        }
        printf("model %s created (%s)\n", id, st);
    }
#undef SV
    bool tier_any = false;
    zg_val pt[13];
    for (int i = 0; i < 6; i++) {
        tier_any = tier_any || tgiven[i];
        pt[2 * i] = ZG_INT(tgiven[i]);
        pt[2 * i + 1] = tgiven[i] && tier[i] >= 0 ? ZG_INT(tier[i]) : ZG_NULLV;
    }
    pt[12] = ZG_STR(id);
    if (tier_any && query(a, SQL_MODEL_TIER, pt, 13, NULL, NULL) != 0)
        return db_fail(a, g, "updating the model's context and long-context tier");
    rowset c;
    if (query(a, SQL_MODEL_CHECK, pid, 1, &c, NULL) == 0 && c.n == 1 && strcmp(rs_str(&c, 0, 0), "live") == 0) {
        const char *k = rs_str(&c, 0, 1), *prov = rs_str(&c, 0, 2);
        if (strcmp(k, "chat") == 0 && rs_i64(&c, 0, 3))
            fprintf(stderr, "zenn-admin: warning: live chat model %s has no input or output price\n", id);
        if (strcmp(k, "image") == 0 && rs_i64(&c, 0, 4))
            fprintf(stderr, "zenn-admin: warning: live image model %s has no --per-image price\n", id);
        if (zg_provider_parse(prov) < 0)
            fprintf(stderr, "zenn-admin: warning: live model %s names provider '%s', which the gateway cannot reach\n",
                    id, prov);
    }
    rs_free(&c);
    return RC_OK;
}

static const char SQL_ALIAS_TARGET[] = "SELECT model_id FROM model_aliases WHERE alias = ?";
static const char SQL_ALIAS_SET[] =
    "INSERT INTO model_aliases (alias, model_id) VALUES (?, ?) ON DUPLICATE KEY UPDATE model_id = VALUES(model_id)";
static const char SQL_ALIAS_DEL[] = "DELETE FROM model_aliases WHERE alias = ?";

static int cmd_model_alias(app *a, const args *g)
{
    const char *alias = g->pos[0], *id = g->pos[1];
    if (!valid_ident(alias, 128, ALIAS_CHARS) || strncmp(alias, "models/", 7) == 0)
        return bad_usage(g, "bad alias '%s' (1 to 128 of A-Z a-z 0-9 %s, not starting with models/)", alias,
                         ALIAS_CHARS);
    if (!valid_ident(id, 64, MODEL_ID_CHARS))
        return bad_usage(g, "bad model id '%s'", id);
    if (!app_db(a, g))
        return RC_FAIL;
    int64_t n = 0;
    zg_val pa[] = {ZG_STR(alias)}, pm[] = {ZG_STR(id)};
    if (query_i64(a, SQL_MODEL_EXISTS, pm, 1, 0, &n) != 0)
        return db_fail(a, g, "looking up the model");
    if (n == 0)
        return fail(g, "no model '%s' (see 'zenn-admin model list')", id);
    if (query_i64(a, SQL_MODEL_EXISTS, pa, 1, 0, &n) != 0)
        return db_fail(a, g, "looking up the alias");
    if (n)
        return fail(g, "'%s' is a model id; an alias cannot shadow it", alias);
    rowset old;
    if (query(a, SQL_ALIAS_TARGET, pa, 1, &old, NULL) != 0)
        return db_fail(a, g, "looking up the alias");
    zg_val p[] = {ZG_STR(alias), ZG_STR(id)};
    int rc = RC_OK;
    if (query(a, SQL_ALIAS_SET, p, 2, NULL, NULL) != 0)
        rc = db_fail(a, g, "setting the alias");
    else if (old.n == 0)
        printf("alias %s -> %s created\n", alias, id);
    else if (strcmp(rs_str(&old, 0, 0), id) == 0)
        printf("alias %s -> %s unchanged\n", alias, id);
    else
        printf("alias %s -> %s (was %s)\n", alias, id, rs_str(&old, 0, 0));
    rs_free(&old);
    return rc;
}

static int cmd_model_unalias(app *a, const args *g)
{
    const char *alias = g->pos[0];
    if (!valid_ident(alias, 128, ALIAS_CHARS))
        return bad_usage(g, "bad alias '%s'", alias);
    if (!app_db(a, g))
        return RC_FAIL;
    zg_val p[] = {ZG_STR(alias)};
    int64_t n = 0;
    if (query(a, SQL_ALIAS_DEL, p, 1, NULL, &n) != 0)
        return db_fail(a, g, "removing the alias");
    if (n == 0)
        return fail(g, "no alias '%s'", alias);
    printf("alias %s removed\n", alias);
    return RC_OK;
}

/* ============================================================================ reap */

#define REAP_BATCH 500 /* the LIMIT below */
static const char SQL_REAP_FIND[] = "SELECT request_id, hold_credits FROM usage_log WHERE status = 'pending'"
                                    " AND created_at < NOW(3) - INTERVAL ? SECOND ORDER BY id LIMIT 500";
/* A request whose worker died is charged the hold placed before its upstream call, flagged estimated. */
static const char SQL_REAP_SETTLE[] =
    "CALL zg_settle(?, 'abandoned', 'abandoned', ?, 0, 0, 0, 0, 0, 0, 0, 1, NULL, NULL, NULL)";

/* Apply the settlements spooled while the database was unreachable. 0, or -1 (reported). */
static int replay_spool(app *a, const args *g, bool verbose)
{
    int n = zg_billing_replay_spool(a->db, &a->settings);
    if (n < 0) {
        fail(g, "cannot replay the spool %s: %s", a->settings.spool_path, zg_db_error(a->db));
        return -1;
    }
    struct stat st;
    long long left = stat(a->settings.spool_path, &st) == 0 ? (long long)st.st_size : 0;
    if (verbose || n > 0)
        printf("spool %s: replayed %d settlement(s)%s\n", a->settings.spool_path, n,
               left > 0 ? "; some remain (database errors, see the log)" : "");
    return left > 0 ? -1 : 0;
}

static int cmd_spool_replay(app *a, const args *g)
{
    if (!app_db(a, g))
        return RC_FAIL;
    return replay_spool(a, g, true) == 0 ? RC_OK : RC_FAIL;
}

static int cmd_reap(app *a, const args *g)
{
    const char *s = opt(g, "older-than");
    int64_t older = -1;
    if (s && zg_parse_i64z(s, 0, 10 * 365 * 86400LL, &older) != 0)
        return bad_usage(g, "bad --older-than '%s' (expected whole seconds)", s);
    if (!app_db(a, g))
        return RC_FAIL;
    /* spooled settlements first: reaping would charge those requests their hold instead */
    if (replay_spool(a, g, false) != 0)
        return fail(g, "settlements are still spooled; not reaping until they are applied");
    if (older < 0)
        older = a->settings.reap_after;
    int64_t reaped = 0, charged = 0;
    for (;;) {
        rowset r;
        zg_val p[] = {ZG_INT(older)};
        if (query(a, SQL_REAP_FIND, p, 1, &r, NULL) != 0)
            return db_fail(a, g, "finding pending requests");
        int64_t settled_now = 0;
        for (size_t i = 0; i < r.n; i++) {
            zg_val q[] = {ZG_STR(rs_str(&r, i, 0)), ZG_INT(rs_i64(&r, i, 1))};
            int64_t res = -1;
            if (query_i64(a, SQL_REAP_SETTLE, q, 2, -1, &res) != 0) {
                rs_free(&r);
                printf("reaped %" PRId64 " request(s) before the error\n", reaped);
                return db_fail(a, g, "settling an abandoned request");
            }
            if (res == 0) { /* 1: settled meanwhile by its worker */
                settled_now++;
                charged += rs_i64(&r, i, 1);
            }
        }
        size_t got = r.n;
        rs_free(&r);
        reaped += settled_now;
        if (got < REAP_BATCH || settled_now == 0)
            break;
    }
    numbuf b;
    printf("reaped %" PRId64 " request(s) pending for more than %" PRId64 "s; charged %" PRId64
           " credits of holds (%s USD at list price)\n",
           reaped, older, charged, fmt_usd(charged, b));
    return RC_OK;
}

/* ============================================================================ commands & help */

static const verb VERBS[] = {
    {"db", "migrate", cmd_db_migrate, 0, 0, "", "", "Apply pending schema migrations and load the model catalog",
     "Applies each schema migration above the database's version (recorded in schema_version), then\n"
     "loads the shipped model catalog with INSERT IGNORE, so models and aliases changed with\n"
     "'model set' / 'model alias' keep the operator's values. Safe to run again.\n"
     "Prints: schema at version N; catalog: M models\n"},
    {"db", "status", cmd_db_status, 0, 0, "", "", "Show the schema version and row counts",
     "Exits 1 when the schema is not installed.\n"},
    {"user", "add", cmd_user_add, 1, 1, "", "EMAIL", "Add a user",
     "EMAIL: printable ASCII, at most 254 bytes, one '@'. A duplicate exits 1.\n"},
    {"user", "list", cmd_user_list, 0, 0, "json", "[--json]", "List users with plan, credits and keys",
     "--json  a JSON array of {id, email, status, plan, credits, held, active_keys, created_at}\n"},
    {"topup", NULL, cmd_topup, 3, 3, "ref=", "EMAIL PLAN USD [--ref REF]", "Grant a top-up lot of credits",
     "PLAN: pro (1 credit per micro-dollar), max (4x) or enterprise (6x).\n"
     "USD: a positive decimal with at most 6 decimals (e.g. 20, 12.50).\n"
     "Grants USD x 1,000,000 x multiplier credits; an overdraft is repaid from the new lot first.\n"
     "--ref REF  the payment's reference (a bank transfer's id): the same REF grants once; run again,\n"
     "           it says 'already granted' and adds nothing. Without --ref one is generated and printed.\n"
     "Prints the credits granted, the reference and the new balance.\n"},
    {"balance", NULL, cmd_balance, 1, 1, "json", "EMAIL [--json]", "Show a user's credits, plan and top-up lots",
     "--json  {\"email\",\"credits\",\"held\",\"plan\":\"pro|max|enterprise|none\",\n"
     "         \"lots\":[{\"plan\",\"multiplier\",\"credits_granted\",\"credits_remaining\",\"usd\"}]}\n"
     "credits is the balance (1 credit = 1 micro-dollar at list price); plan is the highest plan\n"
     "among lots with credits left.\n"},
    {"usage", NULL, cmd_usage, 1, 1, "json since= limit=", "EMAIL [--since DATE] [--limit N] [--json]",
     "Show a user's metered requests, newest last",
     "--since YYYY-MM-DD[ HH:MM:SS]  only requests created at or after this time\n"
     "--limit N                      at most the N newest requests (default 100)\n"
     "--json                         a JSON array of {request_id, created_at, model, surface, provider,\n"
     "                               status, end_reason, credits, cash_micros, input_tokens,\n"
     "                               output_tokens, cache_read_tokens, cache_write_5m_tokens,\n"
     "                               cache_write_1h_tokens, reasoning_tokens, units, estimated,\n"
     "                               upstream_status, ttfb_ms, duration_ms}\n"},
    {"key", "create", cmd_key_create, 1, 1, "name= limit-usd=", "EMAIL [--name NAME] [--limit-usd USD]",
     "Create an API key",
     "Prints the key alone on the first line of stdout; it is shown only this once (only its\n"
     "SHA-256 is stored). --limit-usd caps the key's spend (in list-price dollars).\n"},
    {"key", "list", cmd_key_list, 1, 1, "json", "EMAIL [--json]", "List a user's keys (prefixes, never secrets)",
     "--json  a JSON array of {prefix, name, status, limit_usd, limit_credits, spent_usd,\n"
     "        spent_credits, held_credits, created_at, last_used_at, revoked_at}\n"},
    {"key", "revoke", cmd_key_revoke, 1, 1, "", "PREFIX", "Revoke a key",
     "PREFIX is the 12-character prefix 'key list' shows. Revoking a revoked key exits 1.\n"},
    {"key", "limit", cmd_key_limit, 2, 2, "", "PREFIX USD|none", "Set or clear a key's spend limit",
     "USD: list-price dollars the key may spend in total (spent so far counts); none removes the limit.\n"},
    {"model", "list", cmd_model_list, 0, 0, "json", "[--json]", "List the model catalog with prices and aliases",
     "--json  a JSON array of {id, display_name, status, provider, kind, min_plan, prices, aliases,\n"
     "        created_unix, sort_order}; prices has input, output, cache_read, cache_write_5m,\n"
     "        cache_write_1h ({usd_per_mtok, credits_per_mtok} or null) and per_image ({usd, credits}\n"
     "        or null)\n"},
    {"model", "set", cmd_model_set, 1, 1,
     "status= min-plan= input= output= cache-read= cache-write-5m= cache-write-1h= per-image= display-name= "
     "provider= kind= context= expand-input= long-threshold= long-input= long-output= long-cache-read=",
     "ID [OPTIONS]", "Change a model, or create one",
     "--status live|coming_soon     --min-plan pro|max|enterprise\n"
     "--input USD  --output USD  --cache-read USD  --cache-write-5m USD  --cache-write-1h USD\n"
     "                              prices in USD per million tokens, or none\n"
     "--per-image CREDITS           price per image in credits (1 credit = 1 micro-dollar), or none\n"
     "--display-name NAME  --provider P  --kind chat|image|video|audio\n"
     "--context TOKENS              the context window; --expand-input TOKENS: what a hold assumes when\n"
     "                              the provider expands input itself (default the context window)\n"
     "--long-threshold TOKENS  --long-input USD  --long-output USD  --long-cache-read USD\n"
     "                              long-context tier: input above the threshold prices the whole request\n"
     "                              at these (or none)\n"
     "An unknown ID is created when --provider and --display-name are given (status coming_soon\n"
     "unless --status says otherwise, min plan pro, kind chat); otherwise it exits 1.\n"},
    {"model", "alias", cmd_model_alias, 2, 2, "", "ALIAS ID", "Point an alias at a model (create or repoint)",
     "ID must be an existing model; ALIAS must not be a model id.\n"},
    {"model", "unalias", cmd_model_unalias, 1, 1, "", "ALIAS", "Remove an alias", "An unknown alias exits 1.\n"},
    {"reap", NULL, cmd_reap, 0, 0, "older-than=", "[--older-than SECONDS]", "Settle requests left pending",
     "Requests still pending after SECONDS (default: [billing] reap_after) are settled as abandoned:\n"
     "charged the hold placed before their upstream call and flagged estimated.\n"
     "Settlements waiting in the spool ([billing] spool_path) are replayed first.\n"},
    {"spool", "replay", cmd_spool_replay, 0, 0, "", "", "Apply settlements spooled while the database was down",
     "Settlements that could not reach the database are appended to [billing] spool_path; the\n"
     "programs replay it on their own every few seconds. This replays it now. Exits 1 when some\n"
     "settlements could not be applied (they stay in the spool).\n"},
};
#define N_VERBS (sizeof VERBS / sizeof VERBS[0])

static void print_verb_line(FILE *f, const verb *v)
{
    char words[160];
    snprintf(words, sizeof words, "%s%s%s %s", v->noun, v->verb ? " " : "", v->verb ? v->verb : "", v->synopsis);
    fprintf(f, "  %-52s %s\n", words, v->summary);
}

static void print_help_all(FILE *f)
{
    fprintf(f, "usage: zenn-admin [--config PATH] COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < N_VERBS; i++)
        print_verb_line(f, &VERBS[i]);
    fprintf(f, "  %-52s %s\n", "help [COMMAND]", "Show help for a command");
    fprintf(f, "\n--config PATH  the configuration file (default: $ZENN_CONFIG, else %s)\n"
               "'zenn-admin COMMAND --help' describes a command.\n"
               "exit status: 0 success, 1 failure (unknown user/key/model, duplicate, database error),\n"
               "             2 bad usage (unknown command or option, malformed argument)\n"
               "Amounts: 1 credit = 1 micro-dollar at list price; USD amounts take at most 6 decimals.\n",
            ZG_SYSCONFDIR "/zenn-gateway/zenn.conf");
}

static void print_help_verb(FILE *f, const verb *v)
{
    fprintf(f, "usage: zenn-admin %s%s%s %s\n\n%s.\n\n%s", v->noun, v->verb ? " " : "", v->verb ? v->verb : "",
            v->synopsis, v->summary, v->help);
    fprintf(f, "\n--config PATH  the configuration file (else $ZENN_CONFIG, else the default)\n");
}

static void print_help_noun(FILE *f, const char *noun)
{
    fprintf(f, "usage:\n");
    for (size_t i = 0; i < N_VERBS; i++)
        if (strcmp(VERBS[i].noun, noun) == 0)
            print_verb_line(f, &VERBS[i]);
    fprintf(f, "'zenn-admin %s VERB --help' describes a command.\n", noun);
}

static bool noun_known(const char *noun)
{
    for (size_t i = 0; i < N_VERBS; i++)
        if (strcmp(VERBS[i].noun, noun) == 0)
            return true;
    return false;
}

/* The command named by words[0] (and words[1] for two-word commands), or NULL. *used gets how
 * many words named it. */
static const verb *find_verb(int n, char **words, int *used)
{
    for (size_t i = 0; i < N_VERBS; i++) {
        const verb *v = &VERBS[i];
        if (n < 1 || strcmp(v->noun, words[0]) != 0)
            continue;
        if (!v->verb) {
            *used = 1;
            return v;
        }
        if (n >= 2 && strcmp(v->verb, words[1]) == 0) {
            *used = 2;
            return v;
        }
    }
    return NULL;
}

static bool is_help(const char *s)
{
    return strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0;
}

/* Is "name" (nlen bytes) among v's options? Sets *takes_value. */
static bool opt_known(const verb *v, const char *name, size_t nlen, bool *takes_value)
{
    const char *p = v->opts;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t l = strcspn(p, " ");
        if (l == 0)
            break;
        bool val = p[l - 1] == '=';
        size_t nl = val ? l - 1 : l;
        if (nl == nlen && strncmp(p, name, nlen) == 0) {
            *takes_value = val;
            return true;
        }
        p += l;
    }
    return false;
}

static int parse_args(app *a, const verb *v, int argc, char **argv, args *g)
{
    memset(g, 0, sizeof *g);
    g->verb = v;
    bool opts_done = false;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (!opts_done && strcmp(s, "--") == 0) {
            opts_done = true;
            continue;
        }
        if (opts_done || strncmp(s, "--", 2) != 0) {
            if (g->npos == v->max_pos)
                return bad_usage(g, "unexpected argument '%s'", s);
            g->pos[g->npos++] = s;
            continue;
        }
        const char *name = s + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        bool takes = false, is_config = nlen == 6 && strncmp(name, "config", 6) == 0;
        if (!is_config && !opt_known(v, name, nlen, &takes))
            return bad_usage(g, "unknown option --%.*s", (int)nlen, name);
        const char *val = "";
        if (is_config || takes) {
            if (eq)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return bad_usage(g, "option --%.*s needs a value", (int)nlen, name);
        } else if (eq) {
            return bad_usage(g, "option --%.*s takes no value", (int)nlen, name);
        }
        if (is_config) {
            a->config_path = val;
            continue;
        }
        for (int k = 0; k < g->nopt; k++)
            if (g->opt[k].nlen == nlen && strncmp(g->opt[k].name, name, nlen) == 0)
                return bad_usage(g, "option --%.*s given twice", (int)nlen, name);
        if (g->nopt == MAX_OPTS)
            return bad_usage(g, "too many options");
        g->opt[g->nopt].name = name;
        g->opt[g->nopt].nlen = nlen;
        g->opt[g->nopt].value = val;
        g->nopt++;
    }
    if (g->npos < v->min_pos)
        return bad_usage(g, "missing argument%s", v->min_pos - g->npos > 1 ? "s" : "");
    return RC_OK;
}

/* `zenn-admin help [NOUN [VERB]]` */
static int cmd_help(int n, char **words)
{
    if (n == 0) {
        print_help_all(stdout);
        return RC_OK;
    }
    int used = 0;
    const verb *v = find_verb(n, words, &used);
    if (v) {
        print_help_verb(stdout, v);
        return RC_OK;
    }
    if (noun_known(words[0]) && n == 1) {
        print_help_noun(stdout, words[0]);
        return RC_OK;
    }
    fprintf(stderr, "zenn-admin: help: unknown command '%s%s%s'\n", words[0], n > 1 ? " " : "", n > 1 ? words[1] : "");
    return RC_USAGE;
}

/* Entry point: global options, then the command words, then the command's arguments. */
int main(int argc, char **argv)
{
    static app a;
    zg_log_init("zenn-admin", ZG_LOG_WARN);
    int i = 1;
    while (i < argc && strncmp(argv[i], "-", 1) == 0) {
        const char *s = argv[i];
        if (is_help(s)) {
            print_help_all(stdout);
            return RC_OK;
        } else if (strcmp(s, "--config") == 0 && i + 1 < argc) {
            a.config_path = argv[i + 1];
            i += 2;
        } else if (strncmp(s, "--config=", 9) == 0) {
            a.config_path = s + 9;
            i++;
        } else {
            fprintf(stderr, "zenn-admin: unknown or incomplete option '%s'\n", s);
            print_help_all(stderr);
            return RC_USAGE;
        }
    }
    if (i == argc) {
        print_help_all(stderr);
        return RC_USAGE;
    }
    if (strcmp(argv[i], "help") == 0)
        return cmd_help(argc - i - 1, argv + i + 1);
    int used = 0;
    const verb *v = find_verb(argc - i, argv + i, &used);
    if (!v) {
        const char *noun = argv[i];
        if (!noun_known(noun)) {
            fprintf(stderr, "zenn-admin: unknown command '%s' (see 'zenn-admin help')\n", noun);
            return RC_USAGE;
        }
        if (i + 1 < argc && is_help(argv[i + 1])) {
            print_help_noun(stdout, noun);
            return RC_OK;
        }
        if (i + 1 < argc)
            fprintf(stderr, "zenn-admin: unknown command '%s %s'\n", noun, argv[i + 1]);
        else
            fprintf(stderr, "zenn-admin: '%s' needs a verb\n", noun);
        print_help_noun(stderr, noun);
        return RC_USAGE;
    }
    i += used;
    for (int k = i; k < argc && strcmp(argv[k], "--") != 0; k++)
        if (is_help(argv[k])) {
            print_help_verb(stdout, v);
            return RC_OK;
        }
    args g;
    int rc = parse_args(&a, v, argc - i, argv + i, &g);
    if (rc == RC_OK)
        rc = v->fn(&a, &g);
    fflush(stdout);
    zg_db_free(a.db);
    return rc;
}
