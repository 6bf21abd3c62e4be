"""Usage analytics (README, "Usage analytics"): the daily rollup kept by every settlement path and
equal to the raw rows, the account API's /usage, /requests (keyset pages), CSV exports and monthly
statements, GET /api/v1/key, `zenn-admin db check`, `db purge` (retention) and `report`, and bad
input answered with 400 and a message."""

import concurrent.futures
import csv
import datetime
import io

from portal import Portal
from zgtest import (admin, admin_fail, auth, eq, new_user, ok, request, sql, sql_int, sql_rows, user_id,
                    wait_until)

HAIKU = "claude-haiku-4-5"  # $1 in, $5 out per MTok
GPT = "gpt-5.5"             # $5 in, $30 out
USAGE = "/api/v1/account/usage"
LOG = "/api/v1/account/requests"
MEASURES = ("requests", "errors", "estimated", "input_tokens", "output_tokens", "cache_read_tokens",
            "cache_write_5m_tokens", "cache_write_1h_tokens", "reasoning_tokens", "images", "credits", "cash_micros")


def today():
    return datetime.datetime.now(datetime.timezone.utc).date()


def customer(plan="max", usd="5"):
    """A signed-up customer with a top-up and two keys made in the portal: (portal, key_a, key_b)."""
    p = Portal()
    eq(p.signup().status, 201)
    admin("topup", p.email, plan, usd)
    a = p.new_key(name="alpha").json()
    b = p.new_key(name="beta, \"quoted\"").json()
    p.keys = {"a": a, "b": b}
    return p, a["key"], b["key"]


def send(key, surface, directive="input=25,output=10", stream=False):
    text = "usage test [[fake:%s]]" % directive
    if surface == "messages":
        body = {"model": HAIKU, "max_tokens": 100, "messages": [{"role": "user", "content": text}]}
        if stream:
            body["stream"] = True
        r = request("POST", "/api/v1/messages", headers=auth(key), body=body, timeout=30)
    else:
        body = {"model": GPT, "max_tokens": 100, "messages": [{"role": "user", "content": text}]}
        r = request("POST", "/api/v1/codex/chat/completions", headers=auth(key, "openai"), body=body, timeout=30)
    return r


def settled(email, n):
    """Wait until the user has n usage rows, none pending."""
    uid = user_id(email)
    wait_until(lambda: sql_int("SELECT COUNT(*) FROM usage_log WHERE user_id = %d AND status <> 'pending'" % uid) == n
               and sql_int("SELECT COUNT(*) FROM usage_log WHERE user_id = %d" % uid) == n,
               timeout=30, interval=0.2, msg="%d settled usage rows" % n)
    return uid


def raw_sums(uid, by="model"):
    """{group: {measure: sum}} straight from usage_log."""
    col = {"model": "model", "key": "key_id", "day": "DATE(created_at)"}[by]
    rows = sql_rows("SELECT %s, COUNT(*), SUM(IF(end_reason IN ('complete','client_closed'),0,1)), SUM(estimated),"
                    " SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_5m_tokens),"
                    " SUM(cache_write_1h_tokens), SUM(reasoning_tokens), SUM(units), SUM(credits), SUM(cash_micros)"
                    " FROM usage_log WHERE user_id = %d AND status <> 'pending' GROUP BY 1" % (col, uid))
    return {r[0]: dict(zip(MEASURES, map(int, r[1:]))) for r in rows}


def api_sums(rows, dim):
    return {str(r[dim]): {m: r[m] for m in MEASURES} for r in rows}


def check_ok():
    out = admin("db", "check")
    ok("equal" in out and "DIFFERENT" not in out, out)
    return out


# ------------------------------------------------------------------------------ the rollup and /usage


