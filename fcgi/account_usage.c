/* account: usage analytics. /usage sums the daily rollup (usage_daily) grouped by one or two of day,
 * model, key and surface; /requests pages through the raw request log newest first by keyset (the
 * last row's start time and id, never OFFSET). Both come as CSV too: the log is read and sent in
 * chunks of CSV_CHUNK rows, so an export of any size runs in constant memory, and a chunk is sent
 * only once its statement has finished (a statement retried after a lost connection cannot send
 * rows twice). */
#include "account.h"
#include "zg_csv.h"
#include "zg_log.h"
#include "zg_num.h"
#include "zg_uq.h"
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USAGE_ROWS_MAX 20000  /* rows one /usage answer may have */
#define LOG_PAGE_DEFAULT 50
#define LOG_PAGE_MAX 500
#define CSV_CHUNK 2000
#define CSV_BUF_MAX (16u << 20)

/* ---- the query string ----------------------------------------------------------------------- */

/* The filters of /usage and /requests, checked. */
struct filters {
    char from[16], to[16], group_by[40], key[24], model[72], status[24], cursor[ZG_UQ_CURSOR_LEN], limit[12];
    int32_t d0, d1;
    char day0[12], day1[12], day_end[12]; /* day_end: the day after d1 */
    int dims[2], ndims;
    char after[32]; /* the cursor's start time, or the end of time */
    int64_t after_id, limit_n;
};

static const char *const STATUSES[] = {"ok", "error", "pending", "complete", "client_closed", "upstream_error",
                                       "upstream_dropped", "upstream_timeout", "upstream_unreachable", "abandoned"};

static bool model_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              strchr("._-:@+/", s[i])))
            return false;
    return true;
}

static const char SQL_OWN_KEY[] = "SELECT COUNT(*) FROM api_keys WHERE prefix = ? AND user_id = ?";

/* Read and check the query string of a usage (log = false) or request log (log = true) call.
 * 0, or -1 when an error has been answered. */
static int read_filters(zg_req *r, int64_t user_id, bool log, struct filters *f)
{
    memset(f, 0, sizeof *f);
    zg_qparam q[] = {
        {"from", f->from, sizeof f->from, false},     {"to", f->to, sizeof f->to, false},
        {"key", f->key, sizeof f->key, false},        {"model", f->model, sizeof f->model, false},
        {log ? "status" : "group_by", log ? f->status : f->group_by, log ? sizeof f->status : sizeof f->group_by,
         false},
        {"cursor", f->cursor, sizeof f->cursor, false}, {"limit", f->limit, sizeof f->limit, false},
    };
    size_t nq = log ? 7 : 5;
    if (zg_portal_query(r, q, nq) != 0)
        return -1;
    char err[128];
    if (zg_uq_range(q[0].set ? f->from : NULL, q[1].set ? f->to : NULL, zg_uq_today(), &f->d0, &f->d1, err,
                    sizeof err) != 0)
        return zg_portal_bad(r, strncmp(err, "to", 2) == 0 ? "to" : "from", err) - 1;
    zg_uq_date_fmt(f->d0, f->day0, sizeof f->day0);
    zg_uq_date_fmt(f->d1, f->day1, sizeof f->day1);
    zg_uq_date_fmt(f->d1 + 1, f->day_end, sizeof f->day_end);
    if (!log && zg_uq_group_by(q[4].set ? f->group_by : "day", f->dims, &f->ndims, err, sizeof err) != 0)
        return zg_portal_bad(r, "group_by", err) - 1;
    if (q[3].set && !model_ok(f->model))
        return zg_portal_bad(r, "model", "model: not a model id") - 1;
    if (log && q[4].set) {
        bool known = false;
        for (size_t i = 0; i < sizeof STATUSES / sizeof STATUSES[0]; i++)
            known |= strcmp(f->status, STATUSES[i]) == 0;
        if (!known)
            return zg_portal_bad(r, "status",
                                 "status: expected ok, error, pending or an end reason (complete, client_closed, "
                                 "upstream_error, upstream_dropped, upstream_timeout, upstream_unreachable, "
                                 "abandoned)") - 1;
    }
    snprintf(f->after, sizeof f->after, "9999-12-31 23:59:59.999");
    f->after_id = INT64_MAX;
    if (log && q[5].set && zg_uq_cursor_parse(f->cursor, f->after, sizeof f->after, &f->after_id) != 0)
        return zg_portal_bad(r, "cursor", "cursor: not a cursor this API gave (use next_cursor as it came)") - 1;
    f->limit_n = LOG_PAGE_DEFAULT;
    if (log && q[6].set && zg_parse_i64z(f->limit, 1, LOG_PAGE_MAX, &f->limit_n) != 0)
        return zg_portal_fail(r, 400, "invalid_request_error", "limit", "limit: expected 1 to %d", LOG_PAGE_MAX) - 1;
    if (q[2].set) {
        int64_t own[1] = {0};
        zg_val p[] = {ZG_STR(f->key), ZG_INT(user_id)};
        if (zg_db_run(r->db, SQL_OWN_KEY, p, 2, zg_db_row_ints, &(zg_ints){own, 1}, NULL) != 0)
            return zg_portal_unavailable(r) - 1;
        if (own[0] == 0)
            return zg_portal_bad(r, "key", "key: no key with that prefix on this account") - 1;
    }
    return 0;
}

