"""Billing mode "lease" (README, "Billing modes"): a process reserves a slice of a key's credit and
of its hourly request count (a lease, counted in users.held / api_keys.held and the leases table),
admits requests against it in memory, writes their settlements in batches and gives the lease back
once idle. Access changes reach the processes within ~100 ms; poor users stay strict; a killed
process's journal is replayed by its siblings. The money invariants hold throughout: every
admitted request billed exactly once, balance = start - sum of usage, nothing left held.

The tests skip themselves behind a setup whose [billing] mode is strict (the matrix runs both),
except the first, which checks that the programs run in the mode the config names."""

import concurrent.futures
import glob
import os
import signal
import subprocess
import threading
import time

from zgtest import (STATE, Skip, access_seen, admin, admin_json, auth, billing_mode, config_value, eq, held_now,
                    lease_mode, lease_owners, new_user, ok, processes_on_demand, program_pids, request, sql_int,
                    sql_rows, stream, user_id, wait_released, wait_until)

HAIKU = "claude-haiku-4-5"   # $1 in, $5 out per MTok
FLASH = "gemini-3-flash-preview"  # $0.50 in, $3 out
START = 20000000             # credits of a $20 Pro top-up
SMALL = "input=25,output=10"
# credits of one request reporting 25 input and 10 output tokens, per surface below
COST = {"messages": 25 * 1 + 10 * 5,                      # 75
        "gemini_native": (25 * 500000 + 10 * 3000000 + 500000) // 1000000,   # 42.5 -> 43
        "gemini_chat": (25 * 500000 + 10 * 3000000 + 500000) // 1000000,     # 43
        "codex_chat": 25 * 5 + 10 * 30}                    # gpt-5.5: 425


def leases_only():
    if not lease_mode():
        raise Skip("[billing] mode is %s behind this setup" % billing_mode())


def lease_credits():
    return int(config_value("billing", "lease_credits", "5000000"))


def lease_slots():
    return int(config_value("billing", "lease_slots", "64"))


def lease_idle_s():
    return int(config_value("billing", "lease_idle_ms", "2000")) / 1000.0


def call(key, surface, directive=SMALL, stream_=False, max_tokens=100):
    """(path, headers, body) of one request on a surface."""
    text = "lease test [[fake:%s]]" % directive
    if surface == "messages":
        b = {"model": HAIKU, "max_tokens": max_tokens, "messages": [{"role": "user", "content": text}]}
        if stream_:
            b["stream"] = True
        return "/api/v1/messages", auth(key), b
    if surface == "gemini_native":
        action = "streamGenerateContent?alt=sse" if stream_ else "generateContent"
        return ("/api/v1/gemini/v1beta/models/%s:%s" % (FLASH, action), auth(key, "gemini"),
                {"contents": [{"role": "user", "parts": [{"text": text}]}],
                 "generationConfig": {"maxOutputTokens": max_tokens}})
    if surface in ("gemini_chat", "codex_chat"):
        b = {"model": FLASH if surface == "gemini_chat" else "gpt-5.5", "max_tokens": max_tokens,
             "messages": [{"role": "user", "content": text}]}
        if stream_:
            b["stream"] = True
        path = "/api/v1/gemini/chat/completions" if surface == "gemini_chat" else "/api/v1/codex/chat/completions"
        return path, auth(key, "openai"), b
    raise ValueError(surface)


def send(key, surface="messages", directive=SMALL, timeout=30):
    path, h, b = call(key, surface, directive)
    return request("POST", path, headers=h, body=b, timeout=timeout)


def open_stream(key, surface="messages", directive="events=40,interval=100", max_tokens=100):
    """A stream whose first event has arrived (so the request is admitted and in flight)."""
    path, h, b = call(key, surface, directive, stream_=True, max_tokens=max_tokens)
    s = stream("POST", path, headers=h, body=b, timeout=60)
    eq(s.status, 200, "stream on %s" % surface)
    next(iter(s))
    return s


