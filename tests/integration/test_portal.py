"""The customer portal's account API (README, "Customer portal"): sign-up, sign-in and its limits,
sessions and their expiry, CSRF, the key manager end to end (a key made in the portal calls the
API, is billed, and stops at once when revoked), password change and reset, invitation-only and
closed sign-up, and bad input answered as JSON with nothing stored."""

import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time

import fcgi_client
from portal import PASSWORD, Portal, new_email
from zgtest import (ADMIN, BASE, CONFIG, admin, auth, eq, ok, request, sql, sql_int, sql_rows, wait_until)

SIGNUP = "/api/v1/account/signup"
LOGIN = "/api/v1/account/login"
KEYS = "/api/v1/account/keys"


def q(s):
    return s.replace("'", "''")


def error_of(r, status, field=None):
    eq(r.status, status, r.text[:300])
    ok(r.headers.get("content-type", "").startswith("application/json"), "JSON error: %r" % r.headers)
    e = r.json()["error"]
    ok(isinstance(e.get("type"), str) and isinstance(e.get("message"), str) and e["message"], "error shape: %r" % e)
    if field is not None:
        eq(e.get("field"), field, e)
    return e


def users_named(email):
    return sql_int("SELECT COUNT(*) FROM users WHERE email = '%s'" % q(email))


def clear_failures():
    sql("DELETE FROM login_failures")


# ---------------------------------------------------------------------------------- sign-up, sessions


def test_signup_signs_in_with_a_hashed_session():
    p = Portal()
    r = p.signup()
    eq(r.status, 201, r.text)
    d = r.json()
    eq((d["email"], d["plan"], d["credits"], d["held"], d["lots"]), (p.email, "none", 0, 0, []))
    sc = p.set_cookie
    for part in ("HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=2592000"):
        ok(part in sc, "cookie has %s: %s" % (part, sc))
    ok("Secure" not in sc, "no Secure over plain HTTP: %s" % sc)
    token = p.cookie
    ok(token and len(token) >= 43, "a long random token")
    # stored hashed: the SHA-256 of the token, never the token
    digest = hashlib.sha256(token.encode()).hexdigest()
    eq(sql_int("SELECT COUNT(*) FROM sessions WHERE token_hash = '%s'" % digest), 1)
    eq(sql_int("SELECT COUNT(*) FROM sessions WHERE token_hash = '%s'" % q(token)), 0)
    h = sql("SELECT password_hash FROM users WHERE email = '%s'" % q(p.email)).strip()
    ok(h.startswith("$y$") and PASSWORD not in h, "password stored as yescrypt: %r" % h[:10])
    eq(p.me().json()["email"], p.email)
    # the same address in other letters is the same account
    r = Portal().signup(email=p.email.upper())
    error_of(r, 409, "email")
    eq(users_named(p.email), 1)


def test_login_logout_and_a_new_session_each_time():
    p = Portal()
    p.signup()
    first = p.cookie
    other = Portal()
    r = other.login(p.email.upper())
    eq(r.status, 200, r.text)
    ok(other.cookie and other.cookie != first, "a new session id at sign-in")
    eq(other.me().status, 200)
    r = other.call("POST", "/api/v1/account/logout")
    eq(r.status, 204)
    ok("Max-Age=0" in other.set_cookie, "cookie cleared: %s" % other.set_cookie)
    # signing out one browser leaves the other signed in
    eq(p.me().status, 200)
    eq(sql_int("SELECT COUNT(*) FROM sessions WHERE token_hash = '%s'" % hashlib.sha256(first.encode()).hexdigest()),
       1)


def test_session_call_says_whether_signed_in():
    r = request("GET", "/api/v1/account/session")
    eq((r.status, r.json()), (200, {"signed_in": False}))
    p = Portal()
    p.signup()
    d = p.call("GET", "/api/v1/account/session").json()
    eq((d["signed_in"], d["account"]["email"]), (True, p.email))
    r = request("GET", "/api/v1/account/session", headers={"Cookie": "zg_session=zs_made-up"})
    eq((r.status, r.json()), (200, {"signed_in": False}))


