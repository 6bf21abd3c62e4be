"""The Gemini surface: native generateContent / streamGenerateContent / countTokens under /v1beta/
and /v1/, and Google's OpenAI-compatible chat/completions; errors in each protocol's shape."""

import json
import time

from zgtest import (admin, admin_json, assert_error_shape, auth, config_value, eq, fake_clear, fake_requests,
                    lease_mode, new_user, ok, request, sql_rows, stream, unique_email, user_id, wait_released,
                    wait_until)

FLASH = "gemini-3-flash-preview"   # $0.50 in, $3.00 out, $0.05 cache read
PRO = "gemini-3.1-pro-preview"     # $4.00 in, $18.00 out, $0.40 cache read
START = 20000000
BASE = "/api/v1/gemini"

# 1000 prompt tokens (400 cached), 500 candidate tokens, 200 thought tokens
USAGE = "input=1000,output=500,cached=400,thoughts=200"
# native: output = candidates + thoughts = 700: 600*0.5 + 400*0.05 + 700*3 = 300 + 20 + 2100
FLASH_NATIVE = 2420
# 600*4 + 400*0.4 + 700*18 = 2400 + 160 + 12600
PRO_NATIVE = 15160
# OpenAI-compatible: completion_tokens 500 includes the 200 reasoning: 300 + 20 + 500*3
FLASH_CHAT = 1820

SCHEMA = {"type": "object", "properties": {"route": {"type": "string", "enum": ["flash", "pro"]},
                                           "reasoning": {"type": "string"}, "confidence": {"type": "number",
                                                                                           "minimum": 0.5}},
          "required": ["reasoning", "route", "confidence"]}


def native_body(text="hello", directive="", **extra):
    b = {"contents": [{"role": "user", "parts": [{"text": text + (" [[fake:%s]]" % directive if directive else "")}]}]}
    b.update(extra)
    return b


def chat_body(model=FLASH, text="hello", directive="", stream_=False, **extra):
    b = {"model": model,
         "messages": [{"role": "user", "content": text + (" [[fake:%s]]" % directive if directive else "")}]}
    if stream_:
        b["stream"] = True
    b.update(extra)
    return b


def gem(key):
    return auth(key, "gemini")


def usage(email):
    return admin_json("usage", email, "--json")


def balance(email):
    return admin_json("balance", email, "--json")


def settled_rows(email, n):
    rows = wait_until(lambda: (lambda rs: rs if len(rs) >= n and all(r["status"] != "pending" for r in rs)
                               else None)(usage(email)), timeout=10, msg="%d settled usage rows" % n)
    eq(len(rows), n, "usage rows")
    return rows


def check_one(email, credits, end_reason="complete"):
    u = settled_rows(email, 1)[0]
    eq(u["status"], "settled")
    eq(u["end_reason"], end_reason)
    eq(u["credits"], credits, "usage credits")
    wait_released(email)  # lease mode: the leases go back once idle
    b = balance(email)
    eq(b["credits"], START - credits, "balance debited by exactly the usage")
    eq(b["held"], 0)
    return u


def one_record(path_contains):
    recs = fake_requests(path_contains=path_contains, wait_ms=3000)
    eq(len(recs), 1, "one upstream request to %s" % path_contains)
    return recs[0]


# --------------------------------------------------------------------------- native


def test_generate_content_v1beta_header_key():
    email, key = new_user()
    raw = json.dumps(native_body(directive=USAGE, safetySettings=[{"category": "HARM_CATEGORY_HARASSMENT",
                                                                     "threshold": "BLOCK_NONE"}],
                                 generationConfig={"temperature": 0, "thinkingConfig": {"thinkingLevel": "low"}},
                                 systemInstruction={"parts": [{"text": "be brief"}]})).encode()
    r = request("POST", BASE + "/v1beta/models/%s:generateContent" % FLASH,
                headers=dict(gem(key), **{"Content-Type": "application/json"}), body=raw)
    eq(r.status, 200, r.text)
    d = r.json()
    eq(d["candidates"][0]["content"]["parts"][0]["text"], "Hello from fake gemini")
    eq(d["usageMetadata"]["thoughtsTokenCount"], 200)
    eq(r.headers.get("x-ratelimit-limit"), "1000")
    u = check_one(email, FLASH_NATIVE)
    eq((u["input_tokens"], u["cache_read_tokens"], u["output_tokens"], u["reasoning_tokens"]), (600, 400, 700, 200),
       "thoughts billed as output, cached at the cache-read price")
    eq(u["model"], FLASH)
    rec = one_record(":generateContent")
    eq(rec["path"], "/gemini/v1beta/models/%s:generateContent" % FLASH)
    eq(rec["query"], "")
    eq(rec["body"].encode(), raw, "the body is forwarded byte for byte")
    eq(rec["headers"].get("x-goog-api-key"), "sk-fake-gemini", "the provider key goes in x-goog-api-key")
    ok("authorization" not in rec["headers"], "no Authorization upstream")
    ok(key not in json.dumps(rec["headers"]), "the client key is never forwarded")


