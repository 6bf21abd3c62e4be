/* Usage query pieces (zg_uq) and CSV output (zg_csv): dates, ranges, group_by, cursors, quoting. */
#include "tap.h"
#include "zg_buf.h"
#include "zg_csv.h"
#include "zg_uq.h"
#include <stdint.h>

static void dates(void)
{
    int32_t d = 0;
    char t[16];
    ok(zg_uq_date("1970-01-01", &d) != 0, "dates before 2000 are refused");
    ok(zg_uq_date("2026-11-26", &d) == 0, "a date parses");
    zg_uq_date_fmt(d, t, sizeof t);
    is_str(t, "2026-11-26", "and formats back");
    is_int(d, 20783, "as days since 1970");
    ok(zg_uq_date("2024-02-29", &d) == 0, "a leap day");
    ok(zg_uq_date("2026-02-29", &d) != 0, "a leap day in a common year is refused");
    ok(zg_uq_date("2100-02-29", &d) != 0, "2100 is not a leap year");
    ok(zg_uq_date("2000-02-29", &d) == 0, "2000 is");
    ok(zg_uq_date("2026-13-01", &d) != 0, "month 13");
    ok(zg_uq_date("2026-04-31", &d) != 0, "April 31");
    ok(zg_uq_date("2026-1-01", &d) != 0, "one-digit month");
    ok(zg_uq_date("2026-01-01 ", &d) != 0, "trailing blank");
    ok(zg_uq_date("2026-0a-01", &d) != 0, "a letter");
    ok(zg_uq_date("2026--1-01", &d) != 0, "a sign");
    ok(zg_uq_date("", &d) != 0 && zg_uq_date(NULL, &d) != 0, "empty and absent");
    int32_t m;
    ok(zg_uq_month("2026-12", &m) == 0, "a month");
    zg_uq_date_fmt(zg_uq_next_month(m), t, sizeof t);
    is_str(t, "2027-01-01", "December's next month is January");
    zg_uq_date_fmt(zg_uq_next_month(m - 31 + 28), t, sizeof t);
    is_str(t, "2026-12-01", "from inside November");
    ok(zg_uq_month("2026-00", &m) != 0 && zg_uq_month("2026-1", &m) != 0 && zg_uq_month("2026-11-01", &m) != 0,
       "bad months");
}

static void ranges(void)
{
    int32_t today, a, b;
    char err[128];
    zg_uq_date("2026-11-26", &today);
    ok(zg_uq_range(NULL, NULL, today, &a, &b, err, sizeof err) == 0, "no dates: the last 30 days");
    is_int(b - a, 29, "30 days, today included");
    is_int(b, today, "ending today");
    ok(zg_uq_range("2026-11-01", "2026-11-01", today, &a, &b, err, sizeof err) == 0 && a == b, "one day");
    ok(zg_uq_range("2026-11-02", "2026-11-01", today, &a, &b, err, sizeof err) != 0, "from after to");
    is_str(err, "from is after to", "says so");
    ok(zg_uq_range("2025-10-23", "2026-11-26", today, &a, &b, err, sizeof err) == 0, "400 days");
    ok(zg_uq_range("2025-10-22", "2026-11-26", today, &a, &b, err, sizeof err) != 0, "401 days are refused");
    is_str(err, "the range covers 401 days; at most 400", "with the count");
    ok(zg_uq_range("yesterday", NULL, today, &a, &b, err, sizeof err) != 0, "a word");
    is_str(err, "from: expected a date YYYY-MM-DD (UTC)", "names the field");
    ok(zg_uq_range(NULL, "2026-11-31", today, &a, &b, err, sizeof err) != 0, "November 31");
}

