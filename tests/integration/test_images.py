"""Image generation: /api/v1/images/generations (gpt-image-2, 60000 credits per image returned)
and the Coming Soon image, video and audio models."""

import json
import time

from zgtest import (admin, admin_json, assert_error_shape, auth, config_value, eq, fake_requests, new_user, ok,
                    request, stream, unique_email, wait_released, wait_until)

PATH = "/api/v1/images/generations"
PER_IMAGE = 60000  # sql/catalog.sql: gpt-image-2 price_unit
START = 20000000


def body(prompt="A small red apple on a marble countertop", directive="", **extra):
    b = {"model": "gpt-image-2", "prompt": prompt + (" [[fake:%s]]" % directive if directive else "")}
    b.update(extra)
    return b


def oai(key):
    return auth(key, "openai")


def usage(email):
    return admin_json("usage", email, "--json")


def balance(email):
    return admin_json("balance", email, "--json")


def check_one(email, credits, units, end_reason="complete"):
    rows = wait_until(lambda: [u for u in usage(email) if u["status"] != "pending"] or None, timeout=10,
                      msg="a settled usage row")
    eq(len(usage(email)), 1, "exactly one usage row")
    u = rows[0]
    eq(u["status"], "settled")
    eq(u["end_reason"], end_reason)
    eq(u["credits"], credits, "usage credits")
    eq(u["units"], units, "images billed")
    wait_released(email)  # lease mode: the leases go back once idle
    b = balance(email)
    eq(b["credits"], START - credits, "balance debited by exactly the usage")
    eq(b["held"], 0, "hold released")
    eq(admin_json("key", "list", email, "--json")[0]["spent_credits"], credits)
    return u


def test_one_image_billed_and_forwarded():
    email, key = new_user()
    raw = json.dumps(body(size="1024x1024", quality="high", output_format="png")).encode()
    r = request("POST", PATH, headers=dict(oai(key), **{"Content-Type": "application/json"}), body=raw)
    eq(r.status, 200, r.text)
    d = r.json()
    eq(len(d["data"]), 1)
    ok(d["data"][0]["b64_json"], "image data relayed")
    eq(d["size"], "1024x1024")
    eq(r.headers.get("x-ratelimit-limit"), "500", "the images bucket")
    eq(r.headers.get("x-ratelimit-remaining"), "499")
    u = check_one(email, PER_IMAGE, 1)
    eq(u["model"], "gpt-image-2")
    recs = fake_requests(path_contains="/images/generations", wait_ms=3000)
    eq(len(recs), 1)
    rec = recs[0]
    eq(rec["path"], "/openai/v1/images/generations")
    eq(rec["body"].encode(), raw, "forwarded byte for byte")
    eq(rec["headers"].get("authorization"), "Bearer sk-fake-openai")
    ok(key not in json.dumps(rec["headers"]), "the client key is never forwarded")


def test_several_images_billed_per_image():
    email, key = new_user()
    r = request("POST", PATH, headers=oai(key), body=body(n=3))
    eq(r.status, 200, r.text)
    eq(len(r.json()["data"]), 3)
    check_one(email, 3 * PER_IMAGE, 3)


def test_billed_for_images_returned_not_asked():
    email, key = new_user()
    r = request("POST", PATH, headers=oai(key), body=body(n=4, directive="images=2"))
    eq(r.status, 200, r.text)
    eq(len(r.json()["data"]), 2)
    check_one(email, 2 * PER_IMAGE, 2)


def test_default_model_and_n():
    email, key = new_user()
    r = request("POST", PATH, headers=oai(key), body={"prompt": "an apple"})
    eq(r.status, 200, r.text)
    eq(json.loads(fake_requests(path_contains="/images/")[0]["body"]), {"prompt": "an apple", "model": "gpt-image-2"},
       "the model is named upstream")
    check_one(email, PER_IMAGE, 1)


def test_stream_billed_per_completed_image():
    email, key = new_user()
    with stream("POST", PATH, headers=oai(key), body=body(stream=True, partial_images=2)) as s:
        eq(s.status, 200)
        ok(s.headers.get("content-type", "").startswith("text/event-stream"), "SSE")
        events = list(s)
        raw = s.raw
    eq([e.event for e in events], ["image_generation.partial_image"] * 2 + ["image_generation.completed"])
    ok(events[-1].json()["b64_json"], "the image relayed")
    eq(raw, b"".join(b"event: %s\ndata: %s\n\n" % (e.event.encode(), e.data.encode()) for e in events),
       "bytes unmodified")
    check_one(email, PER_IMAGE, 1)
    # cut after a preview, before the image: nothing billed
    email, key = new_user()
    with stream("POST", PATH, headers=oai(key), body=body(stream=True, partial_images=1, directive="drop_after=0")) as s:
        events = list(s)
    eq(events[0].event, "image_generation.partial_image")
    ok("image_generation.completed" not in [e.event for e in events], "no image completed")
    check_one(email, 0, 0, end_reason="upstream_dropped")


