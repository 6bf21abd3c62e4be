/* libFuzzer harness: the settlement record codec. Whatever a journal or spool line holds, parsing
 * never crashes; a line that parses formats again and parses back to the same kind and fields. */
#include "zg_record.h"
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *line = malloc(size + 1);
    if (!line)
        return 0;
    memcpy(line, data, size);
    line[size] = '\0';
    zg_record r;
    int kind = zg_record_parse(line, &r);
    free(line);
    if (!kind)
        return 0;
    if (!strchr("APSDUX", kind))
        abort();
    char out[ZG_REC_LINE_MAX];
    size_t n = zg_record_line(kind, &r, out, sizeof out);
    if (!n || out[n - 1] != '\n')
        abort();
    zg_record back;
    if (zg_record_parse(out, &back) != kind || strcmp(back.rid, r.rid) != 0 || back.credits != r.credits ||
        back.u.output != r.u.output || back.hold != r.hold)
        abort();
    zg_buf b;
    zg_buf_init(&b, 1 << 16);
    if (zg_record_json(&b, &r) != ZG_OK)
        abort();
    zg_buf_free(&b);
    return 0;
}
