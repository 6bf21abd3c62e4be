/* zg_channel: the database side, run by each process's main thread (see zg_channel.h). */
#include "zg_channel.h"
#include "zg_log.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char SQL_VERSION[] = "SELECT version FROM catalog_version WHERE id = 3";
static const char SQL_CHANNELS[] =
    "SELECT id, name, provider, base_url, anthropic_base_url, openai_base_url, api_key, priority, weight,"
    " max_concurrency, models, plans, enabled FROM channels ORDER BY id";
static const char SQL_OPEN[] =
    "SELECT channel, model, FLOOR(UNIX_TIMESTAMP(open_until) * 1000) FROM channel_health WHERE open_until > NOW(3)";
static const char SQL_SET_OPEN[] =
    "INSERT INTO channel_health (channel, model, open_until, reason) VALUES (?, ?, FROM_UNIXTIME(? / 1000), ?)"
    " ON DUPLICATE KEY UPDATE open_until = GREATEST(open_until, VALUES(open_until)), reason = VALUES(reason)";
static const char SQL_SET_CLOSED[] = "DELETE FROM channel_health WHERE channel = ? AND model = ?";
static const char SQL_DISABLE[] =
    "UPDATE channels SET enabled = 0, disabled_reason = ? WHERE id = ? AND enabled = 1";

struct load {
    struct zg_chan_row *r;
    int n, cap;
    int oom;
};

static int channel_row(void *ctx, int nc, char **v, const size_t *l)
{
    struct load *ld = ctx;
    if (nc < 13)
        return 1;
    int prov = v[2] ? zg_provider_parse(v[2]) : -1;
    if (prov < 0)
        return 0; /* a provider this build does not know: skipped */
    if (ld->n == ld->cap) {
        int cap = ld->cap ? ld->cap * 2 : 16;
        struct zg_chan_row *p = realloc(ld->r, (size_t)cap * sizeof *p);
        if (!p) {
            ld->oom = 1;
            return 1;
        }
        ld->r = p;
        ld->cap = cap;
    }
    struct zg_chan_row *r = &ld->r[ld->n++];
    memset(r, 0, sizeof *r);
    r->ch.id = (int)zg_db_cell_int(v[0], l[0], 0);
    zg_db_cell_str(r->ch.name, sizeof r->ch.name, v[1], l[1]);
    r->ch.provider = prov;
    zg_db_cell_str(r->ch.conf.base_url, sizeof r->ch.conf.base_url, v[3], l[3]);
    zg_db_cell_str(r->ch.conf.anthropic_base_url, sizeof r->ch.conf.anthropic_base_url, v[4], l[4]);
    zg_db_cell_str(r->ch.conf.openai_base_url, sizeof r->ch.conf.openai_base_url, v[5], l[5]);
    zg_db_cell_str(r->ch.conf.api_key, sizeof r->ch.conf.api_key, v[6], l[6]);
    zg_config_trim_slashes(r->ch.conf.base_url);
    zg_config_trim_slashes(r->ch.conf.anthropic_base_url);
    zg_config_trim_slashes(r->ch.conf.openai_base_url);
    r->ch.priority = (int)zg_db_cell_int(v[7], l[7], 0);
    r->ch.weight = (int)zg_db_cell_int(v[8], l[8], 1);
    r->ch.max_conc = (int)zg_db_cell_int(v[9], l[9], 0);
    zg_db_cell_str(r->models, sizeof r->models, v[10], l[10]);
    char plans[128];
    zg_db_cell_str(plans, sizeof plans, v[11], l[11]);
    int mask = zg_channel_plans(plans);
    r->plans = mask > 0 ? mask : 0;
    r->enabled = zg_db_cell_int(v[12], l[12], 0) != 0 && mask >= 0;
    return 0;
}

static int open_row(void *ctx, int nc, char **v, const size_t *l)
{
    (void)ctx;
    if (nc < 3 || !v[0] || !v[1])
        return 0;
    char name[65], model[65];
    zg_db_cell_str(name, sizeof name, v[0], l[0]);
    zg_db_cell_str(model, sizeof model, v[1], l[1]);
    zg_channel_note_open(name, model, zg_db_cell_int(v[2], l[2], 0));
    return 0;
}

void zg_channel_upkeep(zg_db *db)
{
    static int64_t loaded = -1;
    static int warned;
    struct zg_chan_write w[64];
    int n = zg_channel_take_writes(w, 64);
    for (int i = 0; i < n; i++) {
        int rc;
        if (w[i].kind == 1) {
            zg_val p[4] = {ZG_STR(w[i].name), ZG_STR(w[i].model), ZG_INT(w[i].until_ms), ZG_STR(w[i].reason)};
            rc = zg_db_run(db, SQL_SET_OPEN, p, 4, NULL, NULL, NULL);
        } else if (w[i].kind == 2) {
            zg_val p[2] = {ZG_STR(w[i].name), ZG_STR(w[i].model)};
            rc = zg_db_run(db, SQL_SET_CLOSED, p, 2, NULL, NULL, NULL);
        } else {
            zg_val p[2] = {ZG_STR(w[i].reason), ZG_INT(w[i].id)};
            rc = zg_db_run(db, SQL_DISABLE, p, 2, NULL, NULL, NULL);
        }
        if (rc != 0)
            zg_warn("channel %s: recording its state failed: %s", w[i].name, zg_db_error(db));
    }
    int64_t ver[1] = {-1};
    if (zg_db_run(db, SQL_VERSION, NULL, 0, zg_db_row_ints, &(zg_ints){ver, 1}, NULL) != 0 || ver[0] < 0) {
        if (!warned++)
            zg_warn("channels: no channel version in the database (schema older than 10?): using zenn.conf only");
        return;
    }
    if (ver[0] != loaded) {
        struct load ld = {0};
        if (zg_db_run(db, SQL_CHANNELS, NULL, 0, channel_row, &ld, NULL) != 0 || ld.oom) {
            zg_warn("channels: loading failed: %s", ld.oom ? "out of memory" : zg_db_error(db));
            free(ld.r);
        } else {
            zg_channel_install(ld.r, ld.n);
            loaded = ver[0];
            zg_debug("channels loaded: version %lld, %d channel(s)", (long long)ver[0], ld.n);
        }
    }
    if (zg_db_run(db, SQL_OPEN, NULL, 0, open_row, NULL, NULL) != 0)
        zg_debug("channels: reading open circuits failed: %s", zg_db_error(db));
}
