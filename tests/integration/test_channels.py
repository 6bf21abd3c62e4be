"""Channels: several upstream accounts per provider. Each test adds channels that point at fake
upstream instances of its own, each told to fail in one way, and checks that the client gets its
answer from a healthy channel, that exactly one usage row records the channel that answered and
the attempts, that the broken channel is cooled down (or disabled, for 401/403) and later restored,
and that nothing reaches the client twice. Routing does not depend on the web server: run behind
lighttpd only."""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

from zgtest import (Skip, admin, admin_fail, admin_json, assert_error_shape, auth, closed_port, eq, new_user, ok, request,
                    sql, sql_int, sql_rows, stream, user_id, wait_until)

HAIKU = "claude-haiku-4-5"
HERE = os.path.dirname(os.path.abspath(__file__))
FAKE_PY = os.path.join(HERE, "..", "fake_upstream.py")
RELOAD_S = 2.3  # a channel change reaches every process within 2 s

_fakes = []


class Fake:
    """One more fake upstream: its own port, config and records."""

    def __init__(self):
        d = tempfile.mkdtemp(prefix="zg-chan-")
        pf = os.path.join(d, "port")
        self.proc = subprocess.Popen([sys.executable, FAKE_PY, "--port", "0", "--port-file", pf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: os.path.exists(pf), 10, msg="fake upstream port file")
        self.url = "http://127.0.0.1:%s" % open(pf).read().strip()
        _fakes.append(self)

    def config(self, **kw):
        r = request("DELETE", self.url + "/_fake/config")
        eq(r.status, 200, "reset fake config")
        if kw:
            eq(request("POST", self.url + "/_fake/config", body=kw).status, 200, "set fake config")

    def count(self):
        r = request("GET", self.url + "/_fake/requests")
        return len([x for x in r.json() if x.get("route")])

    def clear(self):
        request("DELETE", self.url + "/_fake/requests")


def setup_module():
    if os.environ.get("ZG_SERVER", "lighttpd") != "lighttpd":
        raise Skip("routing does not depend on the web server: tested behind lighttpd")


def teardown_module():
    for name in sql("SELECT name FROM channels").split():
        admin("channel", "remove", name)
    # the processes forget the channels within 2 s: only then may their upstreams go away, or the
    # next file's requests would meet refused connections
    time.sleep(RELOAD_S)
    for f in _fakes:
        f.proc.terminate()


def add(name, url, *extra):
    admin("channel", "add", name, "--provider", "anthropic", "--base-url", url + "/anthropic",
          "--key", "sk-test-" + name, *extra)


def remove(*names):
    for n in names:
        admin("channel", "remove", n)


def ask(key, body_extra=None, stream_=False, model=HAIKU):
    body = {"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": "channels"}]}
    if stream_:
        body["stream"] = True
    if body_extra:
        body.update(body_extra)
    if stream_:
        s = stream("POST", "/api/v1/messages", auth(key), body, timeout=60)
        return s.status, list(s) if s.status == 200 else s.body()
    r = request("POST", "/api/v1/messages", auth(key), body, timeout=60)
    return r.status, r


def usage_of(email):
    """(channel, attempts, end_reason, credits) of the user's usage rows, oldest first."""
    uid = user_id(email)
    wait_until(lambda: sql_int("SELECT COUNT(*) FROM usage_log WHERE user_id = %d AND status <> 'pending'" % uid)
               >= 1, 10, msg="usage row")
    return [tuple(r) for r in sql_rows("SELECT COALESCE(channel, ''), attempts, end_reason, COALESCE(credits, 0)"
                                       " FROM usage_log WHERE user_id = %d ORDER BY id" % uid)]


def balance_exact(email, start_credits):
    uid = user_id(email)
    spent = sql_int("SELECT COALESCE(SUM(credits), 0) FROM usage_log WHERE user_id = %d" % uid)
    bal = sql_int("SELECT balance FROM users WHERE id = %d" % uid)
    eq(bal, start_credits - spent, "balance = top-up - sum of usage")


def names_json():
    return {c["name"]: c for c in admin_json("channel", "list", "--json")}


# --------------------------------------------------------------------------- failover


