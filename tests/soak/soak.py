"""Mixed-load soak of a running zenn-gateway test stack (see tests/soak/run)."""

import argparse
import collections
import json
import os
import random
import re
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from zgtest import CONFIG, STATE, admin, admin_json, auth, new_user, request, stream  # noqa: E402

HAIKU = "claude-haiku-4-5"
GEM = "gemini-3-flash-preview"
USD = 50
START = USD * 1000000
PER_USER = 250


def body_for(surface, directive, stream_):
    t = "soak [[fake:%s]]" % directive if directive else "soak"
    if surface == "messages":
        b = {"model": HAIKU, "max_tokens": 64, "messages": [{"role": "user", "content": t}]}
        path, style = "/api/v1/messages", "anthropic"
    elif surface == "codex_chat":
        b = {"model": "gpt-5.5", "max_tokens": 64, "messages": [{"role": "user", "content": t}]}
        path, style = "/api/v1/codex/chat/completions", "openai"
    elif surface == "codex_responses":
        b = {"model": "gpt-5.5", "max_output_tokens": 64, "input": t}
        path, style = "/api/v1/codex/responses", "openai"
    elif surface == "gemini_chat":
        b = {"model": GEM, "max_tokens": 64, "messages": [{"role": "user", "content": t}]}
        path, style = "/api/v1/gemini/v1beta/openai/chat/completions", "openai"
    elif surface == "gemini_native":
        b = {"contents": [{"parts": [{"text": t}]}]}
        path = "/api/v1/gemini/v1beta/models/%s:%s" % (GEM, "streamGenerateContent?alt=sse" if stream_
                                                      else "generateContent")
        style = "gemini"
        return path, style, b
    else:
        b = {"model": "gpt-image-2", "prompt": t}
        return "/api/v1/images/generations", "openai", b
    if stream_:
        b["stream"] = True
    return path, style, b


SURFACES = ["messages", "codex_chat", "codex_responses", "gemini_chat", "gemini_native"]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.count = collections.Counter()
        self.unexpected = collections.Counter()
        self.examples = []

    def add(self, scenario, outcome, expected):
        with self.lock:
            self.count[scenario] += 1
            if outcome not in expected:
                self.unexpected["%s -> %s" % (scenario, outcome)] += 1
                if len(self.examples) < 10:
                    self.examples.append("%s -> %s" % (scenario, outcome))


def scenario(rng, key):
    """Run one random request; returns (name, outcome, expected outcomes)."""
    surface = rng.choice(SURFACES)
    roll = rng.random()
    if roll < 0.25:
        path, style, b = body_for(surface, "input=%d,output=%d" % (rng.randint(5, 500), rng.randint(1, 200)), False)
        return "ok/" + surface, request("POST", path, headers=auth(key, style), body=b).status, {200}
    if roll < 0.50:
        path, style, b = body_for(surface, "events=%d,interval=%d" % (rng.randint(1, 8), rng.randint(0, 60)), True)
        with stream("POST", path, headers=auth(key, style), body=b, timeout=60) as s:
            n = len(list(s))
            return "stream/" + surface, s.status if n else "empty", {200}
    if roll < 0.58:
        st = rng.choice([429, 500, 529, 503])
        path, style, b = body_for(surface, "status=%d" % st, rng.random() < 0.5)
        return "upstream_%d" % st, request("POST", path, headers=auth(key, style), body=b).status, {st}
    if roll < 0.66:
        path, style, b = body_for(surface, "events=6,drop_after=%d" % rng.randint(0, 4), True)
        with stream("POST", path, headers=auth(key, style), body=b, timeout=60) as s:
            list(s)
            return "drop_stream", s.status, {200, 502}  # 502: dropped before the first byte
    if roll < 0.72:
        path, style, b = body_for(surface, "drop_after=1", False)
        return "drop_json", request("POST", path, headers=auth(key, style), body=b).status, {502}
    if roll < 0.80:
        path, style, b = body_for(surface, "events=50,interval=50", True)
        s = stream("POST", path, headers=auth(key, style), body=b, timeout=60)
        it = iter(s)
        for _ in range(rng.randint(1, 4)):
            next(it, None)
        s.close()
        return "client_leaves_mid_stream", s.status, {200}
    if roll < 0.84:
        path, style, b = body_for(surface, "delay=1500", rng.random() < 0.5)
        try:
            request("POST", path, headers=auth(key, style), body=b, timeout=0.3)
            return "client_leaves_early", "answered", {"answered", "left"}
        except OSError:
            return "client_leaves_early", "left", {"answered", "left"}
    if roll < 0.86:
        path, style, b = body_for(surface, "delay=6000", False)
        return "stall", request("POST", path, headers=auth(key, style), body=b).status, {504}
    if roll < 0.90:
        path, style, b = body_for("images", "images=%d" % rng.randint(1, 3), False)
        return "images", request("POST", path, headers=auth(key, style), body=b).status, {200}
    if roll < 0.95:
        path, style, b = body_for(surface, "", False)
        bad = rng.choice([b'{"model": ', b"[1]", json.dumps(dict(b, stream="yes")).encode(), b"\xff\xfe"])
        h = dict(auth(key, style))
        h["Content-Type"] = "application/json"
        return "bad_body", request("POST", path, headers=h, body=bad).status, {400}
    if roll < 0.98:
        path, style, b = body_for(surface, "", False)
        return "bad_key", request("POST", path, headers=auth("ck_" + "Q" * 43, style), body=b).status, {401}
    return "models", request("GET", rng.choice(["/api/v1/models", "/api/v1/codex/models"]),
                             headers=auth(key, "openai")).status, {200}


