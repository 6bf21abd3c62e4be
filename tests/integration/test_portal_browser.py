"""The portal's pages in a real browser (headless Chromium driven by Selenium): a new customer signs
up, creates a key, copies it, calls the API with it (billed), revokes it in the page and sees the
same call refused; signs out and in again; a wrong password is shown on the page; pricing lists
every live model of the catalog; no page logs a console error. Screenshots of every step are kept in
the run's log directory (browser/)."""

import os
import time

from portal import PASSWORD, new_email
from zgtest import BASE, admin, auth, eq, ok, request, sql, sql_int

from browser import (By, EC, WebDriverWait, browser, click_button, console_errors, fill, goto, quit_browser, shot,
                     signed_in_browser, visible, wait)


def teardown_module():
    quit_browser()


def test_signup_key_call_revoke_signout_signin():
    d = browser()
    console_errors()
    email = new_email("web")
    goto("/signup")
    shot("01-signup")
    fill("email", email)
    fill("password", PASSWORD)
    click_button("Create account")
    wait(EC.url_contains("/manage-api-keys"))
    visible("#create")
    shot("02-keys-empty")
    # the header says who is signed in
    wait(lambda d_: d_.find_element(By.ID, "nav-who").text == email)
    fill("name", "browser test")
    click_button("Create key")
    key_el = visible("#new-key-value")
    key = key_el.text.strip()
    ok(key.startswith("ck_") and len(key) == 46, "the new key is shown: %r" % key)
    shot("03-key-created")
    # copy it with the page's button, as a person would, and read the clipboard back
    d.execute_cdp_cmd("Browser.grantPermissions", {"origin": BASE, "permissions": ["clipboardReadWrite",
                                                                                   "clipboardSanitizedWrite"]})
    click_button("Copy")
    wait(lambda d_: d_.find_element(By.ID, "new-key-copy").text == "Copied")
    copied = d.execute_async_script("const done = arguments[0]; navigator.clipboard.readText().then(done, () => done(''));")
    eq(copied, key, "the clipboard holds the key")
    rows = d.find_elements(By.CSS_SELECTOR, "#keys tbody tr")
    eq(len(rows), 1)
    ok(key not in d.find_element(By.ID, "keys").text and key[:12] in rows[0].text, "the list shows only the prefix")
    # the key works and is billed
    admin("topup", email, "pro", "5")
    body = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    r = request("POST", "/api/v1/messages", headers=auth(key), body=body)
    eq(r.status, 200, r.text)
    uid = sql_int("SELECT id FROM users WHERE email = '%s'" % email)
    deadline = time.time() + 5
    while sql_int("SELECT COUNT(*) FROM usage_log WHERE user_id = %d AND status = 'settled'" % uid) != 1:
        ok(time.time() < deadline, "the call is billed")
        time.sleep(0.1)
    # the account page shows the lot and the balance
    goto("/account")
    wait(lambda d_: d_.find_element(By.ID, "plan").text == "Pro")
    ok("5.00" in d.find_element(By.ID, "lots").text, "the lot is listed")
    shot("04-account")
    # revoke it in the page (confirm dialog accepted)
    goto("/manage-api-keys")
    visible("#keys tbody tr")
    d.find_element(By.CSS_SELECTOR, "#keys tbody tr button[aria-label^='Revoke']").click()
    WebDriverWait(d, 5).until(EC.alert_is_present()).accept()
    wait(lambda d_: "revoked" in d_.find_element(By.CSS_SELECTOR, "#keys tbody tr").text)
    shot("05-revoked")
    deadline = time.time() + 1.5
    while request("POST", "/api/v1/messages", headers=auth(key), body=body).status != 401:
        ok(time.time() < deadline, "the revoked key is refused within a second")
        time.sleep(0.1)
    # sign out, then in again
    click_button("Sign out")
    wait(EC.url_contains("/login"))
    goto("/manage-api-keys")
    wait(EC.url_contains("/login"))
    fill("email", email)
    fill("password", "not my password")
    click_button("Sign in")
    err = visible("#password-error")
    ok("wrong" in err.text.lower(), "the error is shown next to the password: %r" % err.text)
    eq(d.find_element(By.ID, "password").get_attribute("aria-invalid"), "true")
    shot("06-wrong-password")
    fill("password", PASSWORD)
    click_button("Sign in")
    wait(EC.url_contains("/manage-api-keys"))
    visible("#keys tbody tr")
    shot("07-signed-in-again")
    eq(console_errors(), [], "no console errors")
    sql("DELETE FROM login_failures")


