"""Card top-ups (README, "Top-ups by card"): the checkout creates a Stripe Checkout Session on the
stand-in (tests/fake_stripe.py) as Stripe's API expects it, and only the signed webhook grants: one lot
per paid session whatever the deliveries do (duplicates, twenty at once, out of order, late), nothing
for forged, stale, mismatched or foreign events; refunds take back unspent credits; every granted
top-up has a receipt, numbered without gaps."""

import concurrent.futures
import datetime
import json
import os
import re
import urllib.request

from portal import Portal
from zgtest import (Skip, admin, auth, eq, ok, request, sql_int, sql_rows, user_id, wait_released, wait_until)

STRIPE = os.environ.get("ZG_STRIPE", "")
CO = "/api/v1/account/checkout"
RECEIPT_RE = re.compile(r"^ZG-(\d{4})-(\d{6})$")


def stripe(method, path, body=None):
    if not STRIPE:
        raise Skip("no Stripe stand-in (ZG_STRIPE)")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(STRIPE + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"{}")


def stripe_api(path, form):
    """A call to the stand-in's Stripe API with the gateway's secret key (as the operator's dashboard would)."""
    data = urllib.parse.urlencode(form).encode()
    req = urllib.request.Request(STRIPE + path, data=data, method="POST", headers={
        "Authorization": "Bearer " + os.environ["ZG_STRIPE_SK"]})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def customer():
    if not STRIPE:
        raise Skip("no Stripe stand-in (ZG_STRIPE)")
    p = Portal()
    eq(p.signup().status, 201)
    p.uid = user_id(p.email)
    return p


def start(p, plan="max", usd=100, headers=None):
    r = p.call("POST", CO, {"plan": plan, "usd": usd}, headers=headers)
    eq(r.status, 201, r.text)
    co = r.json()
    co["session"] = co["url"].rsplit("/", 1)[1]
    return co


def pay(co, deliver=True, async_=False):
    return stripe("POST", "/_fake/sessions/%s/pay" % co["session"], {"deliver": deliver, "async": async_})


def deliver(**spec):
    return stripe("POST", "/_fake/deliver", spec)


def outcomes(res):
    return [(x["status"], json.loads(x["answer"]).get("outcome") if x["status"] == 200 else None)
            for x in res["results"]]


def status_of(p, co):
    r = p.call("GET", CO + "/" + co["id"])
    eq(r.status, 200, r.text)
    return r.json()


def lots(p):
    return p.me().json()["lots"]


def paid(p, co, timeout=10):
    wait_until(lambda: status_of(p, co)["status"] == "paid", timeout=timeout, interval=0.1, msg="checkout paid")
    return status_of(p, co)


# ------------------------------------------------------------------------------ the happy path