def test_429_with_retry_after_fails_over_and_cools_down():
    a, b = Fake(), Fake()
    a.config(status=429, retry_after=30)
    add("t429-a", a.url, "--priority", "20")
    add("t429-b", b.url, "--priority", "10")
    try:
        time.sleep(RELOAD_S)
        email, key = new_user()
        st, r = ask(key)
        eq(st, 200, "answered by the healthy channel")
        eq(r.json()["content"][0]["type"], "text")
        ok(r.headers.get("x-ratelimit-remaining") is not None, "the rate-limit headers survive the failover")
        eq(a.count(), 1, "the rate-limited channel was asked once")
        eq(b.count(), 1, "the healthy one answered")
        rows = usage_of(email)
        eq(len(rows), 1, "one usage row")
        eq(rows[0][:3], ("t429-b", "2", "complete"), "channel and attempts recorded")
        # the provider asked for 30 s: the channel's circuit for the model is open, shared through
        # the database, and the next request goes straight to the other channel
        wait_until(lambda: sql_int("SELECT COUNT(*) FROM channel_health WHERE channel = 't429-a' AND model = '%s'"
                                   " AND open_until > NOW(3) + INTERVAL 20 SECOND" % HAIKU), 3,
                   msg="open circuit recorded")
        st, _ = ask(key)
        eq(st, 200)
        eq(a.count(), 1, "no second request to the cooling channel")
        ok(HAIKU in (names_json()["t429-a"]["open_circuits"] or ""), "channel list shows the open circuit")
        balance_exact(email, 20000000)
    finally:
        remove("t429-a", "t429-b")


def test_refused_connection_and_500_fail_over_in_priority_order():
    a, b = Fake(), Fake()
    b.config(status=500)
    add("tref-a", "http://127.0.0.1:%d" % closed_port(), "--priority", "30")
    add("tref-b", b.url, "--priority", "20")
    try:
        time.sleep(RELOAD_S)
        email, key = new_user()
        st, r = ask(key)
        eq(st, 200, "the zenn.conf channel (priority 0) answered after two failures")
        eq(b.count(), 1, "the 500 channel was tried once")
        rows = usage_of(email)
        eq(rows[0][:3], ("anthropic", "3", "complete"), "third attempt, default channel")
        balance_exact(email, 20000000)
    finally:
        remove("tref-a", "tref-b")


def test_every_channel_failing_is_answered_once_unbilled():
    a = Fake()
    a.config(status=529)
    add("tall-a", a.url, "--priority", "10", "--models", "claude-sonnet-4-6")
    try:
        time.sleep(RELOAD_S)
        email, key = new_user()
        # the default channel fails too (a directive reaches every fake): nothing answers
        st, r = ask(key, {"messages": [{"role": "user", "content": "x [[fake:status=529]]"}]},
                    model="claude-sonnet-4-6")
        eq(st, 529, "the last channel's answer, as the provider gave it")
        assert_error_shape(r, "anthropic")
        eq(a.count(), 1, "each channel asked once")
        rows = usage_of(email)
        eq(len(rows), 1, "one usage row")
        eq(rows[0][1], "2", "two attempts")
        eq(rows[0][3], "0", "nothing billed")
        balance_exact(email, 20000000)
    finally:
        remove("tall-a")


def test_401_disables_the_channel_with_its_reason():
    a, b = Fake(), Fake()
    a.config(status=401)
    add("tauth-a", a.url, "--priority", "20")
    add("tauth-b", b.url, "--priority", "10")
    try:
        time.sleep(RELOAD_S)
        email, key = new_user()
        st, _ = ask(key)
        eq(st, 200)
        ch = wait_until(lambda: (lambda c: c if not c["enabled"] else None)(names_json()["tauth-a"]), 3,
                        msg="channel disabled")
        ok("401" in (ch["disabled_reason"] or ""), "reason names the upstream's answer: %r" % ch["disabled_reason"])
        time.sleep(RELOAD_S)
        for _ in range(3):
            eq(ask(key)[0], 200)
        eq(a.count(), 1, "a disabled channel gets no more requests")
        a.config()
        admin("channel", "enable", "tauth-a")
        ok(names_json()["tauth-a"]["enabled"], "enabled again")
    finally:
        remove("tauth-a", "tauth-b")


def test_stall_before_the_first_byte_fails_over_for_streams():
    a, b = Fake(), Fake()
    a.config(delay=8000)
    add("tstall-a", a.url, "--priority", "20")
    add("tstall-b", b.url, "--priority", "10")
    try:
        time.sleep(RELOAD_S)
        email, key = new_user()
        t0 = time.monotonic()
        st, events = ask(key, stream_=True)
        took = time.monotonic() - t0
        eq(st, 200)
        ok(any(e.event == "message_stop" for e in events), "a complete stream")
        ok(took < 6, "moved on after [routing] head_timeout_ms (2 s), took %.1f s" % took)
        rows = usage_of(email)
        eq(rows[0][:3], ("tstall-b", "2", "complete"))
    finally:
        remove("tstall-a", "tstall-b")


