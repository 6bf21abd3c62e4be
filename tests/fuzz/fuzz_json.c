/* libFuzzer harness: request body validation as the pipeline does it (json-c tokener with the depth
 * limit and UTF-8 validation), the OpenAI surfaces' parse hooks on what parses, and the JSON
 * writers: zg_buf_json_str and zg_err_body must turn any bytes into valid JSON text that json-c
 * reads back. */
#include "zg_buf.h"
#include "zg_err.h"
#include "zg_openai.h"
#include "zg_inspect.h"
#include "zg_pipeline.h"
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

static void parse_hooks(struct json_object *o)
{
    zg_call c;
    char why[256];
    memset(&c, 0, sizeof c);
    c.json = o;
    if (zg_openai_chat_parse(&c, why, sizeof why) == 0 && strlen(c.model_name) >= sizeof c.model_name)
        abort();
    memset(&c, 0, sizeof c);
    c.json = o;
    if (zg_openai_responses_parse(&c, why, sizeof why) == 0 && c.model_name[0] == '\0')
        abort();
    (void)zg_json_str(o, "model");
    int64_t n;
    if (zg_json_int(o, "max_tokens", &n) && n < 0)
        abort();
    (void)zg_json_bool(o, "stream");
}

static void roundtrip(const char *s, size_t n)
{
    zg_buf b;
    zg_buf_init(&b, 16 * n + 64);
    if (zg_buf_putc(&b, '"') || zg_buf_json_str(&b, s, n) || zg_buf_putc(&b, '"'))
        abort();
    struct json_tokener *tok = json_tokener_new_ex(4);
    json_tokener_set_flags(tok, JSON_TOKENER_VALIDATE_UTF8 | JSON_TOKENER_STRICT);
    struct json_object *o = json_tokener_parse_ex(tok, b.data, (int)b.len);
    if (!o || !json_object_is_type(o, json_type_string) || tok->char_offset != (int)b.len)
        abort(); /* the escaped text is not a valid JSON string */
    json_object_put(o);
    json_tokener_free(tok);
    zg_buf_free(&b);

    char msg[512];
    size_t m = n < sizeof msg - 1 ? n : sizeof msg - 1;
    memcpy(msg, s, m);
    msg[m] = '\0';
    for (int proto = ZG_PROTO_ANTHROPIC; proto <= ZG_PROTO_GEMINI; proto++) {
        zg_buf e;
        zg_buf_init(&e, 8192);
        if (zg_err_body(&e, (zg_proto)proto, (zg_errkind)(n % ZG_ERR_COUNT), msg) != ZG_OK)
            abort();
        struct json_object *d = json_tokener_parse(e.data);
        struct json_object *err;
        if (!d || !json_object_object_get_ex(d, "error", &err))
            abort(); /* not a protocol-shaped error */
        json_object_put(d);
        zg_buf_free(&e);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    struct json_tokener *tok = json_tokener_new_ex(JSON_MAX_DEPTH);
    if (!tok)
        return 0;
    json_tokener_set_flags(tok, JSON_TOKENER_VALIDATE_UTF8);
    struct json_object *o = json_tokener_parse_ex(tok, (const char *)data, (int)size);
    if (json_tokener_get_error(tok) == json_tokener_success && tok->char_offset == (int)size && o &&
        json_object_is_type(o, json_type_object)) {
        parse_hooks(o);
        /* what a surface sends upstream when it rewrites the body */
        size_t len = 0;
        const char *out = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                                            &len);
        if (!out)
            abort();
        /* what the pipeline checks before anything is forwarded: members named twice, input the
         * provider expands, strict UTF-8 (an offset inside the text) */
        char name[64];
        int dup = zg_inspect_duplicate((const char *)data, size, name, sizeof name);
        if (dup < -1 || dup > 1 || (dup == 1 && strlen(name) >= sizeof name))
            abort();
        (void)zg_inspect_expands(o);
    }
    if (zg_utf8_check((const char *)data, size) > size)
        abort();
    json_object_put(o);
    json_tokener_free(tok);
    roundtrip((const char *)data, size);
    return 0;
}
