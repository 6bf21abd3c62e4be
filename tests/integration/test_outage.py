"""A database that goes away (README, "Reliability"): stopped, or alive but not answering (SIGSTOP).
A key whose lease a process holds is served as usual, each request in well under a second; a key
without one gets a 503 in its protocol's shape within a few seconds, never a hang; once the database
is back every request is billed exactly once."""

import os
import signal
import time

from zgtest import (STATE, Skip, access_seen, admin_json, assert_error_shape, auth, db_ctl, eq, held_now,
                    lease_mode, lease_owners, new_user, ok, program_pids, request, stream, wait_released, wait_until)

START = 20000000
DIRECTIVE = "input=10,output=5"     # claude-haiku-4-5: 10 + 25 = 35 credits
COST = 35


def body(text="outage [[fake:%s]]" % DIRECTIVE, stream_=False):
    b = {"model": "claude-haiku-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": text}]}
    if stream_:
        b["stream"] = True
    return b


def db_pid():
    path = os.path.join(STATE, "db", "mariadbd.pid")
    if not os.path.exists(path):
        raise Skip("no MariaDB pid file at %s" % path)
    return int(open(path).read().strip())


def hold_leases(email, key):
    """Streams in flight until every messages process holds a lease for the key."""
    pids = set(program_pids("messages"))
    ok(pids, "messages processes")
    streams = []
    for _ in range(8):
        if pids <= set(lease_owners(email, "messages")):
            break
        s = stream("POST", "/api/v1/messages", headers=auth(key),
                   body=body("hold [[fake:events=30,interval=300,input=10,output=5]]", stream_=True), timeout=60)
        eq(s.status, 200)
        next(iter(s))
        streams.append(s)
    ok(pids <= set(lease_owners(email, "messages")), "every messages process holds a lease")
    return streams


def outage(kind):
    if kind == "stop":
        db_ctl("stop")
        return lambda: db_ctl("start")
    pid = db_pid()
    os.kill(pid, signal.SIGSTOP)
    return lambda: os.kill(pid, signal.SIGCONT)


def run_outage(kind):
    if not lease_mode():
        raise Skip("strict mode: every admission needs the database")
    email, key = new_user()
    other_email, other_key = new_user()
    access_seen()
    streams = hold_leases(email, key)
    served, slow = 0, []
    back = outage(kind)
    try:
        for _ in range(50):
            t0 = time.monotonic()
            r = request("POST", "/api/v1/messages", headers=auth(key), body=body(), timeout=10)
            dt = time.monotonic() - t0
            eq(r.status, 200, "a leased key with the database %s: %s" % (kind, r.text[:200]))
            served += 1
            if dt >= 1.0:
                slow.append(round(dt, 2))
        ok(not slow, "every request answered within 1 s, slow ones: %r" % slow)
        # no lease: a clean 503 within a few seconds, never a hang
        t0 = time.monotonic()
        r = request("POST", "/api/v1/messages", headers=auth(other_key), body=body(), timeout=60)
        dt = time.monotonic() - t0
        eq(r.status, 503, "no lease with the database %s: %s" % (kind, r.text[:200]))
        assert_error_shape(r, "anthropic")
        ok(dt < 15, "the 503 came after %.1f s" % dt)
    finally:
        back()
        for s in streams:
            s.close()
    # back: every request billed exactly once, nothing held once the leases are returned
    n = served + len(streams)
    rows = wait_until(lambda: (lambda rs: rs if len(rs) >= n and all(x["status"] != "pending" for x in rs)
                               else None)(admin_json("usage", email, "--json", "--limit", "1000")),
                      timeout=60, interval=0.5, msg="%d settled rows" % n)
    eq(len(rows), n, "one row per request")
    eq(len(set(x["request_id"] for x in rows)), n)
    wait_released(email, timeout=20)
    b = admin_json("balance", email, "--json")
    eq(b["credits"], START - sum(x["credits"] for x in rows), "balance = start - sum of usage")
    eq(b["held"], 0)
    eq(held_now(email), (0, 0, 0, 0))
    eq(admin_json("usage", other_email, "--json"), [], "the refused request is not billed")


def test_leased_key_served_while_the_database_is_stopped():
    run_outage("stop")


def test_leased_key_served_while_the_database_hangs():
    run_outage("sigstop")
