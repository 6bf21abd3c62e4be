/* Lease mode: the journal (a line per admission and settlement) and the replay of a dead
 * process's journal by its siblings. */
#include "zg_lease_int.h"

/* ---- journal ---------------------------------------------------------------------------------------- */

void zl_journal_write(int gen, const char *line, size_t n)
{
    int fd = zl.jfd[gen];
    if (fd < 0)
        return;
    /* O_APPEND: each line lands whole at the end, whatever other threads write */
    if (write(fd, line, n) != (ssize_t)n)
        zg_warn("lease journal: write failed: %s", strerror(errno));
    __atomic_fetch_add(&zl.jwrites, 1, __ATOMIC_RELAXED);
}

int zl_journal_open(void)
{
    for (int g = 0; g < 2; g++) {
        int n = snprintf(zl.jpath[g], sizeof zl.jpath[g], "%s.lease.%s.%d", zl.cfg->spool_path, zl.owner, g);
        if (n < 0 || (size_t)n >= sizeof zl.jpath[g])
            return -1;
        zl.jfd[g] = open(zl.jpath[g], O_WRONLY | O_CREAT | O_APPEND | O_TRUNC | O_CLOEXEC, 0600);
        if (zl.jfd[g] < 0) {
            zg_error("lease journal %s: %s", zl.jpath[g], strerror(errno));
            return -1;
        }
    }
    /* held for the process's life: a journal whose lock can be taken belongs to a dead process */
    if (flock(zl.jfd[0], LOCK_EX | LOCK_NB) != 0) {
        zg_error("lease journal %s is locked by another process", zl.jpath[0]);
        return -1;
    }
    return 0;
}

static const char SQL_STALE[] =
    "SELECT DISTINCT owner FROM leases WHERE renewed_at < NOW(3) - INTERVAL ? SECOND LIMIT 100";
/* Journal an admission: 'A' for a leased request, 'P' for one admitted strictly (a pending row). */
void zl_journal_admit(char kind, int gen, const char *request_id, int64_t user, int64_t key, const char *group,
                      const char *surface, const char *model, const char *provider, int64_t hold)
{
    zg_record r;
    memset(&r, 0, sizeof r);
    zg_record_field(r.rid, sizeof r.rid, request_id);
    zg_record_field(r.grp, sizeof r.grp, group);
    zg_record_field(r.surface, sizeof r.surface, surface);
    zg_record_field(r.model, sizeof r.model, model);
    zg_record_field(r.provider, sizeof r.provider, provider);
    r.user = user;
    r.key = key;
    r.hold = hold;
    zl_journal_record(kind, gen, &r);
}

void zl_journal_record(int kind, int gen, const zg_record *r)
{
    char line[ZG_REC_LINE_MAX];
    size_t n = zg_record_line(kind, r, line, sizeof line);
    if (n)
        zl_journal_write(gen, line, n);
}

/* ---- replaying a dead process's journal ---------------------------------------------------------------- */

/* The lines of a dead owner's journal, by kind. */
struct replay {
    zg_record *v[5]; /* A, P, S, D, U */
    size_t n[5], cap[5];
};

static int kind_index(int kind)
{
    return kind == 'A' ? 0 : kind == 'P' ? 1 : kind == 'S' ? 2 : kind == 'D' ? 3 : 4;
}

/* Read a journal file line by line (any size) into rp. -1 when memory ran out. */
static int replay_read(const char *path, struct replay *rp)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    char *line = NULL;
    size_t lcap = 0;
    int rc = 0;
    while (rc == 0 && getline(&line, &lcap, f) > 0) {
        zg_record r;
        int kind = zg_record_parse(line, &r);
        if (kind == 'X')
            kind = 0; /* a spool line has no place in a journal */
        if (!kind)
            continue;
        int k = kind_index(kind);
        if (rp->n[k] == rp->cap[k]) {
            size_t nc = rp->cap[k] ? rp->cap[k] * 2 : 64;
            zg_record *x = realloc(rp->v[k], nc * sizeof *x);
            if (!x) {
                rc = -1;
                break;
            }
            rp->v[k] = x;
            rp->cap[k] = nc;
        }
        rp->v[k][rp->n[k]++] = r;
    }
    free(line);
    fclose(f);
    return rc;
}

