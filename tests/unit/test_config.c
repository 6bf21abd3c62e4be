#include "zg_config.h"
#include "tap.h"
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

static zg_config *parse(const char *text, char *err, size_t errlen)
{
    return zg_config_parse(text, strlen(text), "t.conf", err, errlen);
}

int main(void)
{
    char err[256];
    static const struct {
        const char *text;
        const char *errpart; /* NULL: parses */
    } cases[] = {
        {"", NULL},
        {"# comment\n; other\n\n", NULL},
        {"[database]\nhost = db1\n", NULL},
        {"[a]\nk=v\n[b]\nk = \"quoted value\"\n", NULL},
        {"host = x\n", "outside of a [section]"},
        {"[database\nhost=x\n", "malformed section header"},
        {"[]\n", "empty or overlong section name"},
        {"[s]\njust words\n", "expected 'key = value'"},
        {"[s]\n = v\n", "empty key"},
        {"[s]\nk y = v\n", "invalid character in key"},
        {"[s]\nk = 1\nk = 2\n", "duplicate key"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = '\0';
        zg_config *c = parse(cases[i].text, err, sizeof err);
        if (cases[i].errpart) {
            ok(c == NULL && strstr(err, cases[i].errpart) != NULL, "config case %zu fails with '%s' (got '%s')",
               i, cases[i].errpart, err);
        } else {
            ok(c != NULL, "config case %zu parses (%s)", i, err);
        }
        zg_config_free(c);
    }
    zg_config *c = parse("[s]\nk = \"quoted value\"\nn=  spaced  \n", err, sizeof err);
    is_str(zg_config_get(c, "s", "k", NULL), "quoted value", "quotes stripped");
    is_str(zg_config_get(c, "s", "n", NULL), "spaced", "blanks trimmed");
    is_str(zg_config_get(c, "s", "missing", "def"), "def", "default for a missing key");
    is_str(zg_config_get(c, "other", "k", NULL), NULL, "sections are separate");
    zg_config_free(c);
    c = parse("[s]\n\nbad line\n", err, sizeof err);
    ok(c == NULL && strncmp(err, "t.conf:3:", 9) == 0, "error names file and line (%s)", err);

    /* settings: defaults, file values, typed validation, environment overrides */
    zg_settings s;
    memset(&s, 0, sizeof s);
    unsetenv("ZENN_OPENAI_BASE_URL");
    unsetenv("ZENN_ANTHROPIC_API_KEY");
    is_int(zg_settings_from(&s, NULL, err, sizeof err), 0, "defaults load");
    is_int(s.threads, 8192, "default threads: the most requests at once");
    is_int(s.idle_threads, 8, "default idle threads");
    is_int(s.cpu_slots, 0, "default cpu slots (twice the CPUs)");
    is_int(s.db_connections, 8, "default database connections per process");
    is_str(s.prov[ZG_PROV_ANTHROPIC].base_url, "https://api.anthropic.com", "default anthropic url");
    is_str(s.prov[ZG_PROV_DEEPSEEK].anthropic_base_url, "https://api.deepseek.com/anthropic",
           "default deepseek anthropic-compatible url");
    is_int(s.rl_messages, 1000, "default messages limit");
    is_int(s.rl_images, 500, "default images limit");
    is_int(s.reap_after, s.total_timeout + 300, "reap_after derives from total_timeout");
    is_int(s.billing_mode, ZG_BILLING_LEASE, "billing mode defaults to lease");
    is_int(s.flush_ms, 2, "default flush period");
    is_int(s.lease_idle_ms, 2000, "default lease idle time");
    is_int(s.lost_host_after, 300, "default lost-host timeout");

    is_str(s.prov[ZG_PROV_GEMINI].openai_base_url, "https://generativelanguage.googleapis.com/v1beta/openai",
           "default gemini OpenAI-compatible url");
    is_str(s.prov[ZG_PROV_MOONSHOT].anthropic_base_url, "https://api.moonshot.ai/anthropic", "default moonshot");
    is_str(s.prov[ZG_PROV_ZHIPU].anthropic_base_url, "https://open.bigmodel.cn/api/anthropic", "default zhipu");

    /* a provider pointed elsewhere takes its secondary roots along, unless they are set themselves */
    c = parse("[provider.gemini]\nbase_url = http://10.0.0.1:9/gem/\n[provider.deepseek]\nbase_url = http://d/ds\n"
              "[provider.moonshot]\nbase_url = http://m/v1\nanthropic_base_url = http://other/a\n"
              "[provider.zhipu]\nbase_url = http://z/api/paas/v4\n",
              err, sizeof err);
    is_int(zg_settings_from(&s, c, err, sizeof err), 0, "provider urls load");
    is_str(s.prov[ZG_PROV_GEMINI].openai_base_url, "http://10.0.0.1:9/gem/v1beta/openai", "gemini's follows");
    is_str(s.prov[ZG_PROV_DEEPSEEK].anthropic_base_url, "http://d/ds/anthropic", "deepseek's follows");
    is_str(s.prov[ZG_PROV_MOONSHOT].anthropic_base_url, "http://other/a", "an explicit one is kept");
    is_str(s.prov[ZG_PROV_ZHIPU].anthropic_base_url, "http://z/api/anthropic", "zhipu's follows");
    setenv("ZENN_GEMINI_BASE_URL", "http://g2", 1);
    is_int(zg_settings_from(&s, c, err, sizeof err), 0, "env url loads");
    is_str(s.prov[ZG_PROV_GEMINI].openai_base_url, "http://g2/v1beta/openai", "ZENN_GEMINI_BASE_URL alone moves both");
    setenv("ZENN_GEMINI_OPENAI_BASE_URL", "http://g3/oai", 1);
    is_int(zg_settings_from(&s, c, err, sizeof err), 0, "env url loads");
    is_str(s.prov[ZG_PROV_GEMINI].openai_base_url, "http://g3/oai", "unless it is set too");
    unsetenv("ZENN_GEMINI_BASE_URL");
    unsetenv("ZENN_GEMINI_OPENAI_BASE_URL");
    zg_config_free(c);

    /* a NUL byte is an error naming its line, not the silent end of the file */
    static const char nul_text[] = "[server]\nthreads = 2\n\0threads = 9\n";
    c = zg_config_parse(nul_text, sizeof nul_text - 1, "t.conf", err, sizeof err);
    ok(c == NULL && strstr(err, "t.conf:3") && strstr(err, "NUL"), "embedded NUL refused (%s)", err);
    /* requests are never reaped while they may still run: image_timeout counts too */
    c = parse("[upstream]\ntotal_timeout = 100\nimage_timeout = 900\n", err, sizeof err);
    is_int(zg_settings_from(&s, c, err, sizeof err), 0, "timeouts load");
    is_int(s.reap_after, 900 + 300, "reap_after derives from the longest timeout");
    zg_config_free(c);
    c = parse("[upstream]\nimage_timeout = 900\n[billing]\nreap_after = 120\n", err, sizeof err);
    is_int(zg_settings_from(&s, c, err, sizeof err), 0, "a short reap_after loads");
    is_int(s.reap_after, 3600 + 60, "and is raised above the longest request");
    zg_config_free(c);
    c = parse("[server]\nmax_body_bytes = 2147483648\n", err, sizeof err);
    ok(zg_settings_from(&s, c, err, sizeof err) == -1 && strstr(err, "max_body_bytes"),
       "a body cap the JSON parser cannot take is refused (%s)", err);
    zg_config_free(c);

    /* billing mode: the file, then ZENN_BILLING_MODE */
    unsetenv("ZENN_BILLING_MODE");
    c = parse("[billing]\nmode = strict\nlease_slots = 8\n", err, sizeof err);
    is_int(zg_settings_from(&s, c, err, sizeof err), 0, "strict mode loads");
    is_int(s.billing_mode, ZG_BILLING_STRICT, "mode from file");
    is_int(s.lease_slots, 8, "lease slots from file");
    setenv("ZENN_BILLING_MODE", "lease", 1);
    is_int(zg_settings_from(&s, c, err, sizeof err), 0, "env mode loads");
    is_int(s.billing_mode, ZG_BILLING_LEASE, "ZENN_BILLING_MODE overrides the file");
    setenv("ZENN_BILLING_MODE", "sometimes", 1);
    ok(zg_settings_from(&s, c, err, sizeof err) == -1 && strstr(err, "mode") != NULL,
       "a bad ZENN_BILLING_MODE is refused (%s)", err);
    unsetenv("ZENN_BILLING_MODE");
    zg_config_free(c);

    c = parse("[server]\nthreads = 4\nmax_body_bytes = 2048\n[provider.openai]\nbase_url = http://x/v1/\n"
              "api_key = sk-test\n",
              err, sizeof err);
    is_int(zg_settings_from(&s, c, err, sizeof err), 0, "file settings load");
    is_int(s.threads, 4, "threads from file");
    is_int(s.max_body_bytes, 2048, "body cap from file");
    is_str(s.prov[ZG_PROV_OPENAI].base_url, "http://x/v1", "trailing slash stripped");
    is_str(s.prov[ZG_PROV_OPENAI].api_key, "sk-test", "api key from file");
    setenv("ZENN_OPENAI_BASE_URL", "http://env/v1", 1);
    setenv("ZENN_ANTHROPIC_API_KEY", "sk-env", 1);
    is_int(zg_settings_from(&s, c, err, sizeof err), 0, "env settings load");
    is_str(s.prov[ZG_PROV_OPENAI].base_url, "http://env/v1", "env overrides base url");
    is_str(s.prov[ZG_PROV_ANTHROPIC].api_key, "sk-env", "env sets api key");
    unsetenv("ZENN_OPENAI_BASE_URL");
    unsetenv("ZENN_ANTHROPIC_API_KEY");
    zg_config_free(c);

    static const struct {
        const char *text;
        const char *errpart;
    } bad[] = {
        {"[server]\nthreads = 0\n", "[server] threads"},
        {"[server]\nthreads = many\n", "[server] threads"},
        {"[server]\nthreads = 99999\n", "[server] threads"},
        {"[server]\nidle_threads = 0\n", "[server] idle_threads"},
        {"[server]\ncpu_slots = -2\n", "[server] cpu_slots"},
        {"[database]\nconnections = 0\n", "[database] connections"},
        {"[database]\nconnections = 257\n", "[database] connections"},
        {"[database]\nport = 70000\n", "[database] port"},
        {"[server]\nlog_level = loud\n", "log_level"},
        {"[upstream]\nidle_timeout = -1\n", "idle_timeout"},
        {"[billing]\nhold_output_cap = 1.5\n", "hold_output_cap"},
        {"[billing]\nmode = fast\n", "[billing] mode"},
        {"[billing]\nflush_ms = 0\n", "flush_ms"},
        {"[billing]\nlost_host_after = 5\n", "lost_host_after"},
        {"[billing]\nlease_slots = 0\n", "lease_slots"},
        {"[billing]\nlease_credits = -5\n", "lease_credits"},
        {"[stripe]\ncurrency = USD\n", "currency"},
        {"[stripe]\ncurrency = usdx\n", "currency"},
        {"[stripe]\napi_base = ftp://x\n", "api_base"},
        {"[invoice]\nprefix = zg\n", "prefix"},
        {"[invoice]\nprefix = ZG_1\n", "prefix"},
        {"[plans]\npro_min_usd = 0\n", "pro_min_usd"},
        {"[plans]\npro_min_usd = 50\npro_max_usd = 20\n", "pro_min_usd is above"},
        {"[plans]\nmax_pack_usd = 2.5\n", "max_pack_usd"},
        {"[plans]\nmax_packs = 0\n", "max_packs"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c = parse(bad[i].text, err, sizeof err);
        err[0] = '\0';
        int rc = zg_settings_from(&s, c, err, sizeof err);
        ok(rc == -1 && strstr(err, bad[i].errpart) != NULL, "bad setting %zu rejected naming '%s' (got '%s')", i,
           bad[i].errpart, err);
        zg_config_free(c);
    }
    /* payments: defaults, the file, then the environment */
    unsetenv("ZENN_STRIPE_SECRET_KEY");
    unsetenv("ZENN_STRIPE_API_BASE");
    is_int(zg_settings_from(&s, NULL, err, sizeof err), 0, "payment defaults");
    ok(strcmp(s.stripe_api_base, "https://api.stripe.com") == 0 && !s.stripe_secret_key[0] &&
           strcmp(s.stripe_currency, "usd") == 0 && strcmp(s.invoice_prefix, "ZG") == 0,
       "Stripe's address, no key (payments off), usd, ZG receipts");
    ok(s.pro_min_micros == 5000000 && s.pro_max_micros == 5000000000LL && s.max_pack_micros == 100000000 &&
           s.enterprise_pack_micros == 1000000000 && s.max_packs == 20,
       "plan amounts: Pro $5 to $5,000, Max $100 packs, Enterprise $1,000 packs");
    c = parse("[stripe]\napi_base = http://127.0.0.1:9/\nsecret_key = sk_test_1\nwebhook_secret = whsec_1\n"
              "[plans]\npro_min_usd = 10\nmax_packs = 3\n[invoice]\nprefix = INV-EU\nseller_name = Zenn Ltd\n"
              "[portal]\nurl = https://gw.example.com//\n",
              err, sizeof err);
    setenv("ZENN_STRIPE_SECRET_KEY", "sk_live_env", 1);
    is_int(zg_settings_from(&s, c, err, sizeof err), 0, "payment settings load");
    ok(strcmp(s.stripe_api_base, "http://127.0.0.1:9") == 0 && strcmp(s.stripe_secret_key, "sk_live_env") == 0 &&
           strcmp(s.stripe_webhook_secret, "whsec_1") == 0,
       "the trailing slash goes; the environment's key wins over the file's");
    is_str(s.portal_url, "https://gw.example.com", "the portal's address loses its trailing slashes too");
    ok(s.pro_min_micros == 10000000 && s.max_packs == 3 && strcmp(s.invoice_prefix, "INV-EU") == 0 &&
           strcmp(s.seller_name, "Zenn Ltd") == 0,
       "plans and invoice from the file");
    unsetenv("ZENN_STRIPE_SECRET_KEY");
    zg_config_free(c);
    /* [database] hosts: tried in order on connect failure */
    c = parse("[database]\nport = 3307\nhosts = db1:3306, db2 ,/run/mysqld/mysqld.sock,[::1]:4000\n", err, sizeof err);
    is_int(zg_settings_from(&s, c, err, sizeof err), 0, "a hosts list loads (%s)", err);
    is_int(s.db_nhosts, 4, "four entries");
    is_str(s.db_hosts[1], "db2", "blanks trimmed");
    zg_config_free(c);
    char host[256], sock[512];
    int port;
    ok(zg_config_db_addr("db1:3306", 3307, host, sizeof host, &port, sock, sizeof sock) == 0 &&
           strcmp(host, "db1") == 0 && port == 3306 && !sock[0], "host:port");
    ok(zg_config_db_addr("db2", 3307, host, sizeof host, &port, sock, sizeof sock) == 0 && port == 3307,
       "a host alone takes [database] port");
    ok(zg_config_db_addr("/run/mysqld/mysqld.sock", 3307, host, sizeof host, &port, sock, sizeof sock) == 0 &&
           !host[0] && strcmp(sock, "/run/mysqld/mysqld.sock") == 0, "a socket path");
    ok(zg_config_db_addr("[::1]:4000", 3307, host, sizeof host, &port, sock, sizeof sock) == 0 &&
           strcmp(host, "::1") == 0 && port == 4000, "an IPv6 address in brackets");
    static const char *const bad_hosts[] = {"db:0", "db:65536", "db:x", ":3306", "d b:1", "::1:3306", "[]:1"};
    for (size_t i = 0; i < sizeof bad_hosts / sizeof bad_hosts[0]; i++)
        is_int(zg_config_db_addr(bad_hosts[i], 3306, host, sizeof host, &port, sock, sizeof sock), -1,
               "bad entry %s", bad_hosts[i]);
    c = parse("[database]\nhosts = a, b:70000\n", err, sizeof err);
    ok(zg_settings_from(&s, c, err, sizeof err) == -1 && strstr(err, "b:70000"), "a bad entry is named (%s)", err);
    zg_config_free(c);
    c = parse("[database]\nhosts = a,b,c,d,e,f,g,h,i\n", err, sizeof err);
    ok(zg_settings_from(&s, c, err, sizeof err) == -1 && strstr(err, "at most 8"), "at most 8 (%s)", err);
    zg_config_free(c);
    setenv("ZENN_DB_HOSTS", "x:1,y:2", 1);
    is_int(zg_settings_from(&s, NULL, err, sizeof err), 0, "ZENN_DB_HOSTS loads");
    ok(s.db_nhosts == 2 && strcmp(s.db_hosts[1], "y:2") == 0, "from the environment");
    unsetenv("ZENN_DB_HOSTS");

    /* the node name: the host name unless set; two nodes on one machine set their own */
    char hn[64] = "";
    gethostname(hn, sizeof hn);
    is_int(zg_settings_from(&s, NULL, err, sizeof err), 0, "no node name set");
    ok(s.node_name[0] && strncmp(s.node_name, hn, strlen(s.node_name)) == 0 && !strpbrk(s.node_name, ":/ "),
       "the host name (%s)", s.node_name);
    c = parse("[server]\nnode_name = web-2.eu\n", err, sizeof err);
    is_int(zg_settings_from(&s, c, err, sizeof err), 0, "a node name loads");
    is_str(s.node_name, "web-2.eu", "as given");
    is_str(zg_node_name(), "web-2.eu", "and is the process's name");
    setenv("ZENN_NODE_NAME", "node1", 1);
    is_int(zg_settings_from(&s, c, err, sizeof err), 0, "ZENN_NODE_NAME loads");
    is_str(s.node_name, "node1", "over the file's");
    unsetenv("ZENN_NODE_NAME");
    zg_config_free(c);
    static const char *const bad_names[] = {"a:b", "a/b", "a b", "0123456789012345678901234567890123456789"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "[server]\nnode_name = %s\n", bad_names[i]);
        c = parse(text, err, sizeof err);
        ok(zg_settings_from(&s, c, err, sizeof err) == -1 && strstr(err, "node_name"), "bad node name '%s' (%s)",
           bad_names[i], err);
        zg_config_free(c);
    }
    is_int(zg_provider_parse("zhipu"), ZG_PROV_ZHIPU, "provider by name");
    is_int(zg_provider_parse("nope"), -1, "unknown provider");
    return tap_done();
}
