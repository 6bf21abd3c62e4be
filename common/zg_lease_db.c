/* Lease mode: the SQL bindings (procedures zg_lease, zg_lease_drop, zg_flush, zg_settle_direct). */
#include "zg_lease_int.h"

/* ---- database calls ------------------------------------------------------------------------------- */

static const char SQL_LEASE[] = "CALL zg_lease(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
static const char SQL_FLUSH[] = "CALL zg_flush(?, ?)";
static const char SQL_DROP[] = "CALL zg_lease_drop(?, ?, ?, ?, ?, ?, ?)";
static const char SQL_DIRECT[] =
    "CALL zg_settle_direct(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

int zl_settle_direct(zg_db *db, const char *own, const zg_record *r)
{
    zg_val p[26] = {
        ZG_STR(own),         ZG_STR(r->grp),      ZG_INT(r->rel),     ZG_STR(r->rid),
        ZG_INT(r->user),     ZG_INT(r->key),      ZG_STR(r->surface), ZG_STR(r->model),
        ZG_STR(r->provider), ZG_INT(r->hold),     ZG_STR(r->status),  ZG_STR(r->reason),
        ZG_INT(r->credits),  ZG_INT(r->u.input),  ZG_INT(r->u.output), ZG_INT(r->u.cache_read),
        ZG_INT(r->u.cache_write_5m), ZG_INT(r->u.cache_write_1h), ZG_INT(r->u.reasoning), ZG_INT(r->u.units),
        ZG_INT(r->est),
        r->ups > 0 ? ZG_INT(r->ups) : ZG_NULLV,
        r->ttfb >= 0 ? ZG_INT(zg_record_ms(r->ttfb)) : ZG_NULLV,
        r->dur >= 0 ? ZG_INT(zg_record_ms(r->dur)) : ZG_NULLV,
        r->channel[0] ? ZG_STR(r->channel) : ZG_NULLV,
        ZG_INT(r->attempts > 0 ? r->attempts : 1),
    };
    return zg_db_run(db, SQL_DIRECT, p, 26, NULL, NULL, NULL);
}

int zl_db_unavailable(unsigned e)
{
    return e == 0 || e >= 2000 || e == 1053 || e == 1927 || e == 4031 || e == 1205 || e == 1213;
}

/* Write rows[0..n) in batches. Returns how many leading rows were written (or written before, or
 * refused as bad data and logged); the rest must be retried. */
size_t zl_write_rows(zg_db *db, zg_record *rows, size_t n)
{
    zg_buf b;
    zg_buf_init(&b, 64u << 20);
    size_t done = 0;
    while (done < n) {
        size_t m = n - done < BATCH_MAX ? n - done : BATCH_MAX;
        zg_buf_reset(&b);
        zg_buf_puts(&b, "[");
        for (size_t i = 0; i < m; i++) {
            if (i)
                zg_buf_puts(&b, ",");
            zg_record_json(&b, &rows[done + i]);
        }
        zg_buf_puts(&b, "]");
        zg_val p[2] = {ZG_STR(zl.owner), ZG_STRN(b.data, b.len)};
        if (zg_db_run(db, SQL_FLUSH, p, 2, NULL, NULL, NULL) == 0) {
            done += m;
            continue;
        }
        unsigned e = zg_db_errno(db);
        if (zl_db_unavailable(e)) {
            zg_warn("lease: writing %zu settlements failed (will retry): %s", m, zg_db_error(db));
            break;
        }
        /* refused as a batch (a request already written, or bad data): one by one, idempotently */
        zg_warn("lease: batch of %zu refused (%s); writing it row by row", m, zg_db_error(db));
        size_t i;
        for (i = 0; i < m; i++) {
            const zg_record *r = &rows[done + i];
            if (zl_settle_direct(db, zl.owner, r) == 0)
                continue;
            if (zl_db_unavailable(zg_db_errno(db)))
                break;
            zg_error("lease: settlement of %s refused by the database (%s): %s credits=%lld", r->rid,
                     zg_db_error(db), r->reason, (long long)r->credits);
        }
        done += i;
        if (i < m)
            break;
    }
    zg_buf_free(&b);
    return done;
}

/* Call zg_lease as operation op: repeated after a lost answer, it answers its first grant. */
int zl_take_lease(zg_db *db, const char *hash, const char *grp, int limit, int min_plan, int64_t need,
                      int64_t want, int want_slots, const char *op, struct grant *g)
{
    char own[64];
    zl_owner_now(own);
    zg_val p[10] = {ZG_STR(hash),  ZG_STR(own), ZG_STR(grp),  ZG_INT(limit),
                    ZG_INT(min_plan), ZG_INT(need), ZG_INT(want), ZG_INT(want_slots),
                    ZG_INT(LEASE_SHARE), ZG_STR(op)};
    for (int i = 0; i < 10; i++)
        g->v[i] = 0;
    g->v[0] = -1;
    return zg_db_run(db, SQL_LEASE, p, 10, zg_db_row_ints, &(zg_ints){g->v, 10}, NULL);
}

/* Give a lease back (d->key 0: every lease of own) as operation d->op (a new one when empty): a
 * return retried after a lost answer is applied once. */
int zl_drop_one(zg_db *db, const char *own, struct drop *d)
{
    if (!d->op[0])
        zl_new_op(d->op, sizeof d->op);
    zg_val p[7] = {ZG_STR(own), ZG_INT(d->key), ZG_STR(d->grp), ZG_INT(d->credits), ZG_INT(d->slots),
                   ZG_INT(d->window), ZG_STR(d->op)};
    return zg_db_run(db, SQL_DROP, p, 7, NULL, NULL, NULL);
}
