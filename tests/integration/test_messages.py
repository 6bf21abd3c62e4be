"""The Anthropic surface and the billing core: holds, settlement, limits, streams, failures."""

import concurrent.futures
import json
import os
import signal
import subprocess
import time

from zgtest import (access_seen, admin, admin_json, assert_error_shape, auth, config_value, eq, fake_requests, held_now,
                    lease_mode, new_user, ok, request, sql, sql_int, stream, unique_email, user_id, wait_released,
                    wait_until)

HAIKU = "claude-haiku-4-5"
SONNET = "claude-sonnet-4-6"


def body(model=SONNET, text="hello", directive="", max_tokens=100, stream_=False, **extra):
    b = {"model": model, "max_tokens": max_tokens,
         "messages": [{"role": "user", "content": text + (" [[fake:%s]]" % directive if directive else "")}]}
    if stream_:
        b["stream"] = True
    b.update(extra)
    return b


def balance(email):
    return admin_json("balance", email, "--json")


def usage(email):
    return admin_json("usage", email, "--json")


def one_usage(email):
    rows = wait_until(lambda: [u for u in usage(email) if u["status"] != "pending"] or None, timeout=10,
                      msg="a settled usage row")
    eq(len(usage(email)), 1, "exactly one usage row")
    return rows[0]


# sonnet: input 3, output 15, cache read 0.30, 5m write 3.75, 1h write 6 ($/MTok)
USAGE_DIRECTIVE = "input=1000,output=500,cache_read=2000,cache_write_5m=300,cache_write_1h=400"
USAGE_CREDITS = 1000 * 3 + 500 * 15 + 2000 * 0.3 + 300 * 3.75 + 400 * 6  # 14625


def check_settled(email, key, start_credits, credits, end_reason="complete"):
    u = one_usage(email)
    eq(u["status"], "settled")
    eq(u["end_reason"], end_reason)
    eq(u["credits"], credits, "usage credits")
    wait_released(email)  # lease mode: the leases go back once idle
    b = balance(email)
    eq(b["credits"], start_credits - credits, "balance debited by exactly the usage")
    eq(b["held"], 0, "hold released")
    k = admin_json("key", "list", email, "--json")[0]
    eq(k["spent_credits"], credits, "key spent")
    return u


def test_nonstream_success_exact_credits():
    email, key = new_user("pro", 20)
    r = request("POST", "/api/v1/messages", headers=auth(key), body=body(directive=USAGE_DIRECTIVE))
    eq(r.status, 200, r.text)
    d = r.json()
    eq(d["type"], "message")
    eq(d["usage"]["cache_read_input_tokens"], 2000)
    ok(r.headers.get("request-id", "").startswith("req_"), "request-id header")
    for h in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"]:
        ok(r.headers.get(h), "%s on success" % h)
    eq(r.headers["x-ratelimit-limit"], "1000")
    u = check_settled(email, key, 20000000, int(USAGE_CREDITS))
    eq(u["request_id"], r.headers["request-id"], "the usage row carries the response's request id")
    eq(u["input_tokens"], 1000)
    eq(u["output_tokens"], 500)
    eq(u["cache_read_tokens"], 2000)
    eq(u["cache_write_5m_tokens"], 300)
    eq(u["cache_write_1h_tokens"], 400)
    eq(u["model"], SONNET)
    eq(u["estimated"], False)
    eq(u["upstream_status"], 200)


def test_stream_success_exact_credits_and_bytes():
    email, key = new_user("pro", 20)
    with stream("POST", "/api/v1/v1/messages?beta=true", headers=auth(key),
                body=body(directive=USAGE_DIRECTIVE + ",events=4", stream_=True)) as s:
        eq(s.status, 200)
        ok(s.headers.get("content-type", "").startswith("text/event-stream"), "SSE content type")
        for h in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "request-id"]:
            ok(s.headers.get(h), "%s on a stream" % h)
        names = [e.event for e in s]
    eq(names[0], "message_start")
    eq(names[-1], "message_stop")
    eq(names.count("content_block_delta"), 4)
    check_settled(email, key, 20000000, int(USAGE_CREDITS))
    rec = fake_requests(path_contains="/v1/messages")[-1]
    eq(rec["query"], "beta=true", "beta=true forwarded")


