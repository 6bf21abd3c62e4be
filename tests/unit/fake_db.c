/* A scripted stand-in for zg_db (link-time seam): the unit tests of the code above the database
 * (spool replay, settlement retries) say what each statement answers, including failures, and read
 * back what was run. Implements the zg_db.h interface; linked instead of common/zg_db.c. */
#include "fake_db.h"
#include "zg_num.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct zg_db {
    char err[256];
    unsigned errnum;
};

static fake_answer script[FAKE_MAX];
static int nscript, next;
fake_call fake_calls[FAKE_MAX];
int fake_ncalls;

void fake_db_script(const fake_answer *answers, int n)
{
    if (n > 0)
        memcpy(script, answers, sizeof *answers * (size_t)n);
    nscript = n;
    next = 0;
    fake_ncalls = 0;
}

void zg_db_global_init(void)
{
}

void zg_db_thread_end(void)
{
}

zg_db *zg_db_new(const zg_settings *s)
{
    (void)s;
    return calloc(1, sizeof(zg_db));
}

zg_db *zg_db_open(const zg_settings *s)
{
    return zg_db_new(s);
}

void zg_db_free(zg_db *db)
{
    free(db);
}

int zg_db_connect(zg_db *db)
{
    (void)db;
    return 0;
}

int zg_db_run(zg_db *db, const char *sql, const zg_val *params, int nparams, zg_row_fn fn, void *ctx,
              int64_t *affected)
{
    if (fake_ncalls < FAKE_MAX) {
        fake_call *c = &fake_calls[fake_ncalls++];
        snprintf(c->sql, sizeof c->sql, "%s", sql);
        c->first[0] = '\0';
        if (nparams > 0 && params[0].type == ZG_V_STR)
            snprintf(c->first, sizeof c->first, "%.*s", (int)params[0].n, params[0].s);
        c->np = nparams < 24 ? nparams : 24;
        for (int i = 0; i < c->np; i++) {
            const zg_val *v = &params[i];
            if (v->type == ZG_V_STR)
                snprintf(c->p[i], sizeof c->p[i], "%.*s", (int)(v->n < 47 ? v->n : 47), v->s);
            else if (v->type == ZG_V_INT)
                snprintf(c->p[i], sizeof c->p[i], "%lld", (long long)v->i);
            else
                snprintf(c->p[i], sizeof c->p[i], "NULL");
        }
    }
    fake_answer a = next < nscript ? script[next++] : (fake_answer){0, NULL};
    db->errnum = a.errnum;
    snprintf(db->err, sizeof db->err, "%s", a.errnum ? "scripted failure" : "");
    if (a.errnum)
        return -1;
    if (affected)
        *affected = 1;
    if (fn && a.row) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", a.row);
        char *vals[16];
        size_t lens[16];
        int n = 0;
        for (char *t = strtok(buf, ","); t && n < 16; t = strtok(NULL, ",")) {
            vals[n] = t;
            lens[n] = strlen(t);
            n++;
        }
        fn(ctx, n, vals, lens);
    }
    return 0;
}

int zg_db_exec_text(zg_db *db, const char *sql, size_t len)
{
    (void)db, (void)sql, (void)len;
    return 0;
}

const char *zg_db_error(const zg_db *db)
{
    return db->err;
}

unsigned zg_db_errno(const zg_db *db)
{
    return db->errnum;
}

uint64_t zg_db_round_trips(const zg_db *db)
{
    (void)db;
    return (uint64_t)fake_ncalls;
}

int zg_db_row_ints(void *ctx, int ncols, char **vals, const size_t *lens)
{
    zg_ints *out = ctx;
    for (int i = 0; i < ncols && i < out->n; i++) {
        out->v[i] = 0;
        if (vals[i])
            zg_parse_i64(vals[i], lens[i], INT64_MIN, INT64_MAX, &out->v[i]);
    }
    return 1;
}