def test_paid_checkout_grants_one_lot_with_a_receipt_and_the_session_is_made_as_stripe_expects():
    p = customer()
    plans = request("GET", "/api/v1/account/plans").json()
    eq(plans["payments"], True)
    eq([x["plan"] for x in plans["plans"]], ["pro", "max", "enterprise"])
    eq(plans["plans"][1]["pack_usd"], "100.000000")
    stripe("DELETE", "/_fake/requests")
    co = start(p, "max", 100)
    eq((co["plan"], co["usd"]), ("max", "100.000000"))
    ok(co["id"].startswith("co_") and co["url"].startswith(STRIPE + "/c/pay/cs_test_"), co)
    reqs = [x for x in stripe("GET", "/_fake/requests")["requests"] if x["path"] == "/v1/checkout/sessions"]
    eq(len(reqs), 1, reqs)
    q = reqs[0]
    ok(q["authorized"], "the secret key was sent as a Bearer token")
    eq(q["content_type"], "application/x-www-form-urlencoded")
    eq(q["idempotency_key"], co["id"])
    ok("line_items%5B0%5D%5Bprice_data%5D%5Bunit_amount%5D=10000" in q["raw"], q["raw"])
    f = q["form"]
    eq(f["mode"], "payment")
    eq(f["client_reference_id"], co["id"])
    eq(f["customer_email"], p.email)
    item = f["line_items"][0]
    eq((item["quantity"], item["price_data"]["currency"], item["price_data"]["unit_amount"]), ("1", "usd", "10000"))
    ok("400,000,000 credits" in item["price_data"]["product_data"]["name"], item)
    cid = sql_int("SELECT id FROM checkouts WHERE ref = '%s'" % co["id"])
    eq(f["metadata"], {"checkout_id": str(cid), "plan": "max", "credits": "400000000", "user_id": str(p.uid)})
    eq(f["payment_intent_data"]["metadata"]["checkout_id"], str(cid))
    ok(f["success_url"].endswith("/checkout?done=%s&session_id={CHECKOUT_SESSION_ID}" % co["id"]), f["success_url"])
    ok(f["cancel_url"].endswith("/checkout?canceled=" + co["id"]), f["cancel_url"])
    eq(status_of(p, co)["status"], "open")
    eq(lots(p), [])
    pay(co)
    st = paid(p, co)
    eq(st["credits"], 400000000)
    eq(st["balance"], 400000000)
    m = RECEIPT_RE.match(st["receipt"] or "")
    ok(m and int(m.group(1)) == datetime.datetime.now(datetime.timezone.utc).year, st)
    me = p.me().json()
    eq((me["plan"], me["credits"]), ("max", 400000000))
    eq([(x["plan"], x["multiplier"], x["usd_paid"], x["credits_granted"]) for x in me["lots"]],
       [("max", 4, "100.000000", 400000000)])
    rs = p.call("GET", "/api/v1/account/receipts").json()["receipts"]
    eq(len(rs), 1)
    r = p.call("GET", "/api/v1/account/receipts/" + st["receipt"]).json()
    eq((r["number"], r["plan"], r["multiplier"], r["usd_paid"], r["credits"], r["method"], r["buyer"]),
       (st["receipt"], "max", 4, "100.000000", 400000000, "card", p.email))
    session = stripe("GET", "/_fake/sessions/" + co["session"])
    eq(r["payment_ref"], session["payment_intent"])
    ok(r["seller"]["name"], r["seller"])
    eq(r["refunds"], [])
    # another customer sees none of it
    q2 = customer()
    eq(q2.call("GET", "/api/v1/account/receipts/" + st["receipt"]).status, 404)
    eq(q2.call("GET", CO + "/" + co["id"]).status, 404)
    eq(q2.call("GET", "/api/v1/account/receipts").json()["receipts"], [])


def test_twenty_parallel_deliveries_of_one_event_and_redeliveries_grant_once():
    p = customer()
    co = start(p, "pro", 25)
    pay(co, deliver=False)
    res = deliver(session=co["session"], type="checkout.session.completed", copies=20, parallel=True)
    got = outcomes(res)
    eq(sorted(set(s for s, _ in got)), [200], got)
    eq(sorted(o for _, o in got), ["duplicate"] * 19 + ["granted"], got)
    # the same session again under new event ids (Stripe sends completed, then async_payment_succeeded)
    got = [outcomes(deliver(session=co["session"], type="checkout.session.async_payment_succeeded"))[0]
           for _ in range(3)]
    eq(got, [(200, "already_paid")] * 3)
    got = outcomes(deliver(session=co["session"], type="checkout.session.completed", event_id=res["event"]["id"]))
    eq(got, [(200, "duplicate")])
    eq(len(lots(p)), 1)
    eq(p.me().json()["credits"], 25000000)
    eq(sql_int("SELECT COUNT(*) FROM stripe_events WHERE checkout_id = (SELECT id FROM checkouts WHERE ref = '%s')"
               % co["id"]), 4)


# ------------------------------------------------------------------------------ what grants nothing


def test_forged_stale_and_unsigned_webhooks_are_refused_before_anything_is_read():
    p = customer()
    co = start(p, "pro", 10)
    pay(co, deliver=False)
    for sig in ("bad", "wrong_secret", "stale", "future", "none"):
        got = deliver(session=co["session"], type="checkout.session.completed", signature=sig)["results"]
        eq(got[0]["status"], 400, (sig, got))
        err = json.loads(got[0]["answer"])["error"]
        eq(err["type"], "invalid_signature", err)
    eq(lots(p), [])
    eq(status_of(p, co)["status"], "open")
    # a header with several v1 signatures (a secret being rolled) passes when one of them matches
    got = outcomes(deliver(session=co["session"], type="checkout.session.completed", signature="multi"))
    eq(got, [(200, "granted")])
    eq(len(lots(p)), 1)
    # a signed body that is not an event, and an event of a type the gateway does not act on
    eq(deliver(raw="not json", signature="good")["results"][0]["status"], 400)
    got = outcomes(deliver(object={"id": "pi_x", "object": "payment_intent"}, type="payment_intent.created"))
    eq(got, [(200, "ignored")])
    # far too large: refused without reading it all
    big = request("POST", "/api/v1/stripe/webhook", headers={"Content-Type": "application/json"},
                  body=b"{" + b" " * (300 * 1024) + b"}")
    eq(big.status, 413, big.text)


