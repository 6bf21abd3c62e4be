/*
 * zenn-admin: the operator's command-line tool for zenn-gateway.
 *
 *   zenn-admin [--config PATH] NOUN [VERB] [ARGS...] [--OPTIONS]
 *
 * The configuration comes from --config PATH (accepted before or after the command), else
 * $ZENN_CONFIG, else the compiled-in default. Every statement that carries operator input is a
 * prepared statement with parameters; the text protocol is used only for the SQL embedded at build
 * time (schema migrations and the model catalog).
 *
 * Exit status: 0 success; 1 the command was well-formed but failed (unknown user, key or model,
 * duplicate, database or configuration error); 2 bad usage (unknown command or option, wrong
 * number of arguments, malformed value such as a bad USD amount, plan or e-mail address).
 *
 * Money: 1 credit = 1 micro-dollar of list price. USD amounts are parsed exactly into micro-dollars
 * (at most 6 decimals); a top-up grants USD x 1e6 x the plan's multiplier credits.
 */
#include "admin.h"

/* ============================================================================ commands & help */

static const verb VERBS[] = {
    {"db", "migrate", cmd_db_migrate, 0, 0, "", "", "Apply pending schema migrations and load the model catalog",
     "Applies each schema migration above the database's version (recorded in schema_version), then\n"
     "loads the shipped model catalog with INSERT IGNORE, so models and aliases changed with\n"
     "'model set' / 'model alias' keep the operator's values. Safe to run again.\n"
     "Prints: schema at version N; catalog: M models\n"},
    {"db", "status", cmd_db_status, 0, 0, "", "", "Show the schema version and row counts",
     "Exits 1 when the schema is not installed.\n"},
    {"db", "check", cmd_db_check, 0, 0, "repair", "[--repair]", "Check the usage rollup against the raw rows",
     "Compares the daily rollup (usage_daily) with the sums over the raw request rows it was built\n"
     "from, per user, day, key, model and surface, on the days whose raw rows are all kept ([usage]\n"
     "keep_days), and each day's lot pieces (lot_daily) with the money the rollup says was consumed.\n"
     "Prints every difference and exits 1 when there is one. --repair rebuilds the rollup of each\n"
     "user with a difference from the raw rows (safe while the gateway runs) and checks again.\n"},
    {"db", "purge", cmd_db_purge, 0, 0, "keep-days=", "[--keep-days N]", "Delete raw usage rows past retention",
     "Deletes settled request rows that started more than N UTC days ago (default: [usage] keep_days,\n"
     "400). The daily rollups keep their totals. The programs do this on their own, a slice a minute.\n"},
    {"report", NULL, cmd_report, 0, 0, "since= until= by= csv", "[--since DATE] [--until DATE] [--by user|model|day] [--csv]",
     "Usage totals from the daily rollup",
     "--since, --until  UTC days YYYY-MM-DD, inclusive (default: the last 30 days)\n"
     "--by              user (default), model or day\n"
     "--csv             CSV (RFC 4180) with a header row instead of a table\n"
     "Shows requests, errors, tokens, images, the cost at list price and the top-up money consumed.\n"},
    {"user", "add", cmd_user_add, 1, 1, "", "EMAIL", "Add a user",
     "EMAIL: printable ASCII, at most 254 bytes, one '@'. A duplicate exits 1.\n"},
    {"user", "reset-password", cmd_user_reset_password, 1, 1, "", "EMAIL",
     "Print a one-time link (1 hour) to choose a new password",
     "Prints <[portal] url>/reset?token=... for a customer who forgot their password; opening it\n"
     "lets them set a new one, which signs them in and ends their other sessions. Only the token's\n"
     "SHA-256 is stored.\n"},
    {"invite", "create", cmd_invite_create, 0, 0, "note= days=", "[--note TEXT] [--days N]",
     "Make an invitation code for sign-up ([portal] signup = invite)",
     "Prints the code alone on stdout (shown once; only its SHA-256 is stored). It signs up one\n"
     "account within N days (default 14).\n"},
    {"user", "list", cmd_user_list, 0, 0, "json", "[--json]", "List users with plan, credits and keys",
     "--json  a JSON array of {id, email, status, plan, credits, held, active_keys, created_at}\n"},
    {"topup", NULL, cmd_topup, 3, 3, "ref=", "EMAIL PLAN USD [--ref REF]", "Grant a top-up lot of credits",
     "PLAN: pro (1 credit per micro-dollar), max (4x) or enterprise (6x).\n"
     "USD: a positive decimal with at most 6 decimals (e.g. 20, 12.50).\n"
     "Grants USD x 1,000,000 x multiplier credits; an overdraft is repaid from the new lot first.\n"
     "--ref REF  the payment's reference (a bank transfer's id): the same REF grants once; run again,\n"
     "           it says 'already granted' and adds nothing. Without --ref one is generated and printed.\n"
     "Prints the credits granted, the reference, the new balance and the lot's receipt number.\n"},
    {"checkout", "list", cmd_checkout_list, 0, 0, "status= email= limit= json",
     "[--status S] [--email EMAIL] [--limit N] [--json]", "List card top-ups (checkouts), newest first",
     "--status  creating | open | processing | paid | failed | expired | mismatch | refunded\n"
     "          (mismatch: paid another amount or currency than asked; nothing was granted: refund it\n"
     "          in Stripe, or grant it with 'topup --ref')\n"
     "--limit N at most N checkouts (default 100)\n"
     "--json    a JSON array of {id, email, status, plan, usd, credits, created_at, receipt,\n"
     "          refunded_usd, session_id, payment_intent, note}\n"},
    {"balance", NULL, cmd_balance, 1, 1, "json", "EMAIL [--json]", "Show a user's credits, plan and top-up lots",
     "--json  {\"email\",\"credits\",\"held\",\"plan\":\"pro|max|enterprise|none\",\n"
     "         \"lots\":[{\"plan\",\"multiplier\",\"credits_granted\",\"credits_remaining\",\"usd\"}]}\n"
     "credits is the balance (1 credit = 1 micro-dollar at list price); plan is the highest plan\n"
     "among lots with credits left.\n"},
    {"usage", NULL, cmd_usage, 1, 1, "json since= limit=", "EMAIL [--since DATE] [--limit N] [--json]",
     "Show a user's metered requests, newest last",
     "--since YYYY-MM-DD[ HH:MM:SS]  only requests created at or after this time\n"
     "--limit N                      at most the N newest requests (default 100)\n"
     "--json                         a JSON array of {request_id, created_at, model, surface, provider,\n"
     "                               status, end_reason, credits, cash_micros, input_tokens,\n"
     "                               output_tokens, cache_read_tokens, cache_write_5m_tokens,\n"
     "                               cache_write_1h_tokens, reasoning_tokens, units, estimated,\n"
     "                               upstream_status, ttfb_ms, duration_ms}\n"},
    {"key", "create", cmd_key_create, 1, 1, "name= limit-usd=", "EMAIL [--name NAME] [--limit-usd USD]",
     "Create an API key",
     "Prints the key alone on the first line of stdout; it is shown only this once (only its\n"
     "SHA-256 is stored). --limit-usd caps the key's spend (in list-price dollars).\n"},
    {"key", "list", cmd_key_list, 1, 1, "json", "EMAIL [--json]", "List a user's keys (prefixes, never secrets)",
     "--json  a JSON array of {prefix, name, status, limit_usd, limit_credits, spent_usd,\n"
     "        spent_credits, held_credits, created_at, last_used_at, revoked_at}\n"},
    {"key", "revoke", cmd_key_revoke, 1, 1, "", "PREFIX", "Revoke a key",
     "PREFIX is the 12-character prefix 'key list' shows. Revoking a revoked key exits 1.\n"},
    {"key", "limit", cmd_key_limit, 2, 2, "", "PREFIX USD|none", "Set or clear a key's spend limit",
     "USD: list-price dollars the key may spend in total (spent so far counts); none removes the limit.\n"},
    {"channel", "add", cmd_channel_add, 1, 1,
     "provider= base-url= key= anthropic-base-url= openai-base-url= priority= weight= max-concurrency= models= plans=",
     "NAME --provider P --base-url URL --key KEY [OPTIONS]", "Add an upstream channel (another provider account)",
     "--provider anthropic|openai|gemini|deepseek|moonshot|zhipu\n"
     "--base-url URL            the provider's native API root (as [provider.NAME] base_url)\n"
     "--anthropic-base-url URL  DeepSeek, Moonshot, Zhipu: their Anthropic-compatible root\n"
     "--openai-base-url URL     Gemini: its OpenAI-compatible root\n"
     "--key KEY                 the account's API key (stored for the programs; shown masked)\n"
     "--priority N              higher tiers are tried first (default 0; zenn.conf's channel is 0)\n"
     "--weight W                share of requests within its tier (default 1)\n"
     "--max-concurrency N       requests at once per program process (default 0: no cap)\n"
     "--models a,b              only these model ids (default: all of the provider's)\n"
     "--plans pro,max,enterprise  only users of these plans (default: all)\n"
     "Every process uses the change within 2 s. NAME: 1-64 of A-Z a-z 0-9 . _ -, not a provider name.\n"},
    {"channel", "list", cmd_channel_list, 0, 0, "json", "[--json]", "List the stored channels (keys masked)",
     "zenn.conf's [provider.NAME] sections are each provider's channel too (named after the provider).\n"
     "--json  a JSON array of {name, provider, base_url, anthropic_base_url, openai_base_url, key,\n"
     "        priority, weight, max_concurrency, models, plans, enabled, disabled_reason, open_circuits}\n"},
    {"channel", "set", cmd_channel_set, 1, 1,
     "provider= base-url= key= anthropic-base-url= openai-base-url= priority= weight= max-concurrency= models= plans=",
     "NAME [OPTIONS]", "Change a channel (options as for add; --models '' or --plans '' means all)", ""},
    {"channel", "disable", cmd_channel_disable, 1, 1, "reason=", "NAME [--reason TEXT]", "Stop using a channel",
     "Requests in flight finish; new ones go to other channels within 2 s.\n"},
    {"channel", "enable", cmd_channel_enable, 1, 1, "", "NAME", "Use a channel again",
     "Also forgets its open circuits (after an upstream 401/403 disabled it, fix its key first).\n"},
    {"channel", "remove", cmd_channel_remove, 1, 1, "", "NAME", "Delete a channel",
     "Usage rows keep the channel's name.\n"},
    {"channel", "test", cmd_channel_test, 1, 1, "model=", "NAME [--model ID]",
     "Send a one-token request through a channel and report status and latency",
     "NAME may be a provider name (its zenn.conf channel). --model defaults to the provider's first\n"
     "live chat model. The request is real: the provider bills it (one output token). Exits 1 unless 2xx.\n"},
    {"model", "list", cmd_model_list, 0, 0, "json", "[--json]", "List the model catalog with prices and aliases",
     "--json  a JSON array of {id, display_name, status, provider, kind, min_plan, prices, aliases,\n"
     "        created_unix, sort_order}; prices has input, output, cache_read, cache_write_5m,\n"
     "        cache_write_1h ({usd_per_mtok, credits_per_mtok} or null) and per_image ({usd, credits}\n"
     "        or null)\n"},
    {"model", "set", cmd_model_set, 1, 1,
     "status= min-plan= input= output= cache-read= cache-write-5m= cache-write-1h= per-image= display-name= "
     "provider= kind= context= expand-input= long-threshold= long-input= long-output= long-cache-read=",
     "ID [OPTIONS]", "Change a model, or create one",
     "--status live|coming_soon     --min-plan pro|max|enterprise\n"
     "--input USD  --output USD  --cache-read USD  --cache-write-5m USD  --cache-write-1h USD\n"
     "                              prices in USD per million tokens, or none\n"
     "--per-image CREDITS           price per image in credits (1 credit = 1 micro-dollar), or none\n"
     "--display-name NAME  --provider P  --kind chat|image|video|audio\n"
     "--context TOKENS              the context window; --expand-input TOKENS: what a hold assumes when\n"
     "                              the provider expands input itself (default the context window)\n"
     "--long-threshold TOKENS  --long-input USD  --long-output USD  --long-cache-read USD\n"
     "                              long-context tier: input above the threshold prices the whole request\n"
     "                              at these (or none)\n"
     "An unknown ID is created when --provider and --display-name are given (status coming_soon\n"
     "unless --status says otherwise, min plan pro, kind chat); otherwise it exits 1.\n"},
    {"model", "alias", cmd_model_alias, 2, 2, "", "ALIAS ID", "Point an alias at a model (create or repoint)",
     "ID must be an existing model; ALIAS must not be a model id.\n"},
    {"model", "unalias", cmd_model_unalias, 1, 1, "", "ALIAS", "Remove an alias", "An unknown alias exits 1.\n"},
    {"reap", NULL, cmd_reap, 0, 0, "older-than=", "[--older-than SECONDS]", "Settle requests left pending",
     "Requests still pending after SECONDS (default: [billing] reap_after) are settled as abandoned:\n"
     "charged the hold placed before their upstream call and flagged estimated.\n"
     "Settlements waiting in the spool ([billing] spool_path) are replayed first.\n"},
    {"spool", "replay", cmd_spool_replay, 0, 0, "", "", "Apply settlements spooled while the database was down",
     "Settlements that could not reach the database are appended to [billing] spool_path; the\n"
     "programs replay it on their own every few seconds. This replays it now. Exits 1 when some\n"
     "settlements could not be applied (they stay in the spool).\n"},
};
#define N_VERBS (sizeof VERBS / sizeof VERBS[0])

