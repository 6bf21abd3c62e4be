"""Background image generation: POST /api/v1/images/generations with "background": true (or
Prefer: respond-async) answers 202 with a job id at once; GET /api/v1/images/generations/{id}
shows queued, in_progress, completed (with the images) or failed. The job runs in the images
processes whatever the client does, is billed once per image returned (nothing when it fails or
times out), survives the process running it being killed, and belongs to its user only. The job
runs behind lighttpd and the shared-host Apache (mod_fcgid starts the images processes)."""

import os
import signal
import time

from zgtest import (Skip, admin, admin_json, assert_error_shape, auth, config_value, eq, fake_requests, new_user, ok,
                    request, sql, sql_int, sql_rows, user_id, wait_released, wait_until)

PATH = "/api/v1/images/generations"
PER_IMAGE = 60000  # sql/catalog.sql: gpt-image-2 price_unit
START = 20000000


SERVER = os.environ.get("ZG_SERVER", "lighttpd")


def setup_module():
    # the jobs run in the images processes that the web server starts: lighttpd's, and those
    # mod_fcgid starts (and stops when idle) on the shared host
    if SERVER not in ("lighttpd", "apache-htaccess"):
        raise Skip("tested behind lighttpd and the shared-host Apache")


def body(tag, directive="", **extra):
    b = {"model": "gpt-image-2", "prompt": "A lighthouse at dusk, %s%s" % (tag, " [[fake:%s]]" % directive
                                                                            if directive else ""),
         "background": True}
    b.update(extra)
    return b


def oai(key):
    return auth(key, "openai")


def submit(key, b, headers=None):
    r = request("POST", PATH, headers=dict(oai(key), **(headers or {})), body=b)
    eq(r.status, 202, r.text)
    d = r.json()
    ok(d["id"].startswith("img_") and len(d["id"]) == 28, "a job id: %r" % d["id"])
    eq(d["status"], "queued")
    eq(d["object"], "image.generation")
    ok(abs(d["created"] - time.time()) < 30, "created is a unix time")
    eq(r.headers.get("location"), PATH + "/" + d["id"])
    return d["id"]


def poll(key, job, until=("completed", "failed"), timeout=30, transient=False):
    """Poll the job until it reaches a status in `until`; transient: a 5xx of the web server while
    the process it talked to was just killed is retried, as a client would."""
    seen = []

    def look():
        r = request("GET", PATH + "/" + job, headers=oai(key))
        if transient and r.status in (500, 502, 503):
            return None
        eq(r.status, 200, r.text)
        d = r.json()
        if not seen or seen[-1] != d["status"]:
            seen.append(d["status"])
        return d if d["status"] in until else None

    d = wait_until(look, timeout, interval=0.2, msg="job %s to reach %s (seen %r)" % (job, until, seen))
    return d, seen


def rows_of(email):
    uid = user_id(email)
    return sql_rows("SELECT status, end_reason, credits, units FROM usage_log WHERE user_id = %d" % uid)


def settled(email, credits, units, end_reason):
    rows = wait_until(lambda: [r for r in rows_of(email) if r[0] != "pending"] or None, 10, msg="settled row")
    eq(len(rows_of(email)), 1, "exactly one usage row")
    eq(rows[0], ["settled", end_reason, str(credits), str(units)])
    wait_released(email)
    b = admin_json("balance", email, "--json")
    eq(b["credits"], START - credits, "balance debited by exactly the usage")
    eq(b["held"], 0, "nothing left held")


def test_background_job_completes_and_is_billed_once_per_image():
    email, key = new_user()
    job = submit(key, body("happy", n=2, size="1024x1024"))
    d, seen = poll(key, job)
    eq(d["status"], "completed", repr(d))
    eq(len(d["data"]), 2, "both images")
    ok(all(x.get("b64_json") for x in d["data"]), "the images themselves")
    eq(d["credits"], 2 * PER_IMAGE)
    eq(d["id"], job)
    settled(email, 2 * PER_IMAGE, 2, "complete")
    sent = [x for x in fake_requests(path_contains="/images/generations", body_contains="happy")]
    eq(len(sent), 1, "one upstream call")
    ok('"background"' not in sent[0]["body"], "our background flag is not sent upstream: %s" % sent[0]["body"][:200])
    ok('"model":"gpt-image-2"' in sent[0]["body"].replace(" ", ""), "the catalog model is named")
    # the answer stays readable
    eq(request("GET", PATH + "/" + job, headers=oai(key)).json()["status"], "completed")


