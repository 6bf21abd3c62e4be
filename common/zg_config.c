#include "zg_config.h"
#include "zg_buf.h"
#include "zg_log.h"
#include "zg_num.h"
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef ZG_LOCALSTATEDIR
#define ZG_LOCALSTATEDIR "/usr/local/var"
#endif
#ifndef ZG_SYSCONFDIR
#define ZG_SYSCONFDIR "/usr/local/etc"
#endif

#define CONFIG_MAX_BYTES (1 << 20)
#define CONFIG_MAX_ENTRIES 512

static const char *const prov_names[ZG_PROV_COUNT] = {
    "anthropic", "openai", "gemini", "deepseek", "moonshot", "zhipu",
};

struct zg_entry {
    char *section;
    char *key;
    char *value;
};

struct zg_config {
    struct zg_entry e[CONFIG_MAX_ENTRIES];
    int n;
};

const char *zg_provider_name(zg_provider p)
{
    return (unsigned)p < ZG_PROV_COUNT ? prov_names[p] : NULL;
}

int zg_provider_parse(const char *name)
{
    for (int i = 0; i < ZG_PROV_COUNT; i++)
        if (strcmp(name, prov_names[i]) == 0)
            return i;
    return -1;
}

static char *trim(char *s, char *end)
{
    while (s < end && isspace((unsigned char)*s))
        s++;
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    *end = '\0';
    return s;
}

static int bad(char *err, size_t errlen, const char *name, int line, const char *why)
{
    snprintf(err, errlen, "%s:%d: %s", name, line, why);
    return -1;
}

void zg_config_free(zg_config *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++) {
        free(c->e[i].section);
        free(c->e[i].key);
        free(c->e[i].value);
    }
    free(c);
}

zg_config *zg_config_parse(const char *text, size_t len, const char *name, char *err, size_t errlen)
{
    zg_config *c = calloc(1, sizeof *c);
    char *copy = malloc(len + 1);
    if (!c || !copy) {
        free(c);
        free(copy);
        snprintf(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        /* the text after it would be silently ignored */
        int at = 1;
        for (const char *q = text; q < nul; q++)
            at += *q == '\n';
        bad(err, errlen, name, at, "NUL byte");
        free(copy);
        free(c);
        return NULL;
    }
    char section[64] = "";
    int line = 0;
    char *p = copy;
    int rc = 0;
    while (*p && rc == 0) {
        line++;
        char *nl = strchr(p, '\n');
        char *end = nl ? nl : p + strlen(p);
        char *next = nl ? nl + 1 : end;
        char *s = trim(p, end);
        p = next;
        if (*s == '\0' || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close || close[1] != '\0') {
                rc = bad(err, errlen, name, line, "malformed section header");
                break;
            }
            char *sec = trim(s + 1, close);
            if (!*sec || strlen(sec) >= sizeof section) {
                rc = bad(err, errlen, name, line, "empty or overlong section name");
                break;
            }
            memcpy(section, sec, strlen(sec) + 1);
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = bad(err, errlen, name, line, "expected 'key = value'");
            break;
        }
        if (!section[0]) {
            rc = bad(err, errlen, name, line, "key outside of a [section]");
            break;
        }
        char *key = trim(s, eq);
        char *val = trim(eq + 1, eq + 1 + strlen(eq + 1));
        if (!*key) {
            rc = bad(err, errlen, name, line, "empty key");
            break;
        }
        for (char *k = key; *k; k++)
            if (!isalnum((unsigned char)*k) && *k != '_' && *k != '.' && *k != '-') {
                rc = bad(err, errlen, name, line, "invalid character in key");
                break;
            }
        if (rc)
            break;
        /* strip one pair of surrounding double quotes */
        size_t vl = strlen(val);
        if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
            val[vl - 1] = '\0';
            val++;
        }
        int slot = -1;
        for (int i = 0; i < c->n; i++)
            if (strcmp(c->e[i].section, section) == 0 && strcmp(c->e[i].key, key) == 0)
                slot = i;
        if (slot >= 0) {
            rc = bad(err, errlen, name, line, "duplicate key");
            break;
        }
        if (c->n == CONFIG_MAX_ENTRIES) {
            rc = bad(err, errlen, name, line, "too many entries");
            break;
        }
        struct zg_entry *e = &c->e[c->n];
        e->section = strdup(section);
        e->key = strdup(key);
        e->value = strdup(val);
        c->n++;
        if (!e->section || !e->key || !e->value)
            rc = bad(err, errlen, name, line, "out of memory");
    }
    free(copy);
    if (rc) {
        zg_config_free(c);
        return NULL;
    }
    return c;
}

