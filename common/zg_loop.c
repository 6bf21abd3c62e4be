#include "zg_loop.h"
#include "zg_clock.h"
#include "zg_config.h"
#include "zg_fcgi.h"
#include "zg_finish.h"
#include "zg_log.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* A transfer's phases. The loop thread moves a transfer between them, under L.mu where the
 * worker waits for them. */
enum {
    PH_PRE_HEAD = 1, /* running; the worker waits for the head */
    PH_HEAD,         /* paused at the head; the worker delivers it and decides */
    PH_ATTACHED,     /* running; callbacks on the loop thread; the worker waits for the end */
    PH_DETACHED,     /* running; the loop owns the request and its response */
    PH_DONE,         /* over, handed back to the worker (not in the loop any more) */
    PH_ENDED,        /* over and detached: waiting for the settlement (CMD_CLOSE) */
    PH_CLOSING,      /* writing the end of the response, then the connection is closed */
};
enum { CMD_ADD = 1, CMD_ATTACH, CMD_CANCEL, CMD_DETACH, CMD_CLOSE };

#define TAG_WAKE 1ull
#define TAG_CURL (1ull << 62)
#define TICK_MS 250
#define OUT_HIGH (1u << 20)      /* queued output above which the upstream is paused */
#define OUT_CAP (16u << 20)      /* queued output at most: beyond, the client counts as gone */
#define CLOSING_MAX_MS 30000     /* the end of a response waits this long for a slow reader */

static struct {
    const zg_settings *cfg;
    int ep, wake;
    CURLM *multi;
    pthread_t thread;
    pthread_mutex_t mu;          /* commands, phases, open */
    zg_xfer *cmds, *cmds_tail;
    int open;                    /* transfers in the loop, any phase but PH_DONE */
    bool on, stopping;
    zg_xfer *live;               /* loop thread only */
    int64_t curl_due;            /* loop thread only: when curl's timer fires, -1 none */
} L = {.mu = PTHREAD_MUTEX_INITIALIZER, .ep = -1, .wake = -1};

bool zg_loop_on(void)
{
    return __atomic_load_n(&L.on, __ATOMIC_ACQUIRE);
}

/* ---- commands: from workers and finishers to the loop ---------------------------------------- */