static void print_verb_line(FILE *f, const verb *v)
{
    char words[160];
    snprintf(words, sizeof words, "%s%s%s %s", v->noun, v->verb ? " " : "", v->verb ? v->verb : "", v->synopsis);
    fprintf(f, "  %-52s %s\n", words, v->summary);
}

static void print_help_all(FILE *f)
{
    fprintf(f, "usage: zenn-admin [--config PATH] COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < N_VERBS; i++)
        print_verb_line(f, &VERBS[i]);
    fprintf(f, "  %-52s %s\n", "help [COMMAND]", "Show help for a command");
    fprintf(f, "\n--config PATH  the configuration file (default: $ZENN_CONFIG, else %s)\n"
               "'zenn-admin COMMAND --help' describes a command.\n"
               "exit status: 0 success, 1 failure (unknown user/key/model, duplicate, database error),\n"
               "             2 bad usage (unknown command or option, malformed argument)\n"
               "Amounts: 1 credit = 1 micro-dollar at list price; USD amounts take at most 6 decimals.\n",
            ZG_SYSCONFDIR "/zenn-gateway/zenn.conf");
}

static void print_help_verb(FILE *f, const verb *v)
{
    fprintf(f, "usage: zenn-admin %s%s%s %s\n\n%s.\n\n%s", v->noun, v->verb ? " " : "", v->verb ? v->verb : "",
            v->synopsis, v->summary, v->help);
    fprintf(f, "\n--config PATH  the configuration file (else $ZENN_CONFIG, else the default)\n");
}

static void print_help_noun(FILE *f, const char *noun)
{
    fprintf(f, "usage:\n");
    for (size_t i = 0; i < N_VERBS; i++)
        if (strcmp(VERBS[i].noun, noun) == 0)
            print_verb_line(f, &VERBS[i]);
    fprintf(f, "'zenn-admin %s VERB --help' describes a command.\n", noun);
}

static bool noun_known(const char *noun)
{
    for (size_t i = 0; i < N_VERBS; i++)
        if (strcmp(VERBS[i].noun, noun) == 0)
            return true;
    return false;
}

/* The command named by words[0] (and words[1] for two-word commands), or NULL. *used gets how
 * many words named it. */
static const verb *find_verb(int n, char **words, int *used)
{
    for (size_t i = 0; i < N_VERBS; i++) {
        const verb *v = &VERBS[i];
        if (n < 1 || strcmp(v->noun, words[0]) != 0)
            continue;
        if (!v->verb) {
            *used = 1;
            return v;
        }
        if (n >= 2 && strcmp(v->verb, words[1]) == 0) {
            *used = 2;
            return v;
        }
    }
    return NULL;
}

static bool is_help(const char *s)
{
    return strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0;
}

/* Is "name" (nlen bytes) among v's options? Sets *takes_value. */
static bool opt_known(const verb *v, const char *name, size_t nlen, bool *takes_value)
{
    const char *p = v->opts;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t l = strcspn(p, " ");
        if (l == 0)
            break;
        bool val = p[l - 1] == '=';
        size_t nl = val ? l - 1 : l;
        if (nl == nlen && strncmp(p, name, nlen) == 0) {
            *takes_value = val;
            return true;
        }
        p += l;
    }
    return false;
}

