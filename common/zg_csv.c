/* CSV output: see zg_csv.h. */
#include "zg_csv.h"
#include "zg_num.h"
#include <inttypes.h>
#include <string.h>

int zg_csv_text(zg_buf *b, bool first, const char *s, size_t n)
{
    int rc = first ? ZG_OK : zg_buf_putc(b, ',');
    if (rc != ZG_OK || !s || n == 0)
        return rc;
    bool formula = strchr("=+-@\t\r", s[0]) != NULL;
    bool quote = formula;
    for (size_t i = 0; i < n && !quote; i++)
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
    if (!quote)
        return zg_buf_append(b, s, n);
    size_t mark = b->len;
    rc = zg_buf_putc(b, '"');
    if (rc == ZG_OK && formula)
        rc = zg_buf_putc(b, '\'');
    for (size_t i = 0; i < n && rc == ZG_OK; i++)
        rc = s[i] == '"' ? zg_buf_append(b, "\"\"", 2) : zg_buf_putc(b, s[i]);
    if (rc == ZG_OK)
        rc = zg_buf_putc(b, '"');
    if (rc != ZG_OK) { /* all of the field or none of it */
        b->len = mark;
        b->data[mark] = '\0';
    }
    return rc;
}

int zg_csv_int(zg_buf *b, bool first, int64_t v)
{
    return zg_buf_printf(b, "%s%" PRId64, first ? "" : ",", v);
}

int zg_csv_micros(zg_buf *b, bool first, int64_t v)
{
    char t[40];
    zg_fmt_usd(v, t, sizeof t);
    return zg_buf_printf(b, "%s%s", first ? "" : ",", t);
}

int zg_csv_end(zg_buf *b)
{
    return zg_buf_append(b, "\r\n", 2);
}