def test_logged_out_token_no_longer_works():
    p = Portal()
    p.signup()
    token = p.cookie
    eq(p.call("POST", "/api/v1/account/logout").status, 204)
    r = request("GET", "/api/v1/account", headers={"Cookie": "zg_session=" + token})
    error_of(r, 401)


def test_wrong_password_and_unknown_email_answer_alike():
    clear_failures()
    p = Portal()
    p.signup()
    times = {"wrong": [], "unknown": []}
    bodies = set()
    for _ in range(3):
        for kind, email in (("wrong", p.email), ("unknown", new_email("nobody"))):
            t = time.monotonic()
            r = Portal().login(email, "not the password at all")
            times[kind].append(time.monotonic() - t)
            e = error_of(r, 401)
            bodies.add(e["message"])
    eq(len(bodies), 1, "one message for both: %r" % bodies)
    a, b = statistics.median(times["wrong"]), statistics.median(times["unknown"])
    ok(min(a, b) > 0.005, "both pay for a password hash (%.1f ms, %.1f ms)" % (a * 1e3, b * 1e3))
    ok(abs(a - b) < max(a, b) * 0.5 + 0.01, "about the same time: %.1f ms vs %.1f ms" % (a * 1e3, b * 1e3))
    clear_failures()


def test_sign_in_failures_are_limited_per_account_and_per_address():
    clear_failures()
    try:
        victim, bystander = Portal(), Portal()
        victim.signup()
        bystander.signup()
        for i in range(10):
            error_of(Portal().login(victim.email, "wrong password %d" % i), 401)
        # the 11th try is refused before the password is looked at, even the right one
        r = Portal().login(victim.email)
        error_of(r, 429)
        ra = int(r.headers.get("retry-after", "0"))
        ok(0 < ra <= 900, "retry-after %r" % ra)
        # every process and node agrees: the count is in MariaDB
        eq(sql_int("SELECT COUNT(*) FROM login_failures WHERE email = '%s'" % q(victim.email)), 10)
        # the same address is limited too (10 failures from 127.0.0.1): another account waits as well
        error_of(Portal().login(bystander.email), 429)
        # with the address's count gone, only the attacked account stays locked
        sql("DELETE FROM login_failures WHERE email <> '%s'" % q(victim.email))
        sql("UPDATE login_failures SET addr = '192.0.2.1'")
        eq(Portal().login(bystander.email).status, 200)
        error_of(Portal().login(victim.email), 429)
        # once the window has passed it can sign in again
        sql("UPDATE login_failures SET at = NOW(3) - INTERVAL 16 MINUTE")
        eq(Portal().login(victim.email).status, 200)
        eq(sql_int("SELECT COUNT(*) FROM login_failures WHERE email = '%s'" % q(victim.email)), 0,
           "a successful sign-in clears the account's failures")
    finally:
        clear_failures()


def test_sessions_expire_when_idle_and_after_30_days():
    p = Portal()
    p.signup()
    h = hashlib.sha256(p.cookie.encode()).hexdigest()
    sql("UPDATE sessions SET seen_at = NOW(3) - INTERVAL 6 DAY WHERE token_hash = '%s'" % h)
    eq(p.me().status, 200, "used within 7 days")
    eq(sql_int("SELECT seen_at > NOW(3) - INTERVAL 1 MINUTE FROM sessions WHERE token_hash = '%s'" % h), 1,
       "and marked seen")
    sql("UPDATE sessions SET seen_at = NOW(3) - INTERVAL 8 DAY WHERE token_hash = '%s'" % h)
    error_of(p.me(), 401)
    q2 = Portal()
    q2.signup()
    h2 = hashlib.sha256(q2.cookie.encode()).hexdigest()
    eq(sql_int("SELECT TIMESTAMPDIFF(DAY, created_at, expires_at) FROM sessions WHERE token_hash = '%s'" % h2), 30)
    sql("UPDATE sessions SET expires_at = NOW(3) - INTERVAL 1 SECOND WHERE token_hash = '%s'" % h2)
    error_of(q2.me(), 401)


