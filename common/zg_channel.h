/* zg_channel: upstream accounts ("channels"), how a request picks one, and failover state.
 *
 * A provider's [provider.NAME] section in zenn.conf is its default channel, named after the
 * provider; the `channels` table adds others (zenn-admin channel ...). Each process keeps the
 * table in memory (reloaded by the main thread when the channel version moves: zg_channel_upkeep),
 * so picking a channel never waits for the database.
 *
 * Picking: the enabled channels of the provider that serve the model and the user's plan and whose
 * circuit for the model is not open; the highest priority tier that has a channel below its
 * concurrency cap; the channel that served the same key and model within [routing] sticky_s if it
 * is in that tier, else a weighted random one. Failures open a channel's circuit for a model
 * ([routing] breaker_failures within breaker_window_s, or at once when the upstream said when to
 * come back); after the cooldown one request probes it (half-open). Open circuits are shared with
 * the other processes and nodes through the channel_health table within about a second. An
 * upstream 401/403 disables a stored channel for everyone, with the reason. */
#ifndef ZG_CHANNEL_H
#define ZG_CHANNEL_H
#include <stdbool.h>
#include <stdint.h>
#include "zg_config.h"
#include "zg_db.h"

typedef struct zg_channel {
    int id;           /* channels.id; -(provider + 1) for a provider's default channel */
    char name[65];
    int provider;     /* zg_provider */
    zg_provider_conf conf;
    int priority, weight, max_conc;
} zg_channel;

/* How an attempt ended, for the breaker. */
enum { ZG_CH_OK = 0, ZG_CH_FAIL, ZG_CH_AUTH };

#define ZG_CHANNEL_MAX_TRIED 16

/* One request's way through the channels. */
typedef struct zg_channel_try {
    int provider;
    char model[65];
    int plan;
    char key_hash[65];
    int tried[ZG_CHANNEL_MAX_TRIED];
    int ntried;
    int holding;      /* the channel whose in-flight count this request holds (0: none) */
    int probing;      /* it is the half-open probe of that channel */
    int slot;         /* the host-wide slot of that channel it holds (zg_slots), -1 none */
    int left;         /* untried channels that could take the request, as of the last pick */
    int64_t t0_ms;    /* when routing began (zg_clock_ms): the failover budget counts from here */
} zg_channel_try;

/* Start routing a request for model (catalog id) of provider, for a user of plan rank `plan`. */
void zg_channel_begin(zg_channel_try *rt, int provider, const char *model, int plan, const char *key_hash);
/* The next channel to try, copied to *out, counted in flight until zg_channel_result or
 * zg_channel_end. 0; -1 when no untried channel can take the request; -3 when the only ones left
 * are at their cap (then zg_channel_next_wait). Never waits. */
int zg_channel_next(zg_channel_try *rt, const zg_settings *cfg, zg_channel *out);
/* As zg_channel_next, but waits up to [routing] queue_timeout_s for a channel at its cap, in line
 * with the other waiting requests: higher plans first, then the oldest. -2 when the wait ran out. */
int zg_channel_next_wait(zg_channel_try *rt, const zg_settings *cfg, zg_channel *out);
/* How many requests of this process wait in that line now. */
int zg_channel_waiting(void);
/* How many untried channels could take the request, as zg_channel_next saw them when it picked
 * the last one (another attempt is worth making). */
int zg_channel_remaining(const zg_channel_try *rt);
/* Whether another attempt may follow one that fails before answering: fewer than [routing]
 * max_attempts made, within failover_budget_ms of zg_channel_begin, and a channel left to try. */
bool zg_channel_may_retry(const zg_channel_try *rt, const zg_settings *cfg, int attempts);
/* Report how the attempt on ch ended (ZG_CH_*); retry_after_s > 0 is how long the upstream asked
 * to wait; reason is for the logs and, for ZG_CH_AUTH, the channel's disabled reason. Releases the
 * attempt's in-flight count. */
void zg_channel_result(zg_channel_try *rt, const zg_settings *cfg, const zg_channel *ch, int outcome, int retry_after_s,
                     const char *reason);
/* End the request's routing (releases what is still held). */
void zg_channel_end(zg_channel_try *rt);

/* For the main thread, about every second: reload the channel table when its version moved, write
 * circuits this process opened or closed and channels it disabled, and read those opened elsewhere. */
void zg_channel_upkeep(zg_db *db);

/* Upstream answers that say "this account, not this request": another channel may serve it
 * (429, 500, 502, 503, 504, 529, 401, 403). */
bool zg_channel_failover_status(int status);
/* The breaker's view of an attempt: ZG_CH_AUTH for 401/403, ZG_CH_FAIL for 429, a 5xx, or no
 * answer at all (unanswered: refused, or timed out before any status), else ZG_CH_OK. */
int zg_channel_outcome(int status, bool unanswered);

/* Whether a channel serves a model: models is a comma list ("" = all). */
int zg_channel_serves(const char *models, const char *model);
/* Plan mask from a comma list of plan names ("" = all plans): bit (1 << rank). -1 if a name is bad. */
int zg_channel_plans(const char *plans);

/* Internal to zg_channel.c and zg_channel_db.c. */
struct zg_chan_row {
    zg_channel ch;
    char models[2049];
    int plans;      /* mask; 0 = all */
    int enabled;
};
/* Replace the stored channels (rows[0..n), taken over) under the module's lock. */
void zg_channel_install(struct zg_chan_row *rows, int n);
/* Circuits opened elsewhere: (channel name, model) closed to new requests until open_until_ms (wall). */
void zg_channel_note_open(const char *name, const char *model, int64_t open_until_ms);
/* Pending writes for the main thread: at most cap of them, removed from the queue. */
struct zg_chan_write {
    int kind;        /* 1 open circuit, 2 close circuit, 3 disable channel */
    int id;
    char name[65], model[65];
    int64_t until_ms;
    char reason[160];
};
int zg_channel_take_writes(struct zg_chan_write *w, int cap);

#endif
