/* The scripted database of the unit tests (fake_db.c). */
#ifndef ZG_FAKE_DB_H
#define ZG_FAKE_DB_H
#include "zg_db.h"

#define FAKE_MAX 256

/* What one statement answers, in order: errnum 0 = success (then `row`, comma-separated values, is
 * the one result row, or NULL for none), else a failure with that error number (2013 a lost
 * connection, 1406 data too long...). Statements beyond the script succeed with no row. */
typedef struct fake_answer {
    unsigned errnum;
    const char *row;
} fake_answer;

/* A statement that was run: its SQL, its first parameter when that is a string, and every
 * parameter as text (NULL as "NULL", cut to fit). */
typedef struct fake_call {
    char sql[128];
    char first[64];
    char p[24][48];
    int np;
} fake_call;

extern fake_call fake_calls[FAKE_MAX];
extern int fake_ncalls;

/* Set the answers of the next statements and forget the calls recorded so far. */
void fake_db_script(const fake_answer *answers, int n);

#endif
