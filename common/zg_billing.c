#include "zg_billing.h"
#include "zg_buf.h"
#include "zg_log.h"
#include "zg_num.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int64_t zg_billing_hold_estimate(const zg_settings *cfg, const zg_model *m, const zg_hold_req *q)
{
    int64_t in = q->input_tokens < 0 ? 0 : q->input_tokens;
    if (in > cfg->hold_input_cap)
        in = cfg->hold_input_cap;
    if (q->expands) {
        /* the provider adds input the body does not show: assume the model's whole context */
        int64_t window = q->context_window > 0 ? q->context_window : m->context_window;
        int64_t ex = m->expand_input > 0 ? m->expand_input : window;
        if (ex <= 0)
            ex = cfg->hold_input_cap;
        if (q->context_window > ex)
            ex = q->context_window;
        if (ex > in)
            in = ex;
    }
    /* an absent cap holds what the largest stated one does: leaving max_tokens out never pays */
    int64_t out = q->max_output > 0 && q->max_output < cfg->hold_output_cap ? q->max_output : cfg->hold_output_cap;
    int64_t choices = q->choices > 1 ? (q->choices > 1000 ? 1000 : q->choices) : 1;
    zg_usage u = {.input = in, .output = out * choices, .units = q->units > 0 ? q->units : 0};
    int64_t h = zg_usage_cost(&u, m);
    return h < 1 ? 1 : h;
}

static const char SQL_ADMIT[] = "CALL zg_admit(?, ?, ?, ?, ?, ?, ?, ?, ?)";

int zg_billing_admit(zg_db *db, const char *key_hash, const char *request_id, const char *group, int limit,
                     int min_plan, int64_t hold, const char *surface, const char *model, const char *provider,
                     zg_admission *out)
{
    zg_val p[9] = {ZG_STR(key_hash), ZG_STR(request_id), ZG_STR(group), ZG_INT(limit), ZG_INT(min_plan),
                   ZG_INT(hold),     ZG_STR(surface),    ZG_STR(model), ZG_STR(provider)};
    int64_t row[7] = {-1, 0, 0, 0, 0, 0, 0};
    memset(out, 0, sizeof *out);
    if (zg_db_run(db, SQL_ADMIT, p, 9, zg_db_row_ints, &(zg_ints){row, 7}, NULL) != 0) {
        zg_error("admission failed for %s: %s", request_id, zg_db_error(db));
        out->code = ZG_ADMIT_DB_ERROR;
        return out->code;
    }
    out->code = (int)row[0];
    out->who.user_id = row[1];
    out->who.key_id = row[2];
    out->who.plan_rank = (int)row[3];
    out->rl_limit = row[4];
    out->rl_used = row[5];
    out->rl_reset = row[6];
    return out->code;
}

static const char SQL_RATE_PEEK[] =
    "SELECT COALESCE((SELECT hits FROM rate_counters WHERE user_id = ? AND grp = ?"
    " AND window_start = UNIX_TIMESTAMP() DIV 3600 * 3600), 0), UNIX_TIMESTAMP() DIV 3600 * 3600 + 3600";

int zg_billing_rate_peek(zg_db *db, int64_t user_id, const char *group, int limit, zg_admission *out)
{
    zg_val p[2] = {ZG_INT(user_id), ZG_STR(group)};
    int64_t row[2] = {0, 0};
    if (zg_db_run(db, SQL_RATE_PEEK, p, 2, zg_db_row_ints, &(zg_ints){row, 2}, NULL) != 0)
        return -1;
    out->rl_limit = limit;
    out->rl_used = row[0];
    out->rl_reset = row[1];
    return 0;
}

static const char SQL_SETTLE[] = "CALL zg_settle(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

static int settle_once(zg_db *db, const char *request_id, const zg_settlement *s, int64_t *cash)
{
    const zg_usage *u = &s->usage;
    zg_val p[17] = {
        ZG_STR(request_id),
        ZG_STR(s->status),
        ZG_STR(s->end_reason),
        ZG_INT(s->credits),
        ZG_INT(u->input),
        ZG_INT(u->output),
        ZG_INT(u->cache_read),
        ZG_INT(u->cache_write_5m),
        ZG_INT(u->cache_write_1h),
        ZG_INT(u->reasoning),
        ZG_INT(u->units),
        ZG_INT(s->estimated ? 1 : 0),
        s->upstream_status > 0 ? ZG_INT(s->upstream_status) : ZG_NULLV,
        s->ttfb_ms >= 0 ? ZG_INT(s->ttfb_ms > 2000000000 ? 2000000000 : s->ttfb_ms) : ZG_NULLV,
        s->duration_ms >= 0 ? ZG_INT(s->duration_ms > 2000000000 ? 2000000000 : s->duration_ms) : ZG_NULLV,
        s->channel && *s->channel ? ZG_STR(s->channel) : ZG_NULLV,
        ZG_INT(s->attempts > 0 ? s->attempts : 1),
    };
    int64_t row[2] = {-1, 0};
    if (zg_db_run(db, SQL_SETTLE, p, 17, zg_db_row_ints, &(zg_ints){row, 2}, NULL) != 0)
        return -1;
    if (cash)
        *cash = row[1];
    return 0;
}

