/* Lease mode's inside (not for callers: see zg_lease.h). One concern a file: zg_lease.c the lease
 * table, admission and settlement; zg_lease_journal.c the journal and the replay of a dead
 * process's journal; zg_lease_writer.c the writer thread (batches, returns, recalls, refills);
 * zg_lease_db.c the SQL bindings. */
#ifndef ZG_LEASE_INT_H
#define ZG_LEASE_INT_H
#include "zg_clock.h"
#include "zg_lease.h"
#include "zg_buf.h"
#include "zg_log.h"
#include "zg_num.h"
#include "zg_record.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TAB_CAP 4096           /* key x group pairs a process leases for at once */
#define LEASE_SHARE 8          /* a lease takes at most 1/8 of what is free */
#define BATCH_MAX 400          /* rows per zg_flush call */
#define QUEUE_WAKE 256         /* queued rows that wake the writer before its period */
#define QUEUE_CAP 1000000      /* rows kept in memory while the database is away */
#define VERSION_POLL_MS 100    /* how often the access version is read */
#define UPKEEP_MS 50           /* how often idle and low leases are looked for */
/* Leases not renewed for [billing] lost_host_after seconds belong to a lost host and are released
 * by the others; they are marked alive every HEARTBEAT_MS (at least 4 times in that span), and a
 * process that could not mark them for ORPHAN_AFTER_MS forgets them (they may be released). */
#define HEARTBEAT_MS(cfg) ((cfg)->lost_host_after >= 20 ? 5000 : (cfg)->lost_host_after * 250)
#define ORPHAN_AFTER_MS(cfg) ((int64_t)(cfg)->lost_host_after * 2000 / 3)
#define JOURNAL_ROTATE (8u << 20)
#define RECALL_TRIES 8         /* a refused request asks again this often while slices are recalled */
#define RECALL_WAIT_MS 100     /* between those asks (processes poll for recalls every VERSION_POLL_MS) */
#define GROW_SLOTS 64          /* a busy key's grants grow up to 64 x lease_slots */
#define GROW_CREDITS 16        /* and 16 x lease_credits */
#define GROW_FAST_MS 1000      /* a grant spent faster than this doubles the next one */
#define SHRINK_SLOW_MS 10000   /* one that lasted longer than this halves it */

struct entry {
    bool used, granted;
    char hash[65];
    char grp[16];
    int64_t user_id, key_id;
    int plan;
    int64_t limit, hits_db, reset; /* rate figures of the last grant */
    int64_t slots;                 /* requests of the hour left in the lease */
    int64_t db_credits;            /* the lease's credits in the database not yet consumed */
    int64_t held;                  /* holds of requests in flight */
    int inflight;
    int64_t last_ms, low_until_ms;
    uint64_t version;
    int64_t grant_slots, grant_credits; /* size of the last grant: refilled when 3/4 is used */
    int64_t ask_slots, ask_credits;     /* what the next grant asks for (0: the configured size) */
    int64_t slots_at_ms, credits_at_ms; /* when slots and credits were last granted */
    bool refilling;
    int granting;        /* grants in flight for this entry (it is not recycled meanwhile) */
    int unwritten;       /* settlements that took credits of the lease, not yet written: the lease
                            is not given back (nor the entry recycled) until they are, else the
                            return would leave their credits on the row for good */
    char pending_op[80]; /* a grant whose answer was lost: asked again under the same id */
};


struct drop {
    int64_t key, credits, slots, window;
    char grp[16];
    char op[80]; /* the operation id: a return retried after a lost answer is applied once */
};

struct grant {
    int64_t v[10];
};

/* The state of lease mode in this process (zg_lease.c defines it). Fields marked (mu) are read and
 * written under mu; the writer thread alone uses the ones marked (writer). */