def test_stream_bytes_are_upstream_bytes():
    _, key = new_user()
    s = stream("POST", "/api/v1/messages", headers=auth(key), body=body(stream_=True, directive="events=3"))
    raw = s.read_all()
    s.close()
    # the fake writes each event as "event: X\ndata: {...}\n\n"; nothing else may appear
    for chunk in raw.split(b"\n\n"):
        if chunk:
            ok(chunk.startswith(b"event: "), "unmodified SSE event: %r" % chunk[:80])


def test_events_arrive_one_by_one():
    _, key = new_user()
    with stream("POST", "/api/v1/messages", headers=auth(key),
                body=body(stream_=True, directive="events=5,interval=300")) as s:
        times = [e.t for e in s if e.event == "content_block_delta"]
    eq(len(times), 5)
    gaps = [b - a for a, b in zip(times, times[1:])]
    ok(all(g > 0.2 for g in gaps), "each delta arrives when sent, not buffered: gaps %r" % gaps)


def test_count_tokens_forwarded_unbilled():
    email, key = new_user()
    for path in ["/api/v1/messages/count_tokens", "/api/v1/v1/messages/count_tokens?beta=true"]:
        r = request("POST", path, headers=auth(key),
                    body={"model": HAIKU, "messages": [{"role": "user", "content": "hi [[fake:input=42]]"}]})
        eq(r.status, 200, r.text)
        eq(r.json()["input_tokens"], 42)
        ok(r.headers.get("x-ratelimit-limit"), "rate-limit headers on count_tokens")
        ok(r.headers["x-ratelimit-limit"] != "1000", "count_tokens has its own bucket")
    eq(usage(email), [], "count_tokens writes no usage row")
    eq(balance(email)["credits"], 20000000)


def test_headers_forwarded_and_stripped():
    _, key = new_user()
    h = auth(key)
    h["anthropic-beta"] = "claude-code-20250219,interleaved-thinking-2025-05-14"
    h["anthropic-version"] = "2026-10-21"
    h["Cookie"] = "session=secret"
    h["X-Custom-Thing"] = "nope"
    r = request("POST", "/api/v1/messages", headers=h, body=body())
    eq(r.status, 200)
    rec = fake_requests(path_contains="/v1/messages")[-1]
    hdr = rec["headers"]
    eq(hdr.get("anthropic-beta"), "claude-code-20250219,interleaved-thinking-2025-05-14")
    eq(hdr.get("anthropic-version"), "2026-10-21")
    eq(hdr.get("content-type"), "application/json")
    ok("cookie" not in hdr and "x-custom-thing" not in hdr, "cookie and unknown headers stripped: %r" % hdr)
    ok(key not in json.dumps(hdr), "client key never forwarded")
    ok(hdr.get("x-api-key") and not hdr["x-api-key"].startswith("ck_"), "provider key sent")
    ok("authorization" not in hdr, "no client Authorization forwarded")
    eq(json.loads(rec["body"])["messages"][0]["content"], "hello", "body forwarded untouched")


def test_bearer_auth_and_default_version():
    _, key = new_user()
    r = request("POST", "/api/v1/messages", headers={"Authorization": "Bearer " + key}, body=body())
    eq(r.status, 200)
    hdr = fake_requests(path_contains="/v1/messages")[-1]["headers"]
    eq(hdr.get("anthropic-version"), "2023-06-01", "default anthropic-version")
    ok(key not in json.dumps(hdr), "bearer key not forwarded")


def test_alias_resolves_to_catalog_id():
    email, key = new_user()
    r = request("POST", "/api/v1/messages", headers=auth(key), body=body(model="claude-haiku-4-5-20251001"))
    eq(r.status, 200)
    eq(json.loads(fake_requests(path_contains="/v1/messages")[-1]["body"])["model"], HAIKU)
    eq(one_usage(email)["model"], HAIKU)