def test_upstream_failure_bills_nothing():
    for status in [400, 429, 500, 503]:
        email, key = new_user()
        r = request("POST", PATH, headers=oai(key), body=body(n=2, directive="status=%d" % status))
        eq(r.status, status)
        assert_error_shape(r, "openai")
        check_one(email, 0, 0, end_reason="upstream_error")
    # half an answer, then the connection closes: no complete image, nothing billed
    email, key = new_user()
    r = request("POST", PATH, headers=oai(key), body=body(directive="drop_after=0"))
    ok(r.status != 200 or not r.body.rstrip().endswith(b"}"), "no complete answer: %r" % r.body[-60:])
    check_one(email, 0, 0, end_reason="upstream_dropped")


def test_timeout_504_bills_nothing():
    limit = int(config_value("upstream", "image_timeout", "600"))
    ok(limit <= 10, "the test stack sets a short [upstream] image_timeout (%d s)" % limit)
    email, key = new_user()
    t0 = time.monotonic()
    r = request("POST", PATH, headers=oai(key), body=body(directive="delay=%d" % ((limit + 3) * 1000)), timeout=60)
    took = time.monotonic() - t0
    eq(r.status, 504, r.text)
    eq(assert_error_shape(r, "openai")["error"]["code"], "upstream_timeout")
    ok(limit - 0.5 <= took < limit + 2.5, "answered after image_timeout (%.1f s)" % took)
    check_one(email, 0, 0, end_reason="upstream_timeout")


def test_image_generation_outlives_the_chat_idle_timeout():
    # chat streams time out after [upstream] idle_timeout of silence; an image may take longer
    idle = int(config_value("upstream", "idle_timeout"))
    limit = int(config_value("upstream", "image_timeout", "600"))
    if idle + 1 >= limit:
        return
    email, key = new_user()
    r = request("POST", PATH, headers=oai(key), body=body(directive="delay=%d" % ((idle + 1) * 1000)), timeout=60)
    eq(r.status, 200, r.text)
    check_one(email, PER_IMAGE, 1)


def test_coming_soon_models_503_unbilled():
    email, key = new_user()
    for model in ["nano-banana", "nano-banana-pro", "gpt-4o-image", "imagen-4", "veo-3.1", "kling-3.0",
                  "fish-audio-tts", "fish-audio-asr"]:
        r = request("POST", PATH, headers=oai(key), body=body(model=model))
        eq(r.status, 503, "%s: %s" % (model, r.text))
        eq(assert_error_shape(r, "openai")["error"]["code"], "model_coming_soon")
        ok(model in r.json()["error"]["message"], "the message names the model")
    eq(fake_requests(), [], "no upstream call")
    time.sleep(0.2)
    eq(usage(email), [])
    eq(balance(email)["credits"], START)


def test_invalid_requests_400():
    email, key = new_user()
    for b in [body(n=0), body(n=11), body(n="2"), body(n=1.5), {"model": "gpt-image-2"}, body(prompt=""),
              body(model="gpt-5.5"), body(model="claude-haiku-4-5")]:
        r = request("POST", PATH, headers=oai(key), body=b)
        eq(r.status, 400, "%r: %s" % (b, r.text))
        assert_error_shape(r, "openai")
    r = request("POST", PATH, headers=oai(key), body=body(model="dall-e-9"))
    eq(r.status, 404)
    assert_error_shape(r, "openai")
    r = request("POST", PATH, headers={"Authorization": "Bearer ck_" + "Z" * 43}, body=body())
    eq(r.status, 401)
    assert_error_shape(r, "openai")
    eq(fake_requests(), [])
    eq(usage(email), [])


def test_402_when_the_hold_does_not_fit():
    email = unique_email("img")
    admin("user", "add", email)
    admin("topup", email, "pro", "0.10")  # 100000 credits: one image fits, two do not
    key = admin("key", "create", email).splitlines()[0]
    r = request("POST", PATH, headers=oai(key), body=body(n=2))
    eq(r.status, 402)
    eq(assert_error_shape(r, "openai")["error"]["code"], "insufficient_quota")
    eq(r.headers.get("x-ratelimit-limit"), "500")
    eq(fake_requests(), [])
    r = request("POST", PATH, headers=oai(key), body=body(n=1))
    eq(r.status, 200, r.text)
    eq(balance(email)["credits"], 100000 - PER_IMAGE)


def test_list_image_models():
    for h in [{}, oai(new_user()[1])]:
        r = request("GET", PATH, headers=h)
        eq(r.status, 200, r.text)
        d = r.json()
        by_id = {m["id"]: m for m in d["data"]}
        eq(by_id["gpt-image-2"]["status"], "live")
        eq(by_id["gpt-image-2"]["pricing"]["per_image"], PER_IMAGE)
        for m, kind in [("nano-banana", "image"), ("veo-3.1", "video"), ("fish-audio-tts", "audio")]:
            eq(by_id[m]["status"], "coming_soon", m)
            eq(by_id[m]["kind"], kind, m)
        ok(not [i for i in by_id if by_id[i]["kind"] == "chat"], "no chat models")
