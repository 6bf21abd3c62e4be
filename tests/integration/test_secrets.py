"""Secrets: API keys are stored only as hashes; no key, provider key or prompt text reaches a log;
the client's key is never forwarded upstream and the provider's key is never returned; a config
file holding secrets is flagged when others can read it."""

import hashlib
import json
import os
import re
import shlex
import stat
import subprocess
import tempfile
import time
import uuid

from zgtest import (CONFIG, STATE, Skip, admin, admin_json, auth, eq, fake_requests, kill_programs, new_user, ok,
                    request, stream, wait_until)

HAIKU = "claude-haiku-4-5"
GEM = "gemini-3-flash-preview"
PROVIDER_KEY = re.compile(rb"sk-fake-[a-z]+")
FULL_KEY = re.compile(rb"ck_[A-Za-z0-9_-]{20,}")

_RUN = {}


def marker():
    """A distinctive prompt text for this run."""
    if "m" not in _RUN:
        _RUN["m"] = "ZGSECRETPROMPT%s" % uuid.uuid4().hex
    return _RUN["m"]


def dump_db():
    sock = os.environ.get("ZG_DB_SOCK")
    if not sock:
        raise Skip("ZG_DB_SOCK is not set")
    p = subprocess.run(["mariadb-dump", "--no-defaults", "--socket=" + sock, "-uroot", "--skip-extended-insert",
                        "--routines", "--triggers", "zenn"], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=120)
    eq(p.returncode, 0, "mariadb-dump: %r" % p.stderr[:300])
    ok(b"CREATE TABLE `api_keys`" in p.stdout, "the dump has the api_keys table")
    return p.stdout


def requests_with_secrets(key):
    """Traffic on every surface carrying the marker: successes, streams, upstream errors, drops,
    bad keys, keys in the query string."""
    m = marker()
    bad = "ck_" + "B" * 20 + uuid.uuid4().hex[:23]
    _RUN["bad"] = bad
    calls = [
        ("POST", "/api/v1/messages", auth(key), {"model": HAIKU, "max_tokens": 10,
                                                 "messages": [{"role": "user", "content": m}]}),
        ("POST", "/api/v1/messages", auth(key), {"model": HAIKU, "max_tokens": 10, "stream": True,
                                                 "messages": [{"role": "user", "content": m + " [[fake:drop_after=1]]"}]}),
        ("POST", "/api/v1/messages", auth(key), {"model": HAIKU, "max_tokens": 10,
                                                 "messages": [{"role": "user", "content": m + " [[fake:status=500]]"}]}),
        ("POST", "/api/v1/messages", auth(key), {"model": "deepseek-v4-flash", "max_tokens": 10,
                                                 "messages": [{"role": "user", "content": m}]}),
        ("POST", "/api/v1/messages", auth(bad), {"model": HAIKU, "messages": [{"role": "user", "content": m}]}),
        ("POST", "/api/v1/messages", auth(key), b'{"model": "' + m.encode() + b'", "messages": [}'),
        ("POST", "/api/v1/messages", auth(key), {"model": m, "max_tokens": 10, "messages": []}),
        ("POST", "/api/v1/codex/chat/completions", auth(key, "openai"),
         {"model": "gpt-5.5", "stream": True, "messages": [{"role": "user", "content": m}]}),
        ("POST", "/api/v1/codex/chat/completions", auth(bad, "openai"),
         {"model": "gpt-5.5", "messages": [{"role": "user", "content": m}]}),
        ("POST", "/api/v1/codex/responses", auth(key, "openai"), {"model": "gpt-5.5", "input": m}),
        ("POST", "/api/v1/gemini/v1beta/models/%s:generateContent?key=%s" % (GEM, key),
         {}, {"contents": [{"parts": [{"text": m}]}]}),
        ("POST", "/api/v1/gemini/v1beta/models/%s:streamGenerateContent?alt=sse&key=%s" % (GEM, bad),
         {}, {"contents": [{"parts": [{"text": m}]}]}),
        ("GET", "/api/v1/gemini/v1beta/models?key=%s" % key, {}, None),
        ("GET", "/api/v1/gemini/v1beta/models?key=%s" % bad, {}, None),
        ("POST", "/api/v1/gemini/v1beta/openai/chat/completions", auth(key, "openai"),
         {"model": GEM, "messages": [{"role": "user", "content": m}]}),
        ("POST", "/api/v1/images/generations", auth(key, "openai"), {"model": "gpt-image-2", "prompt": m}),
        # (paths are fair game for access logs: no marker in them)
        ("GET", "/api/v1/models/no-such-model", auth(key), None),
        ("GET", "/api/v1/nope", {"x-api-key": bad}, None),
    ]
    out = []
    for method, path, headers, body in calls:
        h = dict(headers)
        if body is not None:
            h["Content-Type"] = "application/json"
        if isinstance(body, dict) and body.get("stream"):
            with stream(method, path, headers=h, body=body) as s:
                raw = s.read_all()
                out.append((s.status, s.headers, raw))
        else:
            r = request(method, path, headers=h, body=body)
            out.append((r.status, r.headers, r.body))
    return out


