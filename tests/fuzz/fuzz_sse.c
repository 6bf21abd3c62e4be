/* libFuzzer harness: the SSE parser fed the input in pieces whose sizes the input chooses, then the
 * same bytes in one piece; both must yield the same events, each event's raw bytes must be a
 * contiguous slice of the input, and the events plus the pending tail must cover the input. */
#include "zg_sse.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct seen {
    const uint8_t *in;
    size_t in_len;
    size_t raw_total;
    size_t count;
    unsigned long hash;
    int toobig;
};

static int on_event(void *ctx, const char *ev, size_t elen, const char *data, size_t dlen, const char *raw,
                    size_t rawlen)
{
    struct seen *s = ctx;
    if (rawlen == 0 || (elen && !memchr(ev, ev[elen - 1], elen)) || (dlen && !memchr(data, data[dlen - 1], dlen)))
        abort(); /* (touching every byte of the fields lets ASan check their bounds) */
    /* the raw bytes are exactly the next bytes of the input */
    if (s->raw_total + rawlen > s->in_len || memcmp(s->in + s->raw_total, raw, rawlen) != 0)
        abort();
    s->raw_total += rawlen;
    if (elen == 0 && dlen == 0)
        return 0; /* comments, and the late LF of a CRLF cut between two reads, carry no event */
    s->count++;
    for (size_t i = 0; i < elen; i++)
        s->hash = s->hash * 31 + (unsigned char)ev[i];
    for (size_t i = 0; i < dlen; i++)
        s->hash = s->hash * 33 + (unsigned char)data[i];
    return 0;
}

static void run(const uint8_t *data, size_t size, const uint8_t *cuts, size_t ncuts, struct seen *s)
{
    zg_sse p;
    zg_sse_init(&p, 4096);
    memset(s, 0, sizeof *s);
    s->in = data;
    s->in_len = size;
    size_t off = 0, k = 0;
    while (off < size) {
        size_t n = ncuts ? (size_t)cuts[k++ % ncuts] % 97 + 1 : size;
        if (n > size - off)
            n = size - off;
        int rc = zg_sse_feed(&p, (const char *)data + off, n, on_event, s);
        if (rc == ZG_E_TOOBIG) {
            /* what the relay does: pass the oversized event through unparsed and start afresh */
            const char *raw;
            size_t len = zg_sse_pending(&p, &raw);
            if (s->raw_total + len > size || memcmp(data + s->raw_total, raw, len) != 0)
                abort();
            s->raw_total += len;
            s->toobig = 1;
            zg_buf_reset(&p.buf);
            p.scan = p.start = 0;
        } else if (rc != 0) {
            abort();
        }
        off += n;
    }
    const char *raw;
    size_t tail = zg_sse_pending(&p, &raw);
    if (s->raw_total + tail != size)
        abort();
    zg_sse_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t ncuts = data[0] % 16;
    if (size < 1 + ncuts)
        return 0;
    const uint8_t *cuts = data + 1;
    data += 1 + ncuts;
    size -= 1 + ncuts;
    struct seen a, b;
    run(data, size, cuts, ncuts, &a);
    run(data, size, NULL, 0, &b);
    /* how the bytes were cut must not matter (an oversized event is cut where the cap is hit) */
    if (!a.toobig && !b.toobig && (a.count != b.count || a.hash != b.hash))
        abort();
    return 0;
}
