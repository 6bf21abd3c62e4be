/* FastCGI records written without libfcgi (common/zg_fcgi.c): the framing of a response's body and
 * end, the non-blocking writer, and how a closed or aborted connection is told from a live one. */
#include "tap.h"
#include "../../common/zg_fcgi.h"
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* Walk the records in b: count them, check each header, join the STDOUT content into out. */
static int parse(const zg_buf *b, int id, zg_buf *out, int *ends, size_t *biggest)
{
    size_t i = 0;
    int n = 0;
    *ends = 0;
    *biggest = 0;
    const unsigned char *p = (const unsigned char *)b->data;
    while (i + 8 <= b->len) {
        size_t len = (size_t)p[i + 4] << 8 | p[i + 5];
        int rid = p[i + 2] << 8 | p[i + 3];
        if (p[i] != 1 || rid != id || p[i + 6] != 0 || i + 8 + len > b->len)
            return -1;
        if (p[i + 1] == 6)
            zg_buf_append(out, p + i + 8, len);
        else if (p[i + 1] == 3 && len == 8)
            (*ends)++;
        else
            return -1;
        if (len > *biggest)
            *biggest = len;
        i += 8 + len;
        n++;
    }
    return i == b->len ? n : -1;
}

int main(void)
{
    zg_buf b, out;
    zg_buf_init(&b, 1u << 20);
    zg_buf_init(&out, 1u << 20);
    int ends;
    size_t biggest;

    is_int(zg_fcgi_stdout(&b, 7, "hello", 5), ZG_OK, "a short body");
    is_int(parse(&b, 7, &out, &ends, &biggest), 1, "one record");
    is_str(out.data, "hello", "with the bytes");
    is_int(zg_fcgi_stdout(&b, 7, "", 0), ZG_OK, "nothing to write");
    is_int(b.len, 13, "adds no record (an empty one would end the body)");

    char *big = malloc(200000);
    for (int i = 0; i < 200000; i++)
        big[i] = (char)('a' + i % 26);
    zg_buf_reset(&b);
    zg_buf_reset(&out);
    is_int(zg_fcgi_stdout(&b, 300, big, 200000), ZG_OK, "200,000 bytes");
    is_int(parse(&b, 300, &out, &ends, &biggest), 4, "in four records");
    is_int(biggest, 65535, "of at most 65,535 bytes");
    ok(out.len == 200000 && memcmp(out.data, big, 200000) == 0, "joined back unchanged (request id 300: two bytes)");

    zg_buf_reset(&out);
    is_int(zg_fcgi_end(&b, 300), ZG_OK, "the end");
    is_int(parse(&b, 300, &out, &ends, &biggest), 6, "an empty STDOUT record and END_REQUEST");
    is_int(ends, 1, "one END_REQUEST");
    ok(memcmp(b.data + b.len - 24, "\1\6\1\54\0\0\0\0\1\3\1\54\0\10\0\0\0\0\0\0\0\0\0\0", 24) == 0,
       "byte for byte: status 0, FCGI_REQUEST_COMPLETE");

    zg_buf small;
    zg_buf_init(&small, 100);
    zg_fcgi_stdout(&small, 1, "abc", 3);
    is_int(zg_fcgi_stdout(&small, 1, big, 95), ZG_E_TOOBIG, "over the queue's cap: too large");
    is_int(small.len, 11, "and the queue keeps what it had");

    /* the writer: a full socket stops it without an error; it goes on where it stopped */
    int sv[2];
    ok(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    int sz = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    zg_buf q;
    zg_buf_init(&q, 1u << 20);
    zg_buf_append(&q, big, 200000);
    size_t off = 0;
    is_int(zg_fcgi_send(sv[0], &q, &off), 0, "a full socket is not an error");
    ok(off > 0 && off < 200000, "part written (%zu)", off);
    is_int(q.len, 200000, "the rest kept");
    zg_buf got;
    zg_buf_init(&got, 1u << 20);
    char tmp[65536];
    int rounds = 0;
    while (got.len < 200000 && rounds++ < 10000) {
        ssize_t k = recv(sv[1], tmp, sizeof tmp, MSG_DONTWAIT);
        if (k > 0)
            zg_buf_append(&got, tmp, (size_t)k);
        if (zg_fcgi_send(sv[0], &q, &off) != 0)
            break;
    }
    ok(got.len == 200000 && memcmp(got.data, big, 200000) == 0, "every byte arrives once, in order");
    is_int(q.len + off, 0, "the queue is emptied once written");

    /* a live connection, one that sent something else, an abort record, a closed one */
    ok(!zg_fcgi_client_left(sv[0]), "a quiet connection: the client is there");
    send(sv[1], "\1\5\0\1\0\0\0\0", 8, 0);
    ok(!zg_fcgi_client_left(sv[0]), "other data: still there");
    recv(sv[0], tmp, 8, 0);
    send(sv[1], "\1\2\0\1\0\0\0\0", 8, 0);
    ok(zg_fcgi_client_left(sv[0]), "FCGI_ABORT_REQUEST: gone");
    recv(sv[0], tmp, 8, 0);
    close(sv[1]);
    ok(zg_fcgi_client_left(sv[0]), "closed by the web server: gone");
    zg_buf_append(&q, "x", 1);
    is_int(zg_fcgi_send(sv[0], &q, &off), -1, "a write to it fails");
    close(sv[0]);

    zg_buf_free(&b);
    zg_buf_free(&out);
    zg_buf_free(&small);
    zg_buf_free(&q);
    zg_buf_free(&got);
    free(big);
    return tap_done();
}
