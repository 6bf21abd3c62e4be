#include "zg_err.h"
#include "tap.h"

int main(void)
{
    static const struct {
        zg_proto proto;
        zg_errkind kind;
        const char *msg;
        const char *json;
        int status;
    } cases[] = {
        {ZG_PROTO_ANTHROPIC, ZG_ERR_AUTH, "bad key",
         "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"bad key\"}}", 401},
        {ZG_PROTO_ANTHROPIC, ZG_ERR_BALANCE, "top up",
         "{\"type\":\"error\",\"error\":{\"type\":\"billing_error\",\"message\":\"top up\"}}", 402},
        {ZG_PROTO_ANTHROPIC, ZG_ERR_RATE, "slow",
         "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow\"}}", 429},
        {ZG_PROTO_ANTHROPIC, ZG_ERR_PLAN, "max",
         "{\"type\":\"error\",\"error\":{\"type\":\"permission_error\",\"message\":\"max\"}}", 403},
        {ZG_PROTO_OPENAI, ZG_ERR_AUTH, "bad key",
         "{\"error\":{\"message\":\"bad key\",\"type\":\"invalid_request_error\",\"param\":null,"
         "\"code\":\"invalid_api_key\"}}",
         401},
        {ZG_PROTO_OPENAI, ZG_ERR_INVALID, "x",
         "{\"error\":{\"message\":\"x\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}", 400},
        {ZG_PROTO_OPENAI, ZG_ERR_COMING_SOON, "soon",
         "{\"error\":{\"message\":\"soon\",\"type\":\"server_error\",\"param\":null,\"code\":\"model_coming_soon\"}}",
         503},
        {ZG_PROTO_GEMINI, ZG_ERR_AUTH, "bad key",
         "{\"error\":{\"code\":401,\"message\":\"bad key\",\"status\":\"UNAUTHENTICATED\"}}", 401},
        {ZG_PROTO_GEMINI, ZG_ERR_MODEL_NOT_FOUND, "nope",
         "{\"error\":{\"code\":404,\"message\":\"nope\",\"status\":\"NOT_FOUND\"}}", 404},
        {ZG_PROTO_GEMINI, ZG_ERR_TIMEOUT, "slow",
         "{\"error\":{\"code\":504,\"message\":\"slow\",\"status\":\"DEADLINE_EXCEEDED\"}}", 504},
        {ZG_PROTO_ANTHROPIC, ZG_ERR_INVALID, "quote \" and \\ and \n",
         "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"quote \\\" and \\\\ and "
         "\\n\"}}",
         400},
        {ZG_PROTO_ANTHROPIC, ZG_ERR_TOO_LARGE, "big",
         "{\"type\":\"error\",\"error\":{\"type\":\"request_too_large\",\"message\":\"big\"}}", 413},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        zg_buf b;
        zg_buf_init(&b, 4096);
        zg_err_body(&b, cases[i].proto, cases[i].kind, cases[i].msg);
        is_str(zg_buf_cstr(&b), cases[i].json, "error body case %zu", i);
        is_int(zg_err_status(cases[i].kind), cases[i].status, "status case %zu", i);
        zg_buf_free(&b);
    }
    static const struct {
        zg_errkind k;
        int st;
    } st[] = {{ZG_ERR_KEY_LIMIT, 402}, {ZG_ERR_NOT_FOUND, 404}, {ZG_ERR_METHOD, 405}, {ZG_ERR_UPGRADE, 426},
              {ZG_ERR_INTERNAL, 500},  {ZG_ERR_UPSTREAM, 502},  {ZG_ERR_UNAVAILABLE, 503}, {ZG_ERR_COUNT, 500}};
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++)
        is_int(zg_err_status(st[i].k), st[i].st, "status of kind %d", (int)st[i].k);
    return tap_done();
}
