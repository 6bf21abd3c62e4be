#include "zg_num.h"
#include "tap.h"
#include <stdint.h>

int main(void)
{
    static const struct {
        const char *s;
        int64_t min, max;
        int rc;
        int64_t v;
    } ints[] = {
        {"0", 0, 10, 0, 0},
        {"10", 0, 10, 0, 10},
        {"11", 0, 10, -1, 0},
        {"-1", 0, 10, -1, 0},
        {"-5", -10, 10, 0, -5},
        {"", 0, 10, -1, 0},
        {"-", -10, 10, -1, 0},
        {"1a", 0, 100, -1, 0},
        {" 1", 0, 100, -1, 0},
        {"1 ", 0, 100, -1, 0},
        {"+1", 0, 100, -1, 0},
        {"9223372036854775807", INT64_MIN, INT64_MAX, 0, INT64_MAX},
        {"9223372036854775808", INT64_MIN, INT64_MAX, -1, 0},
        {"-9223372036854775808", INT64_MIN, INT64_MAX, 0, INT64_MIN},
        {"-9223372036854775809", INT64_MIN, INT64_MAX, -1, 0},
        {"99999999999999999999999", INT64_MIN, INT64_MAX, -1, 0},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t v = 0;
        int rc = zg_parse_i64z(ints[i].s, ints[i].min, ints[i].max, &v);
        is_int(rc, ints[i].rc, "parse_i64 '%s' rc", ints[i].s);
        if (rc == 0 && ints[i].rc == 0)
            is_int(v, ints[i].v, "parse_i64 '%s' value", ints[i].s);
    }

    static const struct {
        const char *s;
        int rc;
        int64_t micros;
    } usd[] = {
        {"10", 0, 10000000},
        {"12.5", 0, 12500000},
        {"0.000001", 0, 1},
        {".5", 0, 500000},
        {"100.", -1, 0},
        {"1.1234567", -1, 0},
        {"-5", -1, 0},
        {"-0.5", -1, 0},
        {"+1", -1, 0},
        {"1000000000000.000001", -1, 0},
        {"1e3", -1, 0},
        {"", -1, 0},
        {"abc", -1, 0},
        {"1.2.3", -1, 0},
        {"1000000000000", 0, 1000000000000000000LL},
        {"1000000000001", -1, 0},
    };
    for (size_t i = 0; i < sizeof usd / sizeof usd[0]; i++) {
        int64_t v = 0;
        int rc = zg_parse_usd_micros(usd[i].s, &v);
        is_int(rc, usd[i].rc, "usd '%s' rc", usd[i].s);
        if (rc == 0 && usd[i].rc == 0)
            is_int(v, usd[i].micros, "usd '%s' micros", usd[i].s);
    }

    char out[64];
    zg_fmt_usd(12500000, out, sizeof out);
    is_str(out, "12.500000", "format 12.5 dollars");
    zg_fmt_usd(-1, out, sizeof out);
    is_str(out, "-0.000001", "format negative micro-dollar");

    /* price arithmetic: sum of exact products, one half-up rounding to a credit */
    static const struct {
        const char *what;
        int64_t tokens[5], prices[5];
        int64_t credits;
    } cost[] = {
        {"1M sonnet input", {1000000}, {3000000}, 3000000},
        {"1 token sonnet input = 3 credits", {1}, {3000000}, 3},
        {"1000 cache-read at $0.0028/MTok = 2.8 -> 3", {1000}, {2800}, 3},
        {"178 cache-read at $0.0028 = 0.4984 -> 0", {178}, {2800}, 0},
        {"179 cache-read at $0.0028 = 0.5012 -> 1", {179}, {2800}, 1},
        {"half rounds up: 1 token at $0.50/MTok = 0.5", {1}, {500000}, 1},
        {"just under half rounds down: 1 token at $0.499999/MTok", {1}, {499999}, 0},
        {"components summed before rounding", {179, 179}, {2800, 2800}, 1},
        {"opus in+out+cr+cw5+cw1h", {1000, 500, 2000, 300, 400}, {15000000, 75000000, 1500000, 18750000, 30000000},
         15000 + 37500 + 3000 + 5625 + 12000},
        {"negative tokens count as zero", {-5, 10}, {1000000, 1000000}, 10},
        {"huge counts clamp instead of overflowing", {INT64_MAX}, {180000000}, (int64_t)(((unsigned __int128)1 << 40) * 180000000 / 1000000)},
    };
    for (size_t i = 0; i < sizeof cost / sizeof cost[0]; i++)
        is_int(zg_price_tokens(cost[i].tokens, cost[i].prices, 5), cost[i].credits, "price: %s", cost[i].what);
    /* a column's text, 0 for what is not an integer */
    ok(zg_i64_or0("42") == 42 && zg_i64_or0("-7") == -7, "column integers");
    ok(zg_i64_or0(NULL) == 0 && zg_i64_or0("") == 0 && zg_i64_or0("1.5") == 0, "NULL, empty, decimal: 0");
    ok(zg_i64_or0("9223372036854775807") == INT64_MAX && zg_i64_or0("9223372036854775808") == 0, "range");
    return tap_done();
}
