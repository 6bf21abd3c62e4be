#ifndef ZG_MODELS_H
#define ZG_MODELS_H
#include "zg_req.h"

/* Which models a list shows. */
typedef enum {
    ZG_LIST_ALL = 0,   /* the whole catalog */
    ZG_LIST_OPENAI,    /* chat models served on /codex (OpenAI, DeepSeek, Moonshot, Zhipu) */
    ZG_LIST_GEMINI,    /* Gemini chat models */
    ZG_LIST_IMAGES,    /* image, video and audio models */
} zg_list_filter;

/* Answer with the catalog as {"object":"list","data":[...],"has_more":false,"first_id","last_id"}:
 * entries carry id, object, type, display_name, created, created_at, owned_by (what the Anthropic
 * and OpenAI SDKs parse) plus provider, kind, status, min_plan and pricing. */
int zg_models_reply_list(zg_req *r, zg_list_filter filter);
/* Answer one model in the same entry shape, or 404 (OpenAI/Anthropic shape by r->proto). */
int zg_models_reply_one(zg_req *r, const char *name);
/* Answer Gemini's native list {"models":[{"name":"models/ID",...}]}. */
int zg_models_reply_gemini_list(zg_req *r);
/* Answer one model in Gemini's native shape, or 404 in Gemini shape. */
int zg_models_reply_gemini_one(zg_req *r, const char *name);

#endif
