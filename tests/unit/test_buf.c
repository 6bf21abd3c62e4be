#include "zg_buf.h"
#include "tap.h"

int main(void)
{
    zg_buf b;
    zg_buf_init(&b, 8);
    is_str(zg_buf_cstr(&b), "", "empty buffer reads as empty string");
    is_int(zg_buf_append(&b, "abcd", 4), ZG_OK, "append within cap");
    is_int(zg_buf_append(&b, "efgh", 4), ZG_OK, "append up to cap exactly");
    is_int(zg_buf_append(&b, "i", 1), ZG_E_TOOBIG, "one byte over cap is refused");
    is_str(zg_buf_cstr(&b), "abcdefgh", "refused append leaves contents unchanged");
    zg_buf_consume(&b, 3);
    is_str(zg_buf_cstr(&b), "defgh", "consume drops the front");
    zg_buf_reset(&b);
    is_int(b.len, 0, "reset empties");
    is_int(zg_buf_printf(&b, "%d-%s", 42, "x"), ZG_OK, "printf fits");
    is_str(zg_buf_cstr(&b), "42-x", "printf output");
    is_int(zg_buf_printf(&b, "%s", "123456789"), ZG_E_TOOBIG, "printf over cap refused");
    is_str(zg_buf_cstr(&b), "42-x", "refused printf leaves contents");
    zg_buf_free(&b);

    static const struct {
        const char *in;
        const char *out;
    } esc[] = {
        {"plain", "plain"},
        {"q\"uote", "q\\\"uote"},
        {"back\\slash", "back\\\\slash"},
        {"nl\nx", "nl\\nx"},
        {"tab\tcr\r", "tab\\tcr\\r"},
        {"\x01", "\\u0001"},
        {"\x1f", "\\u001f"},
        {"héllo", "héllo"},
        {"\xf0\x9f\x98\x80 4-byte", "\xf0\x9f\x98\x80 4-byte"},
        {"bad\xff", "bad\xef\xbf\xbd"},
        {"cut\xc3", "cut\xef\xbf\xbd"},
        {"\xc3(", "\xef\xbf\xbd("},
        {"overlong\xc0\xaf", "overlong\xef\xbf\xbd\xef\xbf\xbd"},
        {"surrogate\xed\xa0\x80", "surrogate\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"big\xf4\x90\x80\x80", "big\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xe2\x82\xac\xe2\x82", "\xe2\x82\xac\xef\xbf\xbd\xef\xbf\xbd"},
    };
    for (size_t i = 0; i < sizeof esc / sizeof esc[0]; i++) {
        zg_buf_init(&b, 1024);
        zg_buf_json_str(&b, esc[i].in, strlen(esc[i].in));
        is_str(zg_buf_cstr(&b), esc[i].out, "json escape case %zu", i);
        zg_buf_free(&b);
    }
    /* strict UTF-8: the offset of the first bad byte */
    static const struct {
        const char *s;
        size_t bad;
    } u8[] = {
        {"plain ascii", 11},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14},
        {"a\xc0\xaf", 1},          /* overlong '/' */
        {"ab\xe0\x80\xaf", 2},     /* overlong, 3 bytes */
        {"\xed\xa0\x80", 0},        /* an encoded surrogate */
        {"x\xf4\x90\x80\x80", 1},  /* above U+10FFFF */
        {"x\x80", 1},                /* a stray continuation byte */
        {"ok\xe2\x82", 2},           /* cut short */
        {"\xff", 0},
    };
    for (size_t i = 0; i < sizeof u8 / sizeof u8[0]; i++)
        is_int(zg_utf8_check(u8[i].s, strlen(u8[i].s)), u8[i].bad, "utf-8 check case %zu", i);
    /* growth across many appends stays correct */
    zg_buf_init(&b, 100000);
    int rc = ZG_OK;
    for (int i = 0; i < 10000 && rc == ZG_OK; i++)
        rc = zg_buf_append(&b, "0123456789", 10);
    is_int(rc, ZG_OK, "10000 appends of 10 bytes fit in 100000");
    is_int(b.len, 100000, "length after growth");
    is_int(zg_buf_putc(&b, 'x'), ZG_E_TOOBIG, "putc over cap refused");
    zg_buf_free(&b);
    return tap_done();
}
