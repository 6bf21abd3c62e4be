"""Smoke tests: the stack is up, routing through lighttpd reaches the programs."""

from zgtest import assert_error_shape, eq, new_user, ok, request

_user = {}


def _key():
    if "key" not in _user:
        _user["email"], _user["key"] = new_user()
    return _user["key"]


def _both_auth(key):
    # models is shared by Anthropic- and OpenAI-style clients: send both forms.
    return {"x-api-key": key, "Authorization": "Bearer " + key}


def test_models_list():
    r = request("GET", "/api/v1/models", headers=_both_auth(_key()))
    eq(r.status, 200, "GET /api/v1/models status (body %r)" % r.body[:200])
    ok("json" in (r.headers.get("content-type") or ""), "content-type %r" % r.headers.get("content-type"))
    d = r.json()
    ok(isinstance(d.get("data"), list) and len(d["data"]) > 0, "data is not a non-empty list: %r" % d)


def test_models_list_v1_alias():
    r = request("GET", "/api/v1/v1/models", headers=_both_auth(_key()))
    eq(r.status, 200, "GET /api/v1/v1/models status (body %r)" % r.body[:200])
    ok(len(r.json().get("data") or []) > 0, "empty data")


def test_messages_without_key_is_401():
    body = {"model": "claude-sonnet-4-5", "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}]}
    r = request("POST", "/api/v1/messages", headers={"anthropic-version": "2023-06-01"}, body=body)
    eq(r.status, 401, "status (body %r)" % r.body[:200])
    assert_error_shape(r, "anthropic")
    eq((r.headers.get("x-should-retry") or "").lower(), "false", "x-should-retry header")


def test_unknown_api_path_is_404():
    r = request("GET", "/api/v1/nonexistent")
    eq(r.status, 404, "GET /api/v1/nonexistent (body %r)" % r.body[:200])


def test_outside_api_is_404():
    """Outside /api/ the web server serves the portal's pages; a path that is none of them is a
    readable HTML 404, never a program's JSON."""
    eq(request("GET", "/index.html").status, 200, "the portal's home page")
    for path in ("/no-such-page", "/errors/nothing.html", "/js/nothing.js"):
        r = request("GET", path)
        eq(r.status, 404, "GET %s" % path)
        ok(r.headers.get("content-type", "").startswith("text/html"), "%s: an HTML page, not %r" %
           (path, r.headers.get("content-type")))