static int by_rid(const void *a, const void *b)
{
    return strcmp(((const zg_record *)a)->rid, ((const zg_record *)b)->rid);
}

static const zg_record *find_rid(const struct replay *rp, int k, const char *rid)
{
    zg_record key;
    memcpy(key.rid, rid, sizeof key.rid);
    return rp->n[k] ? bsearch(&key, rp->v[k], rp->n[k], sizeof key, by_rid) : NULL;
}

/* A request admitted and never settled: billed what the upstream reported when its final usage was
 * noted, else its hold (estimated). Status abandoned either way. */
static void unfinished(zg_record *r, const struct replay *rp)
{
    const zg_record *u = find_rid(rp, 4, r->rid);
    if (!u)
        return;
    r->credits = u->credits;
    r->u = u->u;
    r->est = 0;
}

/* Settle a strict admission left pending (zg_settle: a no-op when it was settled meanwhile). */
static int settle_pending(zg_db *db, const zg_settings *cfg, const zg_record *r)
{
    zg_settlement st = zg_record_as_settlement(r); /* abandoned, no times (zg_record_parse) */
    return zg_billing_settle(db, cfg, r->rid, &st, NULL);
}

/* Write one leased request of a dead owner's journal (counted in *count). A row the database
 * refuses as bad data is logged and skipped; -1 only when the database is unavailable. */
static int replay_direct(zg_db *db, const char *own, const zg_record *r, int *count)
{
    if (zl_settle_direct(db, own, r) == 0) {
        (*count)++;
        return 0;
    }
    zg_warn("lease replay of %s: %s", r->rid, zg_db_error(db));
    return zl_db_unavailable(zg_db_errno(db)) ? -1 : 0;
}

/* Replay both journal files of a dead owner; 0 when everything reached the database (or the spool). */
static int replay_owner(zg_db *db, const zg_settings *cfg, const char *own, const char *p0, const char *p1,
                        int *count)
{
    struct replay rp;
    memset(&rp, 0, sizeof rp);
    int rc = replay_read(p0, &rp) || replay_read(p1, &rp) ? -1 : 0;
    for (int k = 2; k < 5; k++)
        if (rp.n[k])
            qsort(rp.v[k], rp.n[k], sizeof *rp.v[k], by_rid);
    /* finished requests at their cost */
    for (size_t i = 0; rc == 0 && i < rp.n[2]; i++)
        rc = replay_direct(db, own, &rp.v[2][i], count);
    /* leased admissions that never finished */
    for (size_t i = 0; rc == 0 && i < rp.n[0]; i++) {
        zg_record *r = &rp.v[0][i];
        if (find_rid(&rp, 2, r->rid))
            continue;
        unfinished(r, &rp);
        rc = replay_direct(db, own, r, count);
    }
    /* strict admissions whose settlement was not noted */
    for (size_t i = 0; rc == 0 && i < rp.n[1]; i++) {
        zg_record *r = &rp.v[1][i];
        if (find_rid(&rp, 3, r->rid))
            continue;
        unfinished(r, &rp);
        if (settle_pending(db, cfg, r) != 0)
            rc = -1;
        else
            (*count)++;
    }
    if (rc == 0) {
        struct drop all = {0};
        rc = zl_drop_one(db, own, &all);
    }
    for (int k = 0; k < 5; k++)
        free(rp.v[k]);
    return rc;
}

struct owners {
    char o[100][72];
    int n;
};