/* ---- measures: the columns every usage row ends with ------------------------------------------ */

enum { M_REQ, M_ERR, M_EST, M_IN, M_OUT, M_CR, M_CW5, M_CW1H, M_RSN, M_UNITS, M_CRED, M_CASH, M_TTFB, M_TTFB_N,
       M_DUR, M_DUR_N, M_COUNT };
static const char *const MEASURE[M_COUNT] = {
    "requests",          "errors",           "estimated", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_5m_tokens", "cache_write_1h_tokens", "reasoning_tokens", "images", "credits", "cash_micros",
    NULL, NULL, NULL, NULL};
#define MEASURE_SQL                                                                                                \
    "SUM(d.requests), SUM(d.errors), SUM(d.estimated), SUM(d.input_tokens), SUM(d.output_tokens),"                \
    " SUM(d.cache_read_tokens), SUM(d.cache_write_5m_tokens), SUM(d.cache_write_1h_tokens),"                      \
    " SUM(d.reasoning_tokens), SUM(d.units), SUM(d.credits), SUM(d.cash_micros), SUM(d.ttfb_ms_sum),"            \
    " SUM(d.ttfb_n), SUM(d.duration_ms_sum), SUM(d.duration_n)"

static int64_t avg(int64_t sum, int64_t n)
{
    return n > 0 ? (sum + n / 2) / n : 0;
}

/* The measures m as members of o. */
static void measures_json(json_object *o, const int64_t *m)
{
    for (int i = 0; i < M_COUNT; i++)
        if (MEASURE[i])
            json_object_object_add(o, MEASURE[i], json_object_new_int64(m[i]));
    json_object_object_add(o, "cost_usd", zg_portal_usd_json(m[M_CRED]));
    json_object_object_add(o, "cash_usd", zg_portal_usd_json(m[M_CASH]));
    json_object_object_add(o, "avg_ttfb_ms", m[M_TTFB_N] ? json_object_new_int64(avg(m[M_TTFB], m[M_TTFB_N])) : NULL);
    json_object_object_add(o, "avg_duration_ms",
                           m[M_DUR_N] ? json_object_new_int64(avg(m[M_DUR], m[M_DUR_N])) : NULL);
}

static void measures_csv_head(zg_buf *b)
{
    for (int i = 0; i < M_COUNT; i++)
        if (MEASURE[i])
            zg_csv_text(b, false, MEASURE[i], strlen(MEASURE[i]));
    zg_buf_puts(b, ",cost_usd,cash_usd,avg_ttfb_ms,avg_duration_ms");
}

static void measures_csv(zg_buf *b, const int64_t *m)
{
    for (int i = 0; i < M_COUNT; i++)
        if (MEASURE[i])
            zg_csv_int(b, false, m[i]);
    zg_csv_micros(b, false, m[M_CRED]);
    zg_csv_micros(b, false, m[M_CASH]);
    zg_csv_int(b, false, avg(m[M_TTFB], m[M_TTFB_N]));
    zg_csv_int(b, false, avg(m[M_DUR], m[M_DUR_N]));
}

/* ---- /usage ---------------------------------------------------------------------------------- */

/* One statement per grouping (dims a, b; b = ZG_DIM_COUNT for one dimension), made once. Output
 * columns: day, model, key_id, key_prefix, key_name, surface (NULL unless grouped by), measures. */