def test_mid_stream_drop_is_not_retried():
    a, b = Fake(), Fake()
    a.config(drop_after=2)
    add("tdrop-a", a.url, "--priority", "20")
    add("tdrop-b", b.url, "--priority", "10")
    try:
        time.sleep(RELOAD_S)
        email, key = new_user()
        st, events = ask(key, stream_=True)
        eq(st, 200, "the stream had started")
        ok(any(e.event == "error" for e in events), "ends with the protocol's error event")
        eq(b.count(), 0, "never retried after the first byte")
        rows = usage_of(email)
        eq(len(rows), 1)
        eq(rows[0][:3], ("tdrop-a", "1", "upstream_dropped"), "billed once, from the attempt that answered")
        balance_exact(email, 20000000)
    finally:
        remove("tdrop-a", "tdrop-b")


def test_half_open_probe_restores_a_channel():
    a, b = Fake(), Fake()
    a.config(status=429, retry_after=2)
    add("thalf-a", a.url, "--priority", "20")
    add("thalf-b", b.url, "--priority", "10")
    try:
        time.sleep(RELOAD_S)
        email, key = new_user()
        eq(ask(key)[0], 200)
        eq(a.count(), 1)
        a.config()  # the account recovers
        time.sleep(2.5)
        eq(ask(key)[0], 200)
        eq(a.count(), 2, "after the cooldown one request probes the channel")
        rows = usage_of(email)
        eq(rows[-1][:2], ("thalf-a", "1"), "and it answered")
        wait_until(lambda: sql_int("SELECT COUNT(*) FROM channel_health WHERE channel = 'thalf-a'") == 0, 3,
                   msg="circuit closed in the database")
    finally:
        remove("thalf-a", "thalf-b")


def test_plan_channel_serves_only_its_plan_first():
    a = Fake()
    add("tent-a", a.url, "--priority", "50", "--plans", "enterprise")
    try:
        time.sleep(RELOAD_S)
        e_email, e_key = new_user(plan="enterprise", usd=1000)
        p_email, p_key = new_user()
        eq(ask(e_key)[0], 200)
        eq(ask(p_key)[0], 200)
        eq(usage_of(e_email)[0][0], "tent-a", "Enterprise goes to its priority channel")
        eq(usage_of(p_email)[0][0], "anthropic", "Pro never does")
        eq(a.count(), 1)
    finally:
        remove("tent-a")


def test_admin_channel_commands():
    a = Fake()
    out = admin("channel", "add", "tadm-a", "--provider", "anthropic", "--base-url", a.url + "/anthropic",
                "--key", "sk-ant-secret-0123456789", "--weight", "3", "--models", HAIKU)
    ok("added" in out)
    try:
        c = names_json()["tadm-a"]
        eq((c["weight"], c["models"], c["enabled"]), (3, HAIKU, True))
        ok("secret" not in c["key"] and c["key"].endswith("6789"), "key masked: %r" % c["key"])
        admin_fail("channel", "add", "tadm-a", "--provider", "anthropic", "--base-url", a.url, "--key", "k")
        admin_fail("channel", "add", "anthropic", "--provider", "anthropic", "--base-url", a.url, "--key", "k")
        admin_fail("channel", "add", "tadm-x", "--provider", "nope", "--base-url", a.url, "--key", "k")
        admin_fail("channel", "add", "tadm-x", "--provider", "anthropic", "--base-url", "ftp://x", "--key", "k")
        admin_fail("channel", "set", "tadm-a", "--plans", "gold")
        admin("channel", "set", "tadm-a", "--priority", "7", "--plans", "max,enterprise")
        c = names_json()["tadm-a"]
        eq((c["priority"], c["plans"]), (7, "max,enterprise"))
        admin("channel", "disable", "tadm-a", "--reason", "maintenance")
        c = names_json()["tadm-a"]
        eq((c["enabled"], c["disabled_reason"]), (False, "maintenance"))
        out = admin("channel", "test", "tadm-a")
        ok("HTTP 200" in out, out)
        admin_fail("channel", "remove", "tadm-nope")
    finally:
        remove("tadm-a")
    ok("tadm-a" not in names_json())


