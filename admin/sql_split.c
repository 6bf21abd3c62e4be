/* Splitting SQL scripts into statements (see sql_split.h). */
#include "sql_split.h"
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return false;
    return true;
}

/* Split a SQL script into statements the way the mariadb client does: statements end with the
 * current delimiter (";" until a "DELIMITER xx" line changes it) outside quotes and comments;
 * "-- ", "#" and non-executable block comments are dropped; blank statements are skipped. Calls
 * fn with each statement and the line it starts on. 0, or -1 with a message in err (or fn's -1). */
int sql_split(const char *sql, stmt_fn fn, void *ud, char *err, size_t errlen)
{
    char delim[16] = ";";
    size_t dlen = 1, n = strlen(sql), i = 0;
    size_t cap = n + 1, len = 0;
    char *cur = malloc(cap);
    if (!cur) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int line = 1, start = 1, rc = 0;
    bool bol = true;
    while (i < n && rc == 0) {
        if (bol) {
            bol = false;
            size_t j = i;
            while (j < n && (sql[j] == ' ' || sql[j] == '\t'))
                j++;
            if (n - j >= 9 && strncasecmp(sql + j, "delimiter", 9) == 0 &&
                (j + 9 == n || sql[j + 9] == ' ' || sql[j + 9] == '\t' || sql[j + 9] == '\r' || sql[j + 9] == '\n')) {
                if (!blank(cur, len)) {
                    snprintf(err, errlen, "line %d: DELIMITER inside an unterminated statement", line);
                    rc = -1;
                    break;
                }
                j += 9;
                while (j < n && (sql[j] == ' ' || sql[j] == '\t'))
                    j++;
                size_t k = j;
                while (k < n && sql[k] != ' ' && sql[k] != '\t' && sql[k] != '\r' && sql[k] != '\n')
                    k++;
                if (k == j || k - j >= sizeof delim) {
                    snprintf(err, errlen, "line %d: bad DELIMITER", line);
                    rc = -1;
                    break;
                }
                memcpy(delim, sql + j, k - j);
                delim[k - j] = '\0';
                dlen = k - j;
                len = 0;
                while (k < n && sql[k] != '\n')
                    k++;
                i = k; /* the newline is handled below */
                continue;
            }
        }
        char c = sql[i];
        if (c == '\n') {
            line++;
            bol = true;
            cur[len++] = c;
            i++;
            continue;
        }
        if (blank(cur, len))
            start = line;
        if ((c == '-' && i + 2 <= n && sql[i + 1] == '-' &&
             (i + 2 == n || sql[i + 2] == ' ' || sql[i + 2] == '\t' || sql[i + 2] == '\r' || sql[i + 2] == '\n')) ||
            c == '#') {
            while (i < n && sql[i] != '\n')
                i++;
            continue;
        }
        if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
            const char *end = strstr(sql + i + 2, "*/");
            if (!end) {
                snprintf(err, errlen, "line %d: unterminated comment", line);
                rc = -1;
                break;
            }
            bool executable = i + 2 < n && sql[i + 2] == '!'; /* kept, delimiters inside ignored */
            for (const char *q = sql + i; q < end + 2; q++) {
                line += *q == '\n';
                if (executable)
                    cur[len++] = *q;
            }
            if (!executable)
                cur[len++] = ' ';
            i = (size_t)(end - sql) + 2;
            continue;
        }
        if (c == '\'' || c == '"' || c == '`') {
            size_t j = i + 1;
            for (;;) {
                if (j >= n) {
                    snprintf(err, errlen, "line %d: unterminated %c quote", line, c);
                    rc = -1;
                    break;
                }
                if (sql[j] == '\\' && c != '`' && j + 1 < n) {
                    j += 2;
                    continue;
                }
                if (sql[j] == c) {
                    if (j + 1 < n && sql[j + 1] == c) {
                        j += 2;
                        continue;
                    }
                    break;
                }
                j++;
            }
            if (rc)
                break;
            for (size_t q = i; q <= j; q++) {
                line += sql[q] == '\n';
                cur[len++] = sql[q];
            }
            i = j + 1;
            continue;
        }
        if (strncmp(sql + i, delim, dlen) == 0) {
            if (!blank(cur, len))
                rc = fn(ud, cur, len, start);
            len = 0;
            i += dlen;
            continue;
        }
        cur[len++] = c;
        i++;
    }
    if (rc == 0 && !blank(cur, len))
        rc = fn(ud, cur, len, start);
    free(cur);
    return rc;
}
