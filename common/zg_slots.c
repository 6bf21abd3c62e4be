/* zg_slots: host-wide channel caps from byte-range locks on one file (see zg_slots.h). */
#include "zg_slots.h"
#include "zg_log.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REGION 16384     /* bytes per channel id: slots from 0, waiting plans from WAIT_AT */
#define WAIT_AT 16000
#define PLANS 4
#define ID_BIAS 64       /* default channels have ids -1..-(providers) */
#define LOCAL_MAX 1024

/* What this process holds (mu): POSIX locks do not conflict within a process, so the process
 * keeps its own slots and waiters apart itself. */
struct local {
    int id;
    uint8_t *held;       /* bitmap of slots this process holds */
    int waiting[PLANS];  /* this process's requests waiting for the channel, by plan */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int fd = -1;
static bool tried_open;
static struct local loc[LOCAL_MAX];
static int nloc;
static unsigned rot; /* where the next search for a free slot starts (mu) */

void zg_slots_init(const char *path)
{
    pthread_mutex_lock(&mu);
    if (!tried_open && path && *path) {
        tried_open = true;
        /* never closed: closing any descriptor of the file would drop every lock the process holds */
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            zg_warn("channel slots: cannot open %s (%s); caps count per process", path, strerror(errno));
    }
    pthread_mutex_unlock(&mu);
}

static off_t base_of(int id)
{
    return ((off_t)id + ID_BIAS) * REGION;
}

static struct local *local_of(int id, bool make)
{
    for (int i = 0; i < nloc; i++)
        if (loc[i].id == id)
            return &loc[i];
    if (!make || nloc == LOCAL_MAX)
        return NULL;
    memset(&loc[nloc], 0, sizeof loc[nloc]);
    loc[nloc].id = id;
    return &loc[nloc++];
}

static int lock_op(int cmd, short type, off_t at, off_t len)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = at, .l_len = len};
    int rc;
    do
        rc = fcntl(fd, cmd, &fl);
    while (rc < 0 && errno == EINTR);
    if (cmd == F_GETLK)
        return rc < 0 ? -1 : fl.l_type != F_UNLCK;
    return rc;
}

/* Whether a request of a plan above `plan` waits for channel id, here or in another process (mu). */
static bool higher_waits(int id, int plan, const struct local *l)
{
    if (plan < 0 || plan >= PLANS - 1)
        return false;
    for (int p = plan + 1; l && p < PLANS; p++)
        if (l->waiting[p] > 0)
            return true;
    if (fd < 0)
        return false;
    return lock_op(F_GETLK, F_WRLCK, base_of(id) + WAIT_AT + plan + 1, PLANS - 1 - plan) == 1;
}

int zg_slots_take(int id, int cap, int plan)
{
    if (cap <= 0 || cap > ZG_SLOTS_MAX_CAP || id + ID_BIAS <= 0)
        return -2;
    pthread_mutex_lock(&mu);
    struct local *l = local_of(id, true);
    if (higher_waits(id, plan, l)) {
        pthread_mutex_unlock(&mu);
        return -1;
    }
    if (fd < 0 || !l) {
        pthread_mutex_unlock(&mu);
        return -2;
    }
    if (!l->held && !(l->held = calloc(ZG_SLOTS_MAX_CAP / 8 + 1, 1))) {
        pthread_mutex_unlock(&mu);
        return -2;
    }
    /* start anywhere: the slots near 0 are the ones most often held */
    int start = (int)(rot++ % (unsigned)cap), got = -1;
    for (int i = 0; i < cap && got < 0; i++) {
        int k = (start + i) % cap;
        if (l->held[k / 8] & (1u << (k % 8)))
            continue;
        if (lock_op(F_SETLK, F_WRLCK, base_of(id) + k, 1) == 0)
            got = k;
        else if (errno != EAGAIN && errno != EACCES) {
            zg_warn("channel slots: lock failed (%s)", strerror(errno));
            break;
        }
    }
    if (got >= 0)
        l->held[got / 8] |= (uint8_t)(1u << (got % 8));
    pthread_mutex_unlock(&mu);
    return got;
}

void zg_slots_give(int id, int slot)
{
    if (slot < 0 || slot >= ZG_SLOTS_MAX_CAP)
        return;
    pthread_mutex_lock(&mu);
    struct local *l = local_of(id, false);
    if (l && l->held && (l->held[slot / 8] & (1u << (slot % 8)))) {
        lock_op(F_SETLK, F_UNLCK, base_of(id) + slot, 1);
        l->held[slot / 8] &= (uint8_t)~(1u << (slot % 8));
    }
    pthread_mutex_unlock(&mu);
}

void zg_slots_waiting(int id, int plan, int delta)
{
    if (plan < 0 || plan >= PLANS || id + ID_BIAS <= 0)
        return;
    pthread_mutex_lock(&mu);
    struct local *l = local_of(id, delta > 0);
    if (l) {
        int before = l->waiting[plan];
        l->waiting[plan] = before + delta > 0 ? before + delta : 0;
        /* one shared lock per process and plan: POSIX merges a process's locks on a byte */
        if (fd >= 0 && !before && l->waiting[plan])
            lock_op(F_SETLK, F_RDLCK, base_of(id) + WAIT_AT + plan, 1);
        else if (fd >= 0 && before && !l->waiting[plan])
            lock_op(F_SETLK, F_UNLCK, base_of(id) + WAIT_AT + plan, 1);
    }
    pthread_mutex_unlock(&mu);
}

int zg_slots_count(int id, int cap)
{
    if (cap <= 0 || cap > ZG_SLOTS_MAX_CAP || id + ID_BIAS <= 0)
        return -1;
    pthread_mutex_lock(&mu);
    int n = -1;
    if (fd >= 0) {
        struct local *l = local_of(id, false);
        n = 0;
        for (int k = 0; k < cap; k++)
            if ((l && l->held && (l->held[k / 8] & (1u << (k % 8)))) ||
                lock_op(F_GETLK, F_WRLCK, base_of(id) + k, 1) == 1)
                n++;
    }
    pthread_mutex_unlock(&mu);
    return n;
}
