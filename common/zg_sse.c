#include "zg_sse.h"
#include <string.h>

void zg_sse_init(zg_sse *p, size_t cap)
{
    zg_buf_init(&p->buf, cap);
    zg_buf_init(&p->data, cap);
    p->scan = 0;
    p->start = 0;
}

void zg_sse_free(zg_sse *p)
{
    zg_buf_free(&p->buf);
    zg_buf_free(&p->data);
}

/* Parse the fields of the event in buf[0..end) and deliver it. */
static int deliver(zg_sse *p, size_t end, zg_sse_fn fn, void *ctx)
{
    const char *b = p->buf.data;
    const char *ev = "", *data = "";
    size_t elen = 0, dlen = 0;
    int ndata = 0;
    zg_buf_reset(&p->data);
    size_t i = 0;
    while (i < end) {
        size_t ls = i;
        while (i < end && b[i] != '\n' && b[i] != '\r')
            i++;
        size_t le = i;
        if (i < end && b[i] == '\r' && i + 1 < end && b[i + 1] == '\n')
            i += 2;
        else if (i < end)
            i++;
        if (le == ls || b[ls] == ':')
            continue;
        const char *colon = memchr(b + ls, ':', le - ls);
        size_t nlen = colon ? (size_t)(colon - (b + ls)) : le - ls;
        const char *val = colon ? colon + 1 : b + le;
        if (colon && val < b + le && *val == ' ')
            val++;
        size_t vlen = (size_t)(b + le - val);
        if (nlen == 5 && memcmp(b + ls, "event", 5) == 0) {
            ev = val;
            elen = vlen;
        } else if (nlen == 4 && memcmp(b + ls, "data", 4) == 0) {
            if (ndata == 0) {
                data = val;
                dlen = vlen;
            } else {
                if (ndata == 1 && zg_buf_append(&p->data, data, dlen) != ZG_OK)
                    return ZG_E_TOOBIG;
                if (zg_buf_putc(&p->data, '\n') != ZG_OK || zg_buf_append(&p->data, val, vlen) != ZG_OK)
                    return ZG_E_TOOBIG;
            }
            ndata++;
        }
    }
    if (ndata > 1) {
        data = p->data.data;
        dlen = p->data.len;
    }
    return fn(ctx, ev, elen, data, dlen, b, end);
}

int zg_sse_feed(zg_sse *p, const char *bytes, size_t n, zg_sse_fn fn, void *ctx)
{
    if (zg_buf_append(&p->buf, bytes, n) != ZG_OK)
        return ZG_E_TOOBIG;
    for (;;) {
        const char *b = p->buf.data;
        size_t len = p->buf.len, i = p->scan;
        /* find the end of the current line */
        while (i < len && b[i] != '\n' && b[i] != '\r')
            i++;
        if (i == len) {
            p->scan = i;
            return 0;
        }
        size_t le = i;
        if (b[i] == '\r') {
            if (i + 1 == len) { /* CR at the end: wait to see whether LF follows */
                p->scan = i;
                return 0;
            }
            i += b[i + 1] == '\n' ? 2 : 1;
        } else {
            i++;
        }
        int blank = le == p->start;
        p->start = i;
        p->scan = i;
        if (!blank)
            continue;
        int rc = deliver(p, i, fn, ctx);
        zg_buf_consume(&p->buf, i);
        p->scan = 0;
        p->start = 0;
        if (rc)
            return rc;
    }
}

size_t zg_sse_pending(const zg_sse *p, const char **raw)
{
    *raw = p->buf.data;
    return p->buf.len;
}
