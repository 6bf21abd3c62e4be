#include "zg_finish.h"
#include "zg_config.h"
#include "zg_db.h"
#include "zg_log.h"
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#define FINISHERS 4

struct job {
    void (*fn)(void *arg, struct zg_db *db);
    void *arg;
    struct job *next;
};

static struct {
    const zg_settings *cfg;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct job *head, *tail;
    bool stopping;
    pthread_t threads[FINISHERS];
    int n;
} F = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

void zg_finish_defer(void (*fn)(void *arg, struct zg_db *db), void *arg)
{
    struct job *j = malloc(sizeof *j);
    if (!j) {
        zg_error("out of memory: a finished stream is settled on the relay loop's thread");
        zg_db *db = zg_db_open(F.cfg);
        fn(arg, db);
        zg_db_free(db);
        return;
    }
    j->fn = fn;
    j->arg = arg;
    j->next = NULL;
    pthread_mutex_lock(&F.mu);
    if (F.tail)
        F.tail->next = j;
    else
        F.head = j;
    F.tail = j;
    pthread_cond_signal(&F.cond);
    pthread_mutex_unlock(&F.mu);
}

static void *finisher(void *arg)
{
    (void)arg;
    zg_db *db = zg_db_open(F.cfg);
    pthread_mutex_lock(&F.mu);
    for (;;) {
        while (!F.head && !F.stopping)
            pthread_cond_wait(&F.cond, &F.mu);
        struct job *j = F.head;
        if (!j)
            break; /* stopping, and nothing left */
        F.head = j->next;
        if (!F.head)
            F.tail = NULL;
        pthread_mutex_unlock(&F.mu);
        j->fn(j->arg, db);
        free(j);
        pthread_mutex_lock(&F.mu);
    }
    pthread_mutex_unlock(&F.mu);
    zg_db_free(db);
    zg_db_thread_end();
    return NULL;
}

int zg_finish_start(const zg_settings *cfg)
{
    F.cfg = cfg;
    F.stopping = false;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (F.n = 0; F.n < FINISHERS; F.n++)
        if (pthread_create(&F.threads[F.n], &attr, finisher, NULL) != 0)
            break;
    pthread_attr_destroy(&attr);
    if (!F.n)
        zg_error("no finishing thread could start");
    return F.n ? 0 : -1;
}

void zg_finish_stop(void)
{
    pthread_mutex_lock(&F.mu);
    F.stopping = true;
    pthread_cond_broadcast(&F.cond);
    pthread_mutex_unlock(&F.mu);
    for (int i = 0; i < F.n; i++)
        pthread_join(F.threads[i], NULL);
    F.n = 0;
}
