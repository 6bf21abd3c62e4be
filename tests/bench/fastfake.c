/* fastfake: a fast fake Anthropic Messages upstream for the benchmarks (tests/bench/run).
 *
 * One epoll loop per thread (SO_REUSEPORT), HTTP/1.1 keep-alive, canned answers with usage:
 *   POST .../messages  {"stream":false}  -> application/json message (input 25, output 10 tokens)
 *   POST .../messages  {"stream":true}   -> text/event-stream, chunked, the Anthropic event sequence
 *   GET  /health                          -> 200 ok
 *   GET  /stats                           -> {"requests":N,"streams":N,"open_streams":N,"connections":N}
 * Directives anywhere in the request body, e.g. in the prompt: [[bench:hold=30000,interval=1000]]
 *   events=N    content deltas in a stream (default 3)
 *   gap=MS      pause after the first content delta (shows whether a proxy buffers)
 *   hold=MS     keep the stream open this long, one delta every `interval` ms (default 1000)
 *   input=N, output=N   usage reported (default 25 and 10)
 * Usage: fastfake [--port N] [--port-file PATH] [--threads N]
 * Never the bottleneck: a few microseconds of CPU per request, no allocation on the hot path
 * beyond the per-connection buffers. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IN_CAP (8u << 20)

static atomic_long n_requests, n_streams, n_open_streams, n_conns;
static int listen_port;

typedef struct {
    char *p;
    size_t len, cap, off;
} buf;

static int buf_add(buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 4096;
        while (c < b->len + n + 1)
            c *= 2;
        char *q = realloc(b->p, c);
        if (!q)
            return -1;
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

static void buf_fmt(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_fmt(buf *b, const char *fmt, ...)
{
    char tmp[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        buf_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Drop consumed input bytes. */
static void buf_consume(buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->p, b->p + n, b->len - n);
        b->len -= n;
    }
    if (b->p)
        b->p[b->len] = 0;
}

enum { ST_READ, ST_STREAM };

typedef struct conn {
    int fd;
    int state;
    int close_after;
    buf in, out;
    /* stream in progress */
    int64_t next_ms, end_ms;
    int interval, gap, sent, events, output;
    int held;
    struct conn *tprev, *tnext; /* timer list */
} conn;

typedef struct {
    int ep, lfd;
    conn *timers;
} loop;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void timer_add(loop *L, conn *c)
{
    c->tprev = NULL;
    c->tnext = L->timers;
    if (L->timers)
        L->timers->tprev = c;
    L->timers = c;
}

static void timer_del(loop *L, conn *c)
{
    if (c->tprev)
        c->tprev->tnext = c->tnext;
    else if (L->timers == c)
        L->timers = c->tnext;
    if (c->tnext)
        c->tnext->tprev = c->tprev;
    c->tprev = c->tnext = NULL;
}

static void conn_close(loop *L, conn *c)
{
    if (c->state == ST_STREAM) {
        timer_del(L, c);
        atomic_fetch_sub(&n_open_streams, 1);
    }
    epoll_ctl(L->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in.p);
    free(c->out.p);
    free(c);
}

/* Write what is queued. 0 ok (maybe partial, EPOLLOUT armed), -1 dead. */
static int flush_out(loop *L, conn *c)
{
    while (c->out.off < c->out.len) {
        ssize_t k = send(c->fd, c->out.p + c->out.off, c->out.len - c->out.off, MSG_NOSIGNAL);
        if (k > 0) {
            c->out.off += (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = c};
            epoll_ctl(L->ep, EPOLL_CTL_MOD, c->fd, &ev);
            return 0;
        }
        return -1;
    }
    c->out.off = c->out.len = 0;
    return 0;
}

static long directive(const char *body, const char *key, long def)
{
    const char *d = strstr(body, "[[bench:");
    if (!d)
        return def;
    const char *end = strstr(d, "]]");
    size_t kl = strlen(key);
    for (const char *p = d + 8; p && (!end || p < end); p = strchr(p, ',')) {
        if (*p == ',')
            p++;
        if (strncmp(p, key, kl) == 0 && p[kl] == '=')
            return strtol(p + kl + 1, NULL, 10);
    }
    return def;
}

static void chunk(buf *b, const char *data, size_t n)
{
    buf_fmt(b, "%zx\r\n", n);
    buf_add(b, data, n);
    buf_add(b, "\r\n", 2);
}

