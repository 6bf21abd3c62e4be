/* Usage queries: the pieces of the analytics API's query strings, checked without a database.
 * Dates are UTC calendar dates held as days since 1970-01-01; a request log cursor names the last
 * row a page showed (its start time and id), so the next page starts below it (keyset paging). */
#ifndef ZG_UQ_H
#define ZG_UQ_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZG_UQ_MAX_DAYS 400  /* the longest range a query may cover */
#define ZG_UQ_CURSOR_LEN 40 /* room for a cursor and its NUL */

/* Grouping dimensions of /usage. */
typedef enum { ZG_DIM_DAY = 0, ZG_DIM_MODEL, ZG_DIM_KEY, ZG_DIM_SURFACE, ZG_DIM_COUNT } zg_dim;

/* The name of a dimension ("day", "model", "key", "surface"). */
const char *zg_uq_dim_name(int dim);
/* A strict YYYY-MM-DD date between 2000-01-01 and 9999-12-31 into *days. 0, or -1. */
int zg_uq_date(const char *s, int32_t *days);
/* Days since 1970-01-01 as YYYY-MM-DD (out holds at least 11 bytes). */
void zg_uq_date_fmt(int32_t days, char *out, size_t cap);
/* Today in UTC, as days since 1970-01-01. */
int32_t zg_uq_today(void);
/* The first day of the month after the one holding days. */
int32_t zg_uq_next_month(int32_t days);
/* A strict YYYY-MM month into the days of its first day. 0, or -1. */
int zg_uq_month(const char *s, int32_t *first);
/* from and to (each NULL when absent) as an inclusive range: to defaults to today, from to 29 days
 * before to. 0, or -1 with a message in err: a malformed date, from after to, or more than
 * ZG_UQ_MAX_DAYS days. */
int zg_uq_range(const char *from, const char *to, int32_t today, int32_t *d0, int32_t *d1, char *err, size_t cap);
/* group_by: one or two distinct dimension names separated by a comma ("day", "day,model"). 0 with
 * dims[0..*n), or -1 with a message in err. */
int zg_uq_group_by(const char *s, int dims[2], int *n, char *err, size_t cap);
/* A cursor for the row that started at created (DATETIME(3) text "YYYY-MM-DD HH:MM:SS.fff") with id.
 * 0, or -1 when created is not in that form. */
int zg_uq_cursor_make(const char *created, int64_t id, char *out, size_t cap);
/* Read a cursor back: created (DATETIME(3) text, at least 24 bytes) and id. 0, or -1 when malformed. */
int zg_uq_cursor_parse(const char *s, char *created, size_t cap, int64_t *id);

#endif
