#include "zg_server.h"
#include "zg_keys.h"
#include "zg_gate.h"
#include "zg_channel.h"
#include "zg_clock.h"
#include "zg_catalog.h"
#include "zg_conc.h"
#include "zg_config.h"
#include "zg_db.h"
#include "zg_err.h"
#include "zg_meter.h"
#include "zg_log.h"
#include "zg_loop.h"
#include "zg_num.h"
#include "zg_upstream.h"
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int stopping; /* set by the main thread, read by the workers: atomic accesses */
static zg_settings settings;
static zg_handler route_handler;
static zg_proto route_proto;
static int listen_fd;
static zg_db_pool *pool;

/* Worker threads come and go with the load: at least one thread waits in accept() (more while
 * requests arrive), a thread is started whenever fewer than `low` wait, and a thread that finishes
 * a request while more than `high` wait ends. So a process runs about as many threads as it has
 * requests in flight, up to [server] threads, and a thread costs only while it serves. */
struct worker_slot {
    pthread_t tid;
    int in_accept; /* atomic accesses: written by the worker, read by the main thread */
    int used;      /* slots_mu */
};
static struct worker_slot *slots;
static int *free_slots, nfree_slots; /* slots_mu */
static pthread_mutex_t slots_mu = PTHREAD_MUTEX_INITIALIZER;
static int running; /* threads started and not yet ended: atomic */
static int waiting; /* threads in (or about to enter) accept(): atomic */
static int low_water, spare;
static int retire;   /* threads asked to end, set by the main thread each second: atomic */
static int low_seen; /* the fewest threads waiting since the main thread last looked: atomic */
#define TRIM_WINDOW 5  /* seconds a surplus of waiting threads must last before threads end */
#define ACCEPT_WAKE_S 2 /* an idle thread's accept() returns this often, to end if it is surplus */
static pthread_attr_t worker_attr;

static void on_wake(int sig)
{
    (void)sig;
}

int zg_server_stopping(void)
{
    return __atomic_load_n(&stopping, __ATOMIC_ACQUIRE);
}

static void *worker(void *arg);

/* Start up to n more worker threads (fewer at the [server] threads limit). */
static void spawn(int n)
{
    while (n-- > 0 && !zg_server_stopping()) {
        pthread_mutex_lock(&slots_mu);
        if (nfree_slots == 0) {
            pthread_mutex_unlock(&slots_mu);
            return;
        }
        struct worker_slot *slot = &slots[free_slots[--nfree_slots]];
        slot->used = 1;
        __atomic_add_fetch(&running, 1, __ATOMIC_ACQ_REL);
        __atomic_add_fetch(&waiting, 1, __ATOMIC_ACQ_REL);
        if (pthread_create(&slot->tid, &worker_attr, worker, slot) != 0) {
            __atomic_sub_fetch(&running, 1, __ATOMIC_ACQ_REL);
            __atomic_sub_fetch(&waiting, 1, __ATOMIC_ACQ_REL);
            slot->used = 0;
            free_slots[nfree_slots++] = (int)(slot - slots);
            pthread_mutex_unlock(&slots_mu);
            zg_warn("cannot start a worker thread (%d running)", __atomic_load_n(&running, __ATOMIC_ACQUIRE));
            return;
        }
        pthread_mutex_unlock(&slots_mu);
    }
}

/* Note that only `idle` threads were left waiting. */
static void note_low(int idle)
{
    int cur = __atomic_load_n(&low_seen, __ATOMIC_RELAXED);
    while (idle < cur && !__atomic_compare_exchange_n(&low_seen, &cur, idle, true, __ATOMIC_RELAXED,
                                                      __ATOMIC_RELAXED)) {
    }
}

