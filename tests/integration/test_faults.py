"""Faults: the upstream refuses, fails, stalls or drops; the client leaves at every phase; a
worker dies; MariaDB restarts or stays down (settlements spool and are replayed); the web server
reloads gracefully. Every admitted request is settled exactly once and the balance always equals
the sum of the usage rows."""

import concurrent.futures
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.parse

from zgtest import (BASE, CONFIG, STATE, Skip, access_seen, admin, admin_json, assert_error_shape, auth, db_ctl, eq,
                    fake_requests, kill_programs, lease_mode, lease_owners, new_user, ok, processes_on_demand,
                    program_pids, request, sql,
                    sql_int, stream, wait_released, wait_until)

HAIKU = "claude-haiku-4-5"
GEM = "gemini-3-flash-preview"
START = 20000000  # credits of a $20 Pro top-up
# A user too poor for a lease: less than 8 x the hold of a messages (haiku) or gemini_native request
# of req_for() (about 540 and 320 credits) free, so lease mode admits it the strict way (a pending
# row, settlement or spool, reaping), while the hold still fits.
POOR_USD = "0.002"
POOR = 2000


# --------------------------------------------------------------------------- surfaces


def _text(directive):
    return "fault test" + (" [[fake:%s]]" % directive if directive else "")


def req_for(surface, directive="", stream_=False, model=None):
    """(path, protocol, headers style, body) of one request on a surface."""
    t = _text(directive)
    if surface == "messages":
        b = {"model": model or HAIKU, "max_tokens": 100, "messages": [{"role": "user", "content": t}]}
        if stream_:
            b["stream"] = True
        return "/api/v1/messages", "anthropic", "anthropic", b
    if surface in ("codex_chat", "gemini_chat"):
        b = {"model": model or ("gpt-5.5" if surface == "codex_chat" else GEM), "max_tokens": 100,
             "messages": [{"role": "user", "content": t}]}
        if stream_:
            b["stream"] = True
            b["stream_options"] = {"include_usage": True}
        path = "/api/v1/codex/chat/completions" if surface == "codex_chat" else \
            "/api/v1/gemini/v1beta/openai/chat/completions"
        return path, "openai", "openai", b
    if surface == "codex_responses":
        b = {"model": model or "gpt-5.5", "max_output_tokens": 100, "input": t}
        if stream_:
            b["stream"] = True
        return "/api/v1/codex/responses", "openai", "openai", b
    if surface == "gemini_native":
        action = "streamGenerateContent?alt=sse" if stream_ else "generateContent"
        b = {"contents": [{"role": "user", "parts": [{"text": t}]}], "generationConfig": {"maxOutputTokens": 100}}
        return "/api/v1/gemini/v1beta/models/%s:%s" % (model or GEM, action), "gemini", "gemini", b
    if surface == "images":
        return "/api/v1/images/generations", "openai", "openai", {"model": "gpt-image-2", "prompt": t}
    raise ValueError(surface)


STREAM_SURFACES = ["messages", "codex_chat", "codex_responses", "gemini_native", "gemini_chat"]
ALL_SURFACES = STREAM_SURFACES + ["images"]


def send(key, surface, directive="", stream_=False, timeout=60, model=None):
    path, proto, style, b = req_for(surface, directive, stream_, model)
    return request("POST", path, headers=auth(key, style), body=b, timeout=timeout), proto


def open_stream(key, surface, directive="", timeout=60, model=None):
    path, proto, style, b = req_for(surface, directive, True, model)
    return stream("POST", path, headers=auth(key, style), body=b, timeout=timeout), proto


# --------------------------------------------------------------------------- ledger


def usage(email):
    return admin_json("usage", email, "--json", "--limit", "10000")


def balance(email):
    return admin_json("balance", email, "--json")


def settled_rows(email, n, timeout=20):
    """Wait until the user has exactly n usage rows, none pending; return them."""
    def ready():
        rows = usage(email)
        return rows if len(rows) >= n and all(r["status"] != "pending" for r in rows) else None
    rows = wait_until(ready, timeout=timeout, interval=0.2, msg="%d settled usage rows" % n)
    eq(len(rows), n, "usage rows (one per admitted request)")
    return rows


