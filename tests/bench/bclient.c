/* bclient: HTTP/1.1 SSE client for the benchmarks (tests/bench/run).
 *
 *   bclient ttfb    --port P --path PATH [-H 'k: v']... --body-file F [-n N] [--gap-ms G]
 *       N sequential POSTs over one keep-alive connection. Per request it times the first
 *       response byte, the first content delta ("content_block_delta") and the end of the
 *       response. With --gap-ms G (the upstream pauses G ms after the first delta) a response
 *       whose first delta reached us less than G/2 ms before its end counts as "buffered".
 *   bclient streams --port P --path PATH [-H 'k: v']... --body-file F -c C [--timeout S]
 *                   [--ready-file F]
 *       C concurrent POSTs, each on its own connection, held open by the upstream. Writes
 *       ready-file once every stream has delivered its first delta; counts streams that end
 *       with status 200, a message_stop event and a complete body, and when the first bytes came
 *       (from the start, and as CLOCK_MONOTONIC microseconds to compare across clients).
 * Output: one JSON object on stdout. Times in microseconds. Loopback only (127.0.0.1). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

enum { P_HEAD, P_CL, P_CSIZE, P_CDATA, P_CCRLF, P_TRAILER, P_DONE, P_EOF };

typedef struct {
    int phase, status, chunked, closing;
    char head[16384];
    size_t hlen;
    long remain;
    char line[64];
    size_t llen;
    char tail[64];
    size_t tlen;
    int64_t t0, t_first, t_mark, t_end;
    int saw_stop;
} resp;

static void resp_init(resp *r, int64_t t0)
{
    memset(r, 0, sizeof *r);
    r->t0 = t0;
    r->t_first = r->t_mark = r->t_end = -1;
}

static void body_bytes(resp *r, const char *p, size_t n, int64_t t)
{
    if (r->t_mark >= 0 && r->saw_stop)
        return;
    char tmp[65536 + 64];
    size_t m = n > 65536 ? 65536 : n;
    memcpy(tmp, r->tail, r->tlen);
    memcpy(tmp + r->tlen, p + (n - m), m);
    size_t tl = r->tlen + m;
    if (r->t_mark < 0 && memmem(tmp, tl, "content_block_delta", 19))
        r->t_mark = t;
    if (!r->saw_stop && memmem(tmp, tl, "message_stop", 12))
        r->saw_stop = 1;
    size_t keep = tl < 32 ? tl : 32;
    memmove(r->tail, tmp + tl - keep, keep);
    r->tlen = keep;
}

/* Feed received bytes. Returns bytes consumed; phase P_DONE when the response is complete,
 * -1 on a malformed response. */