def test_402_balance():
    email = unique_email("broke")
    admin("user", "add", email)
    key = admin("key", "create", email).splitlines()[0]
    r = request("POST", "/api/v1/messages", headers=auth(key), body=body())
    eq(r.status, 402)
    eq(assert_error_shape(r, "anthropic")["error"]["type"], "billing_error")
    eq(r.headers.get("x-should-retry"), "false")
    ok(r.headers.get("x-ratelimit-remaining"), "rate-limit headers on 402")
    eq(fake_requests(), [], "a refused request never reaches the upstream")
    eq(usage(email), [])


def test_402_key_limit():
    email, key = new_user("pro", 20, key_args=("--limit-usd", "0.01"))
    r = request("POST", "/api/v1/messages", headers=auth(key), body=body(max_tokens=1000))
    eq(r.status, 402)
    d = assert_error_shape(r, "anthropic")
    ok("limit" in d["error"]["message"].lower(), "message names the key limit: %r" % d)
    eq(usage(email), [])
    # a small request fits under the limit
    r = request("POST", "/api/v1/messages", headers=auth(key), body=body(model=HAIKU, max_tokens=10))
    eq(r.status, 200, r.text)


def test_403_plan():
    email, key = new_user("pro", 20)
    r = request("POST", "/api/v1/messages", headers=auth(key), body=body(model="claude-opus-4-7"))
    eq(r.status, 403)
    eq(assert_error_shape(r, "anthropic")["error"]["type"], "permission_error")
    eq(r.headers.get("x-should-retry"), "false")
    eq(fake_requests(), [])
    email2, key2 = new_user("max", 5)
    r = request("POST", "/api/v1/messages", headers=auth(key2), body=body(model="claude-opus-4-7"))
    eq(r.status, 200, "max unlocks opus 4.7")


def test_503_coming_soon_unbilled():
    email, key = new_user()
    r = request("POST", "/api/v1/messages", headers=auth(key), body=body(model="nano-banana"))
    eq(r.status, 503)
    assert_error_shape(r, "anthropic")
    eq(fake_requests(), [])
    eq(usage(email), [])
    eq(balance(email)["credits"], 20000000)


def test_400_404_413_and_priority():
    _, key = new_user()
    cases = [
        (b"{not json", 400),
        (b"[1,2]", 400),
        (json.dumps({"max_tokens": 5}).encode(), 400),
        (json.dumps({"model": 5}).encode(), 400),
        (json.dumps(body(model="no-such-model")).encode(), 404),
        (json.dumps(body(model="gpt-5.5")).encode(), 400),
        (b"{}" + b" " * 10 + b"x", 400),
        (b"[" * 5000 + b"]" * 5000, 400),
    ]
    for raw, status in cases:
        r = request("POST", "/api/v1/messages", headers=dict(auth(key), **{"Content-Type": "application/json"}),
                    body=raw)
        eq(r.status, status, "body %r" % raw[:40])
        assert_error_shape(r, "anthropic")
        eq(r.headers.get("x-ratelimit-limit"), "1000", "rate-limit headers on a %d" % status)
        # the key is judged first: the same body with a bad key is a 401
        r = request("POST", "/api/v1/messages", headers={"x-api-key": "ck_" + "q" * 43}, body=raw)
        eq(r.status, 401, "401 before %d for %r" % (status, raw[:40]))
    r = request("POST", "/api/v1/messages", headers=auth(key), body=body(model="no-such-model"))
    ok("/api/v1/models" in r.json()["error"]["message"], "404 tells how to list models")
    big = b'{"model":"claude-haiku-4-5","pad":"' + b"x" * (33 * 1024 * 1024) + b'"}'
    r = request("POST", "/api/v1/messages", headers=auth(key), body=big, timeout=120)
    eq(r.status, 413)
    assert_error_shape(r, "anthropic")
    eq(fake_requests(), [], "no rejected request reached the upstream")


