"""Streams relayed from each program's event loop ([server] stream_loop, README "Concurrency"): once
a stream's answer has started, its worker thread lets go and the process's relay loop writes the
rest without blocking, so open streams hold no thread; a client that reads slowly is held back on
its own (the upstream paused) without slowing anyone else, and gets every byte; every stream is
settled once, whatever ends it."""
import json
import os
import socket
import threading
import time
import urllib.parse

from test_faults import req_for
from zgtest import (BASE, Skip, admin_json, auth, config_value, eq, fake_requests, new_user, ok, proc_status_total,
                    program_pids, stream, wait_until)


def setup_module():
    # behind mod_fcgid a process holds one request at a time, loop or not; the shared-host setup
    # runs the same programs as mod_fcgid
    if os.environ.get("ZG_SERVER", "lighttpd") not in ("lighttpd", "apache-proxy"):
        raise Skip("relay loop: tested behind lighttpd and mod_proxy_fcgi (mod_fcgid: one request per process)")
    if config_value("server", "stream_loop", "1") != "1":
        raise Skip("[server] stream_loop is off in this stack")


def rows(email):
    """(end_reason, input, output, credits) of the user's settled usage rows."""
    return [(u["end_reason"], u["input_tokens"], u["output_tokens"], u["credits"])
            for u in admin_json("usage", email, "--json") if u["status"] != "pending"]


def balance_delta(email):
    return 20000000 - admin_json("balance", email, "--json")["credits"]


def test_open_streams_hold_no_worker_thread():
    pids = program_pids("messages")
    ok(pids, "messages processes found")
    before = proc_status_total(pids, "Threads")
    users = [new_user() for _ in range(3)]
    n_each, done, statuses, lock = 20, [], [], threading.Lock()
    started = threading.Semaphore(0)
    path, _, style, body = req_for("messages", "events=60,interval=200,input=40,output=70", stream_=True)

    def one(key):
        try:
            s = stream("POST", path, auth(key, style), body, timeout=60)
            st = s.status
            started.release()
            names = [e.event for e in s]
        except Exception as e:  # noqa: BLE001 - recorded and asserted on
            st, names = repr(e), []
            started.release()
        with lock:
            statuses.append(st)
            done.append(names[-1] if names else None)

    ts = [threading.Thread(target=one, args=(k,)) for _, k in users for _ in range(n_each)]
    for t in ts:
        t.start()
    for _ in ts:
        ok(started.acquire(timeout=30), "a stream did not start")
    # the burst made workers; after the 5 s the processes keep a surplus they end
    time.sleep(7)
    during = proc_status_total(program_pids("messages"), "Threads")
    live = sum(1 for r in fake_requests(path_contains="/v1/messages") if r["outcome"] == "in_progress")
    for t in ts:
        t.join(60)
    eq(statuses, [200] * len(ts), "every stream answered 200")
    eq(done, ["message_stop"] * len(ts), "every stream ran to its end")
    ok(live >= len(ts) - 5, "the streams were still open when the threads were counted (%d open)" % live)
    ok(during < before + 20, "%d open streams add %d threads to the messages processes (%d before, %d during): "
       "a stream holds no thread once relayed from the loop" % (len(ts), during - before, before, during))
    for email, _ in users:
        r = wait_until(lambda: len(rows(email)) == n_each and rows(email), timeout=15,
                       msg="every stream has its usage row")
        eq(sorted(x[0] for x in r), ["complete"] * n_each)
        eq({(x[1], x[2]) for x in r}, {(40, 70)}, "the reported usage")
        eq(balance_delta(email), sum(x[3] for x in r), "the balance moved by what was billed")


class RawStream:
    """A stream read at the caller's pace over a plain socket."""

    def __init__(self, key, directive):
        path, _, style, body = req_for("messages", directive, stream_=True)
        u = urllib.parse.urlsplit(BASE)
        self.s = socket.create_connection((u.hostname, u.port or 80), timeout=30)
        data = json.dumps(body).encode()
        head = "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" \
               "Connection: close\r\n" % (path, u.netloc, len(data))
        for k, v in auth(key, style).items():
            head += "%s: %s\r\n" % (k, v)
        self.s.sendall(head.encode() + b"\r\n" + data)

    def read_all(self):
        """(status line, body): the body de-chunked (the web server may cut chunks anywhere)."""
        parts = []
        while True:
            b = self.s.recv(65536)
            if not b:
                break
            parts.append(b)
        raw = b"".join(parts)
        head, _, rest = raw.partition(b"\r\n\r\n")
        if b"transfer-encoding: chunked" not in head.lower():
            return head.split(b"\r\n")[0], rest
        body, i = [], 0
        while True:
            j = rest.index(b"\r\n", i)
            n = int(rest[i:j].split(b";")[0], 16)
            if n == 0:
                return head.split(b"\r\n")[0], b"".join(body)
            body.append(rest[j + 2:j + 2 + n])
            i = j + 2 + n + 2

    def close(self):
        self.s.close()


def test_a_slow_reader_is_held_back_alone_and_gets_every_byte():
    email, key = new_user()
    # about 33 MB of events at once: more than the sockets, the web server and the loop's 16 MiB cap on queued output hold, so the stream only completes if the upstream is paused while the client lags
    slow = RawStream(key, "events=300000,input=30,output=300000")
    time.sleep(1.5)  # it reads nothing meanwhile: the relay loop has paused its upstream transfer
    email2, key2 = new_user()
    t0 = time.monotonic()
    path, _, style, body = req_for("messages", "events=5,interval=100", stream_=True)
    res = []

    def quick():
        with stream("POST", path, auth(key2, style), body, timeout=30) as s:
            res.append([e.event for e in s][-1])

    ts = [threading.Thread(target=quick) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    took = time.monotonic() - t0
    eq(res, ["message_stop"] * 8, "the other streams ran to their end")
    ok(took < 10, "the other streams were not held up by the slow reader (%.1f s)" % took)
    status, raw = slow.read_all()
    slow.close()
    ok(status.startswith(b"HTTP/1.1 200"), "the slow stream began with 200: %r" % status)
    eq(raw.count(b"event: content_block_delta"), 300000, "every delta reached the slow reader")
    ok(b"event: message_stop" in raw[-200:], "and the end of the stream, last")
    r = wait_until(lambda: rows(email) or None, timeout=15, msg="the slow stream's usage row")
    eq([(x[0], x[1], x[2]) for x in r], [("complete", 30, 300000)])
    eq(balance_delta(email), r[0][3])


def test_a_slow_reader_that_leaves_is_settled_once():
    email, key = new_user()
    slow = RawStream(key, "events=300000,input=30,output=300000")
    time.sleep(1.5)
    slow.close()  # gone while its upstream transfer is paused
    r = wait_until(lambda: rows(email) or None, timeout=20, msg="the usage row of the stream whose client left")
    eq(len(r), 1, "one usage row")
    eq((r[0][0], r[0][1], r[0][2]), ("client_closed", 30, 300000), "read to its final usage, relaying nothing")
    time.sleep(1)
    eq(len(rows(email)), 1, "and only one")
    eq(balance_delta(email), r[0][3])
