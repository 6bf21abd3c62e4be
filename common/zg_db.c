#include "zg_db.h"
#include "zg_gate.h"
#include "zg_clock.h"
#include "zg_dbhost.h"
#include "zg_log.h"
#include "zg_num.h"
#include <errmsg.h>
#include <mysql.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STMT_CACHE 64
#define MAX_COLS 64
#define MAX_PARAMS 32
#define COL_BUF 256

struct stmt_slot {
    const char *sql;
    MYSQL_STMT *stmt;
};

struct zg_db {
    const zg_settings *cfg;
    MYSQL *my;
    int connected;
    struct stmt_slot cache[STMT_CACHE];
    int ncache;
    char err[512];
    unsigned errnum;
    uint64_t trips;
    zg_db_pool *pool; /* a borrowing handle: no connection of its own */
    int host;         /* the [database] hosts entry connected to (0 without a list) */
    int64_t made_at;  /* when the connection was made (monotonic ms) */
};

/* The process's connections, lent out for one statement at a time. */
struct zg_db_pool {
    pthread_mutex_t mu;
    pthread_cond_t freed;
    int size, nfree, waiting;
    zg_db **conns; /* all of them */
    zg_db **free;  /* a stack of the idle ones */
};

void zg_db_global_init(void)
{
    mysql_library_init(0, NULL, NULL);
}

void zg_db_thread_end(void)
{
    mysql_thread_end();
}

zg_db *zg_db_new(const zg_settings *s)
{
    zg_db *db = calloc(1, sizeof *db);
    if (db)
        db->cfg = s;
    return db;
}

static void drop_statements(zg_db *db)
{
    for (int i = 0; i < db->ncache; i++)
        mysql_stmt_close(db->cache[i].stmt);
    db->ncache = 0;
}

static void disconnect(zg_db *db)
{
    drop_statements(db);
    if (db->my)
        mysql_close(db->my);
    db->my = NULL;
    db->connected = 0;
}

void zg_db_free(zg_db *db)
{
    if (!db)
        return;
    if (!db->pool)
        disconnect(db);
    free(db);
}

zg_db_pool *zg_db_pool_new(const zg_settings *s, int size)
{
    if (size < 1)
        size = 1;
    zg_db_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->conns = calloc((size_t)size, sizeof *p->conns);
    p->free = calloc((size_t)size, sizeof *p->free);
    if (!p->conns || !p->free) {
        free(p->conns);
        free(p->free);
        free(p);
        return NULL;
    }
    for (int i = 0; i < size; i++) {
        if (!(p->conns[i] = zg_db_new(s))) {
            while (i--)
                zg_db_free(p->conns[i]);
            free(p->conns);
            free(p->free);
            free(p);
            return NULL;
        }
        p->free[i] = p->conns[i];
    }
    p->size = p->nfree = size;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->freed, NULL);
    return p;
}

void zg_db_pool_free(zg_db_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->size; i++)
        zg_db_free(p->conns[i]);
    free(p->conns);
    free(p->free);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->freed);
    free(p);
}

zg_db *zg_db_borrower(zg_db_pool *p)
{
    zg_db *h = calloc(1, sizeof *h);
    if (h) {
        h->pool = p;
        h->cfg = p->conns[0]->cfg;
    }
    return h;
}

static zg_db_pool *process_pool; /* set once before threads start */

void zg_db_pool_set_process(zg_db_pool *p)
{
    process_pool = p;
}

zg_db *zg_db_open(const zg_settings *s)
{
    return process_pool ? zg_db_borrower(process_pool) : zg_db_new(s);
}

/* A connection from the pool within wait_ms, or NULL. */
static zg_db *pool_take(zg_db_pool *p, int64_t wait_ms)
{
    struct timespec until = zg_clock_deadline(wait_ms);
    pthread_mutex_lock(&p->mu);
    p->waiting++;
    while (p->nfree == 0)
        if (pthread_cond_timedwait(&p->freed, &p->mu, &until) != 0 && p->nfree == 0)
            break;
    p->waiting--;
    zg_db *c = p->nfree ? p->free[--p->nfree] : NULL;
    pthread_mutex_unlock(&p->mu);
    return c;
}