def check_ledger(email, n, start=START, timeout=20):
    """Exactly n settled rows; balance = start - sum(credits); nothing held; key spent = sum."""
    rows = settled_rows(email, n, timeout)
    ids = [r["request_id"] for r in rows]
    eq(len(set(ids)), len(ids), "request ids are unique")
    total = sum(r["credits"] for r in rows)
    wait_released(email)  # lease mode: the leases go back once idle
    b = balance(email)
    eq(b["credits"], start - total, "balance equals the start minus the sum of usage")
    eq(b["held"], 0, "no credits left held")
    spent = sum(k["spent_credits"] for k in admin_json("key", "list", email, "--json"))
    eq(spent, total, "keys' spend equals the sum of usage")
    return rows


# --------------------------------------------------------------------------- processes


def stack_programs(name):
    """Pids of this stack's FastCGI program `name`."""
    return program_pids(name)


def run_dir():
    sock = os.environ.get("ZG_DB_SOCK", "")
    return os.path.dirname(sock) if sock else os.path.join(STATE, "run")


def spool_path():
    path = None
    sec = None
    with open(CONFIG) as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                sec = line.strip("[]")
            elif sec == "billing" and line.startswith("spool_path"):
                path = line.split("=", 1)[1].strip()
    ok(path, "no [billing] spool_path in the config")
    return path


def spool_lines():
    try:
        with open(spool_path()) as f:
            return [ln for ln in f if ln.strip()]
    except FileNotFoundError:
        return []


# The setups the database faults run behind: the first of each billing mode in ./dev's matrix.
DB_FAULT_SETUPS = ("lighttpd", "apache-fcgid")


def gateway_only():
    """The database faults exercise the programs, not the web server in front: run them behind
    one setup per billing mode (lighttpd: lease, apache-fcgid: strict) of the matrix."""
    server = os.environ.get("ZG_SERVER", "lighttpd")
    if server not in DB_FAULT_SETUPS:
        raise Skip("database faults run behind %s only (this is %s)" % (" and ".join(DB_FAULT_SETUPS), server))
    ensure_db_up()


def ensure_db_up():
    """Start the test DB again if a failed test left it down, and wait until the gateway serves."""
    try:
        sql("SELECT 1")
    except AssertionError:
        db_ctl("start")


def pending_rows(email, n=1):
    """Wait for n pending usage rows of the user (a strict admission: written before the upstream call)."""
    return wait_until(lambda: (lambda rs: rs if len(rs) >= n else None)(
        [u for u in usage(email) if u["status"] == "pending"]), timeout=5, msg="%d pending usage row(s)" % n)


def strict_user():
    """(email, key, start credits) of a user whose requests are admitted the strict way: any user in
    strict mode; in lease mode one too poor for a lease (see POOR)."""
    if lease_mode():
        email, key = new_user("pro", POOR_USD)
        return email, key, POOR
    email, key = new_user()
    return email, key, START


def replayed_row(email, rid, timeout=30):
    """Lease mode: the usage row written when a dead worker's journal was replayed by a sibling process
    (every 5 s) or the respawned one, for a request admitted and never finished: abandoned, at its hold."""
    rows = wait_until(lambda: [u for u in usage(email) if u["request_id"] == rid] or None, timeout=timeout,
                      interval=0.3, msg="the dead worker's journal replayed (a usage row for %s)" % rid)
    eq(len(rows), 1, "one usage row for %s" % rid)
    u = rows[0]
    eq((u["status"], u["end_reason"], u["estimated"]), ("abandoned", "abandoned", True), "%r" % u)
    hold = sql_int("SELECT hold_credits FROM usage_log WHERE request_id = '%s'" % rid)
    ok(hold > 0, "the admission's hold was journalled: %r" % u)
    eq(u["credits"], hold, "an unfinished request is charged its hold")
    return u


# --------------------------------------------------------------------------- upstream faults


