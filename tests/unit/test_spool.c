/* The settlement spool, above a scripted database (tests/unit/fake_db.c): a settlement that cannot
 * reach the database is spooled, replay applies lines in order, keeps what failed (and what comes
 * after it) in a file that replaces the spool only once complete, moves lines the database refuses
 * as bad data aside, and appenders write to the spool that is there now. */
#include "fake_db.h"
#include "zg_billing.h"
#include "tap.h"
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64], spool[128];

static int lines_of(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* The request id of a spool line, read back with the codec. */
static int request_is(const char *path, int line, const char *want)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char buf[ZG_REC_LINE_MAX];
    int i = 0, ok_ = 0;
    while (fgets(buf, sizeof buf, f))
        if (i++ == line) {
            zg_record r;
            ok_ = zg_record_parse(buf, &r) == 'X' && strcmp(r.rid, want) == 0;
            break;
        }
    fclose(f);
    return ok_;
}

static zg_settlement done(int64_t credits)
{
    zg_settlement s = {.status = "settled", .end_reason = "complete", .credits = credits, .ttfb_ms = 5,
                       .duration_ms = 9};
    s.usage.input = 10;
    s.usage.output = credits;
    return s;
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/zg-spool-test-%d", (int)getpid());
    mkdir(dir, 0700);
    snprintf(spool, sizeof spool, "%s/settle.spool", dir);
    zg_settings cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.spool_path, sizeof cfg.spool_path, "%s", spool);
    zg_db *db = zg_db_new(&cfg);
    zg_settlement s = done(75);

    /* the database answers: settled, one call, nothing spooled */
    fake_db_script((fake_answer[]){{0, "0,75"}}, 1);
    is_int(zg_billing_settle(db, &cfg, "req-1", &s, NULL), 0, "settled");
    is_int(fake_ncalls, 1, "one statement");
    is_int(lines_of(spool), -1, "no spool file");

    /* the database is away for every retry: spooled, still 0 (kept for later) */
    fake_answer down[5] = {{2013, NULL}, {2013, NULL}, {2013, NULL}, {2013, NULL}, {2013, NULL}};
    const char *ids[4] = {"req-2", "req-3", "req-4", "req-5"};
    for (int i = 0; i < 4; i++) {
        fake_db_script(down, 5);
        is_int(zg_billing_settle(db, &cfg, ids[i], &s, NULL), 0, "%s spooled", ids[i]);
        is_int(fake_ncalls, 5, "%s tried five times first", ids[i]);
    }
    is_int(lines_of(spool), 4, "four lines in the spool");

    /* replay: two apply, the third fails: it and the one after it stay, in order */
    fake_db_script((fake_answer[]){{0, "0,75"}, {0, "0,75"}, {2013, NULL}}, 3);
    is_int(zg_billing_replay_spool(db, &cfg), 2, "two replayed");
    is_int(fake_ncalls, 3, "stopped at the failure");
    is_str(fake_calls[0].first, "req-2", "in order");
    is_int(lines_of(spool), 2, "two lines left");
    ok(request_is(spool, 0, "req-4") && request_is(spool, 1, "req-5"), "the failed line and the next");
    char tmp[200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", spool, (int)getpid());
    ok(access(tmp, F_OK) != 0, "no temporary file left");

    /* an appender after the rewrite writes to the new spool */
    fake_db_script(down, 5);
    zg_billing_settle(db, &cfg, "req-6", &s, NULL);
    is_int(lines_of(spool), 3, "appended to the replaced spool");

    /* a line the database refuses as bad data is moved aside; the rest applies */
    fake_db_script((fake_answer[]){{1406, NULL}, {0, "0,75"}, {0, "0,75"}}, 3);
    is_int(zg_billing_replay_spool(db, &cfg), 2, "two replayed past the refused line");
    is_int(lines_of(spool), 0, "the spool is empty");
    char rejected[200];
    snprintf(rejected, sizeof rejected, "%s.rejected", spool);
    is_int(lines_of(rejected), 1, "the refused line kept in .rejected");
    ok(request_is(rejected, 0, "req-4"), "the refused one");

    /* nothing to do: no statement */
    fake_db_script(NULL, 0);
    is_int(zg_billing_replay_spool(db, &cfg), 0, "empty spool: nothing replayed");
    is_int(fake_ncalls, 0, "and no statement");

    /* an unknown admission outcome is undone: abandoned at 0 credits, one try then the spool */
    fake_db_script((fake_answer[]){{2013, NULL}}, 1);
    is_int(zg_billing_cancel(db, &cfg, "req-7"), 0, "cancel spooled");
    ok(request_is(spool, 0, "req-7"), "as a spool line");
    fake_db_script((fake_answer[]){{0, "1,0"}}, 1);
    is_int(zg_billing_replay_spool(db, &cfg), 1, "replayed (the database ignores an unknown id)");

    /* a spool written by an older version (no kind, no "released") still replays */
    FILE *old = fopen(spool, "w");
    fputs("req-8 settled complete 42 10 42 0 0 0 0 0 0 200 5 9\n", old);
    fclose(old);
    fake_db_script((fake_answer[]){{0, "0,42"}}, 1);
    is_int(zg_billing_replay_spool(db, &cfg), 1, "an older spool line replayed");
    is_str(fake_calls[0].first, "req-8", "by its request id");
    is_int(lines_of(spool), 0, "and the spool emptied");

    zg_db_free(db);
    unlink(spool);
    unlink(rejected);
    rmdir(dir);
    return tap_done();
}