static void pool_give(zg_db_pool *p, zg_db *c)
{
    pthread_mutex_lock(&p->mu);
    p->free[p->nfree++] = c;
    int wake = p->waiting > 0;
    pthread_mutex_unlock(&p->mu);
    if (wake)
        pthread_cond_signal(&p->freed);
}

/* Borrow a connection for h (a borrowing handle), or note why not. */
static zg_db *borrow(zg_db *h)
{
    /* under a burst (thousands of streams asking for leases at once) statements queue for the
     * process's connections: wait for one longer than a statement may take (during an outage the
     * statements ahead fail within the timeout, and once the database is known down every
     * statement fails at once) */
    int64_t wait_ms = (int64_t)(h->cfg->db_timeout > 0 ? h->cfg->db_timeout : 5) * 6000;
    zg_db *c = pool_take(h->pool, wait_ms);
    if (!c) {
        h->errnum = CR_SERVER_GONE_ERROR;
        snprintf(h->err, sizeof h->err, "database busy: no free connection within %lld ms", (long long)wait_ms);
    }
    return c;
}

/* Give c back after a statement run for h, with its outcome. */
static void give_back(zg_db *h, zg_db *c, uint64_t trips0)
{
    h->errnum = c->errnum;
    memcpy(h->err, c->err, sizeof h->err);
    h->trips += c->trips - trips0;
    pool_give(h->pool, c);
}

static void set_err(zg_db *db, unsigned num, const char *msg)
{
    db->errnum = num;
    snprintf(db->err, sizeof db->err, "%s", msg);
}

static int connect_direct(zg_db *db);

int zg_db_connect(zg_db *db)
{
    if (!db->pool)
        return connect_direct(db);
    zg_db *c = borrow(db);
    if (!c)
        return -1;
    uint64_t t0 = c->trips;
    int rc = connect_direct(c);
    give_back(db, c, t0);
    return rc;
}

