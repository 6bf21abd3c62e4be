/* zenn-admin db: migrate and status. */
#include "admin.h"
#include "sql_split.h"

/* The embedded SQL texts (admin/sql_embed.c, generated from sql/ by admin/embed.sh). */
extern const char zg_sql_schema[];
extern const char zg_sql_catalog[];
extern const char zg_sql_migrate_2[];
extern const char zg_sql_migrate_3[];
extern const char zg_sql_migrate_4[];
extern const char zg_sql_migrate_5[];
extern const char zg_sql_migrate_6[];
extern const char zg_sql_migrate_7[];
extern const char zg_sql_migrate_8[];
extern const char zg_sql_migrate_9[];
extern const char zg_sql_migrate_10[];
extern const char zg_sql_migrate_11[];
extern const char zg_sql_migrate_12[];

/* sql/schema.sql is the whole current schema: a new database gets it at once, at this version. */
#define SCHEMA_VERSION 12

/* Forward migrations (deltas): each is applied once, in order, to a database made by an older
 * version. To change the schema, change schema.sql, raise SCHEMA_VERSION, and append
 * {N + 1, "what", zg_sql_migrate_N_plus_1} (embedded like the schema) doing the same to an existing
 * database; never edit an entry that has shipped. */
static const struct migration {
    int version;
    const char *name;
    const char *sql;
} MIGRATIONS[] = {
    {2, "leases and batched settlement", zg_sql_migrate_2},
    {3, "holds for what a request can cost, long-context tiers, rate-limit recalls, idempotent money calls",
     zg_sql_migrate_3},
    {4, "batched settlement consumes lots through the one lot walk", zg_sql_migrate_4},
    {5, "customer portal: passwords, sessions, sign-in limits, invitations, password resets", zg_sql_migrate_5},
    {6, "the lot walk carries the current lot through a batch", zg_sql_migrate_6},
    {7, "usage analytics: daily rollups kept by settlement, lot pieces per day, retention", zg_sql_migrate_7},
    {8, "card top-ups: checkouts, processor events applied once, refunds, receipts", zg_sql_migrate_8},
    {9, "the per-user cap on requests in flight, across processes and nodes", zg_sql_migrate_9},
    {10, "channels: several upstream accounts per provider; the channel and attempts of each request",
     zg_sql_migrate_10},
    {11, "key expiry, browser keys bound to a session, one key lookup, background image jobs", zg_sql_migrate_11},
    {12, "a settlement releases only what its lease still holds (a lost node's leases released meanwhile)",
     zg_sql_migrate_12},
};
#define N_MIGRATIONS ((int)(sizeof MIGRATIONS / sizeof MIGRATIONS[0]))

struct exec_ctx {
    app *a;
    const args *g;
    const char *what;
};

static int exec_statement(void *ud, const char *sql, size_t len, int line)
{
    struct exec_ctx *x = ud;
    if (zg_db_exec_text(x->a->db, sql, len) == 0)
        return 0;
    fail(x->g, "%s, statement at line %d: database error %u: %s", x->what, line, zg_db_errno(x->a->db),
         zg_db_error(x->a->db));
    return -1;
}

/* Run every statement of an embedded script. RC_OK or RC_FAIL (reported). */
static int run_script(app *a, const args *g, const char *what, const char *sql)
{
    struct exec_ctx x = {a, g, what};
    char err[256] = "";
    if (sql_split(sql, exec_statement, &x, err, sizeof err) != 0)
        return err[0] ? fail(g, "%s: %s", what, err) : RC_FAIL;
    return RC_OK;
}

static const char SQL_HAS_SCHEMA[] = "SELECT COUNT(*) FROM information_schema.tables"
                                     " WHERE table_schema = DATABASE() AND table_name = 'schema_version'";
static const char SQL_SCHEMA_VERSION[] = "SELECT COALESCE(MAX(version), 0) FROM schema_version";

/* The database's schema version (0 for an empty database). 0 or -1. */
static int schema_version(app *a, int64_t *v)
{
    int64_t has = 0;
    if (query_i64(a, SQL_HAS_SCHEMA, NULL, 0, 0, &has) != 0)
        return -1;
    *v = 0;
    return has ? query_i64(a, SQL_SCHEMA_VERSION, NULL, 0, 0, v) : 0;
}

static const char SQL_LOCK[] = "SELECT GET_LOCK('zenn-gateway.migrate', 60)";
static const char SQL_UNLOCK[] = "SELECT RELEASE_LOCK('zenn-gateway.migrate')";
static const char SQL_RECORD_VERSION[] = "INSERT IGNORE INTO schema_version (version) VALUES (?)";
static const char SQL_COUNT_MODELS[] = "SELECT COUNT(*) FROM models";

