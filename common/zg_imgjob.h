/* zg_imgjob: image generations carried out in the background, independent of any client
 * connection ("background": true on /api/v1/images/generations).
 *
 * The request is admitted as usual (its pending usage row holds the credits) and stored as a row
 * of image_jobs. Runner threads in every images process claim queued jobs with one conditional
 * UPDATE, call the upstream through the channels like any request (failover before an answer),
 * settle the usage row exactly once (per image returned; nothing when it failed), and keep the
 * answer until [images] keep_hours after it finished. A process renews its jobs every few seconds;
 * a job whose process stopped renewing is claimed again by another one (the settlement is
 * idempotent per request, so it is billed once whoever finishes it). */
#ifndef ZG_IMGJOB_H
#define ZG_IMGJOB_H
#include <curl/curl.h>
#include <json-c/json.h>
#include <stdint.h>
#include "zg_config.h"
#include "zg_db.h"

#define ZG_IMGJOB_ID_LEN 28 /* img_ + 24 hex */

/* What is stored for one job. */
typedef struct zg_imgjob_new {
    const char *request_id;
    int64_t user_id, key_id;
    int plan_rank;
    const char *model; /* catalog id */
    const char *body;  /* the upstream request body (JSON) */
    size_t len;
} zg_imgjob_new;

/* The upstream request of an image generation on a channel's settings pc (the one place that
 * builds it, for requests answered at once and for jobs): the URL into url[cap], and the headers
 * (Authorization, content-type, no Expect) appended to *headers. 0, or -1 when the URL does not
 * fit, the key is unusable in a header, or memory ran out. */
int zg_imgjob_upstream(const zg_provider_conf *pc, char *url, size_t cap, struct curl_slist **headers);
/* Store a queued job: fills id and *created (unix seconds). 0, or -1 on a database error. */
int zg_imgjob_enqueue(zg_db *db, const zg_settings *cfg, const zg_imgjob_new *j, char id[ZG_IMGJOB_ID_LEN + 1],
                      int64_t *created);
/* The job id of user_id as the API shows it (id, object, status, created, model; the upstream's
 * answer with its images and the credits billed when completed; the error when failed): 1 with
 * *out, 0 when there is no such job (another user's, never made, or expired), -1 database error. */
int zg_imgjob_show(zg_db *db, const char *id, int64_t user_id, json_object **out);

/* Start [images] workers runner threads in this process (once). */
void zg_imgjob_start(const zg_settings *cfg);
/* Main thread, about every second: renew this process's jobs, delete expired ones. */
void zg_imgjob_upkeep(zg_db *db, const zg_settings *cfg);
/* Stop the runners: jobs still running are handed back to the queue for another process. */
void zg_imgjob_stop(zg_db *db);

#endif
