"""The portal's pages in a real browser (Debian's headless Chromium driven by Selenium): one browser
for the run's browser tests, screenshots into the run's log directory (browser/), console errors,
and the steps a person takes (a field reached through its label, a visible button by its text)."""

import os

from portal import PASSWORD
from zgtest import BASE, ok

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - ./dev test installs python3-selenium
    webdriver = By = EC = WebDriverWait = None

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


def quit_browser():
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


def signed_in_browser(p):
    """Sign the browser in as the Portal customer p (through the sign-in page)."""
    d = browser()
    d.delete_all_cookies()
    goto("/login")
    fill("email", p.email)
    fill("password", PASSWORD)
    click_button("Sign in")
    wait(lambda d_: "/login" not in d_.current_url)
