"""Two web nodes on a three-node Galera cluster (README "Running several nodes").

Run by `./dev test --galera`: web node 1 (ZG_BASE, config ZG_CONFIG) uses database nodes 1, 2, 3 in
that order, web node 2 (ZG_BASE2, ZG_CONFIG2) nodes 2, 3, 1; both in lease mode, names web-1 and
web-2. The stack sets [limits] codex_per_hour = 100, concurrent_per_user = 1000 and [billing]
lost_host_after = 8 so that these tests can watch the limits and a lost node's timeout.

What must hold across nodes: the hourly limit admits at most the limit; parallel requests on both
nodes never overdraw a small balance beyond the documented bound and the ledger is exact; a key
revoked through one node stops on the other within a second; a node killed with SIGKILL has its
leases released by the other and its journal settled when it comes back; a database node killed
under load loses nothing, bills nothing twice and rejoins by incremental state transfer."""

import concurrent.futures
import os
import shlex
import subprocess
import threading
import time

from zgtest import (Skip, admin, admin_json, auth, eq, new_user, ok, request, stream, wait_until)
from zgtest import sql_int, sql_rows, user_id, held_now
from test_lease import RowLock, balance, usage

BASE1 = os.environ.get("ZG_BASE", "").rstrip("/")
BASE2 = os.environ.get("ZG_BASE2", "").rstrip("/")
SOCKS = [s for s in os.environ.get("ZG_GALERA_SOCKS", "").split(",") if s]
DEV = os.environ.get("ZG_DEV", "")
CONFIG2 = os.environ.get("ZG_CONFIG2", "")

HAIKU = "claude-haiku-4-5"   # $1 in, $5 out per MTok
START = 20000000             # credits of a $20 Pro top-up
SMALL = "input=25,output=10"  # 75 credits on haiku


def setup_module():
    if not (BASE2 and len(SOCKS) == 3 and DEV):
        raise Skip("no cluster (run ./dev test --galera)")


# --------------------------------------------------------------------------- helpers


