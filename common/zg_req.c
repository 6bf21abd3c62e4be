#include "zg_req.h"
#include "zg_auth.h"
#include "zg_config.h"
#include <ctype.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "zg_num.h"

void zg_request_id_new(char *out, size_t outlen)
{
    unsigned char rnd[12];
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
        /* fall back to time and address entropy; ids need uniqueness, not secrecy */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t a = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)(uintptr_t)out;
        for (size_t i = 0; i < sizeof rnd; i++, a = a * 6364136223846793005ULL + 1442695040888963407ULL)
            rnd[i] = (unsigned char)(a >> 56);
    }
    char id[4 + 24 + 1] = "req_";
    zg_auth_hex(rnd, sizeof rnd, id + 4);
    snprintf(out, outlen, "%s", id);
}

void zg_req_begin(zg_req *r, FCGX_Request *fcgx, const struct zg_settings *cfg, struct zg_db *db,
                  zg_proto proto)
{
    zg_buf body = r->body, headers = r->headers;
    memset(r, 0, sizeof *r);
    r->body = body;
    r->headers = headers;
    zg_buf_reset(&r->body);
    zg_buf_reset(&r->headers);
    r->body.cap = cfg ? (size_t)cfg->max_body_bytes : (size_t)32 << 20;
    r->headers.cap = 16384;
    r->fcgx = fcgx;
    r->cfg = cfg;
    r->db = db;
    r->proto = proto;
    r->status = 200;
    zg_request_id_new(r->request_id, sizeof r->request_id);
    r->method = zg_req_param(r, "REQUEST_METHOD");
    if (!r->method)
        r->method = "";
    const char *uri = zg_req_param(r, "REQUEST_URI");
    if (!uri)
        uri = "";
    const char *q = strchr(uri, '?');
    size_t plen = q ? (size_t)(q - uri) : strlen(uri);
    if (plen >= sizeof r->path)
        plen = sizeof r->path - 1; /* an overlong path cannot match any route: it 404s */
    memcpy(r->path, uri, plen);
    r->path[plen] = '\0';
    r->query = q ? q + 1 : "";
}

void zg_req_end(zg_req *r)
{
    /* keep allocations for the next request on this thread unless they grew large */
    if (r->body.alloc > (1u << 20))
        zg_buf_free(&r->body);
    r->fcgx = NULL;
}

static _Thread_local bool detached_here;

void zg_req_detach(zg_req *r, const zg_resp_sink *sink, void *ctx)
{
    FCGX_FreeStream(&r->fcgx->in);
    FCGX_FreeStream(&r->fcgx->out);
    FCGX_FreeStream(&r->fcgx->err);
    r->fcgx->ipcFd = -1; /* the connection belongs to the sink now */
    r->sink = sink;
    r->sink_ctx = ctx;
    detached_here = true;
}

bool zg_req_take_detached(void)
{
    bool d = detached_here;
    detached_here = false;
    return d;
}

void zg_req_release(zg_req *r)
{
    if (r->sink)
        r->sink->end(r->sink_ctx);
    if (r->fcgx) {
        FCGX_Free(r->fcgx, 0);
        free(r->fcgx);
    }
    zg_buf_free(&r->body);
    zg_buf_free(&r->headers);
    free(r);
}

const char *zg_req_param(const zg_req *r, const char *name)
{
    if (!r->fcgx)
        return getenv(name);
    return FCGX_GetParam(name, r->fcgx->envp);
}

const char *zg_req_header(const zg_req *r, const char *name)
{
    char env[128];
    size_t n = strlen(name);
    if (n + 6 > sizeof env)
        return NULL;
    size_t o = 0;
    if (strcasecmp(name, "content-type") != 0 && strcasecmp(name, "content-length") != 0) {
        memcpy(env, "HTTP_", 5);
        o = 5;
    }
    for (size_t i = 0; i < n; i++)
        env[o + i] = name[i] == '-' ? '_' : (char)toupper((unsigned char)name[i]);
    env[o + n] = '\0';
    return zg_req_param(r, env);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int zg_req_query_get(const zg_req *r, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    const char *p = r->query;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        const char *end = amp ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *kend = eq ? eq : end;
        if ((size_t)(kend - p) == nl && memcmp(p, name, nl) == 0) {
            size_t o = 0;
            const char *v = eq ? eq + 1 : end;
            while (v < end) {
                char c = *v;
                if (c == '+') {
                    c = ' ';
                    v++;
                } else if (c == '%' && end - v >= 3 && hexval(v[1]) >= 0 && hexval(v[2]) >= 0) {
                    c = (char)(hexval(v[1]) * 16 + hexval(v[2]));
                    v += 3;
                } else {
                    v++;
                }
                if (o + 1 >= outlen)
                    return ZG_E_TOOBIG;
                out[o++] = c;
            }
            if (outlen == 0)
                return ZG_E_TOOBIG;
            out[o] = '\0';
            return (int)o;
        }
        p = amp ? amp + 1 : NULL;
    }
    return -1;
}

bool zg_req_path_is(const zg_req *r, const char *p)
{
    return strcmp(r->path, p) == 0;
}

int zg_req_read_body(zg_req *r)
{
    if (r->body_read)
        return ZG_OK;
    r->body_read = true;
    int64_t clen = -1;
    const char *cl = zg_req_param(r, "CONTENT_LENGTH");
    if (cl && *cl && zg_parse_i64z(cl, 0, INT64_MAX, &clen) != 0)
        clen = -1;
    if (clen > (int64_t)r->body.cap) {
        /* drain so the web server sees a completed request, then refuse */
        char sink[16384];
        while (FCGX_GetStr(sink, sizeof sink, r->fcgx->in) > 0)
            ;
        return ZG_E_TOOBIG;
    }
    char chunk[16384];
    int rc = ZG_OK;
    for (;;) {
        int n = FCGX_GetStr(chunk, sizeof chunk, r->fcgx->in);
        if (n <= 0)
            break;
        if (rc == ZG_OK)
            rc = zg_buf_append(&r->body, chunk, (size_t)n);
    }
    if (rc != ZG_OK)
        return rc;
    if (FCGX_GetError(r->fcgx->in) != 0)
        return ZG_E_IO;
    if (clen >= 0 && (int64_t)r->body.len != clen)
        return ZG_E_IO;
    if (!r->body.data)
        zg_buf_append(&r->body, "", 0);
    return ZG_OK;
}
