"""Top-up by card in a real browser: sign in, /checkout, Max x 1 (the page shows the credits it
grants), the Stripe stand-in's payment page, back on the portal until the webhook lands: the
balance shows 400,000,000 more credits and the receipt is listed and opens as a printable page. A
wrong amount is shown next to its field; a canceled payment says nothing was charged."""

import os

from browser import By, browser, click_button, console_errors, fill, goto, quit_browser, shot, signed_in_browser, \
    visible, wait
from portal import Portal
from zgtest import Skip, eq, ok

STRIPE = os.environ.get("ZG_STRIPE", "")


def teardown_module():
    quit_browser()


def customer():
    if not STRIPE:
        raise Skip("no Stripe stand-in (ZG_STRIPE)")
    p = Portal()
    eq(p.signup().status, 201)
    signed_in_browser(p)
    console_errors()
    return p


def test_top_up_max_by_card_and_see_the_credits_and_the_receipt():
    p = customer()
    d = browser()
    goto("/account")
    d.find_element(By.LINK_TEXT, "Top up").click()
    wait(lambda d_: "/checkout" in d_.current_url)
    visible("#preview")
    d.find_element(By.CSS_SELECTOR, "input[name=plan][value=max]").click()
    fill("packs", "1")
    wait(lambda d_: "400,000,000 credits" in d_.find_element(By.ID, "preview").text)
    ok("$400.00 of usage" in d.find_element(By.ID, "preview-note").text, d.find_element(By.ID, "preview-note").text)
    shot("20-checkout")
    click_button("Pay with card")
    wait(lambda d_: d_.current_url.startswith(STRIPE + "/c/pay/cs_test_"))
    ok("$100.00" in d.find_element(By.ID, "amount").text, d.find_element(By.ID, "amount").text)
    shot("21-stand-in-payment-page")
    d.find_element(By.ID, "pay").click()
    wait(lambda d_: "/checkout?done=co_" in d_.current_url)
    balance = wait(lambda d_: d_.find_elements(By.ID, "balance"), timeout=20)[0]
    eq(balance.text, "400,000,000 credits")
    result = d.find_element(By.ID, "result").text
    ok("400,000,000 credits added" in result and "receipt ZG-" in result, result)
    shot("22-checkout-paid")
    number = d.find_element(By.CSS_SELECTOR, "#result a").text.split()[-1]
    eq(p.me().json()["credits"], 400000000)
    goto("/account/receipts")
    row = wait(lambda d_: d_.find_elements(By.CSS_SELECTOR, "#receipts tbody tr"))[0]
    ok(number in row.text and "$100.00" in row.text and "400,000,000" in row.text, row.text)
    shot("23-receipts")
    row.find_element(By.TAG_NAME, "a").click()
    wait(lambda d_: d_.current_url.endswith("/account/receipts/" + number))
    sheet = visible("#sheet").text
    for s in ("Receipt " + number, p.email, "$100.00", "400,000,000 credits", "Max top-up at 4×", "Card (Stripe)"):
        ok(s in sheet, "%r on the receipt: %r" % (s, sheet))
    shot("24-receipt")
    eq(console_errors(), [])


def test_wrong_amount_is_shown_at_its_field_and_a_canceled_payment_charges_nothing():
    p = customer()
    d = browser()
    goto("/checkout")
    visible("#preview")
    fill("usd", "3")
    click_button("Pay with card")
    err = wait(lambda d_: d_.find_element(By.ID, "usd-error").text)
    ok("from $5" in err, err)
    eq(d.find_element(By.ID, "usd").get_attribute("aria-invalid"), "true")
    shot("25-checkout-amount-error")
    fill("usd", "12.50")
    click_button("Pay with card")
    wait(lambda d_: d_.current_url.startswith(STRIPE + "/c/pay/"))
    d.find_element(By.ID, "cancel").click()
    wait(lambda d_: "/checkout?canceled=co_" in d_.current_url)
    ok("nothing was charged" in visible("#result").text, d.find_element(By.ID, "result").text)
    eq(p.me().json()["credits"], 0)
    eq(console_errors(), [])
