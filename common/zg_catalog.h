#ifndef ZG_CATALOG_H
#define ZG_CATALOG_H
#include <stddef.h>
#include <stdint.h>
#include "zg_db.h"

typedef enum { ZG_MODEL_LIVE = 0, ZG_MODEL_COMING_SOON = 1 } zg_model_status;

/* Plans, ranked. A user's plan is the highest plan among top-ups with credits left. */
enum { ZG_PLAN_NONE = 0, ZG_PLAN_PRO = 1, ZG_PLAN_MAX = 2, ZG_PLAN_ENTERPRISE = 3 };

/* One catalog entry. Prices are micro-dollars per million tokens; -1 means "not priced". */
typedef struct zg_model {
    char id[65];
    char display_name[129];
    char provider[33];  /* "anthropic", "openai", ... (coming-soon models may name others) */
    char kind[8];       /* chat | image | video | audio */
    int status;         /* zg_model_status */
    int min_plan;       /* ZG_PLAN_* */
    int64_t price_input, price_output, price_cache_read, price_cache_write_5m, price_cache_write_1h;
    int64_t price_unit; /* credits per image */
    int64_t created;    /* unix seconds */
    int64_t context_window; /* input tokens the model accepts; 0 = unknown */
    int64_t expand_input;   /* input tokens a hold assumes when the provider expands input itself
                               (files or images by URL or id, stored conversations); 0 = the context */
    /* long-context tier: input of all kinds above long_threshold tokens prices the whole request at
     * these (cache writes scale with the input price); long_threshold 0 = no tier */
    int64_t long_threshold, long_input, long_output, long_cache_read;
} zg_model;

/* Plan name for a rank ("none", "pro", "max", "enterprise"). */
const char *zg_plan_name(int rank);
/* Plan rank by name; -1 if unknown (none is not accepted). */
int zg_plan_parse(const char *name);
/* Credits granted per dollar by a plan (1, 4, 6). */
int zg_plan_multiplier(int rank);

/* For a request: make sure this process holds a catalog (loaded on first use; once there, no
 * database access: zg_catalog_upkeep keeps it current). Thread-safe. 0, or -1 when no catalog could
 * ever be loaded. */
int zg_catalog_refresh(zg_db *db);
/* For the main thread, about every second: reload the catalog when the database's catalog version
 * moved (a stale one is kept on failures). */
void zg_catalog_upkeep(zg_db *db);
/* Force the next refresh to check the version. */
void zg_catalog_invalidate(void);
/* Look a model up by id or alias (a leading "models/" is ignored). Copies it to *out. 0 or -1. */
int zg_catalog_find(const char *name, size_t len, zg_model *out);
/* A malloc'd copy of every model in catalog order; free() it. 0 or -1. */
int zg_catalog_list(zg_model **out, size_t *n);

#endif
