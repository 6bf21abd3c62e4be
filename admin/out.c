/* zenn-admin output: result sets, money formatting, tables and JSON. */
#include "admin.h"

int rs_collect(void *ctx, int ncols, char **vals, const size_t *lens)
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

void rs_free(rowset *r)
{
    for (size_t i = 0; i < r->n * (size_t)r->ncols; i++)
        free(r->cell[i]);
    free(r->cell);
    memset(r, 0, sizeof *r);
}

const char *rs_str(const rowset *r, size_t row, int column)
{
    return row < r->n && column < r->ncols ? r->cell[row * (size_t)r->ncols + (size_t)column] : NULL;
}

/* The cell as an integer; 0 when NULL or not an integer. */
int64_t rs_i64(const rowset *r, size_t row, int column)
{
    int64_t v = 0;
    const char *s = rs_str(r, row, column);
    if (s && zg_parse_i64z(s, INT64_MIN, INT64_MAX, &v) != 0)
        v = 0;
    return v;
}

/* Run a prepared statement; rows (if rs) are collected into a fresh *rs. 0 or -1. */
int query(app *a, const char *sql, const zg_val *p, int np, rowset *rs, int64_t *affected)
{
    if (rs)
        memset(rs, 0, sizeof *rs);
    return zg_db_run(a->db, sql, p, np, rs ? rs_collect : NULL, rs, affected);
}

/* A single integer answer (first column of the first row); def when there is no row. */
int query_i64(app *a, const char *sql, const zg_val *p, int np, int64_t def, int64_t *out)
{
    rowset rs;
    if (query(a, sql, p, np, &rs, NULL) != 0)
        return -1;
    *out = rs.n && rs_str(&rs, 0, 0) ? rs_i64(&rs, 0, 0) : def;
    rs_free(&rs);
    return 0;
}

/* ---------------------------------------------------------------------------- output */

const char *fmt_usd(int64_t micros, numbuf b)
{
    zg_fmt_usd(micros, b, sizeof(numbuf));
    return b;
}

/* Dollars with trailing zeros trimmed to at least 2 decimals ("15.00", "0.0028"); still exact. */
const char *fmt_usd_short(int64_t micros, numbuf b)
{
    zg_fmt_usd(micros, b, sizeof(numbuf));
    size_t l = strlen(b);
    char *dot = strchr(b, '.');
    while (dot && l > (size_t)(dot - b) + 3 && b[l - 1] == '0')
        b[--l] = '\0';
    return b;
}

json_object *j_usd(int64_t micros)
{
    numbuf b;
    return json_object_new_string(fmt_usd(micros, b));
}

void j_print(json_object *o)
{
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
}

json_object *col_json(const rowset *r, size_t i, const col *c)
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

const char *col_text(const rowset *r, size_t i, const col *c, numbuf b)
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
json_object *rows_json(const rowset *r, const col *cols, int ncols)
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
void rows_table(const rowset *r, const col *cols, int ncols, const char *indent)
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
