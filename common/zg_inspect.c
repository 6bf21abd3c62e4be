#include "zg_inspect.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- duplicate members ------------------------------------------------------------------------------ */

/* One member name of an object still open: where its text starts (just after the quote), how long
 * the raw text is, and a hash of its unescaped bytes. */
struct key {
    uint64_t hash;
    size_t off, len;
};

struct scan {
    struct key *keys;
    size_t n, cap;
    char *a, *b; /* scratch for unescaped names */
    size_t acap, bcap;
};

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static unsigned hex4(const char *p)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++)
        v = v << 4 | (unsigned)hexval(p[i]);
    return v;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Unescape the raw string text s[0..n) (valid JSON escapes) into *buf; returns the length, or
 * (size_t)-1 when memory ran out. Unescaping never makes a string longer. */
static size_t unescape(const char *s, size_t n, char **buf, size_t *cap)
{
    if (n + 1 > *cap) {
        char *p = realloc(*buf, n + 1);
        if (!p)
            return (size_t)-1;
        *buf = p;
        *cap = n + 1;
    }
    char *o = *buf;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 >= n) {
            o[k++] = s[i];
            continue;
        }
        char e = s[++i];
        switch (e) {
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case 'n': o[k++] = '\n'; break;
        case 'r': o[k++] = '\r'; break;
        case 't': o[k++] = '\t'; break;
        case 'u':
            if (i + 4 < n) {
                unsigned cp = hex4(s + i + 1);
                i += 4;
                if (cp >= 0xD800 && cp < 0xDC00 && i + 6 < n && s[i + 1] == '\\' && s[i + 2] == 'u') {
                    unsigned lo = hex4(s + i + 3);
                    if (lo >= 0xDC00 && lo < 0xE000) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        i += 6;
                    }
                }
                k += put_utf8(o + k, cp);
            } else {
                o[k++] = e;
            }
            break;
        default:
            o[k++] = e; /* \" \\ \/ */
        }
    }
    return k;
}

