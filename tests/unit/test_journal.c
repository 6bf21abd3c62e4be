/* The replay of a dead process's lease journal, above a scripted database (tests/unit/fake_db.c):
 * finished requests are written at their cost, admissions that never finished at the final usage
 * noted for them or else at their hold, strict admissions without a 'D' line are settled, both
 * files are read, the dead owner's leases are released, and the files are deleted only once all of
 * it reached the database (a failure keeps them whole for the next try). Also: a live process's
 * journal and another host's are left alone. */
#include "fake_db.h"
#include "zg_lease.h"
#include "zg_record.h"
#include "tap.h"
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];
static zg_settings cfg;

/* A process id that is not running: a child that has already exited. Output is flushed first
 * so that a child run under a sanitizer or valgrind, whose exit may flush stdio, cannot print
 * the parent's buffered results a second time. */
static long dead_pid(void)
{
    fflush(NULL);
    pid_t p = fork();
    if (p == 0)
        _exit(0);
    waitpid(p, NULL, 0);
    return (long)p;
}

static void journal(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static zg_record rec(const char *rid, int64_t hold)
{
    zg_record r;
    memset(&r, 0, sizeof r);
    zg_record_field(r.rid, sizeof r.rid, rid);
    zg_record_field(r.grp, sizeof r.grp, "messages");
    zg_record_field(r.surface, sizeof r.surface, "messages");
    zg_record_field(r.model, sizeof r.model, "claude-haiku-4-5");
    zg_record_field(r.provider, sizeof r.provider, "anthropic");
    r.user = 3;
    r.key = 4;
    r.hold = hold;
    return r;
}

/* Append r as a line of kind to text. */
static void add(char *text, size_t cap, int kind, const zg_record *r)
{
    size_t n = strlen(text);
    zg_record_line(kind, r, text + n, cap - n);
}

/* The call that wrote request rid, or NULL. */
static const fake_call *call_for(const char *sql_prefix, int rid_param, const char *rid)
{
    for (int i = 0; i < fake_ncalls; i++)
        if (strncmp(fake_calls[i].sql, sql_prefix, strlen(sql_prefix)) == 0 && fake_calls[i].np > rid_param &&
            strcmp(fake_calls[i].p[rid_param], rid) == 0)
            return &fake_calls[i];
    return NULL;
}

static int count_calls(const char *sql_prefix)
{
    int n = 0;
    for (int i = 0; i < fake_ncalls; i++)
        n += strncmp(fake_calls[i].sql, sql_prefix, strlen(sql_prefix)) == 0;
    return n;
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/zg-journal-test-%d", (int)getpid());
    mkdir(dir, 0700);
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.spool_path, sizeof cfg.spool_path, "%s/settle.spool", dir);
    /* this node's name ([server] node_name), not the machine's: two nodes may share a machine */
    snprintf(cfg.node_name, sizeof cfg.node_name, "node-a");
    char host[40], own[128], p0[1024], p1[1024];
    snprintf(host, sizeof host, "%s", cfg.node_name);
    snprintf(own, sizeof own, "%s:%ld:1700000000", host, dead_pid());
    snprintf(p0, sizeof p0, "%s.lease.%s.0", cfg.spool_path, own);
    snprintf(p1, sizeof p1, "%s.lease.%s.1", cfg.spool_path, own);

    zg_db *db = zg_db_new(&cfg);
    static char t0[8192], t1[8192];
    zg_record r;
    /* r-done: admitted and finished (its S line in the other file) */
    r = rec("r-done", 500);
    add(t0, sizeof t0, 'A', &r);
    zg_record_field(r.status, sizeof r.status, "settled");
    zg_record_field(r.reason, sizeof r.reason, "complete");
    r.credits = 120;
    r.rel = 120;
    r.u.input = 10;
    r.u.output = 20;
    r.ups = 200;
    r.ttfb = 30;
    r.dur = 90;
    add(t1, sizeof t1, 'S', &r);
    /* r-usage: admitted, final usage seen, never finished */
    r = rec("r-usage", 700);
    add(t0, sizeof t0, 'A', &r);
    r.credits = 333;
    r.u.output = 44;
    add(t0, sizeof t0, 'U', &r);
    /* r-lost: admitted, nothing else */
    r = rec("r-lost", 900);
    add(t0, sizeof t0, 'A', &r);
    /* r-strict-done: strict, settled */
    r = rec("r-strict-done", 50);
    add(t0, sizeof t0, 'P', &r);
    add(t0, sizeof t0, 'D', &r);
    /* r-strict: strict, pending */
    r = rec("r-strict", 60);
    add(t1, sizeof t1, 'P', &r);
    /* a torn last line (the process died mid-write) and garbage are skipped */
    strcat(t0, "Q what\nS r-torn 3 4 messages messa");
    journal(p0, t0);
    journal(p1, t1);

    /* the database goes away after the first write: nothing is deleted */
    fake_db_script((fake_answer[]){{0, "0,0"}, {2013, NULL}}, 2);
    ok(zg_lease_maintain(db, &cfg) < 0, "a failed replay says so");
    ok(access(p0, F_OK) == 0 && access(p1, F_OK) == 0, "and keeps both files");

    /* the database is back: everything, once more (the procedures are idempotent per request id) */
    fake_db_script(NULL, 0);
    is_int(zg_lease_maintain(db, &cfg), 4, "four requests billed or confirmed");
    is_int(count_calls("CALL zg_settle_direct"), 3, "three leased requests written");
    const fake_call *c = call_for("CALL zg_settle_direct", 3, "r-done");
    ok(c && strcmp(c->p[0], own) == 0, "r-done written as the dead owner's");
    ok(c && strcmp(c->p[12], "120") == 0 && strcmp(c->p[10], "settled") == 0 && strcmp(c->p[11], "complete") == 0 &&
           strcmp(c->p[22], "30") == 0,
       "r-done at its cost, as it finished");
    c = call_for("CALL zg_settle_direct", 3, "r-usage");
    ok(c && strcmp(c->p[12], "333") == 0 && strcmp(c->p[14], "44") == 0 && strcmp(c->p[20], "0") == 0 &&
           strcmp(c->p[10], "abandoned") == 0,
       "r-usage at the final usage noted, not estimated");
    c = call_for("CALL zg_settle_direct", 3, "r-lost");
    ok(c && strcmp(c->p[12], "900") == 0 && strcmp(c->p[20], "1") == 0 && strcmp(c->p[22], "NULL") == 0,
       "r-lost at its hold, estimated, no times");
    ok(!call_for("CALL zg_settle_direct", 3, "r-torn"), "the torn line is not billed");
    c = call_for("CALL zg_settle(", 0, "r-strict");
    ok(c && strcmp(c->p[3], "60") == 0, "the pending strict admission settled at its hold");
    ok(!call_for("CALL zg_settle(", 0, "r-strict-done"), "the settled one left alone");
    c = call_for("CALL zg_lease_drop", 0, own);
    ok(c && strcmp(c->p[1], "0") == 0, "the dead owner's leases released, all at once");
    ok(access(p0, F_OK) != 0 && access(p1, F_OK) != 0, "both files deleted");

    /* a live process's journal and another host's are not touched */
    char live[1024], other[1024];
    snprintf(live, sizeof live, "%s.lease.%s:%ld:1.0", cfg.spool_path, host, (long)getpid());
    snprintf(other, sizeof other, "%s.lease.not-%s:%ld:1.0", cfg.spool_path, host, dead_pid());
    r = rec("r-live", 10);
    char line[ZG_REC_LINE_MAX] = "";
    add(line, sizeof line, 'A', &r);
    journal(live, line);
    journal(other, line);
    fake_db_script(NULL, 0);
    is_int(zg_lease_maintain(db, &cfg), 0, "nothing replayed");
    is_int(count_calls("CALL zg_settle_direct"), 0, "nothing written");
    ok(access(live, F_OK) == 0 && access(other, F_OK) == 0, "both kept");
    unlink(live);
    unlink(other);
    char spool_left[1024];
    snprintf(spool_left, sizeof spool_left, "%s", cfg.spool_path);
    unlink(spool_left);
    rmdir(dir);
    zg_db_free(db);
    return tap_done();
}