def test_upstream_refuses_connections():
    email, key = new_user()
    n = 0
    for st in (False, True):
        r, proto = send(key, "messages", stream_=st, model="deepseek-v4-flash")
        eq(r.status, 502, r.text)
        assert_error_shape(r, proto)
        eq(r.headers.get("x-should-retry"), None, "no upstream answer to mirror")
        n += 1
    rows = check_ledger(email, n)
    ok(all(r["end_reason"] == "upstream_unreachable" and r["credits"] == 0 for r in rows),
       "unreachable is free: %r" % rows)
    eq(fake_requests(path_contains="deepseek/anthropic"), [])


def test_upstream_5xx_and_529_on_every_surface():
    email, key = new_user()
    n = 0
    for status in (500, 503, 529):
        for surface in ALL_SURFACES:
            for st in ((False, True) if surface in STREAM_SURFACES else (False,)):
                r, proto = send(key, surface, "status=%d" % status, stream_=st)
                eq(r.status, status, "%s stream=%s: %s" % (surface, st, r.text[:200]))
                assert_error_shape(r, proto)
                eq(r.headers.get("x-should-retry"), "true", "5xx is retryable")
                n += 1
    rows = check_ledger(email, n)
    for r in rows:
        eq((r["end_reason"], r["credits"]), ("upstream_error", 0), "upstream errors are free")
        ok(r["upstream_status"] in (500, 503, 529), "upstream status recorded: %r" % r)


def test_upstream_stalls_before_headers():
    email, key = new_user()
    n = 0
    for surface, st in [("messages", False), ("messages", True), ("codex_chat", True), ("gemini_native", False),
                        ("codex_responses", False)]:
        t0 = time.monotonic()
        r, proto = send(key, surface, "delay=9000", stream_=st)
        eq(r.status, 504, "%s stream=%s: %s" % (surface, st, r.text[:200]))
        assert_error_shape(r, proto)
        ok(time.monotonic() - t0 < 8, "the idle timeout (4 s) cut it, not the 9 s delay")
        n += 1
    rows = check_ledger(email, n)
    ok(all(r["end_reason"] == "upstream_timeout" and r["credits"] == 0 for r in rows), "%r" % rows)


def test_upstream_stalls_mid_stream():
    email, key = new_user()
    n = 0
    for surface in ["messages", "codex_chat", "gemini_native", "codex_responses"]:
        s, proto = open_stream(key, surface, "events=4,silence=9000,input=300", timeout=30)
        with s:
            eq(s.status, 200)
            evs = list(s)
        ok(evs, "%s: events before the stall" % surface)
        last = evs[-1].json() if evs[-1].data and evs[-1].data != "[DONE]" else {}
        ok("error" in last or evs[-1].event == "error", "%s: the stream ends with an error: %r" % (surface, evs[-1]))
        n += 1
    rows = check_ledger(email, n)
    for r in rows:
        eq(r["end_reason"], "upstream_timeout")
        ok(r["credits"] > 0, "what was relayed is billed: %r" % r)
    # Gemini reports running usage in every chunk; the others leave the output to be estimated
    ok(sum(r["estimated"] for r in rows) >= n - 1, "estimated where usage was missing: %r" % rows)


def test_upstream_drops_mid_stream_every_surface():
    email, key = new_user()
    n = 0
    for surface in STREAM_SURFACES:
        s, proto = open_stream(key, surface, "events=10,drop_after=3,input=200")
        with s:
            eq(s.status, 200)
            evs = list(s)
        last = evs[-1]
        ok(last.event == "error" or "error" in last.data, "%s: told the stream broke: %r" % (surface, last))
        n += 1
    rows = check_ledger(email, n)
    for r in rows:
        eq(r["end_reason"], "upstream_dropped", "%r" % r)
        ok(r["output_tokens"] >= 1 and r["credits"] > 0, "relayed output is billed: %r" % r)
    ok(sum(r["estimated"] for r in rows) >= n - 1, "estimated where usage was missing: %r" % rows)


