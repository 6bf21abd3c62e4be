"""The spec's own curl examples (section 8 and 9), run with the real curl against the gateway."""

import json
import subprocess

from zgtest import BASE, admin_json, eq, fake_requests, new_user, ok, wait_until


def curl(*args):
    p = subprocess.run(["curl", "-sS", "-i", *args], capture_output=True, text=True, timeout=60)
    eq(p.returncode, 0, "curl exit status: " + p.stderr)
    head, _, body = p.stdout.replace("\r\n", "\n").partition("\n\n")
    status = int(head.split("\n", 1)[0].split()[1])
    return status, head.lower(), body


def billed(email, n):
    def settled():
        rows = admin_json("usage", email, "--json")
        return rows if len(rows) >= n and all(r["status"] != "pending" for r in rows) else None
    return wait_until(settled, timeout=15, msg="%d settled usage rows" % n)


def test_spec_examples():
    email, key = new_user()
    status, head, body = curl("-X", "POST", BASE + "/api/v1/messages",
                              "-H", "x-api-key: " + key, "-H", "anthropic-version: 2023-06-01",
                              "-H", "Content-Type: application/json",
                              "-d", json.dumps({"model": "claude-sonnet-4-6", "max_tokens": 1024,
                                                "messages": [{"role": "user", "content": "Hello, Claude"}]}))
    eq(status, 200, body)
    eq(json.loads(body)["type"], "message")
    status, head, body = curl("-X", "POST", BASE + "/api/v1/codex/chat/completions",
                              "-H", "Authorization: Bearer " + key, "-H", "Content-Type: application/json",
                              "-d", json.dumps({"model": "gpt-5.5", "stream": True,
                                                "messages": [{"role": "user", "content": "Hello, GPT-5.5"}]}))
    eq(status, 200, body)
    ok("text/event-stream" in head, "a stream")
    ok(body.rstrip().endswith("data: [DONE]"), "the stream ends with [DONE]: %r" % body[-200:])
    chunks = [json.loads(line[6:]) for line in body.split("\n")
              if line.startswith("data: ") and line != "data: [DONE]"]
    ok(chunks and all(c.get("usage") is None for c in chunks),
       "the usage chunk the client did not ask for is not shown")
    status, head, body = curl("-X", "POST", BASE + "/api/v1/gemini/chat/completions",
                              "-H", "Authorization: Bearer " + key, "-H", "Content-Type: application/json",
                              "-d", json.dumps({"model": "gemini-3.1-pro-preview",
                                                "messages": [{"role": "user", "content": "Hello, Gemini"}]}))
    eq(status, 200, body)
    eq(json.loads(body)["object"], "chat.completion")
    status, head, body = curl("-X", "POST", BASE + "/api/v1/images/generations",
                              "-H", "Authorization: Bearer " + key, "-H", "Content-Type: application/json",
                              "-d", json.dumps({"model": "gpt-image-2", "n": 1,
                                                "prompt": "A cinematic photo of a small red apple on a marble countertop"}))
    eq(status, 200, body)
    eq(len(json.loads(body)["data"]), 1)
    status, head, body = curl(BASE + "/api/v1/images/generations")
    eq(status, 200, body)
    ok("gpt-image-2" in body, "GET lists the image models")
    rows = billed(email, 4)
    eq(sorted(r["model"] for r in rows), sorted(["claude-sonnet-4-6", "gpt-5.5", "gemini-3.1-pro-preview",
                                                  "gpt-image-2"]))
    ok(all(r["credits"] > 0 for r in rows), "each example billed")
    eq(len(fake_requests()), 4, "four requests reached the upstream")