static void post(zg_xfer *x, int cmd)
{
    pthread_mutex_lock(&L.mu);
    x->cmd = cmd;
    x->cmd_next = NULL;
    if (L.cmds_tail)
        L.cmds_tail->cmd_next = x;
    else
        L.cmds = x;
    L.cmds_tail = x;
    pthread_mutex_unlock(&L.mu);
    uint64_t one = 1;
    while (write(L.wake, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

/* Loop thread: a new phase, seen by a waiting worker. */
static void set_phase(zg_xfer *x, int ph)
{
    pthread_mutex_lock(&L.mu);
    x->phase = ph;
    if (ph == PH_DONE)
        L.open--;
    pthread_cond_signal(&x->cond);
    pthread_mutex_unlock(&L.mu);
}

/* Worker: wait until x is done, or (head_ok) paused at its head. */
static int wait_for(zg_xfer *x, bool head_ok)
{
    pthread_mutex_lock(&L.mu);
    while (x->phase != PH_DONE && !(head_ok && x->phase == PH_HEAD))
        pthread_cond_wait(&x->cond, &L.mu);
    int now = x->phase;
    pthread_mutex_unlock(&L.mu);
    return now == PH_HEAD ? ZG_LOOP_HEAD : ZG_LOOP_DONE;
}

/* Is x's transfer running in the loop (not paused at its head, not over)? */
static bool running(const zg_xfer *x)
{
    return x->phase == PH_PRE_HEAD || x->phase == PH_ATTACHED || x->phase == PH_DETACHED;
}

/* ---- the web server's connection --------------------------------------------------------------- */

static void unwatch(zg_xfer *x)
{
    if (x->fd_events)
        epoll_ctl(L.ep, EPOLL_CTL_DEL, x->client_fd, NULL);
    x->fd_events = 0;
}

/* Watch the connection for what x needs now: the client leaving while the transfer runs, room
 * for queued output. */
static void watch(zg_xfer *x)
{
    unsigned want = 0;
    if (!x->gone) {
        if (x->watch_in && running(x))
            want |= EPOLLIN | EPOLLRDHUP;
        if (x->out_off < x->outq.len)
            want |= EPOLLOUT;
    }
    if (want == x->fd_events)
        return;
    if (!want) {
        unwatch(x);
        return;
    }
    struct epoll_event ev = {.events = want, .data.ptr = x};
    epoll_ctl(L.ep, x->fd_events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, x->client_fd, &ev);
    x->fd_events = want;
}

/* Write what is queued without blocking. 0, or -1 when the connection failed. */
static int write_out(zg_xfer *x)
{
    if (zg_fcgi_send(x->client_fd, &x->outq, &x->out_off) == 0)
        return 0;
    x->gone = true;
    return -1;
}

static int sink_put(void *ctx, const void *p, size_t n)
{
    zg_xfer *x = ctx;
    if (x->gone)
        return -1;
    if (zg_fcgi_stdout(&x->outq, x->fcgi_id, p, n) != ZG_OK) {
        x->gone = true; /* a reader this far behind is treated as gone */
        return -1;
    }
    return 0;
}

static int sink_flush(void *ctx)
{
    zg_xfer *x = ctx;
    if (x->gone || write_out(x) != 0)
        return -1;
    watch(x);
    return 0;
}

static void sink_abort(void *ctx)
{
    zg_xfer *x = ctx;
    x->abort_out = true; /* what is queued still goes out; the end of the request never does */
    if (!x->gone && write_out(x) == 0)
        watch(x);
}

static void sink_end(void *ctx)
{
    post(ctx, CMD_CLOSE); /* from the finishing thread */
}

static const zg_resp_sink sink = {sink_put, sink_flush, sink_abort, sink_end};

/* ---- transfers ---------------------------------------------------------------------------------------- */

static void live_add(zg_xfer *x)
{
    x->prev = NULL;
    x->next = L.live;
    if (L.live)
        L.live->prev = x;
    L.live = x;
}

static void live_remove(zg_xfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        L.live = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
}

static void free_closed(zg_xfer *x)
{
    unwatch(x);
    if (x->abort_out)
        shutdown(x->client_fd, SHUT_RDWR); /* a cut body must not look complete */
    close(x->client_fd);
    live_remove(x);
    zg_loop_release(x);
    pthread_mutex_lock(&L.mu);
    L.open--;
    pthread_mutex_unlock(&L.mu);
}

/* The transfer is over (curl reported its end, or the loop ended it): hand it to whoever goes on. */
static void transfer_over(zg_xfer *x)
{
    curl_multi_remove_handle(L.multi, x->easy);
    switch (x->phase) {
    case PH_HEAD:
        return; /* the worker decides first; its command sees x->ended */
    case PH_PRE_HEAD:
    case PH_ATTACHED:
        unwatch(x);
        live_remove(x);
        set_phase(x, PH_DONE);
        return;
    case PH_DETACHED:
        zg_xfer_finish(x, x->ended, x->cc);
        curl_easy_cleanup(x->easy);
        x->easy = NULL;
        x->paused = false;
        set_phase(x, PH_ENDED);
        x->watch_in = false;
        x->cb.on_end(x->ctx, x->out); /* the rest of the answer, then the settlement is deferred */
        watch(x);
        return;
    default:
        return;
    }
}

/* Receive again (the client caught up, or left). */
static void resume(zg_xfer *x)
{
    if (x->paused && x->easy && x->phase == PH_DETACHED) {
        x->paused = false;
        curl_easy_pause(x->easy, CURLPAUSE_CONT);
    }
}

static void client_gone(zg_xfer *x)
{
    x->gone = true;
    if (x->phase == PH_CLOSING) {
        free_closed(x);
        return;
    }
    if (running(x)) {
        x->r->client_gone = true;
        if (!x->cb.on_gone || x->cb.on_gone(x->ctx) != 0) {
            x->aborted = true;
            transfer_over(x);
            return;
        }
        resume(x); /* read on to the final usage: nobody is waiting for the queue to drain now */
    }
    watch(x);
}

/* curl's write callback in the loop: stop at the head for the worker; hold back while the client
 * reads slower than the upstream sends. */
static size_t loop_write(char *p, size_t size, size_t n, void *ud)
{
    zg_xfer *x = ud;
    x->last_rx = zg_clock_ms();
    if (x->phase == PH_PRE_HEAD) {
        long code = 0;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
        x->status = (int)code;
        set_phase(x, PH_HEAD);
        watch(x);
        return CURL_WRITEFUNC_PAUSE;
    }
    if (x->phase == PH_DETACHED && !x->gone && x->outq.len - x->out_off > OUT_HIGH) {
        x->paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    return zg_xfer_write(p, size, n, ud);
}

static void on_client_event(zg_xfer *x, uint32_t ev)
{
    if (ev & EPOLLOUT) {
        if (write_out(x) != 0) {
            client_gone(x);
            return;
        }
        if (x->phase == PH_CLOSING && x->out_off == x->outq.len) {
            free_closed(x);
            return;
        }
        if (x->paused && x->outq.len - x->out_off < OUT_HIGH / 4)
            resume(x);
    }
    if ((ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !x->gone) {
        if ((ev & (EPOLLHUP | EPOLLERR)) || zg_fcgi_client_left(x->client_fd)) {
            client_gone(x);
            return;
        }
        x->watch_in = false; /* something unexpected from the web server: stop watching */
    }
    watch(x);
}

static void run_command(zg_xfer *x, int cmd)
{
    switch (cmd) {
    case CMD_ADD:
        x->watch_in = true;
        live_add(x);
        curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, loop_write);
        if (curl_multi_add_handle(L.multi, x->easy) != CURLM_OK) {
            live_remove(x);
            set_phase(x, PH_DONE);
            return;
        }
        watch(x);
        return;
    case CMD_CANCEL:
        x->aborted = true;
        set_phase(x, PH_ATTACHED);
        transfer_over(x);
        return;
    case CMD_ATTACH:
    case CMD_DETACH:
        set_phase(x, cmd == CMD_ATTACH ? PH_ATTACHED : PH_DETACHED);
        x->watch_in = true;
        x->last_ping = zg_clock_ms();
        if (x->ended) {
            transfer_over(x);
            return;
        }
        watch(x);
        curl_easy_pause(x->easy, CURLPAUSE_CONT);
        return;
    case CMD_CLOSE:
        set_phase(x, PH_CLOSING);
        x->closing_since = zg_clock_ms();
        if (!x->gone && !x->abort_out && zg_fcgi_end(&x->outq, x->fcgi_id) != ZG_OK)
            x->gone = true;
        if (x->gone || write_out(x) != 0 || x->out_off == x->outq.len) {
            free_closed(x);
            return;
        }
        watch(x);
        return;
    }
}

static void run_commands(void)
{
    pthread_mutex_lock(&L.mu);
    zg_xfer *list = L.cmds;
    L.cmds = L.cmds_tail = NULL;
    pthread_mutex_unlock(&L.mu);
    while (list) {
        zg_xfer *x = list;
        list = x->cmd_next;
        pthread_mutex_lock(&L.mu);
        int cmd = x->cmd;
        x->cmd = 0;
        pthread_mutex_unlock(&L.mu);
        run_command(x, cmd);
    }
}

/* Every TICK_MS: timeouts, pings and slow readers. */
static void tick(int64_t now)
{
    int64_t ping = (int64_t)(L.cfg ? L.cfg->ping_interval : 5) * 1000;
    zg_xfer *next;
    for (zg_xfer *x = L.live; x; x = next) {
        next = x->next;
        if (x->phase == PH_CLOSING) {
            if (now - x->closing_since >= CLOSING_MAX_MS)
                free_closed(x);
            continue;
        }
        if (!running(x))
            continue;
        if (x->cb.head_timeout_ms > 0 && x->ttfb < 0 && now - x->t0 >= x->cb.head_timeout_ms) {
            x->timed_out_head = true;
            transfer_over(x);
        } else if (!x->paused && now - x->last_rx >= (int64_t)x->idle_s * 1000) {
            x->timed_out_idle = true;
            transfer_over(x);
        } else if (x->phase == PH_DETACHED && x->cb.on_idle && !x->gone && now - x->last_rx >= ping &&
                   now - x->last_ping >= ping) {
            x->last_ping = now;
            if (x->cb.on_idle(x->ctx) != 0) {
                x->aborted = true;
                transfer_over(x);
            }
        }
    }
}

static void reap(void)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(L.multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        zg_xfer *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (!x)
            continue;
        x->ended = true;
        x->cc = m->data.result;
        transfer_over(x);
    }
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)e, (void)userp, (void)socketp;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(L.ep, EPOLL_CTL_DEL, s, NULL);
        return 0;
    }
    struct epoll_event ev = {.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) | (what & CURL_POLL_OUT ? EPOLLOUT : 0u),
                             .data.u64 = TAG_CURL | (uint64_t)s};
    if (epoll_ctl(L.ep, EPOLL_CTL_MOD, s, &ev) != 0 && errno == ENOENT)
        epoll_ctl(L.ep, EPOLL_CTL_ADD, s, &ev);
    return 0;
}