static int parse_args(app *a, const verb *v, int argc, char **argv, args *g)
{
    memset(g, 0, sizeof *g);
    g->verb = v;
    bool opts_done = false;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (!opts_done && strcmp(s, "--") == 0) {
            opts_done = true;
            continue;
        }
        if (opts_done || strncmp(s, "--", 2) != 0) {
            if (g->npos == v->max_pos)
                return bad_usage(g, "unexpected argument '%s'", s);
            g->pos[g->npos++] = s;
            continue;
        }
        const char *name = s + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        bool takes = false, is_config = nlen == 6 && strncmp(name, "config", 6) == 0;
        if (!is_config && !opt_known(v, name, nlen, &takes))
            return bad_usage(g, "unknown option --%.*s", (int)nlen, name);
        const char *val = "";
        if (is_config || takes) {
            if (eq)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return bad_usage(g, "option --%.*s needs a value", (int)nlen, name);
        } else if (eq) {
            return bad_usage(g, "option --%.*s takes no value", (int)nlen, name);
        }
        if (is_config) {
            a->config_path = val;
            continue;
        }
        for (int k = 0; k < g->nopt; k++)
            if (g->opt[k].nlen == nlen && strncmp(g->opt[k].name, name, nlen) == 0)
                return bad_usage(g, "option --%.*s given twice", (int)nlen, name);
        if (g->nopt == MAX_OPTS)
            return bad_usage(g, "too many options");
        g->opt[g->nopt].name = name;
        g->opt[g->nopt].nlen = nlen;
        g->opt[g->nopt].value = val;
        g->nopt++;
    }
    if (g->npos < v->min_pos)
        return bad_usage(g, "missing argument%s", v->min_pos - g->npos > 1 ? "s" : "");
    return RC_OK;
}

