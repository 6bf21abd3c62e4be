/* CSV output (RFC 4180): fields separated by commas, records ended by CRLF, a field quoted when it
 * holds a comma, a quote, CR or LF (quotes doubled). Text that a spreadsheet would run as a formula
 * (starting with = + - @, tab or CR) is prefixed with a single quote. */
#ifndef ZG_CSV_H
#define ZG_CSV_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "zg_buf.h"

/* Append one text field (s of n bytes; NULL is an empty field), preceded by a comma unless first.
 * Returns the zg_buf result (ZG_OK, ZG_E_TOOBIG, ZG_E_NOMEM). */
int zg_csv_text(zg_buf *b, bool first, const char *s, size_t n);
/* Append one integer field. */
int zg_csv_int(zg_buf *b, bool first, int64_t v);
/* Append micro-units (credits, micro-dollars) as a decimal with six places, e.g. 1.250000. */
int zg_csv_micros(zg_buf *b, bool first, int64_t v);
/* End the record (CRLF). */
int zg_csv_end(zg_buf *b);

#endif
