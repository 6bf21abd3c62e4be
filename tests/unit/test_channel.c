/* Channel picking (zg_channel) without a database: the table installed as the loader would, then
 * tiers, plans, models, weights, stickiness, circuits (open, half-open, last resort) and the line
 * for channels at their cap (higher plans first, then the oldest; a wait that runs out). */
#include "tap.h"
#include "zg_catalog.h"
#include "zg_channel.h"
#include "zg_clock.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static zg_settings cfg;

static struct zg_chan_row row(int id, const char *name, int prio, int weight, int maxc, const char *models,
                              const char *plans)
{
    struct zg_chan_row r;
    memset(&r, 0, sizeof r);
    r.ch.id = id;
    snprintf(r.ch.name, sizeof r.ch.name, "%s", name);
    r.ch.provider = ZG_PROV_ANTHROPIC;
    snprintf(r.ch.conf.base_url, sizeof r.ch.conf.base_url, "http://%s", name);
    r.ch.priority = prio;
    r.ch.weight = weight;
    r.ch.max_conc = maxc;
    snprintf(r.models, sizeof r.models, "%s", models);
    r.plans = zg_channel_plans(plans);
    r.enabled = 1;
    return r;
}

static void install(int n, const struct zg_chan_row *rows)
{
    struct zg_chan_row *r = malloc((size_t)n * sizeof *r);
    memcpy(r, rows, (size_t)n * sizeof *r);
    zg_channel_install(r, n);
}

static const char *pick(int plan, const char *key, const char *model)
{
    static char name[65];
    zg_channel_try t;
    zg_channel ch;
    zg_channel_begin(&t, ZG_PROV_ANTHROPIC, model, plan, key);
    if (zg_channel_next(&t, &cfg, &ch) != 0)
        return "none";
    snprintf(name, sizeof name, "%s", ch.name);
    zg_channel_result(&t, &cfg, &ch, ZG_CH_OK, 0, NULL);
    zg_channel_end(&t);
    return name;
}

/* ---- the line ---- */
static pthread_mutex_t omu = PTHREAD_MUTEX_INITIALIZER;
static int order[8], norder, results[8];

struct waiter_arg {
    int id, plan;
};

static void *waiter(void *arg)
{
    struct waiter_arg *a = arg;
    zg_channel_try t;
    zg_channel ch;
    zg_channel_begin(&t, ZG_PROV_ANTHROPIC, "m", a->plan, "k-line");
    int rc = zg_channel_next(&t, &cfg, &ch);
    if (rc == -3)
        rc = zg_channel_next_wait(&t, &cfg, &ch);
    results[a->id] = rc;
    if (rc == 0) {
        pthread_mutex_lock(&omu);
        order[norder++] = a->id;
        pthread_mutex_unlock(&omu);
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
        zg_channel_end(&t);
    }
    return NULL;
}