/* `zenn-admin help [NOUN [VERB]]` */
static int cmd_help(int n, char **words)
{
    if (n == 0) {
        print_help_all(stdout);
        return RC_OK;
    }
    int used = 0;
    const verb *v = find_verb(n, words, &used);
    if (v) {
        print_help_verb(stdout, v);
        return RC_OK;
    }
    if (noun_known(words[0]) && n == 1) {
        print_help_noun(stdout, words[0]);
        return RC_OK;
    }
    fprintf(stderr, "zenn-admin: help: unknown command '%s%s%s'\n", words[0], n > 1 ? " " : "", n > 1 ? words[1] : "");
    return RC_USAGE;
}

/* Entry point: global options, then the command words, then the command's arguments. */
int main(int argc, char **argv)
{
    static app a;
    zg_log_init("zenn-admin", ZG_LOG_WARN);
    int i = 1;
    while (i < argc && strncmp(argv[i], "-", 1) == 0) {
        const char *s = argv[i];
        if (is_help(s)) {
            print_help_all(stdout);
            return RC_OK;
        } else if (strcmp(s, "--config") == 0 && i + 1 < argc) {
            a.config_path = argv[i + 1];
            i += 2;
        } else if (strncmp(s, "--config=", 9) == 0) {
            a.config_path = s + 9;
            i++;
        } else {
            fprintf(stderr, "zenn-admin: unknown or incomplete option '%s'\n", s);
            print_help_all(stderr);
            return RC_USAGE;
        }
    }
    if (i == argc) {
        print_help_all(stderr);
        return RC_USAGE;
    }
    if (strcmp(argv[i], "help") == 0)
        return cmd_help(argc - i - 1, argv + i + 1);
    int used = 0;
    const verb *v = find_verb(argc - i, argv + i, &used);
    if (!v) {
        const char *noun = argv[i];
        if (!noun_known(noun)) {
            fprintf(stderr, "zenn-admin: unknown command '%s' (see 'zenn-admin help')\n", noun);
            return RC_USAGE;
        }
        if (i + 1 < argc && is_help(argv[i + 1])) {
            print_help_noun(stdout, noun);
            return RC_OK;
        }
        if (i + 1 < argc)
            fprintf(stderr, "zenn-admin: unknown command '%s %s'\n", noun, argv[i + 1]);
        else
            fprintf(stderr, "zenn-admin: '%s' needs a verb\n", noun);
        print_help_noun(stderr, noun);
        return RC_USAGE;
    }
    i += used;
    for (int k = i; k < argc && strcmp(argv[k], "--") != 0; k++)
        if (is_help(argv[k])) {
            print_help_verb(stdout, v);
            return RC_OK;
        }
    args g;
    int rc = parse_args(&a, v, argc - i, argv + i, &g);
    if (rc == RC_OK)
        rc = v->fn(&a, &g);
    fflush(stdout);
    zg_db_free(a.db);
    return rc;
}