def test_upstream_drops_a_json_body():
    # a cut JSON answer must not reach the client as a short 200 body
    email, key = new_user()
    n = 0
    for surface in ALL_SURFACES:
        r, proto = send(key, surface, "drop_after=1")
        eq(r.status, 502, "%s: %s" % (surface, r.text[:200]))
        assert_error_shape(r, proto)
        n += 1
    rows = check_ledger(email, n)
    ok(all(r["end_reason"] == "upstream_dropped" for r in rows), "%r" % rows)


def test_in_stream_error_event():
    email, key = new_user()
    for surface in STREAM_SURFACES:
        s, _ = open_stream(key, surface, "events=5,error_after=2")
        with s:
            evs = list(s)
        ok(evs, surface)
    check_ledger(email, len(STREAM_SURFACES))


# --------------------------------------------------------------------------- client leaves


def _raw_post(key, surface, directive, stream_=False):
    path, _, style, b = req_for(surface, directive, stream_)
    u = urllib.parse.urlsplit(BASE)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    h = dict(auth(key, style))
    h["Content-Type"] = "application/json"
    conn.request("POST", path, body=json.dumps(b), headers=h)
    return conn


def _hard_close(conn):
    try:
        conn.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    conn.close()


def test_client_leaves_before_headers():
    email, key = new_user()
    n = 0
    for surface, st in [("messages", False), ("messages", True), ("codex_chat", True), ("gemini_native", False)]:
        conn = _raw_post(key, surface, "delay=2500,input=100,output=20", st)
        time.sleep(0.5)
        _hard_close(conn)
        n += 1
    time.sleep(3)
    rows = check_ledger(email, n)
    for r in rows:
        ok(r["end_reason"] in ("complete", "client_closed"), "%r" % r)


def test_client_leaves_mid_stream_every_surface():
    email, key = new_user()
    for surface in STREAM_SURFACES:
        s, _ = open_stream(key, surface, "events=30,interval=100,input=100")
        it = iter(s)
        for _ in range(3):
            next(it)
        s.close()
    rows = check_ledger(email, len(STREAM_SURFACES), timeout=30)
    for r in rows:
        eq(r["end_reason"], "client_closed", "%r" % r)
        ok(r["credits"] > 0 and not r["estimated"], "what the upstream reported is billed: %r" % r)
    # the gateway reads on (relaying nothing) until the final usage: every delta was generated
    recs = wait_until(lambda: (lambda rs: rs if rs and all(x["outcome"] != "in_progress" for x in rs) else None)(
        fake_requests()), timeout=15, msg="upstream transfers ended")
    eq([x["deltas_sent"] for x in recs], [30] * len(recs), "read to the final usage: %r"
       % [(x["outcome"], x["deltas_sent"]) for x in recs])


def test_client_leaves_right_at_the_end():
    email, key = new_user()
    for surface in STREAM_SURFACES:
        s, _ = open_stream(key, surface, "events=3,input=100,output=20")
        raw = b""
        # read up to the last byte the stream will carry, then vanish without reading the end
        for line in s._resp:
            raw += line
            if b"message_stop" in line or b"[DONE]" in line or b"response.completed" in line or \
                    b'"finishReason": "STOP"' in line or b'"finishReason":"STOP"' in line:
                break
        _hard_close(s._conn)
    rows = check_ledger(email, len(STREAM_SURFACES))
    for r in rows:
        ok(r["end_reason"] in ("complete", "client_closed"), "%r" % r)
        ok(r["credits"] > 0, "%r" % r)


def test_client_leaves_while_sending_the_body():
    email, key = new_user()
    u = urllib.parse.urlsplit(BASE)
    s = socket.create_connection((u.hostname, u.port), timeout=10)
    s.sendall(b"POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nx-api-key: " +
              key.encode() + b"\r\nContent-Length: 100000\r\n\r\n{\"model\": \"claude-haiku-4-5\", ")
    time.sleep(0.3)
    s.close()
    time.sleep(1)
    eq(usage(email), [], "a request whose body never arrived is not admitted")
    eq(balance(email)["credits"], START)
    eq(fake_requests(), [])


# --------------------------------------------------------------------------- web server reload
# (before the sections that kill programs: behind mod_fcgid, a reload soon after the messages
# programs were killed left the requests sent meanwhile waiting a minute for a new process)