def test_prefer_respond_async_and_the_states_in_between():
    email, key = new_user()
    b = body("states", directive="delay=2500")
    del b["background"]
    job = submit(key, b, {"Prefer": "respond-async"})
    d, seen = poll(key, job)
    eq(d["status"], "completed")
    ok("in_progress" in seen, "seen in progress while the upstream works: %r" % seen)
    eq(seen[-1], "completed")
    settled(email, PER_IMAGE, 1, "complete")


def test_openai_background_string_is_passed_upstream_and_answered_at_once():
    email, key = new_user()
    r = request("POST", PATH, headers=oai(key), body={"model": "gpt-image-2", "prompt": "transparent bg",
                                                     "background": "transparent"})
    eq(r.status, 200, "a string is OpenAI's own option, not ours: answered synchronously")
    sent = fake_requests(path_contains="/images/generations", body_contains="transparent bg")
    ok('"background":"transparent"' in sent[-1]["body"].replace(" ", ""), "passed upstream")


def test_failed_and_timed_out_jobs_bill_nothing():
    email, key = new_user()
    job = submit(key, body("refused", directive="status=400"))
    d, _ = poll(key, job)
    eq(d["status"], "failed")
    ok("400" in d["error"]["message"], d["error"])
    ok("data" not in d, "no images")
    settled(email, 0, 0, "upstream_error")

    limit = int(config_value("upstream", "image_timeout", "600"))
    ok(limit <= 10, "the test stack sets a short image_timeout")
    email, key = new_user()
    job = submit(key, body("slow", directive="delay=%d" % ((limit + 3) * 1000)))
    d, _ = poll(key, job, timeout=limit + 20)
    eq(d["status"], "failed")
    ok("did not answer" in d["error"]["message"], d["error"])
    settled(email, 0, 0, "upstream_timeout")


def test_a_job_is_its_users_alone_and_expires():
    email, key = new_user()
    other_email, other_key = new_user()
    job = submit(key, body("mine"))
    poll(key, job)
    r = request("GET", PATH + "/" + job, headers=oai(other_key))
    eq(r.status, 404, "another user's job does not exist for them")
    assert_error_shape(r, "openai")
    eq(request("GET", PATH + "/img_000000000000000000000000", headers=oai(key)).status, 404)
    eq(request("GET", PATH + "/nonsense", headers=oai(key)).status, 404)
    eq(request("GET", PATH + "/" + job).status, 401, "no key")
    # another key of the same user sees it
    key2 = admin("key", "create", email).splitlines()[0].strip()
    eq(request("GET", PATH + "/" + job, headers=oai(key2)).status, 200, "same user, other key")
    # expired results are gone
    sql("UPDATE image_jobs SET expires_at = NOW(3) - INTERVAL 1 SECOND WHERE id = '%s'" % job)
    r = request("GET", PATH + "/" + job, headers=oai(key))
    eq(r.status, 404, "expired")
    ok("kept" in r.json()["error"]["message"], r.text)


def test_a_killed_process_leaves_its_job_to_another_billed_once():
    if SERVER != "lighttpd":
        raise Skip("killing a program process: behind lighttpd, which keeps two per route")
    email, key = new_user()
    job = submit(key, body("killed", directive="delay=3000"))
    owner = wait_until(lambda: (sql("SELECT owner FROM image_jobs WHERE id = '%s' AND status = 'in_progress'" % job)
                                .strip() or None), 10, msg="the job claimed")
    pid = int(owner.split(":")[1])
    os.kill(pid, signal.SIGKILL)
    reclaim = int(config_value("images", "reclaim_after", "30"))
    d, _ = poll(key, job, timeout=reclaim + 20, transient=True)
    eq(d["status"], "completed", repr(d)[:300])
    eq(sql_int("SELECT tries FROM image_jobs WHERE id = '%s'" % job), 2, "claimed twice")
    ok(len(fake_requests(path_contains="/images/generations", body_contains="killed")) >= 1, "sent upstream")
    settled(email, PER_IMAGE, 1, "complete")


def test_402_and_bad_requests_are_answered_before_any_job():
    email, key = new_user(usd=0.01)
    before = sql_int("SELECT COUNT(*) FROM image_jobs")
    r = request("POST", PATH, headers=oai(key), body=body("poor", n=4))
    eq(r.status, 402, r.text)
    assert_error_shape(r, "openai")
    r = request("POST", PATH, headers=oai(key), body={"model": "gpt-image-2", "background": True})
    eq(r.status, 400, "no prompt")
    eq(sql_int("SELECT COUNT(*) FROM image_jobs"), before, "no job stored")
