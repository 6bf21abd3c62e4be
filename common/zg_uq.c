/* Usage queries: see zg_uq.h. */
#include "zg_uq.h"
#include "zg_num.h"
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const DIMS[ZG_DIM_COUNT] = {"day", "model", "key", "surface"};

const char *zg_uq_dim_name(int dim)
{
    return dim >= 0 && dim < ZG_DIM_COUNT ? DIMS[dim] : "";
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int32_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int32_t z, int *y, int *m, int *d)
{
    z += 719468;
    int era = (z >= 0 ? z : z - 146096) / 146097;
    int doe = z - era * 146097;
    int yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp + (mp < 10 ? 3 : -9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int y, int m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

/* n decimal digits at s into *v. */
static bool digits(const char *s, int n, int *v)
{
    int64_t x;
    if (zg_parse_i64(s, (size_t)n, 0, 99999, &x) != 0)
        return false;
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    *v = (int)x;
    return true;
}

int zg_uq_date(const char *s, int32_t *days)
{
    int y, m, d;
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-' || !digits(s, 4, &y) || !digits(s + 5, 2, &m) ||
        !digits(s + 8, 2, &d))
        return -1;
    if (y < 2000 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
        return -1;
    *days = days_from_civil(y, m, d);
    return 0;
}

int zg_uq_month(const char *s, int32_t *first)
{
    int y, m;
    if (!s || strlen(s) != 7 || s[4] != '-' || !digits(s, 4, &y) || !digits(s + 5, 2, &m) || y < 2000 || m < 1 ||
        m > 12)
        return -1;
    *first = days_from_civil(y, m, 1);
    return 0;
}

void zg_uq_date_fmt(int32_t days, char *out, size_t cap)
{
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(out, cap, "%04d-%02d-%02d", y, m, d);
}

int32_t zg_uq_today(void)
{
    return (int32_t)(time(NULL) / 86400);
}

int32_t zg_uq_next_month(int32_t days)
{
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    return m == 12 ? days_from_civil(y + 1, 1, 1) : days_from_civil(y, m + 1, 1);
}

int zg_uq_range(const char *from, const char *to, int32_t today, int32_t *d0, int32_t *d1, char *err, size_t cap)
{
    *d1 = today;
    if (to && zg_uq_date(to, d1) != 0) {
        snprintf(err, cap, "to: expected a date YYYY-MM-DD (UTC)");
        return -1;
    }
    *d0 = *d1 - 29;
    if (from && zg_uq_date(from, d0) != 0) {
        snprintf(err, cap, "from: expected a date YYYY-MM-DD (UTC)");
        return -1;
    }
    if (*d0 > *d1) {
        snprintf(err, cap, "from is after to");
        return -1;
    }
    if (*d1 - *d0 + 1 > ZG_UQ_MAX_DAYS) {
        snprintf(err, cap, "the range covers %d days; at most %d", (int)(*d1 - *d0 + 1), ZG_UQ_MAX_DAYS);
        return -1;
    }
    return 0;
}

int zg_uq_group_by(const char *s, int dims[2], int *n, char *err, size_t cap)
{
    *n = 0;
    const char *p = s ? s : "";
    for (;;) {
        size_t len = strcspn(p, ",");
        int dim = -1;
        for (int i = 0; i < ZG_DIM_COUNT; i++)
            if (strlen(DIMS[i]) == len && memcmp(DIMS[i], p, len) == 0)
                dim = i;
        if (dim < 0) {
            snprintf(err, cap, "group_by: expected one or two of day, model, key, surface (e.g. day,model)");
            return -1;
        }
        if (*n == 2 || (*n == 1 && dims[0] == dim)) {
            snprintf(err, cap, "group_by: at most two different dimensions");
            return -1;
        }
        dims[(*n)++] = dim;
        if (!p[len])
            return 0;
        p += len + 1;
    }
}

/* A cursor: the start time's digits YYYYMMDDhhmmssfff, '_', the row id. */
int zg_uq_cursor_make(const char *created, int64_t id, char *out, size_t cap)
{
    static const int at[] = {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22};
    char t[18];
    if (!created || strlen(created) != 23 || id < 1)
        return -1;
    for (int i = 0; i < 17; i++) {
        if (created[at[i]] < '0' || created[at[i]] > '9')
            return -1;
        t[i] = created[at[i]];
    }
    t[17] = '\0';
    return snprintf(out, cap, "%s_%lld", t, (long long)id) < (int)cap ? 0 : -1;
}

int zg_uq_cursor_parse(const char *s, char *created, size_t cap, int64_t *id)
{
    int y, mo, d, h, mi, se, ms;
    if (!s || strlen(s) < 19 || s[17] != '_' || cap < 24)
        return -1;
    if (!digits(s, 4, &y) || !digits(s + 4, 2, &mo) || !digits(s + 6, 2, &d) || !digits(s + 8, 2, &h) ||
        !digits(s + 10, 2, &mi) || !digits(s + 12, 2, &se) || !digits(s + 14, 3, &ms))
        return -1;
    if (y < 2000 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 59)
        return -1;
    const char *n = s + 18;
    if (*n == '0') /* one spelling per cursor */
        return -1;
    for (const char *q = n; *q; q++)
        if (*q < '0' || *q > '9')
            return -1;
    if (zg_parse_i64(n, strlen(n), 1, INT64_MAX, id) != 0)
        return -1;
    snprintf(created, cap, "%04d-%02d-%02d %02d:%02d:%02d.%03d", y, mo, d, h, mi, se, ms);
    return 0;
}