static char usage_sql[ZG_DIM_COUNT][ZG_DIM_COUNT + 1][1400];
static pthread_once_t usage_once = PTHREAD_ONCE_INIT;

static const char *const GROUP_COL[ZG_DIM_COUNT] = {"d.day", "d.model", "d.key_id", "d.surface"};

static void usage_sql_make(void)
{
    for (int a = 0; a < ZG_DIM_COUNT; a++)
        for (int b = 0; b <= ZG_DIM_COUNT; b++) {
            if (a == b)
                continue;
            bool has[ZG_DIM_COUNT] = {false};
            has[a] = true;
            if (b < ZG_DIM_COUNT)
                has[b] = true;
            char group[80];
            snprintf(group, sizeof group, "%s%s%s", GROUP_COL[a], b < ZG_DIM_COUNT ? ", " : "",
                     b < ZG_DIM_COUNT ? GROUP_COL[b] : "");
            snprintf(usage_sql[a][b], sizeof usage_sql[a][b],
                     "SELECT %s, %s, %s, %s, %s, %s, " MEASURE_SQL
                     " FROM usage_daily d JOIN api_keys k ON k.id = d.key_id"
                     " WHERE d.user_id = ? AND d.day BETWEEN ? AND ? AND (? IS NULL OR k.prefix = ?)"
                     " AND (? IS NULL OR d.model = ?) GROUP BY %s ORDER BY %s LIMIT %d",
                     has[ZG_DIM_DAY] ? "DATE_FORMAT(d.day, '%Y-%m-%d')" : "NULL", has[ZG_DIM_MODEL] ? "d.model" : "NULL",
                     has[ZG_DIM_KEY] ? "d.key_id" : "NULL", has[ZG_DIM_KEY] ? "MAX(k.prefix)" : "NULL",
                     has[ZG_DIM_KEY] ? "MAX(k.name)" : "NULL", has[ZG_DIM_SURFACE] ? "d.surface" : "NULL", group,
                     group, USAGE_ROWS_MAX + 1);
        }
}

#define DIM_COLS 6
static const char *const DIM_NAME[DIM_COLS] = {"day", "model", "key_id", "key_prefix", "key_name", "surface"};

struct usage_rows {
    const struct filters *f;
    json_object *arr; /* JSON, or CSV into csv */
    zg_buf *csv;
    int64_t tot[M_COUNT];
    int n;
    bool has[DIM_COLS];
};

static int usage_row(void *ctx, int nc, char **v, const size_t *l)
{
    struct usage_rows *u = ctx;
    if (nc < DIM_COLS + M_COUNT || ++u->n > USAGE_ROWS_MAX)
        return 1;
    int64_t m[M_COUNT];
    for (int i = 0; i < M_COUNT; i++) {
        m[i] = zg_i64_or0(v[DIM_COLS + i]);
        if (__builtin_add_overflow(u->tot[i], m[i], &u->tot[i]))
            u->tot[i] = INT64_MAX;
    }
    if (u->csv) {
        bool first = true;
        for (int i = 0; i < DIM_COLS; i++)
            if (u->has[i]) {
                zg_csv_text(u->csv, first, v[i], v[i] ? l[i] : 0);
                first = false;
            }
        measures_csv(u->csv, m);
        zg_csv_end(u->csv);
        return 0;
    }
    json_object *o = json_object_new_object();
    for (int i = 0; i < DIM_COLS; i++)
        if (u->has[i])
            json_object_object_add(o, DIM_NAME[i],
                                   i == 2 ? json_object_new_int64(zg_i64_or0(v[i]))
                                          : json_object_new_string_len(v[i] ? v[i] : "", v[i] ? (int)l[i] : 0));
    measures_json(o, m);
    json_object_array_add(u->arr, o);
    return 0;
}

/* Run the /usage query of f into u. 0, -1 the database failed, 1 too many rows. */
static int usage_query(zg_req *r, int64_t user_id, const struct filters *f, struct usage_rows *u)
{
    pthread_once(&usage_once, usage_sql_make);
    u->f = f;
    for (int i = 0; i < f->ndims; i++) {
        int d = f->dims[i];
        if (d == ZG_DIM_DAY)
            u->has[0] = true;
        else if (d == ZG_DIM_MODEL)
            u->has[1] = true;
        else if (d == ZG_DIM_KEY)
            u->has[2] = u->has[3] = u->has[4] = true;
        else
            u->has[5] = true;
    }
    const char *sql = usage_sql[f->dims[0]][f->ndims == 2 ? f->dims[1] : ZG_DIM_COUNT];
    zg_val kv = f->key[0] ? ZG_STR(f->key) : ZG_NULLV, mv = f->model[0] ? ZG_STR(f->model) : ZG_NULLV;
    zg_val p[] = {ZG_INT(user_id), ZG_STR(f->day0), ZG_STR(f->day1), kv, kv, mv, mv};
    if (zg_db_run(r->db, sql, p, 7, usage_row, u, NULL) != 0)
        return -1;
    return u->n > USAGE_ROWS_MAX ? 1 : 0;
}