def usage(email):
    return admin_json("usage", email, "--json", "--limit", "10000")


def balance(email):
    return admin_json("balance", email, "--json")


def rate_hits(email):
    """{group: requests counted} of a user in rate_counters (all windows)."""
    return {g: int(n) for g, n in sql_rows("SELECT grp, SUM(hits) FROM rate_counters WHERE user_id = %d GROUP BY grp"
                                           % user_id(email))}


def ledger(email, n, start=START):
    """Exactly n usage rows, none pending, unique request ids; once the leases are back: balance =
    start - sum(credits), nothing held (user, keys, leases), keys' spend = sum."""
    rows = wait_until(lambda: (lambda rs: rs if len(rs) >= n and all(r["status"] != "pending" for r in rs) else None)(
        usage(email)), timeout=30, interval=0.2, msg="%d settled usage rows" % n)
    eq(len(rows), n, "usage rows (one per admitted request)")
    ids = [r["request_id"] for r in rows]
    eq(len(set(ids)), n, "each request billed once")
    total = sum(r["credits"] for r in rows)
    wait_released(email, timeout=10)
    b = balance(email)
    eq(b["credits"], start - total, "balance = start - sum of usage")
    eq(b["held"], 0, "nothing held")
    eq(sum(k["spent_credits"] for k in admin_json("key", "list", email, "--json")), total, "keys' spend = sum of usage")
    eq(held_now(email), (0, 0, 0, 0), "users.held, keys' held, lease credits, lease rows")
    return rows


def program_logs():
    """Text of every log of the stack's programs (lighttpd: programs.log; Apache: its logs)."""
    out = []
    for path in glob.glob(os.path.join(STATE, "log", "**", "*.log"), recursive=True):
        try:
            with open(path, errors="replace") as f:
                out.append(f.read())
        except OSError:
            pass
    return "\n".join(out)


def every_process_leases(email, key, program, grp, streams):
    """Open streams for the key until every process of `program` holds a lease for it (a stream in
    flight keeps its process's lease); the streams are appended to `streams`."""
    pids = set(program_pids(program))
    ok(pids, "no %s process found" % program)
    surface = {"messages": "messages", "gemini": "gemini_native", "codex": "codex_chat"}[program]
    for _ in range(8):
        if pids <= set(lease_owners(email, grp)):
            return pids
        streams.append(open_stream(key, surface, "events=80,interval=200"))
    ok(pids <= set(lease_owners(email, grp)), "every %s process %r holds a lease: %r"
       % (program, sorted(pids), lease_owners(email, grp)))
    return pids