/* Whether this thread should end (one of the surplus the main thread counted). */
static int take_retire(void)
{
    int n = __atomic_load_n(&retire, __ATOMIC_ACQUIRE);
    while (n > 0)
        if (__atomic_compare_exchange_n(&retire, &n, n - 1, true, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return 1;
    return 0;
}

/* Once a second: threads beyond `spare` that waited idle for the whole of the last TRIM_WINDOW
 * seconds end, after their next request or when their accept() times out (ACCEPT_WAKE_S). Ending
 * threads on a moment's surplus instead made a busy process start and end thousands a second. */
static void trim_threads(void)
{
    static int window[TRIM_WINDOW], filled, at;
    int w = __atomic_load_n(&waiting, __ATOMIC_ACQUIRE);
    int low = __atomic_exchange_n(&low_seen, w, __ATOMIC_RELAXED);
    window[at] = low < w ? low : w;
    at = (at + 1) % TRIM_WINDOW;
    if (filled < TRIM_WINDOW) {
        filled++;
        return;
    }
    int m = window[0];
    for (int i = 1; i < TRIM_WINDOW; i++)
        m = window[i] < m ? window[i] : m;
    int surplus = m > spare ? m - spare : 0;
    __atomic_store_n(&retire, surplus, __ATOMIC_RELEASE);
}

static void slot_release(struct worker_slot *slot)
{
    pthread_mutex_lock(&slots_mu);
    slot->used = 0;
    free_slots[nfree_slots++] = (int)(slot - slots);
    pthread_mutex_unlock(&slots_mu);
}

/* A worker's request and its FastCGI state, on the heap: a request the relay loop takes over
 * keeps them (zg_req_release frees them), and the worker makes new ones. */
static zg_req *request_new(FCGX_Request **fcgx)
{
    zg_req *r = calloc(1, sizeof *r);
    *fcgx = malloc(sizeof **fcgx);
    if (!r || !*fcgx || FCGX_InitRequest(*fcgx, listen_fd, 0) != 0) {
        free(r);
        free(*fcgx);
        *fcgx = NULL;
        return NULL;
    }
    zg_buf_init(&r->body, (size_t)settings.max_body_bytes);
    zg_buf_init(&r->headers, 16384);
    return r;
}

static void *worker(void *arg)
{
    struct worker_slot *slot = arg;
    pthread_detach(pthread_self());
    FCGX_Request *fcgx = NULL;
    zg_db *db = zg_db_borrower(pool);
    zg_req *r = db ? request_new(&fcgx) : NULL;
    if (!r) {
        zg_error("worker: out of memory; this worker does not start");
        zg_db_free(db);
        __atomic_sub_fetch(&waiting, 1, __ATOMIC_ACQ_REL);
        slot_release(slot);
        __atomic_sub_fetch(&running, 1, __ATOMIC_ACQ_REL);
        return NULL;
    }
    /* `waiting` counts this thread whenever it is not serving a request */
    int counted = 1;
    while (!zg_server_stopping()) {
        __atomic_store_n(&slot->in_accept, 1, __ATOMIC_RELEASE);
        if (zg_server_stopping()) {
            __atomic_store_n(&slot->in_accept, 0, __ATOMIC_RELEASE);
            break;
        }
        int rc = FCGX_Accept_r(fcgx);
        __atomic_store_n(&slot->in_accept, 0, __ATOMIC_RELEASE);
        if (rc < 0) {
            if (zg_server_stopping())
                break;
            if (rc == -EAGAIN || rc == -EWOULDBLOCK) {
                if (take_retire())
                    break; /* idle beyond what the load needs */
                continue;
            }
            if (rc == -EINTR || errno == EINTR)
                continue;
            if (rc == -EMFILE || rc == -ENFILE || rc == -ENOBUFS || rc == -ENOMEM) {
                /* out of descriptors or memory for a moment: the connection waits in the backlog
                 * until requests in flight end */
                static int64_t last_warn;
                int64_t now = zg_clock_ms();
                if (now - __atomic_load_n(&last_warn, __ATOMIC_RELAXED) >= 1000) {
                    __atomic_store_n(&last_warn, now, __ATOMIC_RELAXED);
                    zg_warn("accept: %s; new requests wait until some in flight end", strerror(-rc));
                }
                struct timespec ts = {0, 50 * 1000000L};
                nanosleep(&ts, NULL);
                continue;
            }
            zg_error("accept failed (%d); worker exits", rc);
            break;
        }
        int idle = __atomic_sub_fetch(&waiting, 1, __ATOMIC_ACQ_REL);
        note_low(idle);
        if (idle < low_water)
            spawn(low_water - idle);
        zg_gate_enter();
        zg_req_begin(r, fcgx, &settings, db, route_proto);
        route_handler(r);
        if (zg_req_take_detached()) {
            /* the relay loop has the request now (and frees it): this thread takes new ones */
            r = request_new(&fcgx);
        } else {
            if (!r->started)
                zg_err_reply(r, ZG_ERR_INTERNAL, "the request was not answered");
            FCGX_Finish_r(fcgx);
            zg_req_end(r);
        }
        zg_gate_leave();
        if (!r) {
            zg_error("worker: out of memory; this worker ends");
            counted = 0;
            break;
        }
        if (take_retire()) {
            counted = 0; /* more threads waited than needed for a while: this one ends */
            break;
        }
        __atomic_add_fetch(&waiting, 1, __ATOMIC_ACQ_REL);
    }
    if (counted)
        __atomic_sub_fetch(&waiting, 1, __ATOMIC_ACQ_REL);
    if (r) {
        /* this thread's own (never detached): only freed; between requests r no longer points at
         * the FastCGI state it was served with, so that is freed here */
        if (r->fcgx != fcgx) {
            FCGX_Free(fcgx, 0);
            free(fcgx);
        }
        zg_req_release(r);
    }
    zg_db_free(db);
    zg_db_thread_end();
    slot_release(slot);
    __atomic_sub_fetch(&running, 1, __ATOMIC_ACQ_REL);
    return NULL;
}

/* Each stream holds two descriptors (the web server's connection and the upstream's): allow as
 * many as the hard limit does. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)settings.threads * 2 + 64)
        zg_info("open files limited to %llu: fewer than the %d streams [server] threads allows",
                (unsigned long long)rl.rlim_cur, settings.threads);
}

static void usage(const char *name, FILE *f)
{
    fprintf(f,
            "usage: %s [--config PATH] [--listen SOCKET|:PORT] [--threads MAX]\n"
            "A zenn-gateway FastCGI program. Started by the web server (listening socket on fd 0),\n"
            "or with --listen to open its own socket (for mod_proxy_fcgi).\n"
            "Config: --config, else $ZENN_CONFIG, else %s.\n",
            name, zg_config_default_path());
}

static const zg_server_hooks *hooks;

void zg_server_set_hooks(const zg_server_hooks *h)
{
    hooks = h;
}

int zg_server_main(const char *name, zg_proto proto, zg_handler handler, int argc, char **argv)
{
    const char *cfg_path = NULL, *listen_at = NULL;
    int64_t threads = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(name, stdout);
            return 0;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            cfg_path = argv[++i];
        } else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            listen_at = argv[++i];
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            if (zg_parse_i64z(argv[++i], 1, 65536, &threads) != 0) {
                fprintf(stderr, "%s: --threads takes 1..65536\n", name);
                return 2;
            }
        } else {
            usage(name, stderr);
            return 2;
        }
    }
    zg_log_init(name, ZG_LOG_INFO);
    char err[512];
    if (zg_settings_load(&settings, cfg_path, err, sizeof err) != 0) {
        zg_error("config: %s", err);
        return 1;
    }
    zg_log_init(name, settings.log_level);
    if (threads)
        settings.threads = (int)threads;
    route_handler = handler;
    route_proto = proto;

    zg_db_global_init();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (FCGX_Init() != 0) {
        zg_error("FCGX_Init failed");
        return 1;
    }
    listen_fd = 0;
    if (listen_at) {
        umask(0007);
        listen_fd = FCGX_OpenSocket(listen_at, 1024);
        if (listen_fd < 0) {
            zg_error("cannot listen on %s", listen_at);
            return 1;
        }
    } else {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getsockname(0, (struct sockaddr *)&ss, &sl) != 0) {
            fprintf(stderr, "%s: stdin is not a FastCGI listening socket; use --listen\n", name);
            usage(name, stderr);
            return 2;
        }
    }
    /* accept() returns EAGAIN now and then, so that idle threads can end (trim_threads); the
     * option belongs to the socket, which only this program's processes accept on */
    struct timeval wake = {ACCEPT_WAKE_S, 0};
    if (setsockopt(listen_fd, SOL_SOCKET, SO_RCVTIMEO, &wake, sizeof wake) != 0)
        zg_warn("cannot set an accept timeout (%s): idle threads stay", strerror(errno));
    /* All signals of interest go to the main thread's sigwait; workers never see them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_wake; /* no SA_RESTART: a blocked accept() returns EINTR */
    sigaction(SIGUSR2, &sa, NULL);
    raise_fd_limit();
    pool = zg_db_pool_new(&settings, settings.db_connections);
    slots = calloc((size_t)settings.threads, sizeof *slots);
    free_slots = calloc((size_t)settings.threads, sizeof *free_slots);
    if (!pool || !slots || !free_slots) {
        zg_error("out of memory");
        return 1;
    }
    zg_db_pool_set_process(pool);
    for (int i = 0; i < settings.threads; i++)
        free_slots[nfree_slots++] = settings.threads - 1 - i;
    /* small stacks: a thread waiting on a stream touches a few pages of it */
    pthread_attr_init(&worker_attr);
    pthread_attr_setstacksize(&worker_attr, 256 * 1024);
    int idle = settings.idle_threads < settings.threads ? settings.idle_threads : settings.threads;
    low_water = idle > 1 ? idle / 2 : 1;
    spare = idle;
    zg_gate_init(settings.cpu_slots); /* before any thread (the lease writer runs statements) */
    zg_meter_start(&settings);
    /* the stored channels before the first request (then every second, below) */
    zg_db *upkeep_db = zg_db_open(&settings);
    if (upkeep_db)
        zg_channel_upkeep(upkeep_db);
    if (hooks && hooks->start)
        hooks->start(&settings);
    if (settings.stream_loop && zg_loop_start(&settings) != 0)
        zg_warn("streams stay on their worker threads");
    spawn(idle);
    if (!__atomic_load_n(&running, __ATOMIC_ACQUIRE)) {
        zg_error("no worker thread could start");
        return 1;
    }
    zg_info("serving: %d threads waiting, up to %d, %d database connections", idle, settings.threads,
            settings.db_connections);
    int sig = 0;
    /* billing upkeep between signals (zg_meter_upkeep), never on a request's path */
    for (;;) {
        struct timespec wait = {1, 0};
        sig = sigtimedwait(&set, NULL, &wait);
        if (sig == SIGTERM || sig == SIGINT || sig == SIGUSR1)
            break;
        if (__atomic_load_n(&waiting, __ATOMIC_ACQUIRE) < 1) /* a worker ended on an accept error */
            spawn(1);
        trim_threads();
        if (!upkeep_db)
            upkeep_db = zg_db_open(&settings);
        if (upkeep_db) {
            zg_catalog_upkeep(upkeep_db);
            zg_channel_upkeep(upkeep_db);
        }
        zg_meter_upkeep(&upkeep_db, &settings);
        if (upkeep_db)
            zg_conc_upkeep(upkeep_db, &settings);
        /* keys past their expiry: revoked, so that leases holding them let go within a second */
        if (upkeep_db && zg_keys_expire(upkeep_db) > 0)
            zg_info("expired keys revoked");
        if (hooks && hooks->upkeep)
            hooks->upkeep(upkeep_db, &settings);
    }
    zg_info("signal %d: finishing in-flight requests", sig);
    __atomic_store_n(&stopping, 1, __ATOMIC_RELEASE);
    FCGX_ShutdownPending();
    /* Interrupt the threads idle in accept(); threads busy with a request finish it and then see
     * `stopping`. The listening socket itself is left alone: other processes may share it. */
    while (__atomic_load_n(&running, __ATOMIC_ACQUIRE) > 0) {
        pthread_mutex_lock(&slots_mu);
        for (int i = 0; i < settings.threads; i++)
            if (slots[i].used && __atomic_load_n(&slots[i].in_accept, __ATOMIC_ACQUIRE))
                pthread_kill(slots[i].tid, SIGUSR2);
        pthread_mutex_unlock(&slots_mu);
        usleep(50 * 1000);
    }
    zg_loop_stop(); /* streams it took over end, and are settled, first */
    pthread_attr_destroy(&worker_attr);
    if (hooks && hooks->stop)
        hooks->stop(upkeep_db);
    if (upkeep_db)
        zg_conc_stop(upkeep_db);
    zg_db_free(upkeep_db);
    zg_meter_stop();
    zg_db_pool_free(pool);
    zg_upstream_cleanup();
    free(slots);
    free(free_slots);
    curl_global_cleanup();
    zg_info("stopped");
    return 0;
}