def test_amount_mismatch_foreign_session_and_forged_metadata_grant_only_what_the_gateway_recorded():
    p = customer()
    co = start(p, "max", 200)
    pay(co, deliver=False)
    got = outcomes(deliver(session=co["session"], type="checkout.session.completed", override={"amount_total": 100}))
    eq(got, [(200, "mismatch")])
    eq(status_of(p, co)["status"], "mismatch")
    eq(lots(p), [])
    co2 = start(p, "pro", 10)
    pay(co2, deliver=False)
    eq(outcomes(deliver(session=co2["session"], type="checkout.session.completed", override={"currency": "eur"})),
       [(200, "mismatch")])
    eq(lots(p), [])
    # a session the gateway never made, even naming one of our checkouts in its metadata
    cid = sql_int("SELECT id FROM checkouts WHERE ref = '%s'" % co2["id"])
    fake = {"id": "cs_test_never_made_here", "object": "checkout.session", "amount_total": 1000, "currency": "usd",
            "payment_status": "paid", "payment_intent": "pi_forged", "metadata": {"checkout_id": str(cid)}}
    eq(outcomes(deliver(object=fake, type="checkout.session.completed")), [(200, "unknown_session")])
    eq(lots(p), [])
    # the event's metadata is not trusted: a paid session grants its checkout's own plan and amount
    co3 = start(p, "pro", 7)
    pay(co3, deliver=False)
    forged = {"metadata": {"checkout_id": "1", "plan": "enterprise", "credits": "999999999999"}}
    eq(outcomes(deliver(session=co3["session"], type="checkout.session.completed", override=forged)),
       [(200, "granted")])
    eq([(x["plan"], x["credits_granted"]) for x in lots(p)], [("pro", 7000000)])


def test_out_of_order_async_and_late_events():
    p = customer()
    # bank debit: completed (unpaid) -> processing, then async_payment_succeeded grants
    co = start(p, "pro", 12)
    ev = pay(co, deliver=False, async_=True)["events"]
    eq([e["type"] for e in ev], ["checkout.session.completed", "checkout.session.async_payment_succeeded"])
    succeeded = ev[1]["object"]
    eq(outcomes(deliver(object=ev[0]["object"], type=ev[0]["type"])), [(200, "pending")])
    eq(status_of(p, co)["status"], "processing")
    eq(lots(p), [])
    eq(outcomes(deliver(object=succeeded, type=ev[1]["type"])), [(200, "granted")])
    # the older "completed, unpaid" arriving again late changes nothing
    eq(outcomes(deliver(object=ev[0]["object"], type=ev[0]["type"])), [(200, "ignored")])
    eq(status_of(p, co)["status"], "paid")
    # failed and expired mark the checkout; a payment that still arrives afterwards is granted
    co2 = start(p, "pro", 6)
    eq(outcomes(deliver(session=co2["session"], type="checkout.session.async_payment_failed")), [(200, "failed")])
    eq(status_of(p, co2)["status"], "failed")
    co3 = start(p, "pro", 8)
    stripe("POST", "/_fake/sessions/%s/expire" % co3["session"])
    wait_until(lambda: status_of(p, co3)["status"] == "expired", timeout=10, msg="expired")
    co4 = start(p, "pro", 9)
    pay(co4, deliver=False)
    eq(outcomes(deliver(session=co4["session"], type="checkout.session.expired", override={"status": "expired"})),
       [(200, "expired")])
    eq(outcomes(deliver(session=co4["session"], type="checkout.session.completed")), [(200, "granted")])
    eq(sorted(x["credits_granted"] for x in lots(p)), [9000000, 12000000])


