/* [database] hosts: the order servers are tried in, failures put last for a while, connections on a
 * fallback recycled, and the pauses between retries of a write conflict. */
#include "zg_dbhost.h"
#include "tap.h"

static void order_is(int n, int64_t now, const char *want, const char *what)
{
    int o[ZG_DBHOST_MAX];
    int k = zg_dbhost_order(n, now, o);
    char got[32];
    for (int i = 0; i < k; i++)
        got[i] = (char)('0' + o[i]);
    got[k] = '\0';
    is_str(got, want, "%s", what);
}

int main(void)
{
    int64_t t = 1000000;
    order_is(3, t, "012", "servers are tried in their listed order");
    order_is(1, t, "0", "one server");
    order_is(20, t, "01234567", "at most ZG_DBHOST_MAX servers");

    zg_dbhost_mark(0, false, t);
    order_is(3, t + 1, "120", "a server that failed is tried last");
    order_is(3, t + ZG_DBHOST_DOWN_MS - 1, "120", "... for ZG_DBHOST_DOWN_MS");
    order_is(3, t + ZG_DBHOST_DOWN_MS, "012", "... then in its place again");
    zg_dbhost_mark(1, false, t);
    order_is(3, t + 1, "201", "two failed: the third first, the failed ones in their order");
    zg_dbhost_mark(0, true, t + 2);
    order_is(3, t + 3, "021", "a server that answered again is back in its place at once");
    zg_dbhost_mark(2, false, t);
    zg_dbhost_mark(0, false, t);
    order_is(3, t + 4, "012", "all failed: all tried, in their order");
    zg_dbhost_mark(-1, false, t);
    zg_dbhost_mark(ZG_DBHOST_MAX, false, t);
    zg_dbhost_reset();
    order_is(3, t, "012", "reset forgets the failures; out-of-range marks are ignored");

    /* a connection on a fallback goes back to the preferred server */
    ok(!zg_dbhost_away(0, t, t + 10 * ZG_DBHOST_AWAY_MS), "the first server is never away");
    ok(!zg_dbhost_away(1, t, t + ZG_DBHOST_AWAY_MS - 1), "a fallback connection is kept for a while");
    ok(zg_dbhost_away(1, t, t + ZG_DBHOST_AWAY_MS), "... then closed, the first server being usable");
    zg_dbhost_mark(0, false, t + ZG_DBHOST_AWAY_MS);
    ok(!zg_dbhost_away(1, t, t + ZG_DBHOST_AWAY_MS + 1), "kept while the server before it is down");
    ok(zg_dbhost_away(2, t, t + ZG_DBHOST_AWAY_MS + 1), "the third is away while the second is usable");
    zg_dbhost_mark(1, false, t + ZG_DBHOST_AWAY_MS);
    ok(!zg_dbhost_away(2, t, t + ZG_DBHOST_AWAY_MS + 1), "... and kept when both before it are down");
    zg_dbhost_reset();

    /* pauses: short, growing, capped, not all the same */
    int lo = 1000, hi = 0, distinct = 0, last = -1;
    for (int a = 1; a <= 8; a++)
        for (int i = 0; i < 200; i++) {
            int p = zg_dbhost_conflict_pause_ms(a);
            lo = p < lo ? p : lo;
            hi = p > hi ? p : hi;
            if (p != last)
                distinct++;
            last = p;
            if (a == 1 && p > 4) {
                ok(0, "the first pause is at most 4 ms (got %d)", p);
                return tap_done();
            }
        }
    ok(lo >= 1 && hi <= 64, "pauses are 1..64 ms (%d..%d)", lo, hi);
    ok(hi > 32, "later pauses grow beyond 32 ms (max %d)", hi);
    ok(distinct > 100, "pauses are randomised (%d changes in 1600)", distinct);
    is_int(zg_dbhost_conflict_pause_ms(0) <= 4, 1, "attempt 0 counts as the first");
    return tap_done();
}
