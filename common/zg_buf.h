#ifndef ZG_BUF_H
#define ZG_BUF_H
#include <stddef.h>
#include <stdarg.h>

/* Result codes shared by every capped operation. */
enum { ZG_OK = 0, ZG_E_TOOBIG = -2, ZG_E_NOMEM = -3, ZG_E_IO = -4, ZG_E_PARSE = -5 };

/* A growable byte buffer with a hard cap. Contents are always NUL-terminated
 * (the terminator is not counted in len). */
typedef struct zg_buf {
    char *data;
    size_t len;
    size_t alloc;
    size_t cap;
} zg_buf;

/* Initialise an empty buffer that may hold at most cap bytes. */
void zg_buf_init(zg_buf *b, size_t cap);
/* Release memory; the buffer may be re-initialised or reused after zg_buf_init. */
void zg_buf_free(zg_buf *b);
/* Forget the contents, keep the allocation. */
void zg_buf_reset(zg_buf *b);
/* Cut b back to its first len bytes (nothing when it is shorter). */
void zg_buf_truncate(zg_buf *b, size_t len);
/* Append n bytes: ZG_OK, ZG_E_TOOBIG (cap would be exceeded; buffer unchanged) or ZG_E_NOMEM. */
int zg_buf_append(zg_buf *b, const void *p, size_t n);
/* Append a NUL-terminated string. */
int zg_buf_puts(zg_buf *b, const char *s);
/* Append one byte. */
int zg_buf_putc(zg_buf *b, char c);
/* Append formatted text (vsnprintf into the buffer). */
int zg_buf_printf(zg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int zg_buf_vprintf(zg_buf *b, const char *fmt, va_list ap);
/* Append s as the body of a JSON string (without quotes), escaping as RFC 8259 requires; each byte
 * that is not part of well-formed UTF-8 becomes U+FFFD, so the output is always valid JSON text. */
int zg_buf_json_str(zg_buf *b, const char *s, size_t n);
/* Drop the first n bytes (n <= len). */
void zg_buf_consume(zg_buf *b, size_t n);
/* The contents as a C string ("" when empty; never NULL). */
const char *zg_buf_cstr(const zg_buf *b);

/* Offset of the first byte of s[0..n) that is not well-formed UTF-8 (RFC 3629: overlong forms,
 * encoded surrogates, values above U+10FFFF and stray or missing continuation bytes are not), or n
 * when all of it is. */
size_t zg_utf8_check(const char *s, size_t n);

#endif