def test_signup_errors_are_shown_next_to_the_field():
    goto("/")
    browser().delete_all_cookies()
    console_errors()
    goto("/signup")
    fill("email", "not-an-address")
    fill("password", PASSWORD)
    click_button("Create account")
    ok("valid e-mail" in visible("#email-error").text, "e-mail error next to the field")
    fill("email", new_email("web"))
    fill("password", "short")
    click_button("Create account")
    ok("10 characters" in visible("#password-error").text, "password error next to the field")
    shot("08-signup-errors")
    eq(console_errors(), [])


def test_pricing_lists_every_live_model():
    console_errors()
    goto("/pricing")
    wait(lambda d_: d_.find_elements(By.CSS_SELECTOR, "#models tr[data-model]"))
    shown = {e.get_attribute("data-model"): e.text for e in browser().find_elements(By.CSS_SELECTOR, "#models tr[data-model]")}
    models = request("GET", "/api/v1/models").json()["data"]
    live = [m["id"] for m in models if m["status"] == "live"]
    ok(live, "the catalog has live models")
    for m in live:
        ok(m in shown and "Live" in shown[m], "%s is listed as live" % m)
    for m in models:
        p = m.get("pricing", {})
        if m["status"] == "live" and p.get("input") is not None:
            v = "%.4f" % (p["input"] / 1e6)
            v = v.rstrip("0") if len(v.rstrip("0").split(".")[1]) >= 2 else "%.2f" % (p["input"] / 1e6)
            ok("$" + v in shown[m["id"]], "%s: input at $%s per million in %r" % (m["id"], v, shown[m["id"]]))
    ok("400" in browser().find_element(By.ID, "plans").text, "the Max example")
    shot("09-pricing")
    eq(console_errors(), [])


def test_docs_fill_in_this_gateways_address():
    console_errors()
    goto("/docs")
    text = visible("#docs").text
    for s in ("Claude Code", "Codex CLI", "Gemini CLI", "OpenCode", "Cursor", "curl",
              BASE + "/api/v1/codex", BASE + "/api/v1/gemini"):
        ok(s in text, "docs mention %s" % s)
    shot("10-docs")
    eq(console_errors(), [])
    goto("/no-such-page")
    ok("Page not found" in browser().page_source, "a readable 404 page")
    console_errors()  # the page's own 404 is logged as a failed resource
    for path in ("/", "/login", "/signup", "/reset?token=x"):
        goto(path)
        eq(console_errors(), [], "no console errors on %s" % path)


