#ifndef ZG_BILLING_H
#define ZG_BILLING_H
#include <stdbool.h>
#include <stdint.h>
#include "zg_auth.h"
#include "zg_catalog.h"
#include "zg_config.h"
#include "zg_db.h"
#include "zg_record.h"
#include "zg_usage.h"

/* Outcome codes of admission (the zg_admit procedure). */
enum {
    ZG_ADMIT_OK = 0,
    ZG_ADMIT_BAD_KEY = 401,
    ZG_ADMIT_BALANCE = 402,
    ZG_ADMIT_PLAN = 403,
    ZG_ADMIT_RATE = 429,
    ZG_ADMIT_RECALLED = 4290, /* 429, but other processes held unused slices: recalled, ask again */
    ZG_ADMIT_KEY_LIMIT = 4021,
    ZG_ADMIT_DB_ERROR = -1,
};

typedef struct zg_admission {
    int code;
    zg_principal who;
    int64_t rl_limit, rl_used, rl_reset;
} zg_admission;

/* What the hold of one request assumes. */
typedef struct zg_hold_req {
    int64_t input_tokens;   /* estimated from the body's size */
    int64_t max_output;     /* the request's output cap; 0 = none stated */
    int64_t choices;        /* outputs generated at once (OpenAI n, Gemini candidateCount); 0 or 1 = one */
    int64_t units;          /* images asked for (per-unit models) */
    bool expands;           /* the provider adds input the body does not carry (zg_inspect_expands) */
    int64_t context_window; /* the request's own window when an option widens it (0 = the model's) */
} zg_hold_req;

/* Credits to hold before calling the upstream, at m's prices (its long-context tier when the
 * assumed input is above the threshold): input at min(body estimate, the input cap), or, when the
 * provider expands input, at least the model's expand_input (default its context window); output at
 * min(the stated cap, the output cap), the output cap when none is stated, times the choices; plus
 * units x per-unit price; at least 1 credit. */
int64_t zg_billing_hold_estimate(const zg_settings *cfg, const zg_model *m, const zg_hold_req *q);
/* Admit a request in one round trip (auth, plan, rate limit, and when hold > 0 the hold and the
 * pending usage row, committed). Fills *out; returns out->code. */
int zg_billing_admit(zg_db *db, const char *key_hash, const char *request_id, const char *group, int limit,
                     int min_plan, int64_t hold, const char *surface, const char *model, const char *provider,
                     zg_admission *out);

/* Current rate-limit figures of a user's group without counting a request (for error answers
 * that come before admission). Fills *out's rl_* fields. 0 or -1. */
int zg_billing_rate_peek(zg_db *db, int64_t user_id, const char *group, int limit, zg_admission *out);


/* Settle a pending request exactly once (idempotent per request id): release its hold, debit the
 * balance and key, consume lots oldest first, complete the usage row. Retries on transient
 * database errors; when the database stays unreachable the settlement is appended to the spool
 * file and replayed later (zg_billing_replay_spool). Returns 0 when settled or spooled, -1 if
 * neither was possible (logged loudly). *cash (may be NULL) gets the money consumed. */
int zg_billing_settle(zg_db *db, const zg_settings *cfg, const char *request_id, const zg_settlement *s,
                      int64_t *cash);
/* Undo an admission whose outcome is unknown (the database failed during zg_billing_admit: the
 * procedure may have committed before the connection broke). Settles request_id as abandoned at 0
 * credits, releasing any hold; a request that was never admitted is left alone (zg_settle is a no-op
 * for unknown ids). One try, then the spool. 0, or -1 if neither worked. */
int zg_billing_cancel(zg_db *db, const zg_settings *cfg, const char *request_id);
/* Replay spooled settlements; returns how many were applied, -1 on error. Safe to run from
 * several processes (the spool is locked while replayed). Lines the database refuses as bad data
 * and lines that are not settlements (zg_record.h) are moved to "<spool_path>.rejected" (logged); on
 * any other failure the rest stays spooled. */
int zg_billing_replay_spool(zg_db *db, const zg_settings *cfg);
/* Settle requests left pending longer than age_s (their worker died) at their hold, flagged
 * estimated, status abandoned. Returns how many, -1 on error. */
int zg_billing_reap(zg_db *db, int age_s);
/* Retention: delete up to limit settled usage rows that started more than keep_days UTC days ago
 * (the rollups keep their totals). Returns how many, -1 on error. */
int zg_billing_purge(zg_db *db, int keep_days, int limit);

#endif
