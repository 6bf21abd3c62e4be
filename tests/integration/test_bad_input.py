"""Bad input against every surface: each case gets the right status and an error body in the
caller's protocol (valid UTF-8 JSON), nothing malformed reaches the upstream, nothing crashes."""

import json
import os
import re
import socket
import urllib.parse

from zgtest import (BASE, Skip, admin, admin_json, assert_error_shape, auth, eq, fake_requests, log_path, new_user,
                    ok, request)

HAIKU = "claude-haiku-4-5"
GEM = "gemini-3-flash-preview"

# name: (method, path, protocol, auth style, a valid body)
SURFACES = {
    "messages": ("POST", "/api/v1/messages", "anthropic", "anthropic",
                 {"model": HAIKU, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}),
    "codex_chat": ("POST", "/api/v1/codex/chat/completions", "openai", "openai",
                   {"model": "gpt-5.5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}),
    "codex_responses": ("POST", "/api/v1/codex/responses", "openai", "openai",
                        {"model": "gpt-5.5", "max_output_tokens": 16, "input": "hi"}),
    "gemini_native": ("POST", "/api/v1/gemini/v1beta/models/%s:generateContent" % GEM, "gemini", "gemini",
                      {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                       "generationConfig": {"maxOutputTokens": 16}}),
    "gemini_chat": ("POST", "/api/v1/gemini/v1beta/openai/chat/completions", "openai", "openai",
                    {"model": GEM, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}),
    "images": ("POST", "/api/v1/images/generations", "openai", "openai", {"model": "gpt-image-2", "prompt": "a cat"}),
}
# the field that caps output on each surface (None: the surface has none)
MAX_FIELD = {"messages": "max_tokens", "codex_chat": "max_tokens", "codex_responses": "max_output_tokens",
             "gemini_native": "generationConfig.maxOutputTokens", "gemini_chat": "max_tokens", "images": None}
GET_SURFACES = {
    "models": ("GET", "/api/v1/models", "anthropic"),
    "sdk_models": ("GET", "/api/v1/v1/models", "anthropic"),
    "codex_models": ("GET", "/api/v1/codex/models", "openai"),
    "gemini_models": ("GET", "/api/v1/gemini/v1beta/models", "gemini"),
}

_KEY = None


def setup_module():
    global _KEY
    _, _KEY = new_user("pro", 50)


def key():
    return _KEY


def strict_error(resp, status, proto, what):
    """resp has `status` and a protocol-shaped error body that is strict UTF-8 JSON."""
    body = resp.body if hasattr(resp, "body") else resp[2]
    st = resp.status if hasattr(resp, "status") else resp[0]
    eq(st, status, "%s: status (body %r)" % (what, body[:200]))
    try:
        text = body.decode("utf-8", "strict")
    except UnicodeDecodeError as e:
        raise AssertionError("%s: error body is not valid UTF-8 (%s): %r" % (what, e, body[:200])) from None
    try:
        d = json.loads(text)
    except ValueError as e:
        raise AssertionError("%s: error body is not JSON (%s): %r" % (what, e, body[:200])) from None
    if proto == "gemini" and isinstance(d, dict) and isinstance(d.get("error"), dict):
        eq(d["error"].get("code"), status, "%s: gemini error.code" % what)
    assert_error_shape(d, proto)
    return d


def server_or_gateway(resp, gateway_status, proto, what, server_statuses=(400,)):
    """Either the web server refused the request itself (one of server_statuses, its own page:
    lighttpd is stricter about request lines than Apache) or the gateway answered gateway_status
    with a protocol-shaped, strict UTF-8 JSON error."""
    st, hdrs, body = (resp.status, resp.headers, resp.body) if hasattr(resp, "status") else resp
    if st in server_statuses and st != gateway_status:
        # the web server's own answer: JSON where it serves errors/ (lighttpd on /api/, Apache)
        if (hdrs.get("content-type") or "").startswith("application/json"):
            ok(isinstance(json.loads(body).get("error"), dict), "%s: the server's JSON error: %r" % (what, body[:200]))
        return None
    if (hdrs.get("content-type") or "").startswith("application/json"):
        return strict_error((st, hdrs, body), gateway_status, proto, what)
    ok(st in server_statuses, "%s: the server answered %d (expected one of %r, or the gateway's %d)"
       % (what, st, server_statuses, gateway_status))
    return None


def post_raw(name, raw, headers=None, path=None, k=None):
    method, p, proto, style, _ = SURFACES[name]
    h = dict(auth(k or key(), style))
    h["Content-Type"] = "application/json"
    h.update(headers or {})
    return request(method, path or p, headers=h, body=raw, timeout=120)


def each_post(raw_for, status_for, msg, no_upstream=True):
    """For every POST surface: send raw_for(name) (bytes, or None to skip) and expect
    status_for(name) with a protocol-shaped error."""
    ran = 0
    for name, (_, _, proto, _, _) in SURFACES.items():
        raw = raw_for(name)
        if raw is None:
            continue
        r = post_raw(name, raw)
        strict_error(r, status_for(name) if callable(status_for) else status_for, proto, "%s: %s" % (name, msg))
        ran += 1
    ok(ran > 0, "no surface ran")
    if no_upstream:
        eq(fake_requests(), [], "%s: nothing reached the upstream" % msg)


def with_field(name, field, value):
    """The surface's valid body with field (dotted for nested) set to value (or removed when value is
    the sentinel DEL), as JSON bytes."""
    body = json.loads(json.dumps(SURFACES[name][4]))
    parts = field.split(".")
    obj = body
    for p in parts[:-1]:
        obj = obj.setdefault(p, {})
    if value is DEL:
        obj.pop(parts[-1], None)
    else:
        obj[parts[-1]] = value
    return json.dumps(body).encode()


DEL = object()


def valid(name):
    return json.dumps(SURFACES[name][4]).encode()


# --------------------------------------------------------------------------- raw HTTP


def raw_http(data, timeout=30):
    """Send raw bytes to the gateway, read the whole answer (the request asks for Connection:
    close). Returns (status, headers dict lower-case, body bytes); status 0 when the server closed
    without an answer."""
    u = urllib.parse.urlsplit(BASE)
    s = socket.create_connection((u.hostname, u.port), timeout=timeout)
    try:
        s.sendall(data)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
    finally:
        s.close()
    resp = b"".join(chunks)
    if not resp:
        return 0, {}, b""
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        hdrs[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        body = unchunk(body)
    return status, hdrs, body


def unchunk(body):
    """The data of a chunked body."""
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        n = int(size_line.split(b";")[0] or b"0", 16)
        if n == 0:
            break
        out += rest[:n]
        rest = rest[n + 2:]
    return out


def raw_request(method, target, headers=(), body=b""):
    """Build a raw HTTP/1.1 request (bytes or str parts) with Connection: close."""
    def b(x):
        return x if isinstance(x, bytes) else x.encode("latin-1")
    u = urllib.parse.urlsplit(BASE)
    out = b(method) + b" " + b(target) + b" HTTP/1.1\r\nHost: " + b(u.netloc) + b"\r\nConnection: close\r\n"
    for k, v in headers:
        out += b(k) + b": " + b(v) + b"\r\n"
    if body or method == "POST":
        out += b"Content-Length: " + str(len(body)).encode() + b"\r\n"
    return out + b"\r\n" + body


# --------------------------------------------------------------------------- body: syntax


def test_malformed_json():
    each_post(lambda n: b'{"model": "x", "messages": [', 400, "malformed JSON")


def test_truncated_json():
    each_post(lambda n: valid(n)[: len(valid(n)) // 2], 400, "truncated JSON")


def test_empty_body():
    each_post(lambda n: b"", 400, "empty body")


def test_non_object_json():
    for raw in [b"[]", b'"text"', b"42", b"null", b"true"]:
        each_post(lambda n: raw, 400, "JSON %r" % raw)


def test_trailing_garbage():
    each_post(lambda n: valid(n) + b" x", 400, "trailing data")


def test_byte_order_mark():
    each_post(lambda n: b"\xef\xbb\xbf" + valid(n), 400, "UTF-8 BOM before the JSON")


def test_invalid_utf8_in_body():
    # raw bytes that are not UTF-8 inside a JSON string: not JSON text (RFC 8259)
    each_post(lambda n: valid(n).replace(b'"hi"', b'"h\xff\xfei"').replace(b'"a cat"', b'"a \xc3("'), 400,
              "invalid UTF-8 in a string")
    each_post(lambda n: valid(n)[:-1] + b', "x\x80y": 1}', 400, "a stray continuation byte in a key")
    each_post(lambda n: valid(n)[:-1] + b', "k": "\xe2\x82"}', 400, "a truncated sequence at a string's end")
    # forms json-c accepts but RFC 3629 does not: an overlong '/' and an encoded surrogate
    each_post(lambda n: valid(n)[:-1] + b', "k": "a\xc0\xafb"}', 400, "an overlong form")
    each_post(lambda n: valid(n)[:-1] + b', "k": "a\xed\xa0\x80b"}', 400, "an encoded surrogate")
    each_post(lambda n: valid(n)[:-1] + b', "k": "\xf4\x90\x80\x80"}', 400, "a code point above U+10FFFF")


def test_deep_nesting_arrays():
    each_post(lambda n: valid(n)[:-1] + b', "deep": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "5000 nested arrays")


def test_deep_nesting_objects():
    deep = b'{"a":' * 1000 + b"1" + b"}" * 1000
    each_post(lambda n: valid(n)[:-1] + b', "deep": ' + deep + b"}", 400, "1000 nested objects")


def test_300_mb_body_is_a_json_413():
    # a body far over every limit (the programs' 32 MiB, the web server's backstop at 64 MiB): the
    # answer is 413 with a JSON body, whichever part of the stack gives it (lighttpd and Apache
    # behind mod_fcgid refuse it from its Content-Length; behind mod_proxy_fcgi the program reads
    # and drops it, then answers in the protocol's shape)
    u = urllib.parse.urlsplit(BASE)
    chunk = b"x" * (1 << 20)
    for path in ["/api/v1/messages", "/api/v1/codex/chat/completions"]:
        head = raw_request("POST", path, [("Content-Type", "application/json"), ("x-api-key", key()),
                                          ("Authorization", "Bearer " + key())])
        head = head.replace(b"Content-Length: 0\r\n", b"Content-Length: %d\r\n" % (300 << 20), 1)
        s = socket.create_connection((u.hostname, u.port), timeout=60)
        got = b""
        try:
            try:
                s.sendall(head)
                for _ in range(300):  # the whole body, unless the server stops reading it
                    s.sendall(chunk)
            except OSError:
                pass
            while True:
                try:
                    b = s.recv(65536)
                except OSError:
                    break
                if not b:
                    break
                got += b
        finally:
            s.close()
        ok(got, "%s: no answer to a 300 MB body" % path)
        head_, _, body = got.partition(b"\r\n\r\n")
        eq(int(head_.split(b" ", 2)[1]), 413, "%s: %r" % (path, got[:300]))
        ok(b"content-type: application/json" in head_.lower(), "%s: content type: %r" % (path, head_))
        if b"transfer-encoding: chunked" in head_.lower():
            body = unchunk(body)
        try:
            d = json.loads(body)
        except ValueError:
            raise AssertionError("%s: the 413 is not JSON: %r" % (path, got[:400])) from None
        ok(isinstance(d.get("error"), dict) and isinstance(d["error"].get("message"), str), "%s: %r" % (path, d))
    eq(fake_requests(), [])


def test_huge_body_413():
    pad = b"x" * (33 * 1024 * 1024)
    each_post(lambda n: valid(n)[:-1] + b', "pad": "' + pad + b'"}', 413, "33 MiB body")


def test_nesting_just_under_the_limit_is_accepted():
    # 60 levels is legal JSON the providers accept: not refused by the depth limit
    r = post_raw("messages", valid("messages")[:-1] + b', "metadata": {"deep": ' + b"[" * 60 + b"]" * 60 + b"}}")
    eq(r.status, 200, r.text)


# --------------------------------------------------------------------------- body: types


def test_model_as_number():
    each_post(lambda n: with_field(n, "model", 5), 400, "model as a number")


def test_model_as_object_or_array():
    each_post(lambda n: with_field(n, "model", {"id": HAIKU}), 400, "model as an object")
    each_post(lambda n: with_field(n, "model", [HAIKU]), 400, "model as an array")


def test_model_empty():
    each_post(lambda n: with_field(n, "model", ""), 400, "empty model")


def test_model_overlong():
    each_post(lambda n: with_field(n, "model", "m" * 300), 400, "300-byte model name")


def test_model_with_nul():
    # "claude-haiku-4-5\u0000x" must not be served as claude-haiku-4-5
    each_post(lambda n: with_field(n, "model", SURFACES[n][4].get("model", HAIKU) + "\u0000x"), 400,
              "NUL inside the model name")


def test_missing_model():
    # images default to gpt-image-2 and Gemini native names the model in the path: both are valid
    each_post(lambda n: None if n in ("images", "gemini_native") else with_field(n, "model", DEL), 400,
              "missing model")
    for n in ("images", "gemini_native"):
        r = post_raw(n, with_field(n, "model", DEL))
        eq(r.status, 200, "%s without a body model: %s" % (n, r.text[:200]))


def test_messages_as_string():
    each_post(lambda n: with_field(n, "messages", "hello"), 400, "messages as a string")


def test_contents_as_object():
    each_post(lambda n: with_field(n, "contents", {"text": "hi"}), 400, "contents as an object")


def test_stream_as_string():
    each_post(lambda n: with_field(n, "stream", "true"), 400, "stream as a string")
    each_post(lambda n: with_field(n, "stream", 1), 400, "stream as a number")


def _max(n, value):
    f = MAX_FIELD[n] or "max_tokens"
    return with_field(n, f, value)


def test_max_tokens_negative():
    each_post(lambda n: _max(n, -1), 400, "negative max tokens")


def test_max_tokens_huge():
    each_post(lambda n: _max(n, 10 ** 12), 400, "max tokens 10^12")
    each_post(lambda n: _max(n, 10 ** 30), 400, "max tokens 10^30 (over 64 bits)")


def test_max_tokens_float_and_string():
    each_post(lambda n: _max(n, 10.5), 400, "max tokens 10.5")
    each_post(lambda n: _max(n, "100"), 400, "max tokens as a string")


def test_generation_config_not_an_object():
    each_post(lambda n: with_field(n, "generationConfig", [1]), 400, "generationConfig as an array")


def test_null_fields_count_as_absent():
    # explicit nulls (as some SDKs send) are not type errors
    for n in ("messages", "codex_chat"):
        r = post_raw(n, with_field(n, "stream", None))
        eq(r.status, 200, "%s with stream null: %s" % (n, r.text[:200]))


def test_sql_metacharacters_in_model():
    evil = "x' OR '1'='1'; DROP TABLE users; -- \\ \" %_"
    each_post(lambda n: None if n == "gemini_native" else with_field(n, "model", evil), 404,
              "SQL metacharacters in the model")
    path = "/api/v1/gemini/v1beta/models/%s:generateContent" % urllib.parse.quote(evil, safe="")
    r = post_raw("gemini_native", valid("gemini_native"), path=path)
    strict_error(r, 404, "gemini", "gemini model with SQL metacharacters")
    admin("db", "status")  # the schema is intact
    ok(admin_json("user", "list", "--json"), "users still there")


# --------------------------------------------------------------------------- paths and methods


def test_unknown_paths():
    cases = [
        ("POST", "/api/v1/messagesX", "anthropic"),
        ("POST", "/api/v1/messages/nope", "anthropic"),
        ("POST", "/api/v1/codex/nope", "openai"),
        ("GET", "/api/v1/codex/chat", "openai"),
        ("POST", "/api/v1/responsesX", "openai"),
        ("GET", "/api/v1/gemini/v1beta/nope", "gemini"),
        ("POST", "/api/v1/images/nope", "openai"),
        ("GET", "/api/v2/models", "anthropic"),
        ("GET", "/api/", "anthropic"),
    ]
    for method, path, proto in cases:
        r = request(method, path, headers=auth(key(), "openai"), body=b"{}" if method == "POST" else None)
        strict_error(r, 404, proto, "%s %s" % (method, path))


def test_unknown_model_paths():
    for path, proto in [("/api/v1/models/no-such-model", "anthropic"), ("/api/v1/codex/models/no-such", "openai"),
                        ("/api/v1/gemini/v1beta/models/no-such", "gemini"),
                        ("/api/v1/models/x'%20OR%20'1'='1", "anthropic"),
                        ("/api/v1/codex/models/x%27%3B--", "openai")]:
        r = request("GET", path, headers=auth(key(), "openai"))
        strict_error(r, 404, proto, "GET %s" % path)


def test_gemini_bad_action():
    for rest in ["%s:explode" % GEM, GEM, ":generateContent", "%s:" % GEM]:
        r = post_raw("gemini_native", valid("gemini_native"), path="/api/v1/gemini/v1beta/models/" + rest)
        ok(r.status in (400, 404), "models/%s: %d" % (rest, r.status))
        strict_error(r, r.status, "gemini", "models/" + rest)
    eq(fake_requests(), [])


def test_wrong_methods():
    cases = [
        ("GET", "/api/v1/messages", "anthropic", "POST"),
        ("PUT", "/api/v1/codex/chat/completions", "openai", "POST"),
        ("DELETE", "/api/v1/images/generations", "openai", "GET, POST"),
        ("POST", "/api/v1/models", "anthropic", "GET"),
        ("PATCH", "/api/v1/gemini/v1beta/models/%s:generateContent" % GEM, "gemini", None),
        ("DELETE", "/api/v1/codex/responses", "openai", None),
    ]
    for method, path, proto, allow in cases:
        r = request(method, path, headers=auth(key(), "openai"), body=b"{}" if method in ("PUT", "PATCH") else None)
        strict_error(r, 405, proto, "%s %s" % (method, path))
        if allow:
            eq(r.headers.get("allow"), allow, "Allow header of %s %s" % (method, path))


def test_invalid_utf8_in_path():
    # error messages echo the path: they must stay valid UTF-8 JSON (bad bytes become U+FFFD)
    for target, proto in [(b"/api/v1/messages\x80\xc3(", "anthropic"), (b"/api/v1/codex/\xc3(", "openai"),
                          (b"/api/v1/gemini/v1beta/models/\xed\xa0\x80bad:generateContent", "gemini"),
                          (b"/api/v1/gemini/v1beta/models/" + GEM.encode() + b":\xf0\x9f\x98", "gemini"),
                          (b"/api/v1/models/\xe2\x82", "anthropic")]:
        gem = b"gemini" in target
        st, hdrs, body = raw_http(raw_request("POST" if gem else "GET", target,
                                              [("x-api-key", key()), ("x-goog-api-key", key())],
                                              valid("gemini_native") if gem else b""))
        ok(st in (400, 404), "%r: status %d" % (target, st))
        d = strict_error((st, hdrs, body), st, proto, "path %r" % target)
        ok("\ufffd" in d["error"]["message"], "the bad bytes show as U+FFFD: %r" % d["error"]["message"])
    # bytes lighttpd itself refuses in a request line: its own 400, never a crash
    for target in [b"/api/v1/messages\xff\xfe", b"/api/v1/models/\xc0\xaf"]:
        server_or_gateway(raw_http(raw_request("GET", target)), 404, "anthropic", "%r in the path" % target)
    eq(fake_requests(), [])


def test_percent_encoded_junk_in_path():
    for target in ["/api/v1/messages%ff%fe", "/api/v1/codex/%C3%28", "/api/v1/models/%00x", "/api/v1/models/%zz"]:
        st, hdrs, body = raw_http(raw_request("GET", target, [("x-api-key", key())]))
        ok(st in (400, 404, 405), "%s: status %d" % (target, st))
        if hdrs.get("content-type", "").startswith("application/json"):
            strict_error((st, hdrs, body), st, "openai" if "codex" in target else "anthropic", target)


def test_odd_method():
    st, _, _ = raw_http(raw_request("BREW", "/api/v1/messages", [("x-api-key", key())]))
    ok(st in (400, 405, 501), "unknown method answered %d" % st)


# --------------------------------------------------------------------------- headers and keys


def _all_surfaces_with_headers(headers, status, what, query=""):
    for name, (method, path, proto, _, body) in SURFACES.items():
        h = {"Content-Type": "application/json"}
        h.update(headers)
        r = request(method, path + query, headers=h, body=body)
        strict_error(r, status, proto, "%s: %s" % (name, what))
    for name, (method, path, proto) in GET_SURFACES.items():
        r = request(method, path + query, headers=headers)
        if name in ("models",) and status == 401 and not headers and not query:
            eq(r.status, 200, "the public catalog needs no key")
            continue
        strict_error(r, status, proto, "%s: %s" % (name, what))
    eq(fake_requests(), [], "%s: nothing reached the upstream" % what)


def test_key_wrong_prefix():
    _all_surfaces_with_headers({"x-api-key": "sk-ant-" + "a" * 43}, 401, "sk-ant- key")
    _all_surfaces_with_headers({"Authorization": "Bearer sk-proj-" + "a" * 43}, 401, "sk-proj- bearer key")


def test_key_wrong_length():
    _all_surfaces_with_headers({"x-api-key": "ck_abc"}, 401, "short key")
    _all_surfaces_with_headers({"x-api-key": "ck_" + "a" * 200}, 401, "200-character key")
    _all_surfaces_with_headers({"x-api-key": "ck_" + "a" * 6000}, 401, "6000-character key")


def test_key_bad_characters():
    _all_surfaces_with_headers({"x-api-key": "ck_" + "!" * 43}, 401, "punctuation key")
    _all_surfaces_with_headers({"x-api-key": key()[:20] + " " + key()[21:]}, 401, "space inside the key")


def test_key_sql_metacharacters():
    _all_surfaces_with_headers({"x-api-key": "ck_' OR '1'='1' -- " + "a" * 30}, 401, "SQL in the key")
    _all_surfaces_with_headers({"Authorization": "Bearer ck_\\'; DROP TABLE api_keys; --" + "a" * 20}, 401,
                               "SQL in the bearer key")
    admin("db", "status")


def test_key_unknown_but_wellformed():
    _all_surfaces_with_headers({"x-api-key": "ck_" + "Z" * 43}, 401, "unknown key")


def test_authorization_not_bearer():
    _all_surfaces_with_headers({"Authorization": "Basic " + key()}, 401, "Basic auth")
    _all_surfaces_with_headers({"Authorization": "Bearer"}, 401, "Bearer without a key")


def test_bad_key_header_wins_over_good_query_key():
    # the first source that is present decides: a bad x-api-key is not rescued by ?key=
    _all_surfaces_with_headers({"x-api-key": "ck_" + "Y" * 43}, 401, "bad header, good query",
                               query="?key=" + key())


def test_revoked_key():
    email, k = new_user("pro", 1)
    prefix = admin_json("key", "list", email, "--json")[0]["prefix"]
    admin("key", "revoke", prefix)
    _all_surfaces_with_headers({"x-api-key": k}, 401, "revoked key")


def test_nul_in_header():
    for name, value in [(b"x-api-key", key().encode()[:10] + b"\x00" + key().encode()[10:]),
                        (b"x-api\x00-key", key().encode()), (b"anthropic-version", b"2023\x00-06-01")]:
        st, hdrs, body = raw_http(raw_request("POST", "/api/v1/messages", [(name, value),
                                                                            ("content-type", "application/json")],
                                              valid("messages")))
        ok(st in (400, 401), "NUL in header %r: %d %r" % (name, st, body[:100]))
        if hdrs.get("content-type", "").startswith("application/json"):
            strict_error((st, hdrs, body), st, "anthropic", "NUL in header %r" % name)
    eq(fake_requests(), [])


def test_oversized_headers():
    st, _, _ = raw_http(raw_request("POST", "/api/v1/messages", [("x-api-key", key()), ("x-pad", "p" * 100000)],
                                    valid("messages")))
    ok(st in (400, 413, 431), "100 KB header answered %d" % st)
    st, _, _ = raw_http(raw_request("GET", "/api/v1/models", [("x-h%d" % i, "v") for i in range(2000)]))
    ok(st in (200, 400, 413, 431), "2000 headers answered %d" % st)
    eq(fake_requests(), [])


def test_query_key_multiple():
    # the first ?key= decides
    r = request("GET", "/api/v1/gemini/v1beta/models?key=ck_%s&key=%s" % ("X" * 43, key()))
    strict_error(r, 401, "gemini", "bad key first")
    r = request("GET", "/api/v1/gemini/v1beta/models?key=%s&key=ck_%s" % (key(), "X" * 43))
    eq(r.status, 200, "good key first: %s" % r.text[:200])


def test_query_key_empty_overlong_junk():
    for q in ["?key=", "?key", "?key=%20%20", "?key=" + "a" * 3000, "?key=%ZZ%2", "?key=%2g%",
              "?key=" + urllib.parse.quote(key()[:-1] + "\u00e9"), "?key[]=" + key(), "?KEY=" + key()]:
        r = request("GET", "/api/v1/gemini/v1beta/models" + q)
        strict_error(r, 401, "gemini", "query %r" % q[:40])
        r = request("POST", "/api/v1/gemini/v1beta/models/%s:generateContent%s" % (GEM, q),
                    headers={"Content-Type": "application/json"}, body=valid("gemini_native"))
        strict_error(r, 401, "gemini", "generate with query %r" % q[:40])
    # NUL or invalid UTF-8 once decoded: lighttpd refuses the URL itself (400) before any program
    for q in ["?key=%ZZ%00%ff%2", "?key=ck_%00" + "a" * 43, "?key=%ff" + key()]:
        server_or_gateway(request("GET", "/api/v1/gemini/v1beta/models" + q), 401, "gemini", "query %r" % q[:40])
    # a request line over the server's limit is refused before any program sees it
    server_or_gateway(request("GET", "/api/v1/gemini/v1beta/models?key=" + "a" * 10000), 401, "gemini",
                      "10 KB query string", (414, 431))
    eq(fake_requests(), [])


def test_query_key_is_accepted_and_not_forwarded():
    r = request("POST", "/api/v1/gemini/v1beta/models/%s:generateContent?key=%s" % (GEM, key()),
                headers={"Content-Type": "application/json"}, body=valid("gemini_native"))
    eq(r.status, 200, r.text[:200])
    rec = fake_requests(path_contains=":generateContent")[-1]
    ok(key() not in rec["query"] and key() not in json.dumps(rec["headers"]), "the client's key is not forwarded")


def test_query_key_only_on_the_gemini_surface():
    # a key in a URL ends up in logs and browser histories: only Gemini clients need ?key=
    for path, proto, body in [("/api/v1/messages", "anthropic", valid("messages")),
                              ("/api/v1/codex/chat/completions", "openai", valid("codex_chat")),
                              ("/api/v1/images/generations", "openai", valid("images"))]:
        r = request("POST", path + "?key=" + key(), headers={"Content-Type": "application/json"}, body=body)
        strict_error(r, 401, proto, "?key= on %s" % path)
    eq(fake_requests(), [])


# --------------------------------------------------------------------------- transfer


def test_chunked_body_is_accepted():
    body = valid("messages")
    chunked = b""
    for i in range(0, len(body), 7):
        part = body[i:i + 7]
        chunked += b"%x\r\n" % len(part) + part + b"\r\n"
    chunked += b"0\r\n\r\n"
    u = urllib.parse.urlsplit(BASE)
    req = (b"POST /api/v1/messages HTTP/1.1\r\nHost: " + u.netloc.encode() + b"\r\nConnection: close\r\n"
           b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\nx-api-key: " + key().encode() +
           b"\r\n\r\n" + chunked)
    st, _, body = raw_http(req)
    eq(st, 200, "chunked upload: %r" % body[:200])
    eq(json.loads(body)["type"], "message")


def test_malformed_chunked_body():
    u = urllib.parse.urlsplit(BASE)
    req = (b"POST /api/v1/messages HTTP/1.1\r\nHost: " + u.netloc.encode() + b"\r\nConnection: close\r\n"
           b"Transfer-Encoding: chunked\r\nx-api-key: " + key().encode() + b"\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n")
    st, _, _ = raw_http(req)
    ok(st in (400, 411), "malformed chunk size answered %d" % st)
    eq(fake_requests(), [])


def test_content_length_shorter_than_body():
    body = valid("messages")
    u = urllib.parse.urlsplit(BASE)
    req = (b"POST /api/v1/messages HTTP/1.1\r\nHost: " + u.netloc.encode() + b"\r\nConnection: close\r\n"
           b"Content-Type: application/json\r\nx-api-key: " + key().encode() + b"\r\nContent-Length: " +
           str(len(body) - 5).encode() + b"\r\n\r\n" + body)
    st, hdrs, rb = raw_http(req)
    strict_error((st, hdrs, rb), 400, "anthropic", "body cut by Content-Length")


# --------------------------------------------------------------------------- aftermath


CRASH_LINES = re.compile(r"child signalled: (4|5|6|7|8|11)$|exit signal (Segmentation|Aborted|Illegal|Bus|Floating)")


def test_zz_no_worker_crashed():
    logdir = log_path("")
    found = 0
    for name in sorted(os.listdir(logdir)) if os.path.isdir(logdir) else []:
        if "error" not in name:
            continue
        found += 1
        with open(os.path.join(logdir, name), errors="replace") as f:
            crashes = [ln.strip() for ln in f if CRASH_LINES.search(ln.strip())]
        eq(crashes, [], "FastCGI programs killed by a crash signal (%s)" % name)
    if not found:
        raise Skip("no web server error log under %s" % logdir)
