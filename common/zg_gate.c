/* zg_gate: a FIFO counting gate for the CPU-bound parts of requests (see zg_gate.h). */
#include "zg_gate.h"
#include "zg_clock.h"
#include <pthread.h>
#include <time.h>
#include <unistd.h>

struct waiter {
    pthread_cond_t cv;
    int ready;
    struct waiter *prev, *next;
};

/* A thread waits in line at most this long, then goes ahead without a slot: a thread that holds a
 * slot while it waits for a lock or a peer can so never hold up the others for longer. */
#define GATE_WAIT_MS 100

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int enabled;
static int free_slots;                /* mu */
static struct waiter *head, *tail;    /* the line, oldest first (mu) */
static _Thread_local int held;

void zg_gate_init(int slots)
{
    if (slots == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        slots = n > 0 && n < 2048 ? 2 * (int)n : 2;
    }
    enabled = slots > 0;
    free_slots = slots;
}

void zg_gate_enter(void)
{
    if (!enabled || held)
        return;
    pthread_mutex_lock(&mu);
    if (free_slots > 0 && !head) {
        free_slots--;
        pthread_mutex_unlock(&mu);
        held = 1;
        return;
    }
    struct waiter w = {.ready = 0, .prev = tail, .next = NULL};
    pthread_cond_init(&w.cv, NULL);
    if (tail)
        tail->next = &w;
    else
        head = &w;
    tail = &w;
    struct timespec until = zg_clock_deadline(GATE_WAIT_MS);
    while (!w.ready)
        if (pthread_cond_timedwait(&w.cv, &mu, &until) != 0 && !w.ready) {
            /* waited long enough: leave the line and go ahead without a slot */
            if (w.prev)
                w.prev->next = w.next;
            else
                head = w.next;
            if (w.next)
                w.next->prev = w.prev;
            else
                tail = w.prev;
            break;
        }
    held = w.ready;
    pthread_mutex_unlock(&mu);
    pthread_cond_destroy(&w.cv);
}

void zg_gate_leave(void)
{
    if (!enabled || !held)
        return;
    held = 0;
    pthread_mutex_lock(&mu);
    struct waiter *w = head;
    if (w) {
        /* the slot passes straight to the oldest waiter */
        head = w->next;
        if (head)
            head->prev = NULL;
        else
            tail = NULL;
        w->ready = 1;
        pthread_cond_signal(&w->cv);
    } else {
        free_slots++;
    }
    pthread_mutex_unlock(&mu);
}

int zg_gate_pause(void)
{
    int h = held;
    zg_gate_leave();
    return h;
}

void zg_gate_resume(int h)
{
    if (h)
        zg_gate_enter();
}
