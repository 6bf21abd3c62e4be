/* libFuzzer harness: the INI parser and the settings built from it, plus the number parsers the
 * settings use. Errors must come with a message; settings that load must be within their ranges. */
#include "zg_config.h"
#include "zg_num.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512] = "";
    zg_config *c = zg_config_parse((const char *)data, size, "fuzz.conf", err, sizeof err);
    if (!c) {
        if (!err[0])
            abort(); /* a refusal always says why */
    } else {
        (void)zg_config_get(c, "server", "threads", NULL);
        (void)zg_config_get(c, "provider.openai", "api_key", "");
        static zg_settings s;
        err[0] = '\0';
        if (zg_settings_from(&s, c, err, sizeof err) == 0) {
            if (s.threads < 1 || s.max_body_bytes < 1 || s.idle_timeout < 1 || s.reap_after < 60 ||
                !memchr(s.spool_path, '\0', sizeof s.spool_path))
                abort();
        } else if (!err[0]) {
            abort();
        }
        zg_config_free(c);
    }
    /* numbers: the same bytes as an integer and as dollars */
    int64_t v;
    if (zg_parse_i64((const char *)data, size, -1000, 1000, &v) == 0 && (v < -1000 || v > 1000))
        abort();
    if (size < 64) {
        char buf[64];
        memcpy(buf, data, size);
        buf[size] = '\0';
        if (zg_parse_usd_micros(buf, &v) == 0) {
            char back[64];
            zg_fmt_usd(v, back, sizeof back);
            int64_t again;
            if (v < 0 || zg_parse_usd_micros(back, &again) != 0 || again != v)
                abort();
        }
    }
    return 0;
}