static int too_many(zg_req *r)
{
    return zg_portal_fail(r, 400, "invalid_request_error", "group_by",
                          "more than %d rows: choose a shorter range or fewer dimensions", USAGE_ROWS_MAX);
}

static json_object *filters_json(const struct filters *f)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "from", json_object_new_string(f->day0));
    json_object_object_add(o, "to", json_object_new_string(f->day1));
    return o;
}

int account_usage(zg_req *r)
{
    zg_account who;
    struct filters f;
    if (zg_session_require(r, &who) != 0 || read_filters(r, who.user_id, false, &f) != 0)
        return 0;
    struct usage_rows u = {.arr = json_object_new_array()};
    int rc = usage_query(r, who.user_id, &f, &u);
    if (rc != 0) {
        json_object_put(u.arr);
        return rc < 0 ? zg_portal_unavailable(r) : too_many(r);
    }
    json_object *o = filters_json(&f);
    json_object *g = json_object_new_array();
    for (int i = 0; i < f.ndims; i++)
        json_object_array_add(g, json_object_new_string(zg_uq_dim_name(f.dims[i])));
    json_object_object_add(o, "group_by", g);
    json_object_object_add(o, "rows", u.arr);
    json_object *t = json_object_new_object();
    measures_json(t, u.tot);
    json_object_object_add(o, "totals", t);
    return zg_portal_reply(r, 200, o);
}

/* Start a CSV download named name-FROM-TO.csv. */
static void csv_start(zg_req *r, const char *name, const struct filters *f)
{
    char fn[80];
    snprintf(fn, sizeof fn, "%s-%s-%s.csv", name, f->day0, f->day1);
    account_csv_start(r, fn);
}

int account_usage_csv(zg_req *r)
{
    zg_account who;
    struct filters f;
    if (zg_session_require(r, &who) != 0 || read_filters(r, who.user_id, false, &f) != 0)
        return 0;
    zg_buf b;
    zg_buf_init(&b, CSV_BUF_MAX);
    struct usage_rows u = {.csv = &b};
    int rc = usage_query(r, who.user_id, &f, &u);
    if (rc != 0) {
        zg_buf_free(&b);
        return rc < 0 ? zg_portal_unavailable(r) : too_many(r);
    }
    zg_buf head;
    zg_buf_init(&head, 1024);
    bool first = true;
    for (int i = 0; i < DIM_COLS; i++)
        if (u.has[i]) {
            zg_csv_text(&head, first, DIM_NAME[i], strlen(DIM_NAME[i]));
            first = false;
        }
    measures_csv_head(&head);
    zg_csv_end(&head);
    csv_start(r, "usage", &f);
    zg_resp_write(r, head.data, head.len);
    zg_resp_write(r, b.data, b.len);
    zg_buf_free(&head);
    zg_buf_free(&b);
    return 0;
}

/* ---- /requests ------------------------------------------------------------------------------- */

static const char SQL_LOG[] =
    "SELECT m.id, LEFT(DATE_FORMAT(m.created_at, '%Y-%m-%d %H:%i:%s.%f'), 23), m.request_id, k.prefix, k.name,"
    " m.model, m.surface, m.provider, m.status, m.end_reason, m.upstream_status, m.input_tokens, m.output_tokens,"
    " m.cache_read_tokens, m.cache_write_5m_tokens, m.cache_write_1h_tokens, m.reasoning_tokens, m.units,"
    " m.credits, m.cash_micros, m.estimated, m.ttfb_ms, m.duration_ms"
    " FROM usage_measures m JOIN api_keys k ON k.id = m.key_id"
    " WHERE m.user_id = ? AND m.created_at >= ? AND m.created_at < ?"
    " AND (m.created_at < ? OR (m.created_at = ? AND m.id < ?))"
    " AND (? IS NULL OR k.prefix = ?) AND (? IS NULL OR m.model = ?)"
    " AND (? IS NULL OR (? = 'ok' AND m.status <> 'pending' AND m.errors = 0)"
    " OR (? = 'error' AND m.status <> 'pending' AND m.errors = 1) OR (? = 'pending' AND m.status = 'pending')"
    " OR m.end_reason = ?)"
    " ORDER BY m.created_at DESC, m.id DESC LIMIT ?";

