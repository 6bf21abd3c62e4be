"""The OpenAI surface: /api/v1/codex (chat/completions, responses, models) and /api/v1/responses.

Prices (sql/catalog.sql, micro-dollars per million tokens = credits per million tokens) are
restated here so every credit amount below is checked against the catalog by hand."""

import concurrent.futures
import json
import socket
import time
import urllib.parse

from zgtest import (BASE, admin, admin_json, assert_error_shape, auth, eq, fake_requests, new_user, ok,
                    request, sql, stream, unique_email, user_id, wait_released, wait_until)

CHAT = "/api/v1/codex/chat/completions"
RESP = "/api/v1/codex/responses"
START = 20000000  # $20 Pro top-up

# model -> (provider prefix at the fake, upstream path, input, output, cache read) in $/MTok
PROVIDERS = {
    "gpt-5.3-codex": ("openai", "/openai/v1/chat/completions", 1.75, 14.00, 0.17),
    "deepseek-v4-flash": ("deepseek", "/deepseek/chat/completions", 0.14, 0.28, 0.0028),
    "kimi-k2.6": ("moonshot", "/moonshot/v1/chat/completions", 0.95, 4.00, 0.16),
    "glm-5.1": ("zhipu", "/zhipu/api/paas/v4/chat/completions", 1.40, 4.40, 0.26),
}

# prompt 1000 of which 400 cached; completion 500 of which 200 reasoning
USAGE = "input=1000,output=500,cache_read=400,reasoning=200"
# gpt-5.5: $5 in, $30 out, $0.50 cache read: 600*5 + 400*0.5 + 500*30 = 3000 + 200 + 15000
GPT55_CREDITS = 18200


def credits_for(model, inp, out, cached):
    """Exact credits for a chat usage: uncached input, cache read and output at the catalog
    prices, summed and rounded once (half up)."""
    _, _, pin, pout, pcache = PROVIDERS[model]
    micro = (inp - cached) * round(pin * 1e6) + cached * round(pcache * 1e6) + out * round(pout * 1e6)
    return (micro + 500000) // 1000000


def oai(key):
    return auth(key, "openai")


def chat_body(model="gpt-5.5", text="hello", directive="", stream_=False, **extra):
    b = {"model": model,
         "messages": [{"role": "user", "content": text + (" [[fake:%s]]" % directive if directive else "")}]}
    if stream_:
        b["stream"] = True
    b.update(extra)
    return b


def resp_body(model="gpt-5.5", text="hello", directive="", stream_=False, **extra):
    b = {"model": model, "input": text + (" [[fake:%s]]" % directive if directive else "")}
    if stream_:
        b["stream"] = True
    b.update(extra)
    return b


def usage(email):
    return admin_json("usage", email, "--json")


def balance(email):
    return admin_json("balance", email, "--json")


def settled_rows(email, n):
    rows = wait_until(lambda: (lambda rs: rs if len(rs) >= n and all(r["status"] != "pending" for r in rs)
                               else None)(usage(email)), timeout=10, msg="%d settled usage rows" % n)
    eq(len(rows), n, "usage rows")
    return rows


def check_one(email, credits, end_reason="complete", start=START):
    u = settled_rows(email, 1)[0]
    eq(u["status"], "settled")
    eq(u["end_reason"], end_reason, "end_reason")
    eq(u["credits"], credits, "usage credits")
    wait_released(email)  # lease mode: the leases go back once idle
    b = balance(email)
    eq(b["credits"], start - credits, "balance debited by exactly the usage")
    eq(b["held"], 0, "hold released")
    eq(admin_json("key", "list", email, "--json")[0]["spent_credits"], credits, "key spent")
    return u


def last_record(path_contains, n=1):
    recs = fake_requests(path_contains=path_contains, wait_ms=3000)
    eq(len(recs), n, "upstream requests to %s" % path_contains)
    return recs[-1]


def data_chunks(s):
    """The data of every SSE event of a stream (comments excluded)."""
    return [e.data for e in s]


# --------------------------------------------------------------------------- chat/completions


