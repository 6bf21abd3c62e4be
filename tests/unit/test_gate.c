/* The CPU gate (zg_gate): at most N holders, the line served in arrival order, a waiter that
 * waited too long goes ahead without a slot, pause/resume around waits. */
#include "tap.h"
#include "zg_clock.h"
#include "zg_gate.h"
#include <pthread.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int inside, most, order[8], n_order;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *busy(void *arg)
{
    int id = (int)(long)arg;
    zg_gate_enter();
    pthread_mutex_lock(&mu);
    order[n_order++] = id;
    inside++;
    most = inside > most ? inside : most;
    pthread_mutex_unlock(&mu);
    sleep_ms(20);
    pthread_mutex_lock(&mu);
    inside--;
    pthread_mutex_unlock(&mu);
    zg_gate_leave();
    return NULL;
}

static void *holder(void *arg)
{
    (void)arg;
    zg_gate_enter();
    sleep_ms(600);
    zg_gate_leave();
    return NULL;
}

int main(void)
{
    zg_gate_init(2);
    /* the main thread holds one slot: the threads get the other one by one, in arrival order */
    zg_gate_enter();
    pthread_t t[5];
    for (long i = 0; i < 5; i++) {
        pthread_create(&t[i], NULL, busy, (void *)i);
        sleep_ms(5); /* so that they line up in this order */
    }
    for (int i = 0; i < 5; i++)
        pthread_join(t[i], NULL);
    is_int(most, 1, "one slot left: one thread at a time");
    int in_order = n_order == 5;
    for (int i = 0; i < n_order; i++)
        in_order = in_order && order[i] == i;
    ok(in_order, "served in arrival order");

    /* pause gives the slot up; resume takes it again */
    int held = zg_gate_pause();
    is_int(held, 1, "pause reports the slot it gave up");
    zg_gate_resume(held);
    zg_gate_enter(); /* already held: nothing happens */
    is_int(zg_gate_pause(), 1, "entering twice holds one slot");
    is_int(zg_gate_pause(), 0, "and it is given up once");

    /* both slots held elsewhere: a newcomer waits about 100 ms, then goes ahead without one */
    most = n_order = 0;
    pthread_t a, b;
    zg_gate_enter();
    pthread_create(&a, NULL, busy, (void *)0);
    sleep_ms(5);
    int64_t t0 = zg_clock_ms();
    pthread_create(&b, NULL, busy, (void *)1);
    sleep_ms(30);
    zg_gate_leave(); /* a's turn ends after 20 ms; the slot passes to b */
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    ok(zg_clock_ms() - t0 < 100, "a released slot passes to the next in line");
    /* both slots held for long: a newcomer waits about 100 ms, then goes ahead without one */
    zg_gate_enter();
    pthread_t h, d;
    pthread_create(&h, NULL, holder, NULL);
    sleep_ms(10);
    t0 = zg_clock_ms();
    pthread_create(&d, NULL, busy, (void *)7);
    pthread_join(d, NULL);
    int64_t waited = zg_clock_ms() - t0;
    ok(waited >= 90 && waited < 400, "a waiter goes ahead after about 100 ms (%lld ms)", (long long)waited);
    pthread_join(h, NULL);
    zg_gate_leave();

    /* no gate: everyone goes ahead */
    zg_gate_init(-1);
    zg_gate_enter();
    is_int(zg_gate_pause(), 0, "a disabled gate holds nothing");
    return tap_done();
}
