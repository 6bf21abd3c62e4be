/* zg_sse: the incremental SSE parser, fed whole, split in two at every byte boundary, and byte by
 * byte; the raw bytes handed out must always add up to the input. */
#include "zg_sse.h"
#include "tap.h"
#include <stdio.h>
#include <string.h>

typedef struct {
    zg_buf sig;   /* "event|data;" for every event with a field (comment-only events left out) */
    zg_buf raw;   /* the raw bytes of every delivery, in order */
    int all;      /* deliveries, comment-only and pass-through pieces included */
    int stop_at;  /* return 7 from the stop_at-th delivery (0: never) */
} sink;

static int collect(void *ctx, const char *ev, size_t elen, const char *data, size_t dlen, const char *raw,
                   size_t rawlen)
{
    sink *s = ctx;
    s->all++;
    zg_buf_append(&s->raw, raw, rawlen);
    if (elen || dlen) {
        zg_buf_append(&s->sig, ev, elen);
        zg_buf_putc(&s->sig, '|');
        zg_buf_append(&s->sig, data, dlen);
        zg_buf_putc(&s->sig, ';');
    }
    return s->stop_at && s->all == s->stop_at ? 7 : 0;
}

static void sink_init(sink *s)
{
    zg_buf_init(&s->sig, 1 << 20);
    zg_buf_init(&s->raw, 1 << 20);
    s->all = 0;
    s->stop_at = 0;
}

static void sink_free(sink *s)
{
    zg_buf_free(&s->sig);
    zg_buf_free(&s->raw);
}

/* Feed in[0..n) in pieces of the given sizes (the last piece takes the rest); returns the first
 * non-zero feed result. The pending tail is appended to the raw bytes, so raw must equal in. */
static int run(const char *in, size_t n, size_t cap, const size_t *cuts, size_t ncuts, sink *s, size_t *pending)
{
    zg_sse p;
    zg_sse_init(&p, cap);
    size_t at = 0;
    int rc = 0;
    for (size_t i = 0; i <= ncuts && !rc; i++) {
        size_t end = i < ncuts ? cuts[i] : n;
        if (end < at)
            end = at;
        rc = zg_sse_feed(&p, in + at, end - at, collect, s);
        at = end;
    }
    const char *tail;
    *pending = zg_sse_pending(&p, &tail);
    zg_buf_append(&s->raw, tail, *pending);
    zg_sse_free(&p);
    return rc;
}

/* Check one case fed whole, split in two at every boundary, and byte by byte. */
static void check(const char *name, const char *in, size_t cap, const char *want_sig, size_t want_pending)
{
    size_t n = strlen(in);
    int bad = 0;
    char why[512] = "";
    /* k = 0..n: one cut at k (k = 0 and n are a whole feed); then k = n + 1: every byte alone */
    for (size_t k = 0; k <= n + 1 && !bad; k++) {
        sink s;
        sink_init(&s);
        size_t pending = 0, cuts[4096];
        size_t ncuts = 0;
        if (k <= n)
            cuts[ncuts++] = k;
        else
            for (size_t j = 1; j < n && ncuts < sizeof cuts / sizeof cuts[0]; j++)
                cuts[ncuts++] = j;
        int rc = run(in, n, cap, cuts, ncuts, &s, &pending);
        const char *mode = k <= n ? "split" : "bytewise";
        if (rc != 0) {
            snprintf(why, sizeof why, "%s at %zu: feed returned %d", mode, k, rc);
            bad = 1;
        } else if (strcmp(zg_buf_cstr(&s.sig), want_sig) != 0) {
            snprintf(why, sizeof why, "%s at %zu: events '%s', want '%s'", mode, k, zg_buf_cstr(&s.sig), want_sig);
            bad = 1;
        } else if (s.raw.len != n || memcmp(s.raw.data, in, n) != 0) {
            snprintf(why, sizeof why, "%s at %zu: raw bytes differ from the input", mode, k);
            bad = 1;
        } else if (pending != want_pending) {
            snprintf(why, sizeof why, "%s at %zu: %zu bytes pending, want %zu", mode, k, pending, want_pending);
            bad = 1;
        }
        sink_free(&s);
    }
    ok(!bad, "%s (whole, every split, byte by byte)", name);
    if (bad)
        printf("#   %s\n", why);
}

static char big[4096];