static int on_timer(CURLM *m, long ms, void *userp)
{
    (void)m, (void)userp;
    L.curl_due = ms < 0 ? -1 : zg_clock_ms() + ms;
    return 0;
}

static void *loop_main(void *arg)
{
    (void)arg;
    struct epoll_event evs[256];
    int64_t last_tick = zg_clock_ms();
    int running;
    for (;;) {
        int64_t now = zg_clock_ms();
        int64_t wait = TICK_MS - (now - last_tick);
        if (L.curl_due >= 0 && L.curl_due - now < wait)
            wait = L.curl_due - now;
        int n = epoll_wait(L.ep, evs, 256, wait < 0 ? 0 : (int)wait);
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == TAG_WAKE) {
                uint64_t v;
                while (read(L.wake, &v, sizeof v) < 0 && errno == EINTR) {
                }
            } else if (tag & TAG_CURL) {
                uint32_t e = evs[i].events;
                int mask = (e & EPOLLIN ? CURL_CSELECT_IN : 0) | (e & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                           (e & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
                curl_multi_socket_action(L.multi, (curl_socket_t)(tag & ~TAG_CURL), mask, &running);
            } else {
                on_client_event(evs[i].data.ptr, evs[i].events);
            }
        }
        reap();
        run_commands();
        now = zg_clock_ms();
        if (L.curl_due >= 0 && now >= L.curl_due) {
            L.curl_due = -1;
            curl_multi_socket_action(L.multi, CURL_SOCKET_TIMEOUT, 0, &running);
        }
        reap();
        if (now - last_tick >= TICK_MS) {
            last_tick = now;
            tick(now);
            reap();
        }
        pthread_mutex_lock(&L.mu);
        bool quit = L.stopping && L.open == 0 && !L.cmds;
        pthread_mutex_unlock(&L.mu);
        if (quit)
            return NULL;
    }
}