/* Open db->my to one server (sock, else host:port). 0, or -1 with the error set. */
static int open_server(zg_db *db, const char *host, int port, const char *sock, unsigned io_timeout)
{
    db->my = mysql_init(NULL);
    if (!db->my) {
        set_err(db, CR_OUT_OF_MEMORY, "out of memory");
        return -1;
    }
    /* with several servers a silent one is given up sooner: the next may answer at once */
    unsigned timeout = db->cfg->db_nhosts > 1 ? 3 : 5;
    my_bool reconnect = 0;
    mysql_optionsv(db->my, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_optionsv(db->my, MYSQL_OPT_READ_TIMEOUT, &io_timeout);
    mysql_optionsv(db->my, MYSQL_OPT_WRITE_TIMEOUT, &io_timeout);
    mysql_optionsv(db->my, MYSQL_OPT_RECONNECT, &reconnect);
    mysql_optionsv(db->my, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    const zg_settings *s = db->cfg;
    if (!mysql_real_connect(db->my, sock ? "localhost" : host, s->db_user, s->db_password[0] ? s->db_password : NULL,
                            s->db_name, (unsigned)port, sock, CLIENT_MULTI_RESULTS | CLIENT_MULTI_STATEMENTS)) {
        set_err(db, mysql_errno(db->my), mysql_error(db->my));
        mysql_close(db->my);
        db->my = NULL;
        return -1;
    }
    return 0;
}

/* Connect to the first server of [database] hosts that answers, in zg_dbhost's order (one that
 * failed lately is tried last). 0, or -1 with the last error set. */
static int open_listed(zg_db *db, unsigned io_timeout)
{
    const zg_settings *s = db->cfg;
    int order[ZG_DBHOST_MAX];
    int n = zg_dbhost_order(s->db_nhosts, zg_clock_ms(), order);
    for (int k = 0; k < n; k++) {
        int i = order[k], port;
        char host[256], sock[512];
        if (zg_config_db_addr(s->db_hosts[i], s->db_port, host, sizeof host, &port, sock, sizeof sock) != 0)
            continue;
        int rc = open_server(db, host, port, sock[0] ? sock : NULL, io_timeout);
        zg_dbhost_mark(i, rc == 0, zg_clock_ms());
        if (rc == 0) {
            db->host = i;
            return 0;
        }
        if (k + 1 < n)
            zg_warn("database %s: %s; trying %s", s->db_hosts[i], db->err, s->db_hosts[order[k + 1]]);
    }
    return -1;
}

static int connect_direct(zg_db *db)
{
    if (db->connected && db->cfg->db_nhosts > 1 && zg_dbhost_away(db->host, db->made_at, zg_clock_ms()))
        disconnect(db); /* on a fallback server for a while: the preferred one may be back */
    if (db->connected)
        return 0;
    disconnect(db);
    /* a database that stops answering turns into an error within db_timeout, never a hang */
    unsigned io_timeout = db->cfg->db_timeout > 0 ? (unsigned)db->cfg->db_timeout : 5;
    const zg_settings *s = db->cfg;
    db->host = 0;
    int rc = s->db_nhosts > 0 ? open_listed(db, io_timeout)
                              : open_server(db, s->db_host, s->db_port, s->db_socket[0] ? s->db_socket : NULL,
                                            io_timeout);
    if (rc != 0)
        return -1;
    /* a lock wait ends (error 1205, retried) before the client's read timeout would leave a
     * statement running on the server without anyone waiting for its answer */
    /* UTC: DATETIME defaults (usage_log.created_at) and the rollups' days are UTC dates */
    char init[200];
    unsigned lock_wait = io_timeout > 1 ? io_timeout - 1 : 1;
    int n = snprintf(init, sizeof init,
                     "SET SESSION tx_isolation = 'READ-COMMITTED', SESSION time_zone = '+00:00',"
                     " SESSION innodb_lock_wait_timeout = %u",
                     lock_wait < 50 ? lock_wait : 50);
    if (mysql_real_query(db->my, init, (unsigned long)n) != 0) {
        set_err(db, mysql_errno(db->my), mysql_error(db->my));
        disconnect(db);
        return -1;
    }
    db->connected = 1;
    db->made_at = zg_clock_ms();
    return 0;
}

static int is_conn_error(unsigned e)
{
    return e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST || e == 2055 /* lost, extended */ ||
           e == 1927 /* connection killed */ || e == 4031 /* idle timeout */ || e == CR_CONNECTION_ERROR ||
           e == CR_CONN_HOST_ERROR || e == 1053 /* server shutdown */ || e == CR_COMMANDS_OUT_OF_SYNC;
}

static int is_retry_error(unsigned e)
{
    return e == 1213 /* deadlock, or a Galera write conflict */ || e == 1205 /* lock wait timeout */;
}

/* A Galera node outside the primary component answers every statement with 1047 ("WSREP has not
 * yet prepared node for application use") without running it. */
#define ER_NODE_NOT_READY 1047

static MYSQL_STMT *get_stmt(zg_db *db, const char *sql)
{
    for (int i = 0; i < db->ncache; i++)
        if (db->cache[i].sql == sql)
            return db->cache[i].stmt;
    MYSQL_STMT *st = mysql_stmt_init(db->my);
    if (!st) {
        set_err(db, CR_OUT_OF_MEMORY, "out of memory");
        return NULL;
    }
    if (mysql_stmt_prepare(st, sql, (unsigned long)strlen(sql)) != 0) {
        set_err(db, mysql_stmt_errno(st), mysql_stmt_error(st));
        mysql_stmt_close(st);
        return NULL;
    }
    if (db->ncache == STMT_CACHE) {
        /* evict the oldest; the cache only overflows with ad-hoc statements */
        mysql_stmt_close(db->cache[0].stmt);
        memmove(db->cache, db->cache + 1, sizeof db->cache[0] * (STMT_CACHE - 1));
        db->ncache--;
    }
    db->cache[db->ncache].sql = sql;
    db->cache[db->ncache].stmt = st;
    db->ncache++;
    return st;
}

static int fetch_results(zg_db *db, MYSQL_STMT *st, zg_row_fn fn, void *ctx)
{
    int stop = 0;
    for (;;) {
        unsigned nf = mysql_stmt_field_count(st);
        if (nf > 0) {
            if (nf > MAX_COLS) {
                set_err(db, 0, "too many result columns");
                return -1;
            }
            MYSQL_BIND res[MAX_COLS];
            char bufs[MAX_COLS][COL_BUF];
            char *vals[MAX_COLS];
            size_t lens[MAX_COLS];
            unsigned long lengths[MAX_COLS];
            my_bool nulls[MAX_COLS];
            char *heap[MAX_COLS];
            memset(res, 0, sizeof(MYSQL_BIND) * nf);
            memset(heap, 0, sizeof(char *) * nf);
            for (unsigned i = 0; i < nf; i++) {
                res[i].buffer_type = MYSQL_TYPE_STRING;
                res[i].buffer = bufs[i];
                res[i].buffer_length = COL_BUF;
                res[i].length = &lengths[i];
                res[i].is_null = &nulls[i];
            }
            if (mysql_stmt_bind_result(st, res) != 0)
                goto stmt_err;
            int rc;
            while ((rc = mysql_stmt_fetch(st)) == 0 || rc == MYSQL_DATA_TRUNCATED) {
                for (unsigned i = 0; i < nf; i++) {
                    if (nulls[i]) {
                        vals[i] = NULL;
                        lens[i] = 0;
                        continue;
                    }
                    if (lengths[i] >= COL_BUF) {
                        free(heap[i]);
                        heap[i] = malloc(lengths[i] + 1);
                        if (!heap[i]) {
                            for (unsigned j = 0; j < nf; j++)
                                free(heap[j]);
                            mysql_stmt_free_result(st);
                            set_err(db, CR_OUT_OF_MEMORY, "out of memory");
                            return -1;
                        }
                        MYSQL_BIND b;
                        memset(&b, 0, sizeof b);
                        b.buffer_type = MYSQL_TYPE_STRING;
                        b.buffer = heap[i];
                        b.buffer_length = lengths[i] + 1;
                        mysql_stmt_fetch_column(st, &b, i, 0);
                        heap[i][lengths[i]] = '\0';
                        vals[i] = heap[i];
                    } else {
                        bufs[i][lengths[i]] = '\0';
                        vals[i] = bufs[i];
                    }
                    lens[i] = lengths[i];
                }
                if (fn && !stop)
                    stop = fn(ctx, (int)nf, vals, lens);
            }
            for (unsigned i = 0; i < nf; i++)
                free(heap[i]);
            if (rc != MYSQL_NO_DATA)
                goto stmt_err;
            mysql_stmt_free_result(st);
        }
        int nr = mysql_stmt_next_result(st);
        if (nr == -1)
            return 0;
        if (nr > 0)
            goto stmt_err;
    }
stmt_err:
    set_err(db, mysql_stmt_errno(st), mysql_stmt_error(st));
    return -1;
}

static int run_once(zg_db *db, const char *sql, const zg_val *params, int nparams, zg_row_fn fn, void *ctx,
                    int64_t *affected)
{
    if (connect_direct(db) != 0)
        return -1;
    MYSQL_STMT *st = get_stmt(db, sql);
    if (!st)
        return -1;
    if (nparams > MAX_PARAMS || (unsigned long)nparams != mysql_stmt_param_count(st)) {
        set_err(db, 0, "parameter count mismatch");
        return -1;
    }
    MYSQL_BIND pb[MAX_PARAMS];
    long long ints[MAX_PARAMS];
    unsigned long slens[MAX_PARAMS];
    memset(pb, 0, sizeof(MYSQL_BIND) * (size_t)(nparams ? nparams : 1));
    for (int i = 0; i < nparams; i++) {
        switch (params[i].type) {
        case ZG_V_INT:
            ints[i] = params[i].i;
            pb[i].buffer_type = MYSQL_TYPE_LONGLONG;
            pb[i].buffer = &ints[i];
            break;
        case ZG_V_STR:
            slens[i] = (unsigned long)params[i].n;
            pb[i].buffer_type = MYSQL_TYPE_STRING;
            pb[i].buffer = (void *)params[i].s;
            pb[i].buffer_length = slens[i];
            pb[i].length = &slens[i];
            break;
        default:
            pb[i].buffer_type = MYSQL_TYPE_NULL;
        }
    }
    if ((nparams && mysql_stmt_bind_param(st, pb) != 0) || mysql_stmt_execute(st) != 0) {
        set_err(db, mysql_stmt_errno(st), mysql_stmt_error(st));
        mysql_stmt_reset(st);
        return -1;
    }
    db->trips++;
    if (affected)
        *affected = (int64_t)mysql_stmt_affected_rows(st);
    if (fetch_results(db, st, fn, ctx) != 0) {
        mysql_stmt_reset(st);
        return -1;
    }
    return 0;
}

/* When the database last stopped answering (a failure beyond a reconnect that took at least
 * SLOW_FAIL_MS, i.e. timeouts, not a refused connection): for DOWN_FOR_MS afterwards every statement
 * of this process fails at once instead of waiting out the timeouts again, so a database that does
 * not answer costs one timeout, not one per request. A database that refuses connections (stopped,
 * restarting) is asked again at once: it may be back the next moment. */
#define DOWN_FOR_MS 2000
/* A statement rolled back by a deadlock or a Galera write conflict is run again after a pause
 * (zg_dbhost_conflict_pause_ms) at least LOCK_RETRIES times, and for LOCK_RETRY_MS: a row every
 * node writes at once (a user's balance under a burst of requests on two web nodes) can lose
 * several certifications in a row. */
#define LOCK_RETRIES 8
#define LOCK_RETRY_MS 3000
#define SLOW_FAIL_MS 1000
static int64_t down_until;

static int run_direct(zg_db *db, const char *sql, const zg_val *params, int nparams, zg_row_fn fn, void *ctx,
                      int64_t *affected);

static int database_down(zg_db *db)
{
    if (zg_clock_ms() < __atomic_load_n(&down_until, __ATOMIC_RELAXED)) {
        set_err(db, CR_SERVER_GONE_ERROR, "database unavailable (it failed a moment ago)");
        return 1;
    }
    return 0;
}

int zg_db_run(zg_db *db, const char *sql, const zg_val *params, int nparams, zg_row_fn fn, void *ctx,
              int64_t *affected)
{
    if (!db->pool)
        return run_direct(db, sql, params, nparams, fn, ctx, affected);
    if (database_down(db))
        return -1;
    int gate = zg_gate_pause(); /* the statement's wait is not the CPU's */
    zg_db *c = borrow(db);
    if (!c) {
        zg_gate_resume(gate);
        return -1;
    }
    uint64_t t0 = c->trips;
    int rc = run_direct(c, sql, params, nparams, fn, ctx, affected);
    give_back(db, c, t0);
    zg_gate_resume(gate);
    return rc;
}

static int run_direct(zg_db *db, const char *sql, const zg_val *params, int nparams, zg_row_fn fn, void *ctx,
                      int64_t *affected)
{
    int conn_retries = 1, conflicts = 0, not_ready = 0;
    bool listed = db->cfg->db_nhosts > 1;
    int64_t t0 = zg_clock_ms();
    if (database_down(db))
        return -1;
    for (;;) {
        db->errnum = 0;
        if (run_once(db, sql, params, nparams, fn, ctx, affected) == 0)
            return 0;
        if (db->errnum == ER_NODE_NOT_READY && listed && not_ready++ < db->cfg->db_nhosts) {
            /* the statement did not run: move to the next server */
            zg_dbhost_mark(db->host, false, zg_clock_ms());
            zg_warn("database %s is not ready (%s); trying the next one", db->cfg->db_hosts[db->host], db->err);
            disconnect(db);
            continue;
        }
        if (is_conn_error(db->errnum) || !db->connected) {
            /* with [database] hosts, the server that failed is tried after the others for a while,
             * so the one retry goes to the next server even after a timeout */
            if (listed && db->connected)
                zg_dbhost_mark(db->host, false, zg_clock_ms());
            disconnect(db);
            /* a connection that broke at once (the server restarted, an idle connection timed out)
             * is made again; one that timed out is not waited for twice */
            if (conn_retries-- > 0 && (listed || zg_clock_ms() - t0 < SLOW_FAIL_MS)) {
                zg_warn("database connection lost (%s); reconnecting", db->err);
                continue;
            }
            int64_t t1 = zg_clock_ms();
            if (t1 - t0 >= SLOW_FAIL_MS)
                __atomic_store_n(&down_until, t1 + DOWN_FOR_MS, __ATOMIC_RELAXED);
        } else if (db->errnum == 1615 /* needs re-prepare */ && conn_retries-- > 0) {
            drop_statements(db);
            continue;
        } else if (is_retry_error(db->errnum) && (conflicts < LOCK_RETRIES || zg_clock_ms() - t0 < LOCK_RETRY_MS)) {
            /* rolled back whole: asking again cannot apply it twice */
            struct timespec ts = {0, (long)zg_dbhost_conflict_pause_ms(++conflicts) * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        return -1;
    }
}

static int exec_text_direct(zg_db *db, const char *sql, size_t len);

int zg_db_exec_text(zg_db *db, const char *sql, size_t len)
{
    if (!db->pool)
        return exec_text_direct(db, sql, len);
    zg_db *c = borrow(db);
    if (!c)
        return -1;
    uint64_t t0 = c->trips;
    int rc = exec_text_direct(c, sql, len);
    give_back(db, c, t0);
    return rc;
}

static int exec_text_direct(zg_db *db, const char *sql, size_t len)
{
    if (connect_direct(db) != 0)
        return -1;
    if (mysql_real_query(db->my, sql, (unsigned long)len) != 0) {
        set_err(db, mysql_errno(db->my), mysql_error(db->my));
        if (is_conn_error(db->errnum))
            disconnect(db);
        return -1;
    }
    db->trips++;
    for (;;) {
        MYSQL_RES *res = mysql_store_result(db->my);
        if (res)
            mysql_free_result(res);
        int nr = mysql_next_result(db->my);
        if (nr == -1)
            return 0;
        if (nr > 0) {
            set_err(db, mysql_errno(db->my), mysql_error(db->my));
            return -1;
        }
    }
}

const char *zg_db_error(const zg_db *db)
{
    return db->err;
}

unsigned zg_db_errno(const zg_db *db)
{
    return db->errnum;
}

uint64_t zg_db_round_trips(const zg_db *db)
{
    return db->trips;
}

int zg_db_row_ints(void *ctx, int ncols, char **vals, const size_t *lens)
{
    zg_ints *out = ctx;
    for (int i = 0; i < ncols && i < out->n; i++) {
        out->v[i] = 0;
        if (vals[i])
            zg_parse_i64(vals[i], lens[i], INT64_MIN, INT64_MAX, &out->v[i]);
    }
    return 1;
}