def test_graceful_reload_during_streams():
    # SIGUSR1 is a graceful restart for lighttpd and Apache alike: finish what runs, then reload
    pidfile = [p for p in (os.path.join(run_dir(), n) for n in ("lighttpd.pid", "apache.pid")) if os.path.exists(p)]
    if not pidfile:
        raise Skip("no web server pid file in %s" % run_dir())
    pid = int(open(pidfile[0]).read().strip())
    email, key = new_user()
    streams = []
    for surface in STREAM_SURFACES:
        s, _ = open_stream(key, surface, "events=10,interval=300,input=40,output=20", timeout=60)
        next(iter(s))
        streams.append(s)
    os.kill(pid, signal.SIGUSR1)  # lighttpd: graceful restart
    late = []
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        fut = [ex.submit(lambda: send(key, "messages", "input=5,output=5", timeout=60)[0].status) for _ in range(3)]
        for s in streams:
            with s:
                evs = list(s)
            names = [e.event for e in evs] + [e.data[:40] for e in evs]
            ok(not any("error" == e.event for e in evs), "no stream broke: %r" % names)
        late = [f.result() for f in fut]
    eq(late, [200, 200, 200], "requests sent during the reload are served")
    rows = check_ledger(email, len(streams) + 3)
    ok(all(r["end_reason"] == "complete" for r in rows), "%r" % [r["end_reason"] for r in rows])
    r = wait_until(lambda: (lambda x: x if x.status == 200 else None)(send(key, "codex_chat")[0]), timeout=15,
                   msg="served after the reload")
    eq(r.status, 200)


# --------------------------------------------------------------------------- workers die


def test_worker_killed_mid_stream_codex_is_reaped():
    email, key = new_user()
    access_seen()  # lease mode: admitted under a lease, not the strict way
    s, _ = open_stream(key, "codex_chat", "events=100,interval=200")
    it = iter(s)
    next(it)
    if lease_mode():
        # admitted in memory under a lease: nothing in the database until it finishes; the dead
        # worker's journal is replayed by its siblings instead of reaped
        rid = s.headers.get("request-id")
        ok(rid, "request-id header")
        eq(usage(email), [], "lease mode writes no pending row")
        ok(lease_owners(email, "codex"), "a codex process holds a lease for the key")
        kill_programs("codex")
        s.close()
        replayed_row(email, rid)
        rows = check_ledger(email, 1)
        ok("reaped 0 " in admin("reap", "--older-than", "0"), "nothing pending is left to reap")
        eq(usage(email), rows, "billed once")
        wait_until(lambda: request("GET", "/api/v1/codex/models", headers=auth(key, "openai")).status == 200,
                   timeout=15, msg="codex workers back")
        return
    wait_until(lambda: [u for u in usage(email) if u["status"] == "pending"] or None, timeout=5,
               msg="a pending usage row")
    kill_programs("codex")
    s.close()
    out = admin("reap", "--older-than", "0")
    ok("reaped 1 request" in out, "reap reports the request: %r" % out)
    rows = check_ledger(email, 1)
    eq(rows[0]["status"], "abandoned")
    eq(rows[0]["estimated"], True)
    ok(rows[0]["credits"] > 0, "charged its hold")
    wait_until(lambda: request("GET", "/api/v1/codex/models", headers=auth(key, "openai")).status == 200,
               timeout=15, msg="codex workers back")