class RowLock:
    """Another database session holding a user's row locked (SELECT ... FOR UPDATE in an open
    transaction): every transaction that moves the user's money waits for it."""

    def __init__(self, uid):
        sock = os.environ.get("ZG_DB_SOCK")
        if not sock:
            raise Skip("ZG_DB_SOCK is not set")
        self.p = subprocess.Popen(["mariadb", "--no-defaults", "--socket=" + sock, "-uroot", "-N", "-B", "-n",
                                   "zenn"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.p.stdin.write("SET SESSION innodb_lock_wait_timeout = 120;\nSTART TRANSACTION;\n"
                           "SELECT 'locked', id FROM users WHERE id = %d FOR UPDATE;\n" % uid)
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        ok(line.startswith("locked"), "the row lock: %r %r" % (line, self.p.poll()))

    def release(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write("ROLLBACK;\n")
                self.p.stdin.close()
            except OSError:
                pass
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()


# --------------------------------------------------------------------------- the mode


def test_billing_mode_matches_the_config():
    # both modes: the programs bill the way [billing] mode says (a lease-mode program that cannot
    # create its journal logs "lease mode unavailable" and bills strictly: that would leave the
    # matrix without lease coverage)
    email, key = new_user()
    access_seen()
    s = open_stream(key)
    try:
        if lease_mode():
            eq(usage(email), [], "lease mode: no pending row while the request runs")
            ok(lease_owners(email), "lease mode: the process holds a lease for the key")
        else:
            rows = usage(email)
            eq([r["status"] for r in rows], ["pending"], "strict mode: a pending row while the request runs")
            eq(sql_int("SELECT COUNT(*) FROM leases"), 0, "strict mode: no process ever takes a lease")
    finally:
        s.close()
    logs = program_logs()
    ok("lease mode unavailable" not in logs, "a program could not start lease mode (journal beside the spool?)")
    if lease_mode():
        ok("billing with leases as" in logs, "the programs log that they bill with leases")
    else:
        ok("billing with leases as" not in logs, "no program bills with leases in strict mode")
    if lease_mode():
        ledger(email, 1)


# --------------------------------------------------------------------------- a lease's life


def test_lease_held_while_active_then_released():
    leases_only()
    email, key = new_user()
    access_seen()
    s = open_stream(key, directive="events=10,interval=100,input=100,output=40")
    # the lease: 1/8 of what the user has free (at most lease_credits), counted as held; and
    # min(lease_slots, 1/8 of the hour's 1000) requests of the rate limit, counted at once
    want = min(lease_credits(), START // 8)
    eq(len(lease_owners(email, "messages")), 1, "one process holds a lease")
    eq(held_now(email), (want, want, want, 1), "users.held, keys' held, lease credits, lease rows")
    eq(balance(email)["held"], want, "zenn-admin balance shows the lease as held")
    eq(rate_hits(email), {"messages": min(lease_slots(), 1000 // 8)}, "the slice of the rate limit is counted")
    eq(usage(email), [], "nothing written while the request runs")
    with s:
        names = [e.event for e in s]
    eq(names[-1], "message_stop")
    t_end = time.monotonic()
    rows = wait_until(lambda: usage(email) or None, timeout=5, interval=0.05, msg="the settlement written")
    eq([(r["status"], r["end_reason"], r["credits"]) for r in rows], [("settled", "complete", 100 * 1 + 40 * 5)],
       "settled directly, at its cost")
    # the settlement consumed its cost from the lease; the rest goes back after lease_idle_ms
    wait_released(email, timeout=5)
    took = time.monotonic() - t_end
    ok(took < lease_idle_s() + 2.0, "lease given back %.2f s after the last request (lease_idle_ms %g s)"
       % (took, lease_idle_s()))
    eq(sql_int("SELECT COUNT(*) FROM leases WHERE key_id = (SELECT id FROM api_keys WHERE user_id = %d)"
               % user_id(email)), 0, "no lease row left for the key")
    eq(rate_hits(email), {"messages": 1}, "the unused slots went back to the rate counter")
    ledger(email, 1)


def access_change(change, refused, what):
    """Every messages process holds a lease for a key (a stream in flight each keeps it), the
    operator changes the key (change(email, prefix)); requests are served from the leases until
    the processes see the new access version (polled every 100 ms), then refused with `refused`.
    Must happen within 1 s. Returns (email, requests served, streams) for the ledger."""
    email, key = new_user()
    prefix = admin_json("key", "list", email, "--json")[0]["prefix"]
    access_seen()
    streams = []
    every_process_leases(email, key, "messages", "messages", streams)
    served = 0
    try:
        for _ in range(4):
            eq(send(key).status, 200)
            served += 1
        before = served
        t0 = time.monotonic()
        change(email, prefix)
        while True:
            r = send(key)
            took = time.monotonic() - t0
            if r.status == refused or took >= 3:
                break
            eq(r.status, 200, "before the change is seen: served from the lease")
            served += 1
        if r.status != refused or took >= 1.0:
            for st in streams:
                st.close()
            wait_released(email, timeout=10)
            spent = admin_json("key", "list", email, "--json")[0]["spent_credits"]
            raise AssertionError("%s not enforced within 1 s: %d request(s) served in the %.2f s after the change "
                                 "(last status %d); the key has spent %d credits (%d before the change)"
                                 % (what, served - before, took, r.status, spent, before * COST["messages"]))
        # every process sees it: nothing is served any more
        statuses = [send(key).status for _ in range(20)]
        eq(set(statuses), {refused}, "every later request refused")
    finally:
        for st in streams:
            st.close()  # admitted before the change: billed as closed by the client
    return email, served, streams


def test_revoke_takes_effect_within_a_second():
    leases_only()
    email, served, streams = access_change(lambda email, prefix: admin("key", "revoke", prefix), 401,
                                           "the revoke")
    rows = ledger(email, served + len(streams))
    eq(sorted(r["end_reason"] for r in rows), ["client_closed"] * len(streams) + ["complete"] * served)


def test_key_limit_change_takes_effect_within_a_second():
    leases_only()
    # 100 credits: less than the 300 already spent, so the key may spend nothing more
    email, served, streams = access_change(lambda email, prefix: admin("key", "limit", prefix, "0.0001"), 402,
                                           "the key's new spend limit (100 credits)")
    ledger(email, served + len(streams))


def test_lots_are_consumed_oldest_first_across_a_batch():
    """Both modes (in lease mode the settlements arrive in zg_flush batches, several rows of one user
    in one transaction): the lots are walked oldest first, the first lot is emptied before the next
    is touched, what the lots lost equals what the usage rows billed, and each row's cash is its
    credits at the multiplier of the lot pieces that paid for it."""
    email = new_user(plan="max", usd="1")[0]  # lot 1: 4,000,000 credits at 4x
    admin("topup", email, "pro", "10")           # lot 2: 10,000,000 credits at 1x
    key = admin("key", "create", email).splitlines()[0].strip()
    big = "input=25,output=100000"               # 500,025 credits a request
    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        rs = list(ex.map(lambda _: call(key, "messages", big, max_tokens=100000), range(12)))
        rs = list(ex.map(lambda c: request("POST", c[0], headers=c[1], body=c[2], timeout=30), rs))
    eq([r.status for r in rs], [200] * 12)
    rows = ledger(email, 12, start=14000000)
    billed = sum(r["credits"] for r in rows)
    ok(billed > 4000000, "the requests spent more than the first lot (%d)" % billed)
    lots = balance(email)["lots"]
    eq([(l["plan"], l["credits_remaining"]) for l in lots],
       [("max", 0), ("pro", 10000000 - (billed - 4000000))], "oldest lot first, emptied before the next")
    cash = sum(r["cash_micros"] for r in rows)
    want = 4000000 // 4 + (billed - 4000000)
    ok(abs(cash - want) <= len(rows), "cash %d = 4,000,000 credits at 4x + the rest at 1x (%d), within a "
       "rounding per lot piece" % (cash, want))


# --------------------------------------------------------------------------- many processes


def test_concurrent_requests_across_processes():
    leases_only()
    email, key = new_user()
    surfaces = ["messages", "gemini_native", "gemini_chat", "codex_chat"]
    n = 240
    owners, stop = set(), threading.Event()

    def watch():
        while not stop.is_set():
            owners.update(lease_owners(email))
            time.sleep(0.05)

    def one(i):
        surface = surfaces[i % len(surfaces)]
        r = send(key, surface)
        return surface, r.status, r.headers.get("request-id")

    w = threading.Thread(target=watch)
    w.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(24) as ex:
            results = list(ex.map(one, range(n)))
    finally:
        stop.set()
        w.join()
    eq(sorted(set(st for _, st, _ in results)), [200], "every request served")
    ok(len(owners) >= 2, "leases were held by several processes at once: %r" % sorted(owners))
    rows = ledger(email, n)
    by_id = {r["request_id"]: r for r in rows}
    eq(sorted(by_id), sorted(rid for _, _, rid in results), "each request id exactly one usage row")
    for surface, _, rid in results:
        u = by_id[rid]
        eq((u["status"], u["end_reason"], u["credits"]), ("settled", "complete", COST[surface]),
           "%s request %s" % (surface, rid))
    # the rate counters hold exactly the requests once the slices are back (messages and gemini
    # share a bucket)
    codex = sum(1 for s, _, _ in results if s == "codex_chat")
    eq(rate_hits(email), {"messages": n - codex, "codex": codex}, "requests counted per bucket")


def test_rate_limit_exact_under_leases():
    leases_only()
    # slices of the hourly count are granted from what is left, so no more than the limit is ever
    # admitted, across processes and surfaces sharing the bucket
    # admitted, across processes and surfaces sharing the bucket. Near the limit a process may
    # answer 429 while another still holds a few unused slots (README: the processes' views
    # differ by their unused slices); once those are given back they can be used, and in the end
    # exactly the limit is admitted within the hour.
    email, key = new_user()
    limit = int(config_value("limits", "messages_per_hour", "1000"))
    n = limit + 60

    def one(i):
        return send(key, "messages" if i % 2 else "gemini_native").status

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        statuses = list(ex.map(one, range(n)))
    ok(set(statuses) <= {200, 429}, "served or rate limited: %r" % sorted(set(statuses)))
    admitted = statuses.count(200)
    ok(limit - lease_slots() <= admitted <= limit, "at most the limit admitted (%d of %d)" % (admitted, limit))
    for _ in range(10):
        wait_released(email)  # unused slots back in the counter
        r = send(key)
        if r.status == 429:
            break
        eq(r.status, 200)
        admitted += 1
        while True:
            r = send(key)
            if r.status != 200:
                break
            admitted += 1
        eq(r.status, 429)
    eq(admitted, limit, "exactly the limit admitted within the hour")
    eq(r.status, 429, "nothing left: refused although no process holds a slot")
    eq(r.headers.get("x-ratelimit-remaining"), "0")
    ledger(email, limit)
    eq(rate_hits(email), {"messages": limit}, "the counter holds the limit")


# --------------------------------------------------------------------------- small balances stay strict


def test_poor_user_is_billed_strictly():
    leases_only()
    # 2000 credits: less than 8 x the hold of a haiku request with max_tokens 100 (about 540), so
    # no lease; each request is admitted and settled in the database, one transaction each
    email, key = new_user("pro", "0.002")
    for i in range(2):
        s = open_stream(key, directive="events=10,interval=100,input=100,output=40")
        rows = usage(email)
        eq([r["status"] for r in rows], ["settled"] * i + ["pending"], "a pending row while the request runs")
        hold = sql_int("SELECT hold_credits FROM usage_log WHERE request_id = '%s'" % rows[-1]["request_id"])
        ok(0 < hold, "a hold")
        eq(held_now(email), (hold, hold, 0, 0), "exactly the request's hold is held; no lease")
        with s:
            list(s)
        rows = wait_until(lambda: (lambda rs: rs if rs[-1]["status"] != "pending" else None)(usage(email)),
                          timeout=10, msg="the request settled")
        eq(len(rows), i + 1)
        eq((rows[-1]["status"], rows[-1]["credits"]), ("settled", 300))
        # strict: the hold is released in the settlement's own transaction, nothing to wait for
        b = balance(email)
        eq((b["credits"], b["held"]), (2000 - 300 * (i + 1), 0), "balance and held right after settling")
    eq(sql_int("SELECT COUNT(*) FROM leases WHERE user_id = %d" % user_id(email)), 0, "never a lease")
    # a rich user's key with a tight spend limit is metered request by request too
    email, key = new_user("pro", 20, key_args=("--limit-usd", "0.002"))
    s = open_stream(key, directive="events=5,interval=100,input=100,output=40")
    eq([r["status"] for r in usage(email)], ["pending"], "a tight key limit: strict admission")
    with s:
        list(s)
    rows = wait_until(lambda: (lambda rs: rs if rs[-1]["status"] != "pending" else None)(usage(email)),
                      timeout=10, msg="the request settled")
    eq((rows[-1]["status"], rows[-1]["credits"]), ("settled", 300))
    b = balance(email)
    eq((b["credits"], b["held"]), (START - 300, 0))
    eq(sql_int("SELECT COUNT(*) FROM leases WHERE user_id = %d" % user_id(email)), 0, "never a lease")


def test_lease_given_back_only_after_its_settlements_are_written():
    """A lease that goes idle while settlements that took its credits still wait to be written
    (the writer is held up by a row lock, requests keep being served from the lease) is given back
    only once they are written: else the return leaves the row their credits, the late write takes
    them, and a lease row of 0 credits is left behind for good."""
    leases_only()
    email, key = new_user()
    uid = user_id(email)
    served = 0
    for _ in range(8):  # leases in the messages processes
        eq(send(key).status, 200)
        served += 1
    lock = RowLock(uid)
    try:
        for _ in range(4):  # the writers take these and wait for the row
            eq(send(key, timeout=10).status, 200, "served from the lease")
            served += 1
        time.sleep(0.3)
        for _ in range(6):  # these wait in the writers' queues
            eq(send(key, timeout=10).status, 200, "served from the lease")
            served += 1
        time.sleep(0.8)  # the leases go idle (lease_idle_ms 300 in the test stack)
    finally:
        lock.release()
    ledger(email, served)


# --------------------------------------------------------------------------- a process dies


def test_sigkill_with_unflushed_and_inflight_requests():
    leases_only()
    if processes_on_demand():
        raise Skip("mod_fcgid starts processes on demand: the ones holding the key's leases cannot be pinned down")
    email, key = new_user()
    uid = user_id(email)
    streams = []
    finished = []
    lock = None
    access_seen()  # the top-up's: the test blocks the database, a lease re-check would wait
    try:
        # requests in flight in every messages process (each then holds a lease for the key)
        pids = every_process_leases(email, key, "messages", "messages", streams)
        inflight = [s.headers.get("request-id") for s in streams]
        # hold the user's row: the processes' writers wait for it, so what finishes now stays
        # in their queues and journals
        lock = RowLock(uid)
        for _ in range(6):
            r = send(key, timeout=10)
            eq(r.status, 200, "served from the lease: %s" % r.text[:200])
            finished.append(r.headers.get("request-id"))
        time.sleep(0.3)  # many flush periods
        eq(usage(email), [], "finished but not yet written")
        ok(pids <= set(lease_owners(email, "messages")), "the leases are still held")
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    finally:
        for s in streams:
            s.close()
        if lock:
            lock.release()
    # a sibling process (any program, every 5 s) or the respawned one replays each journal
    rows = ledger(email, len(finished) + len(inflight))
    by_id = {r["request_id"]: r for r in rows}
    eq(sorted(by_id), sorted(finished + inflight), "exactly the admitted requests, each once")
    for rid in finished:
        u = by_id[rid]
        eq((u["status"], u["end_reason"], u["credits"], u["estimated"]), ("settled", "complete", COST["messages"],
                                                                         False), "finished request %s" % rid)
    for rid in inflight:
        u = by_id[rid]
        hold = sql_int("SELECT hold_credits FROM usage_log WHERE request_id = '%s'" % rid)
        eq((u["status"], u["end_reason"], u["estimated"]), ("abandoned", "abandoned", True), "in flight: %s" % rid)
        ok(hold > 0, "the hold was journalled")
        eq(u["credits"], hold, "an unfinished request is charged its hold")
    # the dead processes' journals are gone, their leases released (ledger: nothing held)
    spool = config_value("billing", "spool_path")
    for p in pids:
        eq(glob.glob("%s.lease.*:%d:*" % (spool, p)), [], "the journal of dead process %d removed" % p)
        eq(sql_int("SELECT COUNT(*) FROM leases WHERE owner LIKE '%%:%d:%%'" % p), 0, "leases of %d released" % p)
    # nothing is billed twice later (another upkeep round, the respawned programs)
    wait_until(lambda: send(key).status == 200, timeout=15, msg="messages served again")
    time.sleep(6)
    rows = ledger(email, len(finished) + len(inflight) + 1)
