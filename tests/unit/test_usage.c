/* zg_usage: usage read from each provider's real-looking events and bodies, the text counted for
 * estimates, and zg_usage_cost's exact pricing with one rounding (half up). */
#include "zg_openai.h"
#include "zg_usage.h"
#include "tap.h"
#include <string.h>

#define MAXEV 6

/* Expected numbers; -1 = do not check. */
typedef struct {
    long long input, output, cache_read, cw5, cw1, reasoning, units;
    int have_input, have_output, finished;
} want;

static const struct {
    const char *name;
    zg_usage_kind kind;
    int body; /* 1: data[0] is a whole response body; 0: events */
    const char *ev[MAXEV];
    const char *data[MAXEV];
    want w;
} cases[] = {
    /* ---- Anthropic ---- */
    {"anthropic stream, cache_creation breakdown",
     ZG_USAGE_ANTHROPIC,
     0,
     {"message_start", "content_block_delta", "message_delta", "message_stop"},
     {"{\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\","
      "\"model\":\"claude-sonnet-4-6\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{"
      "\"input_tokens\":1000,\"cache_creation_input_tokens\":700,\"cache_read_input_tokens\":2000,"
      "\"cache_creation\":{\"ephemeral_5m_input_tokens\":300,\"ephemeral_1h_input_tokens\":400},"
      "\"output_tokens\":1,\"service_tier\":\"standard\"}}}",
      "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}",
      "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},"
      "\"usage\":{\"output_tokens\":500}}",
      "{\"type\":\"message_stop\"}"},
     {1000, 500, 2000, 300, 400, 0, 0, 1, 1, 1}},
    {"anthropic stream, cache creation without breakdown is 5-minute",
     ZG_USAGE_ANTHROPIC,
     0,
     {"message_start", "message_delta", "message_stop"},
     {"{\"type\":\"message_start\",\"message\":{\"id\":\"msg_02\",\"usage\":{\"input_tokens\":12,"
      "\"cache_creation_input_tokens\":700,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}",
      "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"input_tokens\":12,"
      "\"cache_creation_input_tokens\":700,\"cache_read_input_tokens\":0,\"output_tokens\":88}}",
      "{\"type\":\"message_stop\"}"},
     {12, 88, 0, 700, 0, 0, 0, 1, 1, 1}},
    {"anthropic stream cut after message_start: output not final",
     ZG_USAGE_ANTHROPIC,
     0,
     {"message_start", "ping"},
     {"{\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":300,\"output_tokens\":1}}}",
      "{\"type\":\"ping\"}"},
     {300, 1, 0, 0, 0, 0, 0, 1, 0, 0}},
    {"anthropic body",
     ZG_USAGE_ANTHROPIC,
     1,
     {NULL},
     {"{\"id\":\"msg_03\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}],"
      "\"usage\":{\"input_tokens\":40,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":60,"
      "\"cache_creation\":{\"ephemeral_5m_input_tokens\":0,\"ephemeral_1h_input_tokens\":0},\"output_tokens\":9}}"},
     {40, 9, 60, 0, 0, 0, 0, 1, 1, 1}},
    /* ---- OpenAI chat ---- */
    {"openai chat body, cached and reasoning details",
     ZG_USAGE_OPENAI_CHAT,
     1,
     {NULL},
     {"{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
      "\"assistant\",\"content\":\"hi\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1000,"
      "\"completion_tokens\":500,\"total_tokens\":1500,\"prompt_tokens_details\":{\"cached_tokens\":400,"
      "\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":200,\"audio_tokens\":0,"
      "\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}"},
     {600, 500, 400, 0, 0, 200, 0, 1, 1, 1}},
    {"openai chat stream with include_usage",
     ZG_USAGE_OPENAI_CHAT,
     0,
     {"", "", "", ""},
     {"{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok\"},"
      "\"finish_reason\":null}],\"usage\":null}",
      "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}",
      "{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":50,"
      "\"completion_tokens\":20,\"total_tokens\":70,\"prompt_tokens_details\":{\"cached_tokens\":10},"
      "\"completion_tokens_details\":{\"reasoning_tokens\":5}}}",
      "[DONE]"},
     {40, 20, 10, 0, 0, 5, 0, 1, 1, 1}},
    {"openai chat stream without usage",
     ZG_USAGE_OPENAI_CHAT,
     0,
     {"", ""},
     {"{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"usage\"}}]}", "[DONE]"},
     {0, 0, 0, 0, 0, 0, 0, 0, 0, 1}},
    {"deepseek body: prompt_cache_hit_tokens",
     ZG_USAGE_OPENAI_CHAT,
     1,
     {NULL},
     {"{\"id\":\"d\",\"object\":\"chat.completion\",\"model\":\"deepseek-v4-flash\",\"usage\":{\"prompt_tokens\":1000,"
      "\"completion_tokens\":500,\"total_tokens\":1500,\"prompt_tokens_details\":{\"cached_tokens\":300},"
      "\"prompt_cache_hit_tokens\":300,\"prompt_cache_miss_tokens\":700,"
      "\"completion_tokens_details\":{\"reasoning_tokens\":100}}}"},
     {700, 500, 300, 0, 0, 100, 0, 1, 1, 1}},
    {"deepseek stream chunk: only prompt_cache_hit_tokens",
     ZG_USAGE_OPENAI_CHAT,
     0,
     {"", ""},
     {"{\"id\":\"d\",\"choices\":[],\"usage\":{\"prompt_tokens\":64,\"completion_tokens\":8,\"total_tokens\":72,"
      "\"prompt_cache_hit_tokens\":60,\"prompt_cache_miss_tokens\":4}}",
      "[DONE]"},
     {4, 8, 60, 0, 0, 0, 0, 1, 1, 1}},
    {"moonshot body: top-level cached_tokens",
     ZG_USAGE_OPENAI_CHAT,
     1,
     {NULL},
     {"{\"id\":\"m\",\"object\":\"chat.completion\",\"model\":\"kimi-k2.6\",\"usage\":{\"prompt_tokens\":1000,"
      "\"completion_tokens\":500,\"total_tokens\":1500,\"cached_tokens\":300}}"},
     {700, 500, 300, 0, 0, 0, 0, 1, 1, 1}},
    {"moonshot stream: usage inside the last choice",
     ZG_USAGE_OPENAI_CHAT,
     0,
     {"", ""},
     {"{\"id\":\"m\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},"
      "\"finish_reason\":\"stop\",\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":13,\"total_tokens\":32,"
      "\"cached_tokens\":10}}]}",
      "[DONE]"},
     {9, 13, 10, 0, 0, 0, 0, 1, 1, 1}},
    {"zhipu stream: usage on the finishing chunk",
     ZG_USAGE_OPENAI_CHAT,
     0,
     {"", ""},
     {"{\"id\":\"z\",\"choices\":[{\"index\":0,\"finish_reason\":\"stop\",\"delta\":{\"role\":\"assistant\","
      "\"content\":\"\"}}],\"usage\":{\"prompt_tokens\":1000,\"completion_tokens\":500,\"total_tokens\":1500,"
      "\"prompt_tokens_details\":{\"cached_tokens\":300}}}",
      "[DONE]"},
     {700, 500, 300, 0, 0, 0, 0, 1, 1, 1}},
    {"cached above prompt is clamped",
     ZG_USAGE_OPENAI_CHAT,
     1,
     {NULL},
     {"{\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":1,\"prompt_tokens_details\":{\"cached_tokens\":99}}}"},
     {0, 1, 10, 0, 0, 0, 0, 1, 1, 1}},
    /* ---- Responses ---- */
    {"responses completed",
     ZG_USAGE_OPENAI_RESPONSES,
     0,
     {"response.created", "response.output_text.delta", "response.completed"},
     {"{\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\",\"usage\":null},"
      "\"sequence_number\":0}",
      "{\"type\":\"response.output_text.delta\",\"item_id\":\"msg_1\",\"delta\":\"Hi\",\"sequence_number\":1}",
      "{\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":"
      "\"completed\",\"usage\":{\"input_tokens\":1000,\"input_tokens_details\":{\"cached_tokens\":400},"
      "\"output_tokens\":500,\"output_tokens_details\":{\"reasoning_tokens\":200},\"total_tokens\":1500}},"
      "\"sequence_number\":2}"},
     {600, 500, 400, 0, 0, 200, 0, 1, 1, 1}},
    {"responses incomplete",
     ZG_USAGE_OPENAI_RESPONSES,
     0,
     {"response.incomplete"},
     {"{\"type\":\"response.incomplete\",\"response\":{\"status\":\"incomplete\",\"incomplete_details\":{\"reason\":"
      "\"max_output_tokens\"},\"usage\":{\"input_tokens\":30,\"input_tokens_details\":{\"cached_tokens\":0},"
      "\"output_tokens\":16,\"output_tokens_details\":{\"reasoning_tokens\":16},\"total_tokens\":46}}}"},
     {30, 16, 0, 0, 0, 16, 0, 1, 1, 1}},
    {"responses failed with usage",
     ZG_USAGE_OPENAI_RESPONSES,
     0,
     {"response.failed"},
     {"{\"type\":\"response.failed\",\"response\":{\"status\":\"failed\",\"error\":{\"code\":\"server_error\"},"
      "\"usage\":{\"input_tokens\":70,\"output_tokens\":3}}}"},
     {70, 3, 0, 0, 0, 0, 0, 1, 1, 1}},
    {"responses failed without usage",
     ZG_USAGE_OPENAI_RESPONSES,
     0,
     {"response.failed"},
     {"{\"type\":\"response.failed\",\"response\":{\"status\":\"failed\",\"usage\":null}}"},
     {0, 0, 0, 0, 0, 0, 0, 0, 0, 1}},
    {"responses terminal event without an event line",
     ZG_USAGE_OPENAI_RESPONSES,
     0,
     {"", ""},
     {"{\"type\":\"response.in_progress\",\"response\":{\"metadata\":{\"response.completed\":\"no\"},"
      "\"usage\":{\"input_tokens\":99}}}",
      "{\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":6}}}"},
     {5, 6, 0, 0, 0, 0, 0, 1, 1, 1}},
    {"responses stream cut before the end",
     ZG_USAGE_OPENAI_RESPONSES,
     0,
     {"response.created", "response.output_text.delta"},
     {"{\"type\":\"response.created\",\"response\":{\"usage\":null}}",
      "{\"type\":\"response.output_text.delta\",\"delta\":\"tok\"}"},
     {0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
    {"responses body",
     ZG_USAGE_OPENAI_RESPONSES,
     1,
     {NULL},
     {"{\"id\":\"resp_2\",\"object\":\"response\",\"status\":\"completed\",\"output\":[],\"usage\":{\"input_tokens\":"
      "1000,\"input_tokens_details\":{\"cached_tokens\":400},\"output_tokens\":500,\"output_tokens_details\":"
      "{\"reasoning_tokens\":200},\"total_tokens\":1500}}"},
     {600, 500, 400, 0, 0, 200, 0, 1, 1, 1}},
    /* ---- Gemini ---- */
    {"gemini SSE chunks: last usageMetadata wins, thoughts are output",
     ZG_USAGE_GEMINI,
     0,
     {"", "", ""},
     {"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}],\"role\":\"model\"},\"index\":0}],"
      "\"usageMetadata\":{\"promptTokenCount\":1000,\"totalTokenCount\":1000,\"cachedContentTokenCount\":400},"
      "\"modelVersion\":\"gemini-3-flash-preview\"}",
      "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"b\"}],\"role\":\"model\"},\"index\":0}],"
      "\"usageMetadata\":{\"promptTokenCount\":1000,\"candidatesTokenCount\":250,\"totalTokenCount\":1450,"
      "\"cachedContentTokenCount\":400,\"thoughtsTokenCount\":200}}",
      "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"c\"}],\"role\":\"model\"},\"finishReason\":\"STOP\","
      "\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":1000,\"candidatesTokenCount\":500,"
      "\"totalTokenCount\":1700,\"cachedContentTokenCount\":400,\"promptTokensDetails\":[{\"modality\":\"TEXT\","
      "\"tokenCount\":1000}],\"thoughtsTokenCount\":200},\"responseId\":\"r1\"}"},
     {600, 700, 400, 0, 0, 200, 0, 1, 1, 1}},
    {"gemini SSE cut before finishReason",
     ZG_USAGE_GEMINI,
     0,
     {""},
     {"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}],\"usageMetadata\":{\"promptTokenCount\":200,"
      "\"candidatesTokenCount\":4,\"totalTokenCount\":204}}"},
     {200, 4, 0, 0, 0, 0, 0, 1, 1, 0}},
    {"gemini streamed JSON array body",
     ZG_USAGE_GEMINI,
     1,
     {NULL},
     {"[{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}],\"role\":\"model\"},\"index\":0}],"
      "\"usageMetadata\":{\"promptTokenCount\":1000,\"totalTokenCount\":1000}}\r\n,\r\n"
      "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"b\"}],\"role\":\"model\"},\"finishReason\":\"STOP\","
      "\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":1000,\"candidatesTokenCount\":500,"
      "\"totalTokenCount\":1700,\"cachedContentTokenCount\":400,\"thoughtsTokenCount\":200}}]"},
     {600, 700, 400, 0, 0, 200, 0, 1, 1, 1}},
    {"gemini generateContent body",
     ZG_USAGE_GEMINI,
     1,
     {NULL},
     {"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hi\"}],\"role\":\"model\"},\"finishReason\":\"STOP\"}],"
      "\"usageMetadata\":{\"promptTokenCount\":25,\"candidatesTokenCount\":10,\"totalTokenCount\":35},"
      "\"modelVersion\":\"gemini-3-flash-preview\"}"},
     {25, 10, 0, 0, 0, 0, 0, 1, 1, 1}},
    /* ---- images ---- */
    {"images body: units = images returned",
     ZG_USAGE_IMAGES,
     1,
     {NULL},
     {"{\"created\":1776729600,\"data\":[{\"b64_json\":\"iVBORw0KGgo=\"},{\"b64_json\":\"iVBORw0KGgo=\"}],"
      "\"usage\":{\"input_tokens\":50,\"output_tokens\":4160,\"total_tokens\":4210,"
      "\"input_tokens_details\":{\"text_tokens\":50,\"image_tokens\":0}}}"},
     {0, 0, 0, 0, 0, 0, 2, 0, 0, 1}},
    {"images body with no image",
     ZG_USAGE_IMAGES,
     1,
     {NULL},
     {"{\"created\":1,\"data\":[]}"},
     {0, 0, 0, 0, 0, 0, 0, 0, 0, 1}},
    {"images error body",
     ZG_USAGE_IMAGES,
     1,
     {NULL},
     {"{\"error\":{\"message\":\"Your request was rejected\",\"type\":\"image_generation_user_error\","
      "\"param\":null,\"code\":\"moderation_blocked\"}}"},
     {0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
    {"images stream: one unit per image_generation.completed",
     ZG_USAGE_IMAGES,
     0,
     {"image_generation.partial_image", "image_generation.completed", "", ""},
     {"{\"type\":\"image_generation.partial_image\",\"b64_json\":\"iVBO\",\"partial_image_index\":0}",
      "{\"type\":\"image_generation.completed\",\"b64_json\":\"iVBO\",\"usage\":{\"input_tokens\":50,"
      "\"output_tokens\":4160,\"total_tokens\":4210}}",
      "{\"type\":\"image_generation.partial_image\",\"revised\":\"\\\"image_generation.completed\\\"\"}",
      "{\"type\":\"image_generation.completed\",\"b64_json\":\"iVBO\"}"},
     {0, 0, 0, 0, 0, 0, 2, 0, 0, 1}},
    {"images stream cut before completion",
     ZG_USAGE_IMAGES,
     0,
     {"image_generation.partial_image"},
     {"{\"type\":\"image_generation.partial_image\",\"b64_json\":\"iVBO\",\"partial_image_index\":0}"},
     {0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
    {"malformed JSON is ignored",
     ZG_USAGE_OPENAI_CHAT,
     1,
     {NULL},
     {"{\"usage\":{\"prompt_tokens\":5"},
     {0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
};

static zg_model model(const char *id, long long in, long long out, long long cr, long long w5, long long w1,
                      long long unit)
{
    zg_model m;
    memset(&m, 0, sizeof m);
    snprintf(m.id, sizeof m.id, "%s", id);
    m.price_input = in;
    m.price_output = out;
    m.price_cache_read = cr;
    m.price_cache_write_5m = w5;
    m.price_cache_write_1h = w1;
    m.price_unit = unit;
    return m;
}

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        zg_usage u;
        memset(&u, 0, sizeof u);
        const char *name = cases[i].name;
        if (cases[i].body) {
            zg_usage_from_body(&u, cases[i].kind, cases[i].data[0], strlen(cases[i].data[0]));
        } else {
            for (int e = 0; e < MAXEV && cases[i].data[e]; e++) {
                const char *ev = cases[i].ev[e] ? cases[i].ev[e] : "";
                zg_usage_from_event(&u, cases[i].kind, ev, strlen(ev), cases[i].data[e], strlen(cases[i].data[e]));
            }
        }
        const want *w = &cases[i].w;
        int same = u.input == w->input && u.output == w->output && u.cache_read == w->cache_read &&
                   u.cache_write_5m == w->cw5 && u.cache_write_1h == w->cw1 && u.reasoning == w->reasoning &&
                   u.units == w->units && u.have_input == !!w->have_input && u.have_output == !!w->have_output &&
                   u.finished == !!w->finished;
        ok(same, "%s", name);
        if (!same)
            printf("#   got in %lld out %lld cr %lld 5m %lld 1h %lld reas %lld units %lld have %d/%d fin %d\n",
                   (long long)u.input, (long long)u.output, (long long)u.cache_read, (long long)u.cache_write_5m,
                   (long long)u.cache_write_1h, (long long)u.reasoning, (long long)u.units, u.have_input,
                   u.have_output, u.finished);
    }

    /* text carried by stream deltas (estimates), escapes counted as one byte */
    static const struct {
        zg_usage_kind kind;
        const char *data;
        size_t n;
    } deltas[] = {
        {ZG_USAGE_ANTHROPIC, "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
                             "\"text\":\"Hello\\n\"}}", 6},
        {ZG_USAGE_ANTHROPIC, "{\"type\":\"content_block_delta\",\"delta\":{\"type\":\"thinking_delta\","
                             "\"thinking\":\"hmm\"}}", 3},
        {ZG_USAGE_ANTHROPIC, "{\"type\":\"content_block_delta\",\"delta\":{\"type\":\"input_json_delta\","
                             "\"partial_json\":\"{\\\"a\\\":1\"}}", 6},
        {ZG_USAGE_OPENAI_CHAT, "{\"choices\":[{\"delta\":{\"content\":\"tok1 \"}}]}", 5},
        {ZG_USAGE_OPENAI_CHAT, "{\"choices\":[{\"delta\":{\"reasoning_content\":\"\\u00e9t\"}}]}", 2},
        {ZG_USAGE_OPENAI_RESPONSES, "{\"type\":\"response.output_text.delta\",\"delta\":\"abc\"}", 3},
        {ZG_USAGE_GEMINI, "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"tok2 \"}]}}]}", 5},
        {ZG_USAGE_OPENAI_CHAT, "[DONE]", 0},
        {ZG_USAGE_IMAGES, "{\"text\":\"x\"}", 0},
    };
    for (size_t i = 0; i < sizeof deltas / sizeof deltas[0]; i++)
        is_int(zg_usage_delta_text(deltas[i].kind, deltas[i].data, strlen(deltas[i].data)), deltas[i].n,
               "delta text %zu", i);
    is_int(zg_usage_estimate_output(0), 0, "estimate of nothing");
    is_int(zg_usage_estimate_output(1), 1, "estimate rounds up");
    is_int(zg_usage_estimate_output(20), 5, "estimate of 20 bytes");

    /* cost: catalog prices in micro-dollars per million tokens */
    zg_model sonnet = model("claude-sonnet-4-6", 3000000, 15000000, 300000, 3750000, 6000000, -1);
    zg_model gpt = model("gpt-5.5", 5000000, 30000000, 500000, -1, -1, -1);
    zg_model flash = model("deepseek-v4-flash", 140000, 280000, 2800, -1, -1, -1);
    zg_model gem = model("gemini-3-flash-preview", 500000, 3000000, 50000, -1, -1, -1);
    zg_model img = model("gpt-image-2", -1, -1, -1, -1, -1, 60000);
    static const struct {
        const char *what;
        int m; /* 0 sonnet, 1 gpt, 2 flash, 3 gemini, 4 image */
        long long in, out, cr, w5, w1, units;
        long long credits;
    } costs[] = {
        {"sonnet, every category", 0, 1000, 500, 2000, 300, 400, 0, 14625},
        {"gpt-5.5 cached and output", 1, 600, 500, 400, 0, 0, 0, 18200},
        {"gpt-5.5 one cached token: 0.5 rounds up", 1, 0, 0, 1, 0, 0, 0, 1},
        {"gpt-5.5 three cached tokens: 1.5 -> 2", 1, 0, 0, 3, 0, 0, 0, 2},
        {"cache write without a price costs input", 1, 0, 0, 0, 1000, 200, 0, 6000},
        {"deepseek flash 238.84 -> 239", 2, 700, 500, 300, 0, 0, 0, 239},
        {"cache read $0.0028/MTok: 178 tokens = 0.4984 -> 0", 2, 0, 0, 178, 0, 0, 0, 0},
        {"cache read $0.0028/MTok: 179 tokens = 0.5012 -> 1", 2, 0, 0, 179, 0, 0, 0, 1},
        {"cache read $0.0028/MTok: one million tokens = 2800", 2, 0, 0, 1000000, 0, 0, 0, 2800},
        {"rounded once: 0.42 + 0.28 = 0.70 -> 1", 2, 3, 1, 0, 0, 0, 0, 1},
        {"rounded once with a cache read: 0.14 + 0.28 + 0.0028*30 = 0.504 -> 1", 2, 1, 1, 30, 0, 0, 0, 1},
        {"gemini flash thoughts as output", 3, 600, 700, 400, 0, 0, 0, 2420},
        {"nothing costs nothing", 1, 0, 0, 0, 0, 0, 0, 0},
        {"three images", 4, 0, 0, 0, 0, 0, 3, 180000},
        {"image tokens are not billed on a per-image model", 4, 50, 4160, 0, 0, 0, 1, 60000},
    };
    const zg_model *ms[] = {&sonnet, &gpt, &flash, &gem, &img};
    for (size_t i = 0; i < sizeof costs / sizeof costs[0]; i++) {
        zg_usage u;
        memset(&u, 0, sizeof u);
        u.input = costs[i].in;
        u.output = costs[i].out;
        u.cache_read = costs[i].cr;
        u.cache_write_5m = costs[i].w5;
        u.cache_write_1h = costs[i].w1;
        u.units = costs[i].units;
        is_int(zg_usage_cost(&u, ms[costs[i].m]), costs[i].credits, "cost: %s", costs[i].what);
    }

    /* the usage-only chat chunk is hidden only from clients that did not ask for it */
    static const struct {
        const char *data;
        int hidden;
    } hide[] = {
        {"{\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":1}}", 1},
        {"{\"id\": \"c\", \"choices\": [ ], \"usage\": {\"prompt_tokens\": 1}}", 1},
        {"{\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"x\"}}],\"usage\":null}", 0},
        {"{\"id\":\"c\",\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1}}", 0},
        {"{\"id\":\"c\",\"choices\":[],\"usage\":null}", 0},
        {"[DONE]", 0},
    };
    for (size_t i = 0; i < sizeof hide / sizeof hide[0]; i++) {
        zg_call c;
        memset(&c, 0, sizeof c);
        c.surface_state = (void *)1;
        is_int(zg_openai_chat_hide(&c, "", 0, hide[i].data, strlen(hide[i].data)), hide[i].hidden,
               "hide chunk %zu when the client did not ask", i);
        c.surface_state = NULL;
        is_int(zg_openai_chat_hide(&c, "", 0, hide[i].data, strlen(hide[i].data)), 0,
               "chunk %zu shown when the client asked", i);
    }
    return tap_done();
}
