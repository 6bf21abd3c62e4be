/* The settlement record codec (common/zg_record.c): every line kind round-trips, malformed lines
 * are refused whole, fields that would break a line are made safe, older spool lines still read,
 * and zg_flush rows are the JSON the procedure expects. */
#include "zg_record.h"
#include "tap.h"
#include <json-c/json.h>
#include <stdlib.h>

static zg_record sample(void)
{
    zg_record r;
    memset(&r, 0, sizeof r);
    zg_record_field(r.rid, sizeof r.rid, "req_0123456789abcdef");
    zg_record_field(r.grp, sizeof r.grp, "messages");
    zg_record_field(r.surface, sizeof r.surface, "messages");
    zg_record_field(r.model, sizeof r.model, "claude-opus-4-7");
    zg_record_field(r.provider, sizeof r.provider, "anthropic");
    zg_record_field(r.status, sizeof r.status, "settled");
    zg_record_field(r.reason, sizeof r.reason, "client_closed");
    r.user = 7;
    r.key = 9;
    r.hold = 123456;
    r.credits = 61300;
    r.rel = 60000;
    r.u = (zg_usage){.input = 2000, .output = 20100, .cache_read = 5, .cache_write_5m = 6, .cache_write_1h = 7,
                     .reasoning = 20000, .units = 1};
    r.est = 0;
    r.ups = 200;
    r.ttfb = 140;
    r.dur = 9000;
    return r;
}

static int same_settlement(const zg_record *a, const zg_record *b)
{
    return strcmp(a->status, b->status) == 0 && strcmp(a->reason, b->reason) == 0 && a->credits == b->credits &&
           a->u.input == b->u.input && a->u.output == b->u.output && a->u.cache_read == b->u.cache_read &&
           a->u.cache_write_5m == b->u.cache_write_5m && a->u.cache_write_1h == b->u.cache_write_1h &&
           a->u.reasoning == b->u.reasoning && a->u.units == b->u.units && a->est == b->est && a->ups == b->ups &&
           a->ttfb == b->ttfb && a->dur == b->dur;
}

static int same_admission(const zg_record *a, const zg_record *b)
{
    return strcmp(a->rid, b->rid) == 0 && strcmp(a->grp, b->grp) == 0 && strcmp(a->surface, b->surface) == 0 &&
           strcmp(a->model, b->model) == 0 && strcmp(a->provider, b->provider) == 0 && a->user == b->user &&
           a->key == b->key && a->hold == b->hold;
}

static int parse_str(const char *s, zg_record *r)
{
    char buf[ZG_REC_LINE_MAX + 64];
    snprintf(buf, sizeof buf, "%s", s);
    return zg_record_parse(buf, r);
}