def test_generate_content_v1_query_key_not_forwarded():
    email, key = new_user()
    b = native_body(directive=USAGE)
    r = request("POST", BASE + "/v1/models/%s:generateContent?key=%s" % (PRO, key), body=b)
    eq(r.status, 200, r.text)
    check_one(email, PRO_NATIVE)
    rec = one_record(":generateContent")
    eq(rec["path"], "/gemini/v1/models/%s:generateContent" % PRO, "/v1/ stays /v1/")
    eq(rec["query"], "", "the key query parameter is not forwarded")
    ok(key not in rec["path"] + rec["query"] + json.dumps(rec["headers"]), "the client key never leaves")
    eq(rec["headers"].get("x-goog-api-key"), "sk-fake-gemini")


def test_response_json_schema_passes_through():
    # Gemini CLI's router call: JSON mode with responseJsonSchema, not streamed
    email, key = new_user()
    b = native_body(text="route this", generationConfig={"responseMimeType": "application/json",
                                                         "responseJsonSchema": SCHEMA, "temperature": 0,
                                                         "maxOutputTokens": 1024})
    raw = json.dumps(b).encode()
    r = request("POST", BASE + "/v1beta/models/%s:generateContent" % FLASH,
                headers=dict(gem(key), **{"Content-Type": "application/json"}), body=raw)
    eq(r.status, 200, r.text)
    answer = json.loads(r.json()["candidates"][0]["content"]["parts"][0]["text"])
    eq(sorted(answer), ["confidence", "reasoning", "route"], "the upstream saw the schema")
    eq(answer["route"], "flash")
    sent = json.loads(one_record(":generateContent")["body"])
    eq(sent["generationConfig"]["responseJsonSchema"], SCHEMA, "responseJsonSchema untouched")
    eq(sent, b)
    # 25 in, 10 out (the fake's defaults) at flash prices: 12.5 + 30 = 42.5 -> 43
    check_one(email, 43)


def test_stream_generate_content_sse():
    for version, auth_in_query in [("v1beta", False), ("v1", True)]:
        fake_clear()
        email, key = new_user()
        path = BASE + "/%s/models/%s:streamGenerateContent?alt=sse" % (version, FLASH)
        h = gem(key)
        if auth_in_query:
            path += "&key=" + key
            h = {}
        with stream("POST", path, headers=h, body=native_body(directive=USAGE + ",events=4")) as s:
            eq(s.status, 200)
            ok(s.headers.get("content-type", "").startswith("text/event-stream"), "SSE")
            events = list(s)
            raw = s.raw
        eq(len(events), 4)
        chunks = [e.json() for e in events]
        eq(chunks[-1]["candidates"][0]["finishReason"], "STOP")
        eq("".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks), "tok1 tok2 tok3 tok4 ")
        eq(raw.count(b"\r\n\r\n"), 4, "Gemini's CRLF event ends relayed unchanged")
        ok(raw.endswith(b"\r\n\r\n"), "bytes as the upstream sent them")
        u = check_one(email, FLASH_NATIVE)
        eq(u["output_tokens"], 700)
        rec = one_record(":streamGenerateContent")
        eq(rec["path"], "/gemini/%s/models/%s:streamGenerateContent" % (version, FLASH))
        eq(rec["query"], "alt=sse", "only alt=sse goes upstream")