static long resp_feed(resp *r, const char *p, size_t n, int64_t t)
{
    size_t i = 0;
    if (n && r->t_first < 0)
        r->t_first = t;
    while (i < n && r->phase != P_DONE) {
        switch (r->phase) {
        case P_HEAD: {
            while (i < n && r->hlen < sizeof r->head - 1) {
                r->head[r->hlen++] = p[i++];
                if (r->hlen >= 4 && memcmp(r->head + r->hlen - 4, "\r\n\r\n", 4) == 0)
                    break;
            }
            if (r->hlen >= sizeof r->head - 1)
                return -1;
            if (r->hlen < 4 || memcmp(r->head + r->hlen - 4, "\r\n\r\n", 4) != 0)
                break;
            r->head[r->hlen] = 0;
            if (strncmp(r->head, "HTTP/1.", 7) != 0)
                return -1;
            r->status = atoi(r->head + 9);
            if (r->status == 100) { /* interim */
                r->hlen = 0;
                break;
            }
            long cl = -1;
            for (char *l = strstr(r->head, "\r\n"); l; l = strstr(l + 2, "\r\n")) {
                char *h = l + 2;
                if (strncasecmp(h, "content-length:", 15) == 0)
                    cl = atol(h + 15);
                else if (strncasecmp(h, "transfer-encoding:", 18) == 0 && strncasecmp(h + 18, " chunked", 8) == 0)
                    r->chunked = 1;
                else if (strncasecmp(h, "connection:", 11) == 0 && strncasecmp(h + 11, " close", 6) == 0)
                    r->closing = 1;
            }
            if (r->chunked)
                r->phase = P_CSIZE;
            else if (cl >= 0) {
                r->remain = cl;
                r->phase = cl ? P_CL : P_DONE;
            } else
                r->phase = P_EOF;
            break;
        }
        case P_CL: {
            size_t k = n - i < (size_t)r->remain ? n - i : (size_t)r->remain;
            body_bytes(r, p + i, k, t);
            i += k;
            r->remain -= (long)k;
            if (!r->remain)
                r->phase = P_DONE;
            break;
        }
        case P_EOF:
            body_bytes(r, p + i, n - i, t);
            i = n;
            break;
        case P_CSIZE:
        case P_CCRLF:
        case P_TRAILER:
            while (i < n) {
                char ch = p[i++];
                if (r->llen < sizeof r->line - 1)
                    r->line[r->llen++] = ch;
                if (ch == '\n')
                    break;
            }
            if (!r->llen || r->line[r->llen - 1] != '\n')
                break;
            r->line[r->llen] = 0;
            if (r->phase == P_CSIZE) {
                r->remain = strtol(r->line, NULL, 16);
                r->phase = r->remain ? P_CDATA : P_TRAILER;
            } else if (r->phase == P_CCRLF) {
                r->phase = P_CSIZE;
            } else if (r->llen <= 2) {
                r->phase = P_DONE;
            }
            r->llen = 0;
            break;
        case P_CDATA: {
            size_t k = n - i < (size_t)r->remain ? n - i : (size_t)r->remain;
            body_bytes(r, p + i, k, t);
            i += k;
            r->remain -= (long)k;
            if (!r->remain)
                r->phase = P_CCRLF;
            break;
        }
        }
    }
    if (r->phase == P_DONE && r->t_end < 0)
        r->t_end = t;
    return (long)i;
}

static int connect_to(int port, int nonblock)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t pct(int64_t *v, int n, double p)
{
    if (n <= 0)
        return -1;
    int i = (int)(p / 100.0 * n);
    if (i >= n)
        i = n - 1;
    return v[i];
}

static void stats(const char *name, int64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp64);
    printf("\"%s\":{\"p50\":%lld,\"p90\":%lld,\"p99\":%lld,\"max\":%lld}", name, (long long)pct(v, n, 50),
           (long long)pct(v, n, 90), (long long)pct(v, n, 99), (long long)(n ? v[n - 1] : -1));
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int mode_ttfb(int port, const char *req, size_t reqlen, int n, int gap_ms)
{
    int64_t *first = calloc((size_t)n, 8), *mark = calloc((size_t)n, 8), *total = calloc((size_t)n, 8);
    int ok = 0, bad = 0, buffered = 0, fd = -1;
    char buf[65536];
    for (int k = 0; k < n; k++) {
        if (fd < 0 && (fd = connect_to(port, 0)) < 0) {
            bad++;
            continue;
        }
        resp r;
        resp_init(&r, now_us());
        if (send_all(fd, req, reqlen) != 0) {
            close(fd);
            fd = -1;
            bad++;
            continue;
        }
        int failed = 0;
        while (r.phase != P_DONE) {
            ssize_t got = recv(fd, buf, sizeof buf, 0);
            int64_t t = now_us();
            if (got <= 0) {
                if (r.phase == P_EOF) {
                    r.phase = P_DONE;
                    r.t_end = t;
                } else
                    failed = 1;
                close(fd);
                fd = -1;
                break;
            }
            if (resp_feed(&r, buf, (size_t)got, t) < 0) {
                failed = 1;
                close(fd);
                fd = -1;
                break;
            }
        }
        if (failed || r.status != 200 || r.t_mark < 0 || !r.saw_stop) {
            bad++;
            if (bad <= 3)
                fprintf(stderr, "bclient: request %d failed (status %d)\n%.400s\n", k, r.status, r.head);
            continue;
        }
        if (r.closing && fd >= 0) {
            close(fd);
            fd = -1;
        }
        first[ok] = r.t_first - r.t0;
        mark[ok] = r.t_mark - r.t0;
        total[ok] = r.t_end - r.t0;
        if (gap_ms > 0 && r.t_end - r.t_mark < (int64_t)gap_ms * 500)
            buffered++;
        ok++;
    }
    if (fd >= 0)
        close(fd);
    printf("{\"ok\":%d,\"failed\":%d,\"buffered\":%d,", ok, bad, buffered);
    stats("first_byte", first, ok);
    printf(",");
    stats("first_delta", mark, ok);
    printf(",");
    stats("total", total, ok);
    printf("}\n");
    return bad ? 1 : 0;
}

