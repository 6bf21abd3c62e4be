"""Foundation: auth in every header form and protocol shape, the model lists, 404/405, zenn-admin."""

import json

from zgtest import (admin, admin_fail, admin_json, assert_error_shape, auth, eq, fake_requests,
                    new_user, ok, request, unique_email)

BAD_KEYS = [
    ("missing", None),
    ("wrong prefix", "sk_" + "a" * 43),
    ("too short", "ck_abc"),
    ("bad characters", "ck_" + "a" * 20 + "'; DROP TABLE users; --" + "a" * 10),
    ("unknown", "ck_" + "Z" * 43),
]

# (method, path, protocol, body) for one endpoint of each surface
SURFACES = [
    ("POST", "/api/v1/messages", "anthropic",
     {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
    ("POST", "/api/v1/v1/messages?beta=true", "anthropic",
     {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
    ("POST", "/api/v1/codex/chat/completions", "openai",
     {"model": "gpt-5.5", "messages": [{"role": "user", "content": "hi"}]}),
    ("POST", "/api/v1/codex/responses", "openai", {"model": "gpt-5.5", "input": "hi"}),
    ("POST", "/api/v1/gemini/v1beta/models/gemini-3-flash-preview:generateContent", "gemini",
     {"contents": [{"parts": [{"text": "hi"}]}]}),
    ("POST", "/api/v1/gemini/chat/completions", "openai",
     {"model": "gemini-3-flash-preview", "messages": [{"role": "user", "content": "hi"}]}),
    ("POST", "/api/v1/images/generations", "openai", {"model": "gpt-image-2", "prompt": "apple"}),
    ("GET", "/api/v1/v1/models", "anthropic", None),
    ("GET", "/api/v1/codex/models", "openai", None),
    ("GET", "/api/v1/gemini/v1beta/models", "gemini", None),
]


def headers_for(proto, key):
    if key is None:
        return {}
    return auth(key, proto)


def test_401_every_variant_every_surface():
    seen = 0
    for method, path, proto, body in SURFACES:
        for what, key in BAD_KEYS:
            r = request(method, path, headers=headers_for(proto, key), body=body)
            eq(r.status, 401, "%s %s with %s key" % (method, path, what))
            assert_error_shape(r, proto)
            eq(r.headers.get("x-should-retry"), "false", "x-should-retry on 401 %s %s" % (path, what))
            ok(r.headers.get("request-id", "").startswith("req_"), "request-id header on 401")
            seen += 1
    eq(seen, len(SURFACES) * len(BAD_KEYS))
    eq(fake_requests(), [], "no 401 request reached an upstream")


def test_401_shapes_are_exact():
    r = request("POST", "/api/v1/messages", body={"model": "x"})
    eq(r.json()["error"]["type"], "authentication_error")
    r = request("POST", "/api/v1/codex/chat/completions", body={"model": "x"})
    eq(r.json()["error"]["code"], "invalid_api_key")
    r = request("POST", "/api/v1/gemini/v1beta/models/x:generateContent", body={})
    eq(r.json()["error"]["status"], "UNAUTHENTICATED")
    eq(r.json()["error"]["code"], 401)


def test_authorization_not_bearer_is_rejected():
    _, key = new_user()
    r = request("GET", "/api/v1/v1/models", headers={"Authorization": "Basic " + key})
    eq(r.status, 401)
    assert_error_shape(r, "anthropic")


def test_each_key_header_is_accepted():
    _, key = new_user()
    forms = [
        {"x-api-key": key},
        {"Authorization": "Bearer " + key},
        {"authorization": "bearer " + key},
        {"anthropic-api-key": key},
        {"x-goog-api-key": key},
    ]
    for h in forms:
        r = request("GET", "/api/v1/v1/models", headers=h)
        eq(r.status, 200, "GET /v1/models with %s" % list(h))
    r = request("GET", "/api/v1/gemini/v1beta/models?key=" + key)
    eq(r.status, 200, "Gemini ?key=")
    r = request("GET", "/api/v1/gemini/v1beta/models?key=ck_" + "x" * 43)
    eq(r.status, 401, "Gemini ?key= with an unknown key")
    assert_error_shape(r, "gemini")


def test_key_precedence_x_api_key_first():
    _, key = new_user()
    # a valid x-api-key wins over a junk bearer token, and the reverse fails
    r = request("GET", "/api/v1/v1/models", headers={"x-api-key": key, "Authorization": "Bearer junk"})
    eq(r.status, 200)
    r = request("GET", "/api/v1/v1/models", headers={"x-api-key": "junk", "Authorization": "Bearer " + key})
    eq(r.status, 401)


def test_revoked_key_is_401():
    email, key = new_user()
    eq(request("GET", "/api/v1/v1/models", headers={"x-api-key": key}).status, 200)
    admin("key", "revoke", key[:12])
    r = request("GET", "/api/v1/v1/models", headers={"x-api-key": key})
    eq(r.status, 401)
    assert_error_shape(r, "anthropic")
    eq(r.headers.get("x-should-retry"), "false")
    code, _ = admin_fail("key", "revoke", "ck_nosuchkey")
    ok(code != 0)


def model_ids(d):
    return [m["id"] for m in d["data"]]


def test_models_unified_list():
    r = request("GET", "/api/v1/models")
    eq(r.status, 200)
    d = r.json()
    eq(d.get("object"), "list")
    eq(d.get("has_more"), False)
    ids = model_ids(d)
    for want in ["claude-opus-4-7", "claude-sonnet-4-6", "gpt-5.5", "gemini-3-flash-preview", "deepseek-v4-flash",
                 "kimi-k2.6", "glm-5.1", "gpt-image-2", "nano-banana", "veo-3.1", "fish-audio-tts"]:
        ok(want in ids, "%s in /api/v1/models" % want)
    for m in d["data"]:
        for field in ["id", "object", "type", "display_name", "created", "created_at", "owned_by", "status",
                      "pricing", "min_plan"]:
            ok(field in m, "%s has %s" % (m.get("id"), field))
        eq(m["object"], "model")
        eq(m["type"], "model")
    by = {m["id"]: m for m in d["data"]}
    eq(by["claude-opus-4-7"]["min_plan"], "max")
    eq(by["gpt-5.5-pro"]["min_plan"], "max")
    eq(by["claude-sonnet-4-6"]["pricing"]["input"], 3000000)
    eq(by["claude-sonnet-4-6"]["pricing"]["cache_write_1h"], 6000000)
    eq(by["deepseek-v4-flash"]["pricing"]["cache_read"], 2800)
    eq(by["gpt-image-2"]["pricing"]["per_image"], 60000)
    eq(by["nano-banana"]["status"], "coming_soon")
    eq(by["gpt-5.5"]["status"], "live")
    eq(d["first_id"], ids[0])
    eq(d["last_id"], ids[-1])


def test_models_sdk_path_needs_key_and_matches():
    r = request("GET", "/api/v1/v1/models")
    eq(r.status, 401)
    _, key = new_user()
    r = request("GET", "/api/v1/v1/models", headers=auth(key))
    eq(r.status, 200)
    eq(model_ids(r.json()), model_ids(request("GET", "/api/v1/models").json()))


def test_models_one_and_alias():
    r = request("GET", "/api/v1/models/claude-haiku-4-5-20251001")
    eq(r.status, 200)
    eq(r.json()["id"], "claude-haiku-4-5", "dated snapshot id resolves to the catalog id")
    r = request("GET", "/api/v1/models/no-such-model")
    eq(r.status, 404)
    d = assert_error_shape(r, "anthropic")
    ok("/api/v1/models" in d["error"]["message"], "404 says how to list models")


def test_codex_models_openai_list():
    _, key = new_user()
    r = request("GET", "/api/v1/codex/models")
    eq(r.status, 401)
    assert_error_shape(r, "openai")
    r = request("GET", "/api/v1/codex/models", headers=auth(key, "openai"))
    eq(r.status, 200)
    ids = model_ids(r.json())
    for want in ["gpt-5.5", "gpt-5.3-codex", "deepseek-v4-pro", "kimi-k2.6", "glm-5.1"]:
        ok(want in ids, want)
    for unwanted in ["claude-opus-4-7", "gemini-3-flash-preview", "gpt-image-2"]:
        ok(unwanted not in ids, "%s not on the codex list" % unwanted)
    for m in r.json()["data"]:
        eq(m["object"], "model")
        ok(isinstance(m["created"], int) and m["owned_by"], "OpenAI model fields")


def test_gemini_models_native_list():
    _, key = new_user()
    for base in ["/api/v1/gemini/v1beta/models", "/api/v1/gemini/v1/models"]:
        r = request("GET", base, headers=auth(key, "gemini"))
        eq(r.status, 200, base)
        names = [m["name"] for m in r.json()["models"]]
        ok("models/gemini-3-flash-preview" in names, "gemini-3-flash-preview in " + base)
        ok(all(n.startswith("models/gemini") for n in names), "only Gemini models: %r" % names)
        for m in r.json()["models"]:
            ok("generateContent" in m["supportedGenerationMethods"], "supportedGenerationMethods")
    r = request("GET", "/api/v1/gemini/v1beta/models/gemini-3-flash-preview", headers=auth(key, "gemini"))
    eq(r.status, 200)
    eq(r.json()["name"], "models/gemini-3-flash-preview")
    r = request("GET", "/api/v1/gemini/v1beta/models/gpt-5.5", headers=auth(key, "gemini"))
    eq(r.status, 404)
    assert_error_shape(r, "gemini")
    r = request("GET", "/api/v1/gemini/v1beta/openai/models", headers=auth(key, "openai"))
    eq(r.status, 200)
    ok("gemini-3-flash-preview" in model_ids(r.json()), "OpenAI-compatible Gemini list")


def test_images_list_public():
    r = request("GET", "/api/v1/images/generations")
    eq(r.status, 200)
    ids = model_ids(r.json())
    ok("gpt-image-2" in ids and "veo-3.1" in ids and "fish-audio-tts" in ids, "image/video/audio models listed")
    ok("claude-opus-4-7" not in ids, "no chat models on the images list")


def test_404_and_405_in_protocol_shape():
    _, key = new_user()
    cases = [
        ("GET", "/api/v1/messages", 405, "anthropic"),
        ("POST", "/api/v1/messagesX", 404, "anthropic"),
        ("POST", "/api/v1/messages/nope", 404, "anthropic"),
        ("GET", "/api/v1/nonexistent", 404, "anthropic"),
        ("POST", "/api/v1/codex/nope", 404, "openai"),
        ("DELETE", "/api/v1/codex/chat/completions", 405, "openai"),
        ("GET", "/api/v1/gemini/nope", 404, "gemini"),
        ("PUT", "/api/v1/images/generations", 405, "openai"),
        ("POST", "/api/v1/models", 405, "anthropic"),
    ]
    for method, path, status, proto in cases:
        r = request(method, path, headers=auth(key, proto), body=b"{}" if method != "GET" else None)
        eq(r.status, status, "%s %s" % (method, path))
        assert_error_shape(r, proto)
        if status == 405:
            ok(r.headers.get("allow"), "Allow header on 405 %s" % path)


def test_codex_websocket_probe_gets_426():
    r = request("GET", "/api/v1/codex/responses", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    eq(r.status, 426)
    assert_error_shape(r, "openai")


def test_admin_plans_multiply_credits():
    for plan, mult in [("pro", 1), ("max", 4), ("enterprise", 6)]:
        email = unique_email(plan)
        admin("user", "add", email)
        admin("topup", email, plan, "10")
        b = admin_json("balance", email, "--json")
        eq(b["credits"], 10 * 1000000 * mult, "%s top-up of $10" % plan)
        eq(b["plan"], plan)


def test_admin_lots_and_plan():
    email = unique_email("lots")
    admin("user", "add", email)
    eq(admin_json("balance", email, "--json")["plan"], "none")
    admin("topup", email, "max", "1")
    admin("topup", email, "pro", "10")
    b = admin_json("balance", email, "--json")
    eq(b["credits"], 4000000 + 10000000)
    eq(b["plan"], "max", "highest plan among lots with credits")


def test_admin_rejects_bad_input():
    email = unique_email("bad")
    admin("user", "add", email)
    admin_fail("user", "add", email)
    admin_fail("topup", email, "gold", "10")
    for usd in ["-5", "1e3", "abc", "1.1234567", "0"]:
        admin_fail("topup", email, "pro", usd)
    admin_fail("topup", "nobody@nowhere.invalid", "pro", "10")
    admin_fail("key", "create", "nobody@nowhere.invalid")
    admin_fail("key", "limit", "ck_nosuchkey", "5")
    admin_fail("balance", "nobody@nowhere.invalid")
    admin_fail("no-such-verb")


def test_admin_key_lifecycle():
    email, key = new_user(key_args=("--name", "ci", "--limit-usd", "5"))
    keys = admin_json("key", "list", email, "--json")
    eq(len(keys), 1)
    k = keys[0]
    eq(k["prefix"], key[:12])
    eq(k["name"], "ci")
    ok("hash" not in json.dumps(k) and key not in json.dumps(k), "key list never shows the key or its hash")
    admin("key", "limit", key[:12], "none")
    admin("key", "limit", key[:12], "2.5")
    admin("key", "revoke", key[:12])
    eq(admin_json("key", "list", email, "--json")[0]["status"], "revoked")