def test_chat_nonstream_exact_credits_and_forwarding():
    email, key = new_user()
    h = oai(key)
    h["Cookie"] = "session=x"
    raw = json.dumps(chat_body(directive=USAGE, temperature=0.2, max_completion_tokens=300,
                               unknown_field={"kept": [1, 2]})).encode()
    r = request("POST", CHAT, headers=dict(h, **{"Content-Type": "application/json"}), body=raw)
    eq(r.status, 200, r.text)
    d = r.json()
    eq(d["object"], "chat.completion")
    eq(d["choices"][0]["message"]["content"], "Hello from fake openai")
    eq(d["usage"]["prompt_tokens"], 1000, "usage passed through")
    eq(r.headers.get("x-ratelimit-limit"), "1000")
    ok(r.headers.get("request-id", "").startswith("req_"), "request-id header")
    u = check_one(email, GPT55_CREDITS)
    eq(u["request_id"], r.headers["request-id"])
    eq((u["input_tokens"], u["cache_read_tokens"], u["output_tokens"], u["reasoning_tokens"]), (600, 400, 500, 200),
       "input excludes cached tokens; reasoning counted in output")
    eq(u["model"], "gpt-5.5")
    eq(u["estimated"], False)
    eq(u["upstream_status"], 200)
    rec = last_record("/chat/completions")
    eq(rec["path"], "/openai/v1/chat/completions")
    eq(rec["provider"], "openai")
    eq(rec["body"].encode(), raw, "a body that needs no change is forwarded byte for byte")
    hdr = rec["headers"]
    eq(hdr.get("authorization"), "Bearer sk-fake-openai", "the provider key replaces the client's")
    ok(key not in json.dumps(hdr), "the client key is never forwarded")
    ok("cookie" not in hdr, "cookies are not forwarded")