def test_keys_only_hashed_at_rest():
    email, key = new_user("pro", 5)
    _, key2 = new_user("pro", 5)
    request("POST", "/api/v1/messages", headers=auth(key),
            body={"model": HAIKU, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
    dump = dump_db()
    for k in (key, key2):
        ok(k.encode() not in dump, "a full API key is in the database")
        ok(k[3:].encode() not in dump and k[12:].encode() not in dump, "the secret part of a key is in the database")
        ok(hashlib.sha256(k.encode()).hexdigest().encode() in dump, "the key's SHA-256 is what is stored")
    leaked = FULL_KEY.findall(dump)
    eq(leaked, [], "key-like strings in the database dump")
    prefix = admin_json("key", "list", email, "--json")[0]["prefix"]
    eq(len(prefix), 12, "only a 12-character display prefix is kept")


def test_no_secrets_or_prompts_in_logs():
    if not STATE:
        raise Skip("ZG_STATE is not set")
    _, key = new_user("pro", 20)
    requests_with_secrets(key)
    time.sleep(1.0)  # let the programs write their last lines
    m = marker().encode()
    needles = [(m, "prompt text"), (key.encode(), "the client's key"), (key[3:].encode(), "the key's secret part"),
               (_RUN["bad"].encode(), "a rejected key")]
    logdir = os.path.join(STATE, "log")
    checked = 0
    for root, _, files in os.walk(logdir):
        for name in files:
            # the fake upstream's own log is the provider's side, not the gateway's
            if name.startswith("fake-upstream"):
                continue
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                data = f.read()
            checked += 1
            for needle, what in needles:
                ok(needle not in data, "%s found in %s" % (what, path))
            ok(not PROVIDER_KEY.search(data), "a provider key found in %s" % path)
            ok(not FULL_KEY.search(data), "a key-like string found in %s: %r"
               % (path, FULL_KEY.search(data).group(0)[:16] if FULL_KEY.search(data) else b""))
    ok(checked >= 2, "the stack's logs were found (%d files)" % checked)


def test_query_key_stays_out_of_logs_when_a_worker_dies_mid_stream():
    # the web server logs the request it was serving when its program died: with ?key= in it
    if not STATE:
        raise Skip("ZG_STATE is not set")
    _, key = new_user("pro", 20)
    path = "/api/v1/gemini/v1beta/models/%s:streamGenerateContent?alt=sse&key=%s" % (GEM, key)
    s = stream("POST", path, headers={"Content-Type": "application/json"},
               body={"contents": [{"parts": [{"text": "x [[fake:events=40,interval=200]]"}]}]}, timeout=30)
    eq(s.status, 200)
    next(iter(s))
    kill_programs("gemini")
    try:
        s.read_all()
    except Exception:
        pass
    s.close()
    wait_until(lambda: request("GET", "/api/v1/gemini/v1beta/models", headers=auth(key, "gemini")).status == 200,
               timeout=30, msg="gemini served again")
    time.sleep(1.0)
    found = []
    for root, _, files in os.walk(os.path.join(STATE, "log")):
        for name in files:
            if name.startswith("fake-upstream"):
                continue
            with open(os.path.join(root, name), "rb") as f:
                data = f.read()
            if key.encode() in data or key[3:].encode() in data:
                found.append(os.path.join(root, name))
    eq(found, [], "logs holding the key")


def test_client_key_never_forwarded_provider_key_never_returned():
    _, key = new_user("pro", 20)
    answers = requests_with_secrets(key)
    recs = wait_until(lambda: (lambda rs: rs if rs and all(r["outcome"] != "in_progress" for r in rs) else None)(
        fake_requests()), timeout=15, msg="the upstream calls finished")
    ok(len(recs) >= 8, "the upstream saw the admitted calls (%d)" % len(recs))
    for r in recs:
        blob = json.dumps(r["headers"]) + r["query"] + r["path"]
        ok(key not in blob and key[3:] not in blob, "the client's key was forwarded: %r" % r["path"])
        ok(_RUN["bad"] not in blob, "a client key was forwarded")
        ok("ck_" not in blob, "a ck_ key reached the upstream: %r" % blob[:300])
        cred = r["headers"].get("x-api-key") or r["headers"].get("x-goog-api-key") or \
            r["headers"].get("authorization", "")
        ok("sk-fake-" in cred, "the upstream got the provider key: %r" % r["path"])
        ok(r["body"].find(key) < 0, "the key is not in the forwarded body")
    for status, headers, body in answers:
        ok(not PROVIDER_KEY.search(body), "a provider key in a response body (HTTP %d)" % status)
        ok(not any(PROVIDER_KEY.search(v.encode()) for _, v in headers.items()), "a provider key in a header")
        ok(key.encode() not in body, "the client's key echoed in a response (HTTP %d)" % status)


def _run_admin_with(conf_text, mode):
    d = tempfile.mkdtemp(prefix="zg-secrets-")
    path = os.path.join(d, "zenn.conf")
    with open(path, "w") as f:
        f.write(conf_text)
    os.chmod(path, mode)
    admin_bin = shlex.split(os.environ.get("ZG_ADMIN", "zenn-admin"))[-1]
    env = dict(os.environ)
    env.pop("ZENN_CONFIG", None)
    p = subprocess.run([admin_bin, "--config", path, "db", "status"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60, env=env)
    os.unlink(path)
    os.rmdir(d)
    return p


def _program_with(conf_text, mode):
    """Start a FastCGI program with the config: it loads (and judges) it before it finds that
    stdin is not its socket and exits."""
    admin_bin = shlex.split(os.environ.get("ZG_ADMIN", "zenn-admin"))[-1]
    prog = os.path.join(os.path.dirname(admin_bin), "fcgi", "models")
    if not os.path.exists(prog):
        raise Skip("no %s" % prog)
    d = tempfile.mkdtemp(prefix="zg-secrets-")
    path = os.path.join(d, "zenn.conf")
    with open(path, "w") as f:
        f.write(conf_text)
    os.chmod(path, mode)
    p = subprocess.run([prog, "--config", path], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=30)
    os.unlink(path)
    os.rmdir(d)
    return p


def test_world_readable_config_with_secrets_is_flagged():
    if not CONFIG:
        raise Skip("ZG_CONFIG is not set")
    with open(CONFIG) as f:
        text = f.read()
    ok("sk-fake-" in text, "the test config holds provider keys")
    for run in (_run_admin_with, _program_with):
        p = run(text, 0o644)
        ok("world-readable" in p.stderr, "%s: no warning for a world-readable config: %r"
           % (run.__name__, p.stderr[-300:]))
        ok("sk-fake-" not in p.stderr + p.stdout, "the warning does not print the secret")
        p = run(text, 0o600)
        ok("world-readable" not in p.stderr, "%s: warned about a private config: %r" % (run.__name__, p.stderr[-300:]))
    # a config without secrets may be readable by all
    secrets = ("api_key", "password", "secret_key", "webhook_secret")
    public = "\n".join(ln for ln in text.splitlines() if not ln.strip().startswith(secrets))
    p = _run_admin_with(public, 0o644)
    ok("world-readable" not in p.stderr, "warned about a config without secrets: %r" % p.stderr[-300:])
    # the payment processor's keys are secrets too
    ok("\nsecret_key = sk_" in text and "\nwebhook_secret = whsec_" in text, "the test config holds Stripe keys")
    for key in ("secret_key", "webhook_secret"):
        only = "\n".join(ln for ln in text.splitlines()
                         if not ln.strip().startswith(tuple(k for k in secrets if k != key)))
        p = _run_admin_with(only, 0o644)
        ok("world-readable" in p.stderr, "no warning for a world-readable config holding [stripe] %s" % key)
        ok("sk_test" not in p.stderr and "whsec_" not in p.stderr, "the warning does not print the secret")


def test_generated_configs_are_not_world_readable():
    if not CONFIG:
        raise Skip("ZG_CONFIG is not set")
    mode = stat.S_IMODE(os.stat(CONFIG).st_mode)
    # (group read is how a web server's own user gets to read it; others never)
    eq(mode & 0o007, 0, "the stack's config (with provider keys) is not readable by others: %o" % mode)