def test_upstream_error_passes_through_unbilled():
    email, key = new_user()
    r = request("POST", "/api/v1/messages", headers=auth(key), body=body(directive="status=529"))
    eq(r.status, 529)
    eq(assert_error_shape(r, "anthropic")["error"]["type"], "overloaded_error")
    u = check_settled(email, key, 20000000, 0, end_reason="upstream_error")
    eq(u["upstream_status"], 529)


def test_upstream_unreachable_502():
    email, key = new_user()
    r = request("POST", "/api/v1/messages", headers=auth(key), body=body(model="deepseek-v4-flash"))
    eq(r.status, 502, r.text)
    assert_error_shape(r, "anthropic")
    u = check_settled(email, key, 20000000, 0, end_reason="upstream_unreachable")


def test_upstream_timeout_504():
    email, key = new_user()
    t0 = time.monotonic()
    r = request("POST", "/api/v1/messages", headers=auth(key), body=body(directive="delay=8000"), timeout=60)
    eq(r.status, 504, r.text)
    assert_error_shape(r, "anthropic")
    ok(time.monotonic() - t0 < 8, "timed out by the idle timeout, not the fake's delay")
    check_settled(email, key, 20000000, 0, end_reason="upstream_timeout")


def test_pings_keep_a_silent_stream_alive():
    email, key = new_user()
    with stream("POST", "/api/v1/messages", headers=auth(key), comments=True,
                body=body(stream_=True, directive="events=2,silence=3500"), timeout=30) as s:
        items = list(s)
    pings = [e for e in items if e.comment == "ping"]
    ok(pings, "an SSE ping comment while the upstream was silent")
    eq([e.event for e in items if e.comment is None][-1], "message_stop")
    one_usage(email)


def test_client_disconnect_reads_to_the_final_usage_and_settles_once():
    # the client leaves after 3 deltas: the gateway reads on (relaying nothing) until message_delta
    # brings the final output count, then ends the transfer and bills the reported usage
    email, key = new_user()
    s = stream("POST", "/api/v1/messages", headers=auth(key),
               body=body(stream_=True, directive="events=30,interval=100,input=300,output=900"), timeout=30)
    got = 0
    for e in s:
        if e.event == "content_block_delta":
            got += 1
            if got == 3:
                break
    s.close()
    rec = wait_until(lambda: [r for r in fake_requests(path_contains="/v1/messages")
                              if r["outcome"] != "in_progress"] or None, timeout=15,
                     msg="the fake upstream saw the transfer end")[0]
    eq(rec["deltas_sent"], 30, "the answer was generated to its end")
    u = one_usage(email)
    eq(u["end_reason"], "client_closed")
    eq((u["estimated"], u["input_tokens"], u["output_tokens"]), (False, 300, 900), "the reported usage")
    eq(balance(email)["credits"], 20000000 - u["credits"])


def test_upstream_drop_mid_stream_settles_once():
    email, key = new_user()
    with stream("POST", "/api/v1/messages", headers=auth(key),
                body=body(stream_=True, directive="events=10,drop_after=4,input=200")) as s:
        names = [e.event for e in s]
    ok("message_stop" not in names, "stream ended early")
    eq(names[-1], "error", "the client is told the stream broke")
    u = one_usage(email)
    eq(u["end_reason"], "upstream_dropped")
    eq(u["input_tokens"], 200)
    ok(u["output_tokens"] >= 4, "output estimated from the 4 deltas relayed")
    eq(u["estimated"], True)
    eq(balance(email)["credits"], 20000000 - u["credits"])
    ok(u["credits"] > 0, "billed what was reported plus the estimate")