def test_success_page_state_follows_a_webhook_that_lands_after_the_redirect():
    p = customer()
    co = start(p, "max", 100)
    stripe("POST", "/_fake/config", {"webhook_delay_ms": 2500})
    try:
        r = request("POST", co["url"], headers={"Content-Type": "application/x-www-form-urlencoded"},
                    body="action=pay")
        eq(r.status, 303)
        ok("/checkout?done=%s&session_id=%s" % (co["id"], co["session"]) in r.headers.get("location"), r.headers)
        eq(status_of(p, co)["status"], "open")  # back on the portal before the event
        st = paid(p, co, timeout=15)
        eq(st["balance"], 400000000)
    finally:
        stripe("POST", "/_fake/config", {"webhook_delay_ms": 0})


# ------------------------------------------------------------------------------ refunds


def test_refunds_take_back_unspent_credits_once_and_spent_credits_stay_spent():
    p = customer()
    co = start(p, "max", 100)
    pay(co)
    paid(p, co)
    pi = stripe("GET", "/_fake/sessions/" + co["session"])["payment_intent"]
    # a partial refund of $25 takes back 25 x 4 = 100M credits
    refund = stripe_api("/v1/refunds", {"payment_intent": pi, "amount": "2500"})
    eq((refund["object"], refund["amount"], refund["status"]), ("refund", 2500, "succeeded"))
    wait_until(lambda: p.me().json()["credits"] == 300000000, timeout=10, msg="partial refund applied")
    eq(lots(p)[0]["credits_left"], 300000000)
    # the same refund event again, and an older cumulative amount, do nothing more
    eq(outcomes(deliver(payment_intent=pi, type="charge.refunded", override={"amount_refunded": 2500})),
       [(200, "stale")])
    eq(outcomes(deliver(payment_intent=pi, type="charge.refunded", override={"amount_refunded": 1000})),
       [(200, "stale")])
    eq(p.me().json()["credits"], 300000000)
    # spend some, then refund the rest: only what is left is taken back
    key = p.new_key(name="spend").json()["key"]
    r = request("POST", "/api/v1/messages", headers=auth(key), body={
        "model": "claude-haiku-4-5", "max_tokens": 100,
        "messages": [{"role": "user", "content": "spend [[fake:input=1000000,output=0]]"}]}, timeout=30)
    eq(r.status, 200, r.text)
    wait_released(p.email, timeout=15)
    wait_until(lambda: sql_int("SELECT COUNT(*) FROM usage_log WHERE user_id = %d AND status = 'settled'" % p.uid)
               == 1, timeout=15, msg="settled")
    spent = sql_int("SELECT credits FROM usage_log WHERE user_id = %d" % p.uid)
    eq(spent, 1000000)
    stripe_api("/v1/refunds", {"payment_intent": pi})
    wait_until(lambda: status_of(p, co)["status"] == "refunded", timeout=10, msg="full refund applied")
    me = p.me().json()
    eq((me["credits"], me["lots"][0]["credits_left"]), (0, 0))
    rows = sql_rows("SELECT amount_cents, credits_revoked FROM refunds WHERE user_id = %d ORDER BY id" % p.uid)
    eq([tuple(map(int, x)) for x in rows], [(2500, 100000000), (7500, 300000000 - spent)])
    rc = p.call("GET", "/api/v1/account/receipts/" + status_of(p, co)["receipt"]).json()
    eq((rc["refunded_usd"], rc["credits_revoked"], len(rc["refunds"])), ("100.000000", 400000000 - spent, 2))
    month = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m")
    s = p.call("GET", "/api/v1/account/statements/" + month).json()
    eq(s["refund_credits"], 400000000 - spent)
    eq(s["closing_credits"], s["opening_credits"] + s["topup_credits"] - s["usage"]["credits"] - s["refund_credits"])
    eq(s["closing_credits"], 0)
    # a refund of a payment this gateway does not know
    eq(outcomes(deliver(object={"id": "ch_x", "object": "charge", "payment_intent": "pi_unknown",
                                "amount_refunded": 100, "currency": "usd"}, type="charge.refunded")),
       [(200, "unknown_payment")])


# ------------------------------------------------------------------------------ input and processor errors