def node_sql(n, query):
    """Run SQL on database node n (1..3) as root over its socket; tab-separated output."""
    p = subprocess.run(["mariadb", "--no-defaults", "--socket=" + SOCKS[n - 1], "-uroot", "-N", "-B", "zenn",
                        "-e", query], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("mariadb on node %d: %s (query: %s)" % (n, p.stderr.strip(), query[:200]))
    return p.stdout


def node_status(n, name):
    out = node_sql(n, "SHOW STATUS LIKE '%s'" % name).split("\t")
    return out[1].strip() if len(out) > 1 else ""


def dev(*args, timeout=300):
    p = subprocess.run(["bash", DEV] + list(args), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    if p.returncode != 0:
        raise AssertionError("./dev %s failed: %s %s" % (" ".join(args), p.stdout[-2000:], p.stderr[-2000:]))
    return p.stdout


def admin2(*args):
    """zenn-admin with web node 2's config (database node 2 first): ZG_ADMIN2."""
    p = subprocess.run(shlex.split(os.environ["ZG_ADMIN2"]) + [str(a) for a in args],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("zenn-admin (node 2) %s: %s %s" % (" ".join(map(str, args)), p.stdout, p.stderr))
    return p.stdout


def body(text="cluster test [[fake:%s]]" % SMALL, stream_=False, max_tokens=100):
    b = {"model": HAIKU, "max_tokens": max_tokens, "messages": [{"role": "user", "content": text}]}
    if stream_:
        b["stream"] = True
    return b


def send(base, key, directive=SMALL, timeout=30):
    return request("POST", base + "/api/v1/messages", headers=auth(key),
                   body=body("cluster test [[fake:%s]]" % directive), timeout=timeout)


def send_codex(base, key, timeout=60):
    """A Codex-group request (gpt-5.5, 425 credits): the group limited to 100 an hour here."""
    return request("POST", base + "/api/v1/codex/chat/completions", headers=auth(key, "openai"),
                   body={"model": "gpt-5.5", "max_tokens": 100,
                         "messages": [{"role": "user", "content": "cluster test [[fake:%s]]" % SMALL}]},
                   timeout=timeout)


def released(email, timeout=15.0):
    return wait_until(lambda: held_now(email) == (0, 0, 0, 0), timeout=timeout, interval=0.2,
                      msg="%s's leases given back on both nodes" % email)


def ledger(email, n=None, start=START, timeout=30, served=()):
    """Once every admitted request is written (n rows when given; every request id in `served`) and
    the leases are back, read twice the same: no pending row, unique request ids, balance = start -
    sum of usage, nothing held, keys' spend = sum. (In lease mode a finished request is invisible
    until its process writes it, so the rows are read until they stop changing.)"""
    deadline = time.monotonic() + timeout
    while True:
        rows = usage(email)
        ids = [r["request_id"] for r in rows]
        ready = (not any(r["status"] == "pending" for r in rows) and (n is None or len(rows) >= n)
                 and set(served) <= set(ids) and held_now(email) == (0, 0, 0, 0))
        if ready:
            b = balance(email)
            again = usage(email)
            if [r["request_id"] for r in again] == ids:
                break
        ok(time.monotonic() < deadline, "%s's ledger settled within %gs: %d rows (want %s, %d served missing),"
           " held %r" % (email, timeout, len(rows), n, len(set(served) - set(ids)), held_now(email)))
        time.sleep(0.3)
    if n is not None:
        eq(len(rows), n, "usage rows (one per admitted request)")
    eq(len(set(ids)), len(ids), "each request billed once")
    total = sum(r["credits"] for r in rows)
    eq(b["credits"], start - total, "balance = start - sum of usage")
    eq(b["held"], 0, "nothing held")
    eq(sum(k["spent_credits"] for k in admin_json("key", "list", email, "--json")), total, "keys' spend = sum")
    return rows


def conflicts():
    """Write conflicts the cluster resolved so far (certification failures + transactions aborted
    for a replicated one), summed over the nodes."""
    return sum(int(node_status(n, "wsrep_local_cert_failures") or 0) +
               int(node_status(n, "wsrep_local_bf_aborts") or 0) for n in (1, 2, 3))


def zenn_connections(n):
    """The gateway's connections to database node n."""
    return int(node_sql(n, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'zenn'").strip())


def wait_cluster(size=3, timeout=120):
    def synced():
        try:
            return all(node_status(n, "wsrep_local_state_comment") == "Synced" and
                       node_status(n, "wsrep_cluster_size") == str(size) for n in (1, 2, 3))
        except AssertionError:
            return False
    wait_until(synced, timeout=timeout, interval=0.5, msg="all three database nodes synced")


# --------------------------------------------------------------------------- the cluster


def test_two_web_nodes_on_three_synced_database_nodes():
    for n in (1, 2, 3):
        eq(node_status(n, "wsrep_cluster_size"), "3", "node %d sees three members" % n)
        eq(node_status(n, "wsrep_local_state_comment"), "Synced", "node %d synced" % n)
        eq(node_status(n, "wsrep_ready"), "ON", "node %d ready" % n)
    email, key = new_user()
    for base in (BASE1, BASE2):
        r = request("GET", base + "/api/v1/models", headers=auth(key))
        eq(r.status, 200, "models on %s" % base)
        r = send(base, key)
        eq(r.status, 200, "a request on %s: %s" % (base, r.text[:200]))
    # each node leases under its own name, from its own database node first
    owners = {o.split(":")[0] for (o,) in sql_rows("SELECT owner FROM leases WHERE user_id = %d" % user_id(email))}
    eq(owners, {"web-1", "web-2"}, "each node's leases carry its name")
    ok(zenn_connections(1) > 0 and zenn_connections(2) > 0,
       "web node 1 uses database node 1, web node 2 database node 2")
    eq(zenn_connections(3), 0, "nobody needed the fallback, database node 3")
    rows = ledger(email, 2)
    eq(sorted(r["credits"] for r in rows), [75, 75])
    # the same row on every database node
    for n in (1, 2, 3):
        eq(node_sql(n, "SELECT balance, held FROM users WHERE id = %d" % user_id(email)).split(),
           [str(START - 150), "0"], "database node %d agrees" % n)


def test_money_calls_on_both_nodes_at_once_apply_once():
    """Top-ups through both nodes' databases at once, each reference sent to both: every reference
    granted once, however Galera ordered the conflicting commits (the losers are retried)."""
    email, key = new_user(plan=None)
    before = conflicts()
    refs = ["cluster-%s-%d" % (email.split("@")[0], i) for i in range(12)]
    outs = []

    def topup(i):
        run = admin if i % 2 == 0 else admin2
        return run("topup", email, "pro", "1", "--ref", refs[i // 2])

    with concurrent.futures.ThreadPoolExecutor(12) as ex:
        outs = list(ex.map(topup, range(24)))
    eq(sum("already granted" in o for o in outs), 12, "each reference granted once and repeated once: %r" % outs[:4])
    b = balance(email)
    eq(b["credits"], 12 * 1000000, "twelve $1 top-ups")
    eq(sql_int("SELECT COUNT(*) FROM topups WHERE user_id = %d" % user_id(email)), 12, "twelve lots")
    print("  write conflicts resolved by the cluster during the test: %d" % (conflicts() - before))


def test_rate_limit_across_nodes_admits_at_most_the_limit():
    email, key = new_user()
    limit = 100
    statuses = []
    lock = threading.Lock()

    def one(i):
        r = send_codex(BASE1 if i % 2 else BASE2, key)
        with lock:
            statuses.append(r.status)

    # 2 nodes x 300 requests, all at once
    with concurrent.futures.ThreadPoolExecutor(600) as ex:
        list(ex.map(one, range(600)))
    ok(set(statuses) <= {200, 429}, "served or rate limited: %r" % sorted(set(statuses)))
    admitted = statuses.count(200)
    ok(admitted <= limit, "at most the limit admitted across nodes: %d of %d" % (admitted, limit))
    ok(admitted >= limit // 2, "most of the hour used at once: %d" % admitted)
    # unused slices given back: the rest of the hour, then nothing more, on either node
    released(email)
    node = 0
    for _ in range(limit + 5):
        r = send_codex(BASE1 if node % 2 else BASE2, key)
        node += 1
        if r.status != 200:
            break
        admitted += 1
    eq(r.status, 429, "the hour is used up on both nodes")
    eq(admitted, limit, "exactly the limit admitted within the hour")
    eq(send_codex(BASE1, key).status, 429)
    eq(send_codex(BASE2, key).status, 429)
    ledger(email, limit)
    eq(sql_int("SELECT SUM(hits) FROM rate_counters WHERE user_id = %d AND grp = 'codex'" % user_id(email)),
       limit, "the counter holds the limit")


def test_small_balance_on_both_nodes_is_never_overdrawn():
    # $0.02: 20,000 credits; each request holds about 540 and costs 75; both nodes spend at once
    email, key = new_user("pro", "0.02")
    start = 20000
    codes = []
    lock = threading.Lock()

    def one(i):
        r = send(BASE1 if i % 2 else BASE2, key, timeout=60)
        with lock:
            codes.append(r.status)

    with concurrent.futures.ThreadPoolExecutor(40) as ex:
        list(ex.map(one, range(400)))
    ok(set(codes) <= {200, 402}, "served or refused for the balance: %r" % sorted(set(codes)))
    ok(codes.count(402) > 0, "refused once the balance ran out")
    served = codes.count(200)
    # the bound (README "Billing"): a request is admitted only against a hold it fits, so what is
    # billed never exceeds the balance (every request here costs less than its hold)
    rows = ledger(email, served, start=start)
    ok(sum(r["credits"] for r in rows) <= start, "never overdrawn")
    # once both nodes gave their leases back, what is left is spendable down to less than one hold
    node = 0
    while True:
        r = send(BASE1 if node % 2 else BASE2, key)
        node += 1
        if r.status != 200:
            break
        served += 1
        ok(node < 300, "the balance never runs out")
    eq(r.status, 402)
    # a 402 may come while another process still holds an unused lease on part of what is left
    # (given back after lease_idle_ms): once every lease is back, spend on until refused at once
    for _ in range(20):
        released(email)
        r = send(BASE1 if node % 2 else BASE2, key)
        node += 1
        if r.status == 402:
            break
        eq(r.status, 200)
        served += 1
    eq(r.status, 402, "refused with nothing held anywhere")
    rows = ledger(email, served, start=start)
    total = sum(r["credits"] for r in rows)
    hold = max(int(h) for (h,) in sql_rows("SELECT hold_credits FROM usage_log WHERE user_id = %d"
                                            % user_id(email)))
    ok(0 <= start - total < hold, "used up to less than one hold (%d left, hold %d)" % (start - total, hold))


def test_revocation_on_one_node_stops_the_key_on_the_other_within_a_second():
    email, key = new_user()
    for _ in range(3):
        eq(send(BASE2, key).status, 200)  # node 2 holds a lease for the key
    prefix = admin_json("key", "list", email, "--json")[0]["prefix"]
    t0 = time.monotonic()
    admin("key", "revoke", prefix)  # through web node 1's database node
    t_revoked = time.monotonic()
    while True:
        r = send(BASE2, key)
        if r.status == 401:
            break
        eq(r.status, 200)
        ok(time.monotonic() - t_revoked < 3, "node 2 still serves the revoked key after 3 s")
        time.sleep(0.02)
    took = time.monotonic() - t_revoked
    ok(took <= 1.0, "node 2 stopped the key %.2f s after the revoke (%.2f s with the command)" %
       (took, time.monotonic() - t0))
    ledger(email)


def test_killed_web_node_leases_released_by_the_other_then_journal_settled():
    email, key = new_user()
    uid = user_id(email)
    eq(send(BASE2, key).status, 200)  # node 2 takes a lease for the key and writes the request
    ledger(email, 1)
    eq(send(BASE2, key).status, 200)
    # the user's row held on node 2's database: what node 2 finishes now stays in its queue and
    # journal (finished requests that used part of its lease, not yet written)
    lock = RowLock(uid)
    try:
        unwritten = 0
        for _ in range(4):
            eq(send(BASE2, key).status, 200, "served from node 2's lease")
            unwritten += 1
        # and a stream in flight when the node dies
        s = stream("POST", BASE2 + "/api/v1/messages", headers=auth(key),
                   body=body("cluster test [[fake:events=100,interval=200,input=40,output=10]]", stream_=True))
        eq(s.status, 200)
        next(iter(s))
        ok(sql_int("SELECT COUNT(*) FROM leases WHERE user_id = %d AND owner LIKE 'web-2:%%'" % uid) > 0,
           "node 2 holds a lease")
        written = sql_int("SELECT COUNT(*) FROM usage_log WHERE user_id = %d" % uid)
        ok(written < 2 + unwritten, "some finished requests are not written yet (%d rows)" % written)
        dev("test-node2", "kill")
        s.close()
        # a lost machine's connections die with it: a statement it left waiting for the row would
        # otherwise still run (and write its batch) once the row is free
        for (cid,) in [r.split("\t") for r in node_sql(2, "SELECT ID FROM information_schema.PROCESSLIST"
                                                          " WHERE USER = 'zenn'").split("\n") if r]:
            node_sql(2, "KILL CONNECTION %s" % cid)
    finally:
        lock.release()
    t_kill = time.monotonic()
    # node 1 releases the lost node's leases after [billing] lost_host_after (8 s here)
    wait_until(lambda: sql_int("SELECT COUNT(*) FROM leases WHERE owner LIKE 'web-2:%%'") == 0,
               timeout=40, interval=0.5, msg="node 2's leases released by node 1")
    took = time.monotonic() - t_kill
    ok(took >= 5, "not before the lost-host timeout (%.1f s)" % took)
    eq(held_now(email), (0, 0, 0, 0), "nothing held once the lost node's leases are released")
    eq(len(usage(email)), written, "what node 2 had not written is not written yet")
    # node 1 keeps serving the key meanwhile
    eq(send(BASE1, key).status, 200)
    # node 2 comes back: its programs replay the journals of the killed ones, the finished requests
    # at their cost (their part of the released lease is not released twice), the cut stream at its hold
    dev("test-node2", "start")
    rows = ledger(email, 1 + 1 + unwritten + 1 + 1, timeout=60)
    by_reason = sorted(r["end_reason"] for r in rows)
    eq(by_reason.count("abandoned"), 1, "the stream cut by the kill is billed once as abandoned: %r" % by_reason)
    eq(by_reason.count("complete"), len(rows) - 1)
    eq(send(BASE2, key).status, 200, "node 2 serves again")


def test_killed_database_node_under_load_loses_nothing_and_rejoins():
    wait_cluster()
    email, key = new_user()
    stop = threading.Event()
    results = []
    lock = threading.Lock()

    def load(base):
        while not stop.is_set():
            try:
                r = send(base, key, timeout=30)
                st, rid = r.status, r.headers.get("request-id")
            except Exception as e:  # noqa: BLE001 - counted as a failure below
                st, rid = repr(e), None
            with lock:
                results.append((st, rid))

    threads = [threading.Thread(target=load, args=(b,)) for b in (BASE1, BASE2) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(2)
        dev("test-galera", "kill", "1")  # web node 1's own database node
        time.sleep(4)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    statuses = [st for st, _ in results]
    ok(len(statuses) > 50, "load ran: %d requests" % len(statuses))
    bad = [st for st in statuses if st != 200]
    ok(len(bad) <= 8, "at most a few requests failed while web node 1 moved: %r" % bad[:10])
    ok(all(st in (502, 503) for st in bad), "failures are clean errors: %r" % bad[:10])
    served = [rid for st, rid in results if st == 200]
    print("  %d requests on both web nodes while database node 1 was killed: %d served, %d failed %r"
          % (len(statuses), len(served), len(bad), sorted(set(map(str, bad)))))
    # node 1's connections moved to database nodes 2 and 3
    ok(zenn_connections(2) + zenn_connections(3) > 0, "the gateway uses the remaining nodes")
    # every served request billed once; beyond them only failed requests that reached the upstream
    rows = ledger(email, None, timeout=60, served=served)
    ok(len(rows) - len(served) <= len(bad), "nothing billed twice (%d rows, %d served, %d failed)"
       % (len(rows), len(served), len(bad)))
    # the killed node rejoins by incremental state transfer and holds the same data
    dev("test-galera", "start", "1")
    wait_cluster()
    err = open(os.path.join(os.path.dirname(SOCKS[0]), "mariadbd.err"), errors="replace").read()
    tail = err[err.rfind("Starting MariaDB") if "Starting MariaDB" in err else 0:]
    ok("IST received" in tail or "Receiving IST" in tail, "node 1 rejoined by IST: %s" % tail[-600:])
    sums = [node_sql(n, "CHECKSUM TABLE users, api_keys, usage_log, topups, leases").split() for n in (1, 2, 3)]
    eq(sums[0], sums[1], "node 1 = node 2")
    eq(sums[1], sums[2], "node 2 = node 3")
