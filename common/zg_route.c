#include "zg_route.h"
#include "zg_err.h"
#include <string.h>

static int match(const char *pat, const char *path, const char **rest)
{
    size_t n = strlen(pat);
    if (n && pat[n - 1] == '*') {
        if (strncmp(pat, path, n - 1) != 0 || path[n - 1] == '\0')
            return 0;
        *rest = path + n - 1;
        return 1;
    }
    *rest = NULL;
    return strcmp(pat, path) == 0;
}

zg_proto zg_route_proto_for(const char *path)
{
    if (strncmp(path, "/api/v1/gemini", 14) == 0) {
        if (strstr(path, "/openai/") || strstr(path, "/chat/completions"))
            return ZG_PROTO_OPENAI;
        return ZG_PROTO_GEMINI;
    }
    if (strncmp(path, "/api/v1/codex", 13) == 0 || strncmp(path, "/api/v1/responses", 17) == 0 ||
        strncmp(path, "/api/v1/images", 14) == 0)
        return ZG_PROTO_OPENAI;
    return ZG_PROTO_ANTHROPIC;
}

int zg_dispatch(zg_req *r, const zg_route *routes, size_t n)
{
    char allow[128] = "";
    const char *rest;
    for (size_t i = 0; i < n; i++) {
        if (!match(routes[i].path, r->path, &rest))
            continue;
        if (routes[i].method && strcmp(routes[i].method, r->method) != 0) {
            if (!strstr(allow, routes[i].method) && strlen(allow) + strlen(routes[i].method) + 3 < sizeof allow) {
                if (*allow)
                    strcat(allow, ", ");
                strcat(allow, routes[i].method);
            }
            if (routes[i].proto >= 0)
                r->proto = (zg_proto)routes[i].proto;
            continue;
        }
        if (routes[i].proto >= 0)
            r->proto = (zg_proto)routes[i].proto;
        r->route_rest = rest;
        return routes[i].handler(r);
    }
    if (*allow) {
        zg_resp_header(r, "Allow", allow);
        return zg_err_reply(r, ZG_ERR_METHOD, "Method %s is not allowed on %s (allowed: %s)", r->method, r->path,
                            allow);
    }
    return zg_err_reply(r, ZG_ERR_NOT_FOUND, "No such endpoint: %s %s", r->method, r->path);
}