enum { L_ID, L_AT, L_RID, L_PREFIX, L_NAME, L_MODEL, L_SURFACE, L_PROVIDER, L_STATUS, L_END, L_UPS, L_TOK,
       L_UNITS = L_TOK + 6, L_CRED, L_CASH, L_EST, L_TTFB, L_DUR, L_COUNT };
static const char *const LOG_TEXT[] = {NULL, NULL, "request_id", "key_prefix", "key_name", "model", "surface",
                                       "provider", "status", "end_reason"};
static const char *const TOKENS[6] = {"input_tokens",          "output_tokens",         "cache_read_tokens",
                                      "cache_write_5m_tokens", "cache_write_1h_tokens", "reasoning_tokens"};

struct log_rows {
    json_object *arr; /* JSON, or CSV into csv */
    zg_buf *csv;
    int n, max;
    char last_at[32];
    int64_t last_id;
};

static void log_csv(zg_buf *b, char **v, const size_t *l)
{
    zg_csv_text(b, true, v[L_AT], v[L_AT] ? l[L_AT] : 0);
    for (int i = L_RID; i <= L_END; i++)
        zg_csv_text(b, false, v[i], v[i] ? l[i] : 0);
    for (int i = L_UPS; i <= L_UNITS; i++)
        zg_csv_text(b, false, v[i], v[i] ? l[i] : 0); /* digits, or empty for NULL */
    zg_csv_int(b, false, zg_i64_or0(v[L_CRED]));
    zg_csv_micros(b, false, zg_i64_or0(v[L_CRED]));
    zg_csv_int(b, false, zg_i64_or0(v[L_CASH]));
    zg_csv_micros(b, false, zg_i64_or0(v[L_CASH]));
    zg_csv_text(b, false, zg_i64_or0(v[L_EST]) ? "true" : "false", zg_i64_or0(v[L_EST]) ? 4 : 5);
    zg_csv_text(b, false, v[L_TTFB], v[L_TTFB] ? l[L_TTFB] : 0);
    zg_csv_text(b, false, v[L_DUR], v[L_DUR] ? l[L_DUR] : 0);
    zg_csv_end(b);
}

static const char LOG_CSV_HEAD[] =
    "created_at,request_id,key_prefix,key_name,model,surface,provider,status,end_reason,upstream_status,"
    "input_tokens,output_tokens,cache_read_tokens,cache_write_5m_tokens,cache_write_1h_tokens,reasoning_tokens,"
    "images,credits,cost_usd,cash_micros,cash_usd,estimated,ttfb_ms,duration_ms\r\n";

static int log_row(void *ctx, int nc, char **v, const size_t *l)
{
    struct log_rows *g = ctx;
    if (nc < L_COUNT || !v[L_AT] || ++g->n > g->max)
        return 0;
    snprintf(g->last_at, sizeof g->last_at, "%s", v[L_AT]);
    g->last_id = zg_i64_or0(v[L_ID]);
    if (g->csv) {
        log_csv(g->csv, v, l);
        return 0;
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "created_at", account_time(v[L_AT]));
    for (int i = L_RID; i <= L_END; i++)
        json_object_object_add(o, LOG_TEXT[i], v[i] ? json_object_new_string_len(v[i], (int)l[i]) : NULL);
    json_object_object_add(o, "upstream_status", account_int_or_null(v[L_UPS]));
    for (int i = 0; i < 6; i++)
        json_object_object_add(o, TOKENS[i], json_object_new_int64(zg_i64_or0(v[L_TOK + i])));
    json_object_object_add(o, "images", json_object_new_int64(zg_i64_or0(v[L_UNITS])));
    json_object_object_add(o, "credits", account_int_or_null(v[L_CRED]));
    json_object_object_add(o, "cost_usd", v[L_CRED] ? zg_portal_usd_json(zg_i64_or0(v[L_CRED])) : NULL);
    json_object_object_add(o, "cash_micros", account_int_or_null(v[L_CASH]));
    json_object_object_add(o, "estimated", json_object_new_boolean(zg_i64_or0(v[L_EST]) != 0));
    json_object_object_add(o, "ttfb_ms", account_int_or_null(v[L_TTFB]));
    json_object_object_add(o, "duration_ms", account_int_or_null(v[L_DUR]));
    json_object_array_add(g->arr, o);
    return 0;
}

