#include "zg_num.h"
#include <stdio.h>
#include <string.h>

int zg_parse_i64(const char *s, size_t n, int64_t min, int64_t max, int64_t *out)
{
    if (!s || n == 0)
        return -1;
    size_t i = 0;
    int neg = 0;
    if (s[0] == '-') {
        neg = 1;
        i = 1;
        if (n == 1)
            return -1;
    }
    uint64_t v = 0;
    const uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (lim - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    int64_t r;
    if (neg)
        r = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    else
        r = (int64_t)v;
    if (r < min || r > max)
        return -1;
    *out = r;
    return 0;
}

int zg_parse_i64z(const char *s, int64_t min, int64_t max, int64_t *out)
{
    return s ? zg_parse_i64(s, strlen(s), min, max, out) : -1;
}

int zg_parse_usd_micros(const char *s, int64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    const char *dot = strchr(s, '.');
    size_t ilen = dot ? (size_t)(dot - s) : strlen(s);
    int64_t whole = 0;
    if (ilen == 0) {
        if (!dot)
            return -1;
    } else if (zg_parse_i64(s, ilen, 0, 1000000000000LL, &whole) != 0) {
        return -1;
    }
    int64_t frac = 0;
    if (dot) {
        const char *f = dot + 1;
        size_t flen = strlen(f);
        if (flen == 0 || flen > 6 || (ilen == 0 && flen == 0))
            return -1;
        for (size_t i = 0; i < 6; i++) {
            int d = 0;
            if (i < flen) {
                if (f[i] < '0' || f[i] > '9')
                    return -1;
                d = f[i] - '0';
            }
            frac = frac * 10 + d;
        }
    }
    if (whole == 1000000000000LL && frac > 0)
        return -1;
    *out = whole * 1000000 + frac;
    return 0;
}

void zg_fmt_usd(int64_t micros, char *out, size_t outlen)
{
    const char *sign = micros < 0 ? "-" : "";
    uint64_t m = micros < 0 ? (uint64_t)0 - (uint64_t)micros : (uint64_t)micros;
    snprintf(out, outlen, "%s%llu.%06llu", sign, (unsigned long long)(m / 1000000),
             (unsigned long long)(m % 1000000));
}

int64_t zg_price_tokens(const int64_t *tokens, const int64_t *prices, size_t n)
{
    /* 128-bit accumulator: tokens (< 2^40 after clamping) x price (< 2^40) never overflows. */
    unsigned __int128 acc = 0;
    for (size_t i = 0; i < n; i++) {
        if (tokens[i] <= 0 || prices[i] <= 0)
            continue;
        int64_t t = tokens[i] > ((int64_t)1 << 40) ? ((int64_t)1 << 40) : tokens[i];
        int64_t p = prices[i] > ((int64_t)1 << 40) ? ((int64_t)1 << 40) : prices[i];
        acc += (unsigned __int128)t * (uint64_t)p;
    }
    acc = (acc + 500000) / 1000000;
    return acc > (unsigned __int128)INT64_MAX ? INT64_MAX : (int64_t)acc;
}

int64_t zg_i64_or0(const char *s)
{
    int64_t x = 0;
    return s && zg_parse_i64(s, strlen(s), INT64_MIN, INT64_MAX, &x) == 0 ? x : 0;
}
