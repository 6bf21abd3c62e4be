#include "zg_server.h"
#include "zg_config.h"
#include "zg_db.h"
#include "zg_err.h"
#include "zg_meter.h"
#include "zg_log.h"
#include "zg_num.h"
#include "zg_upstream.h"
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int stopping; /* set by the main thread, read by the workers: atomic accesses */
static zg_settings settings;
static zg_handler route_handler;
static zg_proto route_proto;
static int listen_fd;

/* Per-thread flag: set while the thread waits in accept(), so shutdown can interrupt exactly those. */
struct worker_slot {
    pthread_t tid;
    int in_accept; /* atomic accesses: written by the worker, read by the main thread */
    int done;
};

static void on_wake(int sig)
{
    (void)sig;
}

int zg_server_stopping(void)
{
    return __atomic_load_n(&stopping, __ATOMIC_ACQUIRE);
}

static void *worker(void *arg)
{
    struct worker_slot *slot = arg;
    FCGX_Request fcgx;
    if (FCGX_InitRequest(&fcgx, listen_fd, 0) != 0) {
        zg_error("FCGX_InitRequest failed");
        return NULL;
    }
    zg_db *db = zg_db_new(&settings);
    if (!db) {
        zg_error("worker: out of memory for a database handle; this worker does not start");
        FCGX_Free(&fcgx, 1);
        return NULL;
    }
    zg_req r;
    memset(&r, 0, sizeof r);
    zg_buf_init(&r.body, (size_t)settings.max_body_bytes);
    zg_buf_init(&r.headers, 16384);
    while (!zg_server_stopping()) {
        __atomic_store_n(&slot->in_accept, 1, __ATOMIC_RELEASE);
        if (zg_server_stopping()) {
            __atomic_store_n(&slot->in_accept, 0, __ATOMIC_RELEASE);
            break;
        }
        int rc = FCGX_Accept_r(&fcgx);
        __atomic_store_n(&slot->in_accept, 0, __ATOMIC_RELEASE);
        if (rc < 0) {
            if (zg_server_stopping())
                break;
            if (rc == -EINTR || errno == EINTR)
                continue;
            zg_error("accept failed (%d); worker exits", rc);
            break;
        }
        zg_req_begin(&r, &fcgx, &settings, db, route_proto);
        route_handler(&r);
        if (!r.started)
            zg_err_reply(&r, ZG_ERR_INTERNAL, "the request was not answered");
        FCGX_Finish_r(&fcgx);
        zg_req_end(&r);
    }
    zg_buf_free(&r.body);
    zg_buf_free(&r.headers);
    zg_db_free(db);
    FCGX_Free(&fcgx, 0);
    zg_db_thread_end();
    zg_upstream_thread_end();
    __atomic_store_n(&slot->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void usage(const char *name, FILE *f)
{
    fprintf(f,
            "usage: %s [--config PATH] [--listen SOCKET|:PORT] [--threads N]\n"
            "A zenn-gateway FastCGI program. Started by the web server (listening socket on fd 0),\n"
            "or with --listen to open its own socket (for mod_proxy_fcgi).\n"
            "Config: --config, else $ZENN_CONFIG, else %s.\n",
            name, zg_config_default_path());
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
            if (zg_parse_i64z(argv[++i], 1, 1024, &threads) != 0) {
                fprintf(stderr, "%s: --threads takes 1..1024\n", name);
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
    zg_meter_start(&settings);
    struct worker_slot *slots = calloc((size_t)settings.threads, sizeof *slots);
    if (!slots)
        return 1;
    int started = 0;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 512 * 1024);
    for (int i = 0; i < settings.threads; i++)
        if (pthread_create(&slots[started].tid, &attr, worker, &slots[started]) == 0)
            started++;
    pthread_attr_destroy(&attr);
    if (!started) {
        zg_error("no worker thread could start");
        return 1;
    }
    zg_info("serving with %d threads", started);
    int sig = 0;
    /* billing upkeep between signals (zg_meter_upkeep), never on a request's path */
    zg_db *upkeep_db = NULL;
    for (;;) {
        struct timespec wait = {5, 0};
        sig = sigtimedwait(&set, NULL, &wait);
        if (sig == SIGTERM || sig == SIGINT || sig == SIGUSR1)
            break;
        zg_meter_upkeep(&upkeep_db, &settings);
    }
    zg_db_free(upkeep_db);
    zg_info("signal %d: finishing in-flight requests", sig);
    __atomic_store_n(&stopping, 1, __ATOMIC_RELEASE);
    FCGX_ShutdownPending();
    /* Interrupt the threads idle in accept(); threads busy with a request finish it and then see
     * `stopping`. The listening socket itself is left alone: other processes may share it. */
    for (;;) {
        int alive = 0;
        for (int i = 0; i < started; i++) {
            if (__atomic_load_n(&slots[i].done, __ATOMIC_ACQUIRE))
                continue;
            alive++;
            if (__atomic_load_n(&slots[i].in_accept, __ATOMIC_ACQUIRE))
                pthread_kill(slots[i].tid, SIGUSR2);
        }
        if (!alive)
            break;
        usleep(50 * 1000);
    }
    for (int i = 0; i < started; i++)
        pthread_join(slots[i].tid, NULL);
    free(slots);
    zg_meter_stop();
    curl_global_cleanup();
    zg_info("stopped");
    return 0;
}