static int migrate_locked(app *a, const args *g)
{
    int64_t cur;
    if (schema_version(a, &cur) != 0)
        return db_fail(a, g, "reading the schema version");
    _Static_assert(SCHEMA_VERSION == 12, "SCHEMA_VERSION and the last migration go together");
    int latest = MIGRATIONS[N_MIGRATIONS - 1].version;
    if (cur > latest)
        return fail(g, "the database is at schema version %" PRId64 ", newer than this zenn-admin knows (%d);"
                       " upgrade zenn-admin",
                    cur, latest);
    if (cur == 0) {
        /* a new database: the current schema in one go */
        if (run_script(a, g, "the schema", zg_sql_schema) != RC_OK)
            return RC_FAIL;
        zg_val p[] = {ZG_INT(SCHEMA_VERSION)};
        if (query(a, SQL_RECORD_VERSION, p, 1, NULL, NULL) != 0)
            return db_fail(a, g, "recording the schema version");
        printf("created the schema at version %d\n", SCHEMA_VERSION);
        cur = SCHEMA_VERSION;
    }
    for (int i = 0; i < N_MIGRATIONS; i++) {
        const struct migration *m = &MIGRATIONS[i];
        if (m->version <= cur)
            continue;
        char what[96];
        snprintf(what, sizeof what, "migration %d (%s)", m->version, m->name);
        if (run_script(a, g, what, m->sql) != RC_OK)
            return RC_FAIL;
        zg_val p[] = {ZG_INT(m->version)};
        if (query(a, SQL_RECORD_VERSION, p, 1, NULL, NULL) != 0)
            return db_fail(a, g, "recording the schema version");
        printf("applied migration %d (%s)\n", m->version, m->name);
        cur = m->version;
    }
    if (run_script(a, g, "loading the model catalog", zg_sql_catalog) != RC_OK)
        return RC_FAIL;
    int64_t models = 0;
    if (query_i64(a, SQL_COUNT_MODELS, NULL, 0, 0, &models) != 0)
        return db_fail(a, g, "counting models");
    printf("schema at version %" PRId64 "; catalog: %" PRId64 " models\n", cur, models);
    return RC_OK;
}

int cmd_db_migrate(app *a, const args *g)
{
    if (!app_db(a, g))
        return RC_FAIL;
    int64_t locked = 0;
    if (query_i64(a, SQL_LOCK, NULL, 0, 0, &locked) != 0)
        return db_fail(a, g, "taking the migration lock");
    if (locked != 1)
        return fail(g, "another migration is running (lock zenn-gateway.migrate is held)");
    int rc = migrate_locked(a, g);
    query(a, SQL_UNLOCK, NULL, 0, NULL, NULL);
    return rc;
}

static const char SQL_STATUS[] =
    "SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM users WHERE status = 'active'),"
    " (SELECT COUNT(*) FROM api_keys WHERE status = 'active'), (SELECT COUNT(*) FROM api_keys WHERE status = 'revoked'),"
    " (SELECT COUNT(*) FROM models), (SELECT COUNT(*) FROM models WHERE status = 'live'),"
    " (SELECT COUNT(*) FROM model_aliases), (SELECT COUNT(*) FROM topups),"
    " (SELECT COALESCE(SUM(usd_micros), 0) FROM topups), (SELECT COUNT(*) FROM usage_log),"
    " (SELECT COUNT(*) FROM usage_log WHERE status = 'pending'),"
    " (SELECT COUNT(*) FROM usage_log WHERE status = 'pending' AND created_at < NOW(3) - INTERVAL ? SECOND),"
    " (SELECT version FROM catalog_version WHERE id = 1)";

static const char SQL_STATUS_LEASES[] = "SELECT COUNT(*) FROM leases";
static const char SQL_STATUS_LEASED[] = "SELECT COALESCE(SUM(credits), 0) FROM leases";

int cmd_db_status(app *a, const args *g)
{
    if (!app_db(a, g))
        return RC_FAIL;
    const zg_settings *s = &a->settings;
    int64_t ver;
    if (schema_version(a, &ver) != 0)
        return db_fail(a, g, "reading the schema version");
    int latest = MIGRATIONS[N_MIGRATIONS - 1].version;
    printf("database:        %s at %s %s\n", s->db_name, s->db_socket[0] ? "socket" : "host",
           s->db_socket[0] ? s->db_socket : s->db_host);
    if (ver == 0) {
        printf("schema version:  none (empty database)\n");
        return fail(g, "the schema is not installed: run 'zenn-admin db migrate'");
    }
    printf("schema version:  %" PRId64 "%s\n", ver,
           ver < latest ? " (migrations pending: run 'zenn-admin db migrate')"
                        : ver > latest ? " (newer than this zenn-admin)" : " (current)");
    rowset r;
    zg_val p[] = {ZG_INT(s->reap_after)};
    if (query(a, SQL_STATUS, p, 1, &r, NULL) != 0)
        return db_fail(a, g, "counting");
    numbuf b;
    printf("catalog version: %" PRId64 "\n", rs_i64(&r, 0, 12));
    printf("users:           %" PRId64 " (%" PRId64 " active)\n", rs_i64(&r, 0, 0), rs_i64(&r, 0, 1));
    printf("api keys:        %" PRId64 " active, %" PRId64 " revoked\n", rs_i64(&r, 0, 2), rs_i64(&r, 0, 3));
    printf("models:          %" PRId64 " (%" PRId64 " live), %" PRId64 " aliases\n", rs_i64(&r, 0, 4),
           rs_i64(&r, 0, 5), rs_i64(&r, 0, 6));
    printf("top-ups:         %" PRId64 " (%s USD in total)\n", rs_i64(&r, 0, 7), fmt_usd(rs_i64(&r, 0, 8), b));
    printf("usage rows:      %" PRId64 "\n", rs_i64(&r, 0, 9));
    printf("pending:         %" PRId64 " (%" PRId64 " older than %ds%s)\n", rs_i64(&r, 0, 10), rs_i64(&r, 0, 11),
           s->reap_after, rs_i64(&r, 0, 11) ? ": run 'zenn-admin reap'" : "");
    rs_free(&r);
    if (ver >= 2) {
        int64_t lv[2] = {0, 0};
        if (query_i64(a, SQL_STATUS_LEASES, NULL, 0, 0, &lv[0]) == 0 &&
            query_i64(a, SQL_STATUS_LEASED, NULL, 0, 0, &lv[1]) == 0)
            printf("leases:          %" PRId64 " held by gateway processes (%s USD of list price)\n", lv[0],
                   fmt_usd(lv[1], b));
    }
    return RC_OK;
}