def test_chaos_every_request_succeeds_while_a_channel_is_healthy():
    """200 mixed requests (streamed and not) from 8 threads while the two channels of the first tier
    flip at random between healthy, 500, 529 and 429 with retry-after; the third, a tier below, stays
    healthy. Every
    request succeeds, each has one usage row, and the balance moves by exactly their sum."""
    import random
    import threading
    a, b, c = Fake(), Fake(), Fake()
    # the flipping channels are the first tier, so requests keep meeting them (a key sticks to the
    # channel that last served it, and would otherwise settle on the healthy one for good)
    for n, f, prio in (("tchaos-a", a, "10"), ("tchaos-b", b, "10"), ("tchaos-c", c, "5")):
        add(n, f.url, "--priority", prio)
    stop = threading.Event()

    def flip():
        rnd = random.Random(7)
        modes = [{}, {"status": 500}, {"status": 529}, {"status": 429, "retry_after": 1}]
        while not stop.is_set():
            for f in (a, b):
                f.config(**rnd.choice(modes))
            time.sleep(0.2)

    try:
        time.sleep(RELOAD_S)
        email, key = new_user(usd=50)
        flipper = threading.Thread(target=flip)
        flipper.start()
        statuses, lock = [], threading.Lock()

        def worker(i):
            for j in range(25):
                st, _ = ask(key, stream_=(i + j) % 2 == 0)
                with lock:
                    statuses.append(st)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        flipper.join()
        eq(statuses.count(200), 200, "every request answered 200: %r" % sorted(set(statuses)))
        uid = user_id(email)
        wait_until(lambda: sql_int("SELECT COUNT(*) FROM usage_log WHERE user_id = %d AND status = 'settled'"
                                   % uid) == 200, 15, msg="200 settled usage rows")
        eq(sql_int("SELECT COUNT(*) FROM usage_log WHERE user_id = %d" % uid), 200, "one row per request")
        chans = set(r[0] for r in sql_rows("SELECT DISTINCT channel FROM usage_log WHERE user_id = %d" % uid))
        ok(chans <= {"tchaos-a", "tchaos-b", "tchaos-c", "anthropic"}, "channels recorded: %r" % chans)
        ok(sql_int("SELECT MAX(attempts) FROM usage_log WHERE user_id = %d" % uid) >= 2, "some requests failed over")
        balance_exact(email, 50000000)
    finally:
        stop.set()
        remove("tchaos-a", "tchaos-b", "tchaos-c")


# --------------------------------------------------------------------------- caps and the line

SONNET = "claude-sonnet-4-6"


def open_default_circuit(model, seconds):
    """Open the zenn.conf channel's circuit for model, as another node would have (every process
    reads it within a second): a channel that is only at its cap is then waited for."""
    sql("REPLACE INTO channel_health (channel, model, open_until, reason) VALUES"
        " ('anthropic', '%s', NOW(3) + INTERVAL %d SECOND, 'test: shed to the stored channels')" % (model, seconds))


def fake_records(f):
    r = request("GET", f.url + "/_fake/requests")
    return [x for x in r.json() if x.get("route")]


def most_at_once(records):
    """The most requests the fake had open at once (from its start and end times)."""
    edges = sorted([(x["time"], 1) for x in records] + [(x.get("ended", 1e18), -1) for x in records],
                   key=lambda e: (e[0], e[1]))
    n = most = 0
    for _, d in edges:
        n += d
        most = max(most, n)
    return most


def test_cap_holds_for_the_host_and_enterprise_waits_least():
    a = Fake()
    a.config(events=4, interval=80)  # each stream holds its channel most of a second
    add("tcap-a", a.url, "--priority", "20", "--max-concurrency", "4")
    open_default_circuit(SONNET, 60)
    try:
        time.sleep(RELOAD_S)
        p_email, p_key = new_user(usd=50)
        e_email, e_key = new_user(plan="enterprise", usd=1000)
        done = {}

        def go(tag, key):
            body = {"model": SONNET, "max_tokens": 50, "stream": True,
                    "messages": [{"role": "user", "content": "line " + tag}]}
            s = stream("POST", "/api/v1/messages", auth(key), body, timeout=60)
            done[tag] = (s.status, [e.event for e in s] if s.status == 200 else s.body)

        threads = [threading.Thread(target=go, args=("pro-%d" % i, p_key)) for i in range(8)]
        for t in threads:
            t.start()
        time.sleep(0.3)  # four Pro streams run, four Pro requests wait
        ent = [threading.Thread(target=go, args=("ent-%d" % i, e_key)) for i in range(4)]
        for t in ent:
            t.start()
        for t in threads + ent:
            t.join(60)
        eq(sorted(st for st, _ in done.values()), [200] * 12, "every request answered in the end")
        ok(all(ev[-1] == "message_stop" for _, ev in done.values()), "every stream complete")
        recs = sorted(fake_records(a), key=lambda x: x["seq"])
        eq(len(recs), 12, "all went to the capped channel")
        eq(most_at_once(recs), 4, "never more than its cap at once, across the program processes")
        order = ["ent" if "line ent-" in x["body"] else "pro" for x in recs]
        eq(order[:4], ["pro"] * 4, "the first four Pro requests took the channel")
        eq(order[4:8], ["ent"] * 4, "then every waiting Enterprise request, before the Pro ones waiting longer")
        rows = usage_of(p_email) + usage_of(e_email)
        eq(len(rows), 12, "one usage row each")
        ok(all(r[0] == "tcap-a" and r[2] == "complete" for r in rows), "all billed on the capped channel")
        balance_exact(p_email, 50000000)
    finally:
        remove("tcap-a")
        sql("DELETE FROM channel_health WHERE channel = 'anthropic' AND model = '%s'" % SONNET)