zg_config *zg_config_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    zg_buf b;
    zg_buf_init(&b, CONFIG_MAX_BYTES);
    char chunk[4096];
    size_t n;
    int rc = ZG_OK;
    while (rc == ZG_OK && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = zg_buf_append(&b, chunk, n);
    int ioerr = ferror(f);
    fclose(f);
    if (rc != ZG_OK || ioerr) {
        snprintf(err, errlen, "%s: %s", path, rc == ZG_E_TOOBIG ? "file too large" : "read error");
        zg_buf_free(&b);
        return NULL;
    }
    zg_config *c = zg_config_parse(zg_buf_cstr(&b), b.len, path, err, errlen);
    zg_buf_free(&b);
    return c;
}

const char *zg_config_get(const zg_config *c, const char *section, const char *key, const char *def)
{
    if (c)
        for (int i = 0; i < c->n; i++)
            if (strcmp(c->e[i].section, section) == 0 && strcmp(c->e[i].key, key) == 0)
                return c->e[i].value;
    return def;
}

/* "<directory of the running executable>/zenn.conf" into out; -1 if the executable is unknown. */
static int beside_exe_path(char *out, size_t cap)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    int w = snprintf(out, cap, "%s/zenn.conf", exe);
    return w > 0 && (size_t)w < cap ? 0 : -1;
}

const char *zg_config_default_path(void)
{
    const char *env = getenv("ZENN_CONFIG");
    if (env && *env)
        return env;
    /* Shared hosting: a program started by the host's web server gets neither --config nor
     * ZENN_CONFIG, so a zenn.conf in the program's own directory is used when it exists. */
    static char beside[PATH_MAX];
    if (beside_exe_path(beside, sizeof beside) == 0 && access(beside, F_OK) == 0)
        return beside;
    return ZG_SYSCONFDIR "/zenn-gateway/zenn.conf";
}

static int set_str(char *dst, size_t cap, const char *v, const char *what, char *err, size_t errlen)
{
    size_t n = strlen(v);
    if (n >= cap) {
        snprintf(err, errlen, "%s: value too long (max %zu)", what, cap - 1);
        return -1;
    }
    memcpy(dst, v, n + 1);
    return 0;
}

int zg_config_str(const zg_config *c, const char *sec, const char *key, char *dst, size_t cap, char *err,
                   size_t errlen)
{
    const char *v = zg_config_get(c, sec, key, NULL);
    if (!v)
        return 0;
    char what[160];
    snprintf(what, sizeof what, "[%s] %s", sec, key);
    return set_str(dst, cap, v, what, err, errlen);
}

int zg_config_int(const zg_config *c, const char *sec, const char *key, int64_t min, int64_t max,
                   int64_t *dst, char *err, size_t errlen)
{
    const char *v = zg_config_get(c, sec, key, NULL);
    if (!v)
        return 0;
    if (zg_parse_i64z(v, min, max, dst) != 0) {
        snprintf(err, errlen, "[%s] %s: expected an integer from %lld to %lld, got '%s'", sec, key,
                 (long long)min, (long long)max, v);
        return -1;
    }
    return 0;
}

#define GET_INT(sec, key, min, max, field)                                                                \
    do {                                                                                                  \
        int64_t v_ = (field);                                                                             \
        if (zg_config_int(c, sec, key, min, max, &v_, err, errlen))                                              \
            return -1;                                                                                    \
        (field) = v_;                                                                                     \
    } while (0)

/* dst = base without the tail `strip` (when it ends with it) + `add`; "" when it does not fit. */
static void derive_root(char *dst, size_t cap, const char *base, const char *strip, const char *add)
{
    size_t n = strlen(base), k = strlen(strip);
    if (k && n >= k && strcmp(base + n - k, strip) == 0)
        n -= k;
    int w = snprintf(dst, cap, "%.*s%s", (int)n, base, add);
    if (w < 0 || (size_t)w >= cap)
        dst[0] = '\0';
}