static void event(buf *b, const char *name, const char *json)
{
    char tmp[2048];
    int n = snprintf(tmp, sizeof tmp, "event: %s\ndata: %s\n\n", name, json);
    if (n > 0)
        chunk(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void copy_model(const char *body, char *model, size_t cap)
{
    snprintf(model, cap, "fake-model");
    const char *m = strstr(body, "\"model\"");
    if (!m)
        return;
    m = strchr(m + 7, '"');
    if (!m)
        return;
    const char *e = strchr(m + 1, '"');
    if (!e || (size_t)(e - m - 1) >= cap)
        return;
    memcpy(model, m + 1, (size_t)(e - m - 1));
    model[e - m - 1] = 0;
}

static void delta(conn *c)
{
    char j[256];
    c->sent++;
    snprintf(j, sizeof j,
             "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"tok%d \"}}",
             c->sent);
    event(&c->out, "content_block_delta", j);
}

static void stream_tail(conn *c)
{
    char j[512];
    event(&c->out, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}");
    snprintf(j, sizeof j,
             "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},"
             "\"usage\":{\"output_tokens\":%d}}",
             c->output);
    event(&c->out, "message_delta", j);
    event(&c->out, "message_stop", "{\"type\":\"message_stop\"}");
    buf_add(&c->out, "0\r\n\r\n", 5);
}

static void reply_simple(conn *c, int status, const char *ctype, const char *body)
{
    buf_fmt(&c->out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n", status,
            status == 200 ? "OK" : status == 404 ? "Not Found" : "Bad Request", ctype, strlen(body),
            c->close_after ? "Connection: close\r\n" : "");
    buf_add(&c->out, body, strlen(body));
}

static void messages(loop *L, conn *c, const char *body)
{
    char model[128], j[2048];
    copy_model(body, model, sizeof model);
    long input = directive(body, "input", 25), output = directive(body, "output", 10);
    int stream = strstr(body, "\"stream\":true") || strstr(body, "\"stream\": true");
    atomic_fetch_add(&n_requests, 1);
    if (!stream) {
        snprintf(j, sizeof j,
                 "{\"id\":\"msg_bench0001\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"%s\","
                 "\"content\":[{\"type\":\"text\",\"text\":\"Hello from the bench upstream\"}],"
                 "\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":%ld,"
                 "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":%ld,"
                 "\"service_tier\":\"standard\"}}",
                 model, input, output);
        buf_fmt(&c->out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nrequest-id: req_bench\r\n"
                "Content-Length: %zu\r\n%s\r\n",
                strlen(j), c->close_after ? "Connection: close\r\n" : "");
        buf_add(&c->out, j, strlen(j));
        return;
    }
    atomic_fetch_add(&n_streams, 1);
    buf_fmt(&c->out, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\n"
                     "request-id: req_bench\r\nTransfer-Encoding: chunked\r\n%s\r\n",
            c->close_after ? "Connection: close\r\n" : "");
    snprintf(j, sizeof j,
             "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_bench0001\",\"type\":\"message\","
             "\"role\":\"assistant\",\"model\":\"%s\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,"
             "\"usage\":{\"input_tokens\":%ld,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,"
             "\"output_tokens\":1}}}",
             model, input);
    event(&c->out, "message_start", j);
    event(&c->out, "content_block_start",
          "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}");
    event(&c->out, "ping", "{\"type\":\"ping\"}");
    c->sent = 0;
    c->output = (int)output;
    c->events = (int)directive(body, "events", 3);
    c->gap = (int)directive(body, "gap", 0);
    long hold = directive(body, "hold", 0);
    c->interval = (int)directive(body, "interval", 1000);
    if (c->interval < 1)
        c->interval = 1;
    c->held = hold > 0;
    delta(c);
    if (!c->held && c->gap <= 0) {
        while (c->sent < c->events)
            delta(c);
        stream_tail(c);
        return;
    }
    int64_t t = now_ms();
    c->end_ms = t + (hold > 0 ? hold : 0);
    c->next_ms = t + (c->held ? c->interval : c->gap);
    c->state = ST_STREAM;
    atomic_fetch_add(&n_open_streams, 1);
    timer_add(L, c);
}

/* A timer fired for a stream: the next delta, or the end. */
static void stream_tick(loop *L, conn *c, int64_t t)
{
    if (c->held) {
        if (t >= c->end_ms) {
            stream_tail(c);
        } else {
            delta(c);
            c->next_ms = t + c->interval;
            return;
        }
    } else {
        while (c->sent < c->events)
            delta(c);
        stream_tail(c);
    }
    timer_del(L, c);
    c->state = ST_READ;
    atomic_fetch_sub(&n_open_streams, 1);
}

/* Parse and answer complete requests in c->in. 0 ok, 1 need more, -1 close. */
static int handle_input(loop *L, conn *c)
{
    while (c->state == ST_READ && c->in.len) {
        char *he = memmem(c->in.p, c->in.len, "\r\n\r\n", 4);
        if (!he)
            return c->in.len > 65536 ? -1 : 1;
        size_t hlen = (size_t)(he - c->in.p) + 4;
        char method[16] = "", path[1024] = "";
        char *sp1 = memchr(c->in.p, ' ', hlen);
        char *sp2 = sp1 ? memchr(sp1 + 1, ' ', hlen - (size_t)(sp1 + 1 - c->in.p)) : NULL;
        if (!sp1 || !sp2 || (size_t)(sp1 - c->in.p) >= sizeof method || (size_t)(sp2 - sp1 - 1) >= sizeof path)
            return -1;
        memcpy(method, c->in.p, (size_t)(sp1 - c->in.p));
        memcpy(path, sp1 + 1, (size_t)(sp2 - sp1 - 1));
        long clen = 0;
        int chunked = 0, expect = 0;
        c->close_after = 0;
        int http10 = strncmp(sp2 + 1, "HTTP/1.0", 8) == 0;
        for (char *l = memchr(c->in.p, '\n', hlen); l && l < he; l = memchr(l + 1, '\n', (size_t)(he - l))) {
            char *h = l + 1;
            if (strncasecmp(h, "content-length:", 15) == 0)
                clen = strtol(h + 15, NULL, 10);
            else if (strncasecmp(h, "transfer-encoding:", 18) == 0 && strcasestr(h, "chunked") &&
                     strcasestr(h, "chunked") < strchr(h, '\r'))
                chunked = 1;
            else if (strncasecmp(h, "expect:", 7) == 0 && strcasestr(h, "100-continue") &&
                     strcasestr(h, "100-continue") < strchr(h, '\r'))
                expect = 1;
            else if (strncasecmp(h, "connection:", 11) == 0) {
                char *cr = strchr(h, '\r');
                char *cl = strcasestr(h, "close");
                if (cl && cl < cr)
                    c->close_after = 1;
                char *ka = strcasestr(h, "keep-alive");
                if (ka && ka < cr)
                    http10 = 0;
            }
        }
        if (http10)
            c->close_after = 1;
        if (clen < 0 || clen > (long)IN_CAP)
            return -1;
        /* the body */
        buf body = {0};
        size_t used;
        if (chunked) {
            size_t pos = hlen;
            for (;;) {
                char *nl = memmem(c->in.p + pos, c->in.len - pos, "\r\n", 2);
                if (!nl) {
                    free(body.p);
                    return 1;
                }
                long n = strtol(c->in.p + pos, NULL, 16);
                if (n < 0 || n > (long)IN_CAP) {
                    free(body.p);
                    return -1;
                }
                size_t dpos = (size_t)(nl - c->in.p) + 2;
                if (n == 0) {
                    char *end = memmem(c->in.p + dpos - 2, c->in.len - dpos + 2, "\r\n\r\n", 4);
                    if (!end) {
                        free(body.p);
                        return 1;
                    }
                    used = (size_t)(end - c->in.p) + 4;
                    break;
                }
                if (c->in.len < dpos + (size_t)n + 2) {
                    free(body.p);
                    return 1;
                }
                buf_add(&body, c->in.p + dpos, (size_t)n);
                pos = dpos + (size_t)n + 2;
            }
        } else {
            if (expect && c->in.len == hlen && clen > 0) {
                buf_add(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
                if (flush_out(L, c) != 0)
                    return -1;
            }
            if (c->in.len < hlen + (size_t)clen)
                return 1;
            buf_add(&body, c->in.p + hlen, (size_t)clen);
            used = hlen + (size_t)clen;
        }
        if (!body.p)
            buf_add(&body, "", 0);
        if (strcmp(method, "POST") == 0 && strstr(path, "/messages") && !strstr(path, "count_tokens")) {
            messages(L, c, body.p);
        } else if (strcmp(method, "GET") == 0 && strcmp(path, "/health") == 0) {
            reply_simple(c, 200, "text/plain", "ok\n");
        } else if (strcmp(method, "GET") == 0 && strcmp(path, "/stats") == 0) {
            char j[256];
            snprintf(j, sizeof j, "{\"requests\":%ld,\"streams\":%ld,\"open_streams\":%ld,\"connections\":%ld}\n",
                     atomic_load(&n_requests), atomic_load(&n_streams), atomic_load(&n_open_streams),
                     atomic_load(&n_conns));
            reply_simple(c, 200, "application/json", j);
        } else {
            reply_simple(c, 404, "application/json",
                         "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\",\"message\":\"no route\"}}");
        }
        free(body.p);
        buf_consume(&c->in, used);
        if (flush_out(L, c) != 0)
            return -1;
        if (c->state == ST_READ && c->close_after && c->out.len == 0)
            return -1;
    }
    return 0;
}

static void on_readable(loop *L, conn *c)
{
    char tmp[65536];
    for (;;) {
        ssize_t k = recv(c->fd, tmp, sizeof tmp, 0);
        if (k > 0) {
            if (c->in.len + (size_t)k > IN_CAP + 65536 || buf_add(&c->in, tmp, (size_t)k) != 0) {
                conn_close(L, c);
                return;
            }
            if ((size_t)k < sizeof tmp)
                break;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        conn_close(L, c); /* EOF or error */
        return;
    }
    if (handle_input(L, c) < 0)
        conn_close(L, c);
}

static void *run_loop(void *arg)
{
    loop *L = arg;
    struct epoll_event evs[256];
    for (;;) {
        int timeout = -1;
        int64_t t = now_ms();
        for (conn *c = L->timers; c; c = c->tnext) {
            int64_t d = c->next_ms - t;
            if (d < 0)
                d = 0;
            if (timeout < 0 || d < timeout)
                timeout = (int)d;
        }
        int n = epoll_wait(L->ep, evs, 256, timeout);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                for (;;) {
                    int fd = accept4(L->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn *c = calloc(1, sizeof *c);
                    if (!c) {
                        close(fd);
                        continue;
                    }
                    c->fd = fd;
                    atomic_fetch_add(&n_conns, 1);
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
                    epoll_ctl(L->ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            conn *c = evs[i].data.ptr;
            if (evs[i].events & EPOLLOUT) {
                if (flush_out(L, c) != 0) {
                    conn_close(L, c);
                    continue;
                }
                if (c->out.len == 0) {
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
                    epoll_ctl(L->ep, EPOLL_CTL_MOD, c->fd, &ev);
                    if (c->state == ST_READ && c->close_after) {
                        conn_close(L, c);
                        continue;
                    }
                    if (c->state == ST_READ && c->in.len && handle_input(L, c) < 0) {
                        conn_close(L, c);
                        continue;
                    }
                }
            }
            if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                on_readable(L, c);
        }
        t = now_ms();
        for (conn *c = L->timers, *nx; c; c = nx) {
            nx = c->tnext;
            if (c->next_ms > t)
                continue;
            stream_tick(L, c, t);
            if (flush_out(L, c) != 0) {
                conn_close(L, c);
                continue;
            }
            if (c->state == ST_READ) {
                if (c->close_after && c->out.len == 0)
                    conn_close(L, c);
                else if (c->in.len && c->out.len == 0 && handle_input(L, c) < 0)
                    conn_close(L, c);
            }
        }
    }
    return NULL;
}

static int open_listener(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4096) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    int port = 0, threads = 1;
    const char *port_file = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--port-file") == 0 && i + 1 < argc)
            port_file = argv[++i];
        else {
            fprintf(stderr, "usage: fastfake [--port N] [--port-file PATH] [--threads N]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 64)
        threads = 1;
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl; /* tens of thousands of held streams */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    loop *loops = calloc((size_t)threads, sizeof *loops);
    for (int i = 0; i < threads; i++) {
        loops[i].lfd = open_listener(port);
        if (loops[i].lfd < 0) {
            perror("fastfake: listen");
            return 1;
        }
        if (i == 0) {
            struct sockaddr_in a;
            socklen_t al = sizeof a;
            getsockname(loops[0].lfd, (struct sockaddr *)&a, &al);
            port = ntohs(a.sin_port);
            listen_port = port;
        }
        loops[i].ep = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        epoll_ctl(loops[i].ep, EPOLL_CTL_ADD, loops[i].lfd, &ev);
    }
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, port_file) != 0) {
            perror("fastfake: port file");
            return 1;
        }
    }
    pthread_t tid;
    for (int i = 1; i < threads; i++)
        pthread_create(&tid, NULL, run_loop, &loops[i]);
    run_loop(&loops[0]);
    return 0;
}