def test_stream_generate_content_json_array():
    email, key = new_user()
    r = request("POST", BASE + "/v1beta/models/%s:streamGenerateContent" % FLASH, headers=gem(key),
                body=native_body(directive=USAGE + ",events=3"))
    eq(r.status, 200)
    arr = r.json()
    ok(isinstance(arr, list) and len(arr) == 3, "a streamed JSON array of 3 chunks")
    eq(arr[-1]["usageMetadata"]["candidatesTokenCount"], 500)
    check_one(email, FLASH_NATIVE)
    eq(one_record(":streamGenerateContent")["query"], "")


def test_stream_generate_content_json_array_arrives_in_pieces():
    # without alt=sse the stream is a JSON array: each element is passed on as it comes, not at the end
    email, key = new_user()
    s = stream("POST", BASE + "/v1beta/models/%s:streamGenerateContent" % FLASH, headers=gem(key),
               body=native_body(directive=USAGE + ",events=4,interval=400"), timeout=30)
    eq(s.status, 200)
    t0, first = time.monotonic(), None
    raw = b""
    while True:
        line = s._resp.readline()
        if not line:
            break
        raw += line
        if first is None and b"candidates" in line:
            first = time.monotonic() - t0
    total = time.monotonic() - t0
    s.close()
    ok(first is not None and first < total - 0.8, "the first element came at %.2f s of %.2f s" % (first or -1, total))
    arr = json.loads(raw)
    eq(len(arr), 4)
    check_one(email, FLASH_NATIVE)


def test_count_tokens_unbilled():
    email, key = new_user()
    for version in ["v1beta", "v1"]:
        r = request("POST", BASE + "/%s/models/%s:countTokens" % (version, FLASH), headers=gem(key),
                    body=native_body(directive="input=77"))
        eq(r.status, 200, r.text)
        eq(r.json()["totalTokens"], 77)
        ok(r.headers.get("x-ratelimit-limit") not in (None, "1000"), "countTokens has its own bucket")
    r = request("POST", BASE + "/v1beta/models/%s:countTokens?key=%s" % (FLASH, key), body=native_body())
    eq(r.status, 200)
    recs = fake_requests(path_contains=":countTokens", wait_ms=2000)
    eq(len(recs), 3)
    ok(all(x["query"] == "" for x in recs), "no key upstream")
    time.sleep(0.2)
    eq(usage(email), [], "countTokens writes no usage row")
    eq(balance(email)["credits"], START)


def test_native_errors_in_gemini_shape():
    email, key = new_user()
    gen = BASE + "/v1beta/models/%s:generateContent"
    cases = [
        # (path, headers, body, status, error.status)
        (gen % FLASH, {}, native_body(), 401, "UNAUTHENTICATED"),
        (gen % FLASH + "?key=ck_" + "Z" * 43, {}, native_body(), 401, "UNAUTHENTICATED"),
        (gen % FLASH, {"x-goog-api-key": "AIzaSyNotOurs"}, native_body(), 401, "UNAUTHENTICATED"),
        (gen % "gemini-9-ultra", gem(key), native_body(), 404, "NOT_FOUND"),
        (gen % "nano-banana", gem(key), native_body(), 503, "UNAVAILABLE"),
        (gen % "veo-3.1", gem(key), native_body(), 503, "UNAVAILABLE"),
        (gen % "claude-sonnet-4-6", gem(key), native_body(), 400, "INVALID_ARGUMENT"),
        (gen % "gpt-5.5", gem(key), native_body(), 400, "INVALID_ARGUMENT"),
        (BASE + "/v1beta/models/%s:embedContent" % FLASH, gem(key), native_body(), 400, "INVALID_ARGUMENT"),
        (gen % FLASH, gem(key), b"{nope", 400, "INVALID_ARGUMENT"),
    ]
    for path, h, b, status, gstatus in cases:
        r = request("POST", path, headers=dict(h, **{"Content-Type": "application/json"}), body=b)
        eq(r.status, status, "%s: %s" % (path, r.text))
        d = assert_error_shape(r, "gemini")
        eq(d["error"]["status"], gstatus, path)
    eq(fake_requests(), [], "no refused request reached the upstream")
    eq(usage(email), [])
    # 402: no credits
    broke = unique_email("gbroke")
    admin("user", "add", broke)
    bkey = admin("key", "create", broke).splitlines()[0]
    r = request("POST", gen % FLASH + "?key=" + bkey, body=native_body())
    eq(r.status, 402)
    eq(assert_error_shape(r, "gemini")["error"]["status"], "RESOURCE_EXHAUSTED")
    eq(r.headers.get("x-should-retry"), "false")