void zg_config_trim_slashes(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '/')
        s[--n] = '\0';
}

int zg_config_env_str(const char *name, char *dst, size_t cap, char *err, size_t errlen)
{
    const char *v = getenv(name);
    if (!v)
        return 0;
    return set_str(dst, cap, v, name, err, errlen);
}

/* [server] node_name (ZENN_NODE_NAME wins): this web node's name in lease owners, concurrency
 * slots and image job claims; by default the host name with the separators ':', '/' and ' '
 * replaced. Two nodes on one machine need different names. */
static char node_name_now[40] = "localhost";

static int node_name_from(zg_settings *s, const zg_config *c, char *err, size_t errlen)
{
    const char *v = getenv("ZENN_NODE_NAME");
    if (!v || !*v)
        v = zg_config_get(c, "server", "node_name", "");
    if (*v) {
        size_t n = strlen(v);
        bool ok = n < sizeof s->node_name;
        for (size_t i = 0; ok && i < n; i++)
            ok = isalnum((unsigned char)v[i]) || v[i] == '.' || v[i] == '-' || v[i] == '_';
        if (!ok) {
            snprintf(err, errlen, "[server] node_name: expected 1 to %zu of A-Z a-z 0-9 . - _, got '%.60s'",
                     sizeof s->node_name - 1, v);
            return -1;
        }
        memcpy(s->node_name, v, n + 1);
    } else {
        if (gethostname(s->node_name, sizeof s->node_name) != 0 || !s->node_name[0])
            snprintf(s->node_name, sizeof s->node_name, "localhost");
        s->node_name[sizeof s->node_name - 1] = '\0';
        for (char *p = s->node_name; *p; p++)
            if (*p == ':' || *p == '/' || *p == ' ')
                *p = '_';
    }
    memcpy(node_name_now, s->node_name, sizeof node_name_now);
    return 0;
}

const char *zg_node_name(void)
{
    return node_name_now;
}

