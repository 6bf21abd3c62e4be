#ifndef ZG_NUM_H
#define ZG_NUM_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parse a base-10 integer from s[0..n) (optional leading '-', digits only, no spaces) within
 * [min, max]. Returns 0 and sets *out, or -1 on any malformation or overflow. */
int zg_parse_i64(const char *s, size_t n, int64_t min, int64_t max, int64_t *out);
/* Same for a NUL-terminated string. */
int zg_parse_i64z(const char *s, int64_t min, int64_t max, int64_t *out);
/* A database column's integer text as int64_t: 0 when NULL, malformed or out of range. */
int64_t zg_i64_or0(const char *s);
/* Parse a non-negative decimal amount of dollars ("12", "12.5", "0.000001") into micro-dollars,
 * exactly (at most 6 decimals, at most $1e12). Returns 0 or -1. */
int zg_parse_usd_micros(const char *s, int64_t *out);
/* Format micro-dollars as dollars with 6 decimals ("12.500000"). */
void zg_fmt_usd(int64_t micros, char *out, size_t outlen);
/* Cost in credits of `tokens` at `price` micro-dollars per million tokens, summed over n components
 * and rounded once, half up, to a whole credit. Negative inputs count as 0. */
int64_t zg_price_tokens(const int64_t *tokens, const int64_t *prices, size_t n);

#endif