def test_native_upstream_errors_and_timeout():
    for status, gstatus in [(400, "INVALID_ARGUMENT"), (429, "RESOURCE_EXHAUSTED"), (503, "UNAVAILABLE")]:
        email, key = new_user()
        r = request("POST", BASE + "/v1beta/models/%s:generateContent" % FLASH, headers=gem(key),
                    body=native_body(directive="status=%d" % status))
        eq(r.status, status)
        eq(assert_error_shape(r, "gemini")["error"]["status"], gstatus, "the provider's own error")
        check_one(email, 0, end_reason="upstream_error")
    email, key = new_user()
    r = request("POST", BASE + "/v1beta/models/%s:generateContent" % FLASH, headers=gem(key),
                body=native_body(directive="delay=8000"), timeout=60)
    eq(r.status, 504, r.text)
    eq(assert_error_shape(r, "gemini")["error"]["status"], "DEADLINE_EXCEEDED")
    check_one(email, 0, end_reason="upstream_timeout")


def test_native_stream_drop_settles_once():
    email, key = new_user()
    with stream("POST", BASE + "/v1beta/models/%s:streamGenerateContent?alt=sse" % FLASH, headers=gem(key),
                body=native_body(directive="events=10,drop_after=4,input=200")) as s:
        events = list(s)
    eq(len(events), 5, "4 chunks, then the error: %r" % events)
    d = events[-1].json()
    assert_error_shape(d, "gemini")
    # each chunk carries the running usage (candidates 1, 2, 3, 4 of 10): billed as last reported,
    # 200*0.5 + 4*3 = 112
    u = check_one(email, 112, end_reason="upstream_dropped")
    eq((u["input_tokens"], u["output_tokens"]), (200, 4), "usage as reported in the last chunk relayed")


def test_native_models_list():
    _, key = new_user()
    for version in ["v1beta", "v1"]:
        r = request("GET", BASE + "/%s/models" % version, headers=gem(key))
        eq(r.status, 200)
        names = [m["name"] for m in r.json()["models"]]
        ok("models/" + FLASH in names and "models/" + PRO in names, "gemini models listed: %r" % names)
    r = request("GET", BASE + "/v1beta/models/" + FLASH + "?key=" + key)
    eq(r.status, 200)
    eq(r.json()["name"], "models/" + FLASH)
    r = request("GET", BASE + "/v1beta/models/gpt-5.5", headers=gem(key))
    eq(r.status, 404)
    assert_error_shape(r, "gemini")


# --------------------------------------------------------------------------- OpenAI-compatible


def test_openai_compatible_chat_both_paths():
    for path in [BASE + "/chat/completions", BASE + "/v1beta/openai/chat/completions"]:
        fake_clear()
        email, key = new_user()
        r = request("POST", path, headers=auth(key, "openai"), body=chat_body(directive=USAGE))
        eq(r.status, 200, r.text)
        eq(r.json()["object"], "chat.completion")
        eq(r.headers.get("x-ratelimit-limit"), "1000")
        with stream("POST", path, headers=auth(key, "openai"), body=chat_body(directive=USAGE, stream_=True)) as s:
            eq(s.status, 200)
            datas = [e.data for e in s]
        eq(datas[-1], "[DONE]")
        ok(all(json.loads(d)["choices"] for d in datas[:-1]), "the injected usage chunk is hidden")
        recs = fake_requests(path_contains="/chat/completions", wait_ms=3000)
        eq(len(recs), 2)
        for rec in recs:
            eq(rec["path"], "/gemini/v1beta/openai/chat/completions", "Google's OpenAI-compatible root")
            eq(rec["headers"].get("authorization"), "Bearer sk-fake-gemini")
        eq(json.loads(recs[1]["body"])["stream_options"], {"include_usage": True})
        rows = settled_rows(email, 2)
        for u in rows:
            eq(u["credits"], FLASH_CHAT, path)
            eq((u["input_tokens"], u["cache_read_tokens"], u["output_tokens"]), (600, 400, 500))
        eq(balance(email)["credits"], START - 2 * FLASH_CHAT)


