#include "zg_record.h"
#include "zg_num.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MS_CAP 2000000000LL

void zg_record_field(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (dst[i] == ' ' || dst[i] == '"' || dst[i] == '\\' || (unsigned char)dst[i] < 0x20 || dst[i] == 0x7f)
            dst[i] = '_';
}

void zg_record_settlement(zg_record *r, const zg_settlement *s)
{
    zg_record_field(r->status, sizeof r->status, s->status);
    zg_record_field(r->reason, sizeof r->reason, s->end_reason);
    r->credits = s->credits;
    r->u = s->usage;
    r->est = s->estimated ? 1 : 0;
    r->ups = s->upstream_status;
    r->ttfb = s->ttfb_ms;
    r->dur = s->duration_ms;
    zg_record_field(r->channel, sizeof r->channel, s->channel);
    r->attempts = s->attempts > 0 ? s->attempts : 1;
}

zg_settlement zg_record_as_settlement(const zg_record *r)
{
    zg_settlement s = {.status = r->status, .end_reason = r->reason, .credits = r->credits, .usage = r->u,
                       .estimated = r->est != 0, .upstream_status = r->ups, .ttfb_ms = r->ttfb,
                       .duration_ms = r->dur, .channel = r->channel[0] ? r->channel : NULL,
                       .attempts = r->attempts > 0 ? r->attempts : 1};
    return s;
}

int64_t zg_record_ms(int64_t ms)
{
    return ms < 0 ? -1 : ms > MS_CAP ? MS_CAP : ms;
}

/* Token counts in line order: input, output, cache read, cache writes 5m and 1h, reasoning, units. */
static void usage_to(int64_t *v, const zg_usage *u)
{
    v[0] = u->input;
    v[1] = u->output;
    v[2] = u->cache_read;
    v[3] = u->cache_write_5m;
    v[4] = u->cache_write_1h;
    v[5] = u->reasoning;
    v[6] = u->units;
}

static void usage_from(zg_usage *u, const int64_t *v)
{
    u->input = v[0];
    u->output = v[1];
    u->cache_read = v[2];
    u->cache_write_5m = v[3];
    u->cache_write_1h = v[4];
    u->reasoning = v[5];
    u->units = v[6];
}

/* ---- formatting -------------------------------------------------------------------------------------- */

struct out {
    char *p;
    size_t cap, len;
    bool over;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    if (o->over)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->cap - o->len)
        o->over = true;
    else
        o->len += (size_t)n;
}

static void put_admission(struct out *o, const zg_record *r)
{
    put(o, " %lld %lld %s %s %s %s %lld", (long long)r->user, (long long)r->key, r->grp, r->surface, r->model,
        r->provider, (long long)r->hold);
}

/* " credits input output cache_read cw5m cw1h reasoning units" in one call (a settlement is
 * journaled on the request's path). */
static void put_counts(struct out *o, int64_t credits, const zg_usage *u)
{
    put(o, " %lld %lld %lld %lld %lld %lld %lld %lld", (long long)credits, (long long)u->input,
        (long long)u->output, (long long)u->cache_read, (long long)u->cache_write_5m, (long long)u->cache_write_1h,
        (long long)u->reasoning, (long long)u->units);
}

static void put_settlement(struct out *o, const zg_record *r)
{
    put(o, " %s %s %lld", r->status, r->reason, (long long)r->credits);
    put_counts(o, r->rel, &r->u);
    put(o, " %d %d %lld %lld %s %d", r->est, r->ups, (long long)r->ttfb, (long long)r->dur,
        r->channel[0] ? r->channel : "-", r->attempts > 0 ? r->attempts : 1);
}

size_t zg_record_line(int kind, const zg_record *r, char *out, size_t cap)
{
    if (!cap || !strchr("APSDUX", kind) || !kind)
        return 0;
    struct out o = {out, cap, 0, false};
    put(&o, "%c %s", kind, r->rid);
    if (kind == 'A' || kind == 'P' || kind == 'S')
        put_admission(&o, r);
    if (kind == 'S' || kind == 'X')
        put_settlement(&o, r);
    if (kind == 'U')
        put_counts(&o, r->credits, &r->u);
    put(&o, "\n");
    return o.over ? 0 : o.len;
}

/* ---- parsing ----------------------------------------------------------------------------------------- */

#define MAX_FIELDS 28

static int nums(char **f, int n, int64_t lo, int64_t *v)
{
    for (int i = 0; i < n; i++)
        if (zg_parse_i64z(f[i], lo, INT64_MAX, &v[i]) != 0)
            return -1;
    return 0;
}

/* The channel fields after a SETTLEMENT (f[0] channel or "-", f[1] attempts). */
static int take_channel(char **f, zg_record *r)
{
    int64_t a;
    if (zg_parse_i64z(f[1], 1, 255, &a) != 0)
        return -1;
    zg_record_field(r->channel, sizeof r->channel, strcmp(f[0], "-") == 0 ? "" : f[0]);
    r->attempts = (int)a;
    return 0;
}