static uint64_t fnv(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static int by_hash(const void *x, const void *y)
{
    const struct key *a = x, *b = y;
    return a->hash < b->hash ? -1 : a->hash > b->hash;
}

/* Check the names of the object whose keys start at index from; 1 on a duplicate (named in name). */
static int check_object(struct scan *s, const char *json, size_t from, char *name, size_t namecap)
{
    size_t m = s->n - from;
    if (m < 2)
        return 0;
    struct key *k = s->keys + from;
    qsort(k, m, sizeof *k, by_hash);
    for (size_t i = 1; i < m; i++) {
        if (k[i].hash != k[i - 1].hash)
            continue;
        size_t la = unescape(json + k[i - 1].off, k[i - 1].len, &s->a, &s->acap);
        size_t lb = unescape(json + k[i].off, k[i].len, &s->b, &s->bcap);
        if (la == (size_t)-1 || lb == (size_t)-1)
            return -1;
        if (la != lb || memcmp(s->a, s->b, la) != 0)
            continue;
        if (namecap) {
            size_t c = la < namecap - 1 ? la : namecap - 1;
            memcpy(name, s->a, c);
            name[c] = '\0';
        }
        return 1;
    }
    return 0;
}

#define MAX_DEPTH 256

int zg_inspect_duplicate(const char *json, size_t len, char *name, size_t namecap)
{
    struct scan s = {0};
    /* per open container: is it an object, the index of its first key, and whether a name comes next */
    size_t from[MAX_DEPTH];
    bool is_obj[MAX_DEPTH], want_key[MAX_DEPTH];
    int depth = 0, rc = 0;
    for (size_t i = 0; i < len && rc == 0; i++) {
        char ch = json[i];
        switch (ch) {
        case '{':
        case '[':
            if (depth == MAX_DEPTH) {
                rc = -1;
                break;
            }
            is_obj[depth] = ch == '{';
            want_key[depth] = ch == '{';
            from[depth] = s.n;
            depth++;
            break;
        case '}':
        case ']':
            if (depth == 0)
                break;
            depth--;
            if (is_obj[depth])
                rc = check_object(&s, json, from[depth], name, namecap);
            s.n = from[depth];
            break;
        case ',':
            if (depth > 0 && is_obj[depth - 1])
                want_key[depth - 1] = true;
            break;
        case '"': {
            size_t start = i + 1, j = start;
            while (j < len && json[j] != '"')
                j += json[j] == '\\' ? 2 : 1;
            if (j > len)
                j = len;
            if (depth > 0 && is_obj[depth - 1] && want_key[depth - 1]) {
                want_key[depth - 1] = false;
                if (s.n == s.cap) {
                    size_t nc = s.cap ? s.cap * 2 : 64;
                    struct key *p = realloc(s.keys, nc * sizeof *p);
                    if (!p) {
                        rc = -1;
                        break;
                    }
                    s.keys = p;
                    s.cap = nc;
                }
                size_t ul = unescape(json + start, j - start, &s.a, &s.acap);
                if (ul == (size_t)-1) {
                    rc = -1;
                    break;
                }
                s.keys[s.n++] = (struct key){fnv(s.a, ul), start, j - start};
            }
            i = j;
            break;
        }
        default:
            break;
        }
    }
    free(s.keys);
    free(s.a);
    free(s.b);
    return rc;
}

/* ---- input the provider expands ---------------------------------------------------------------------- */

static const char *str_of(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static bool is_remote_url(const char *u)
{
    return u && (strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0);
}

static bool prefix(const char *s, const char *p)
{
    return s && strncmp(s, p, strlen(p)) == 0;
}

/* A server-side tool that brings content into the context. */
static bool tool_expands(struct json_object *t)
{
    if (!json_object_is_type(t, json_type_object))
        return false;
    const char *type = str_of(t, "type");
    if (prefix(type, "web_search") || prefix(type, "web_fetch") || prefix(type, "file_search") ||
        prefix(type, "url_context") || prefix(type, "mcp"))
        return true;
    static const char *const gemini[] = {"googleSearch", "google_search", "googleSearchRetrieval",
                                         "google_search_retrieval", "urlContext", "url_context",
                                         "fileSearch", "file_search"};
    struct json_object *v;
    for (size_t i = 0; i < sizeof gemini / sizeof gemini[0]; i++)
        if (json_object_object_get_ex(t, gemini[i], &v) && v)
            return true;
    return false;
}

/* Members whose content is a schema or settings, never input: not searched. */
static bool skipped(const char *key)
{
    static const char *const skip[] = {"tools", "tool_choice", "response_format", "text", "output_format",
                                       "generationConfig", "generation_config", "responseSchema",
                                       "responseJsonSchema", "properties", "parameters", "input_schema",
                                       "metadata", "schema", "json_schema"};
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (strcmp(key, skip[i]) == 0)
            return true;
    return false;
}

static bool walk(struct json_object *o, int depth)
{
    if (!o || depth > 128)
        return false;
    if (json_object_is_type(o, json_type_array)) {
        size_t n = json_object_array_length(o);
        for (size_t i = 0; i < n; i++)
            if (walk(json_object_array_get_idx(o, i), depth + 1))
                return true;
        return false;
    }
    if (!json_object_is_type(o, json_type_object))
        return false;
    const char *type = str_of(o, "type");
    bool file_part = type && (strcmp(type, "input_file") == 0 || strcmp(type, "input_image") == 0 ||
                              strcmp(type, "file") == 0 || strcmp(type, "document") == 0 ||
                              strcmp(type, "image") == 0);
    json_object_object_foreach(o, key, val)
    {
        if (!val)
            continue;
        if (strcmp(key, "fileData") == 0 || strcmp(key, "file_data") == 0)
            return true;
        if (file_part && (strcmp(key, "file_id") == 0 || strcmp(key, "file_url") == 0))
            return true;
        if (strcmp(key, "source") == 0) {
            const char *st = str_of(val, "type");
            if (st && (strcmp(st, "url") == 0 || strcmp(st, "file") == 0))
                return true;
        }
        if (strcmp(key, "image_url") == 0 &&
            (is_remote_url(json_object_is_type(val, json_type_string) ? json_object_get_string(val) : NULL) ||
             is_remote_url(str_of(val, "url")) || str_of(val, "file_id")))
            return true;
        if (strcmp(key, "file") == 0 && (str_of(val, "file_id") || is_remote_url(str_of(val, "file_url"))))
            return true;
        if (skipped(key))
            continue;
        if ((json_object_is_type(val, json_type_object) || json_object_is_type(val, json_type_array)) &&
            walk(val, depth + 1))
            return true;
    }
    return false;
}

bool zg_inspect_expands(struct json_object *body)
{
    if (!json_object_is_type(body, json_type_object))
        return false;
    static const char *const top[] = {"previous_response_id", "conversation", "cachedContent", "cached_content",
                                      "mcp_servers", "container"};
    struct json_object *v;
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        if (json_object_object_get_ex(body, top[i], &v) && v &&
            !(json_object_is_type(v, json_type_array) && json_object_array_length(v) == 0) &&
            !(json_object_is_type(v, json_type_string) && json_object_get_string_len(v) == 0))
            return true;
    if (json_object_object_get_ex(body, "tools", &v) && json_object_is_type(v, json_type_array)) {
        size_t n = json_object_array_length(v);
        for (size_t i = 0; i < n; i++)
            if (tool_expands(json_object_array_get_idx(v, i)))
                return true;
    }
    return walk(body, 0);
}