def test_state_changes_need_the_portals_own_origin():
    p = Portal()
    p.signup()
    for origin, why in (("http://evil.example", "another site"), (None, "no Origin at all"),
                        (BASE.replace("http://", "https://"), "another scheme")):
        r = p.call("POST", KEYS, {"name": "x"}, origin=origin)
        error_of(r, 403)
    eq(p.call("POST", KEYS, {"name": "ok"}, origin=None, headers={"Sec-Fetch-Site": "same-origin"}).status, 201)
    eq(p.call("POST", KEYS, {"name": "ok2"}).status, 201)
    eq(sql_int("SELECT COUNT(*) FROM api_keys k JOIN users u ON u.id = k.user_id WHERE u.email = '%s'" % q(p.email)),
       2, "only the same-origin requests made keys")
    # a sign-in from another site's page is refused too (login CSRF)
    r = Portal(origin="http://evil.example").login(p.email)
    error_of(r, 403)


def test_keys_and_sessions_do_not_mix():
    p = Portal()
    p.signup()
    key = p.new_key(name="k").json()["key"]
    # the account API takes no API key ...
    for h in (auth(key), auth(key, "openai")):
        e = error_of(request("GET", "/api/v1/account", headers=h), 401)
        ok("API key" in e["message"], e)
    # ... and the API surfaces take no session cookie
    r = request("GET", "/api/v1/v1/models", headers={"Cookie": "zg_session=" + p.cookie})
    eq(r.status, 401)


# ---------------------------------------------------------------------------------- the key manager


def test_a_key_from_the_portal_calls_the_api_and_stops_when_revoked():
    p = Portal()
    p.signup()
    r = p.new_key(name="laptop", limit_usd="2.50")
    eq(r.status, 201, r.text)
    k = r.json()
    key = k["key"]
    ok(key.startswith("ck_") and k["prefix"] == key[:12], k)
    eq((k["name"], k["limit_credits"], k["status"], k["spent_credits"]), ("laptop", 2500000, "active", 0))
    # shown once: the list has the prefix, never the key, and the database has only its hash
    listed = p.call("GET", KEYS).json()["keys"]
    eq([x["prefix"] for x in listed], [k["prefix"]])
    ok(key not in json.dumps(listed), "the list never shows the key")
    eq(sql_int("SELECT COUNT(*) FROM api_keys WHERE key_hash = '%s'" % hashlib.sha256(key.encode()).hexdigest()), 1)
    admin("topup", p.email, "pro", "5")
    body = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    r = request("POST", "/api/v1/messages", headers=auth(key), body=body)
    eq(r.status, 200, r.text)
    uid = sql_int("SELECT id FROM users WHERE email = '%s'" % q(p.email))
    wait_until(lambda: sql_int("SELECT COUNT(*) FROM usage_log WHERE user_id = %d AND status = 'settled'" % uid) == 1,
               msg="the call is billed")
    me = p.me().json()
    eq(me["plan"], "pro")
    eq(me["credits"], 5000000 - sql_int("SELECT credits FROM usage_log WHERE user_id = %d" % uid))
    eq([(l["plan"], l["multiplier"], l["usd_paid"], l["credits_granted"]) for l in me["lots"]],
       [("pro", 1, "5.000000", 5000000)])
    # rename and change the limit; another customer cannot touch it
    r = p.call("PATCH", "%s/%d" % (KEYS, k["id"]), {"name": "desk", "limit_usd": None})
    eq(r.status, 200, r.text)
    eq((r.json()["name"], r.json()["limit_credits"]), ("desk", None))
    stranger = Portal()
    stranger.signup()
    error_of(stranger.call("PATCH", "%s/%d" % (KEYS, k["id"]), {"name": "mine"}), 404)
    error_of(stranger.call("DELETE", "%s/%d" % (KEYS, k["id"])), 404)
    error_of(p.call("DELETE", KEYS + "/abc"), 404)
    # revoked in the portal: the next call is refused
    r = p.call("DELETE", "%s/%d" % (KEYS, k["id"]))
    eq((r.status, r.json()["status"]), (200, "revoked"))
    wait_until(lambda: request("POST", "/api/v1/messages", headers=auth(key), body=body).status == 401, timeout=1.5,
               msg="the revoked key is refused within a second")