int zg_settings_from(zg_settings *s, const zg_config *c, char *err, size_t errlen)
{
    static const char *const def_base[ZG_PROV_COUNT] = {
        "https://api.anthropic.com",           "https://api.openai.com/v1",
        "https://generativelanguage.googleapis.com", "https://api.deepseek.com",
        "https://api.moonshot.ai/v1",          "https://open.bigmodel.cn/api/paas/v4",
    };
    /* the secondary roots are derived from base_url (the defaults follow from the default roots), so
     * an operator who points a provider elsewhere never has part of its traffic go to the public host:
     * strip this tail from base_url, then append that one */
    static const char *const anth_strip[ZG_PROV_COUNT] = {NULL, NULL, NULL, "", "/v1", "/paas/v4"};
    static const char *const oai_strip[ZG_PROV_COUNT] = {NULL, NULL, "", NULL, NULL, NULL};
    char keep_path[sizeof s->path];
    memcpy(keep_path, s->path, sizeof keep_path);
    memset(s, 0, sizeof *s);
    memcpy(s->path, keep_path, sizeof keep_path);
    strcpy(s->db_host, "localhost");
    strcpy(s->db_user, "zenn");
    strcpy(s->db_name, "zenn");
    s->db_port = 3306;
    s->db_timeout = 5;
    s->db_connections = 8;
    s->threads = 8192;
    s->idle_threads = 8;
    s->stream_loop = 1;
    s->max_body_bytes = 32 << 20;
    s->log_level = ZG_LOG_INFO;
    s->connect_timeout = 10;
    s->idle_timeout = 300;
    s->total_timeout = 3600;
    s->ping_interval = 5;
    s->image_timeout = 600;
    s->image_workers = 2;
    s->image_keep_hours = 24;
    s->image_reclaim_s = 30;
    s->hold_output_cap = 4096;
    s->hold_input_cap = 32768;
    s->reap_after = 0; /* derived below */
    s->billing_mode = ZG_BILLING_LEASE;
    s->lease_credits = 5000000;
    s->lease_slots = 64;
    s->lease_idle_ms = 2000;
    s->flush_ms = 2;
    s->lost_host_after = 300;
    s->rl_messages = 1000;
    s->signup = ZG_SIGNUP_OPEN;
    s->session_idle_s = 7 * 86400;
    s->usage_keep_days = 400;
    s->session_max_s = 30 * 86400;
    s->login_max_failures = 10;
    s->login_window_s = 900;
    s->rl_codex = 1000;
    s->rl_images = 500;
    s->rl_count_tokens = 10000;
    s->concurrent_per_user = 32;
    s->max_attempts = 3;
    s->failover_budget_ms = 30000;
    s->head_timeout_ms = 15000;
    s->breaker_failures = 3;
    s->breaker_window_s = 30;
    s->cooldown_s = 30;
    s->sticky_s = 300;
    s->queue_timeout_s = 30;
    for (int i = 0; i < ZG_PROV_COUNT; i++) {
        strcpy(s->prov[i].base_url, def_base[i]);
    }

    if (zg_config_str(c, "database", "host", s->db_host, sizeof s->db_host, err, errlen) ||
        zg_config_str(c, "database", "socket", s->db_socket, sizeof s->db_socket, err, errlen) ||
        zg_config_str(c, "database", "user", s->db_user, sizeof s->db_user, err, errlen) ||
        zg_config_str(c, "database", "password", s->db_password, sizeof s->db_password, err, errlen) ||
        zg_config_str(c, "database", "name", s->db_name, sizeof s->db_name, err, errlen))
        return -1;
    GET_INT("database", "port", 1, 65535, s->db_port);
    const char *hosts = zg_config_get(c, "database", "hosts", NULL);
    if (getenv("ZENN_DB_HOSTS"))
        hosts = getenv("ZENN_DB_HOSTS");
    if (hosts && zg_config_db_hosts(s, hosts, err, errlen) != 0)
        return -1;
    GET_INT("database", "timeout", 1, 3600, s->db_timeout);
    GET_INT("database", "connections", 1, 256, s->db_connections);
    GET_INT("server", "threads", 1, 65536, s->threads);
    GET_INT("server", "idle_threads", 1, 1024, s->idle_threads);
    GET_INT("server", "stream_loop", 0, 1, s->stream_loop);
    if (node_name_from(s, c, err, errlen) != 0)
        return -1;
    GET_INT("server", "cpu_slots", -1, 4096, s->cpu_slots);
    /* the JSON parser takes lengths as int: at most 1 GiB */
    GET_INT("server", "max_body_bytes", 1024, (int64_t)1 << 30, s->max_body_bytes);
    const char *lvl = zg_config_get(c, "server", "log_level", NULL);
    if (lvl && (s->log_level = zg_log_level_parse(lvl)) < 0) {
        snprintf(err, errlen, "[server] log_level: expected error|warn|info|debug, got '%s'", lvl);
        return -1;
    }
    GET_INT("upstream", "connect_timeout", 1, 600, s->connect_timeout);
    GET_INT("upstream", "idle_timeout", 1, 86400, s->idle_timeout);
    GET_INT("upstream", "total_timeout", 1, 86400, s->total_timeout);
    GET_INT("upstream", "ping_interval", 1, 3600, s->ping_interval);
    GET_INT("upstream", "image_timeout", 1, 86400, s->image_timeout);
    GET_INT("images", "workers", 0, 64, s->image_workers);
    GET_INT("images", "keep_hours", 1, 8760, s->image_keep_hours);
    GET_INT("images", "reclaim_after", 3, 3600, s->image_reclaim_s);
    GET_INT("billing", "hold_output_cap", 0, 10000000, s->hold_output_cap);
    GET_INT("billing", "hold_input_cap", 0, 100000000, s->hold_input_cap);
    GET_INT("billing", "reap_after", 60, 7 * 86400, s->reap_after);
    if (zg_config_str(c, "billing", "spool_path", s->spool_path, sizeof s->spool_path, err, errlen))
        return -1;
    GET_INT("billing", "lease_credits", 1, (int64_t)1 << 50, s->lease_credits);
    GET_INT("billing", "lease_slots", 1, 1000000, s->lease_slots);
    GET_INT("billing", "lease_idle_ms", 10, 3600000, s->lease_idle_ms);
    GET_INT("billing", "flush_ms", 1, 10000, s->flush_ms);
    GET_INT("billing", "lost_host_after", 6, 86400, s->lost_host_after);
    const char *mode = getenv("ZENN_BILLING_MODE");
    if (!mode || !*mode)
        mode = zg_config_get(c, "billing", "mode", "lease");
    if (strcmp(mode, "lease") == 0) {
        s->billing_mode = ZG_BILLING_LEASE;
    } else if (strcmp(mode, "strict") == 0) {
        s->billing_mode = ZG_BILLING_STRICT;
    } else {
        snprintf(err, errlen, "[billing] mode: expected lease or strict, got '%.40s'", mode);
        return -1;
    }
    GET_INT("limits", "messages_per_hour", 1, 100000000, s->rl_messages);
    GET_INT("limits", "codex_per_hour", 1, 100000000, s->rl_codex);
    GET_INT("limits", "images_per_hour", 1, 100000000, s->rl_images);
    GET_INT("limits", "count_tokens_per_hour", 1, 100000000, s->rl_count_tokens);
    GET_INT("limits", "concurrent_per_user", 1, 1000000, s->concurrent_per_user);
    GET_INT("routing", "max_attempts", 1, 10, s->max_attempts);
    GET_INT("routing", "failover_budget_ms", 0, 3600000, s->failover_budget_ms);
    GET_INT("routing", "head_timeout_ms", 100, 3600000, s->head_timeout_ms);
    GET_INT("routing", "breaker_failures", 1, 1000, s->breaker_failures);
    GET_INT("routing", "breaker_window_s", 1, 86400, s->breaker_window_s);
    GET_INT("routing", "cooldown_s", 1, 86400, s->cooldown_s);
    GET_INT("routing", "sticky_s", 0, 86400, s->sticky_s);
    GET_INT("routing", "queue_timeout", 0, 3600, s->queue_timeout_s);
    const char *su = zg_config_get(c, "portal", "signup", "open");
    if (strcmp(su, "open") == 0) {
        s->signup = ZG_SIGNUP_OPEN;
    } else if (strcmp(su, "invite") == 0) {
        s->signup = ZG_SIGNUP_INVITE;
    } else if (strcmp(su, "closed") == 0) {
        s->signup = ZG_SIGNUP_CLOSED;
    } else {
        snprintf(err, errlen, "[portal] signup: expected open, invite or closed, got '%.40s'", su);
        return -1;
    }
    int idle_days = s->session_idle_s / 86400, max_days = s->session_max_s / 86400;
    int window_min = s->login_window_s / 60;
    GET_INT("portal", "session_idle_days", 1, 365, idle_days);
    GET_INT("portal", "session_max_days", 1, 3650, max_days);
    GET_INT("portal", "login_max_failures", 1, 1000, s->login_max_failures);
    GET_INT("portal", "login_window_minutes", 1, 1440, window_min);
    if (zg_config_str(c, "portal", "url", s->portal_url, sizeof s->portal_url, err, errlen))
        return -1;
    zg_config_trim_slashes(s->portal_url);
    s->session_idle_s = idle_days * 86400;
    s->session_max_s = max_days * 86400;
    s->login_window_s = window_min * 60;
    GET_INT("usage", "keep_days", 1, 36500, s->usage_keep_days);
    if (zg_settings_pay(s, c, err, errlen) != 0)
        return -1;

    for (int i = 0; i < ZG_PROV_COUNT; i++) {
        char sec[48];
        snprintf(sec, sizeof sec, "provider.%s", prov_names[i]);
        zg_provider_conf *p = &s->prov[i];
        if (zg_config_str(c, sec, "base_url", p->base_url, sizeof p->base_url, err, errlen) ||
            zg_config_str(c, sec, "anthropic_base_url", p->anthropic_base_url, sizeof p->anthropic_base_url, err,
                    errlen) ||
            zg_config_str(c, sec, "openai_base_url", p->openai_base_url, sizeof p->openai_base_url, err, errlen) ||
            zg_config_str(c, sec, "api_key", p->api_key, sizeof p->api_key, err, errlen))
            return -1;
        char up[16], name[64];
        size_t k;
        for (k = 0; prov_names[i][k]; k++)
            up[k] = (char)toupper((unsigned char)prov_names[i][k]);
        up[k] = '\0';
        snprintf(name, sizeof name, "ZENN_%s_BASE_URL", up);
        if (zg_config_env_str(name, p->base_url, sizeof p->base_url, err, errlen))
            return -1;
        snprintf(name, sizeof name, "ZENN_%s_ANTHROPIC_BASE_URL", up);
        if (zg_config_env_str(name, p->anthropic_base_url, sizeof p->anthropic_base_url, err, errlen))
            return -1;
        snprintf(name, sizeof name, "ZENN_%s_OPENAI_BASE_URL", up);
        if (zg_config_env_str(name, p->openai_base_url, sizeof p->openai_base_url, err, errlen))
            return -1;
        snprintf(name, sizeof name, "ZENN_%s_API_KEY", up);
        if (zg_config_env_str(name, p->api_key, sizeof p->api_key, err, errlen))
            return -1;
        /* strip trailing slashes so paths can be appended */
        zg_config_trim_slashes(p->base_url);
        zg_config_trim_slashes(p->anthropic_base_url);
        zg_config_trim_slashes(p->openai_base_url);
        snprintf(name, sizeof name, "ZENN_%s_ANTHROPIC_BASE_URL", up);
        if (anth_strip[i] && !zg_config_get(c, sec, "anthropic_base_url", NULL) && !getenv(name))
            derive_root(p->anthropic_base_url, sizeof p->anthropic_base_url, p->base_url, anth_strip[i], "/anthropic");
        snprintf(name, sizeof name, "ZENN_%s_OPENAI_BASE_URL", up);
        if (oai_strip[i] && !zg_config_get(c, sec, "openai_base_url", NULL) && !getenv(name))
            derive_root(p->openai_base_url, sizeof p->openai_base_url, p->base_url, oai_strip[i], "/v1beta/openai");
    }
    if (zg_config_env_str("ZENN_DB_SOCKET", s->db_socket, sizeof s->db_socket, err, errlen) ||
        zg_config_env_str("ZENN_DB_HOST", s->db_host, sizeof s->db_host, err, errlen) ||
        zg_config_env_str("ZENN_DB_USER", s->db_user, sizeof s->db_user, err, errlen) ||
        zg_config_env_str("ZENN_DB_PASSWORD", s->db_password, sizeof s->db_password, err, errlen) ||
        zg_config_env_str("ZENN_DB_NAME", s->db_name, sizeof s->db_name, err, errlen))
        return -1;
    if (zg_config_env_str("ZENN_SPOOL_PATH", s->spool_path, sizeof s->spool_path, err, errlen))
        return -1;
    if (!s->spool_path[0])
        snprintf(s->spool_path, sizeof s->spool_path, "%s", ZG_LOCALSTATEDIR "/lib/zenn-gateway/settle.spool");
    /* a request may run for the longer of the two timeouts: never reap one that may still run */
    int longest = s->total_timeout > s->image_timeout ? s->total_timeout : s->image_timeout;
    if (s->reap_after == 0)
        s->reap_after = longest + 300;
    if (s->reap_after < longest + 60) {
        zg_warn("[billing] reap_after %d is shorter than the longest request (%d s): using %d", s->reap_after, longest,
                longest + 60);
        s->reap_after = longest + 60;
    }
    return 0;
}

int zg_settings_load(zg_settings *s, const char *path, char *err, size_t errlen)
{
    int explicit_path = path != NULL || (getenv("ZENN_CONFIG") && *getenv("ZENN_CONFIG"));
    if (!path)
        path = zg_config_default_path();
    snprintf(s->path, sizeof s->path, "%s", path);
    zg_config *c = NULL;
    struct stat st;
    if (stat(path, &st) == 0 || explicit_path) {
        c = zg_config_load(path, err, errlen);
        if (!c)
            return -1;
        int secret = *zg_config_get(c, "database", "password", "") != '\0';
        for (int i = 0; i < ZG_PROV_COUNT && !secret; i++) {
            char sec[48];
            snprintf(sec, sizeof sec, "provider.%s", prov_names[i]);
            const char *k = zg_config_get(c, sec, "api_key", "");
            secret = *k != '\0';
        }
        secret = secret || *zg_config_get(c, "stripe", "secret_key", "") || *zg_config_get(c, "stripe", "webhook_secret", "");
        if (secret && (st.st_mode & S_IROTH))
            zg_warn("config %s holds secrets and is world-readable: chmod o-r it", path);
    }
    int rc = zg_settings_from(s, c, err, errlen);
    zg_config_free(c);
    return rc;
}
