/* zg_config: the [database] hosts list (see zg_config.h). */
#include "zg_config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int zg_config_db_addr(const char *entry, int def_port, char *host, size_t hostcap, int *port, char *sock,
                      size_t sockcap)
{
    host[0] = sock[0] = '\0';
    *port = def_port;
    size_t n = strlen(entry);
    if (!n)
        return -1;
    if (entry[0] == '/') {
        if (n >= sockcap)
            return -1;
        memcpy(sock, entry, n + 1);
        return 0;
    }
    const char *colon = strrchr(entry, ':');
    size_t hl = colon ? (size_t)(colon - entry) : n;
    if (!hl || hl >= hostcap || memchr(entry, ' ', hl))
        return -1;
    if (colon) {
        char *end;
        long v = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || *end || v < 1 || v > 65535)
            return -1;
        *port = (int)v;
    }
    if (entry[0] == '[') { /* [IPv6]:port */
        if (hl <= 2 || entry[hl - 1] != ']')
            return -1;
        entry++;
        hl -= 2;
    } else if (memchr(entry, ':', hl)) {
        return -1; /* an IPv6 address goes in brackets */
    }
    memcpy(host, entry, hl);
    host[hl] = '\0';
    return 0;
}

int zg_config_db_hosts(zg_settings *s, const char *list, char *err, size_t errlen)
{
    s->db_nhosts = 0;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        size_t n = (size_t)(e - p);
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        char entry[512], host[256], sock[512];
        int port;
        if (s->db_nhosts == ZG_DB_HOSTS_MAX || n >= sizeof entry) {
            snprintf(err, errlen, "[database] hosts: at most %d entries of at most %zu bytes", ZG_DB_HOSTS_MAX,
                     sizeof entry - 1);
            return -1;
        }
        memcpy(entry, p, n);
        entry[n] = '\0';
        if (zg_config_db_addr(entry, 3306, host, sizeof host, &port, sock, sizeof sock) != 0) {
            snprintf(err, errlen, "[database] hosts: '%s' is not host, host:port or a socket path", entry);
            return -1;
        }
        memcpy(s->db_hosts[s->db_nhosts++], entry, n + 1);
        p = e;
    }
    return 0;
}