def test_key_input_is_checked():
    p = Portal()
    p.signup()
    error_of(p.new_key(name="x" * 101), 400, "name")
    error_of(p.new_key(name="tab\there"), 400, "name")
    error_of(p.new_key(name=5), 400, "name")
    error_of(p.new_key(limit_usd="-1"), 400, "limit_usd")
    error_of(p.new_key(limit_usd="1.0000001"), 400, "limit_usd")
    error_of(p.new_key(limit_usd=True), 400, "limit_usd")
    error_of(p.call("PATCH", KEYS + "/1", {}), 400)
    eq(p.call("GET", KEYS).json()["keys"], [], "nothing stored")


# ---------------------------------------------------------------------------------- bad input


def test_bad_bodies_are_json_errors_and_store_nothing():
    email = new_email("bad")
    raw = [
        (b"not json", 400), (b"[1,2]", 400), (b"", 400),
        (('{"email":"%s","password":"long enough password","email":"x@y.z"}' % email).encode(), 400),
        (('{"email":"%s","password":"long enough \xff password"}' % email).encode("latin-1"), 400),
        (('{"email":"%s","password":"long enough password"} trailing' % email).encode(), 400),
        (b'{"email":"' + b"a" * 70000 + b'@x.io","password":"long enough password"}', 413),
    ]
    for body, status in raw:
        r = request("POST", SIGNUP, headers={"Content-Type": "application/json", "Origin": BASE}, body=body)
        error_of(r, status)
    cases = [
        ({"email": "no-at-sign", "password": PASSWORD}, "email"),
        ({"email": "a@b", "password": PASSWORD}, "email"),
        ({"email": ("x" * 250) + "@example.com", "password": PASSWORD}, "email"),
        ({"email": "ctl\u0001@example.com", "password": PASSWORD}, "email"),
        ({"email": 42, "password": PASSWORD}, "email"),
        ({"email": email, "password": "9 chars!!"}, "password"),
        ({"email": email, "password": "x" * 1025}, "password"),
        ({"email": email, "password": "ten chars\u0000 and a NUL"}, "password"),
        ({"email": email, "password": 1234567890}, "password"),
        ({"email": email}, "password"),
    ]
    for body, field in cases:
        error_of(Portal().call("POST", SIGNUP, body), 400, field)
    eq(users_named(email), 0, "nothing stored")
    # the longest password accepted is 1,024 bytes
    p = Portal()
    eq(p.signup(email=email, password="é" * 512).status, 201)
    eq(Portal().login(email, "é" * 512).status, 200)


def test_secrets_stay_out_of_the_logs():
    p = Portal()
    secret_pw = "a very secret password %s" % new_email()
    p.signup(password=secret_pw)
    key = p.new_key(name="k").json()["key"]
    Portal().login(p.email, secret_pw + "-wrong")
    state = os.environ.get("ZG_STATE", "")
    found = []
    for root, _, files in os.walk(os.path.join(state, "log")):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                data = fh.read()
            for s in (secret_pw, key, p.cookie):
                if s.encode() in data:
                    found.append((f, s[:8]))
    eq(found, [], "no password, key or session token in any log")


# ---------------------------------------------------------------------------------- passwords


def test_password_change_ends_every_session():
    p = Portal()
    p.signup()
    other = Portal()
    eq(other.login(p.email).status, 200)
    error_of(p.call("POST", "/api/v1/account/password", {"current": "wrong one!!", "new": "a new password 123"}),
             400, "current")
    error_of(p.call("POST", "/api/v1/account/password", {"current": PASSWORD, "new": "short"}), 400, "new")
    before = p.cookie
    r = p.call("POST", "/api/v1/account/password", {"current": PASSWORD, "new": "a new password 123"})
    eq(r.status, 200, r.text)
    ok(p.cookie != before, "this browser gets a new session")
    eq(p.me().status, 200)
    error_of(other.me(), 401)
    error_of(Portal().login(p.email), 401)
    eq(Portal().login(p.email, "a new password 123").status, 200)
    clear_failures()


