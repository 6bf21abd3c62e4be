"""Helpers for zenn-gateway integration tests (Python standard library only).

The stack under test is described by environment variables (./dev test sets them):

  ZG_BASE   gateway base URL, e.g. http://127.0.0.1:18080
  ZG_FAKE   fake upstream base URL, e.g. http://127.0.0.1:40123
  ZG_ADMIN  command that runs zenn-admin, shell-quoted, e.g.
            "env ZENN_CONFIG=/w/.dev/test/zenn.conf /w/build/zenn-admin"
  ZG_STATE  state directory of the test stack (logs under ZG_STATE/log)
  ZG_CONFIG the zenn.conf the stack's programs read (see config_value())
  ZG_DEV    path of ./dev (e.g. [ZG_DEV, "test-db", "stop"] for database fault tests)
  ZG_DB_SOCK the test stack's MariaDB socket

Tests are plain functions named test_* in tests/integration/test_*.py; they fail by
raising (AssertionError from the helpers below, or anything else) and skip by raising
Skip("reason").  tests/run_integration.py runs them.
"""

import http.client
import json
import os
import shlex
import signal
import socket
import subprocess
import time
import urllib.parse
import uuid

BASE = os.environ.get("ZG_BASE", "http://127.0.0.1:18080").rstrip("/")
FAKE = os.environ.get("ZG_FAKE", "").rstrip("/")
ADMIN = shlex.split(os.environ.get("ZG_ADMIN", "zenn-admin"))
STATE = os.environ.get("ZG_STATE", "")
CONFIG = os.environ.get("ZG_CONFIG", "")

DEFAULT_TIMEOUT = 30


class Skip(Exception):
    """Raise to skip the current test (reported as SKIP, counted neither way)."""


# --------------------------------------------------------------------------- HTTP


class Headers:
    """Case-insensitive view of response headers; keeps repeated headers."""

    def __init__(self, pairs):
        self._pairs = [(k, v) for k, v in pairs]

    def get(self, name, default=None):
        name = name.lower()
        for k, v in self._pairs:
            if k.lower() == name:
                return v
        return default

    def get_all(self, name):
        name = name.lower()
        return [v for k, v in self._pairs if k.lower() == name]

    def __getitem__(self, name):
        v = self.get(name)
        if v is None:
            raise KeyError(name)
        return v

    def __contains__(self, name):
        return self.get(name) is not None

    def items(self):
        return list(self._pairs)

    def __repr__(self):
        return "Headers(%r)" % (self._pairs,)


class Response:
    def __init__(self, status, reason, headers, body, elapsed):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.elapsed = elapsed  # seconds from sending the request to the end of the body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise AssertionError("response is not JSON (%s): HTTP %d %r"
                                 % (e, self.status, self.body[:300])) from None

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.body[:200])


def _url(path):
    """Absolute URL for a path on the gateway (a full http:// URL is kept as is)."""
    if path.startswith("http://") or path.startswith("https://"):
        return path
    if not path.startswith("/"):
        path = "/" + path
    return BASE + path


def _open(method, path, headers, body, timeout):
    u = urllib.parse.urlsplit(_url(path))
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    target = u.path or "/"
    if u.query:
        target += "?" + u.query
    hdrs = {}
    for k, v in (headers or {}).items():
        hdrs[k] = v
    lower = {k.lower() for k in hdrs}
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        if "content-type" not in lower:
            hdrs["Content-Type"] = "application/json"
    elif isinstance(body, str):
        body = body.encode()
    conn.request(method, target, body=body, headers=hdrs)
    return conn


def request(method, path, headers=None, body=None, timeout=DEFAULT_TIMEOUT):
    """Send one request and read the whole response.

    path: "/api/v1/models" (on ZG_BASE) or a full URL.  body: None, bytes, str, or a
    dict/list sent as JSON (Content-Type added unless given).  Returns a Response with
    .status, .headers (case-insensitive), .body (bytes), .json(), .text, .elapsed.
    """
    t0 = time.monotonic()
    conn = _open(method, path, headers, body, timeout)
    try:
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, r.reason, Headers(r.getheaders()), data,
                        time.monotonic() - t0)
    finally:
        conn.close()