def test_workers_reap_abandoned_requests_themselves():
    gateway_only()
    # a request whose worker died is settled by the programs' own upkeep once it is older than
    # [billing] reap_after (no operator action); in lease mode that is a poor user's request
    # (admitted the strict way), and a request admitted under a lease is billed from the dead
    # worker's journal, also by the programs themselves
    email, key, start = strict_user()
    s, _ = open_stream(key, "gemini_native", "events=100,interval=200")
    it = iter(s)
    next(it)
    pending = pending_rows(email)
    leased = None
    if lease_mode():
        l_email, l_key = new_user()
        access_seen()
        ls, _ = open_stream(l_key, "gemini_native", "events=100,interval=200")
        next(iter(ls))
        leased = (l_email, ls.headers.get("request-id"))
        eq(usage(l_email), [], "lease mode writes no pending row")
        ok(lease_owners(l_email, "messages"), "a gemini process holds a lease for the key")
    kill_programs("gemini")
    s.close()
    if leased:
        ls.close()
    # age the row past reap_after instead of waiting an hour
    sql("UPDATE usage_log SET created_at = NOW(3) - INTERVAL 1 DAY WHERE request_id = '%s'"
        % pending[0]["request_id"])
    # a request brings the gemini programs back; they reap within seconds of starting
    wait_until(lambda: request("GET", "/api/v1/gemini/v1beta/models", headers=auth(key, "gemini")).status == 200,
               timeout=15, msg="gemini workers back")
    rows = wait_until(lambda: (lambda rs: rs if rs and rs[0]["status"] == "abandoned" else None)(usage(email)),
                      timeout=40, interval=0.5, msg="the workers reaped the abandoned request")
    eq(rows[0]["estimated"], True)
    check_ledger(email, 1, start=start)
    if leased:
        replayed_row(*leased)
        check_ledger(leased[0], 1)


# --------------------------------------------------------------------------- database faults


def test_db_restart_under_load():
    gateway_only()
    email, key = new_user()
    statuses, lock = [], threading.Lock()
    stop = threading.Event()

    opened = threading.Semaphore(0)

    def streamer(i):
        surface = STREAM_SURFACES[i % len(STREAM_SURFACES)]
        try:
            s, proto = open_stream(key, surface, "events=12,interval=250,input=50,output=30", timeout=60)
            opened.release()
            with s:
                if s.status != 200:
                    assert_error_shape(s.json(), proto)
                    return s.status
                evs = list(s)
            return 200 if evs else -1
        except Exception as e:  # noqa: BLE001
            opened.release()
            return "exc %r" % e

    def hammer():
        while not stop.is_set():
            r, proto = send(key, "messages", "input=10,output=5", timeout=30)
            if r.status != 200:
                assert_error_shape(r, proto)
            with lock:
                statuses.append(r.status)
            time.sleep(0.05)

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        hammers = [ex.submit(hammer) for _ in range(3)]
        streams = [ex.submit(streamer, i) for i in range(8)]
        # the restart comes once the first 8 are answering (behind mod_fcgid each needs a process
        # of its own, which may take a while to start on a busy machine)
        for _ in range(8):
            ok(opened.acquire(timeout=30), "the first streams did not open")
        time.sleep(0.3)
        db_ctl("restart")
        time.sleep(1.5)
        streams += [ex.submit(streamer, i) for i in range(4)]
        time.sleep(1.0)
        stop.set()
        results = [f.result() for f in streams]
        for h in hammers:
            h.result()
    ok(all(r in (200, 503) for r in results), "streams completed or failed cleanly: %r" % results)
    ok(set(statuses) <= {200, 503}, "requests completed or got a 503: %r" % sorted(set(statuses)))
    ok(results.count(200) >= 8, "the streams in flight completed: %r" % results)
    # everything admitted is settled (directly or through the spool) exactly once; an admission
    # that committed just before its connection broke was answered 503 and released at 0 credits
    served = results.count(200) + statuses.count(200)
    refused = results.count(503) + statuses.count(503)
    rows = wait_until(lambda: (lambda rs: rs if len(rs) >= served and all(r["status"] != "pending" for r in rs)
                               else None)(usage(email)), timeout=40, interval=0.3, msg="every request settled")
    released = [r for r in rows if r["status"] == "abandoned"]
    eq(len(rows) - len(released), served, "one settled row per request served")
    ok(len(released) <= refused, "released admissions (%d) come from 503s (%d)" % (len(released), refused))
    ok(all(r["credits"] == 0 for r in released), "a released admission costs nothing: %r" % released)
    check_ledger(email, len(rows))
    eq(spool_lines(), [], "the spool is drained")