def test_usage_page_totals_chart_live_update_and_csv():
    """Requests with two keys on two models: /usage shows the same totals as the API and the
    database, draws the spend chart, picks up a request made meanwhile within 5 s without a reload,
    and its CSV button downloads what the API answers."""
    import csv
    import io
    import tempfile
    from portal import Portal

    p = Portal()
    eq(p.signup().status, 201)
    admin("topup", p.email, "max", "5")
    ka = p.new_key(name="web-a").json()["key"]
    kb = p.new_key(name="web-b").json()["key"]
    msg = {"model": "claude-haiku-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": "hi [[fake:input=30,output=9]]"}]}
    chat = {"model": "gpt-5.5", "max_tokens": 50, "messages": [{"role": "user", "content": "hi [[fake:input=12,output=4]]"}]}
    for _ in range(3):
        eq(request("POST", "/api/v1/messages", headers=auth(ka), body=msg).status, 200)
    for _ in range(2):
        eq(request("POST", "/api/v1/codex/chat/completions", headers=auth(kb, "openai"), body=chat).status, 200)
    uid = sql_int("SELECT id FROM users WHERE email = '%s'" % p.email)
    wait(lambda _: sql_int("SELECT COUNT(*) FROM usage_log WHERE user_id = %d AND status <> 'pending'" % uid) == 5, 30)
    signed_in_browser(p)
    console_errors()
    goto("/usage")
    wait(lambda d_: d_.find_element(By.ID, "t-requests").text == "5")
    api = p.call("GET", "/api/v1/account/usage?group_by=model").json()["totals"]
    db_credits = sql_int("SELECT SUM(credits) FROM usage_log WHERE user_id = %d" % uid)
    eq(api["credits"], db_credits)
    cost = browser().find_element(By.ID, "t-cost").text
    ok(abs(float(cost.replace("$", "").replace(",", "")) - db_credits / 1e6) < 1e-9,
       "the page's spend %r is the database's %d credits" % (cost, db_credits))
    models = {r.text for r in browser().find_elements(By.CSS_SELECTOR, "#by-model tbody td:first-child")}
    eq(models, {"claude-haiku-4-5", "gpt-5.5"})
    keys = {r.text for r in browser().find_elements(By.CSS_SELECTOR, "#by-key tbody td:first-child")}
    ok(any(k.startswith("web-a") for k in keys) and any(k.startswith("web-b") for k in keys), keys)
    eq(len(browser().find_elements(By.CSS_SELECTOR, "#log tbody tr")), 5)
    # the chart is drawn: its canvas has painted pixels, and its legend names both models
    painted = browser().execute_script(
        "const c = document.querySelector('#spend-chart canvas'); if (!c) return -1;"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;"
        "for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;")
    ok(painted > 500, "the spend chart has painted pixels: %d" % painted)
    legend = browser().find_element(By.CSS_SELECTOR, "#spend-chart .u-legend").text
    ok("claude-haiku-4-5" in legend and "gpt-5.5" in legend, legend)
    shot("08-usage")
    # live: a request made now shows up without a reload
    t0 = time.time()
    eq(request("POST", "/api/v1/messages", headers=auth(ka), body=msg).status, 200)
    wait(lambda d_: d_.find_element(By.ID, "t-requests").text == "6", 10)
    took = time.time() - t0
    ok(took <= 5.0, "the new request showed up after %.1f s (at most 5)" % took)
    eq(len(browser().find_elements(By.CSS_SELECTOR, "#log tbody tr")), 6)
    # the CSV button downloads what the API answers
    where = tempfile.mkdtemp(prefix="zg-dl-")
    browser().execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": where})
    browser().find_element(By.ID, "usage-csv").click()
    wait(lambda _: [f for f in os.listdir(where) if f.endswith(".csv")], 10)
    f = [f for f in os.listdir(where) if f.endswith(".csv")][0]
    with open(os.path.join(where, f), newline="") as fh:
        rows = list(csv.DictReader(fh))
    want = p.call("GET", "/api/v1/account/usage?group_by=day,model").json()["rows"]
    eq([(r["day"], r["model"], int(r["requests"]), int(r["credits"])) for r in rows],
       [(r["day"], r["model"], r["requests"], r["credits"]) for r in want], "the downloaded CSV = the API's rows")
    # the monthly statement page, printable
    browser().find_element(By.ID, "statement").click()
    wait(EC.url_contains("/account/statements/"))
    visible("#sheet")
    wait(lambda d_: "credits" in d_.find_element(By.ID, "closing").text)
    closing = browser().find_element(By.ID, "closing").text
    bal = sql_int("SELECT balance FROM users WHERE id = %d" % uid)
    ok(closing.startswith("{:,}".format(bal)), "closing balance %r = the balance %d" % (closing, bal))
    lots = browser().find_elements(By.CSS_SELECTOR, "#lots tbody tr")
    eq(len(lots), 1)
    ok("max" in lots[0].text and "4×" in lots[0].text, lots[0].text)
    shot("09-statement")
    eq(console_errors(), [], "no console errors")
