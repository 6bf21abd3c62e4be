"""Money-moving calls are safe to repeat (README, "Reliability"): a connection lost after the server
committed a top-up, a lease grant or a lease return must not apply it twice when the client asks
again. A proxy between zenn-admin and MariaDB cuts the connection right after the server's answer to
the call, so the client never sees it and reconnects."""

import os
import socket
import subprocess
import threading

from zgtest import (ADMIN, STATE, Skip, admin, admin_json, eq, new_user, ok, sql, sql_int, sql_rows, unique_email,
                    user_id)


class CuttingProxy:
    """Listens on a unix socket and relays to the test stack's MariaDB socket. The first time a client
    prepares or sends a statement containing `marker` and then executes it, the proxy forwards the
    execution, waits for the server's first answer bytes (the procedure has committed by then: its
    result row comes after COMMIT), drops them and closes both sides. Later connections pass through."""

    def __init__(self, marker):
        self.target = os.environ.get("ZG_DB_SOCK")
        if not self.target:
            raise Skip("ZG_DB_SOCK is not set")
        self.marker = marker
        self.path = os.path.join(STATE, "run", "dbproxy-%d.sock" % os.getpid())
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.path)
        self.srv.listen(16)
        self.cut = 0
        self.armed_done = False
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.target)
        state = {"armed": False, "cutting": False}
        done = threading.Event()

        def up():  # client -> server, packet by packet
            buf = b""
            try:
                while not done.is_set():
                    data = c.recv(65536)
                    if not data:
                        break
                    buf += data
                    while len(buf) >= 4:
                        n = int.from_bytes(buf[:3], "little")
                        if len(buf) < 4 + n:
                            break
                        pkt, buf = buf[:4 + n], buf[4 + n:]
                        cmd = pkt[4] if n else -1
                        with self.lock:
                            if not self.armed_done and self.marker in pkt and cmd in (0x03, 0x16):
                                state["armed"] = True
                            if state["armed"] and cmd in (0x03, 0x17) and not self.armed_done:
                                state["cutting"] = True
                                self.armed_done = True
                        s.sendall(pkt)
            except OSError:
                pass
            done.set()

        def down():  # server -> client
            try:
                while not done.is_set():
                    data = s.recv(65536)
                    if not data:
                        break
                    if state["cutting"]:
                        self.cut += 1
                        break  # the answer is lost: close both sides without passing it on
                    c.sendall(data)
            except OSError:
                pass
            done.set()

        t1 = threading.Thread(target=up, daemon=True)
        t1.start()
        down()
        for x in (c, s):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            x.close()

    def close(self):
        self.srv.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def admin_via(proxy, *args):
    env = dict(os.environ, ZENN_DB_SOCKET=proxy.path)
    return subprocess.run(ADMIN + list(args), env=env, capture_output=True, text=True, timeout=60)


def lots(email):
    return admin_json("balance", email, "--json")["lots"]


def test_topup_whose_answer_was_lost_is_granted_once():
    email = unique_email("ref")
    admin("user", "add", email)
    proxy = CuttingProxy(b"zg_topup")
    try:
        p = admin_via(proxy, "topup", email, "max", "25", "--ref", "bank-2026-11-0042")
    finally:
        proxy.close()
    eq(proxy.cut, 1, "the answer to the committed top-up was cut")
    eq(p.returncode, 0, "the retry found the grant: %s %s" % (p.stdout, p.stderr))
    ok("already granted" in p.stdout or "granted" in p.stdout, p.stdout)
    eq(len(lots(email)), 1, "one lot, not two")
    eq(admin_json("balance", email, "--json")["credits"], 25 * 4 * 1000000)
    # the operator runs it again: nothing added, and it says so
    out = admin("topup", email, "max", "25", "--ref", "bank-2026-11-0042")
    ok("already granted" in out, out)
    eq(len(lots(email)), 1)
    eq(admin_json("balance", email, "--json")["credits"], 100000000)
    # another reference is another payment
    out = admin("topup", email, "pro", "5", "--ref", "bank-2026-11-0043")
    ok("reference bank-2026-11-0043" in out, out)
    eq(len(lots(email)), 2)
    # without --ref a reference is generated and printed; running that again grants once
    out = admin("topup", email, "pro", "1")
    ref = out.split("reference ")[1].split(")")[0]
    ok(ref.startswith("admin-"), out)
    ok("already granted" in admin("topup", email, "pro", "1", "--ref", ref))
    eq(len(lots(email)), 3)
    eq(sql_int("SELECT COUNT(*) FROM topups WHERE ref = '%s'" % ref), 1)


def test_lease_grant_and_return_repeated_under_one_id_apply_once():
    email, key = new_user("pro", 20)
    uid = user_id(email)
    import hashlib
    h = hashlib.sha256(key.encode()).hexdigest()
    owner = "test-host:1:1"
    call = "CALL zg_lease('%s', '%s', 'messages', 1000, 1, 0, 1000000, 10, 8, '%s#1')" % (h, owner, owner)
    first = sql_rows(call)
    again = sql_rows(call)
    eq(first, again, "the repeated grant answers the first one")
    eq(sql_int("SELECT held FROM users WHERE id = %d" % uid), 1000000, "held once")
    eq(sql_int("SELECT credits FROM leases WHERE owner = '%s'" % owner), 1000000)
    eq(sql_int("SELECT hits FROM rate_counters WHERE user_id = %d AND grp = 'messages'" % uid), 10, "slots once")
    kid = sql_int("SELECT key_id FROM leases WHERE owner = '%s'" % owner)
    drop = ("CALL zg_lease_drop('%s', %d, 'messages', 400000, 4, UNIX_TIMESTAMP() DIV 3600 * 3600, '%s#2')"
            % (owner, kid, owner))
    sql(drop)
    sql(drop)
    eq(sql_int("SELECT held FROM users WHERE id = %d" % uid), 600000, "returned once")
    eq(sql_int("SELECT hits FROM rate_counters WHERE user_id = %d AND grp = 'messages'" % uid), 6)
    sql("CALL zg_lease_drop('%s', 0, '', 0, 0, 0, '%s#3')" % (owner, owner))
    eq(sql_int("SELECT held FROM users WHERE id = %d" % uid), 0)


def test_admission_repeated_for_one_request_id_holds_once():
    email, key = new_user("pro", 20)
    uid = user_id(email)
    import hashlib
    h = hashlib.sha256(key.encode()).hexdigest()
    call = ("CALL zg_admit('%s', 'req-repeat-1', 'messages', 1000, 1, 5000, 'messages', 'claude-haiku-4-5', "
            "'anthropic')" % h)
    a = sql_rows(call)
    b = sql_rows(call)
    eq(a[0][0], "0")
    eq(b[0][0], "0", "the repeat answers admitted")
    eq(sql_int("SELECT held FROM users WHERE id = %d" % uid), 5000, "one hold")
    eq(sql_int("SELECT hits FROM rate_counters WHERE user_id = %d AND grp = 'messages'" % uid), 1, "counted once")
    sql("CALL zg_settle('req-repeat-1', 'settled', 'complete', 0, 0, 0, 0, 0, 0, 0, 0, 0, 200, 1, 1, NULL, 1)")
    eq(sql_int("SELECT held FROM users WHERE id = %d" % uid), 0)
