"""What the web server in front of the programs must not break (./dev test runs this file
behind lighttpd, Apache mod_fcgid, Apache mod_proxy_fcgi and a shared host's .htaccess).

Each test fails under some server's defaults: Apache hides the Authorization header,
mod_fcgid and lighttpd buffer responses, mod_proxy_fcgi holds small packets, mod_fcgid
refuses bodies over 128 KB with a 500, server limits answer 413 as an HTML page, and
server timeouts cut long requests."""

import http.client
import json
import os
import time
import urllib.parse

from zgtest import (BASE, assert_error_shape, auth, config_value, eq, fake_requests, new_user, ok, request,
                    stream)

SERVER = os.environ.get("ZG_SERVER", "?")
SONNET = "claude-sonnet-4-6"
MiB = 1 << 20


def messages_body(text="hello", directive="", stream_=False, max_tokens=64):
    b = {"model": SONNET, "max_tokens": max_tokens,
         "messages": [{"role": "user", "content": text + (" [[fake:%s]]" % directive if directive else "")}]}
    if stream_:
        b["stream"] = True
    return b


def padded_body(size, directive=""):
    """A valid Messages request of exactly `size` bytes (compact JSON)."""
    base = json.dumps(messages_body("", directive), separators=(",", ":")).encode()
    pad = size - len(base)
    assert pad > 0
    return json.dumps(messages_body("a" * pad, directive), separators=(",", ":")).encode()


def cap():
    return int(config_value("server", "max_body_bytes", str(32 * MiB)))


def send_chunked(path, headers, body, piece=65536):
    """POST body with Transfer-Encoding: chunked (no Content-Length); returns (status, bytes)."""
    u = urllib.parse.urlsplit(BASE)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=60)
    try:
        hdrs = dict(headers)
        hdrs["Transfer-Encoding"] = "chunked"
        hdrs.setdefault("Content-Type", "application/json")
        conn.request("POST", path, body=(body[i:i + piece] for i in range(0, len(body), piece)),
                     headers=hdrs, encode_chunked=True)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def one_upstream_record(path_part):
    recs = fake_requests(path_contains=path_part, wait_ms=3000)
    eq(len(recs), 1, "one request reached the fake upstream at %s" % path_part)
    return recs[0]


def test_bearer_key_reaches_the_program():
    _, key = new_user()
    bearer = {"Authorization": "Bearer " + key, "anthropic-version": "2023-06-01"}
    r = request("POST", "/api/v1/messages", headers=bearer, body=messages_body())
    eq(r.status, 200, "[%s] Messages with only a Bearer key: %r" % (SERVER, r.body[:300]))
    r = request("POST", "/api/v1/codex/responses", headers={"Authorization": "Bearer " + key},
                body={"model": "gpt-5.5", "input": "hello"})
    eq(r.status, 200, "[%s] Responses with a Bearer key: %r" % (SERVER, r.body[:300]))
    eq(len(fake_requests(path_contains="/responses")), 1, "the Responses request went upstream")
    # the same requests without the header are refused: the header is what authenticated
    r = request("POST", "/api/v1/codex/responses", body={"model": "gpt-5.5", "input": "hello"})
    eq(r.status, 401)
    assert_error_shape(r, "openai")


def test_sse_events_arrive_as_they_are_sent():
    _, key = new_user()
    cases = [
        ("/api/v1/messages", auth(key), messages_body(directive="events=4,interval=300", stream_=True),
         lambda e: e.event == "content_block_delta"),
        ("/api/v1/codex/responses", auth(key, "openai"),
         {"model": "gpt-5.5", "stream": True, "input": "hi [[fake:events=4,interval=300]]"},
         lambda e: e.event == "response.output_text.delta"),
        ("/api/v1/gemini/v1beta/models/gemini-3-flash-preview:streamGenerateContent?alt=sse", auth(key, "gemini"),
         {"contents": [{"role": "user", "parts": [{"text": "hi [[fake:events=4,interval=300]]"}]}]},
         lambda e: True),
    ]
    for path, headers, body, is_delta in cases:
        with stream("POST", path, headers=headers, body=body, timeout=30) as s:
            eq(s.status, 200, "[%s] %s" % (SERVER, path))
            times = [e.t for e in s if is_delta(e)]
            end = time.monotonic()
        eq(len(times), 4, "%s: deltas" % path)
        gaps = [b - a for a, b in zip(times, times[1:])]
        ok(all(g > 0.15 for g in gaps), "[%s] %s: events arrive as sent, 300 ms apart, not buffered: gaps %r"
           % (SERVER, path, [round(g, 3) for g in gaps]))
        ok(end - times[0] > 0.6, "[%s] %s: the first delta arrived %.3fs before the end of the stream"
           % (SERVER, path, end - times[0]))