def test_checkout_input_errors_and_idempotency_key():
    anon = Portal()
    eq(anon.call("POST", CO, {"plan": "pro", "usd": 10}).status, 401)
    p = customer()
    eq(p.call("POST", CO, {"plan": "pro", "usd": 10}, origin="http://evil.example").status, 403)
    for body, field in (({"plan": "gold", "usd": 10}, "plan"), ({"usd": 10}, "plan"), ({"plan": "pro"}, "usd"),
                        ({"plan": "pro", "usd": 4}, "usd"), ({"plan": "pro", "usd": "5.001"}, "usd"),
                        ({"plan": "pro", "usd": 5001}, "usd"), ({"plan": "max", "usd": 150}, "usd"),
                        ({"plan": "max", "usd": 2100}, "usd"), ({"plan": "enterprise", "usd": 0}, "usd"),
                        ({"plan": "pro", "usd": -5}, "usd"), ({"plan": "pro", "usd": True}, "usd")):
        r = p.call("POST", CO, body)
        eq(r.status, 400, (body, r.text))
        err = r.json()["error"]
        eq(err["field"], field, (body, err))
        ok(err["message"], err)
    eq(p.call("POST", CO, b"{", headers={"Content-Type": "application/json"}).status, 400)
    eq(p.call("GET", CO + "/co_000000000000000000000000").status, 404)
    eq(p.call("GET", CO + "/nonsense").status, 404)
    # a repeated request with the same Idempotency-Key answers the same checkout
    a = p.call("POST", CO, {"plan": "pro", "usd": 20}, headers={"Idempotency-Key": "order-1"})
    eq(a.status, 201, a.text)
    b = p.call("POST", CO, {"plan": "pro", "usd": 20}, headers={"Idempotency-Key": "order-1"})
    eq(b.status, 200, b.text)
    eq((b.json()["id"], b.json()["url"]), (a.json()["id"], a.json()["url"]))
    eq(p.call("POST", CO, {"plan": "pro", "usd": 30}, headers={"Idempotency-Key": "order-1"}).status, 409)
    eq(p.call("POST", CO, {"plan": "pro", "usd": 20}, headers={"Idempotency-Key": "x" * 65}).status, 400)
    eq(sql_int("SELECT COUNT(*) FROM checkouts WHERE user_id = %d" % p.uid), 1)


def test_processor_refusal_and_a_lost_answer():
    p = customer()
    stripe("POST", "/_fake/config", {"fail_create": {"status": 400, "message": "Amount too small for usd",
                                                     "code": "amount_too_small"}})
    try:
        r = p.call("POST", CO, {"plan": "pro", "usd": 10})
    finally:
        stripe("POST", "/_fake/config", {"fail_create": None})
    eq(r.status, 502, r.text)
    ok("Amount too small for usd" in r.json()["error"]["message"], r.text)
    eq(sql_rows("SELECT status FROM checkouts WHERE user_id = %d" % p.uid), [["failed"]])
    # the session is made but the answer lost: the retry with the same Idempotency-Key gets the same session
    stripe("DELETE", "/_fake/requests")
    stripe("POST", "/_fake/config", {"drop_create": 1})
    try:
        co = start(p, "pro", 11)
    finally:
        stripe("POST", "/_fake/config", {"drop_create": 0})
    reqs = [x for x in stripe("GET", "/_fake/requests")["requests"] if x["path"] == "/v1/checkout/sessions"]
    eq([x["idempotency_key"] for x in reqs], [co["id"], co["id"]])
    pay(co)
    eq(paid(p, co)["credits"], 11000000)


# ------------------------------------------------------------------------------ receipts