int main(void)
{
    zg_record r = sample(), back;
    char line[ZG_REC_LINE_MAX];

    /* S: everything */
    size_t n = zg_record_line('S', &r, line, sizeof line);
    ok(n > 0 && line[n - 1] == '\n', "S formatted");
    is_int(zg_record_parse(line, &back), 'S', "S parsed");
    ok(same_admission(&r, &back) && same_settlement(&r, &back), "S round-trips");
    is_int(back.rel, 60000, "S keeps what came out of the lease");

    /* X: the settlement and the id */
    zg_record_line('X', &r, line, sizeof line);
    is_int(zg_record_parse(line, &back), 'X', "X parsed");
    ok(same_settlement(&r, &back) && strcmp(back.rid, r.rid) == 0, "X round-trips");
    is_int(back.user, 0, "X carries no admission");

    /* A and P come back as their abandonment at the hold */
    for (int k = 0; k < 2; k++) {
        int kind = "AP"[k];
        zg_record_line(kind, &r, line, sizeof line);
        is_int(zg_record_parse(line, &back), kind, "%c parsed", kind);
        ok(same_admission(&r, &back), "%c round-trips", kind);
        ok(strcmp(back.status, "abandoned") == 0 && back.credits == r.hold && back.est == 1 && back.ttfb == -1 &&
               back.dur == -1,
           "%c reads as abandoned at its hold, estimated", kind);
    }

    /* U: credits and counts; D: only the id */
    zg_record_line('U', &r, line, sizeof line);
    is_int(zg_record_parse(line, &back), 'U', "U parsed");
    ok(back.credits == r.credits && back.u.output == r.u.output && back.u.reasoning == r.u.reasoning &&
           back.u.units == 1,
       "U round-trips");
    is_int(zg_record_line('D', &r, line, sizeof line), strlen("D req_0123456789abcdef\n"), "D is the id alone");
    is_int(zg_record_parse(line, &back), 'D', "D parsed");

    /* unknown kinds are not written */
    is_int(zg_record_line('Q', &r, line, sizeof line), 0, "unknown kind refused");
    is_int(zg_record_line(0, &r, line, sizeof line), 0, "kind 0 refused");
    is_int(zg_record_line('S', &r, line, 40), 0, "a line that does not fit is not cut");

    /* extremes survive */
    zg_record big = sample();
    big.credits = INT64_MAX;
    big.u.input = INT64_MAX;
    big.rel = INT64_MIN;
    big.ttfb = -1;
    memset(big.model, 'm', sizeof big.model - 1);
    zg_record_line('S', &big, line, sizeof line);
    is_int(zg_record_parse(line, &back), 'S', "extremes parsed");
    ok(back.credits == INT64_MAX && back.u.input == INT64_MAX && back.rel == INT64_MIN && back.ttfb == -1 &&
           strlen(back.model) == 64,
       "extremes round-trip");

    /* fields that would split a line */
    zg_record odd = sample();
    zg_record_field(odd.model, sizeof odd.model, "bad model\nwith\"quote\\");
    is_str(odd.model, "bad_model_with_quote_", "blanks, newlines, quotes, backslashes made safe");
    zg_record_field(odd.rid, sizeof odd.rid, NULL);
    is_str(odd.rid, "", "NULL is empty");
    zg_record_field(odd.grp, sizeof odd.grp, "a-group-name-that-is-far-too-long");
    is_int(strlen(odd.grp), sizeof odd.grp - 1, "cut to fit");

    /* malformed lines are refused whole */
    const char *bad[] = {
        "",
        "S",
        "S req 1 2 g s m p 3",                                  /* too few */
        "U req 1 2 3 4 5 6 7",                                  /* one short */
        "U req 1 2 3 4 5 6 7 8 9",                              /* one too many */
        "U req -1 2 3 4 5 6 7 8",                               /* negative credits */
        "A req x 2 g s m p 3",                                  /* not a number */
        "A req 1 2 g s m p 99999999999999999999",               /* overflow */
        "D req extra",
        "Z req",
        "SS req 1 2 g s m p 3",
        "X req settled complete 1 0 1 2 3 4 5 6 7 2 200 5 9",    /* estimated must be 0 or 1 */
        "X req settled complete 1 0 1 2 3 4 5 6 7 0 1000 5 9",   /* no such HTTP status */
        "X 01234567890123456789012345678901234567890123 settled complete 1 0 1 2 3 4 5 6 7 0 200 5 9",
        "A a b c d e f g h i j k l m n o p q r s t u v w x y z", /* too many fields */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        is_int(parse_str(bad[i], &back), 0, "malformed refused: '%s'", bad[i]);

    /* the older spool form: rid SETTLEMENT without a kind or "released" */
    is_int(parse_str("req-8 settled complete 42 10 42 1 2 3 4 5 0 200 5 9\n", &back), 'X', "older spool line read");
    ok(strcmp(back.rid, "req-8") == 0 && back.credits == 42 && back.u.output == 42 && back.u.reasoning == 4 &&
           back.u.units == 5 && back.rel == 0 && back.ups == 200 && back.dur == 9,
       "older spool line's fields");

    /* zg_flush rows */
    zg_buf b;
    zg_buf_init(&b, 4096);
    zg_record j = sample();
    j.ups = 0;
    j.dur = 5000000000LL;
    zg_record_field(j.channel, sizeof j.channel, "anthropic-b");
    j.attempts = 2;
    is_int(zg_record_json(&b, &j), ZG_OK, "row written");
    json_object *o = json_tokener_parse(b.data);
    ok(o && json_object_is_type(o, json_type_array) && json_object_array_length(o) == 25, "an array of 25");
    if (o) {
        is_str(json_object_get_string(json_object_array_get_idx(o, 0)), "req_0123456789abcdef", "[0] request id");
        is_int(json_object_get_int64(json_object_array_get_idx(o, 1)), 7, "[1] user");
        is_str(json_object_get_string(json_object_array_get_idx(o, 3)), "messages", "[3] group");
        is_int(json_object_get_int64(json_object_array_get_idx(o, 10)), 61300, "[10] credits");
        is_int(json_object_get_int64(json_object_array_get_idx(o, 11)), 60000, "[11] released");
        is_int(json_object_get_int64(json_object_array_get_idx(o, 17)), 20000, "[17] reasoning");
        ok(json_object_array_get_idx(o, 20) == NULL, "[20] no upstream status: null");
        is_int(json_object_get_int64(json_object_array_get_idx(o, 21)), 140, "[21] ttfb");
        is_int(json_object_get_int64(json_object_array_get_idx(o, 22)), 2000000000, "[22] duration capped");
        is_str(json_object_get_string(json_object_array_get_idx(o, 23)), "anthropic-b", "[23] channel");
        is_int(json_object_get_int64(json_object_array_get_idx(o, 24)), 2, "[24] attempts");
        json_object_put(o);
    }
    {
        /* a settlement line carries the channel and the attempts; one written before channels parses
         * with none and 1 */
        char sline[ZG_REC_LINE_MAX];
        size_t sn = zg_record_line('S', &j, sline, sizeof sline);
        ok(sn > 0, "settlement line with a channel written");
        zg_record back2;
        is_int(zg_record_parse(sline, &back2), 'S', "and read back");
        ok(strcmp(back2.channel, "anthropic-b") == 0 && back2.attempts == 2, "with its channel and attempts");
        zg_record none = sample();
        sn = zg_record_line('X', &none, sline, sizeof sline);
        is_int(zg_record_parse(sline, &back2), 'X', "a line without a channel reads back");
        ok(back2.channel[0] == '\0' && back2.attempts == 1, "as none, one attempt");
        char old[] = "X req-9 settled complete 5 0 1 2 0 0 0 0 0 0 200 10 20\n";
        is_int(zg_record_parse(old, &back2), 'X', "a line written before channels");
        ok(back2.channel[0] == '\0' && back2.attempts == 1 && back2.dur == 20, "reads with none, one attempt");
    }
    zg_buf tiny;
    zg_buf_init(&tiny, 16);
    ok(zg_record_json(&tiny, &j) == ZG_E_TOOBIG, "a full buffer says so");
    zg_buf_free(&tiny);
    zg_buf_free(&b);
    is_int(zg_record_ms(-5), -1, "negative time: none");
    return tap_done();
}