class Event:
    """One server-sent event.  t: arrival (time.monotonic()) of the blank line that
    ended it; dt: seconds since the request was sent.  comment: text of a ':' line
    (only for comment events, which stream() yields when comments=True)."""

    def __init__(self, event, data, id, t, dt, comment=None):
        self.event = event
        self.data = data
        self.id = id
        self.t = t
        self.dt = dt
        self.comment = comment

    def json(self):
        try:
            return json.loads(self.data)
        except ValueError as e:
            raise AssertionError("SSE data is not JSON (%s): %r" % (e, self.data[:300])) from None

    def __repr__(self):
        if self.comment is not None:
            return "<Event comment %r at %.3fs>" % (self.comment, self.dt)
        return "<Event %s %r at %.3fs>" % (self.event, self.data[:120], self.dt)


class Stream:
    """A response read incrementally.  Iterate it for SSE events (in arrival order);
    .status and .headers are there at once; .events and .comments collect what was
    read; .raw holds every byte read.  read_all() reads the rest as plain bytes (for
    non-SSE answers such as a JSON error).  Use as a context manager or call close()."""

    def __init__(self, method, path, headers, body, timeout, comments):
        self.t0 = time.monotonic()
        self._conn = _open(method, path, headers, body, timeout)
        self._resp = self._conn.getresponse()
        self.status = self._resp.status
        self.reason = self._resp.reason
        self.headers = Headers(self._resp.getheaders())
        self.t_headers = time.monotonic() - self.t0
        self.events = []
        self.comments = []
        self.raw = b""
        self._want_comments = comments
        self._done = False

    def __iter__(self):
        event, data, eid = None, [], None
        while not self._done:
            line = self._resp.readline()
            if not line:
                self._done = True
                break
            self.raw += line
            now = time.monotonic()
            line = line.decode("utf-8", "replace").rstrip("\r\n")
            if line == "":
                if data or event is not None:
                    ev = Event(event or "message", "\n".join(data), eid, now, now - self.t0)
                    self.events.append(ev)
                    event, data = None, []
                    yield ev
                continue
            if line.startswith(":"):
                ev = Event(None, "", None, now, now - self.t0, comment=line[1:].strip())
                self.comments.append(ev)
                if self._want_comments:
                    yield ev
                continue
            field, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                eid = value
        if data or event is not None:  # stream ended without the final blank line
            now = time.monotonic()
            ev = Event(event or "message", "\n".join(data), eid, now, now - self.t0)
            self.events.append(ev)
            yield ev

    def read_all(self):
        if not self._done:
            self.raw += self._resp.read()
            self._done = True
        return self.raw

    def json(self):
        body = self.read_all()
        try:
            return json.loads(body)
        except ValueError as e:
            raise AssertionError("response is not JSON (%s): HTTP %d %r"
                                 % (e, self.status, body[:300])) from None

    @property
    def body(self):
        return self.read_all()

    def close(self):
        self._done = True
        try:
            self._conn.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def stream(method, path, headers=None, body=None, timeout=60, comments=False):
    """Send a request and return a Stream: iterate it to get SSE events as they arrive,
    each with .event, .data, .json(), .t/.dt arrival times.  comments=True also yields
    ':' comment lines (keep-alive pings) as events with .comment set."""
    return Stream(method, path, headers, body, timeout, comments)


def auth(key, proto="anthropic"):
    """Request headers that carry an API key the way a client of `proto` sends it."""
    if proto == "anthropic":
        return {"x-api-key": key, "anthropic-version": "2023-06-01"}
    if proto == "openai":
        return {"Authorization": "Bearer " + key}
    if proto == "gemini":
        return {"x-goog-api-key": key}
    raise ValueError("unknown protocol %r" % proto)


# --------------------------------------------------------------------------- admin


def _admin_run(args, timeout):
    cmd = ADMIN + [str(a) for a in args]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


def admin(*args, timeout=60):
    """Run zenn-admin ARGS; returns stdout; raises AssertionError with stderr on failure."""
    p = _admin_run(args, timeout)
    if p.returncode != 0:
        raise AssertionError("zenn-admin %s exited %d: %s%s"
                             % (" ".join(map(str, args)), p.returncode,
                                p.stderr.strip(), (" | stdout: " + p.stdout.strip()) if p.stdout.strip() else ""))
    return p.stdout