def test_receipt_numbers_have_no_gaps_with_card_and_manual_top_ups_at_once():
    p = customer()
    cos = [start(p, "pro", 5 + i) for i in range(6)]
    for co in cos:
        pay(co, deliver=False)

    def card(co):
        return outcomes(deliver(session=co["session"], type="checkout.session.completed"))

    def manual(i):
        return admin("topup", p.email, "pro", "1", "--ref", "bank-%d-%d" % (i, p.uid))

    with concurrent.futures.ThreadPoolExecutor(12) as ex:
        futs = [ex.submit(card, co) for co in cos] + [ex.submit(manual, i) for i in range(6)]
        results = [f.result() for f in futs]
    ok(all(x == [(200, "granted")] for x in results[:6]), results)
    ok(all("receipt: ZG-" in x for x in results[6:]), results[6:])
    again = admin("topup", p.email, "pro", "1", "--ref", "bank-0-%d" % p.uid)
    ok("already granted" in again and "receipt: ZG-" in again, again)
    eq(len(lots(p)), 12)
    mine = p.call("GET", "/api/v1/account/receipts").json()["receipts"]
    eq(len(mine), 12)
    eq(sorted(x["method"] for x in mine), ["card"] * 6 + ["manual"] * 6)
    year = datetime.datetime.now(datetime.timezone.utc).year
    seqs = [int(x[0]) for x in sql_rows("SELECT seq FROM receipts WHERE year = %d ORDER BY seq" % year)]
    eq(seqs, list(range(1, len(seqs) + 1)))
    eq(sql_int("SELECT last FROM receipt_seq WHERE year = %d" % year), len(seqs))
    eq(sql_int("SELECT COUNT(*) FROM topups t LEFT JOIN receipts r ON r.topup_id = t.id WHERE r.id IS NULL"), 0)


def test_without_a_secret_key_payments_are_off_and_say_so():
    """The account program with an empty [stripe] section: the page learns payments are off, a
    checkout is 503 payments_unavailable, and the webhook refuses everything."""
    import shutil
    import subprocess
    import tempfile

    import fcgi_client
    from zgtest import ADMIN, CONFIG

    p = customer()
    d = tempfile.mkdtemp(prefix="zg-nopay-")
    conf = os.path.join(d, "zenn.conf")
    with open(CONFIG) as f:
        text = f.read()
    text = re.sub(r"(?m)^(secret_key|webhook_secret)\s*=.*$", r"\1 =", text)
    with open(conf, "w") as f:
        f.write(text)
    os.chmod(conf, 0o600)
    sock = os.path.join(d, "account.sock")
    prog = subprocess.Popen([os.path.join(os.path.dirname(ADMIN[-1]), "fcgi", "account"), "--config", conf,
                             "--listen", sock, "--threads", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: os.path.exists(sock), timeout=10, msg="the account program listens")
        st, _, data = fcgi_client.request(sock, "GET", "/api/v1/account/plans")
        eq((st, json.loads(data)["payments"]), (200, False))
        hdrs = {"Content-Type": "application/json", "Cookie": "zg_session=" + p.cookie, "Host": "gw.test",
                "Origin": "http://gw.test"}
        st, _, data = fcgi_client.request(sock, "POST", CO, hdrs, b'{"plan":"pro","usd":10}')
        eq(st, 503, data)
        eq(json.loads(data)["error"]["type"], "payments_unavailable")
        ok("not set up" in json.loads(data)["error"]["message"], data)
        st, _, data = fcgi_client.request(sock, "POST", "/api/v1/stripe/webhook", {"Content-Type": "application/json",
                                                                                  "Stripe-Signature": "t=1,v1=00"}, b"{}")
        eq(st, 503, data)
    finally:
        prog.terminate()
        prog.wait(10)
        shutil.rmtree(d, ignore_errors=True)
    eq(sql_int("SELECT COUNT(*) FROM checkouts WHERE user_id = %d" % p.uid), 0)


def test_admin_lists_checkouts_and_finds_the_mismatched_ones():
    p = customer()
    good, bad = start(p, "pro", 15), start(p, "max", 100)
    pay(good)
    paid(p, good)
    pay(bad, deliver=False)
    eq(outcomes(deliver(session=bad["session"], type="checkout.session.completed", override={"amount_total": 5000})),
       [(200, "mismatch")])
    rows = json.loads(admin("checkout", "list", "--email", p.email, "--json"))
    eq([(x["id"], x["status"], x["usd"], x["credits"]) for x in rows],
       [(bad["id"], "mismatch", "100.000000", 400000000), (good["id"], "paid", "15.000000", 15000000)])
    eq(rows[0]["note"], "paid 5000 usd cents, expected 10000 usd cents")
    ok(RECEIPT_RE.match(rows[1]["receipt"]) and rows[0]["receipt"] is None, rows)
    mism = json.loads(admin("checkout", "list", "--status", "mismatch", "--limit", "1000", "--json"))
    ok(bad["id"] in [x["id"] for x in mism] and good["id"] not in [x["id"] for x in mism], mism)
    table = admin("checkout", "list", "--email", p.email)
    ok(bad["id"] in table and "mismatch" in table, table)
