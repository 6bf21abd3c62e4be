#include "zg_buf.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void zg_buf_init(zg_buf *b, size_t cap)
{
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->cap = cap;
}

void zg_buf_free(zg_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
}

void zg_buf_reset(zg_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void zg_buf_truncate(zg_buf *b, size_t len)
{
    if (len >= b->len)
        return;
    b->len = len;
    b->data[len] = '\0';
}

static int reserve(zg_buf *b, size_t extra)
{
    if (extra > b->cap || b->len > b->cap - extra)
        return ZG_E_TOOBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->alloc)
        return ZG_OK;
    size_t n = b->alloc ? b->alloc : 256;
    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2;
    if (n > b->cap + 1)
        n = b->cap + 1;
    char *p = realloc(b->data, n);
    if (!p)
        return ZG_E_NOMEM;
    b->data = p;
    b->alloc = n;
    return ZG_OK;
}

int zg_buf_append(zg_buf *b, const void *p, size_t n)
{
    int rc = reserve(b, n);
    if (rc != ZG_OK)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return ZG_OK;
}

int zg_buf_puts(zg_buf *b, const char *s)
{
    return zg_buf_append(b, s, strlen(s));
}

int zg_buf_putc(zg_buf *b, char c)
{
    return zg_buf_append(b, &c, 1);
}

int zg_buf_vprintf(zg_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return ZG_E_PARSE;
    if ((size_t)n < sizeof tmp)
        return zg_buf_append(b, tmp, (size_t)n);
    int rc = reserve(b, (size_t)n);
    if (rc != ZG_OK)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return ZG_OK;
}

int zg_buf_printf(zg_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = zg_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

/* Length of the well-formed UTF-8 sequence at s[0..n) (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF), or 0 if the bytes there are not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

size_t zg_utf8_check(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) { /* the common case: a run of ASCII */
            i++;
            continue;
        }
        size_t k = utf8_seq(u + i, n - i);
        if (!k)
            return i;
        i += k;
    }
    return n;
}

int zg_buf_json_str(zg_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u8 = (const unsigned char *)s;
    size_t start = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = u8[i];
        const char *esc = NULL;
        char u[7];
        size_t skip = 1;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20) {
                u[0] = '\\'; u[1] = 'u'; u[2] = '0'; u[3] = '0';
                u[4] = hex[c >> 4]; u[5] = hex[c & 15]; u[6] = '\0';
                esc = u;
            } else if (c >= 0x80) {
                skip = utf8_seq(u8 + i, n - i);
                if (skip == 0) {
                    esc = "\xEF\xBF\xBD"; /* U+FFFD for each byte that is not valid UTF-8 */
                    skip = 1;
                }
            }
        }
        if (!esc) {
            i += skip;
            continue;
        }
        int rc = zg_buf_append(b, s + start, i - start);
        if (rc == ZG_OK)
            rc = zg_buf_puts(b, esc);
        if (rc != ZG_OK)
            return rc;
        i += skip;
        start = i;
    }
    return zg_buf_append(b, s + start, n - start);
}

void zg_buf_consume(zg_buf *b, size_t n)
{
    if (n >= b->len) {
        zg_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

const char *zg_buf_cstr(const zg_buf *b)
{
    return b->data ? b->data : "";
}