def admin_fail(*args, timeout=60):
    """Run zenn-admin ARGS expecting failure; returns (exit code, stderr).  Raises if it
    succeeded."""
    p = _admin_run(args, timeout)
    if p.returncode == 0:
        raise AssertionError("zenn-admin %s was expected to fail but succeeded: %s"
                             % (" ".join(map(str, args)), p.stdout.strip()))
    return p.returncode, p.stderr


def admin_json(*args, timeout=60):
    """admin(...) parsed as JSON (add --json yourself where the command needs it)."""
    out = admin(*args, timeout=timeout)
    try:
        return json.loads(out)
    except ValueError as e:
        raise AssertionError("zenn-admin %s printed no JSON (%s): %r"
                             % (" ".join(map(str, args)), e, out[:300])) from None


def unique_email(tag="t"):
    return "%s-%s@test.zenn.local" % (tag, uuid.uuid4().hex[:12])


def new_user(plan="pro", usd=20, email=None, key_args=()):
    """Create a user (unique email), top it up with `plan` and `usd` (plan=None: no
    top-up) and create a key.  Returns (email, key)."""
    email = email or unique_email()
    admin("user", "add", email)
    if plan is not None:
        admin("topup", email, plan, usd)
    out = admin("key", "create", email, *key_args)
    key = out.splitlines()[0].strip() if out.strip() else ""
    if not key.startswith("ck_"):
        raise AssertionError("zenn-admin key create printed %r, not a ck_ key" % out[:200])
    return email, key


# --------------------------------------------------------------------------- fake upstream


def _fake_url(path):
    if not FAKE:
        raise AssertionError("ZG_FAKE is not set: no fake upstream in this run")
    return FAKE + path


def fake_requests(path_contains=None, provider=None, body_contains=None, wait_ms=0):
    """Requests the fake upstream recorded (list of dicts: seq, method, path, query,
    provider, headers (lower-case), body, outcome), filtered by the fake itself:
    path_contains / body_contains (substrings), provider ("anthropic", "openai", ...).
    wait_ms > 0 waits up to that long for at least one matching record."""
    q = {}
    if path_contains is not None:
        q["path_contains"] = path_contains
    if provider is not None:
        q["provider"] = provider
    if body_contains is not None:
        q["body_contains"] = body_contains
    if wait_ms:
        q["wait_ms"] = int(wait_ms)
    path = "/_fake/requests" + ("?" + urllib.parse.urlencode(q) if q else "")
    r = request("GET", _fake_url(path), timeout=DEFAULT_TIMEOUT + wait_ms / 1000.0)
    eq(r.status, 200, "GET %s" % path)
    return r.json()


def fake_clear():
    """Forget the requests the fake upstream recorded."""
    r = request("DELETE", _fake_url("/_fake/requests"))
    if r.status >= 300:
        raise AssertionError("DELETE /_fake/requests answered %d: %r" % (r.status, r.body[:200]))


def fake_config(**changes):
    """Set default directives of the fake upstream (as if every request carried
    [[fake:k=v,...]]), e.g. fake_config(status=529).  Returns the resulting config.
    The runner resets it before every test."""
    r = request("POST", _fake_url("/_fake/config"), body=changes)
    eq(r.status, 200, "POST /_fake/config %r (body %r)" % (changes, r.body[:200]))
    return r.json().get("config")


def fake_config_reset():
    r = request("DELETE", _fake_url("/_fake/config"))
    if r.status >= 300:
        raise AssertionError("DELETE /_fake/config answered %d: %r" % (r.status, r.body[:200]))


def reset_between_tests():
    """Called by the runner before each test: fake upstream config and records reset."""
    if FAKE:
        fake_config_reset()
        fake_clear()


# --------------------------------------------------------------------------- assertions


def eq(actual, expected, msg=""):
    if actual != expected:
        raise AssertionError("%sexpected %r, got %r" % (msg + ": " if msg else "", expected, actual))


def ok(cond, msg="condition is false"):
    if not cond:
        raise AssertionError(msg)