def program_pids():
    pids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            exe = os.readlink("/proc/%s/exe" % d)
            with open("/proc/%s/environ" % d, "rb") as f:
                env = f.read()
        except OSError:
            continue
        if "/fcgi/" in exe and ("ZENN_CONFIG=" + CONFIG).encode() in env:
            pids[int(d)] = exe.rsplit("/", 1)[1]
    return pids


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=12)
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else int(time.time())
    print("soak: %.1f minute(s), %d threads, seed %d" % (a.minutes, a.threads, seed), flush=True)
    # each thread moves to a fresh user every PER_USER requests, staying far below the per-user
    # hourly rate limits (1000 per group by default) however long the soak runs
    users = []
    users_lock = threading.Lock()

    def fresh_user():
        u = new_user("pro", USD)
        with users_lock:
            users.append(u)
        return u

    stats = Stats()
    deadline = time.monotonic() + a.minutes * 60
    errors = collections.Counter()

    def worker(i):
        rng = random.Random(seed * 1000 + i)
        email, key = fresh_user()
        n = 0
        while time.monotonic() < deadline:
            n += 1
            if n % PER_USER == 0:
                email, key = fresh_user()
            try:
                name, outcome, expected = scenario(rng, key)
                stats.add(name, outcome, expected)
            except Exception as e:  # noqa: BLE001
                with stats.lock:
                    errors[type(e).__name__] += 1
                    if len(stats.examples) < 10:
                        stats.examples.append("exception %r" % e)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(a.threads)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    # RSS: a baseline once the load has warmed the workers up, then samples to the end
    warm = min(30.0, a.minutes * 60 / 4)
    time.sleep(warm)
    base = {p: (n, rss_kb(p)) for p, n in program_pids().items()}
    samples = []
    while time.monotonic() < deadline:
        time.sleep(min(10, max(0.1, deadline - time.monotonic())))
        total = sum(filter(None, (rss_kb(p) for p in base)))
        samples.append(total)
        done = sum(stats.count.values())
        print("  t=%4.0fs requests=%d workers RSS=%.1f MiB unexpected=%d exceptions=%d" % (
            time.monotonic() - t0, done, total / 1024.0, sum(stats.unexpected.values()), sum(errors.values())),
            flush=True)
    for t in threads:
        t.join(timeout=90)
    elapsed = time.monotonic() - t0
    end = {p: rss_kb(p) for p in base}

    # billing invariant, once every request has settled
    print("soak: waiting for settlements", flush=True)
    bad_ledger = []
    n_rows = 0
    for email, _ in list(users):
        for _ in range(120):
            rows = admin_json("usage", email, "--json", "--limit", "1000000")
            if all(r["status"] != "pending" for r in rows):
                break
            time.sleep(0.5)
        n_rows += len(rows)
        total = sum(r["credits"] for r in rows)
        b = admin_json("balance", email, "--json")
        pending = sum(1 for r in rows if r["status"] == "pending")
        ids = [r["request_id"] for r in rows]
        if b["credits"] != START - total or b["held"] != 0 or pending or len(set(ids)) != len(ids):
            bad_ledger.append("%s: balance %d, expected %d, held %d, pending %d, rows %d (%d unique)" % (
                email, b["credits"], START - total, b["held"], pending, len(ids), len(set(ids))))

    crashes = []
    logdir = os.path.join(STATE, "log")
    for name in os.listdir(logdir) if os.path.isdir(logdir) else []:
        if "error" in name:
            with open(os.path.join(logdir, name), errors="replace") as f:
                crashes += [ln.strip() for ln in f if re.search(r"child signalled: (4|5|6|7|8|11)$", ln.strip())]

    done = sum(stats.count.values())
    print()
    print("soak report")
    print("  duration          %.0f s, %d requests (%.1f/s), %d usage rows" % (elapsed, done, done / elapsed, n_rows))
    for k, v in sorted(stats.count.items()):
        print("    %-34s %d" % (k, v))
    print("  unexpected answers %d %s" % (sum(stats.unexpected.values()), dict(stats.unexpected) or ""))
    print("  exceptions         %d %s" % (sum(errors.values()), dict(errors) or ""))
    for ex in stats.examples:
        print("    e.g. " + ex)
    growth = []
    for p, (n, r0) in sorted(base.items(), key=lambda x: x[1][0]):
        r1 = end.get(p)
        if r0 and r1:
            growth.append(r1 - r0)
            print("  RSS %-9s pid %-7d %7.1f -> %7.1f MiB (%+.1f)" % (n, p, r0 / 1024, r1 / 1024, (r1 - r0) / 1024))
        else:
            print("  RSS %-9s pid %-7d gone (restarted)" % (n, p))
    if samples:
        print("  workers RSS total  first sample %.1f MiB, last %.1f MiB, max %.1f MiB" % (
            samples[0] / 1024, samples[-1] / 1024, max(samples) / 1024))
    print("  billing invariant  %s" % ("OK for %d users" % len(users) if not bad_ledger else "BROKEN"))
    for ln in bad_ledger:
        print("    " + ln)
    print("  worker crashes     %d" % len(crashes))
    failed = bool(bad_ledger or crashes or stats.unexpected or errors)
    print("soak: %s" % ("FAILED" if failed else "OK"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