def test_a_wait_that_runs_out_is_429_in_shape_and_unbilled():
    a = Fake()
    a.config(events=6, interval=1000)  # one stream holds the only slot for about 10 s
    add("twait-a", a.url, "--priority", "20", "--max-concurrency", "1")
    open_default_circuit(SONNET, 60)
    try:
        time.sleep(RELOAD_S)
        email, key = new_user()
        body = {"model": SONNET, "max_tokens": 50, "stream": True,
                "messages": [{"role": "user", "content": "holder"}]}
        holder = stream("POST", "/api/v1/messages", auth(key), body, timeout=60)
        eq(holder.status, 200)
        t0 = time.monotonic()
        st, r = ask(key, model=SONNET)
        waited = time.monotonic() - t0
        eq(st, 429, "the wait ran out ([routing] queue_timeout = 5 in the test stack): %r %r"
           % (r.body[:200], usage_of(email)))
        assert_error_shape(r, "anthropic")
        eq(r.headers.get("retry-after"), "5")
        ok("capacity" in r.json()["error"]["message"], "says why")
        ok(4.5 <= waited < 15, "answered when the wait ran out (%.1f s)" % waited)
        for _ in holder:
            pass
        eq(a.count(), 1, "the waiting request never reached an upstream")
        uid = user_id(email)
        wait_until(lambda: sql_int("SELECT COUNT(*) FROM usage_log WHERE user_id = %d AND status <> 'pending'"
                                   % uid) >= 1, 10, msg="the holder's row")
        rows = usage_of(email)
        eq(len([r for r in rows if r[3] != "0"]), 1, "only the stream that ran is billed")
        balance_exact(email, 20000000)
        # the line is per channel: once the holder ended, the next request goes through at once
        eq(ask(key, model=SONNET)[0], 200)
    finally:
        remove("twait-a")
        sql("DELETE FROM channel_health WHERE channel = 'anthropic' AND model = '%s'" % SONNET)


def test_rate_limit_reset_headers_set_the_cooldown():
    a, o = Fake(), Fake()
    a.config(status=429, reset_after=200)  # no retry-after: only the rate-limit headers say when
    o.config(status=429, reset_after=150)
    add("treset-a", a.url, "--priority", "20")
    admin("channel", "add", "treset-o", "--provider", "openai", "--base-url", o.url + "/openai/v1",
          "--key", "sk-test-treset-o", "--priority", "20")
    try:
        time.sleep(RELOAD_S)
        email, key = new_user()
        eq(ask(key)[0], 200, "Anthropic: answered by the zenn.conf channel")
        r = request("POST", "/api/v1/codex/chat/completions", auth(key, "openai"),
                    {"model": "gpt-5.5", "messages": [{"role": "user", "content": "reset"}]}, timeout=60)
        eq(r.status, 200, "OpenAI: answered by the zenn.conf channel")
        # anthropic-ratelimit-requests-reset (an RFC 3339 time) and x-ratelimit-reset-requests
        # ("2m30s"): the exhausted limit's reset, not the 30 s default cooldown
        for ch, model, lo, hi in (("treset-a", HAIKU, 170, 210), ("treset-o", "gpt-5.5", 120, 160)):
            wait_until(lambda: sql_int("SELECT COUNT(*) FROM channel_health WHERE channel = '%s' AND model = '%s'"
                                       % (ch, model)) == 1, 3, msg="open circuit of %s recorded" % ch)
            left = sql_int("SELECT TIMESTAMPDIFF(SECOND, NOW(3), open_until) FROM channel_health"
                           " WHERE channel = '%s' AND model = '%s'" % (ch, model))
            ok(lo <= left <= hi, "%s cools down until its reset (%d s left)" % (ch, left))
    finally:
        remove("treset-a", "treset-o")