struct zl_state {
    const zg_settings *cfg;
    bool active;
    char owner[64];              /* owner: node_name:pid:start (mu; the writer renames it after a long outage) */
    pthread_mutex_t mu;
    pthread_cond_t wake;         /* wakes the writer before its period */
    struct entry *tab;           /* the lease table, TAB_CAP slots (mu) */
    int *used_idx;               /* indices of the slots ever used, so scans skip the empty rest (mu) */
    size_t n_used;
    zg_record *queue;           /* settlements waiting for the writer (mu) */
    size_t qn, qcap;
    uint64_t access_version;     /* the highest access version seen (atomic) */
    int jfd[2];                  /* the journal's two files */
    char jpath[2][700];
    int jgen;                    /* the file admissions go to now (mu) */
    long outstanding[2];         /* requests admitted into each file and not yet written (mu) */
    pthread_t writer;
    bool stopping;               /* (mu) */
    unsigned long jwrites;       /* journal lines written (atomic), so the writer syncs only when needed */
    bool refill_due;             /* a lease in use is three quarters spent: refill now (atomic) */
    int64_t recall_seq;          /* the last rate-limit recall answered (writer) */
};
extern struct zl_state zl;

/* ---- shared inside lease mode (zg_lease*.c) ---- */
/* The owner name now, copied under mu. */
void zl_owner_now(char out[64]);
/* r (a settlement of this process) is written or given up: its lease may go back (callers hold mu). */
void zl_written(const zg_record *r);
/* The highest access version seen. */
uint64_t zl_version_now(void);
/* Raise the access version this process knows (never lower it). */
void zl_see_version(uint64_t v);
/* A new operation id: the owner name and a sequence number. */
void zl_new_op(char *op, size_t cap);
/* The entry's lost operation id if any (then forgotten), else a new one (callers hold mu). */
void zl_take_op(struct entry *e, char *op, size_t cap);
/* Add a successful grant to an entry (callers hold mu); the sizes asked next grow while grants are
 * spent within GROW_FAST_MS and shrink back while they last longer than SHRINK_SLOW_MS. */
void zl_merge_grant(struct entry *e, const struct grant *g, int64_t now);
/* Requests of the hour and credits the entry's next grant asks for (callers hold mu). */
int64_t zl_ask_slots(const struct entry *e);
int64_t zl_ask_credits(const struct entry *e);
/* Whether an entry has used three quarters of its last grant of credits, of requests, or (granted
 * entries) of either (callers hold mu). */
bool zl_credits_low(const struct entry *e);
bool zl_slots_low(const struct entry *e);
bool zl_running_low(const struct entry *e);
void zl_sleep_ms(int ms);

/* The journal (zg_lease_journal.c): open this process's two files; append a line to file gen;
 * note an admission ('A' leased, 'P' strict with a pending row); append any record line. */
int zl_journal_open(void);
void zl_journal_write(int gen, const char *line, size_t n);
void zl_journal_admit(char kind, int gen, const char *request_id, int64_t user, int64_t key, const char *group,
                      const char *surface, const char *model, const char *provider, int64_t hold);
/* Append r as a line of kind (zg_record.h) to journal file gen. */
void zl_journal_record(int kind, int gen, const zg_record *r);

/* The SQL bindings (zg_lease_db.c). */
/* zg_lease as operation op (repeated after a lost answer, it answers its first grant). */
int zl_take_lease(zg_db *db, const char *hash, const char *grp, int limit, int min_plan, int64_t need,
                  int64_t want, int want_slots, const char *op, struct grant *g);
/* Give a lease back (d->key 0: every lease of own) as operation d->op, applied once. */
int zl_drop_one(zg_db *db, const char *own, struct drop *d);
/* Write one finished request outside a batch (idempotent per request id). */
int zl_settle_direct(zg_db *db, const char *own, const zg_record *r);
/* Write rows[0..n) in batches; how many leading rows were written (or refused as bad data). */
size_t zl_write_rows(zg_db *db, zg_record *rows, size_t n);
/* A database error that means "unavailable, retry later" rather than "bad data". */
int zl_db_unavailable(unsigned e);

/* The writer thread (zg_lease_writer.c). */
void *zl_writer_main(void *arg);

#endif