static int collect_owner(void *ctx, int nc, char **v, const size_t *l)
{
    struct owners *oc = ctx;
    if (nc >= 1 && v[0] && l[0] < sizeof oc->o[0] && oc->n < 100)
        memcpy(oc->o[oc->n++], v[0], l[0] + 1);
    return 0;
}

static bool pid_alive(long pid)
{
    return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

int zg_lease_maintain(zg_db *db, const zg_settings *cfg)
{
    if (!cfg->spool_path[0])
        return 0;
    char dir[600], base[600];
    const char *slash = strrchr(cfg->spool_path, '/');
    if (slash) {
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - cfg->spool_path), cfg->spool_path);
        snprintf(base, sizeof base, "%s.lease.", slash + 1);
    } else {
        snprintf(dir, sizeof dir, ".");
        snprintf(base, sizeof base, "%s.lease.", cfg->spool_path);
    }
    if (!dir[0])
        snprintf(dir, sizeof dir, "/");
    const char *myhost = cfg->node_name;
    int replayed = 0, rc = 0;
    char mine[64] = "";
    if (zl.active)
        zl_owner_now(mine);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    size_t bl = strlen(base);
    while ((de = readdir(d))) {
        size_t nl = strlen(de->d_name);
        if (nl <= bl + 2 || strncmp(de->d_name, base, bl) != 0 || strcmp(de->d_name + nl - 2, ".0") != 0)
            continue;
        char own[600];
        snprintf(own, sizeof own, "%.*s", (int)(nl - bl - 2), de->d_name + bl);
        if (zl.active && strncmp(own, mine, strlen(own)) == 0)
            continue;
        /* host:pid:start; another host's journal (a shared directory) is not ours to judge */
        char *c1 = strchr(own, ':');
        if (!c1 || (size_t)(c1 - own) != strlen(myhost) || strncmp(own, myhost, strlen(myhost)) != 0)
            continue;
        int64_t pid = 0;
        char *c2 = strchr(c1 + 1, ':');
        if (!c2 || zg_parse_i64(c1 + 1, (size_t)(c2 - c1 - 1), 1, INT32_MAX, &pid) != 0)
            continue;
        if (pid_alive((long)pid))
            continue;
        char p0[1200], p1[1200];
        snprintf(p0, sizeof p0, "%s/%s", dir, de->d_name);
        snprintf(p1, sizeof p1, "%s/%.*s1", dir, (int)(nl - 1), de->d_name);
        int fd = open(p0, O_RDWR | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            close(fd);
            continue;
        }
        struct stat st;
        if (fstat(fd, &st) == 0 && st.st_nlink == 0) { /* replayed meanwhile by another process */
            close(fd);
            continue;
        }
        int n = 0;
        if (replay_owner(db, cfg, own, p0, p1, &n) == 0) {
            unlink(p1);
            unlink(p0);
            replayed += n;
            zg_warn("replayed the lease journal of dead process %s: %d request(s) billed or confirmed", own, n);
        } else {
            rc = -1;
        }
        close(fd);
    }
    closedir(d);

    /* leases of a host that stopped renewing them long ago */
    static time_t next_stale;
    time_t now = time(NULL);
    if (now >= next_stale) {
        int every = cfg->lost_host_after / 3;
        next_stale = now + (every < 1 ? 1 : every > 60 ? 60 : every);
        struct owners oc;
        oc.n = 0;
        zg_val a[1] = {ZG_INT(cfg->lost_host_after)};
        if (zg_db_run(db, SQL_STALE, a, 1, collect_owner, &oc, NULL) == 0) {
            for (int i = 0; i < oc.n; i++) {
                if (zl.active && strcmp(oc.o[i], mine) == 0)
                    continue;
                struct drop all = {0};
                if (zl_drop_one(db, oc.o[i], &all) == 0)
                    zg_warn("released the leases of %s: not renewed for %d s", oc.o[i], cfg->lost_host_after);
            }
        }
    }
    return rc < 0 ? -1 : replayed;
}