/* ---- start and stop ----------------------------------------------------------------------------------- */

int zg_loop_start(const zg_settings *cfg)
{
    L.cfg = cfg;
    L.curl_due = -1;
    L.ep = epoll_create1(EPOLL_CLOEXEC);
    L.wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    L.multi = curl_multi_init();
    if (L.ep < 0 || L.wake < 0 || !L.multi)
        goto fail;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_WAKE};
    if (epoll_ctl(L.ep, EPOLL_CTL_ADD, L.wake, &ev) != 0)
        goto fail;
    curl_multi_setopt(L.multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(L.multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(L.multi, CURLMOPT_MAXCONNECTS, 256L); /* idle upstream connections kept */
    if (zg_finish_start(cfg) != 0)
        goto fail;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    int rc = pthread_create(&L.thread, &attr, loop_main, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        zg_finish_stop();
        goto fail;
    }
    __atomic_store_n(&L.on, true, __ATOMIC_RELEASE);
    return 0;
fail:
    zg_error("relay loop: cannot start (%s); streams stay on their threads", strerror(errno));
    if (L.multi)
        curl_multi_cleanup(L.multi);
    if (L.wake >= 0)
        close(L.wake);
    if (L.ep >= 0)
        close(L.ep);
    L.multi = NULL;
    L.ep = L.wake = -1;
    return -1;
}

void zg_loop_stop(void)
{
    if (!L.multi)
        return;
    __atomic_store_n(&L.on, false, __ATOMIC_RELEASE);
    pthread_mutex_lock(&L.mu);
    L.stopping = true;
    pthread_mutex_unlock(&L.mu);
    uint64_t one = 1;
    if (write(L.wake, &one, sizeof one) < 0)
        zg_warn("relay loop: cannot wake it (%s)", strerror(errno));
    pthread_join(L.thread, NULL); /* it returns once every transfer was settled and closed */
    zg_finish_stop();
    curl_multi_cleanup(L.multi);
    close(L.wake);
    close(L.ep);
    L.multi = NULL;
}

/* ---- the worker's side -------------------------------------------------------------------------------- */

int zg_loop_begin(zg_xfer *x)
{
    if (!zg_loop_on())
        return -1;
    pthread_cond_init(&x->cond, NULL);
    zg_buf_init(&x->outq, OUT_CAP);
    x->client_fd = x->r->fcgx ? x->r->fcgx->ipcFd : -1;
    x->phase = PH_PRE_HEAD;
    pthread_mutex_lock(&L.mu);
    L.open++;
    pthread_mutex_unlock(&L.mu);
    post(x, CMD_ADD);
    return wait_for(x, true);
}

int zg_loop_attach(zg_xfer *x)
{
    post(x, CMD_ATTACH);
    return wait_for(x, false);
}

int zg_loop_cancel(zg_xfer *x)
{
    post(x, CMD_CANCEL);
    return wait_for(x, false);
}

void zg_loop_detach(zg_xfer *x)
{
    zg_req *r = x->r;
    x->fcgi_id = r->fcgx->requestId;
    fcntl(x->client_fd, F_SETFL, fcntl(x->client_fd, F_GETFL) | O_NONBLOCK);
    zg_req_detach(r, &sink, x);
    post(x, CMD_DETACH);
}

void zg_loop_release(zg_xfer *x)
{
    if (x->easy)
        curl_easy_cleanup(x->easy);
    zg_buf_free(&x->outq);
    pthread_cond_destroy(&x->cond);
    free(x);
}