def test_openai_compatible_errors_and_models():
    email, key = new_user()
    path = BASE + "/chat/completions"
    for b, status in [(chat_body(model="gemini-9"), 404), (chat_body(model="gpt-5.5"), 400),
                      (chat_body(model="nano-banana"), 503), ({"model": FLASH}, 400)]:
        r = request("POST", path, headers=auth(key, "openai"), body=b)
        eq(r.status, status, r.text)
        assert_error_shape(r, "openai")
    r = request("POST", BASE + "/v1beta/openai/chat/completions", body=chat_body())
    eq(r.status, 401)
    assert_error_shape(r, "openai")
    r = request("POST", path, headers=auth(key, "openai"), body=chat_body(directive="status=429"))
    eq(r.status, 429)
    assert_error_shape(r, "openai")
    for p in [BASE + "/models", BASE + "/v1beta/openai/models"]:
        r = request("GET", p, headers=auth(key, "openai"))
        eq(r.status, 200, p)
        ids = [m["id"] for m in r.json()["data"]]
        ok(FLASH in ids and not [i for i in ids if not i.startswith("gemini")], "%s: %r" % (p, ids))


def rate_hits(email):
    """{group: requests counted} of a user in the rate_counters table (all windows)."""
    return {g: int(n) for g, n in sql_rows("SELECT grp, SUM(hits) FROM rate_counters WHERE user_id = %d GROUP BY grp"
                                           % user_id(email))}


def test_rate_limit_group_shared_with_messages():
    email, key = new_user()
    msg = {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    calls = [
        ("/api/v1/messages", auth(key), msg),
        (BASE + "/v1beta/models/%s:generateContent" % FLASH, gem(key), native_body()),
        (BASE + "/chat/completions", auth(key, "openai"), chat_body()),
        ("/api/v1/messages", auth(key), msg),
        (BASE + "/v1/models/%s:streamGenerateContent?alt=sse" % FLASH, gem(key), native_body()),
        (BASE + "/v1beta/openai/chat/completions", auth(key, "openai"), chat_body()),
    ]
    remaining = []
    for path, h, b in calls:
        r = request("POST", path, headers=h, body=b)
        eq(r.status, 200, "%s: %s" % (path, r.text))
        eq(r.headers.get("x-ratelimit-limit"), "1000", path)
        remaining.append(int(r.headers["x-ratelimit-remaining"]))
    n = len(calls)
    if not lease_mode():
        eq(remaining, list(range(999, 999 - n, -1)), "one bucket counts all of them")
    else:
        # lease mode: each process admits from its own slice of the bucket (up to lease_slots
        # requests, counted in the database when granted) and shows its own view: the limit
        # minus the counter after its last grant plus what it still holds. The first request of
        # the hour sees exactly 999; the others lie between the limit minus every request and
        # every slice taken meanwhile (at most one per request) and the limit.
        slots = int(config_value("billing", "lease_slots", "64"))
        eq(remaining[0], 999, "the first request of the bucket")
        for i, rem in enumerate(remaining):
            ok(1000 - (i + 1) - slots * (i + 1) <= rem < 1000, "remaining %d after %d requests: %r"
               % (rem, i + 1, remaining))
        # the bucket itself is exact: once the slices are given back, the counter holds the
        # requests made, whichever process and surface admitted them
        wait_released(email)
        eq(rate_hits(email), {"messages": n}, "one bucket counts all of them")
    # the codex bucket is another one
    r = request("POST", "/api/v1/codex/chat/completions", headers=auth(key, "openai"),
                body=chat_body(model="gpt-5.5"))
    eq(r.status, 200)
    eq(r.headers.get("x-ratelimit-remaining"), "999", "codex is counted apart")
    if lease_mode():
        wait_released(email)
        eq(rate_hits(email), {"messages": n, "codex": 1}, "codex is counted apart")
