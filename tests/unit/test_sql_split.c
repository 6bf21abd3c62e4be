/* sql_split: statements of a SQL script, as the mariadb client would send them. */
#include "sql_split.h"
#include "tap.h"

struct got {
    char stmt[16][256];
    int line[16];
    int n;
};

/* Statements keep the blanks around them (the server ignores them): compared trimmed. */
static int collect(void *ud, const char *sql, size_t len, int line)
{
    struct got *g = ud;
    while (len && (*sql == ' ' || *sql == '\n' || *sql == '\t')) {
        sql++;
        len--;
    }
    while (len && (sql[len - 1] == ' ' || sql[len - 1] == '\n' || sql[len - 1] == '\t'))
        len--;
    if (g->n == 16 || len >= 256)
        return -1;
    memcpy(g->stmt[g->n], sql, len);
    g->stmt[g->n][len] = '\0';
    g->line[g->n++] = line;
    return 0;
}

int main(void)
{
    static const struct {
        const char *sql;
        int n;
        const char *first, *last;
        int rc;
    } cases[] = {
        {"SELECT 1;\nSELECT 2;\n", 2, "SELECT 1", "SELECT 2", 0},
        {"SELECT 1", 1, "SELECT 1", "SELECT 1", 0},
        {"-- a comment; with a semicolon\nSELECT 1; # another; one\n", 1, "SELECT 1", "SELECT 1", 0},
        {"SELECT ';' AS s; SELECT \"a;b\";", 2, "SELECT ';' AS s", "SELECT \"a;b\"", 0},
        {"SELECT 'it''s;';", 1, "SELECT 'it''s;'", "SELECT 'it''s;'", 0},
        {"/* block; comment */ SELECT 1;", 1, "SELECT 1", "SELECT 1", 0},
        {"DELIMITER //\nCREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END //\nDELIMITER ;\nSELECT 3;\n", 2,
         "CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END", "SELECT 3", 0},
        {";;  ;\n", 0, NULL, NULL, 0},
        {"SELECT 'unterminated;", 0, NULL, NULL, -1},
        {"SELECT 1; /* unterminated", 1, "SELECT 1", "SELECT 1", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct got g = {.n = 0};
        char err[200] = "";
        int rc = sql_split(cases[i].sql, collect, &g, err, sizeof err);
        is_int(rc, cases[i].rc, "case %zu: result (%s)", i, err);
        if (cases[i].rc != 0)
            continue;
        is_int(g.n, cases[i].n, "case %zu: statements", i);
        if (cases[i].n > 0) {
            is_str(g.stmt[0], cases[i].first, "case %zu: first statement", i);
            is_str(g.stmt[g.n - 1], cases[i].last, "case %zu: last statement", i);
        }
    }
    /* line numbers of statements */
    struct got g = {.n = 0};
    char err[200];
    sql_split("SELECT 1;\n\n-- x\nSELECT 2;\n", collect, &g, err, sizeof err);
    is_int(g.line[0], 1, "first statement on line 1");
    is_int(g.line[1], 4, "second statement on line 4");
    return tap_done();
}