def test_db_down_settlements_spool_and_replay():
    gateway_only()
    if lease_mode():
        return db_down_under_leases()
    email, key = new_user()
    streams = []
    for surface in STREAM_SURFACES:
        s, _ = open_stream(key, surface, "events=8,interval=500,input=100,output=40", timeout=60)
        next(iter(s))
        streams.append(s)
    try:
        db_ctl("stop")
        # new requests cannot be admitted: a clean 503 in each protocol
        for surface in ALL_SURFACES:
            r, proto = send(key, surface)
            eq(r.status, 503, "%s with the database down: %s" % (surface, r.text[:200]))
            assert_error_shape(r, proto)
        for s in streams:
            with s:
                evs = list(s)
            ok(evs, "the stream in flight completed")
        # settlement retried, then spooled
        lines = wait_until(lambda: len(spool_lines()) >= len(streams) and spool_lines(), timeout=20,
                           msg="settlements in the spool")
        ok(len(lines) >= len(streams), "a spooled settlement per stream: %r" % lines)
    finally:
        db_ctl("start")
    # the programs replay the spool on their own within seconds
    wait_until(lambda: not spool_lines(), timeout=30, interval=0.5, msg="the spool replayed")
    rows = check_ledger(email, len(streams))
    for r in rows:
        eq((r["status"], r["end_reason"], r["estimated"]), ("settled", "complete", False), "%r" % r)
        ok(r["credits"] > 0, "%r" % r)


def db_down_under_leases():
    """Lease mode, the database stops: a key without a lease gets a clean 503 on every surface; a
    key whose lease a process holds keeps being served, its settlements waiting in memory and the
    journal until the database is back; requests admitted the strict way (a poor user) spool
    their settlements as in strict mode. Afterwards every request is billed exactly once."""
    if processes_on_demand():
        raise Skip("mod_fcgid starts processes on demand: the ones holding the key's leases cannot be pinned down")
    l_email, l_key = new_user()        # served under leases
    p_email, p_key = new_user("pro", POOR_USD)   # too poor for a lease: strict admissions
    f_email, f_key = new_user()        # no request yet: no process holds a lease for it
    # a lease granted before the processes see the last top-up's access version would be
    # re-checked with the database at its next use: with the database down, a 503
    access_seen()
    leased, strict = [], []
    for surface in STREAM_SURFACES:
        s, _ = open_stream(l_key, surface, "events=12,interval=500,input=100,output=40", timeout=60)
        next(iter(s))
        leased.append(s)
    for surface in ("messages", "gemini_native"):
        s, _ = open_stream(p_key, surface, "events=12,interval=500,input=100,output=40", timeout=60)
        next(iter(s))
        strict.append(s)
    pending_rows(p_email, len(strict))
    eq(usage(l_email), [], "lease mode writes no pending row")
    # every messages process must hold a lease for the key (one without would answer 503): more
    # streams until each has one of them in flight, which keeps its lease
    msg_pids = set(stack_programs("messages"))
    for _ in range(6):
        if msg_pids <= set(lease_owners(l_email, "messages")):
            break
        s, _ = open_stream(l_key, "messages", "events=20,interval=500,input=100,output=40", timeout=60)
        next(iter(s))
        leased.append(s)
    ok(msg_pids <= set(lease_owners(l_email, "messages")),
       "every messages process %r holds a lease: %r" % (sorted(msg_pids), lease_owners(l_email, "messages")))
    served = 0
    try:
        db_ctl("stop")
        # a key without a lease cannot be admitted: a clean 503 in each protocol
        for surface in ALL_SURFACES:
            r, proto = send(f_key, surface)
            eq(r.status, 503, "%s with the database down, no lease: %s" % (surface, r.text[:200]))
            assert_error_shape(r, proto)
        # a key with a lease in hand is still served
        for _ in range(4):
            r, proto = send(l_key, "messages", "input=10,output=5")
            eq(r.status, 200, "a leased key with the database down: %s" % r.text[:200])
            served += 1
        for s in leased + strict:
            with s:
                evs = list(s)
            ok(evs, "the stream in flight completed")
        # the strict settlements are retried, then spooled
        lines = wait_until(lambda: len(spool_lines()) >= len(strict) and spool_lines(), timeout=20,
                           msg="settlements in the spool")
        ok(len(lines) >= len(strict), "a spooled settlement per strict stream: %r" % lines)
    finally:
        db_ctl("start")
    # the programs replay the spool on their own within seconds, and write the leased settlements
    wait_until(lambda: not spool_lines(), timeout=30, interval=0.5, msg="the spool replayed")
    for email, n, start in [(p_email, len(strict), POOR), (l_email, len(leased) + served, START)]:
        rows = check_ledger(email, n, start=start, timeout=30)
        for r in rows:
            eq((r["status"], r["end_reason"], r["estimated"]), ("settled", "complete", False), "%r" % r)
            ok(r["credits"] > 0, "%r" % r)
    eq(usage(f_email), [], "refused requests are not billed")
    eq(balance(f_email)["credits"], START)