def test_usage_equals_the_raw_rows_by_model_key_and_day():
    p, ka, kb = customer()
    jobs = [(ka, "messages", "input=25,output=10")] * 6 + [(kb, "codex", "input=40,output=7")] * 5 + \
           [(ka, "messages", "status=500")] * 2 + [(kb, "codex", "input=3,output=2,cache_read=5")] * 3
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        statuses = list(ex.map(lambda j: send(*j).status, jobs))
    eq(sorted(statuses), sorted([200] * 14 + [500] * 2))
    uid = settled(p.email, len(jobs))
    r = p.call("GET", USAGE + "?group_by=model")
    eq(r.status, 200, r.text)
    d = r.json()
    eq((d["from"], d["to"], d["group_by"]), (str(today() - datetime.timedelta(days=29)), str(today()), ["model"]))
    eq(api_sums(d["rows"], "model"), raw_sums(uid, "model"), "by model = the raw rows")
    eq(d["totals"]["requests"], 16)
    eq(d["totals"]["errors"], 2, "the two upstream 500s are errors")
    eq(d["totals"]["credits"], sum(v["credits"] for v in raw_sums(uid).values()))
    ok(d["totals"]["cash_micros"] * 4 - d["totals"]["credits"] in range(-16 * 4, 16 * 4 + 1),
       "a Max lot: cash = credits / 4 (per-row rounding): %r" % d["totals"])
    ok(d["totals"]["avg_ttfb_ms"] is not None and d["totals"]["avg_duration_ms"] >= 0, d["totals"])
    # by key: names and prefixes from the key manager
    d = p.call("GET", USAGE + "?group_by=key").json()
    by_key = {r["key_prefix"]: r for r in d["rows"]}
    eq(sorted(by_key), sorted([p.keys["a"]["prefix"], p.keys["b"]["prefix"]]))
    eq(by_key[p.keys["b"]["prefix"]]["key_name"], 'beta, "quoted"')
    raw_key = raw_sums(uid, "key")
    eq({str(r["key_id"]): {m: r[m] for m in MEASURES} for r in d["rows"]}, raw_key, "by key = the raw rows")
    # two dimensions, and a filter
    d = p.call("GET", USAGE + "?group_by=day,model&model=" + GPT).json()
    eq([(r["day"], r["model"], r["requests"]) for r in d["rows"]], [(str(today()), GPT, 8)])
    d = p.call("GET", USAGE + "?group_by=surface&key=" + p.keys["a"]["prefix"]).json()
    eq([(r["surface"], r["requests"]) for r in d["rows"]], [("messages", 8)])
    check_ok()


