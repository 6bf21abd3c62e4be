"""[database] hosts: the database servers a process tries in order when a connection fails (a
Galera cluster's nodes, or a primary and its fallback). Spoken to through the operator CLI, which
connects with the same code as the programs: the first entry refuses, the next one (the test
stack's socket) answers. The connect logic does not depend on the web server: behind lighttpd."""

import os
import subprocess

from zgtest import ADMIN, Skip, closed_port, eq, ok


def setup_module():
    if os.environ.get("ZG_SERVER", "lighttpd") != "lighttpd":
        raise Skip("the database connection does not depend on the web server: tested behind lighttpd")
    if not os.environ.get("ZG_DB_SOCK"):
        raise Skip("ZG_DB_SOCK is not set")


def run_admin(hosts, *args):
    env = dict(os.environ, ZENN_DB_HOSTS=hosts)
    return subprocess.run(ADMIN + list(args), env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_a_refused_server_falls_back_to_the_next():
    dead = "127.0.0.1:%d" % closed_port()
    r = run_admin("%s, %s" % (dead, os.environ["ZG_DB_SOCK"]), "db", "status")
    eq(r.returncode, 0, r.stderr)
    ok("schema" in r.stdout.lower(), r.stdout[:200])
    ok(dead in r.stderr and "trying" in r.stderr, "the fallback is logged: %r" % r.stderr[-300:])


def test_the_first_server_that_answers_is_used_without_a_detour():
    r = run_admin("%s, 127.0.0.1:%d" % (os.environ["ZG_DB_SOCK"], closed_port()), "db", "status")
    eq(r.returncode, 0, r.stderr)
    ok("trying" not in r.stderr, "no fallback needed: %r" % r.stderr[-300:])


def test_no_server_answering_is_an_error_naming_the_last():
    a, b = closed_port(), closed_port()
    r = run_admin("127.0.0.1:%d,127.0.0.1:%d" % (a, b), "db", "status")
    ok(r.returncode != 0, "fails")
    ok("127.0.0.1:%d" % a in r.stderr and "trying 127.0.0.1:%d" % b in r.stderr, "each tried: %r" % r.stderr[-400:])
    ok("Can't connect" in r.stderr, "the database's own error: %r" % r.stderr[-400:])


def test_a_malformed_list_is_refused_at_start():
    r = run_admin("db1:99999", "db", "status")
    ok(r.returncode != 0, "refused")
    ok("hosts" in r.stderr and "db1:99999" in r.stderr, r.stderr[-300:])
