#include "zg_dbhost.h"
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

static int64_t down_until[ZG_DBHOST_MAX];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

int zg_dbhost_order(int n, int64_t now, int *order)
{
    if (n > ZG_DBHOST_MAX)
        n = ZG_DBHOST_MAX;
    int k = 0;
    pthread_mutex_lock(&mu);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++)
            if ((down_until[i] > now) == (pass == 1))
                order[k++] = i;
    pthread_mutex_unlock(&mu);
    return k;
}

void zg_dbhost_mark(int i, bool ok, int64_t now)
{
    if (i < 0 || i >= ZG_DBHOST_MAX)
        return;
    pthread_mutex_lock(&mu);
    down_until[i] = ok ? 0 : now + ZG_DBHOST_DOWN_MS;
    pthread_mutex_unlock(&mu);
}

bool zg_dbhost_away(int i, int64_t made_at, int64_t now)
{
    if (i <= 0 || i >= ZG_DBHOST_MAX || now - made_at < ZG_DBHOST_AWAY_MS)
        return false;
    /* away only while a server listed before it is not known to be down */
    bool earlier_usable = false;
    pthread_mutex_lock(&mu);
    for (int j = 0; j < i; j++)
        if (down_until[j] <= now)
            earlier_usable = true;
    pthread_mutex_unlock(&mu);
    return earlier_usable;
}

void zg_dbhost_reset(void)
{
    pthread_mutex_lock(&mu);
    for (int i = 0; i < ZG_DBHOST_MAX; i++)
        down_until[i] = 0;
    pthread_mutex_unlock(&mu);
}

int zg_dbhost_conflict_pause_ms(int attempt)
{
    if (attempt < 1)
        attempt = 1;
    int cap = attempt >= 5 ? 64 : 2 << attempt; /* 4, 8, 16, 32, 64 ms */
    /* xorshift per thread: the pauses only need to differ between the threads that collided */
    static _Thread_local uint64_t x;
    if (!x)
        x = ((uint64_t)(uintptr_t)&x * 0x9E3779B97F4A7C15ull) ^ (uint64_t)time(NULL) ^ 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return 1 + (int)(x % (uint64_t)cap);
}