int main(void)
{
    memset(&cfg, 0, sizeof cfg); /* no [provider.*] key: no default channel */
    cfg.max_attempts = 3;
    cfg.breaker_failures = 2;
    cfg.breaker_window_s = 30;
    cfg.cooldown_s = 1;
    cfg.sticky_s = 300;
    cfg.queue_timeout_s = 1;


    struct zg_chan_row rows[] = {
        row(1, "low", 0, 1, 0, "", ""),
        row(2, "high", 10, 1, 0, "", ""),
        row(3, "ent", 20, 1, 0, "", "enterprise"),
        row(4, "only-x", 30, 1, 0, "x", ""),
    };
    install(4, rows);
    is_str(pick(ZG_PLAN_PRO, "k1", "m"), "high", "the highest tier the plan may use");
    is_str(pick(ZG_PLAN_ENTERPRISE, "k1", "m"), "ent", "an Enterprise-only channel is Enterprise's first tier");
    is_str(pick(ZG_PLAN_PRO, "k1", "x"), "only-x", "a channel limited to a model serves it");

    /* failover order, then a circuit: two failures open it, a retry-after opens it at once */
    zg_channel_try t;
    zg_channel ch;
    zg_channel_begin(&t, ZG_PROV_ANTHROPIC, "m", ZG_PLAN_PRO, "k2");
    is_int(zg_channel_next(&t, &cfg, &ch), 0, "first attempt");
    is_str(ch.name, "high", "on the high tier");
    is_int(zg_channel_remaining(&t), 1, "one more to try");
    zg_channel_result(&t, &cfg, &ch, ZG_CH_FAIL, 5, "HTTP 429");
    is_int(zg_channel_next(&t, &cfg, &ch), 0, "second attempt");
    is_str(ch.name, "low", "on the next tier");
    zg_channel_result(&t, &cfg, &ch, ZG_CH_OK, 0, NULL);
    is_int(zg_channel_next(&t, &cfg, &ch), -1, "nothing left to try");
    zg_channel_end(&t);
    is_str(pick(ZG_PLAN_PRO, "k3", "m"), "low", "the rate-limited channel is skipped while its circuit is open");
    /* every candidate open: the one reopening first is still tried */
    zg_channel_begin(&t, ZG_PROV_ANTHROPIC, "m", ZG_PLAN_PRO, "k4");
    zg_channel_next(&t, &cfg, &ch);
    zg_channel_result(&t, &cfg, &ch, ZG_CH_FAIL, 60, "HTTP 429");
    zg_channel_end(&t);
    is_str(pick(ZG_PLAN_PRO, "k5", "m"), "high", "all open: the one reopening first (5 s before 60 s)");

    /* half-open: after the cooldown one request probes, success closes the circuit */
    install(2, (struct zg_chan_row[]){row(5, "a", 10, 1, 0, "", ""), row(6, "b", 0, 1, 0, "", "")});
    for (int i = 0; i < 2; i++) {
        zg_channel_begin(&t, ZG_PROV_ANTHROPIC, "m", ZG_PLAN_PRO, "k6");
        zg_channel_next(&t, &cfg, &ch);
        zg_channel_result(&t, &cfg, &ch, ZG_CH_FAIL, 0, "HTTP 500");
        zg_channel_end(&t);
    }
    is_str(pick(ZG_PLAN_PRO, "k7", "m"), "b", "two failures opened a's circuit");
    struct timespec ts = {1, 100 * 1000000L};
    nanosleep(&ts, NULL);
    is_str(pick(ZG_PLAN_PRO, "k7", "m"), "a", "after the cooldown a is probed, and answers");
    is_str(pick(ZG_PLAN_PRO, "k8", "m"), "a", "closed again");

    /* weights within a tier, and a key sticks to the channel that served it */
    install(2, (struct zg_chan_row[]){row(7, "w3", 0, 3, 0, "", ""), row(8, "w1", 0, 1, 0, "", "")});
    int w3 = 0;
    char key[32];
    for (int i = 0; i < 4000; i++) {
        snprintf(key, sizeof key, "kw%d", i);
        w3 += strcmp(pick(ZG_PLAN_PRO, key, "m"), "w3") == 0;
    }
    ok(w3 > 2800 && w3 < 3200, "weights 3:1 (%d of 4000)", w3);
    const char *first = pick(ZG_PLAN_PRO, "sticky", "m");
    char f[65];
    snprintf(f, sizeof f, "%s", first);
    int same = 1;
    for (int i = 0; i < 50; i++)
        same &= strcmp(pick(ZG_PLAN_PRO, "sticky", "m"), f) == 0;
    ok(same, "a key and model stay on one channel");

    /* the line: one channel with a cap of 1, held; a Pro, then an Enterprise, then a Max request
     * wait; as it frees: Enterprise, Max, Pro */
    install(1, (struct zg_chan_row[]){row(9, "capped", 0, 1, 1, "", "")});
    cfg.queue_timeout_s = 30; /* lining up may be slow (valgrind) */
    zg_channel_try hold;
    zg_channel_begin(&hold, ZG_PROV_ANTHROPIC, "m", ZG_PLAN_PRO, "k-hold");
    is_int(zg_channel_next(&hold, &cfg, &ch), 0, "the only slot taken");
    is_int(zg_channel_next(&t, &cfg, &ch), -3, "a second request would have to wait");
    pthread_t th[3];
    struct waiter_arg args[3] = {{0, ZG_PLAN_PRO}, {1, ZG_PLAN_ENTERPRISE}, {2, ZG_PLAN_MAX}};
    for (int i = 0; i < 3; i++) {
        pthread_create(&th[i], NULL, waiter, &args[i]);
        for (int spin = 0; spin < 5000 && zg_channel_waiting() < i + 1; spin++) { /* in line before the next */
            struct timespec g = {0, 1000000L};
            nanosleep(&g, NULL);
        }
    }
    is_int(zg_channel_waiting(), 3, "three requests in line");
    zg_channel_end(&hold);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    ok(norder == 3 && order[0] == 1 && order[1] == 2 && order[2] == 0, "Enterprise, then Max, then Pro (%d %d %d)",
       order[0], order[1], order[2]);
    zg_channel_begin(&hold, ZG_PROV_ANTHROPIC, "m", ZG_PLAN_PRO, "k-hold");
    zg_channel_next(&hold, &cfg, &ch);
    cfg.queue_timeout_s = 1;
    int64_t t0 = zg_clock_ms();
    struct waiter_arg late = {3, ZG_PLAN_ENTERPRISE};
    waiter(&late);
    is_int(results[3], -2, "a wait longer than queue_timeout ends");
    ok(zg_clock_ms() - t0 >= 900, "after about a second");
    zg_channel_end(&hold);
    return tap_done();
}