def test_chat_stream_injects_and_hides_usage():
    email, key = new_user()
    with stream("POST", CHAT, headers=oai(key), body=chat_body(directive=USAGE + ",events=4", stream_=True)) as s:
        eq(s.status, 200)
        ok(s.headers.get("content-type", "").startswith("text/event-stream"), "SSE content type")
        eq(s.headers.get("x-ratelimit-limit"), "1000")
        datas = data_chunks(s)
        raw = s.raw
    eq(datas[-1], "[DONE]", "the stream ends with [DONE]")
    chunks = [json.loads(d) for d in datas[:-1]]
    eq(sum(1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")), 4, "4 content deltas")
    ok(all(c["choices"] for c in chunks), "no usage-only chunk (choices []) reaches a client that did not ask")
    ok(all(c.get("usage") is None for c in chunks), "no usage numbers shown")
    ok(raw.endswith(b"data: [DONE]\n\n"), "the stream's last bytes: %r" % raw[-40:])
    for part in raw.split(b"\n\n")[:-1]:
        ok(part.startswith(b"data: {") or part == b"data: [DONE]", "whole events relayed: %r" % part[:60])
    rec = last_record("/chat/completions")
    sent = json.loads(rec["body"])
    eq(sent.get("stream_options"), {"include_usage": True}, "include_usage injected upstream")
    eq(sent["messages"], chat_body(directive=USAGE + ",events=4")["messages"], "the rest of the body intact")
    u = check_one(email, GPT55_CREDITS)
    eq((u["input_tokens"], u["cache_read_tokens"], u["output_tokens"]), (600, 400, 500))


def test_chat_stream_client_asked_for_usage_sees_it():
    email, key = new_user()
    b = chat_body(directive=USAGE, stream_=True, stream_options={"include_usage": True})
    raw = json.dumps(b).encode()
    with stream("POST", CHAT, headers=dict(oai(key), **{"Content-Type": "application/json"}), body=raw) as s:
        datas = data_chunks(s)
    eq(datas[-1], "[DONE]")
    last = json.loads(datas[-2])
    eq(last["choices"], [], "the usage-only chunk is shown when asked for")
    eq(last["usage"]["prompt_tokens"], 1000)
    eq(last["usage"]["prompt_tokens_details"]["cached_tokens"], 400)
    eq(last["usage"]["completion_tokens_details"]["reasoning_tokens"], 200)
    eq(last_record("/chat/completions")["body"].encode(), raw, "nothing to inject: forwarded as sent")
    check_one(email, GPT55_CREDITS)


def test_chat_stream_options_false_is_overridden_but_hidden():
    email, key = new_user()
    b = chat_body(directive=USAGE, stream_=True, stream_options={"include_usage": False, "include_obfuscation": False})
    with stream("POST", CHAT, headers=oai(key), body=b) as s:
        datas = data_chunks(s)
    ok(all(json.loads(d)["choices"] for d in datas[:-1]), "the usage chunk stays hidden")
    sent = json.loads(last_record("/chat/completions")["body"])
    eq(sent["stream_options"], {"include_usage": True, "include_obfuscation": False},
       "include_usage forced on, other stream options kept")
    check_one(email, GPT55_CREDITS)


def test_chat_each_provider_stream_and_not():
    # 1000 prompt tokens (300 cached), 500 completion (100 of them reasoning)
    directive = "input=1000,output=500,cache_read=300,reasoning=100"
    for model, (prov, path, *_prices) in PROVIDERS.items():
        email, key = new_user()
        want = credits_for(model, 1000, 500, 300)
        r = request("POST", CHAT, headers=oai(key), body=chat_body(model=model, directive=directive))
        eq(r.status, 200, "%s: %s" % (model, r.text))
        eq(r.json()["choices"][0]["message"]["content"], "Hello from fake " + prov)
        with stream("POST", CHAT, headers=oai(key), body=chat_body(model=model, directive=directive,
                                                                   stream_=True)) as s:
            eq(s.status, 200)
            datas = data_chunks(s)
        eq(datas[-1], "[DONE]", model)
        ok(all(json.loads(d)["choices"] for d in datas[:-1]), "%s: injected usage hidden" % model)
        recs = fake_requests(path_contains="/chat/completions", provider=prov, wait_ms=3000)
        eq(len(recs), 2, "%s: two upstream requests" % model)
        for rec in recs:
            eq(rec["path"], path, model)
            eq(rec["headers"].get("authorization"), "Bearer sk-fake-" + prov, model)
            eq(json.loads(rec["body"])["model"], model)
        eq(json.loads(recs[1]["body"])["stream_options"], {"include_usage": True}, model)
        rows = settled_rows(email, 2)
        for u in rows:
            eq(u["credits"], want, "%s credits (%s)" % (model, "stream" if u is rows[1] else "json"))
            eq((u["input_tokens"], u["cache_read_tokens"], u["output_tokens"], u["reasoning_tokens"]),
               (700, 300, 500, 100), model)
            eq(u["end_reason"], "complete", model)
        eq(balance(email)["credits"], START - 2 * want, model)


def test_deepseek_cache_hit_rounding():
    # deepseek-v4-flash: 700*0.14 + 300*0.0028 + 500*0.28 = 98 + 0.84 + 140 = 238.84 -> 239 (rounded once)
    email, key = new_user()
    r = request("POST", CHAT, headers=oai(key),
                body=chat_body(model="deepseek-v4-flash", directive="input=1000,output=500,cache_read=300"))
    eq(r.status, 200)
    eq(r.json()["usage"]["prompt_cache_hit_tokens"], 300, "DeepSeek's own field passes through")
    check_one(email, 239)


def test_alias_is_rewritten_to_catalog_id():
    email, key = new_user()
    b = chat_body(model="deepseek-chat", directive="input=1000,output=500,cache_read=300", seed=7)
    r = request("POST", CHAT, headers=oai(key), body=b)
    eq(r.status, 200, r.text)
    sent = json.loads(last_record("/chat/completions")["body"])
    eq(sent["model"], "deepseek-v4-flash")
    eq(sent["seed"], 7)
    eq(check_one(email, 239)["model"], "deepseek-v4-flash")


def test_codex_models_list():
    _, key = new_user()
    r = request("GET", "/api/v1/codex/models", headers=oai(key))
    eq(r.status, 200)
    d = r.json()
    eq(d["object"], "list")
    ids = [m["id"] for m in d["data"]]
    for m in ["gpt-5.5", "gpt-5.5-pro", "deepseek-v4-pro", "kimi-k2.6", "glm-5.1"]:
        ok(m in ids, "%s listed" % m)
    ok(not [i for i in ids if i.startswith(("claude", "gemini", "gpt-image"))], "only OpenAI-surface models: %r" % ids)
    r = request("GET", "/api/v1/codex/models/gpt-5.5", headers=oai(key))
    eq(r.status, 200)
    eq(r.json()["id"], "gpt-5.5")


# --------------------------------------------------------------------------- responses


def test_responses_nonstream_each_terminal_and_path():
    n = 0
    for path in [RESP, "/api/v1/responses"]:
        for terminal in ["completed", "incomplete", "failed"]:
            email, key = new_user()
            raw = json.dumps(resp_body(directive=USAGE + ",terminal=" + terminal, store=False,
                                       reasoning={"effort": "high"})).encode()
            r = request("POST", path, headers=dict(oai(key), **{"Content-Type": "application/json"}), body=raw)
            eq(r.status, 200, r.text)
            d = r.json()
            eq(d["status"], terminal)
            eq(d["usage"]["input_tokens"], 1000)
            n += 1
            rec = fake_requests(path_contains="/responses", wait_ms=3000)[-1]
            eq(rec["path"], "/openai/v1/responses")
            eq(rec["body"].encode(), raw, "forwarded byte for byte")
            u = check_one(email, GPT55_CREDITS)
            eq((u["input_tokens"], u["cache_read_tokens"], u["output_tokens"], u["reasoning_tokens"]),
               (600, 400, 500, 200), "%s %s" % (path, terminal))
    eq(n, 6)


def test_responses_stream_each_terminal_relayed_unmodified():
    for path in [RESP, "/api/v1/responses"]:
        for terminal in ["completed", "incomplete", "failed"]:
            email, key = new_user()
            b = resp_body(directive=USAGE + ",events=3,terminal=" + terminal, stream_=True)
            with stream("POST", path, headers=oai(key), body=b) as s:
                eq(s.status, 200)
                ok(s.headers.get("content-type", "").startswith("text/event-stream"), "SSE")
                events = list(s)
                raw = s.raw
            what = "%s %s" % (path, terminal)
            eq(events[-1].event, "response." + terminal, what)
            eq(events[0].event, "response.created", what)
            eq([e.json()["sequence_number"] for e in events], list(range(len(events))),
               "%s: every event relayed once, in order" % what)
            # the fake writes "event: NAME\ndata: COMPACT_JSON\n\n": the client gets exactly that
            rebuilt = b"".join(b"event: %s\ndata: %s\n\n" % (e.event.encode(), e.data.encode()) for e in events)
            eq(raw, rebuilt, "%s: bytes unmodified" % what)
            for e in events:
                eq(e.data, json.dumps(e.json(), separators=(",", ":"), ensure_ascii=False),
                   "%s: compact JSON as the upstream wrote it" % what)
            eq(sum(1 for e in events if e.event == "response.output_text.delta"), 3)
            eq(events[-1].json()["response"]["usage"]["output_tokens"], 500)
            u = check_one(email, GPT55_CREDITS)
            eq(u["estimated"], False, what)


def test_responses_headers_and_codex_body():
    _, key = new_user()
    # what Codex CLI sends (see the client notes): forwarded untouched
    b = {"model": "gpt-5.3-codex", "instructions": "You are Codex.", "stream": True, "store": False,
         "include": ["reasoning.encrypted_content"], "prompt_cache_key": "019a-session",
         "reasoning": {"effort": "medium", "summary": "auto"}, "text": {"verbosity": "low"},
         "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
                   {"type": "additional_tools", "tools": [{"type": "function", "name": "shell"}]}],
         "tool_choice": "auto", "parallel_tool_calls": False}
    raw = json.dumps(b).encode()
    h = dict(oai(key), **{"Content-Type": "application/json", "openai-beta": "responses=experimental",
                          "originator": "codex_cli_rs", "session_id": "019a-session"})
    with stream("POST", "/api/v1/responses", headers=h, body=raw) as s:
        names = [e.event for e in s]
    eq(names[-1], "response.completed")
    ok("response.output_item.done" in names, "output_item.done relayed")
    rec = last_record("/responses")
    eq(rec["body"].encode(), raw)
    eq(rec["headers"].get("openai-beta"), "responses=experimental", "openai-beta forwarded")
    eq(rec["headers"].get("authorization"), "Bearer sk-fake-openai")
    ok("session_id" not in rec["headers"], "unknown client headers are not forwarded")


def test_responses_websocket_probe_426():
    _, key = new_user()
    ws = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
          "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "openai-beta": "responses_websockets=2026-02-04"}
    for path in [RESP, "/api/v1/responses"]:
        for h in [dict(oai(key), **ws), oai(key), {}]:
            r = request("GET", path, headers=h)
            eq(r.status, 426, "GET %s %r: %s" % (path, sorted(h), r.text))
            eq(assert_error_shape(r, "openai")["error"]["code"], "upgrade_required")
    eq(fake_requests(), [], "no upstream call")


def test_responses_with_deepseek_is_400():
    email, key = new_user()
    for model in ["deepseek-v4-pro", "kimi-k2.6", "glm-5.1"]:
        for path in [RESP, "/api/v1/responses"]:
            r = request("POST", path, headers=oai(key), body=resp_body(model=model))
            eq(r.status, 400, "%s on %s" % (model, path))
            d = assert_error_shape(r, "openai")
            eq(d["error"]["type"], "invalid_request_error")
            ok("/chat/completions" in d["error"]["message"], "the message names chat/completions: %r" % d)
    eq(fake_requests(), [])
    eq(usage(email), [])


# --------------------------------------------------------------------------- errors


def test_errors_in_openai_shape():
    email, key = new_user()
    cases = [
        # (path, headers, body, status, error.code)
        (CHAT, {"Authorization": "Bearer ck_" + "Z" * 43}, chat_body(), 401, "invalid_api_key"),
        (CHAT, {}, chat_body(), 401, "invalid_api_key"),
        (RESP, {"Authorization": "Bearer sk-not-ours"}, resp_body(), 401, "invalid_api_key"),
        (CHAT, oai(key), chat_body(model="gpt-9-ultra"), 404, "model_not_found"),
        (RESP, oai(key), resp_body(model="gpt-9-ultra"), 404, "model_not_found"),
        (CHAT, oai(key), chat_body(model="nano-banana"), 503, "model_coming_soon"),
        (CHAT, oai(key), chat_body(model="claude-sonnet-4-6"), 400, None),
        (CHAT, oai(key), chat_body(model="gemini-3-flash-preview"), 400, None),
        (CHAT, oai(key), {"model": "gpt-5.5"}, 400, None),
        (RESP, oai(key), {"input": "no model"}, 400, None),
        (CHAT, oai(key), b"{not json", 400, None),
        (CHAT, oai(key), chat_body(model="gpt-5.5-pro"), 403, "model_not_available"),
        (RESP, oai(key), resp_body(model="gpt-5.5-pro"), 403, "model_not_available"),
    ]
    for path, h, b, status, code in cases:
        r = request("POST", path, headers=dict(h, **{"Content-Type": "application/json"}), body=b)
        eq(r.status, status, "%s %r: %s" % (path, b if isinstance(b, bytes) else b.get("model"), r.text))
        d = assert_error_shape(r, "openai")
        if code is not None:
            eq(d["error"]["code"], code, "error.code for %d" % status)
        if status in (401, 403):
            eq(r.headers.get("x-should-retry"), "false")
    r = request("POST", CHAT, headers=oai(key), body=chat_body(model="claude-sonnet-4-6"))
    ok("/api/v1" in r.json()["error"]["message"], "400 names the right base URL")
    eq(fake_requests(), [], "no refused request reached an upstream")
    eq(usage(email), [])
    eq(balance(email)["credits"], START)
    # Max unlocks gpt-5.5-pro: $30 in / $180 out / $30 cache read: 600*30 + 400*30 + 500*180 = 120000
    email2, key2 = new_user("max", 5)
    r = request("POST", CHAT, headers=oai(key2), body=chat_body(model="gpt-5.5-pro", directive=USAGE))
    eq(r.status, 200, r.text)
    check_one(email2, 120000, start=20000000)


def test_402_without_credits():
    email = unique_email("broke")
    admin("user", "add", email)
    key = admin("key", "create", email).splitlines()[0]
    for path, b in [(CHAT, chat_body()), (RESP, resp_body()), ("/api/v1/responses", resp_body())]:
        r = request("POST", path, headers=oai(key), body=b)
        eq(r.status, 402, path)
        eq(assert_error_shape(r, "openai")["error"]["code"], "insufficient_quota")
        eq(r.headers.get("x-should-retry"), "false")
        eq(r.headers.get("x-ratelimit-limit"), "1000")
    eq(fake_requests(), [])
    eq(usage(email), [])


def test_upstream_errors_pass_through_unbilled():
    for status in [400, 401, 404, 429, 500, 502, 503]:
        email, key = new_user()
        r = request("POST", CHAT, headers=oai(key), body=chat_body(directive="status=%d" % status))
        eq(r.status, status, "upstream %d passed through" % status)
        d = assert_error_shape(r, "openai")
        eq(r.headers.get("x-should-retry"), "true" if status == 429 or status >= 500 else "false")
        if status == 429:
            eq(d["error"]["code"], "rate_limit_exceeded", "the provider's own error body")
        u = check_one(email, 0, end_reason="upstream_error")
        eq(u["upstream_status"], status)
    # the same on a stream request and on responses
    email, key = new_user()
    with stream("POST", RESP, headers=oai(key), body=resp_body(directive="status=400", stream_=True)) as s:
        eq(s.status, 400)
        assert_error_shape(s.json(), "openai")
    check_one(email, 0, end_reason="upstream_error")


def test_upstream_timeout_504_and_unreachable_502():
    email, key = new_user()
    t0 = time.monotonic()
    r = request("POST", CHAT, headers=oai(key), body=chat_body(directive="delay=8000"), timeout=60)
    eq(r.status, 504, r.text)
    eq(assert_error_shape(r, "openai")["error"]["code"], "upstream_timeout")
    ok(time.monotonic() - t0 < 7.5, "the idle timeout answered, not the upstream")
    check_one(email, 0, end_reason="upstream_timeout")
    # a 502 from the provider reaches the client as the provider's OpenAI-shaped error
    email, key = new_user()
    r = request("POST", RESP, headers=oai(key), body=resp_body(directive="status=502"))
    eq(r.status, 502, r.text)
    eq(assert_error_shape(r, "openai")["error"]["type"], "server_error")
    check_one(email, 0, end_reason="upstream_error")
    # the upstream closes before its first text delta: the client gets what was sent, then an error event
    email, key = new_user()
    raw = json.dumps(resp_body(directive="drop_after=0", stream_=True)).encode()
    with stream("POST", RESP, headers=dict(oai(key), **{"Content-Type": "application/json"}), body=raw) as s:
        eq(s.status, 200)
        events = list(s)
    eq([e.event for e in events[:-1]], ["response.created", "response.in_progress", "response.output_item.added",
                                        "response.content_part.added"])
    # the Responses API's own error event
    eq(events[-1].event, "error")
    eq(events[-1].json()["type"], "error")
    eq(events[-1].json()["code"], "upstream_error")
    ok(events[-1].json()["message"], "error event message")
    # no usage was reported: input is estimated as ceil(request bytes / 4) at gpt-5.5's $5/MTok
    est = (len(raw) + 3) // 4
    u = check_one(email, (est * 5000000 + 500000) // 1000000, end_reason="upstream_dropped")
    eq((u["input_tokens"], u["output_tokens"], u["estimated"]), (est, 0, True))


def test_rate_limit_429_codex_bucket():
    # a user with no credits: refused with 402 without an upstream call, and a refusal does not use
    # up the hour (README, "Rate limits": only admitted requests count)
    email = unique_email("rlcodex")
    admin("user", "add", email)
    key = admin("key", "create", email).splitlines()[0]
    limit = 1000

    def one(i):
        path = CHAT if i % 2 else "/api/v1/responses"
        b = chat_body(model="gpt-5.4") if i % 2 else resp_body(model="gpt-5.4")
        return request("POST", path, headers=oai(key), body=b)

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        rs = list(ex.map(one, range(40)))
    eq(set(r.status for r in rs), {402}, "no credits")
    eq(one(1).headers.get("x-ratelimit-remaining"), str(limit), "402s are not counted")
    # an hour used up (the counter at the limit): 429 in the OpenAI shape on every codex path
    sql("INSERT INTO rate_counters (user_id, grp, window_start, hits) VALUES (%d, 'codex', "
        "UNIX_TIMESTAMP() DIV 3600 * 3600, %d) ON DUPLICATE KEY UPDATE hits = %d" % (user_id(email), limit, limit))
    for path, b in [(CHAT, chat_body()), (RESP, resp_body()), ("/api/v1/responses", resp_body())]:
        r = request("POST", path, headers=oai(key), body=b)
        eq(r.status, 429, path)
        eq(assert_error_shape(r, "openai")["error"]["code"], "rate_limit_exceeded")
        eq(r.headers.get("x-ratelimit-remaining"), "0")
        eq(r.headers.get("x-ratelimit-limit"), str(limit))
        ok(int(r.headers["retry-after"]) >= 1, "retry-after")
        ok(int(r.headers["x-ratelimit-reset"]) > time.time(), "reset in the future")
    eq(fake_requests(), [])
    # the messages bucket is separate
    r = request("POST", "/api/v1/messages", headers=auth(key),
                body={"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})
    eq(r.status, 402, "/messages is not limited by the codex bucket")
    eq(r.headers.get("x-ratelimit-remaining"), str(1000))


# --------------------------------------------------------------------------- broken streams


def test_client_disconnect_mid_stream_settles_once():
    # the client leaves after 3 deltas; the gateway reads on (relaying nothing) to the final usage and
    # bills what the upstream reported (README, "Client disconnects")
    for path, b, delta in [
        (CHAT, chat_body(stream_=True, directive="events=30,interval=100,input=300,output=900"), "chat"),
        (RESP, resp_body(stream_=True, directive="events=30,interval=100,input=300,output=900"),
         "response.output_text.delta"),
    ]:
        email, key = new_user()
        s = stream("POST", path, headers=oai(key), body=b, timeout=30)
        got = 0
        for e in s:
            if (delta == "chat" and '"content":"tok' in e.data) or e.event == delta:
                got += 1
                if got == 3:
                    break
        s.close()
        rec = wait_until(lambda: [r for r in fake_requests(path_contains=path.rsplit("/", 1)[1])
                                  if r["outcome"] != "in_progress"] or None, timeout=15,
                         msg="the fake upstream saw the transfer end")[0]
        eq(rec["deltas_sent"], 30, "%s: the answer was generated to its end" % path)
        u = settled_rows(email, 1)[0]
        eq(u["status"], "settled")
        eq(u["end_reason"], "client_closed", path)
        eq((u["estimated"], u["input_tokens"], u["output_tokens"]), (False, 300, 900), "the reported usage")
        ok(u["credits"] > 0, "billed what was generated")
        wait_released(email)
        b_ = balance(email)
        eq(b_["credits"], START - u["credits"])
        eq(b_["held"], 0)
        time.sleep(0.3)
        eq(len(usage(email)), 1, "exactly one usage row")


def test_upstream_drop_mid_stream_settles_once():
    for path, b in [(CHAT, chat_body(stream_=True, directive="events=10,drop_after=4")),
                    (RESP, resp_body(stream_=True, directive="events=10,drop_after=4,input=200"))]:
        email, key = new_user()
        with stream("POST", path, headers=oai(key), body=b) as s:
            events = list(s)
        ok(events[-1].data != "[DONE]", "no [DONE] after a drop")
        last = events[-1].json()
        if path == RESP:  # the Responses API's error event: event: error, {"type":"error","code",...}
            eq(events[-1].event, "error")
            eq(last["type"], "error")
            eq(last["code"], "upstream_error", "%s: the client is told the stream broke" % path)
        else:
            assert_error_shape(last, "openai")
            eq(last["error"]["code"], "upstream_error", "%s: the client is told the stream broke" % path)
        rec = fake_requests(path_contains=path.rsplit("/", 1)[1], wait_ms=3000)[-1]
        eq(rec["outcome"], "dropped")
        u = settled_rows(email, 1)[0]
        eq(u["end_reason"], "upstream_dropped", path)
        eq(u["estimated"], True)
        ok(u["output_tokens"] >= 4, "output estimated from the 4 deltas relayed (%d)" % u["output_tokens"])
        ok(u["credits"] > 0, "billed")
        eq(balance(email)["credits"], START - u["credits"])
        time.sleep(0.3)
        eq(len(usage(email)), 1, "exactly one usage row")
