"""An unknown key is refused before its body is read (README, "Errors"): a made-up but well-formed key
with a 32 MiB body gets its 401 without the program reading or parsing the body, so bodies sent with
bad keys cost the gateway no memory. Runs first among the files, while the programs' memory
high-water marks are still low."""

import concurrent.futures
import json

from zgtest import (assert_error_shape, auth, eq, fake_clear, fake_requests, new_user, ok, program_pids, proc_status_total,
                    request, sql_int)


def hwm_kib(pids):
    """Sum of the processes' peak resident sizes (VmHWM)."""
    return proc_status_total(pids, "VmHWM")


def big_body(mib=30):
    filler = "x" * (mib << 20)
    return json.dumps({"model": "claude-haiku-4-5", "max_tokens": 10,
                       "messages": [{"role": "user", "content": filler}]}).encode()


def test_unknown_key_with_a_big_body_is_refused_without_reading_it():
    email, key = new_user()
    # warm every messages process up (the first requests load the catalog and connect)
    for _ in range(4):
        eq(request("POST", "/api/v1/messages", headers=auth(key),
                   body={"model": "claude-haiku-4-5", "max_tokens": 5,
                         "messages": [{"role": "user", "content": "warm up"}]}).status, 200)
    fake_clear()
    pids = program_pids("messages")
    ok(pids, "messages processes")
    before = hwm_kib(pids)
    made_up = "ck_" + "A" * 43
    body = big_body()

    def one(_):
        return request("POST", "/api/v1/messages", headers=dict(auth(made_up), **{"content-type": "application/json"}),
                       body=body, timeout=120)

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        rs = list(ex.map(one, range(8)))
    for r in rs:
        eq(r.status, 401, r.text[:200])
        assert_error_shape(r, "anthropic")
    grown = hwm_kib([p for p in program_pids("messages") if p in pids]) - before
    ok(grown < 40 * 1024, "8 bodies of 30 MiB with an unknown key raised the programs' peak memory by %d KiB "
       "(read and parsed, they would add at least 30 MiB each)" % grown)
    eq(fake_requests(), [], "nothing forwarded")
    # a known key is served as usual
    r = request("POST", "/api/v1/messages", headers=dict(auth(key), **{"content-type": "application/json"}),
                body=b'{"model":"claude-haiku-4-5","max_tokens":5,"messages":[{"role":"user","content":"ok"}]}')
    eq(r.status, 200)


def test_key_headers_spelled_with_underscores_are_not_keys():
    """x_api_key is not x-api-key: lighttpd would hand both to the program under one name, so the
    configs drop the underscore spellings of the key headers (Apache drops them itself). A key sent
    only that way is no key (401, unbilled); the dash spelling next to it still counts."""
    email, key = new_user()
    body = {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    fake_clear()
    for name in ("x_api_key", "anthropic_api_key"):
        r = request("POST", "/api/v1/messages", headers={name: key, "anthropic-version": "2023-06-01"}, body=body)
        eq(r.status, 401, "%s: %s" % (name, r.text[:200]))
        assert_error_shape(r, "anthropic")
    r = request("POST", "/api/v1/gemini/v1beta/models/gemini-3-flash-preview:generateContent",
                headers={"x_goog_api_key": key}, body={"contents": [{"parts": [{"text": "hi"}]}]})
    eq(r.status, 401, r.text[:200])
    assert_error_shape(r, "gemini")
    eq(fake_requests(), [], "nothing forwarded")
    eq(sql_int("SELECT COUNT(*) FROM usage_log u JOIN users s ON s.id = u.user_id WHERE s.email = '%s'" % email), 0)
    r = request("POST", "/api/v1/messages", headers=dict(auth(key), x_api_key="ck_" + "B" * 43), body=body)
    eq(r.status, 200, r.text[:200])