int main(void)
{
    static const struct {
        const char *name, *in, *sig;
        size_t cap, pending;
    } cases[] = {
        {"LF line ends", "event: a\ndata: 1\n\ndata: 2\n\n", "a|1;|2;", 1024, 0},
        {"CRLF line ends", "event: a\r\ndata: 1\r\n\r\ndata: 2\r\n\r\n", "a|1;|2;", 1024, 0},
        {"CR line ends (last event delivered at once)", "event: a\rdata: 1\r\rdata: 2\r\r", "a|1;|2;", 1024, 0},
        {"mixed line ends", "data: x\r\n\ndata: y\n\r\ndata: z\r\r\n", "|x;|y;|z;", 1024, 0},
        {"multi-line data joined with LF", "data: line1\ndata: line2\ndata:\ndata:  sp\n\n", "|line1\nline2\n\n sp;",
         1024, 0},
        {"comments are not events' fields", ": ping\n\n: keep\nevent: e\n: mid\ndata: d\n\n", "e|d;", 1024, 0},
        {"other fields ignored", "id: 5\nretry: 100\nevent: x\ndata: {}\n\n", "x|{};", 1024, 0},
        {"no space after the colon; only one space stripped", "event:x\ndata:{\"a\":1}\n\ndata:  two\n\n",
         "x|{\"a\":1};| two;", 1024, 0},
        {"colon inside the value", "data: a: b\n\n", "|a: b;", 1024, 0},
        {"Gemini CRLF chunks", "data: {\"candidates\":[1]}\r\n\r\ndata: {\"candidates\":[2]}\r\n\r\n",
         "|{\"candidates\":[1]};|{\"candidates\":[2]};", 1024, 0},
        {"OpenAI chat stream with [DONE]",
         "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n",
         "|{\"choices\":[{\"delta\":{\"content\":\"hi\"}}]};|[DONE];", 1024, 0},
        {"unterminated trailing event stays pending", "data: 1\n\ndata: 2\n", "|1;", 1024, 8},
        {"blank lines between events", "\n\ndata: 1\n\n\n\ndata: 2\n\n", "|1;|2;", 1024, 0},
        {"event exactly at the cap is parsed", "data: 12345678\n\ndata: 9\n\n", "|12345678;|9;", 16, 0},
        {"event one byte over the cap passes through", "data: 123456789\n\ndata: 9\n\n", "|9;", 16, 0},
        {"over-cap event with CRLF ends",
         "data: 0123456789abcdef0123456789abcdef\r\n\r\nevent: after\r\ndata: ok\r\n\r\n", "after|ok;", 32, 0},
        {"over-cap event with CR ends", "data: 0123456789abcdef0123456789abcdef\r\revent: after\rdata: ok\r\r",
         "after|ok;", 32, 0},
        {"over-cap multi-line event", "data: 0123456789\ndata: abcdefghij\n\ndata: ok\n\n", "|ok;", 20, 0},
        {"many small events, more than the cap in one feed",
         "data: 0123456789\n\ndata: 0123456789\n\ndata: 0123456789\n\ndata: 0123456789\n\n",
         "|0123456789;|0123456789;|0123456789;|0123456789;", 20, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check(cases[i].name, cases[i].in, cases[i].cap, cases[i].sig, cases[i].pending);

    /* a large event over a 64-byte cap among normal ones, with an Anthropic-style event name */
    size_t o = 0;
    o += (size_t)snprintf(big + o, sizeof big - o, "event: message_start\ndata: {}\n\nevent: huge\ndata: ");
    for (int j = 0; j < 1000; j++)
        big[o++] = 'x';
    snprintf(big + o, sizeof big - o, "\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    check("1 KB event through a 64-byte cap", big, 64, "message_start|{};message_stop|{\"type\":\"message_stop\"};",
          0);

    /* raw bytes of each event as delivered when fed whole */
    {
        sink s;
        sink_init(&s);
        zg_sse p;
        zg_sse_init(&p, 1024);
        const char *in = "event: a\r\ndata: 1\r\n\r\n: c\n\n";
        int rc = zg_sse_feed(&p, in, strlen(in), collect, &s);
        is_int(rc, 0, "whole feed");
        is_int(s.all, 2, "an event and a comment-only event");
        zg_sse_free(&p);
        sink_free(&s);
    }
    /* the CRLF of a blank line split between feeds: the event comes out at the CR */
    {
        sink s;
        sink_init(&s);
        zg_sse p;
        zg_sse_init(&p, 1024);
        zg_sse_feed(&p, "data: 1\r\n\r", strlen("data: 1\r\n\r"), collect, &s);
        is_str(zg_buf_cstr(&s.sig), "|1;", "delivered at the CR, without waiting for the LF");
        zg_sse_feed(&p, "\ndata: 2\r\n\r\n", strlen("\ndata: 2\r\n\r\n"), collect, &s);
        is_str(zg_buf_cstr(&s.sig), "|1;|2;", "the late LF is not a blank line");
        is_int(s.all, 3, "the late LF handed on by itself");
        zg_sse_free(&p);
        sink_free(&s);
    }
    /* a callback's non-zero return stops the feed and is returned */
    {
        sink s;
        sink_init(&s);
        s.stop_at = 2;
        zg_sse p;
        zg_sse_init(&p, 1024);
        const char *in = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
        is_int(zg_sse_feed(&p, in, strlen(in), collect, &s), 7, "the callback's return value");
        is_str(zg_buf_cstr(&s.sig), "|1;|2;", "no event after the stop");
        zg_sse_free(&p);
        sink_free(&s);
    }
    /* an empty feed does nothing */
    {
        sink s;
        sink_init(&s);
        zg_sse p;
        zg_sse_init(&p, 1024);
        is_int(zg_sse_feed(&p, "", 0, collect, &s), 0, "empty feed");
        is_int(s.all, 0, "no event from nothing");
        const char *raw;
        is_int(zg_sse_pending(&p, &raw), 0, "nothing pending");
        zg_sse_free(&p);
        sink_free(&s);
    }
    return tap_done();
}