def test_rate_limit_429_with_headers():
    # a user with no credits: refused (402) without an upstream call, and not counted against the hour
    email = unique_email("rl")
    admin("user", "add", email)
    key = admin("key", "create", email).splitlines()[0]
    limit = 1000

    def one(_):
        return request("POST", "/api/v1/messages", headers=auth(key), body=body(model=HAIKU))

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        rs = list(ex.map(one, range(40)))
    eq(set(r.status for r in rs), {402})
    eq(request("POST", "/api/v1/messages", headers=auth(key), body=body(model=HAIKU)).headers.get(
        "x-ratelimit-remaining"), str(limit), "402s do not use up the hour")
    # the hour used up: 429 with the headers
    sql("INSERT INTO rate_counters (user_id, grp, window_start, hits) VALUES (%d, 'messages', "
        "UNIX_TIMESTAMP() DIV 3600 * 3600, %d) ON DUPLICATE KEY UPDATE hits = %d" % (user_id(email), limit, limit))
    r = request("POST", "/api/v1/messages", headers=auth(key), body=body(model=HAIKU))
    eq(r.status, 429)
    eq(assert_error_shape(r, "anthropic")["error"]["type"], "rate_limit_error")
    eq(r.headers.get("x-ratelimit-remaining"), "0")
    eq(r.headers.get("x-ratelimit-limit"), str(limit))
    ok(int(r.headers["retry-after"]) >= 1, "retry-after")
    ok(int(r.headers["x-ratelimit-reset"]) > time.time(), "reset in the future")
    eq(fake_requests(), [])
    # another group is counted separately
    r = request("POST", "/api/v1/messages/count_tokens", headers=auth(key), body=body(model=HAIKU))
    ok(r.status != 429, "count_tokens has its own bucket")


def test_concurrent_requests_within_overdraft_bound():
    # haiku: $1 in / $5 out per MTok. Each request reports input=25, output=10 -> 75 credits,
    # while its hold (max_tokens 1) is smaller: settlement exceeds holds, exercising the overdraft.
    email = unique_email("conc")
    admin("user", "add", email)
    admin("topup", email, "pro", "0.0015")  # 1500 credits: about 20 requests
    key = admin("key", "create", email).splitlines()[0]
    start = balance(email)["credits"]
    eq(start, 1500)

    def one(_):
        r = request("POST", "/api/v1/messages", headers=auth(key),
                    body=body(model=HAIKU, max_tokens=1, directive="input=25,output=10,interval=20"), timeout=60)
        return r.status

    # 30 at once: under [limits] concurrent_per_user (32), whose 429 is not what this test is about
    with concurrent.futures.ThreadPoolExecutor(min(30, int(config_value("limits", "concurrent_per_user", "32")) - 2)) as ex:
        statuses = list(ex.map(one, range(200)))
    ok(set(statuses) <= {200, 402}, "only successes and 402s: %r" % sorted(set(statuses)))
    served = statuses.count(200)
    ok(served >= 10, "about 20 served (%d)" % served)
    ok(statuses.count(402) >= 100, "the rest refused")
    rows = usage(email)
    eq(len(rows), served, "one usage row per served request")
    ok(all(r["status"] == "settled" for r in rows), "all settled")
    total = sum(r["credits"] for r in rows)
    wait_released(email)
    b = balance(email)
    eq(start - b["credits"], total, "sum of usage equals the balance delta exactly")
    eq(b["held"], 0)
    # each request can exceed its hold by (75 - hold); at most `served` requests were in flight
    hold = 75  # upper bound of the per-request excess
    ok(b["credits"] >= -served * hold, "overdraft within the documented bound: %d" % b["credits"])
    if b["credits"] <= 0:
        r = request("POST", "/api/v1/messages", headers=auth(key), body=body(model=HAIKU, max_tokens=1))
        eq(r.status, 402, "a balance at or below zero refuses new requests")


def kill_stack_programs(name):
    """SIGKILL the processes of program `name` that belong to this test stack (found by the
    config path in their environment or command line), never another stack's."""
    conf = os.environ.get("ZG_CONFIG", "")
    state = os.environ.get("ZG_STATE", "")
    killed = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read()
            with open("/proc/%s/environ" % pid, "rb") as f:
                env = f.read()
        except OSError:
            continue
        prog = cmd.split(b"\0")[0]
        if not (prog.endswith(b"/fcgi/" + name.encode()) or prog.endswith(b"/" + name.encode() + b".fcgi")):
            continue
        mine = (conf and (conf.encode() in env or conf.encode() in cmd)) or (state and prog.startswith(state.encode()))
        if not mine:
            continue
        try:
            os.kill(int(pid), signal.SIGKILL)
            killed += 1
        except OSError:
            pass
    return killed


