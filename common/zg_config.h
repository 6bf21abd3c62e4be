#ifndef ZG_CONFIG_H
#define ZG_CONFIG_H
#include <stddef.h>
#include <stdint.h>

/* Upstream providers. The order is the order of [provider.NAME] sections and of ZG_PROV_NAMES. */
typedef enum {
    ZG_PROV_ANTHROPIC = 0,
    ZG_PROV_OPENAI,
    ZG_PROV_GEMINI,
    ZG_PROV_DEEPSEEK,
    ZG_PROV_MOONSHOT,
    ZG_PROV_ZHIPU,
    ZG_PROV_COUNT
} zg_provider;

/* Lower-case provider name ("anthropic"), or NULL for an out-of-range value. */
const char *zg_provider_name(zg_provider p);
/* Provider by name; -1 if unknown. */
int zg_provider_parse(const char *name);

typedef struct zg_provider_conf {
    char base_url[512];           /* native API root, e.g. https://api.openai.com/v1 */
    char anthropic_base_url[512]; /* Anthropic-compatible root (DeepSeek, Moonshot, Zhipu); may be "" */
    char openai_base_url[512];    /* OpenAI-compatible root (Gemini); may be "" */
    char api_key[512];
} zg_provider_conf;

/* [billing] mode: strict writes every admission and settlement to the database before going on;
 * lease admits from per-process leases and writes settlements in batches (see zg_lease.h). */
enum { ZG_BILLING_STRICT = 0, ZG_BILLING_LEASE = 1 };

/* Every setting the programs use, after defaults, the file and the environment. */
typedef struct zg_settings {
    char path[512];
    /* [database] */
    char db_host[256], db_socket[512], db_user[128], db_password[256], db_name[128];
    int db_port;
    int db_timeout; /* seconds a statement may take to answer (read/write timeout) */
    /* [database] hosts: database servers tried in order on connect failure ("host:port" or a
     * socket path); when set, host, port and socket are not used */
#define ZG_DB_HOSTS_MAX 8
    char db_hosts[ZG_DB_HOSTS_MAX][512];
    int db_nhosts;
    int db_connections; /* the most connections a program process opens */
    /* [server] */
    int threads;        /* [server] threads: the most requests a process serves at once */
    int cpu_slots;      /* [server] cpu_slots: threads of a process computing at once (0: 2 x CPUs, -1: any) */
    int idle_threads;   /* [server] idle_threads: threads kept waiting for the next request */
    int stream_loop;    /* [server] stream_loop: 1 relays started streams from the process's event loop */
    char node_name[40]; /* [server] node_name / ZENN_NODE_NAME: this web node's name (host name) */
    int64_t max_body_bytes;
    int log_level;
    /* [upstream] seconds */
    int connect_timeout, idle_timeout, total_timeout, ping_interval, image_timeout;
    int image_workers;    /* [images] workers: background job runners per images process */
    int image_keep_hours; /* [images] keep_hours: how long a background job's answer is kept */
    int image_reclaim_s;  /* [images] reclaim_after: a job not renewed for this long is run again */
    /* [billing] */
    int64_t hold_output_cap;      /* output tokens a hold assumes (at most the stated cap) */
    int64_t hold_input_cap;       /* input tokens assumed by a hold at most */
    char spool_path[512];         /* settlements that could not reach the database */
    int reap_after;               /* seconds after which a pending request is abandoned */
    int billing_mode;             /* ZG_BILLING_STRICT or ZG_BILLING_LEASE */
    int64_t lease_credits;        /* credits a process reserves per key at most (lease mode) */
    int lease_slots;              /* requests of the hourly limit a process reserves at most */
    int lease_idle_ms;            /* a lease unused this long is given back */
    int flush_ms;                 /* finished requests are written at least this often */
    int lost_host_after;          /* seconds: leases a node has not renewed this long are released */
    /* [limits] requests per hour */
    int rl_messages, rl_codex, rl_images, rl_count_tokens;
    int concurrent_per_user; /* requests in flight per user, across processes and nodes */
    zg_provider_conf prov[ZG_PROV_COUNT];
    /* [routing]: channels and failover (see zg_channel.h) */
    int max_attempts;             /* upstream attempts per request at most */
    int failover_budget_ms;       /* no new attempt starts this long after the first */
    int head_timeout_ms;          /* a stream's answer must start within this, or the next channel is tried */
    int breaker_failures;         /* failures of a channel and model within breaker_window_s open its circuit */
    int breaker_window_s;
    int cooldown_s;               /* an open circuit's wait when the upstream named none */
    int sticky_s;                 /* a key and model stay on the channel that served them this long */
    int queue_timeout_s;          /* a request waits this long for a channel at its cap */
    /* [portal] */
    int signup;                   /* ZG_SIGNUP_OPEN, _INVITE or _CLOSED */
    int session_idle_s;           /* a session unused this long ends */
    int session_max_s;            /* a session ends this long after sign-in whatever its use */
    int login_max_failures;       /* failed sign-ins per account and per address within login_window_s */
    int login_window_s;
    char portal_url[256];         /* the portal's public address, for links (e.g. password resets);
                                     no trailing slash */
    /* [usage] */
    int usage_keep_days;          /* raw usage rows are deleted this many days after (rollups stay) */
    /* [stripe]: card top-ups (payments are off while secret_key is empty) */
    char stripe_api_base[256];    /* https://api.stripe.com, or a stand-in */
    char stripe_secret_key[256];
    char stripe_webhook_secret[256];
    char stripe_currency[4];      /* three lower-case letters, a currency with cents (usd) */
    /* [plans]: what a checkout may buy, in micro-dollars */
    int64_t pro_min_micros, pro_max_micros; /* Pro: any whole-cent amount in this range */
    int64_t max_pack_micros, enterprise_pack_micros; /* Max and Enterprise: whole packs */
    int max_packs;                /* packs in one checkout at most */
    /* [invoice]: the seller on receipts */
    char invoice_prefix[17];      /* receipt numbers PREFIX-YYYY-NNNNNN */
    char seller_name[128], seller_address[512], seller_tax_id[64], seller_email[128];
} zg_settings;