def test_every_settlement_procedure_adds_to_the_rollup_and_the_lots():
    """Strict settlement (zg_admit + zg_settle), a direct settlement (a dead process's journal or a
    refused batch) and a lease batch (zg_flush) each add their rows to the rollup in their own
    transaction; the lot pieces add up to the cash, day by day, across two lots."""
    email, key = new_user(plan="max", usd="1")  # 4,000,000 credits at 4x
    admin("topup", email, "pro", "1")            # then 1,000,000 at 1x
    uid = user_id(email)
    kid = sql_int("SELECT id FROM api_keys WHERE user_id = %d" % uid)
    h = sql("SELECT key_hash FROM api_keys WHERE id = %d" % kid).strip()
    sql("CALL zg_admit('%s', 'rq-strict-%d', 'messages', 1000, 1, 5000, 'messages', '%s', 'anthropic')"
        % (h, uid, HAIKU))
    sql("CALL zg_settle('rq-strict-%d', 'settled', 'complete', 3999000, 100, 20, 0, 0, 0, 0, 0, 0, 200, 40, 900, NULL, 1)"
        % uid)
    sql("CALL zg_settle('rq-strict-%d', 'settled', 'complete', 3999000, 100, 20, 0, 0, 0, 0, 0, 0, 200, 40, 900, NULL, 1)"
        % uid)  # the same request again: settled once
    sql("CALL zg_settle_direct('o-%d', 'messages', 0, 'rq-direct-%d', %d, %d, 'messages', '%s', 'anthropic', 10,"
        " 'settled', 'upstream_error', 2000, 1, 0, 0, 0, 0, 0, 0, 1, 500, NULL, 30, NULL, 1)" % (uid, uid, uid, kid, HAIKU))
    rows = ",".join('["rq-flush-%d-%d",%d,%d,"codex","codex","%s","openai",10,"settled","complete",%d,0,'
                    '3,4,0,0,0,1,0,0,200,5,6]' % (uid, i, uid, kid, GPT, 1000 * (i + 1)) for i in range(3))
    sql("CALL zg_flush('o-%d', '[%s]')" % (uid, rows))
    eq(raw_sums(uid)[HAIKU]["requests"], 2)
    d = {r[0]: r[1:] for r in sql_rows("SELECT model, requests, errors, estimated, credits, cash_micros, ttfb_n,"
                                       " duration_n FROM usage_daily WHERE user_id = %d" % uid)}
    eq(d[HAIKU], ["2", "1", "1", str(3999000 + 2000), str(999750 + 1000 // 4 + 1000), "1", "2"],
       "strict + direct: the first spends lot 1 (at 4x) but 4,000 credits, the second those and 1,000 more at 1x")
    eq(d[GPT], ["3", "0", "0", "6000", "6000", "3", "3"], "the batch, all at 1x")
    lots = sql_rows("SELECT t.multiplier, l.credits, l.cash_micros FROM lot_daily l JOIN topups t ON t.id = l.topup_id"
                    " WHERE l.user_id = %d ORDER BY t.id" % uid)
    eq(lots, [["4", "4000000", "1000000"], ["1", "7000", "7000"]], "lot pieces")
    eq(sum(int(c) for _, _, c in lots), int(d[HAIKU][4]) + int(d[GPT][4]), "cash = the lot pieces' cash")
    check_ok()


# ------------------------------------------------------------------------------ the request log


def test_request_log_pages_by_keyset_and_matches_its_csv():
    p, ka, kb = customer(plan="pro", usd="5")
    for i in range(7):
        eq(send(ka if i % 2 else kb, "messages", "input=%d,output=3" % (10 + i)).status, 200)
    send(ka, "messages", "status=429")
    settled(p.email, 8)
    seen, cursor, pages = [], None, 0
    while True:
        r = p.call("GET", LOG + "?limit=3" + ("&cursor=" + cursor if cursor else ""))
        eq(r.status, 200, r.text)
        d = r.json()
        seen += d["requests"]
        pages += 1
        cursor = d["next_cursor"]
        if not cursor:
            break
    eq(pages, 3, "8 rows in pages of 3")
    eq(len(seen), 8)
    eq(len({r["request_id"] for r in seen}), 8, "no row twice across pages")
    times = [r["created_at"] for r in seen]
    eq(times, sorted(times, reverse=True), "newest first")
    first = seen[-1]
    eq((first["key_prefix"], first["model"], first["surface"], first["input_tokens"], first["credits"]),
       (p.keys["b"]["prefix"], HAIKU, "messages", 10, 10 + 3 * 5), "the oldest row, in full")
    err = [r for r in seen if r["upstream_status"] == 429]
    eq(len(err), 1)
    eq((err[0]["status"], err[0]["end_reason"]), ("settled", "upstream_error"))
    # filters
    d = p.call("GET", LOG + "?status=error").json()
    eq([r["request_id"] for r in d["requests"]], [err[0]["request_id"]])
    d = p.call("GET", LOG + "?status=ok&key=" + p.keys["a"]["prefix"]).json()
    eq(len(d["requests"]), 3)
    # CSV: the same rows, RFC 4180, header first
    r = p.call("GET", LOG + ".csv")
    eq(r.status, 200)
    ok(r.headers.get("content-type", "").startswith("text/csv"), r.headers)
    ok('filename="requests-' in r.headers.get("content-disposition", ""), r.headers)
    ok(r.body.count(b"\r\n") == 9, "CRLF line ends: %r" % r.body[:200])
    rows = list(csv.DictReader(io.StringIO(r.body.decode())))
    eq([x["request_id"] for x in rows], [x["request_id"] for x in seen], "the CSV = the log")
    eq({x["key_name"] for x in rows}, {"alpha", 'beta, "quoted"'}, "quoted fields read back")
    eq(sum(int(x["credits"]) for x in rows), sum(x["credits"] for x in seen))


def test_usage_csv_equals_the_api_rows():
    p, ka, kb = customer(plan="pro", usd="5")
    for k, s in ((ka, "messages"), (kb, "codex"), (kb, "codex")):
        eq(send(k, s).status, 200)
    settled(p.email, 3)
    api = p.call("GET", USAGE + "?group_by=model,key").json()["rows"]
    r = p.call("GET", USAGE + ".csv?group_by=model,key")
    eq(r.status, 200)
    rows = list(csv.DictReader(io.StringIO(r.body.decode())))
    eq(list(rows[0])[:4], ["model", "key_id", "key_prefix", "key_name"])
    eq([(x["model"], x["key_prefix"], int(x["requests"]), int(x["credits"]), x["cost_usd"]) for x in rows],
       [(a["model"], a["key_prefix"], a["requests"], a["credits"], a["cost_usd"]) for a in api])


# ------------------------------------------------------------------------------ statements


def test_statement_balances_add_up_and_name_the_lots():
    p, ka, kb = customer(plan="max", usd="1")
    admin("topup", p.email, "pro", "2")
    # 3,501,000 credits each: the first from the Max lot, the second the rest of it, all of the Pro
    # lot and 1,002,000 beyond (an overdraft: admitted while the balance was above zero)
    for _ in range(2):
        eq(send(ka, "messages", "input=1000,output=700000").status, 200)
    uid = settled(p.email, 2)
    month = today().strftime("%Y-%m")
    r = p.call("GET", "/api/v1/account/statements/" + month)
    eq(r.status, 200, r.text)
    s = r.json()
    eq((s["month"], s["complete"]), (month, False))
    billed = sql_int("SELECT SUM(credits) FROM usage_log WHERE user_id = %d" % uid)
    eq(s["usage"]["credits"], billed)
    eq(s["topup_credits"], 4000000 + 2000000)
    eq(s["opening_credits"], 0, "a new account opens at zero")
    eq(s["opening_credits"] + s["topup_credits"] - s["usage"]["credits"], s["closing_credits"])
    eq(s["closing_credits"], sql_int("SELECT balance FROM users WHERE id = %d" % uid), "closing = the balance now")
    eq([(l["plan"], l["multiplier"]) for l in s["lots"]], [("max", 4), ("pro", 1)])
    eq(sum(l["credits"] for l in s["lots"]) + s["overdraft_credits"], billed, "lots + overdraft = usage")
    eq(s["overdraft_credits"], 2 * 3501000 - 6000000)
    eq(sum(l["cash_micros"] for l in s["lots"]), s["usage"]["cash_micros"], "the lots paid the cash")
    eq(s["lots"][0]["credits"], 4000000, "the Max lot first, used up")
    eq([k["key_prefix"] for k in s["by_key"]], [p.keys["a"]["prefix"]])
    r = p.call("GET", "/api/v1/account/statements/%s.csv" % month)
    eq(r.status, 200)
    rows = list(csv.DictReader(io.StringIO(r.body.decode())))
    eq([x["section"] for x in rows], ["balance", "topup", "topup", "model", "key", "lot", "lot", "usage", "balance"])
    eq(int(rows[-1]["credits"]), s["closing_credits"])
    # last month: the account did not exist, so all zeros, and the next month's opening is its closing
    prev = (today().replace(day=1) - datetime.timedelta(days=1)).strftime("%Y-%m")
    s0 = p.call("GET", "/api/v1/account/statements/" + prev).json()
    eq((s0["opening_credits"], s0["closing_credits"], s0["complete"], s0["lots"]), (0, 0, True, []))
    # the printable page is served as a file at a clean URL
    r = request("GET", "/account/statements/" + month)
    eq(r.status, 200)
    ok(b"statement" in r.body.lower() and r.headers.get("content-type", "").startswith("text/html"), r.body[:200])


# ------------------------------------------------------------------------------ bad input


def test_bad_queries_get_400_with_the_field():
    p = Portal()
    eq(p.signup().status, 201)
    d400 = str(today() - datetime.timedelta(days=400))
    cases = [
        (USAGE + "?from=2026-13-01", "from"), (USAGE + "?to=2026-02-30", "to"), (USAGE + "?from=yesterday", "from"),
        (USAGE + "?from=%s" % d400, "from"), (USAGE + "?from=2026-11-20&to=2026-11-01", "from"),
        (USAGE + "?group_by=hour", "group_by"), (USAGE + "?group_by=day,model,key", "group_by"),
        (USAGE + "?group_by=day,day", "group_by"), (USAGE + "?sort=credits", None),
        (USAGE + "?from=2026-11-01&from=2026-11-02", "from"), (USAGE + "?model=a%20b", "model"),
        (USAGE + "?key=ck_notmine0000", "key"),
        (LOG + "?cursor=abc", "cursor"), (LOG + "?cursor=20261126180257123_0", "cursor"),
        (LOG + "?limit=0", "limit"), (LOG + "?limit=501", "limit"), (LOG + "?status=great", "status"),
        (LOG + "?group_by=day", None), (LOG + ".csv?from=2020-01-01", "from"),
    ]
    for path, field in cases:
        r = p.call("GET", path)
        eq(r.status, 400, "%s: %s" % (path, r.text[:200]))
        e = r.json()["error"]
        eq(e["type"], "invalid_request_error", path)
        ok(e["message"], path)
        eq(e.get("field"), field, "%s names %s: %r" % (path, field, e))
    for path in ("/api/v1/account/statements/2026-13", "/api/v1/account/statements/2026-11.pdf",
                 "/api/v1/account/statements/%d-01" % (today().year + 1)):
        eq(p.call("GET", path).status, 404, path)
    # another customer's key cannot be used as a filter (nor seen)
    other = customer()[0]
    r = p.call("GET", USAGE + "?key=" + other.keys["a"]["prefix"])
    eq((r.status, r.json()["error"]["field"]), (400, "key"))
    # without a session: 401, for every analytics path
    anon = Portal()
    for path in (USAGE, USAGE + ".csv", LOG, LOG + ".csv", "/api/v1/account/statements/2026-11"):
        eq(anon.call("GET", path).status, 401, path)


def test_one_customer_never_sees_another_customers_usage():
    p, ka, _ = customer(plan="pro", usd="5")
    eq(send(ka, "messages").status, 200)
    settled(p.email, 1)
    q = Portal()
    eq(q.signup().status, 201)
    eq(q.call("GET", USAGE).json()["rows"], [])
    eq(q.call("GET", LOG).json()["requests"], [])


# ------------------------------------------------------------------------------ GET /api/v1/key


def test_key_endpoint_shows_the_keys_limit_spend_and_the_account():
    p, ka, kb = customer(plan="max", usd="1")
    r = p.call("PATCH", "/api/v1/account/keys/%d" % p.keys["a"]["id"], {"limit_usd": "2.5"})
    eq(r.status, 200, r.text)
    eq(send(ka, "messages", "input=1000,output=100").status, 200)  # 1,500 credits
    settled(p.email, 1)
    for h in (auth(ka), auth(ka, "openai"), {"x-goog-api-key": ka}):
        r = request("GET", "/api/v1/key", headers=h)
        eq(r.status, 200, r.text)
        d = r.json()["data"]
        eq((d["name"], d["prefix"], d["limit_credits"], d["spent_credits"], d["usage"], d["limit"]),
           ("alpha", p.keys["a"]["prefix"], 2500000, 1500, 0.0015, 2.5))
        eq(d["remaining_credits"], 2500000 - 1500 - d["held_credits"])
        eq((d["account"]["plan"], d["account"]["credits"]), ("max", 4000000 - 1500))
        eq(d["account"]["held"], sql_int("SELECT held FROM users WHERE email = '%s'" % p.email))
    d = request("GET", "/api/v1/key", headers=auth(kb)).json()["data"]
    eq((d["limit"], d["limit_remaining"], d["spent_credits"]), (None, None, 0), "a key without a limit")
    r = request("GET", "/api/v1/key", headers=auth("ck_" + "x" * 40, "openai"))
    eq(r.status, 401)
    ok("error" in r.json() and r.json()["error"].get("message"), "OpenAI error shape: %s" % r.text)
    eq(request("GET", "/api/v1/key").status, 401, "no key")


# ------------------------------------------------------------------------------ operator


def test_db_check_finds_a_difference_and_repairs_it_and_purge_keeps_the_rollup():
    email, key = new_user(plan="pro", usd="5")
    eq(send(key, "messages").status, 200)
    uid = settled(email, 1)
    kid = sql_int("SELECT id FROM api_keys WHERE user_id = %d" % uid)
    row = ("INSERT INTO usage_log (request_id, user_id, key_id, surface, model, provider, status, end_reason,"
           " hold_credits, credits, cash_micros, input_tokens, created_at, settled_at) VALUES ('%s', %d, %d,"
           " 'messages', '" + HAIKU + "', 'anthropic', 'settled', 'complete', 9, 777, 0, 5, '%s 12:00:00',"
           " '%s 12:00:01')")
    # a raw row written behind the rollup's back, 10 days ago (no lot paid for it: an overdraft),
    # and the check must see it
    ten = (today() - datetime.timedelta(days=10)).isoformat()
    sql(row % ("rq-behind-%d" % uid, uid, kid, ten, ten))
    code, err = admin_fail("db", "check")
    eq(code, 1)
    ok("difference" in err, err)
    out = admin("db", "check", "--repair")
    ok("rebuilt the rollup of user %d" % uid in out and out.rstrip().endswith("equal to the cash consumed, day by day"),
       out)
    eq(sql_int("SELECT credits FROM usage_daily WHERE user_id = %d AND day = '%s'" % (uid, ten)), 777)
    # retention: a 500-day-old raw row (and its rollup) - the raw row goes, its rollup stays
    old = (today() - datetime.timedelta(days=500)).isoformat()
    sql(row % ("rq-old-%d" % uid, uid, kid, old, old))
    sql("INSERT INTO usage_daily (user_id, day, key_id, model, surface, requests, credits, cash_micros)"
        " VALUES (%d, '%s', %d, '%s', 'messages', 1, 777, 0)" % (uid, old, kid, HAIKU))
    out = admin("db", "purge", "--keep-days", "400")
    ok("deleted" in out, out)
    eq(sql_int("SELECT COUNT(*) FROM usage_log WHERE request_id = 'rq-old-%d'" % uid), 0)
    eq(sql_int("SELECT credits FROM usage_daily WHERE user_id = %d AND day = '%s'" % (uid, old)), 777)
    ok(sql("SELECT raw_from FROM usage_state").strip() >= str(today() - datetime.timedelta(days=400)))
    check_ok()
    # a shorter retention moves the horizon past the 10-day-old row: gone from the raw rows, kept in
    # the rollup, and the check compares only the days still whole
    admin("db", "purge", "--keep-days", "5")
    eq(sql_int("SELECT COUNT(*) FROM usage_log WHERE request_id = 'rq-behind-%d'" % uid), 0)
    eq(sql_int("SELECT credits FROM usage_daily WHERE user_id = %d AND day = '%s'" % (uid, ten)), 777)
    check_ok()


def test_report_from_the_rollup():
    email, key = new_user(plan="pro", usd="5")
    for _ in range(2):
        eq(send(key, "messages").status, 200)
    uid = settled(email, 2)
    out = admin("report", "--by", "user", "--csv")
    rows = {r["user"]: r for r in csv.DictReader(io.StringIO(out))}
    eq((rows[email]["requests"], rows[email]["credits"]), ("2", str(2 * 75)))
    out = admin("report", "--by", "day", "--since", str(today()), "--until", str(today()))
    ok(str(today()) in out and "total:" in out, out)
    eq(admin_fail("report", "--by", "week")[0], 2)
    eq(admin_fail("report", "--since", "2026-02-30")[0], 2)
    ok(uid > 0)
