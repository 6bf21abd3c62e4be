"""The per-user cap on requests in flight ([limits] concurrent_per_user, 32 by default): across the
web server's processes, over it a 429 in the caller's protocol with retry-after before anything is
admitted or billed; other customers go on unaffected; slots come back when requests end, and the
slots of a process that stopped renewing them (it died) no longer count."""
import os
import threading
import time

from test_faults import req_for
from zgtest import (Skip, assert_error_shape, auth, config_value, eq, new_user, ok, request, sql, sql_int, stream,
                    user_id, wait_until)

CAP = int(config_value("limits", "concurrent_per_user", "32"))


def _needs_threads():
    # behind mod_fcgid each request needs a process of its own and Apache caps their number: the
    # cap itself does not depend on the web server, it is tested where many streams fit
    if os.environ.get("ZG_SERVER", "lighttpd") not in ("lighttpd", "apache-proxy"):
        raise Skip("needs %d streams at once: tested behind lighttpd and mod_proxy_fcgi" % (CAP + 1))


class Held:
    """n slow streams of one key, open at once until they end by themselves (about secs s)."""

    def __init__(self, key, n, secs=6):
        self.statuses = []
        self.lock = threading.Lock()
        self.started = threading.Semaphore(0)
        events = max(2, int(secs * 5))
        path, _, style, body = req_for("messages", "events=%d,interval=200" % events, stream_=True)
        self.threads = [threading.Thread(target=self._one, args=(path, auth(key, style), body)) for _ in range(n)]
        for t in self.threads:
            t.start()

    def _one(self, path, headers, body):
        try:
            s = stream("POST", path, headers, body, timeout=60)
            st = s.status
            self.started.release()
            for _ in s:
                pass
        except Exception as e:  # noqa: BLE001 - recorded and asserted on
            st = repr(e)
            self.started.release()
        with self.lock:
            self.statuses.append(st)

    def wait_started(self):
        for _ in self.threads:
            ok(self.started.acquire(timeout=30), "a held stream did not start")

    def join(self):
        for t in self.threads:
            t.join(60)
        return self.statuses


def usage_rows(email):
    return sql_int("SELECT COUNT(*) FROM usage_log WHERE user_id = %d" % user_id(email))


def slots_held(email):
    return sql_int("SELECT COALESCE(SUM(slots), 0) FROM conc_slots WHERE user_id = %d" % user_id(email))


def test_over_the_cap_is_429_in_each_protocol_unbilled_and_others_go_on():
    _needs_threads()
    email, key = new_user(usd=50)
    _, other = new_user(usd=5)
    held = Held(key, CAP)
    held.wait_started()
    wait_until(lambda: slots_held(email) == CAP, timeout=10, msg="the streams hold the cap's slots")
    for surface in ("messages", "codex_chat", "codex_responses", "gemini_native"):
        path, proto, style, body = req_for(surface)
        t0 = time.monotonic()
        r = request("POST", path, auth(key, style), body)
        took = time.monotonic() - t0
        eq(r.status, 429, "%s over the cap: %s" % (surface, r.text[:300]))
        d = assert_error_shape(r, proto)
        ok(str(CAP) in (d["error"].get("message") or ""), "the message names the cap: %r" % d)
        eq(r.headers.get("retry-after"), "1", "%s: retry-after" % surface)
        ok(r.headers.get("x-ratelimit-limit") and r.headers.get("x-ratelimit-remaining") is not None,
           "%s: the hour's x-ratelimit-* figures, as on every answer" % surface)
        ok(took < 4, "%s: the 429 came after %.1f s" % (surface, took))
    # another customer is served at once while this one is at its cap
    path, _, style, body = req_for("messages")
    t0 = time.monotonic()
    r = request("POST", path, auth(other, style), body)
    eq(r.status, 200, r.text[:300])
    ok(time.monotonic() - t0 < 2, "another customer waited %.1f s" % (time.monotonic() - t0))
    eq(held.join(), [200] * CAP)
    # the refused requests were never admitted: one usage row per stream that ran, none for them
    wait_until(lambda: usage_rows(email) == CAP, timeout=15, msg="one usage row per stream")
    time.sleep(1)
    eq(usage_rows(email), CAP, "usage rows: the 429s left none")
    eq(sql_int("SELECT COUNT(*) FROM usage_log WHERE user_id = %d AND status = 'pending'" % user_id(email)), 0)
    # slots come back once the requests ended: the customer is served again
    wait_until(lambda: slots_held(email) == 0, timeout=10, msg="slots given back after the streams ended")
    r = request("POST", path, auth(key, style), body)
    eq(r.status, 200, r.text[:300])


def test_exactly_the_cap_runs_at_once_across_processes():
    _needs_threads()
    email, key = new_user(usd=50)
    # CAP + 4 streams at once: exactly CAP of them run, the rest are refused
    held = Held(key, CAP + 4, secs=4)
    statuses = held.join()
    eq(sorted(statuses, key=str), sorted([200] * CAP + [429] * 4, key=str), "statuses of %d streams" % (CAP + 4))
    wait_until(lambda: usage_rows(email) == CAP, timeout=15, msg="one usage row per stream that ran")
    wait_until(lambda: slots_held(email) == 0, timeout=10, msg="every slot given back")
    held = Held(key, 2, secs=1)
    eq(held.join(), [200, 200], "served again")


def test_slots_of_a_process_that_stopped_renewing_them_lapse():
    email, key = new_user(usd=5)
    uid = user_id(email)
    # a process on another host took every slot and died 60 s ago; a live one holds nothing
    sql("INSERT INTO conc_users (user_id) VALUES (%d) ON DUPLICATE KEY UPDATE changes = changes + 1" % uid)
    sql("INSERT INTO conc_slots (user_id, owner, slots, renewed_at) VALUES (%d, 'gone-host:1:1', %d, "
        "NOW(3) - INTERVAL 60 SECOND)" % (uid, CAP))
    path, _, style, body = req_for("messages")
    r = request("POST", path, auth(key, style), body)
    eq(r.status, 200, "the dead process's slots do not count: %s" % r.text[:300])
    eq(sql_int("SELECT COUNT(*) FROM conc_slots WHERE owner = 'gone-host:1:1'"), 0, "its row is gone")
    # a live process holding every slot (renewed now) does count, once the slot this request took
    # is given back (kept a second for the next request)
    wait_until(lambda: slots_held(email) == 0, timeout=10, msg="the idle slot given back")
    sql("INSERT INTO conc_slots (user_id, owner, slots) VALUES (%d, 'other-host:2:2', %d)" % (uid, CAP))
    try:
        r = request("POST", path, auth(key, style), body)
        eq(r.status, 429, r.text[:300])
    finally:
        sql("DELETE FROM conc_slots WHERE owner = 'other-host:2:2'")
    wait_until(lambda: request("POST", path, auth(key, style), body).status == 200, timeout=5,
               msg="served once the other host's slots are gone")
