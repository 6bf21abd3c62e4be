/* zg_db: reading cells in row callbacks (no connection needed; linked by the unit tests' stand-in
 * database too). */
#include "zg_db.h"
#include "zg_num.h"
#include <string.h>

void zg_db_cell_str(char *dst, size_t cap, const char *v, size_t n)
{
    if (!v)
        v = "", n = 0;
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

int64_t zg_db_cell_int(const char *v, size_t n, int64_t def)
{
    int64_t x;
    return v && zg_parse_i64(v, n, INT64_MIN, INT64_MAX, &x) == 0 ? x : def;
}
