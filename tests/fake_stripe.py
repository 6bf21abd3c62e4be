#!/usr/bin/env python3
"""Stand-in for the Stripe API, for zenn-gateway's tests and the offline dev stack.

It speaks Stripe's wire format for what the gateway uses: form-encoded requests with bracketed
keys (line_items[0][price_data][currency]=usd), Bearer secret keys, Idempotency-Key replay, JSON
objects and error objects. It serves a payment page for each Checkout Session, and delivers signed
webhook events (Stripe-Signature: t=...,v1=HMAC-SHA256 of "t.body") to the gateway, retrying like
Stripe on a non-2xx answer. It records every API request and every delivery for tests.

    python3 tests/fake_stripe.py --port 0 --port-file F --webhook-url URL --webhook-secret whsec_...
                                 --secret-key sk_test_... [--log FILE]

API (as Stripe):  POST /v1/checkout/sessions, GET /v1/checkout/sessions/{id}, POST /v1/refunds
Payment page:     GET /c/pay/{session}, POST /c/pay/{session} (action=pay|pay_async|cancel)
Control (tests):  GET /_fake/health; GET|DELETE /_fake/requests; GET|DELETE /_fake/deliveries;
                  GET /_fake/sessions/{id}; POST /_fake/sessions/{id}/pay {"async": bool, "deliver": bool};
                  POST /_fake/sessions/{id}/expire; POST /_fake/deliver (see deliver()); POST /_fake/config
Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import html
import json
import os
import secrets
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

API_VERSION = "2024-06-20"
MAX_BODY = 1 << 20
SESSION_PARAMS = {"mode", "client_reference_id", "customer_email", "line_items", "metadata", "payment_intent_data",
                  "success_url", "cancel_url", "expires_at", "currency", "locale", "submit_type"}


def rid(prefix: str, n: int = 24) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(n))


def sign(body: bytes, secret: str, t: int) -> str:
    mac = hmac.new(secret.encode(), str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    return "t=%d,v1=%s" % (t, mac)


class StripeError(Exception):
    def __init__(self, status, message, param=None, code=None, etype="invalid_request_error"):
        super().__init__(message)
        self.status, self.body = status, {"error": {"type": etype, "message": message}}
        if param:
            self.body["error"]["param"] = param
        if code:
            self.body["error"]["code"] = code


def parse_form(raw: str) -> dict:
    """Stripe's bracketed form keys as nested objects: a[b][0][c]=v -> {"a": {"b": [{"c": "v"}]}}."""
    root: dict = {}
    for key, value in parse_qsl(raw, keep_blank_values=True, strict_parsing=False):
        parts = key.replace("]", "").split("[")
        if not parts[0]:
            raise StripeError(400, "Invalid parameter name: %s" % key, key)
        node = root
        for i, p in enumerate(parts):
            last = i == len(parts) - 1
            if last:
                if p in node and not isinstance(node[p], str):
                    raise StripeError(400, "Invalid hash or array: %s" % key, key)
                node[p] = value
            else:
                node = node.setdefault(p, {})
                if not isinstance(node, dict):
                    raise StripeError(400, "Invalid parameter: %s" % key, key)
    return _arrays(root)


def _arrays(o):
    if isinstance(o, dict):
        if o and all(k.isdigit() for k in o):
            keys = sorted(o, key=int)
            if [int(k) for k in keys] != list(range(len(keys))):
                raise StripeError(400, "Invalid array indexes", None)
            return [_arrays(o[k]) for k in keys]
        return {k: _arrays(v) for k, v in o.items()}
    return o


def _int(v, param, minimum=0):
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise StripeError(400, "Invalid integer: %s" % v, param) from None
    if n < minimum:
        raise StripeError(400, "This value must be greater than or equal to %d." % minimum, param)
    return n


