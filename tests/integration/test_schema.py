"""The schema has two roads that must end in the same place (README, "Installing"): a new database
gets sql/schema.sql (the whole current schema) at once; a database made by version 1 gets the
migrations (deltas). Both are built here side by side and compared: tables, keys, procedures,
triggers, and the catalog rows."""

import os
import re
import subprocess

from zgtest import ADMIN, Skip, eq, ok

HERE = os.path.dirname(os.path.abspath(__file__))
V1 = os.path.join(HERE, "..", "fixtures", "schema-v1.sql")
ROOT = os.path.join(HERE, "..", "..")


def mariadb(db, sql_text=None, args=()):
    sock = os.environ.get("ZG_DB_SOCK")
    if not sock:
        raise Skip("ZG_DB_SOCK is not set")
    cmd = ["mariadb", "--no-defaults", "--socket=" + sock, "-uroot", "-N", "-B"] + list(args) + ([db] if db else [])
    p = subprocess.run(cmd, input=sql_text, capture_output=True, text=True, timeout=120)
    ok(p.returncode == 0, "mariadb: %s" % p.stderr[:300])
    return p.stdout


def migrate(db):
    env = dict(os.environ, ZENN_DB_NAME=db)
    p = subprocess.run(ADMIN + ["db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    ok(p.returncode == 0, "zenn-admin db migrate on %s: %s %s" % (db, p.stdout, p.stderr))
    return p.stdout


def dump(db):
    sock = os.environ["ZG_DB_SOCK"]
    p = subprocess.run(["mariadb-dump", "--no-defaults", "--socket=" + sock, "-uroot", "--no-data", "--routines",
                        "--triggers", "--skip-comments", "--skip-dump-date", "--compact", db],
                       capture_output=True, text=True, timeout=120)
    ok(p.returncode == 0, "mariadb-dump: %s" % p.stderr[:300])
    text = re.sub(r" AUTO_INCREMENT=\d+", "", p.stdout)
    return text.replace("`%s`" % db, "`DB`")


def test_new_and_upgraded_databases_have_the_same_schema():
    fresh, old = "zg_schema_fresh", "zg_schema_upgraded"
    mariadb(None, "DROP DATABASE IF EXISTS %s; DROP DATABASE IF EXISTS %s; CREATE DATABASE %s; CREATE DATABASE %s;"
            % (fresh, old, fresh, old))
    try:
        latest = max(int(f.split("-")[1]) for f in os.listdir(os.path.join(ROOT, "sql")) if f.startswith("migrate-"))
        out = migrate(fresh)
        ok("created the schema at version %d" % latest in out, out)
        ok("applied migration" not in out, "a new database needs no migration: %s" % out)
        with open(V1) as f:
            v1 = f.read()
        mariadb(old, v1, ["--default-character-set=utf8mb4"])  # as zenn-admin created it
        # two lots granted before receipts existed: migration 8 gives them theirs, in order
        mariadb(old, "INSERT INTO users (email) VALUES ('old@example.com');"
                     " CALL zg_topup(LAST_INSERT_ID(), 'pro', 5000000, 1); CALL zg_topup(1, 'max', 100000000, 4);")
        out = migrate(old)
        year = int(mariadb(old, "SELECT YEAR(MIN(created_at)) FROM topups").strip())
        eq(mariadb(old, "SELECT number, topup_id, method FROM receipts ORDER BY id").split("\n")[:2],
           ["ZG-%d-000001\t1\tmanual" % year, "ZG-%d-000002\t2\tmanual" % year])
        eq(mariadb(old, "SELECT last FROM receipt_seq WHERE year = %d" % year).strip(), "2")
        ok(all("applied migration %d" % v in out for v in range(2, latest + 1)), out)
        a, b = dump(fresh), dump(old)
        if a != b:
            al, bl = a.splitlines(), b.splitlines()
            diff = [(i, x, y) for i, (x, y) in enumerate(zip(al, bl)) if x != y][:5]
            raise AssertionError("the schemas differ (%d vs %d lines); first differences: %r" % (len(al), len(bl), diff))
        for q in ["SELECT * FROM models ORDER BY id", "SELECT * FROM model_aliases ORDER BY alias",
                  "SELECT id FROM catalog_version ORDER BY id", "SELECT MAX(version) FROM schema_version"]:
            eq(mariadb(fresh, q), mariadb(old, q), q)
        # migrating again changes nothing
        out = migrate(fresh)
        ok("applied migration" not in out and "created the schema" not in out, out)
        eq(dump(fresh), a, "a second migrate changes nothing")
    finally:
        mariadb(None, "DROP DATABASE IF EXISTS %s; DROP DATABASE IF EXISTS %s;" % (fresh, old))