def test_reap_replays_the_spool_first():
    gateway_only()
    # a spooled settlement wins over reaping the same request at its hold (lease mode: a poor
    # user's request, admitted the strict way)
    email, key, start = strict_user()
    s, _ = open_stream(key, "messages", "events=100,interval=200")
    next(iter(s))
    pending = pending_rows(email)
    kill_programs("messages")
    s.close()
    rid = pending[0]["request_id"]
    # what the worker would have spooled: 1234 credits, 1000 input, 100 output tokens
    with open(spool_path(), "a") as f:
        f.write("%s settled complete 1234 1000 100 0 0 0 0 0 0 200 5 900\n" % rid)
    # (the programs may replay it a moment earlier on their own: the outcome is the same)
    admin("reap", "--older-than", "0")
    rows = check_ledger(email, 1, start=start)
    eq((rows[0]["status"], rows[0]["credits"], rows[0]["input_tokens"], rows[0]["output_tokens"]),
       ("settled", 1234, 1000, 100), "settled from the spool, not reaped at its hold")
    eq(spool_lines(), [])
    out = admin("spool", "replay")
    ok("replayed 0" in out, "nothing left to replay: %r" % out)
    wait_until(lambda: request("POST", "/api/v1/messages", headers=auth(key),
                               body=req_for("messages")[3]).status == 200, timeout=15, msg="messages back")


def test_spool_replay_verb_and_malformed_lines():
    gateway_only()
    email, key, start = strict_user()  # lease mode: a poor user's request, admitted the strict way
    s, _ = open_stream(key, "messages", "events=100,interval=200")
    next(iter(s))
    pending = pending_rows(email)
    kill_programs("messages")
    s.close()
    rid = pending[0]["request_id"]
    with open(spool_path(), "a") as f:
        f.write("garbage line that is not a settlement\n")
        f.write("%s settled complete 777 10 20 0 0 0 0 0 0 200 5 900\n" % rid)
        f.write("req_doesnotexist settled complete 5 1 1 0 0 0 0 0 0 200 5 900\n")
        # an id the database refuses (longer than the column): set aside, never blocks the spool
        f.write("req_%s settled complete 5 1 1 0 0 0 0 0 0 200 5 900\n" % ("x" * 60))
    p = subprocess.run(admin_cmd("spool", "replay"), capture_output=True, text=True, timeout=60)
    # the programs may have replayed it first (they check every few seconds): either way it is applied once
    eq(p.returncode, 0, p.stderr)
    rows = check_ledger(email, 1, start=start)
    eq((rows[0]["status"], rows[0]["credits"]), ("settled", 777))
    eq(spool_lines(), [], "malformed and unknown lines do not stay in the spool")
    with open(spool_path() + ".rejected") as f:
        aside = f.read()
    ok("x" * 60 in aside, "the refused line is kept aside in the .rejected file")
    ok("garbage line that is not a settlement" in aside, "and so is the line that is not a settlement")
    wait_until(lambda: request("POST", "/api/v1/messages", headers=auth(key),
                               body=req_for("messages")[3]).status == 200, timeout=15, msg="messages back")


def admin_cmd(*args):
    import shlex
    return shlex.split(os.environ.get("ZG_ADMIN", "zenn-admin")) + list(args)