static void group_by(void)
{
    int d[2], n;
    char err[128];
    ok(zg_uq_group_by("day", d, &n, err, sizeof err) == 0 && n == 1 && d[0] == ZG_DIM_DAY, "day");
    ok(zg_uq_group_by("day,model", d, &n, err, sizeof err) == 0 && n == 2 && d[1] == ZG_DIM_MODEL, "day,model");
    ok(zg_uq_group_by("surface,key", d, &n, err, sizeof err) == 0 && d[0] == ZG_DIM_SURFACE && d[1] == ZG_DIM_KEY,
       "surface,key in that order");
    ok(zg_uq_group_by("day,day", d, &n, err, sizeof err) != 0, "the same twice");
    ok(zg_uq_group_by("day,model,key", d, &n, err, sizeof err) != 0, "three");
    ok(zg_uq_group_by("hour", d, &n, err, sizeof err) != 0, "unknown");
    ok(zg_uq_group_by("day,", d, &n, err, sizeof err) != 0, "a trailing comma");
    ok(zg_uq_group_by("", d, &n, err, sizeof err) != 0, "empty");
    ok(zg_uq_group_by("Day", d, &n, err, sizeof err) != 0, "names are lower case");
}

static void cursors(void)
{
    char c[ZG_UQ_CURSOR_LEN], t[32];
    int64_t id = 0;
    ok(zg_uq_cursor_make("2026-11-26 18:02:57.123", 4567, c, sizeof c) == 0, "a cursor");
    is_str(c, "20261126180257123_4567", "digits and the id");
    ok(zg_uq_cursor_parse(c, t, sizeof t, &id) == 0, "reads back");
    is_str(t, "2026-11-26 18:02:57.123", "the time");
    is_int(id, 4567, "the id");
    ok(zg_uq_cursor_make("2026-11-26 18:02:57", 1, c, sizeof c) != 0, "a time without milliseconds");
    ok(zg_uq_cursor_parse("20261126180257123_", t, sizeof t, &id) != 0, "no id");
    ok(zg_uq_cursor_parse("20261126180257123_0", t, sizeof t, &id) != 0, "id 0");
    ok(zg_uq_cursor_parse("20261126180254246_09026", t, sizeof t, &id) != 0, "a leading zero (one spelling each)");
    ok(zg_uq_cursor_parse("20261126180257123_-5", t, sizeof t, &id) != 0, "a negative id");
    ok(zg_uq_cursor_parse("20261126180257123_5x", t, sizeof t, &id) != 0, "junk after the id");
    ok(zg_uq_cursor_parse("20261126180257123_99999999999999999999", t, sizeof t, &id) != 0, "an id too large");
    ok(zg_uq_cursor_parse("20261326180257123_5", t, sizeof t, &id) != 0, "month 13");
    ok(zg_uq_cursor_parse("2026112618025712_5", t, sizeof t, &id) != 0, "a digit short");
    ok(zg_uq_cursor_parse("' OR 1=1 --", t, sizeof t, &id) != 0, "text");
}

static const char *csv(const char *s)
{
    static zg_buf b;
    zg_buf_free(&b);
    zg_buf_init(&b, 64);
    zg_csv_text(&b, true, s, strlen(s));
    zg_csv_int(&b, false, -42);
    zg_csv_micros(&b, false, 1250000);
    zg_csv_end(&b);
    return zg_buf_cstr(&b);
}

static void csv_fields(void)
{
    is_str(csv("plain"), "plain,-42,1.250000\r\n", "plain text as is, numbers, micro-units with six places");
    is_str(csv("a,b"), "\"a,b\",-42,1.250000\r\n", "a comma quotes the field");
    is_str(csv("say \"hi\""), "\"say \"\"hi\"\"\",-42,1.250000\r\n", "quotes doubled");
    is_str(csv("two\nlines"), "\"two\nlines\",-42,1.250000\r\n", "a line break quoted");
    is_str(csv("=HYPERLINK(1)"), "\"'=HYPERLINK(1)\",-42,1.250000\r\n", "a formula is defused");
    is_str(csv("@SUM"), "\"'@SUM\",-42,1.250000\r\n", "@ too");
    is_str(csv(""), ",-42,1.250000\r\n", "empty");
    zg_buf b;
    zg_buf_init(&b, 8);
    zg_buf_puts(&b, "ab");
    is_int(zg_csv_text(&b, false, "x,yyyyyyy", 9), ZG_E_TOOBIG, "over the cap: too large");
    is_str(zg_buf_cstr(&b), "ab,", "the field is not half written");
    zg_buf_free(&b);
    csv("");
}

int main(void)
{
    dates();
    ranges();
    group_by();
    cursors();
    csv_fields();
    return tap_done();
}