def wait_until(fn, timeout=5.0, interval=0.05, msg="condition not met"):
    """Call fn() until it returns a truthy value (returned) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("%s within %.1fs" % (msg, timeout))
        time.sleep(interval)


def _is_str(v):
    return isinstance(v, str)


def assert_error_shape(resp, proto):
    """Check that resp (Response, Stream or parsed dict) is an error body of protocol
    `proto`; returns the parsed body.

      anthropic {"type":"error","error":{"type":str,"message":str}}
      openai    {"error":{"message":str,"type":str,"param":str|null,"code":str|int|null}}
      gemini    {"error":{"code":int (== HTTP status),"message":str,"status":str}}
    """
    status = getattr(resp, "status", None)
    d = resp if isinstance(resp, dict) else resp.json()
    where = "%s error body%s: %r" % (proto, " (HTTP %s)" % status if status else "", d)
    ok(isinstance(d, dict) and isinstance(d.get("error"), dict), "no error object in " + where)
    e = d["error"]
    if proto == "anthropic":
        eq(d.get("type"), "error", "top-level type in " + where)
        ok(_is_str(e.get("type")) and e["type"], "error.type missing in " + where)
        ok(_is_str(e.get("message")), "error.message missing in " + where)
    elif proto == "openai":
        ok(_is_str(e.get("message")), "error.message missing in " + where)
        ok(_is_str(e.get("type")) and e["type"], "error.type missing in " + where)
        ok("param" in e, "error.param missing in " + where)
        ok("code" in e, "error.code missing in " + where)
    elif proto == "gemini":
        ok(isinstance(e.get("code"), int), "error.code (int) missing in " + where)
        if status is not None:
            eq(e["code"], status, "error.code vs HTTP status in " + where)
        ok(_is_str(e.get("message")), "error.message missing in " + where)
        ok(_is_str(e.get("status")) and e["status"], "error.status missing in " + where)
    else:
        raise ValueError("unknown protocol %r" % proto)
    return d


def log_path(name):
    """Path of a log file of the test stack, e.g. log_path('lighttpd-error.log')."""
    if not STATE:
        raise AssertionError("ZG_STATE is not set")
    return os.path.join(STATE, "log", name)


def config_value(section, key, default=None):
    """A value from the stack's config file (ZG_CONFIG), e.g.
    int(config_value("upstream", "idle_timeout")).  Returns `default` if absent."""
    if not CONFIG:
        raise AssertionError("ZG_CONFIG is not set")
    sec = None
    with open(CONFIG, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in ";#":
                continue
            if line.startswith("[") and line.endswith("]"):
                sec = line[1:-1].strip()
                continue
            k, sep, v = line.partition("=")
            if sep and sec == section and k.strip() == key:
                return v.strip()
    return default


# --------------------------------------------------------------------------- billing modes


def billing_mode():
    """The stack's [billing] mode: "lease" (the default when the file does not say) or "strict".
    ./dev writes it per web server setup so that the matrix covers both.  (The programs get a
    clean environment, so ZENN_BILLING_MODE never reaches them from the tests' side.)"""
    return config_value("billing", "mode", None) or "lease"


def lease_mode():
    return billing_mode() == "lease"


def sql(query):
    """Run SQL on the test stack's database (ZG_DB_SOCK, database zenn); returns the
    tab-separated output without column names.  Skips the test when there is no socket."""
    sock = os.environ.get("ZG_DB_SOCK")
    if not sock:
        raise Skip("ZG_DB_SOCK is not set")
    p = subprocess.run(["mariadb", "--no-defaults", "--socket=" + sock, "-uroot", "-N", "-B", "zenn", "-e", query],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("mariadb: %s (query: %s)" % (p.stderr.strip(), query[:200]))
    return p.stdout


def sql_rows(query):
    """sql() as a list of rows, each a list of strings ("NULL" for NULL)."""
    return [line.split("\t") for line in sql(query).splitlines() if line]


def sql_int(query):
    """The single integer sql() returns (a NULL or no row: 0)."""
    out = sql(query).strip()
    return int(out) if out and out != "NULL" else 0


def user_id(email):
    uid = sql_int("SELECT id FROM users WHERE email = '%s'" % email.replace("'", "''"))
    ok(uid > 0, "no user %s" % email)
    return uid


def held_now(email):
    """(users.held, sum of the keys' held, credits in the leases table) of a user, read at once."""
    uid = user_id(email)
    row = sql_rows("SELECT (SELECT held FROM users WHERE id = %d), (SELECT COALESCE(SUM(held), 0) FROM api_keys"
                   " WHERE user_id = %d), (SELECT COALESCE(SUM(credits), 0) FROM leases WHERE user_id = %d),"
                   " (SELECT COUNT(*) FROM leases WHERE user_id = %d)" % (uid, uid, uid, uid))[0]
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def wait_released(email, timeout=5.0):
    """Before comparing a user's balance with the sum of its usage rows.

    strict mode: nothing to wait for (a settlement releases its hold in the same transaction
    that writes its usage row), so this returns at once and the caller's checks stay immediate.
    lease mode: a process that admitted the user's requests keeps a lease (held credits, a
    leases row) until it has been unused for lease_idle_ms and the settlements that consumed it
    are written; wait until the user, its keys and the leases table hold nothing (the caller
    then checks held == 0 and the exact amounts as in strict mode)."""
    if not lease_mode():
        return
    deadline = time.monotonic() + timeout
    while True:
        h = held_now(email)
        if h == (0, 0, 0, 0):
            return
        if time.monotonic() >= deadline:
            raise AssertionError("%s's leases not given back within %.1fs: users.held %d, keys' held %d, "
                                 "lease credits %d in %d lease row(s)" % ((email, timeout) + h))
        time.sleep(0.1)


def program_pids(name):
    """Pids of this stack's FastCGI program `name` (messages, codex, ...): found by their
    executable and ZENN_CONFIG, or (apache-htaccess) by being the copies in the stack's web root."""
    if not CONFIG:
        raise Skip("ZG_CONFIG is not set")
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            exe = os.readlink("/proc/%s/exe" % d)
            with open("/proc/%s/environ" % d, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        shared_host = bool(STATE) and exe.startswith(os.path.join(STATE, "htdocs", "fcgi") + "/")
        if exe.endswith("/fcgi/" + name) and (("ZENN_CONFIG=" + CONFIG).encode() in env or shared_host):
            pids.append(int(d))
    return pids


def closed_port():
    """A local TCP port nothing listens on (bound for a moment, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_status_total(pids, field):
    """Sum of a /proc/PID/status field (e.g. "Threads", "VmHWM" in KiB) over the processes."""
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def kill_programs(name):
    """SIGKILL every process of this stack's program `name`; returns their pids."""
    pids = program_pids(name)
    if not pids:
        raise AssertionError("no %s process found" % name)
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


def db_ctl(action):
    """Stop, start or restart the test stack's MariaDB (./dev test-db ACTION)."""
    dev = os.environ.get("ZG_DEV")
    if not dev:
        raise Skip("ZG_DEV is not set (run through ./dev test)")
    p = subprocess.run(["bash", dev, "test-db", action], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=120)
    if p.returncode != 0:
        raise AssertionError("./dev test-db %s failed: %s %s" % (action, p.stdout, p.stderr))


def lease_owners(email, grp=None):
    """{pid: credits} of the processes holding a lease for the user (in rate group grp, or any);
    a lease's owner is host:pid:start."""
    q = "SELECT owner, SUM(credits) FROM leases WHERE user_id = %d" % user_id(email)
    if grp:
        q += " AND grp = '%s'" % grp
    return {int(o.split(":")[1]): int(c) for o, c in sql_rows(q + " GROUP BY owner")}


def access_seen():
    """Lease mode: give the processes time to poll the access version (every 100 ms) after the
    latest access change (every top-up bumps it, so every new_user() does), so that a request made
    next is judged against the current version and not re-checked with the database at a later
    admission. Tests that assert lease behaviour right after new_user() (no pending row, exact
    held amounts, service while the database is blocked or down) call this first."""
    if lease_mode():
        time.sleep(0.35)


def processes_on_demand():
    """True behind the mod_fcgid setups: Apache starts a single-threaded process per concurrent
    request as needed, so a test cannot make every process of a program hold something (a lease)
    before it acts."""
    return os.environ.get("ZG_SERVER", "lighttpd") in ("apache-fcgid", "apache-htaccess")
