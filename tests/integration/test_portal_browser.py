"""The portal's pages in a real browser (headless Chromium driven by Selenium): a new customer signs
up, creates a key, copies it, calls the API with it (billed), revokes it in the page and sees the
same call refused; signs out and in again; a wrong password is shown on the page; pricing lists
every live model of the catalog; no page logs a console error. Screenshots of every step are kept in
the run's log directory (browser/)."""

import os
import time

from portal import PASSWORD, new_email
from zgtest import BASE, admin, auth, eq, ok, request, sql, sql_int

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - ./dev test installs python3-selenium
    webdriver = None

SHOTS = os.path.join(os.environ.get("ZG_STATE", "/tmp"), "log", "browser")
_driver = None


def browser():
    global _driver
    if webdriver is None:
        raise AssertionError("python3-selenium is not installed (./dev test installs it)")
    if _driver is None:
        o = Options()
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
            o.add_argument(a)
        o.binary_location = "/usr/bin/chromium"
        o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        _driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
        _driver.set_page_load_timeout(20)
    return _driver


def teardown_module():
    global _driver
    if _driver is not None:
        _driver.quit()
        _driver = None


def shot(name):
    os.makedirs(SHOTS, exist_ok=True)
    browser().save_screenshot(os.path.join(SHOTS, name + ".png"))


def console_errors():
    """Console errors since the last call (unhandled rejections included). An API answer the page
    expects and shows to the customer (a 4xx from /api/, e.g. a wrong password's 401) is logged by
    Chromium as a failed resource but is not an error of the page."""
    out = []
    for e in browser().get_log("browser"):
        m = e.get("message", "")
        if e.get("level") != "SEVERE":
            continue
        if "/api/" in m and "Failed to load resource" in m and "status of 4" in m:
            continue
        out.append(m)
    return out


def wait(cond, timeout=10):
    # the pages re-render their tables: an element found a moment ago may be replaced
    return WebDriverWait(browser(), timeout, ignored_exceptions=(StaleElementReferenceException,)).until(cond)


def visible(css):
    return wait(EC.visibility_of_element_located((By.CSS_SELECTOR, css)))


def goto(path):
    d = browser()
    d.get(BASE + path)
    wait(lambda d_: d_.execute_script("return document.readyState") == "complete")


def fill(label_for, text):
    el = browser().find_element(By.ID, label_for)
    # reached through its label, as a person would
    label = browser().find_element(By.CSS_SELECTOR, "label[for='%s']" % label_for)
    ok(label.text.strip(), "field %s has a label" % label_for)
    el.clear()
    el.send_keys(text)


def click_button(text):
    for b in browser().find_elements(By.TAG_NAME, "button"):
        if b.is_displayed() and b.text.strip() == text:
            b.click()
            return
    raise AssertionError("no visible button %r" % text)


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