/* Open the spool for appending with its lock held. A replay replaces the file (temporary file, then
 * rename) while holding the lock on the old one: a lock taken on a file that is no longer the spool
 * is dropped and the spool opened again. */
static int spool_open_locked(const zg_settings *cfg)
{
    for (int tries = 0; tries < 100; tries++) {
        int fd = open(cfg->spool_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0)
            return -1;
        struct stat a, b;
        if (flock(fd, LOCK_EX) == 0 && fstat(fd, &a) == 0 && stat(cfg->spool_path, &b) == 0 && a.st_ino == b.st_ino &&
            a.st_dev == b.st_dev)
            return fd;
        close(fd);
    }
    return -1;
}

/* Append a settlement to the spool as an 'X' line (zg_record.h), synced. */
static int spool_append(const zg_settings *cfg, const char *request_id, const zg_settlement *s)
{
    if (!cfg || !cfg->spool_path[0])
        return -1;
    zg_record r;
    memset(&r, 0, sizeof r);
    zg_record_field(r.rid, sizeof r.rid, request_id);
    zg_record_settlement(&r, s);
    char line[ZG_REC_LINE_MAX];
    size_t n = zg_record_line('X', &r, line, sizeof line);
    if (!n)
        return -1;
    int fd = spool_open_locked(cfg);
    if (fd < 0)
        return -1;
    int rc = write(fd, line, n) == (ssize_t)n ? 0 : -1;
    if (rc == 0)
        rc = fsync(fd);
    flock(fd, LOCK_UN);
    close(fd);
    return rc;
}

