/* zenn-admin's internal interface: the command line, the database plumbing, output helpers and
 * the commands, one file per command group (cmd_db, cmd_user, cmd_money, cmd_key, cmd_model). */
#ifndef ZG_ADMIN_H
#define ZG_ADMIN_H
#include "zg_auth.h"
#include "zg_billing.h"
#include "zg_catalog.h"
#include "zg_config.h"
#include "zg_db.h"
#include "zg_keys.h"
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
#include <time.h>

#ifndef ZG_SYSCONFDIR
#define ZG_SYSCONFDIR "/usr/local/etc"
#endif

enum { RC_OK = 0, RC_FAIL = 1, RC_USAGE = 2 };

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

/* Every row of a query, copied (NULL cells stay NULL). */
typedef struct rowset {
    int ncols;
    size_t n, cap;
    char **cell;
} rowset;

typedef char numbuf[32];

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

#define MODEL_ID_CHARS "._-:@+"
#define ALIAS_CHARS "._-:@+/"

/* ---- plumbing (util.c) ---- */
/* A user's id by e-mail (the one user lookup every command uses). */
extern const char SQL_USER_ID[];
_Noreturn void oom(void);
void *xrealloc(void *p, size_t n);
char *xstrndup(const char *s, size_t n);
void vmsg(const args *g, const char *fmt, va_list ap);
/* Report a failure of a well-formed command; returns RC_FAIL. */
__attribute__((format(printf, 2, 3))) int fail(const args *g, const char *fmt, ...);
/* Report bad usage (including a malformed value); returns RC_USAGE. */
__attribute__((format(printf, 2, 3))) int bad_usage(const args *g, const char *fmt, ...);
int db_fail(const app *a, const args *g, const char *what);
/* Load the settings and connect, once. NULL after reporting the problem. */
zg_db *app_db(app *a, const args *g);
const char *opt(const args *g, const char *name);
/* Dollars: digits with an optional '.' and up to 6 decimals; no sign, exponent or blanks. */
bool parse_usd(const char *s, int64_t *micros);
bool printable_ascii(const char *s, size_t max);
/* Roughly an e-mail address: printable ASCII without blanks, at most 254 bytes, exactly one '@'
 * with something on both sides, and a domain that neither starts nor ends with a dot. */
bool valid_email(const char *s);
/* Letters, digits and the characters in extra; 1..max bytes. */
bool valid_ident(const char *s, size_t max, const char *extra);
/* Free text for names: 1..max bytes, no control characters (UTF-8 is allowed). */
bool valid_text(const char *s, size_t max);
/* "YYYY-MM-DD" or "YYYY-MM-DD HH:MM:SS" (or with 'T'), normalised into out. */
bool parse_since(const char *s, char out[20]);
/* The user's id, or a reported failure (RC_FAIL). */
int find_user(app *a, const args *g, const char *email, int64_t *id);
/* A key's display prefix as 'key list' shows it: "ck_" and 9 base64url characters. */
int check_prefix(const args *g, const char *prefix);
/* The key with exactly this prefix, as a one-row rowset of SQL_KEY_FIND; or a reported failure.
 * (The column compares case-insensitively; prefixes are case-sensitive base64url.) */
int find_key(app *a, const args *g, const char *prefix, rowset *key);

/* ---- output (out.c) ---- */
int rs_collect(void *ctx, int ncols, char **vals, const size_t *lens);
void rs_free(rowset *r);
const char *rs_str(const rowset *r, size_t row, int column);
/* The cell as an integer; 0 when NULL or not an integer. */
int64_t rs_i64(const rowset *r, size_t row, int column);
/* Run a prepared statement; rows (if rs) are collected into a fresh *rs. 0 or -1. */
int query(app *a, const char *sql, const zg_val *p, int np, rowset *rs, int64_t *affected);
/* A single integer answer (first column of the first row); def when there is no row. */
int query_i64(app *a, const char *sql, const zg_val *p, int np, int64_t def, int64_t *out);
const char *fmt_usd(int64_t micros, numbuf b);
/* Dollars with trailing zeros trimmed to at least 2 decimals ("15.00", "0.0028"); still exact. */
const char *fmt_usd_short(int64_t micros, numbuf b);
json_object *j_usd(int64_t micros);
void j_print(json_object *o);
json_object *col_json(const rowset *r, size_t i, const col *c);
const char *col_text(const rowset *r, size_t i, const col *c, numbuf b);
/* The rows as a JSON array of objects with the columns that have a json key. */
json_object *rows_json(const rowset *r, const col *cols, int ncols);
/* The rows as an aligned table of the columns that have a header, numbers right-aligned. */
void rows_table(const rowset *r, const col *cols, int ncols, const char *indent);

/* ---- commands ---- */
int cmd_db_migrate(app *a, const args *g);
int cmd_db_status(app *a, const args *g);
int cmd_db_check(app *a, const args *g);
int cmd_db_purge(app *a, const args *g);
int cmd_report(app *a, const args *g);
int cmd_user_add(app *a, const args *g);
int cmd_user_list(app *a, const args *g);
int cmd_user_reset_password(app *a, const args *g);
int cmd_invite_create(app *a, const args *g);
int cmd_topup(app *a, const args *g);
int cmd_checkout_list(app *a, const args *g);
int cmd_balance(app *a, const args *g);
int cmd_usage(app *a, const args *g);
int cmd_spool_replay(app *a, const args *g);
int cmd_reap(app *a, const args *g);
int cmd_key_create(app *a, const args *g);
int cmd_key_list(app *a, const args *g);
int cmd_key_revoke(app *a, const args *g);
int cmd_key_limit(app *a, const args *g);
int cmd_channel_add(app *a, const args *g);
int cmd_channel_list(app *a, const args *g);
int cmd_channel_set(app *a, const args *g);
int cmd_channel_disable(app *a, const args *g);
int cmd_channel_enable(app *a, const args *g);
int cmd_channel_remove(app *a, const args *g);
int cmd_channel_test(app *a, const args *g);
int cmd_model_list(app *a, const args *g);
int cmd_model_set(app *a, const args *g);
int cmd_model_alias(app *a, const args *g);
int cmd_model_unalias(app *a, const args *g);

#endif