/* One page of the log below (f->after, f->after_id), at most max rows (limit + 1 are asked for). */
static int log_page(zg_req *r, int64_t user_id, const struct filters *f, struct log_rows *g, int64_t limit)
{
    zg_val kv = f->key[0] ? ZG_STR(f->key) : ZG_NULLV, mv = f->model[0] ? ZG_STR(f->model) : ZG_NULLV;
    zg_val sv = f->status[0] ? ZG_STR(f->status) : ZG_NULLV;
    zg_val p[] = {ZG_INT(user_id), ZG_STR(f->day0), ZG_STR(f->day_end), ZG_STR(f->after), ZG_STR(f->after),
                  ZG_INT(f->after_id), kv, kv, mv, mv, sv, sv, sv, sv, sv, ZG_INT(limit)};
    return zg_db_run(r->db, SQL_LOG, p, 16, log_row, g, NULL);
}

int account_requests(zg_req *r)
{
    zg_account who;
    struct filters f;
    if (zg_session_require(r, &who) != 0 || read_filters(r, who.user_id, true, &f) != 0)
        return 0;
    struct log_rows g = {.arr = json_object_new_array(), .max = (int)f.limit_n};
    if (log_page(r, who.user_id, &f, &g, f.limit_n + 1) != 0) {
        json_object_put(g.arr);
        return zg_portal_unavailable(r);
    }
    json_object *o = filters_json(&f);
    json_object_object_add(o, "requests", g.arr);
    char c[ZG_UQ_CURSOR_LEN];
    bool more = g.n > g.max && zg_uq_cursor_make(g.last_at, g.last_id, c, sizeof c) == 0;
    json_object_object_add(o, "next_cursor", more ? json_object_new_string(c) : NULL);
    return zg_portal_reply(r, 200, o);
}

int account_requests_csv(zg_req *r)
{
    zg_account who;
    struct filters f;
    if (zg_session_require(r, &who) != 0 || read_filters(r, who.user_id, true, &f) != 0)
        return 0;
    zg_buf b;
    zg_buf_init(&b, CSV_BUF_MAX);
    int64_t rows = 0;
    for (;;) {
        struct log_rows g = {.csv = &b, .max = CSV_CHUNK};
        zg_buf_reset(&b);
        if (log_page(r, who.user_id, &f, &g, CSV_CHUNK) != 0) {
            zg_warn("account: requests.csv for user %lld failed after %lld rows: %s", (long long)who.user_id,
                    (long long)rows, zg_db_error(r->db));
            if (r->started) { /* a short file must not look whole */
                zg_resp_abort(r);
                break;
            }
            zg_buf_free(&b);
            return zg_portal_unavailable(r);
        }
        if (!r->started) {
            csv_start(r, "requests", &f);
            zg_resp_write(r, LOG_CSV_HEAD, sizeof LOG_CSV_HEAD - 1);
        }
        if (zg_resp_write(r, b.data, b.len) != 0 || zg_resp_flush(r) != 0)
            break; /* the client left */
        rows += g.n;
        if (g.n < CSV_CHUNK)
            break;
        snprintf(f.after, sizeof f.after, "%s", g.last_at);
        f.after_id = g.last_id;
    }
    zg_buf_free(&b);
    return 0;
}

json_object *account_usage_grouped(zg_req *r, int64_t user_id, int32_t d0, int32_t d1, int dim, json_object **totals)
{
    struct filters f;
    memset(&f, 0, sizeof f);
    f.d0 = d0;
    f.d1 = d1;
    zg_uq_date_fmt(d0, f.day0, sizeof f.day0);
    zg_uq_date_fmt(d1, f.day1, sizeof f.day1);
    f.dims[0] = dim;
    f.ndims = 1;
    struct usage_rows u = {.arr = json_object_new_array()};
    if (usage_query(r, user_id, &f, &u) != 0) {
        json_object_put(u.arr);
        return NULL;
    }
    if (totals) {
        *totals = json_object_new_object();
        measures_json(*totals, u.tot);
    }
    return u.arr;
}