int zg_billing_settle(zg_db *db, const zg_settings *cfg, const char *request_id, const zg_settlement *s,
                      int64_t *cash)
{
    static const int backoff_ms[] = {0, 50, 200, 500, 1000};
    for (size_t i = 0; i < sizeof backoff_ms / sizeof backoff_ms[0]; i++) {
        if (backoff_ms[i]) {
            struct timespec ts = {0, (long)backoff_ms[i] * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (settle_once(db, request_id, s, cash) == 0)
            return 0;
        zg_warn("settlement of %s failed (try %zu): %s", request_id, i + 1, zg_db_error(db));
    }
    if (spool_append(cfg, request_id, s) == 0) {
        zg_warn("settlement of %s spooled to %s for replay", request_id, cfg->spool_path);
        return 0;
    }
    zg_error("settlement of %s LOST: database unreachable and spool unwritable (%s credits=%lld)", request_id,
             s->end_reason, (long long)s->credits);
    return -1;
}

int zg_billing_cancel(zg_db *db, const zg_settings *cfg, const char *request_id)
{
    zg_settlement s = {.status = "abandoned", .end_reason = "abandoned", .ttfb_ms = -1, .duration_ms = -1};
    if (settle_once(db, request_id, &s, NULL) == 0 || spool_append(cfg, request_id, &s) == 0)
        return 0;
    zg_error("admission of %s may hold credits: database unreachable and spool unwritable", request_id);
    return -1;
}

/* Server errors that say the data is wrong, not that the database is unavailable: retrying the
 * same line can never succeed. */
static int rejected_by_data(unsigned e)
{
    return e == 1048 /* null */ || e == 1264 /* out of range */ || e == 1265 /* truncated */ ||
           e == 1292 /* bad value */ || e == 1366 /* incorrect value */ || e == 1406 /* too long */ ||
           e == 1644 /* signalled by a procedure */;
}

static void dead_letter(const zg_settings *cfg, const char *line)
{
    char path[600];
    snprintf(path, sizeof path, "%s.rejected", cfg->spool_path);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    size_t n = strlen(line);
    if (write(fd, line, n) == (ssize_t)n)
        fsync(fd);
    close(fd);
}

/* Write all of p[0..n) to fd: 0, or -1 on any error (a short write is an error). */
static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int zg_billing_replay_spool(zg_db *db, const zg_settings *cfg)
{
    struct stat st;
    if (!cfg->spool_path[0] || stat(cfg->spool_path, &st) != 0 || st.st_size == 0)
        return 0;
    int fd = open(cfg->spool_path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat a;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 || fstat(fd, &a) != 0 || stat(cfg->spool_path, &st) != 0 ||
        a.st_ino != st.st_ino) {
        close(fd);
        return 0; /* another process is replaying, or has just replaced the file */
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return -1;
    }
    /* what cannot be applied now goes to a temporary file that replaces the spool at the end; the
     * spool is only replaced once that file is complete and on disk */
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", cfg->spool_path, (long)getpid());
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        zg_error("spool: cannot write %s: %s", tmp, strerror(errno));
        fclose(f);
        return -1;
    }
    char *line = NULL;
    size_t lcap = 0;
    int applied = 0, failed = 0, kept = 0, io_err = 0;
    while (getline(&line, &lcap, f) > 0) {
        char copy[ZG_REC_LINE_MAX];
        size_t len = strlen(line);
        if (len >= sizeof copy) {
            zg_error("spool: a line of %zu bytes moved to %s.rejected", len, cfg->spool_path);
            dead_letter(cfg, line);
            continue;
        }
        memcpy(copy, line, len + 1);
        zg_record r;
        if (zg_record_parse(copy, &r) != 'X') {
            zg_error("spool: malformed line moved to %s.rejected", cfg->spool_path);
            dead_letter(cfg, line);
            continue;
        }
        const char *rid = r.rid;
        zg_settlement s = zg_record_as_settlement(&r);
        if (!failed && settle_once(db, rid, &s, NULL) == 0) {
            applied++;
        } else if (!failed && rejected_by_data(zg_db_errno(db))) {
            /* the database is up but refuses this line: keeping it would block the spool forever */
            zg_error("spool: settlement of %s refused (%s); moved to %s.rejected", rid, zg_db_error(db),
                     cfg->spool_path);
            dead_letter(cfg, line);
        } else {
            failed = 1;
            kept++;
            if (write_all(out, line, len) != 0)
                io_err = 1;
        }
    }
    free(line);
    if (ferror(f))
        io_err = 1;
    if (!io_err && fsync(out) == 0 && close(out) == 0) {
        out = -1;
        if (rename(tmp, cfg->spool_path) != 0)
            io_err = 1;
    } else {
        io_err = 1;
    }
    if (io_err) {
        /* the spool stays as it was: lines applied now are applied again next time, which the
         * database ignores (settlement is idempotent per request id) */
        zg_error("spool: could not rewrite %s (%s); it is kept whole", cfg->spool_path, strerror(errno));
        if (out >= 0)
            close(out);
        unlink(tmp);
    } else {
        /* the rename is durable once the directory is */
        char dir[600];
        snprintf(dir, sizeof dir, "%s", cfg->spool_path);
        char *slash = strrchr(dir, '/');
        if (slash)
            *(slash == dir ? slash + 1 : slash) = '\0';
        int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    flock(fd, LOCK_UN);
    fclose(f);
    if (applied)
        zg_info("spool: replayed %d settlements%s", applied, kept ? "; the rest stays spooled" : "");
    return applied;
}

/* (a background image job settles its own row when it ends, however long it queued) */
static const char SQL_PENDING[] = "SELECT request_id, hold_credits FROM usage_log u WHERE status = 'pending'"
                                  " AND created_at < NOW(3) - INTERVAL ? SECOND AND NOT EXISTS (SELECT 1 FROM"
                                  " image_jobs j WHERE j.request_id = u.request_id AND j.status IN ('queued',"
                                  " 'in_progress')) ORDER BY id LIMIT 1000";

struct pending {
    char ids[1000][41];
    int64_t holds[1000];
    int n;
};

static int pending_row(void *ctx, int nc, char **v, const size_t *l)
{
    struct pending *p = ctx;
    if (nc < 2 || !v[0] || l[0] > 40 || p->n >= 1000)
        return 0;
    memcpy(p->ids[p->n], v[0], l[0] + 1);
    p->holds[p->n] = 0;
    if (v[1])
        zg_parse_i64(v[1], l[1], 0, INT64_MAX, &p->holds[p->n]);
    p->n++;
    return 0;
}

static const char SQL_PURGE[] = "CALL zg_usage_purge(?, ?)";

int zg_billing_purge(zg_db *db, int keep_days, int limit)
{
    int64_t n[1] = {0};
    zg_val a[] = {ZG_INT(keep_days), ZG_INT(limit)};
    if (zg_db_run(db, SQL_PURGE, a, 2, zg_db_row_ints, &(zg_ints){n, 1}, NULL) != 0)
        return -1;
    return (int)n[0];
}

int zg_billing_reap(zg_db *db, int age_s)
{
    struct pending *p = calloc(1, sizeof *p);
    if (!p)
        return -1;
    zg_val a[1] = {ZG_INT(age_s)};
    if (zg_db_run(db, SQL_PENDING, a, 1, pending_row, p, NULL) != 0) {
        free(p);
        return -1;
    }
    int n = 0;
    for (int i = 0; i < p->n; i++) {
        zg_settlement s = {.status = "abandoned", .end_reason = "abandoned", .credits = p->holds[i],
                           .estimated = true, .ttfb_ms = -1, .duration_ms = -1};
        if (settle_once(db, p->ids[i], &s, NULL) == 0)
            n++;
    }
    free(p);
    return n;
}