class State:
    def __init__(self, args, port):
        self.lock = threading.Lock()
        self.args = args
        self.base = "http://127.0.0.1:%d" % port
        self.sessions: dict = {}
        self.charges: dict = {}  # by payment intent
        self.idem: dict = {}
        self.requests: list = []
        self.deliveries: list = []
        self.config = {"webhook_delay_ms": 0, "fail_create": None, "drop_create": 0, "retries": 3}
        self.pool = ThreadPoolExecutor(max_workers=16)
        self.log = open(args.log, "a", encoding="utf-8") if args.log else None

    def note(self, line):
        if self.log:
            self.log.write(time.strftime("%Y-%m-%dT%H:%M:%S ") + line + "\n")
            self.log.flush()

    # ---- API ----------------------------------------------------------------------------------

    def create_session(self, f: dict) -> dict:
        unknown = sorted(set(f) - SESSION_PARAMS)
        if unknown:
            raise StripeError(400, "Received unknown parameter: %s" % unknown[0], unknown[0], "parameter_unknown")
        if f.get("mode") != "payment":
            raise StripeError(400, "Missing required param: mode.", "mode", "parameter_missing")
        if not f.get("success_url"):
            raise StripeError(400, "Missing required param: success_url.", "success_url", "parameter_missing")
        items = f.get("line_items")
        if not isinstance(items, list) or not items:
            raise StripeError(400, "Missing required param: line_items.", "line_items", "parameter_missing")
        total, currency, names = 0, None, []
        for i, it in enumerate(items):
            pd = it.get("price_data") if isinstance(it, dict) else None
            if not isinstance(pd, dict):
                raise StripeError(400, "Missing required param: line_items[%d][price_data]." % i)
            cur = pd.get("currency", "")
            if len(cur) != 3 or not cur.islower():
                raise StripeError(400, "Invalid currency: %s" % cur, "line_items[%d][price_data][currency]" % i)
            if currency and cur != currency:
                raise StripeError(400, "All line items must use the same currency.")
            currency = cur
            unit = _int(pd.get("unit_amount"), "line_items[%d][price_data][unit_amount]" % i)
            qty = _int(it.get("quantity"), "line_items[%d][quantity]" % i, 1)
            name = (pd.get("product_data") or {}).get("name")
            if not name:
                raise StripeError(400, "Missing required param: line_items[%d][price_data][product_data][name]." % i)
            names.append(name)
            total += unit * qty
        if total < 50:
            raise StripeError(400, "The Checkout Session's total amount due must add up to at least $0.50 usd",
                              None, "amount_too_small")
        if total > 99999999:
            raise StripeError(400, "The Checkout Session's total amount must be no more than $999,999.99",
                              None, "amount_too_large")
        sid = rid("cs_test_a1", 56)
        now = int(time.time())
        s = {"id": sid, "object": "checkout.session", "amount_subtotal": total, "amount_total": total,
             "cancel_url": f.get("cancel_url"), "client_reference_id": f.get("client_reference_id"),
             "created": now, "currency": currency, "customer_email": f.get("customer_email"),
             "expires_at": now + 86400, "livemode": False, "metadata": f.get("metadata") or {},
             "mode": "payment", "payment_intent": None, "payment_status": "unpaid", "status": "open",
             "success_url": f.get("success_url"), "url": "%s/c/pay/%s" % (self.base, sid),
             "_names": names, "_pi_metadata": (f.get("payment_intent_data") or {}).get("metadata") or {}}
        with self.lock:
            self.sessions[sid] = s
        return public(s)

    def refund(self, f: dict) -> dict:
        pi = f.get("payment_intent")
        with self.lock:
            ch = self.charges.get(pi)
            if not ch:
                raise StripeError(404, "No such payment_intent: '%s'" % pi, "payment_intent", "resource_missing")
            left = ch["amount"] - ch["amount_refunded"]
            amount = _int(f["amount"], "amount", 1) if "amount" in f else left
            if amount > left:
                raise StripeError(400, "Refund amount ($%.2f) is greater than unrefunded amount on charge ($%.2f)"
                                  % (amount / 100, left / 100), "amount", "amount_too_large")
            ch["amount_refunded"] += amount
            ch["refunded"] = ch["amount_refunded"] == ch["amount"]
            charge = dict(ch)
        refund = {"id": rid("re_"), "object": "refund", "amount": amount, "charge": charge["id"],
                  "currency": charge["currency"], "payment_intent": pi, "status": "succeeded",
                  "created": int(time.time())}
        self.emit("charge.refunded", charge)
        return refund

    # ---- payment -------------------------------------------------------------------------------

    def pay(self, sid: str, async_: bool = False, deliver: bool = True) -> list:
        with self.lock:
            s = self.sessions.get(sid)
            if not s or s["status"] != "open":
                raise StripeError(400, "This Checkout Session is no longer open.", None, "checkout_closed")
            pi = rid("pi_")
            s["status"] = "complete"
            s["payment_intent"] = pi
            s["payment_status"] = "unpaid" if async_ else "paid"
            self.charges[pi] = {"id": rid("ch_"), "object": "charge", "amount": s["amount_total"],
                                "amount_captured": s["amount_total"], "amount_refunded": 0,
                                "currency": s["currency"], "paid": True, "payment_intent": pi, "refunded": False,
                                "metadata": s["_pi_metadata"], "status": "succeeded"}
            first = public(s)
        events = [("checkout.session.completed", first)]
        if async_:
            with self.lock:
                s["payment_status"] = "paid"
                events.append(("checkout.session.async_payment_succeeded", public(s)))
        if deliver:
            for t, obj in events:
                self.emit(t, obj)
        return events

    def expire(self, sid: str) -> dict:
        with self.lock:
            s = self.sessions.get(sid)
            if not s or s["status"] != "open":
                raise StripeError(400, "Only Checkout Sessions with a status in [\"open\"] can be expired.")
            s["status"] = "expired"
            obj = public(s)
        self.emit("checkout.session.expired", obj)
        return obj

    # ---- webhooks ------------------------------------------------------------------------------

    def event(self, etype: str, obj: dict, eid: str | None = None) -> dict:
        return {"id": eid or rid("evt_"), "object": "event", "api_version": API_VERSION, "created": int(time.time()),
                "data": {"object": obj}, "livemode": False, "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None}, "type": etype}

    def emit(self, etype: str, obj: dict):
        """Deliver an event in the background after webhook_delay_ms, retrying on failure."""
        ev = self.event(etype, obj)
        delay = self.config["webhook_delay_ms"] / 1000.0

        def run():
            time.sleep(delay)
            for attempt in range(1 + int(self.config["retries"])):
                status, _ = self.post(ev, "good", attempt=attempt)
                if 200 <= status < 300:
                    return
                time.sleep(0.5 * (attempt + 1))
        self.pool.submit(run)
        return ev

    def post(self, ev, signature="good", attempt=0, body=None, skew=0):
        body = body if body is not None else json.dumps(ev, indent=2).encode()
        t = int(time.time()) + skew
        secret = self.args.webhook_secret
        hdr = {"good": lambda: sign(body, secret, t),
               "bad": lambda: "t=%d,v1=%s" % (t, "0" * 64),
               "wrong_secret": lambda: sign(body, "whsec_not_the_secret", t),
               "stale": lambda: sign(body, secret, t - 600),
               "future": lambda: sign(body, secret, t + 600),
               "multi": lambda: "t=%d,v1=%s,%s,v0=%s" % (t, "f" * 64, sign(body, secret, t).split(",")[1], "e" * 64),
               "none": lambda: None}[signature]()
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"}
        if hdr is not None:
            headers["Stripe-Signature"] = hdr
        req = urllib.request.Request(self.args.webhook_url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, answer = r.status, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            status, answer = e.code, e.read().decode("utf-8", "replace")
        except OSError as e:
            status, answer = 0, str(e)
        rec = {"event": ev.get("id") if isinstance(ev, dict) else None,
               "type": ev.get("type") if isinstance(ev, dict) else None,
               "signature": signature, "attempt": attempt, "status": status, "answer": answer[:500]}
        with self.lock:
            self.deliveries.append(rec)
        self.note("webhook %s %s -> %d" % (rec["event"], rec["type"], status))
        return status, answer

    def deliver(self, spec: dict) -> list:
        """Deliver one event on demand, synchronously: spec is {"type", and "session" (an id, whose
        current object is sent) or "object"; "override": fields set in the object; "event_id"; "copies"
        (n deliveries of the same event), "parallel" (all copies at once); "signature": good | bad |
        wrong_secret | stale | future | multi | none; "delay_ms" before sending; "raw": a body sent
        as is}. Returns [{"status", "answer"}] per copy."""
        obj = spec.get("object")
        if spec.get("session"):
            with self.lock:
                s = self.sessions.get(spec["session"])
                if not s:
                    raise StripeError(404, "No such checkout.session: %s" % spec["session"])
                obj = public(s)
        if spec.get("payment_intent"):
            with self.lock:
                ch = self.charges.get(spec["payment_intent"])
                if not ch:
                    raise StripeError(404, "No such payment_intent: %s" % spec["payment_intent"])
                obj = dict(ch)
        obj = dict(obj or {})
        obj.update(spec.get("override") or {})
        ev = self.event(spec.get("type", "checkout.session.completed"), obj, spec.get("event_id"))
        body = spec["raw"].encode() if isinstance(spec.get("raw"), str) else None
        time.sleep(int(spec.get("delay_ms", 0)) / 1000.0)
        copies = max(1, int(spec.get("copies", 1)))
        sig = spec.get("signature", "good")
        if spec.get("parallel") and copies > 1:
            barrier = threading.Barrier(copies)

            def one(_):
                barrier.wait()
                return self.post(ev, sig, body=body)
            with ThreadPoolExecutor(max_workers=copies) as ex:
                results = list(ex.map(one, range(copies)))
        else:
            results = [self.post(ev, sig, body=body) for _ in range(copies)]
        return {"event": ev, "results": [{"status": s, "answer": a} for s, a in results]}


def public(s: dict) -> dict:
    return {k: v for k, v in s.items() if not k.startswith("_")}


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Pay — test mode</title><link rel="icon" href="data:,">
<style>body{{font:16px system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}}
.box{{border:1px solid #ccc;border-radius:8px;padding:1.5rem}}.amt{{font-size:2rem;font-weight:600}}
button{{font:inherit;padding:.6rem 1.2rem;margin:.3rem .3rem 0 0}}label{{display:block;margin:.8rem 0 .2rem}}
input{{font:inherit;width:100%;box-sizing:border-box;padding:.4rem}}</style></head>
<body><p><strong>TEST MODE</strong> — a stand-in for Stripe Checkout; no card is charged.</p>
<div class="box"><div>{names}</div><div class="amt" id="amount">{amount} {currency}</div>
<div>{email}</div><form method="post"><label for="card">Card number</label>
<input id="card" name="card" value="4242 4242 4242 4242" autocomplete="off">
<button id="pay" name="action" value="pay">Pay {amount}</button>
<button id="pay-async" name="action" value="pay_async">Pay by bank debit</button>
<button id="cancel" name="action" value="cancel">Cancel</button></form></div></body></html>"""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-stripe"

    def log_message(self, fmt, *a):
        self.server.state.note("%s %s" % (self.address_string(), fmt % a))

    def reply(self, status, obj=None, ctype="application/json", body=None, headers=()):
        if body is None:
            body = json.dumps(obj, indent=2).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Request-Id", rid("req_", 14))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise StripeError(413, "Request too large")
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_DELETE(self):
        self.route("DELETE")

    def route(self, method):
        st = self.server.state
        path = urlsplit(self.path).path
        try:
            raw = self.body()
            if path.startswith("/_fake/"):
                return self.control(method, path, raw)
            if path.startswith("/c/pay/"):
                return self.page(method, path[len("/c/pay/"):], raw)
            if path.startswith("/v1/"):
                return self.api(method, path, raw)
            raise StripeError(404, "Unrecognized request URL (%s: %s)." % (method, path))
        except StripeError as e:
            self.reply(e.status, e.body)
        except (ValueError, KeyError, TypeError) as e:
            st.note("bad request: %r" % e)
            self.reply(400, {"error": {"type": "invalid_request_error", "message": str(e)}})

    def api(self, method, path, raw):
        st = self.server.state
        auth = self.headers.get("Authorization", "")
        text = raw.decode("utf-8")
        basic = "Basic " + base64.b64encode((st.args.secret_key + ":").encode()).decode()
        rec = {"method": method, "path": path, "authorized": auth in ("Bearer " + st.args.secret_key, basic),
               "idempotency_key": self.headers.get("Idempotency-Key"),
               "content_type": self.headers.get("Content-Type"), "raw": text, "form": None}
        with st.lock:
            st.requests.append(rec)
        if not rec["authorized"]:
            raise StripeError(401, "Invalid API Key provided: %s" % (auth[7:15] + "****" if auth else "(none)"),
                              None, None)
        if method == "POST" and not (rec["content_type"] or "").startswith("application/x-www-form-urlencoded"):
            raise StripeError(400, "Invalid request: expected application/x-www-form-urlencoded")
        form = parse_form(text) if method == "POST" else {}
        rec["form"] = form
        key = rec["idempotency_key"]
        if key and method == "POST":
            with st.lock:
                seen = st.idem.get(key)
            if seen:
                if seen[0] != (path, text):
                    raise StripeError(400, "Keys for idempotent requests can only be used with the same parameters "
                                      "they were first used with. Try using a key other than '%s' if you meant to "
                                      "execute a different request." % key, None, None, "idempotency_error")
                return self.reply(seen[1], seen[2], headers=[("Idempotent-Replayed", "true")])
        if method == "POST" and path == "/v1/checkout/sessions":
            cfg = st.config
            if cfg["drop_create"] > 0:
                with st.lock:
                    cfg["drop_create"] -= 1
                obj = st.create_session(form)  # made, but the answer is lost
                if key:
                    with st.lock:
                        st.idem[key] = ((path, text), 200, obj)
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(2)
                return None
            if cfg["fail_create"]:
                f = cfg["fail_create"]
                raise StripeError(int(f.get("status", 400)), f.get("message", "Your card was declined."), None,
                                  f.get("code"), f.get("type", "invalid_request_error"))
            status, obj = 200, st.create_session(form)
        elif method == "GET" and path.startswith("/v1/checkout/sessions/"):
            with st.lock:
                s = st.sessions.get(path.rsplit("/", 1)[1])
            if not s:
                raise StripeError(404, "No such checkout.session: '%s'" % path.rsplit("/", 1)[1], "session",
                                  "resource_missing")
            status, obj = 200, public(s)
        elif method == "POST" and path == "/v1/refunds":
            status, obj = 200, st.refund(form)
        else:
            raise StripeError(404, "Unrecognized request URL (%s: %s)." % (method, path))
        if key and method == "POST":
            with st.lock:
                st.idem[key] = ((path, text), status, obj)
        return self.reply(status, obj)

    def page(self, method, sid, raw):
        st = self.server.state
        with st.lock:
            s = st.sessions.get(sid)
        if not s:
            return self.reply(404, ctype="text/html; charset=utf-8", body=b"<h1>No such checkout session</h1>")
        if method == "GET":
            if s["status"] != "open":
                return self.reply(410, ctype="text/html; charset=utf-8",
                                  body=b"<h1>This checkout session is no longer open</h1>")
            amount = "$%.2f" % (s["amount_total"] / 100)
            body = PAGE.format(names=html.escape(", ".join(s["_names"])), amount=amount,
                               currency=html.escape(s["currency"].upper()),
                               email=html.escape(s.get("customer_email") or ""))
            return self.reply(200, ctype="text/html; charset=utf-8", body=body.encode())
        action = dict(parse_qsl(raw.decode())).get("action", "pay")
        if action == "cancel":
            target = s["cancel_url"]
        else:
            st.pay(sid, async_=action == "pay_async")
            target = s["success_url"].replace("{CHECKOUT_SESSION_ID}", sid)
        return self.reply(303, body=b"", ctype="text/plain", headers=[("Location", target)])

    def control(self, method, path, raw):
        st = self.server.state
        spec = json.loads(raw) if raw else {}
        if path == "/_fake/health":
            return self.reply(200, ctype="text/plain", body=b"ok")
        if path == "/_fake/requests":
            with st.lock:
                out = list(st.requests)
                if method == "DELETE":
                    st.requests.clear()
            return self.reply(200, {"requests": out})
        if path == "/_fake/deliveries":
            with st.lock:
                out = list(st.deliveries)
                if method == "DELETE":
                    st.deliveries.clear()
            return self.reply(200, {"deliveries": out})
        if path == "/_fake/config" and method == "POST":
            for k, v in spec.items():
                if k not in st.config:
                    raise StripeError(400, "unknown config key %s" % k)
                st.config[k] = v
            return self.reply(200, {"config": st.config})
        if path == "/_fake/deliver" and method == "POST":
            return self.reply(200, st.deliver(spec))
        parts = path.split("/")  # ["", "_fake", "sessions", id, action?]
        if len(parts) >= 4 and parts[2] == "sessions":
            sid = parts[3]
            if len(parts) == 4 and method == "GET":
                with st.lock:
                    s = st.sessions.get(sid)
                return self.reply(200, public(s)) if s else self.reply(404, {"error": {"message": "no session"}})
            if len(parts) == 5 and parts[4] == "pay" and method == "POST":
                events = st.pay(sid, bool(spec.get("async")), spec.get("deliver", True))
                return self.reply(200, {"events": [{"type": t, "object": o} for t, o in events]})
            if len(parts) == 5 and parts[4] == "expire" and method == "POST":
                return self.reply(200, st.expire(sid))
        raise StripeError(404, "no such control %s %s" % (method, path))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--webhook-url", required=True)
    p.add_argument("--webhook-secret", required=True)
    p.add_argument("--secret-key", required=True)
    p.add_argument("--log")
    args = p.parse_args(argv)
    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.state = State(args, server.server_address[1])
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % server.server_address[1])
        os.replace(tmp, args.port_file)
    print("fake_stripe listening on %s:%d" % (args.host, server.server_address[1]), file=sys.stderr, flush=True)
    signal.sigwait(stop)
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
