#include "zg_fcgi.h"
#include <errno.h>
#include <sys/socket.h>

enum { FCGI_VERSION_1 = 1, FCGI_END_REQUEST = 3, FCGI_STDOUT = 6, FCGI_MAX_CONTENT = 65535 };

static void header(unsigned char h[8], int type, int id, size_t len)
{
    h[0] = FCGI_VERSION_1;
    h[1] = (unsigned char)type;
    h[2] = (unsigned char)((id >> 8) & 0xff);
    h[3] = (unsigned char)(id & 0xff);
    h[4] = (unsigned char)((len >> 8) & 0xff);
    h[5] = (unsigned char)(len & 0xff);
    h[6] = 0; /* no padding */
    h[7] = 0;
}

int zg_fcgi_stdout(zg_buf *out, int id, const void *p, size_t n)
{
    size_t keep = out->len;
    const unsigned char *s = p;
    while (n > 0) {
        size_t k = n > FCGI_MAX_CONTENT ? FCGI_MAX_CONTENT : n;
        unsigned char h[8];
        header(h, FCGI_STDOUT, id, k);
        int rc = zg_buf_append(out, h, sizeof h);
        if (rc == ZG_OK)
            rc = zg_buf_append(out, s, k);
        if (rc != ZG_OK) {
            zg_buf_truncate(out, keep);
            return rc;
        }
        s += k;
        n -= k;
    }
    return ZG_OK;
}

int zg_fcgi_end(zg_buf *out, int id)
{
    unsigned char rec[24];
    header(rec, FCGI_STDOUT, id, 0);
    header(rec + 8, FCGI_END_REQUEST, id, 8);
    for (int i = 16; i < 24; i++)
        rec[i] = 0; /* appStatus 0 (4 bytes), protocolStatus FCGI_REQUEST_COMPLETE (0), reserved */
    return zg_buf_append(out, rec, sizeof rec);
}

bool zg_fcgi_client_left(int fd)
{
    unsigned char hdr[8];
    ssize_t k = recv(fd, hdr, sizeof hdr, MSG_PEEK | MSG_DONTWAIT);
    if (k == 0)
        return true;
    if (k < 0)
        return !(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
    return k >= 2 && hdr[0] == 1 && hdr[1] == 2; /* version 1, type 2: FCGI_ABORT_REQUEST */
}

int zg_fcgi_send(int fd, zg_buf *q, size_t *off)
{
    while (*off < q->len) {
        ssize_t k = send(fd, q->data + *off, q->len - *off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k > 0) {
            *off += (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return -1;
    }
    zg_buf_reset(q);
    *off = 0;
    return 0;
}