/* SETTLEMENT fields f[0..15) (with_rel) or the older spool form without "released" (14). */
static int take_settlement(char **f, bool with_rel, zg_record *r)
{
    r->attempts = 1;
    zg_record_field(r->status, sizeof r->status, f[0]);
    zg_record_field(r->reason, sizeof r->reason, f[1]);
    int n = with_rel ? 13 : 12;
    int64_t v[13];
    if (nums(f + 2, n, INT64_MIN, v) != 0)
        return -1;
    int i = 0;
    r->credits = v[i++];
    r->rel = with_rel ? v[i++] : 0;
    usage_from(&r->u, v + i);
    i += 7;
    if (v[i] < 0 || v[i] > 1 || v[i + 1] < 0 || v[i + 1] > 999)
        return -1;
    r->est = (int)v[i];
    r->ups = (int)v[i + 1];
    r->ttfb = v[i + 2];
    r->dur = v[i + 3];
    return 0;
}

static int take_admission(char **f, zg_record *r)
{
    zg_record_field(r->grp, sizeof r->grp, f[2]);
    zg_record_field(r->surface, sizeof r->surface, f[3]);
    zg_record_field(r->model, sizeof r->model, f[4]);
    zg_record_field(r->provider, sizeof r->provider, f[5]);
    return zg_parse_i64z(f[0], 0, INT64_MAX, &r->user) || zg_parse_i64z(f[1], 0, INT64_MAX, &r->key) ||
                   zg_parse_i64z(f[6], 0, INT64_MAX, &r->hold)
               ? -1
               : 0;
}

int zg_record_parse(char *line, zg_record *r)
{
    char *f[MAX_FIELDS];
    int n = 0;
    char *save = NULL;
    memset(r, 0, sizeof *r);
    for (char *t = strtok_r(line, " \n", &save); t; t = strtok_r(NULL, " \n", &save)) {
        if (n == MAX_FIELDS)
            return 0;
        f[n++] = t;
    }
    if (n < 2)
        return 0;
    if (f[0][1]) {
        /* a spool line of the older form: rid SETTLEMENT without "released" */
        if (n != 15 || strlen(f[0]) >= sizeof r->rid)
            return 0;
        zg_record_field(r->rid, sizeof r->rid, f[0]);
        return take_settlement(f + 1, false, r) == 0 ? 'X' : 0;
    }
    int kind = f[0][0];
    if (strlen(f[1]) >= sizeof r->rid)
        return 0;
    zg_record_field(r->rid, sizeof r->rid, f[1]);
    r->ttfb = r->dur = -1;
    r->attempts = 1;
    switch (kind) {
    case 'D':
        return n == 2 ? 'D' : 0;
    case 'U': {
        int64_t v[8];
        if (n != 10 || nums(f + 2, 8, 0, v) != 0)
            return 0;
        r->credits = v[0];
        usage_from(&r->u, v + 1);
        return 'U';
    }
    case 'A':
    case 'P':
        if (n != 9 || take_admission(f + 2, r) != 0)
            return 0;
        zg_record_field(r->status, sizeof r->status, "abandoned");
        zg_record_field(r->reason, sizeof r->reason, "abandoned");
        r->credits = r->hold;
        r->est = 1;
        return kind;
    case 'S':
        return (n == 24 || n == 26) && take_admission(f + 2, r) == 0 && take_settlement(f + 9, true, r) == 0 &&
                       (n == 24 || take_channel(f + 24, r) == 0)
                   ? 'S'
                   : 0;
    case 'X':
        return (n == 17 || n == 19) && take_settlement(f + 2, true, r) == 0 && (n == 17 || take_channel(f + 17, r) == 0)
                   ? 'X'
                   : 0;
    default:
        return 0;
    }
}

/* ---- zg_flush rows ----------------------------------------------------------------------------------- */

int zg_record_json(zg_buf *b, const zg_record *r)
{
    int rc = zg_buf_printf(b, "[\"%s\",%lld,%lld,\"%s\",\"%s\",\"%s\",\"%s\",%lld,\"%s\",\"%s\",%lld,%lld", r->rid,
                           (long long)r->user, (long long)r->key, r->grp, r->surface, r->model, r->provider,
                           (long long)r->hold, r->status, r->reason, (long long)r->credits, (long long)r->rel);
    int64_t v[7];
    usage_to(v, &r->u);
    for (int i = 0; rc == ZG_OK && i < 7; i++)
        rc = zg_buf_printf(b, ",%lld", (long long)v[i]);
    if (rc == ZG_OK)
        rc = zg_buf_printf(b, ",%d", r->est);
    int64_t t[3] = {r->ups > 0 ? r->ups : -1, zg_record_ms(r->ttfb), zg_record_ms(r->dur)};
    for (int i = 0; rc == ZG_OK && i < 3; i++)
        rc = t[i] >= 0 ? zg_buf_printf(b, ",%lld", (long long)t[i]) : zg_buf_printf(b, ",null");
    if (rc == ZG_OK)
        rc = r->channel[0] ? zg_buf_printf(b, ",\"%s\"", r->channel) : zg_buf_printf(b, ",null");
    if (rc == ZG_OK)
        rc = zg_buf_printf(b, ",%d", r->attempts > 0 ? r->attempts : 1);
    return rc == ZG_OK ? zg_buf_printf(b, "]") : rc;
}