enum { ZG_SIGNUP_OPEN = 0, ZG_SIGNUP_INVITE, ZG_SIGNUP_CLOSED };

/* Parsed INI text: "[section]" headers, "key = value" lines, '#' or ';' comments. Opaque. */
typedef struct zg_config zg_config;

/* Parse INI text. NULL on error with a message "NAME:LINE: reason" in err. */
zg_config *zg_config_parse(const char *text, size_t len, const char *name, char *err, size_t errlen);
/* Read and parse a file. NULL on error (message in err). */
zg_config *zg_config_load(const char *path, char *err, size_t errlen);
/* Value of section.key, or def when absent. */
const char *zg_config_get(const zg_config *c, const char *section, const char *key, const char *def);
void zg_config_free(zg_config *c);
/* Copy section.key (when present) into dst[cap]: 0, or -1 with "too long" naming it in err. */
int zg_config_str(const zg_config *c, const char *sec, const char *key, char *dst, size_t cap, char *err,
                  size_t errlen);
/* Parse section.key (when present) as an integer in min..max into *dst: 0, or -1 naming it in err. */
int zg_config_int(const zg_config *c, const char *sec, const char *key, int64_t min, int64_t max, int64_t *dst,
                  char *err, size_t errlen);
/* Drop the trailing slashes of an address, so that paths can be appended to it. */
void zg_config_trim_slashes(char *s);
/* Copy environment variable name (when set) into dst[cap]: 0, or -1 with "too long" in err. */
int zg_config_env_str(const char *name, char *dst, size_t cap, char *err, size_t errlen);

/* The config path when no --config is given: $ZENN_CONFIG, else zenn.conf in the directory of the
 * running executable if that file exists, else the compiled-in default under sysconfdir. Returns a
 * static buffer: call it before starting threads. */
const char *zg_config_default_path(void);

/* Fill s from defaults, then the parsed file c (may be NULL), then the environment
 * (ZENN_<PROVIDER>_BASE_URL, ZENN_<PROVIDER>_API_KEY, ZENN_DB_*). Returns 0, or -1 with a message
 * naming the bad key in err. */
int zg_settings_from(zg_settings *s, const zg_config *c, char *err, size_t errlen);
/* Load the file at path (or the default path when NULL) and fill s. A missing file is an error
 * only when the path was given explicitly or ZENN_CONFIG is set. Warns when the file holds a
 * secret and is readable by others. */
int zg_settings_load(zg_settings *s, const char *path, char *err, size_t errlen);
/* The node name of the settings loaded last (a program loads its settings once): how this web node
 * names itself in lease owners, concurrency slots and image job claims. */
const char *zg_node_name(void);
/* The payment settings of s ([stripe], [plans], [invoice]; zg_config_pay.c) from defaults, c (may be
 * NULL) and ZENN_STRIPE_API_BASE / _SECRET_KEY / _WEBHOOK_SECRET. Called by zg_settings_from. 0 or -1
 * with a message in err. */
int zg_settings_pay(zg_settings *s, const zg_config *c, char *err, size_t errlen);

/* One entry of [database] hosts: "host", "host:port" (port 1-65535; default def_port; an IPv6
 * address in brackets: "[::1]:3306") or an absolute socket path. Fills host/port or sock (the other empty). 0, or -1 when malformed. */
int zg_config_db_addr(const char *entry, int def_port, char *host, size_t hostcap, int *port, char *sock,
                      size_t sockcap);
/* Parse a [database] hosts comma list into s->db_hosts, checking each entry. 0, or -1 with err. */
int zg_config_db_hosts(zg_settings *s, const char *list, char *err, size_t errlen);

#endif
