/* Splitting SQL scripts into statements, the way the mariadb client does (DELIMITER lines,
 * quotes, comments). */
#ifndef ZG_SQL_SPLIT_H
#define ZG_SQL_SPLIT_H
#include <stddef.h>

typedef int (*stmt_fn)(void *ud, const char *sql, size_t len, int line);
/* Split a SQL script into statements the way the mariadb client does: statements end with the
 * current delimiter (";" until a "DELIMITER xx" line changes it) outside quotes and comments;
 * "-- ", "#" and non-executable block comments are dropped; blank statements are skipped. Calls
 * fn with each statement and the line it starts on. 0, or -1 with a message in err (or fn's -1). */
int sql_split(const char *sql, stmt_fn fn, void *ud, char *err, size_t errlen);

#endif