typedef struct {
    int fd, sent, done, failed;
    resp r;
} sconn;

static int mode_streams(int port, const char *req, size_t reqlen, int c, int timeout_s, const char *ready_file)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)c + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    sconn *s = calloc((size_t)c, sizeof *s);
    int64_t t0 = now_us(), deadline = t0 + (int64_t)timeout_s * 1000000;
    int connected = 0, finished = 0, marked = 0, ready = 0;
    int64_t t_ready = -1;
    for (int i = 0; i < c; i++) {
        resp_init(&s[i].r, now_us());
        s[i].fd = connect_to(port, 1);
        if (s[i].fd < 0) {
            s[i].failed = s[i].done = 1;
            finished++;
            continue;
        }
        struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, s[i].fd, &ev);
    }
    char buf[65536];
    struct epoll_event evs[512];
    while (finished < c && now_us() < deadline) {
        int n = epoll_wait(ep, evs, 512, 200);
        int64_t t = now_us();
        for (int k = 0; k < n; k++) {
            sconn *x = &s[evs[k].data.u32];
            if (x->done)
                continue;
            if (!x->sent && (evs[k].events & EPOLLOUT)) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(x->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err || send_all(x->fd, req, reqlen) != 0) {
                    x->failed = x->done = 1;
                    finished++;
                    close(x->fd);
                    continue;
                }
                x->sent = 1;
                connected++;
                struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = evs[k].data.u32};
                epoll_ctl(ep, EPOLL_CTL_MOD, x->fd, &ev);
            }
            if (!(evs[k].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
                continue;
            for (;;) {
                ssize_t got = recv(x->fd, buf, sizeof buf, MSG_DONTWAIT);
                if (got < 0 && (errno == EAGAIN || errno == EINTR))
                    break;
                if (got <= 0) {
                    if (x->r.phase == P_EOF) {
                        x->r.phase = P_DONE;
                        x->r.t_end = t;
                    }
                    if (x->r.phase != P_DONE)
                        x->failed = 1;
                    x->done = 1;
                    finished++;
                    close(x->fd);
                    break;
                }
                int had_mark = x->r.t_mark >= 0;
                if (resp_feed(&x->r, buf, (size_t)got, t) < 0) {
                    x->failed = x->done = 1;
                    finished++;
                    close(x->fd);
                    break;
                }
                if (!had_mark && x->r.t_mark >= 0)
                    marked++;
                if (x->r.phase == P_DONE) {
                    x->done = 1;
                    finished++;
                    close(x->fd);
                    break;
                }
            }
        }
        if (!ready && marked == c) {
            ready = 1;
            t_ready = now_us() - t0;
            if (ready_file) {
                FILE *f = fopen(ready_file, "w");
                if (f) {
                    fprintf(f, "%d\n", marked);
                    fclose(f);
                }
            }
        }
    }
    int ok = 0, timed_out = 0, non200 = 0, got200 = 0;
    int64_t slowest = 0;
    /* when each stream's first byte came, from the start of the run: how long the streams waited
     * and how far apart they started */
    int64_t *fb = calloc((size_t)c, sizeof *fb);
    int nfb = 0;
    for (int i = 0; i < c; i++)
        if (s[i].r.t_first >= 0)
            fb[nfb++] = s[i].r.t_first - t0;
    qsort(fb, (size_t)nfb, sizeof *fb, cmp64);
    int64_t fb_first = nfb ? fb[0] : -1, fb_p50 = nfb ? fb[nfb / 2] : -1, fb_last = nfb ? fb[nfb - 1] : -1;
    free(fb);
    for (int i = 0; i < c; i++) {
        if (!s[i].done) {
            timed_out++;
            close(s[i].fd);
            continue;
        }
        if (s[i].r.status != 200)
            non200++;
        else
            got200++;
        if (!s[i].failed && s[i].r.status == 200 && s[i].r.saw_stop && s[i].r.phase == P_DONE) {
            ok++;
            if (s[i].r.t_end - s[i].r.t0 > slowest)
                slowest = s[i].r.t_end - s[i].r.t0;
        }
    }
    printf("{\"streams\":%d,\"connected\":%d,\"all_open_us\":%lld,\"completed\":%d,\"status200\":%d,\"non200\":%d,"
           "\"timed_out\":%d,\"slowest_us\":%lld,\"first_byte_min_us\":%lld,\"first_byte_p50_us\":%lld,"
           "\"first_byte_max_us\":%lld,\"start_abs_us\":%lld,\"first_byte_first_abs_us\":%lld,"
           "\"first_byte_last_abs_us\":%lld}\n",
           c, connected, (long long)t_ready, ok, got200, non200, timed_out, (long long)slowest, (long long)fb_first,
           (long long)fb_p50, (long long)fb_last, (long long)t0, (long long)(nfb ? t0 + fb_first : -1),
           (long long)(nfb ? t0 + fb_last : -1));
    return ok == c ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bclient ttfb|streams --port P --path PATH [-H 'k: v']... --body-file F "
                        "[-n N] [--gap-ms G] [-c C] [--timeout S] [--ready-file F]\n");
        return 2;
    }
    const char *mode = argv[1], *path = "/", *body_file = NULL, *ready = NULL;
    int port = 0, n = 100, c = 10, gap = 0, timeout = 120;
    static char hdrs[16384];
    size_t hl = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "bclient: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--port"))
            port = atoi(v);
        else if (!strcmp(a, "--path"))
            path = v;
        else if (!strcmp(a, "--body-file"))
            body_file = v;
        else if (!strcmp(a, "-n"))
            n = atoi(v);
        else if (!strcmp(a, "-c"))
            c = atoi(v);
        else if (!strcmp(a, "--gap-ms"))
            gap = atoi(v);
        else if (!strcmp(a, "--timeout"))
            timeout = atoi(v);
        else if (!strcmp(a, "--ready-file"))
            ready = v;
        else if (!strcmp(a, "-H")) {
            int k = snprintf(hdrs + hl, sizeof hdrs - hl, "%s\r\n", v);
            if (k < 0 || (size_t)k >= sizeof hdrs - hl)
                return 2;
            hl += (size_t)k;
        } else {
            fprintf(stderr, "bclient: unknown option %s\n", a);
            return 2;
        }
    }
    if (!port || !body_file || n < 1 || c < 1) {
        fprintf(stderr, "bclient: --port, --body-file required\n");
        return 2;
    }
    FILE *f = fopen(body_file, "rb");
    if (!f) {
        perror(body_file);
        return 2;
    }
    static char body[1 << 20];
    size_t bl = fread(body, 1, sizeof body, f);
    fclose(f);
    static char req[(1 << 20) + 32768];
    int rl = snprintf(req, sizeof req,
                      "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n%s\r\n",
                      path, port, bl, hdrs);
    if (rl < 0 || (size_t)rl + bl > sizeof req)
        return 2;
    memcpy(req + rl, body, bl);
    size_t reqlen = (size_t)rl + bl;
    if (!strcmp(mode, "ttfb"))
        return mode_ttfb(port, req, reqlen, n, gap);
    if (!strcmp(mode, "streams"))
        return mode_streams(port, req, reqlen, c, timeout, ready);
    fprintf(stderr, "bclient: unknown mode %s\n", mode);
    return 2;
}
