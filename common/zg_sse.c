#include "zg_sse.h"
#include <string.h>

void zg_sse_init(zg_sse *p, size_t cap)
{
    zg_buf_init(&p->buf, cap ? cap : 1);
    zg_buf_init(&p->data, cap ? cap : 1);
    p->scan = 0;
    p->start = 0;
    p->cr = 0;
    p->skip = 0;
    p->skip_line = 0;
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
                    return ZG_E_NOMEM;
                if (zg_buf_putc(&p->data, '\n') != ZG_OK || zg_buf_append(&p->data, val, vlen) != ZG_OK)
                    return ZG_E_NOMEM;
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

/* Find line ends in buf from p->scan; deliver and consume every event completed. */
static int scan(zg_sse *p, zg_sse_fn fn, void *ctx)
{
    size_t i = p->scan;
    while (i < p->buf.len) {
        char ch = p->buf.data[i];
        if (ch == '\n' && p->cr) {
            p->cr = 0;
            if (i == 0) {
                /* the LF of the CRLF whose CR ended the previous event, arriving late: pass it on */
                int rc = fn(ctx, "", 0, "", 0, p->buf.data, 1);
                zg_buf_consume(&p->buf, 1);
                p->start = p->scan = 0;
                if (rc)
                    return rc;
                continue;
            }
            p->start = ++i; /* the rest of a CRLF line end */
            continue;
        }
        p->cr = 0;
        if (ch != '\r' && ch != '\n') {
            i++;
            continue;
        }
        int blank = i == p->start;
        p->cr = ch == '\r';
        p->start = ++i;
        if (!blank)
            continue;
        /* a blank line ends the event; a CR is delivered at once, with its LF when that is here */
        if (p->cr && i < p->buf.len && p->buf.data[i] == '\n') {
            p->cr = 0;
            i++;
        }
        int rc = deliver(p, i, fn, ctx);
        zg_buf_consume(&p->buf, i);
        i = p->start = p->scan = 0;
        if (rc)
            return rc;
    }
    p->scan = i;
    return 0;
}

/* An event over the cap: pass bytes on as they come until its blank line. Returns bytes used. */
static size_t skip_through(zg_sse *p, const char *bytes, size_t n)
{
    size_t j = 0;
    while (j < n) {
        char ch = bytes[j++];
        if (ch == '\n' && p->cr) {
            p->cr = 0;
            continue;
        }
        p->cr = ch == '\r';
        if (ch != '\r' && ch != '\n') {
            p->skip_line = 1;
            continue;
        }
        if (!p->skip_line) {
            p->skip = 0; /* the blank line: normal parsing resumes after it */
            if (p->cr && j < n && bytes[j] == '\n') {
                p->cr = 0;
                j++;
            }
            break;
        }
        p->skip_line = 0;
    }
    return j;
}

int zg_sse_feed(zg_sse *p, const char *bytes, size_t n, zg_sse_fn fn, void *ctx)
{
    while (n > 0) {
        int rc;
        if (p->skip) {
            size_t used = skip_through(p, bytes, n);
            rc = fn(ctx, "", 0, "", 0, bytes, used);
            bytes += used;
            n -= used;
            if (rc)
                return rc;
            continue;
        }
        size_t room = p->buf.cap - p->buf.len;
        if (room == 0) {
            /* the buffer holds one incomplete event as large as the cap: hand it on unparsed */
            p->skip = 1;
            p->skip_line = p->start < p->buf.len;
            rc = fn(ctx, "", 0, "", 0, p->buf.data, p->buf.len);
            zg_buf_reset(&p->buf);
            p->scan = p->start = 0;
            if (rc)
                return rc;
            continue;
        }
        size_t take = n < room ? n : room;
        rc = zg_buf_append(&p->buf, bytes, take);
        if (rc != ZG_OK)
            return rc;
        bytes += take;
        n -= take;
        rc = scan(p, fn, ctx);
        if (rc)
            return rc;
    }
    return 0;
}

size_t zg_sse_pending(const zg_sse *p, const char **raw)
{
    *raw = p->buf.data ? p->buf.data : "";
    return p->buf.len;
}
