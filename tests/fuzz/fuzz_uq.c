/* libFuzzer harness: the analytics API's query pieces and CSV fields. Whatever a query string
 * holds, parsing never crashes; a cursor that parses makes the same cursor again; a date that parses
 * formats back to itself; a CSV field reads back (RFC 4180) as the text it was given. */
#include "zg_csv.h"
#include "zg_uq.h"
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256)
        return 0;
    char s[257];
    memcpy(s, data, size);
    s[size] = '\0';
    int32_t d, a, b;
    char t[32], err[128];
    if (zg_uq_date(s, &d) == 0) {
        zg_uq_date_fmt(d, t, sizeof t);
        if (strcmp(t, s) != 0)
            abort();
    }
    if (zg_uq_month(s, &d) == 0 && zg_uq_next_month(d) <= d)
        abort();
    int dims[2], n;
    if (zg_uq_group_by(s, dims, &n, err, sizeof err) == 0 && (n < 1 || n > 2 || (n == 2 && dims[0] == dims[1])))
        abort();
    char *bar = strchr(s, '|');
    if (bar) {
        *bar = '\0';
        if (zg_uq_range(s, bar + 1, 20783, &a, &b, err, sizeof err) == 0 && (a > b || b - a >= ZG_UQ_MAX_DAYS))
            abort();
        *bar = '|';
    }
    int64_t id;
    char c[ZG_UQ_CURSOR_LEN];
    if (zg_uq_cursor_parse(s, t, sizeof t, &id) == 0) {
        if (zg_uq_cursor_make(t, id, c, sizeof c) != 0 || strcmp(c, s) != 0)
            abort();
    }
    zg_buf out;
    zg_buf_init(&out, 1024);
    if (zg_csv_text(&out, true, s, size) == ZG_OK && out.len && out.data[0] == '"') {
        /* unquote and compare, the formula guard's quote aside */
        char back[600];
        size_t k = 0;
        for (size_t i = 1; i + 1 < out.len; i++) {
            if (out.data[i] == '"')
                i++;
            back[k++] = out.data[i];
        }
        back[k] = '\0';
        const char *want = strchr("=+-@\t\r", s[0]) && s[0] ? back + 1 : back;
        if (k > 0 && out.data[out.len - 1] != '"')
            abort();
        if (strlen(s) == size && strcmp(want, s) != 0)
            abort();
    }
    zg_buf_free(&out);
    return 0;
}
