"""Browser keys for /chat and key expiry: POST /api/v1/account/chat-key mints a ck_ key valid an
hour for the signed-in session, kept out of the key manager's list and revoked when the session
ends; any key may expire (expires_in_days), and an expired key is refused like a revoked one. The
account logic does not depend on the web server: run behind lighttpd only."""

import hashlib
import os
import time

from portal import Portal
from zgtest import Skip, admin, auth, eq, ok, request, sql, sql_int, wait_until

CHAT_KEY = "/api/v1/account/chat-key"
KEYS = "/api/v1/account/keys"
BODY = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def setup_module():
    if os.environ.get("ZG_SERVER", "lighttpd") != "lighttpd":
        raise Skip("the account API's logic does not depend on the web server: tested behind lighttpd")


def customer():
    p = Portal()
    eq(p.signup().status, 201)
    admin("topup", p.email, "pro", "5")
    return p


def call_api(key):
    return request("POST", "/api/v1/messages", headers=auth(key), body=BODY).status


def test_a_browser_key_works_for_an_hour_and_is_not_listed():
    p = customer()
    r = p.call("POST", CHAT_KEY)
    eq(r.status, 201, r.text)
    k = r.json()
    key = k["key"]
    ok(key.startswith("ck_"), k)
    eq(k["expires_in"], 3600)
    ok(abs(k["expires_at"] - (time.time() + 3600)) < 60, "expires in an hour: %r" % k["expires_at"])
    eq(r.headers.get("cache-control"), "no-store")
    eq(call_api(key), 200, "it calls the API like any key")
    h = hashlib.sha256(key.encode()).hexdigest()
    row = sql("SELECT kind, name, session_hash IS NOT NULL FROM api_keys WHERE key_hash = '%s'" % h).split()
    eq(row, ["browser", "browser", "1"])
    eq(sql_int("SELECT COUNT(*) FROM sessions s JOIN api_keys k ON k.session_hash = s.token_hash"
               " WHERE k.key_hash = '%s'" % h), 1, "bound to the session that asked")
    eq(p.call("GET", KEYS).json()["keys"], [], "the key manager does not list it")
    # a browser key cannot be changed or revoked through the key manager either
    kid = sql_int("SELECT id FROM api_keys WHERE key_hash = '%s'" % h)
    eq(p.call("DELETE", "%s/%d" % (KEYS, kid)).status, 404)
    # the manager's cap on keys counts only the customer's own keys
    eq(p.new_key(name="own").status, 201)
    eq(len(p.call("GET", KEYS).json()["keys"]), 1)


def test_only_a_signed_in_browser_of_the_portal_gets_one():
    eq(Portal().call("POST", CHAT_KEY).status, 401, "no session")
    p = customer()
    eq(p.call("POST", CHAT_KEY, origin="https://evil.example").status, 403, "another site's page")
    r = request("POST", CHAT_KEY, headers=auth(p.new_key(name="k").json()["key"], "openai"))
    eq(r.status, 401, "an API key is not a session")


def test_signing_out_revokes_the_browser_key():
    p = customer()
    key = p.call("POST", CHAT_KEY).json()["key"]
    eq(call_api(key), 200)
    eq(p.call("POST", "/api/v1/account/logout").status, 204)
    wait_until(lambda: call_api(key) == 401, timeout=2.5, msg="the browser key is refused once signed out")
    h = hashlib.sha256(key.encode()).hexdigest()
    eq(sql("SELECT status FROM api_keys WHERE key_hash = '%s'" % h).strip(), "revoked")


def test_an_expired_key_is_refused_like_a_revoked_one():
    p = customer()
    r = p.new_key(name="week", expires_in_days=7)
    eq(r.status, 201, r.text)
    k = r.json()
    ok(k["expires_at"] and k["expires_at"].endswith("Z"), k)
    eq(k["status"], "active")
    eq(call_api(k["key"]), 200)
    sql("UPDATE api_keys SET expires_at = NOW(3) - INTERVAL 1 SECOND WHERE id = %d" % k["id"])
    wait_until(lambda: call_api(k["key"]) == 401, timeout=3, msg="the expired key is refused")
    r = request("POST", "/api/v1/messages", headers=auth(k["key"]), body=BODY)
    eq(r.json()["error"]["type"], "authentication_error")
    listed = p.call("GET", KEYS).json()["keys"][0]
    ok(listed["status"] in ("expired", "revoked"), "the manager says so: %r" % listed["status"])
    # a browser key past its hour: the same
    key = p.call("POST", CHAT_KEY).json()["key"]
    eq(call_api(key), 200)
    sql("UPDATE api_keys SET expires_at = NOW(3) - INTERVAL 1 SECOND WHERE key_hash = '%s'"
        % hashlib.sha256(key.encode()).hexdigest())
    wait_until(lambda: call_api(key) == 401, timeout=3, msg="the browser key is refused after its hour")


def test_expiry_input_is_checked():
    p = customer()
    for bad in (0, 3651, "7", 1.5):
        r = p.new_key(name="x", expires_in_days=bad)
        eq(r.status, 400, "expires_in_days=%r" % (bad,))
        eq(r.json()["error"]["field"], "expires_in_days")
    eq(p.new_key(name="x", expires_in_days=None).json()["expires_at"], None, "null: never")