def test_worker_killed_mid_stream_is_reaped():
    email, key = new_user()
    access_seen()  # lease mode: admitted under a lease, not the strict way
    s = stream("POST", "/api/v1/messages", headers=auth(key),
               body=body(stream_=True, directive="events=100,interval=200"), timeout=30)
    it = iter(s)
    next(it)
    if lease_mode():
        return killed_under_a_lease(email, key, s)
    pending = wait_until(lambda: [u for u in usage(email) if u["status"] == "pending"] or None, timeout=5,
                         msg="a pending usage row")
    eq(len(pending), 1)
    # SIGKILL this stack's messages workers: the request can no longer settle itself
    killed = kill_stack_programs("messages")
    ok(killed, "found this stack's messages workers to kill")
    s.close()
    time.sleep(0.5)
    eq(usage(email)[0]["status"], "pending", "still pending after the worker died")
    out = admin("reap", "--older-than", "0")
    ok("1" in out, "reap reports what it settled: %r" % out)
    u = one_usage(email)
    eq(u["status"], "abandoned")
    eq(u["estimated"], True)
    b = balance(email)
    eq(b["held"], 0)
    eq(b["credits"], 20000000 - u["credits"])
    ok(u["credits"] > 0, "charged its hold")
    # lighttpd restarts the workers: the next request is served
    r = wait_until(lambda: (lambda x: x if x.status == 200 else None)(
        request("POST", "/api/v1/messages", headers=auth(key), body=body())), timeout=15,
        msg="workers back after SIGKILL")
    eq(r.status, 200)


def killed_under_a_lease(email, key, s):
    """Lease mode: the request was admitted in memory (a line in the process's journal), so
    there is no pending row to reap; a sibling process (or the respawned one) replays the dead
    process's journal: the request is billed once, as abandoned at its hold, and the dead
    process's lease is released."""
    rid = s.headers.get("request-id")
    ok(rid, "request-id header")
    eq(usage(email), [], "lease mode writes no pending row")
    ok(held_now(email)[3] >= 1, "a lease held for the key while its request runs")
    killed = kill_stack_programs("messages")
    ok(killed, "found this stack's messages workers to kill")
    s.close()
    rows = wait_until(lambda: usage(email) or None, timeout=30, interval=0.2,
                      msg="the dead worker's journal replayed (a usage row)")
    eq(len(rows), 1, "exactly one usage row")
    u = rows[0]
    eq(u["request_id"], rid, "the killed request")
    eq((u["status"], u["end_reason"], u["estimated"]), ("abandoned", "abandoned", True))
    hold = sql_int("SELECT hold_credits FROM usage_log WHERE request_id = '%s'" % rid)
    ok(hold > 0, "the admission's hold was journalled")
    eq(u["credits"], hold, "charged its hold")
    wait_released(email, timeout=10)
    b = balance(email)
    eq(b["held"], 0)
    eq(b["credits"], 20000000 - u["credits"])
    eq(admin_json("key", "list", email, "--json")[0]["spent_credits"], u["credits"], "key spent")
    # nothing pending is left for the reaper
    out = admin("reap", "--older-than", "0")
    ok(out.startswith("reaped 0 "), "reap finds nothing: %r" % out)
    r = wait_until(lambda: (lambda x: x if x.status == 200 else None)(
        request("POST", "/api/v1/messages", headers=auth(key), body=body())), timeout=15,
        msg="workers back after SIGKILL")
    eq(r.status, 200)
    # the replay billed it once: the new request adds one row, the killed one is unchanged
    rows = wait_until(lambda: (lambda rs: rs if len(rs) == 2 else None)(usage(email)), timeout=10,
                      msg="the new request's usage row")
    eq([x["request_id"] for x in rows].count(rid), 1, "the killed request billed once")
    wait_released(email)
    eq(balance(email)["credits"], 20000000 - sum(x["credits"] for x in rows), "balance = start - sum of usage")