def test_reset_link_from_the_operator():
    p = Portal()
    p.signup()
    out = admin("user", "reset-password", p.email)
    link = [w for w in out.split() if "/reset?token=" in w]
    ok(link, "a link is printed: %r" % out)
    token = link[0].split("token=", 1)[1]
    eq(sql_int("SELECT COUNT(*) FROM password_resets WHERE token_hash = '%s'" %
               hashlib.sha256(token.encode()).hexdigest()), 1, "stored hashed")
    other = Portal()
    other.login(p.email)
    error_of(Portal().call("POST", "/api/v1/account/reset", {"token": token + "x", "password": "brand new pass"}),
             400, "token")
    b = Portal()
    r = b.call("POST", "/api/v1/account/reset", {"token": token, "password": "brand new pass"})
    eq(r.status, 200, r.text)
    eq(b.me().json()["email"], p.email)
    error_of(other.me(), 401)
    error_of(Portal().call("POST", "/api/v1/account/reset", {"token": token, "password": "another new one"}),
             400, "token")
    eq(Portal().login(p.email, "brand new pass").status, 200)
    sql("UPDATE password_resets SET expires_at = NOW(3) - INTERVAL 1 SECOND")
    out = admin("user", "reset-password", p.email)
    token2 = [w for w in out.split() if "/reset?token=" in w][0].split("token=", 1)[1]
    sql("UPDATE password_resets SET expires_at = NOW(3) - INTERVAL 1 SECOND")
    error_of(Portal().call("POST", "/api/v1/account/reset", {"token": token2, "password": "brand new pass 2"}),
             400, "token")


# ---------------------------------------------------------------------------------- sign-up modes


class AccountProgram:
    """The account program on its own socket with [portal] signup set to mode."""

    def __init__(self, mode):
        build = os.path.dirname(ADMIN[-1])  # the build directory holds zenn-admin and fcgi/
        self.dir = tempfile.mkdtemp(prefix="zg-portal-")
        conf = os.path.join(self.dir, "zenn.conf")
        with open(CONFIG) as f:
            text = f.read()
        if re.search(r"(?m)^signup\s*=", text):
            text = re.sub(r"(?m)^signup\s*=.*$", "signup = " + mode, text)
        else:
            text += "\n[portal]\nsignup = %s\n" % mode
        with open(conf, "w") as f:
            f.write(text)
        os.chmod(conf, 0o600)
        self.sock = os.path.join(self.dir, "account.sock")
        self.proc = subprocess.Popen([os.path.join(build, "fcgi", "account"), "--config", conf, "--listen", self.sock,
                                      "--threads", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: os.path.exists(self.sock), timeout=10, msg="the account program listens")

    def signup(self, body):
        st, _, data = fcgi_client.request(self.sock, "POST", SIGNUP, {"Content-Type": "application/json"},
                                          json.dumps(body).encode())
        return st, json.loads(data or b"null")

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def test_invitation_only_and_closed_signup():
    prog = AccountProgram("invite")
    try:
        email = new_email("inv")
        st, d = prog.signup({"email": email, "password": PASSWORD})
        eq((st, d["error"]["field"]), (400, "invite"))
        st, d = prog.signup({"email": email, "password": PASSWORD, "invite": "zi_made-up"})
        eq((st, d["error"]["field"]), (400, "invite"))
        code = admin("invite", "create").split()[0]
        ok(code.startswith("zi_"), code)
        st, d = prog.signup({"email": email, "password": PASSWORD, "invite": code})
        eq(st, 201, d)
        uid = sql_int("SELECT id FROM users WHERE email = '%s'" % q(email))
        eq(sql_rows("SELECT used_by FROM invites WHERE code_hash = '%s'" % hashlib.sha256(code.encode()).hexdigest()),
           [[str(uid)]])
        st, d = prog.signup({"email": new_email("inv"), "password": PASSWORD, "invite": code})
        eq((st, d["error"]["field"]), (400, "invite"), "an invitation is used once")
        # a refused sign-up does not use up the invitation
        code2 = admin("invite", "create").split()[0]
        st, d = prog.signup({"email": email, "password": PASSWORD, "invite": code2})
        eq(st, 409)
        st, d = prog.signup({"email": new_email("inv"), "password": PASSWORD, "invite": code2})
        eq(st, 201, d)
    finally:
        prog.close()
    prog = AccountProgram("closed")
    try:
        email = new_email("closed")
        st, d = prog.signup({"email": email, "password": PASSWORD})
        eq(st, 403)
        eq(users_named(email), 0)
    finally:
        prog.close()