def test_stream_longer_than_idle_timeout_kept_alive_by_pings():
    idle = int(config_value("upstream", "idle_timeout", "300"))
    ping = int(config_value("upstream", "ping_interval", "5"))
    if idle > 10 or ping >= idle:
        raise AssertionError("the test stack should have a short idle_timeout (%d) and ping_interval (%d)"
                             % (idle, ping))
    silence = int((idle - 0.7) * 1000)  # upstream silent for just under the idle timeout
    _, key = new_user()
    t0 = time.monotonic()
    with stream("POST", "/api/v1/messages", headers=auth(key), comments=True, timeout=60,
                body=messages_body(directive="events=4,interval=250,silence=%d" % silence, stream_=True)) as s:
        eq(s.status, 200)
        items = list(s)
    took = time.monotonic() - t0
    events = [e for e in items if e.comment is None]
    pings = [e for e in items if e.comment == "ping"]
    eq(events[-1].event, "message_stop", "[%s] the stream ran to its end" % SERVER)
    ok(took > idle, "the stream (%.1fs) outlasted the idle timeout (%ds)" % (took, idle))
    ok(len(pings) >= max(1, silence // 1000 // ping - 1), "[%s] pings during %d ms of silence: %r"
       % (SERVER, silence, pings))
    first_delta = next(e for e in events if e.event == "content_block_delta")
    ok(pings[0].t - first_delta.t > 0.5 and events[-1].t - pings[-1].t > 0.2,
       "[%s] pings arrive during the silence, not with the rest at the end" % SERVER)


def test_long_silent_nonstream_request_is_not_cut():
    # Image generation is silent until the upstream answers; the program waits up to
    # image_timeout, longer than the idle timeout.  The server must wait as long.
    idle = int(config_value("upstream", "idle_timeout", "300"))
    image_timeout = int(config_value("upstream", "image_timeout", "600"))
    delay = min(6000, image_timeout * 1000 - 800)
    ok(delay > idle * 1000 - 1000, "the test stack's image_timeout (%ds) leaves room for a wait near the idle "
       "timeout (%ds)" % (image_timeout, idle))
    _, key = new_user()
    t0 = time.monotonic()
    r = request("POST", "/api/v1/images/generations", headers=auth(key, "openai"), timeout=60,
                body={"model": "gpt-image-2", "prompt": "an apple [[fake:delay=%d]]" % delay})
    took = time.monotonic() - t0
    eq(r.status, 200, "[%s] after %.1fs of silence: %r" % (SERVER, took, r.body[:300]))
    eq(len(r.json()["data"]), 1)
    ok(took >= delay / 1000.0, "the upstream's delay was waited out (%.1fs)" % took)
    eq(one_upstream_record("/images/generations")["outcome"], "completed")


def test_20mb_body_reaches_the_upstream_intact():
    _, key = new_user()
    body = padded_body(20 * MiB)
    r = request("POST", "/api/v1/messages", headers=auth(key), body=body, timeout=60)
    eq(r.status, 200, "[%s] a 20 MB body: %r" % (SERVER, r.body[:300]))
    rec = one_upstream_record("/v1/messages")
    eq(rec["body_len"], len(body), "[%s] the upstream got every byte" % SERVER)
    eq(rec["body"][-200:], body.decode()[-200:], "the body's end arrived unchanged")


def test_body_over_the_cap_is_the_programs_413():
    _, key = new_user()
    body = padded_body(cap() + MiB)
    r = request("POST", "/api/v1/messages", headers=auth(key), body=body, timeout=60)
    eq(r.status, 413, "[%s] over max_body_bytes: %r" % (SERVER, r.body[:300]))
    assert_error_shape(r, "anthropic")  # the program's answer, not the server's HTML page
    eq(fake_requests(path_contains="/v1/messages"), [], "nothing went upstream")


def test_chunked_request_body():
    _, key = new_user()
    body = padded_body(3 * MiB + 12345)
    status, data = send_chunked("/api/v1/messages", auth(key), body)
    eq(status, 200, "[%s] a chunked body: %r" % (SERVER, data[:300]))
    eq(json.loads(data)["type"], "message")
    rec = one_upstream_record("/v1/messages")
    eq(rec["body_len"], len(body), "[%s] the upstream got every byte of the chunked body" % SERVER)


def test_chunked_body_over_the_cap_is_the_programs_413():
    # mod_proxy_fcgi passes chunked bodies without CONTENT_LENGTH and applies no limit:
    # the program must count what it reads.
    _, key = new_user()
    body = b'{"model":"gpt-5.5","input":"' + b"a" * (cap() + MiB) + b'"}'
    status, data = send_chunked("/api/v1/codex/responses", auth(key, "openai"), body, piece=1 << 18)
    eq(status, 413, "[%s] a chunked body over max_body_bytes: %r" % (SERVER, data[:300]))
    assert_error_shape(json.loads(data), "openai")
    eq(fake_requests(path_contains="/responses"), [], "nothing went upstream")


def test_config_file_is_not_served():
    # the shared-host layout keeps zenn.conf beside the programs in the web root
    for path in ["/fcgi/zenn.conf", "/zenn.conf", "/fcgi/"]:
        r = request("GET", path)
        ok(r.status in (403, 404), "[%s] GET %s answered %d" % (SERVER, path, r.status))
        ok(b"[database]" not in r.body and b"api_key" not in r.body, "[%s] GET %s leaked the config" % (SERVER, path))
