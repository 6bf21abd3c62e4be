#!/usr/bin/env python3
"""Fake upstream LLM provider for zenn-gateway integration tests and the dev stack.

One HTTP server stands in for Anthropic, OpenAI (chat, responses, images), Google
Gemini, DeepSeek, Moonshot and Zhipu. It speaks each provider's real JSON / SSE
wire format, records every request it receives, and misbehaves on demand through
``[[fake:key=value,...]]`` directives embedded in the request body.

    python3 tests/fake_upstream.py --port 0 --port-file /tmp/port [--host H] [--log FILE]
    python3 tests/fake_upstream.py --selftest

See tests/fake_upstream.md for routes, directives and the /_fake control API.
Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import base64
import collections
import http.client
import itertools
import json
import math
import os
import re
import secrets
import select
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
import zlib
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_MODEL = "fake-model"
MAX_BODY = 256 * 1024 * 1024
MAX_RECORDS = 20000
MAX_STORED_RESPONSES = 5000

# ---------------------------------------------------------------------------
# Directives: [[fake:key=value,key=value]] in the body (or URL), merged over
# the /_fake/config defaults, merged over DEFAULTS.
# ---------------------------------------------------------------------------

INT_KEYS = frozenset({
    "status", "delay", "events", "interval", "silence", "drop_after", "error_after",
    "input", "output", "cache_read", "cache_write_5m", "cache_write_1h",
    "reasoning", "thoughts", "cached", "images", "retry_after", "reset_after",
})
TERMINALS = ("completed", "incomplete", "failed")
DEFAULTS = {
    "status": 0, "delay": 0, "events": 3, "interval": 0, "silence": 0,
    "drop_after": None, "error_after": None, "terminal": "completed",
    "input": 25, "output": 10, "cache_read": 0, "cache_write_5m": 0, "cache_write_1h": 0,
    "reasoning": 0, "thoughts": 0, "cached": 0, "images": None, "retry_after": None,
    "reset_after": None,
}
DIRECTIVE_RE = re.compile(r"\[\[fake:([^\[\]]*)\]\]")


def rate_limit_headers(family: str, reset_s: int) -> dict:
    """The provider's rate-limit headers for an exhausted request limit that resets in reset_s
    seconds (the token limit, not exhausted, resets sooner): Anthropic's RFC 3339 times, OpenAI's
    durations ("1m5s")."""
    if family == "anthropic":
        at = lambda s: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + s))
        return {"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "0",
                "anthropic-ratelimit-requests-reset": at(reset_s),
                "anthropic-ratelimit-tokens-limit": "40000", "anthropic-ratelimit-tokens-remaining": "39000",
                "anthropic-ratelimit-tokens-reset": at(1)}
    return {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "%dm%ds" % divmod(reset_s, 60),
            "x-ratelimit-limit-tokens": "150000", "x-ratelimit-remaining-tokens": "149000",
            "x-ratelimit-reset-tokens": "6ms"}


class DirectiveError(ValueError):
    """A malformed [[fake:...]] directive or /_fake/config value."""


class BadRequest(ValueError):
    """A request we cannot parse (body framing or JSON)."""


class ClientGone(Exception):
    """The client closed the connection before the response was complete."""


class Dropped(Exception):
    """We closed the connection on purpose (drop_after)."""


def coerce_option(key: str, value) -> int | str:
    if key in INT_KEYS:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise DirectiveError(f"{key}={value!r}: expected a non-negative integer")
        try:
            number = int(value)
        except ValueError:
            raise DirectiveError(f"{key}={value!r}: expected a non-negative integer") from None
        if number < 0:
            raise DirectiveError(f"{key}={value!r}: expected a non-negative integer")
        return number
    if key == "terminal":
        if value not in TERMINALS:
            raise DirectiveError(f"terminal={value!r}: expected one of {', '.join(TERMINALS)}")
        return value
    raise DirectiveError(f"unknown fake directive key {key!r}")


def parse_directives(text: str) -> dict:
    found = {}
    for match in DIRECTIVE_RE.finditer(text):
        for item in match.group(1).split(","):
            item = item.strip()
            if not item:
                continue
            key, eq, value = item.partition("=")
            if not eq:
                raise DirectiveError(f"directive item {item!r} is not key=value")
            found[key.strip()] = coerce_option(key.strip(), value.strip())
    return found


class Usage:
    """Token numbers to report. `cached` aliases `cache_read`, `thoughts` aliases `reasoning`."""

    def __init__(self, opt: dict):
        self.input = opt["input"]
        self.output = opt["output"]
        self.cache_read = opt["cache_read"] or opt["cached"]
        self.cache_write_5m = opt["cache_write_5m"]
        self.cache_write_1h = opt["cache_write_1h"]
        self.reasoning = opt["reasoning"] or opt["thoughts"]
        self.thoughts = opt["thoughts"] or opt["reasoning"]


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

def new_id(prefix: str, hex_len: int = 24) -> str:
    return prefix + secrets.token_hex(hex_len // 2)


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def sse(obj, event: str | None = None, sep: str = "\n\n") -> bytes:
    head = f"event: {event}\n" if event else ""
    data = obj if isinstance(obj, str) else dumps(obj)
    return (f"{head}data: {data}{sep}").encode()


def split_text(text: str, n: int) -> list[str]:
    return [text[len(text) * i // n: len(text) * (i + 1) // n] for i in range(n)]


def sample_from_schema(schema, depth: int = 0):
    """A minimal value satisfying a JSON schema / Gemini OpenAPI schema (required props only)."""
    if not isinstance(schema, dict) or depth > 12:
        return None
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return sample_from_schema(schema[key][0], depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if str(k).lower() != "null"), "null")
    kind = str(kind or ("object" if "properties" in schema else "string")).lower()
    if kind == "object":
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        required = [k for k in schema.get("required") or [] if isinstance(k, str)]
        return {k: sample_from_schema(props.get(k, {"type": "string"}), depth + 1) for k in required}
    if kind == "array":
        count = schema.get("minItems") if isinstance(schema.get("minItems"), int) else 0
        return [sample_from_schema(schema.get("items") or {}, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    min_len = schema.get("minLength") if isinstance(schema.get("minLength"), int) else 0
    return "fake".ljust(min_len, "x")


def json_reply(schema) -> str:
    return dumps(sample_from_schema(schema)) if isinstance(schema, dict) else "{}"


def _tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)  # 1x1, 8-bit RGBA
    pixels = zlib.compress(b"\x00\x00\x00\x00\x00")  # filter byte + one transparent pixel
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


TINY_PNG_B64 = base64.b64encode(_tiny_png()).decode()

# ---------------------------------------------------------------------------
# Error bodies in each provider family's real shape
# ---------------------------------------------------------------------------

ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
    429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error",
}
OPENAI_ERROR_TYPES = {  # status -> (type, code)
    400: ("invalid_request_error", None), 401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"), 429: ("requests", "rate_limit_exceeded"),
}
GEMINI_STATUSES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL",
    501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}


def status_phrase(status: int) -> str:
    if status == 529:
        return "Overloaded"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_body(family: str, status: int, message: str | None = None, request_id: str | None = None) -> dict:
    message = message or f"fake upstream error: {status} {status_phrase(status)}"
    if family == "anthropic":
        if status == 529 and message.startswith("fake upstream error"):
            message = "Overloaded"
        kind = ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id or new_id("req_")}
    if family == "gemini":
        kind = GEMINI_STATUSES.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
        return {"error": {"code": status, "message": message, "status": kind}}
    kind, code = OPENAI_ERROR_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def guess_family(provider: str, path: str) -> str:
    if provider == "anthropic" or "/anthropic/" in path:
        return "anthropic"
    if provider == "gemini" and "/openai/" not in path:
        return "gemini"
    return "openai"


# ---------------------------------------------------------------------------
# Provider formats. Each route method takes the Handler `h` (see Handler's
# "API for formats" section) and must send exactly one response through it.
# ---------------------------------------------------------------------------

class AnthropicAPI:
    """Anthropic Messages (also DeepSeek/Moonshot/Zhipu Anthropic-compatible endpoints)."""

    @staticmethod
    def usage(u: Usage, output_tokens: int) -> dict:
        return {
            "input_tokens": u.input,
            "cache_creation_input_tokens": u.cache_write_5m + u.cache_write_1h,
            "cache_read_input_tokens": u.cache_read,
            "cache_creation": {"ephemeral_5m_input_tokens": u.cache_write_5m,
                               "ephemeral_1h_input_tokens": u.cache_write_1h},
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    @staticmethod
    def headers() -> dict:
        reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
        return {
            "request-id": new_id("req_"),
            "anthropic-ratelimit-requests-limit": "4000",
            "anthropic-ratelimit-requests-remaining": "3999",
            "anthropic-ratelimit-requests-reset": reset,
            "anthropic-ratelimit-tokens-limit": "400000",
            "anthropic-ratelimit-tokens-remaining": "399000",
            "anthropic-ratelimit-tokens-reset": reset,
        }

    def messages(self, h: "Handler") -> None:
        body = h.json_body()
        model = str(body.get("model") or DEFAULT_MODEL)
        h.note(model=model)
        u = h.usage
        fmt = body.get("output_format")
        json_text = json_reply(fmt.get("schema")) if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else None
        msg = {"id": new_id("msg_"), "type": "message", "role": "assistant", "model": model, "content": [],
               "stop_reason": None, "stop_sequence": None, "usage": self.usage(u, 1)}
        if not body.get("stream"):
            msg["content"] = [{"type": "text", "text": json_text if json_text is not None else h.greeting()}]
            msg.update(stop_reason="end_turn", usage=self.usage(u, u.output))
            h.send_json(200, msg, self.headers())
            return
        frames = [
            (sse({"type": "message_start", "message": msg}, "message_start"), False),
            (sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                 "content_block_start"), False),
            (sse({"type": "ping"}, "ping"), False),
        ]
        for piece in h.stream_pieces(json_text):
            delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
            frames.append((sse(delta, "content_block_delta"), True))
        frames += [
            (sse({"type": "content_block_stop", "index": 0}, "content_block_stop"), False),
            (sse({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                  "usage": {"output_tokens": u.output}}, "message_delta"), False),
            (sse({"type": "message_stop"}, "message_stop"), False),
        ]

        def error_frame(_sent: int) -> bytes:
            return sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "error")

        h.send_stream("text/event-stream; charset=utf-8", frames, self.headers(), error_frame)

    def count_tokens(self, h: "Handler") -> None:
        h.note(model=str(h.json_body().get("model") or DEFAULT_MODEL))
        h.send_json(200, {"input_tokens": h.usage.input}, self.headers())


class ChatCompletionsAPI:
    """OpenAI Chat Completions, with per-provider usage quirks (deepseek, moonshot)."""

    @staticmethod
    def usage(h: "Handler") -> dict:
        u = h.usage
        usage = {
            "prompt_tokens": u.input, "completion_tokens": u.output, "total_tokens": u.input + u.output,
            "prompt_tokens_details": {"cached_tokens": u.cache_read},
            "completion_tokens_details": {"reasoning_tokens": u.reasoning},
        }
        if h.provider == "deepseek":
            usage["prompt_cache_hit_tokens"] = u.cache_read
            usage["prompt_cache_miss_tokens"] = max(0, u.input - u.cache_read)
        elif h.provider == "moonshot":
            usage["cached_tokens"] = u.cache_read
        return usage

    @staticmethod
    def json_text(body: dict) -> str | None:
        fmt = body.get("response_format")
        if isinstance(fmt, dict):
            if fmt.get("type") == "json_object":
                return "{}"
            if fmt.get("type") == "json_schema":
                return json_reply((fmt.get("json_schema") or {}).get("schema"))
        return None

    def completions(self, h: "Handler") -> None:
        body = h.json_body()
        model = str(body.get("model") or DEFAULT_MODEL)
        h.note(model=model)
        json_text = self.json_text(body)
        cid, created = new_id("chatcmpl-"), int(time.time())
        headers = {"x-request-id": new_id("req_")}
        if not body.get("stream"):
            text = json_text if json_text is not None else h.greeting()
            h.send_json(200, {
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "logprobs": None, "finish_reason": "stop"}],
                "usage": self.usage(h), "system_fingerprint": "fp_fake",
            }, headers)
            return
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True

        def chunk(choices: list, usage=None) -> bytes:
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                   "system_fingerprint": "fp_fake", "choices": choices}
            if include_usage:
                obj["usage"] = usage
            return sse(obj)

        def choice(delta: dict, finish=None) -> list:
            return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

        frames = [(chunk(choice({"role": "assistant", "content": ""})), False)]
        frames += [(chunk(choice({"content": piece})), True) for piece in h.stream_pieces(json_text)]
        frames.append((chunk(choice({}, "stop")), False))
        if include_usage:
            frames.append((chunk([], self.usage(h)), False))
        frames.append((b"data: [DONE]\n\n", False))

        def error_frame(_sent: int) -> bytes:
            return sse(error_body("openai", 500, "fake upstream stream error"))

        h.send_stream("text/event-stream; charset=utf-8", frames, headers, error_frame)


class ResponsesAPI:
    """OpenAI Responses API: create (JSON or SSE), retrieve, cancel, input_tokens."""

    @staticmethod
    def usage(u: Usage) -> dict:
        return {"input_tokens": u.input, "input_tokens_details": {"cached_tokens": u.cache_read},
                "output_tokens": u.output, "output_tokens_details": {"reasoning_tokens": u.reasoning},
                "total_tokens": u.input + u.output}

    @staticmethod
    def json_text(body: dict) -> str | None:
        fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
        if isinstance(fmt, dict):
            if fmt.get("type") == "json_object":
                return "{}"
            if fmt.get("type") == "json_schema":
                return json_reply(fmt.get("schema"))
        return None

    @staticmethod
    def skeleton(body: dict, model: str) -> dict:
        return {
            "id": new_id("resp_", 48), "object": "response", "created_at": int(time.time()),
            "status": "in_progress", "background": False, "error": None, "incomplete_details": None,
            "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
            "model": model, "output": [], "parallel_tool_calls": True,
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None}, "store": body.get("store", True),
            "temperature": 1.0, "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [],
            "top_p": 1.0, "truncation": "disabled", "usage": None, "user": None,
            "metadata": body.get("metadata") or {},
        }

    def finished(self, h: "Handler", skeleton: dict, item_id: str, text: str) -> tuple[dict, dict, dict]:
        """The final response object (per `terminal`), its message item and text part."""
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
        item = {"id": item_id, "type": "message", "status": "completed", "role": "assistant", "content": [part]}
        response = dict(skeleton, usage=self.usage(h.usage), output=[item], status="completed")
        terminal = h.opt["terminal"]
        if terminal == "incomplete":
            item["status"] = "incomplete"
            response.update(status="incomplete", incomplete_details={"reason": "max_output_tokens"})
        elif terminal == "failed":
            response.update(status="failed", output=[],
                            error={"code": "server_error", "message": "fake upstream: response failed"})
        return response, item, part

    def create(self, h: "Handler") -> None:
        body = h.json_body()
        model = str(body.get("model") or DEFAULT_MODEL)
        h.note(model=model)
        json_text = self.json_text(body)
        skeleton = self.skeleton(body, model)
        item_id = new_id("msg_", 48)
        headers = {"x-request-id": new_id("req_")}
        if not body.get("stream"):
            text = json_text if json_text is not None else h.greeting()
            response = self.finished(h, skeleton, item_id, text)[0]
            h.state.store_response(response)
            h.send_json(200, response, headers)
            return
        pieces = h.stream_pieces(json_text)
        response, item, part = self.finished(h, skeleton, item_id, "".join(pieces))
        h.state.store_response(response)
        seq = itertools.count()

        def event(name: str, **fields) -> tuple[bytes, bool]:
            data = {"type": name, **fields, "sequence_number": next(seq)}
            return sse(data, name), name == "response.output_text.delta"

        where = {"item_id": item_id, "output_index": 0, "content_index": 0}
        frames = [
            event("response.created", response=skeleton),
            event("response.in_progress", response=skeleton),
            event("response.output_item.added", output_index=0,
                  item={"id": item_id, "type": "message", "status": "in_progress", "content": [], "role": "assistant"}),
            event("response.content_part.added", **where, part=dict(part, text="")),
        ]
        frames += [event("response.output_text.delta", **where, delta=piece, logprobs=[]) for piece in pieces]
        if response["status"] != "failed":
            frames += [
                event("response.output_text.done", **where, text=part["text"], logprobs=[]),
                event("response.content_part.done", **where, part=part),
                event("response.output_item.done", output_index=0, item=item),
            ]
        frames.append(event(f"response.{h.opt['terminal']}", response=response))

        def error_frame(sent: int) -> bytes:
            return sse({"type": "error", "code": "server_error", "message": "fake upstream stream error",
                        "param": None, "sequence_number": sent}, "error")

        h.send_stream("text/event-stream; charset=utf-8", frames, headers, error_frame)

    def retrieve(self, h: "Handler", response_id: str) -> None:
        response = h.state.get_response(response_id)
        if response is None:
            h.send_error_shape(404, f"No response found with id '{response_id}'.")
        else:
            h.send_json(200, response)

    def cancel(self, h: "Handler", response_id: str) -> None:
        response = h.state.get_response(response_id)
        if response is None:
            h.send_error_shape(404, f"No response found with id '{response_id}'.")
            return
        response = dict(response, status="cancelled")
        h.state.store_response(response)
        h.send_json(200, response)

    def input_tokens(self, h: "Handler") -> None:
        h.json_body()
        h.send_json(200, {"object": "response.input_tokens", "input_tokens": h.usage.input})


class GeminiAPI:
    """Gemini native generateContent / streamGenerateContent / countTokens."""

    @staticmethod
    def usage_metadata(u: Usage, candidates: int) -> dict:
        meta = {"promptTokenCount": u.input}
        if candidates:
            meta["candidatesTokenCount"] = candidates
        meta["totalTokenCount"] = u.input + candidates + u.thoughts
        if u.cache_read:
            meta["cachedContentTokenCount"] = u.cache_read
        meta["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": u.input}]
        if u.thoughts:
            meta["thoughtsTokenCount"] = u.thoughts
        return meta

    @staticmethod
    def json_text(body: dict) -> str | None:
        config = body.get("generationConfig") if isinstance(body.get("generationConfig"), dict) else {}
        if (config.get("responseMimeType") or config.get("response_mime_type")) != "application/json":
            return None
        for key in ("responseJsonSchema", "responseSchema", "response_json_schema", "response_schema"):
            if isinstance(config.get(key), dict):
                return json_reply(config[key])
        return "{}"

    def model_action(self, h: "Handler", model: str, action: str) -> None:
        body = h.json_body()
        h.note(model=model)
        u = h.usage
        headers = {"Content-Type": "application/json; charset=UTF-8"}
        if action == "countTokens":
            result = {"totalTokens": u.input, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": u.input}]}
            if u.cache_read:
                result["cachedContentTokenCount"] = u.cache_read
            h.send_json(200, result, headers)
            return
        json_text = self.json_text(body)
        response_id = secrets.token_urlsafe(16)

        def chunk(text: str, candidates: int, final: bool) -> dict:
            candidate = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
            if final:
                candidate["finishReason"] = "STOP"
            return {"candidates": [candidate], "usageMetadata": self.usage_metadata(u, candidates),
                    "modelVersion": model, "responseId": response_id}

        if action == "generateContent":
            h.send_json(200, chunk(json_text if json_text is not None else h.greeting(), u.output, True), headers)
            return
        pieces = h.stream_pieces(json_text) or [""]
        chunks = [chunk(p, u.output * (i + 1) // len(pieces), i == len(pieces) - 1) for i, p in enumerate(pieces)]
        error = {"error": {"code": 500, "message": "fake upstream stream error", "status": "INTERNAL"}}
        if parse_qs(h.query).get("alt") == ["sse"]:
            frames = [(sse(c, sep="\r\n\r\n"), True) for c in chunks]
            h.send_stream("text/event-stream", frames, {}, lambda _sent: sse(error, sep="\r\n\r\n"))
            return
        # Without alt=sse Gemini streams one JSON array, element by element.
        frames = [((("[" if i == 0 else ",\r\n") + json.dumps(c, indent=2)).encode(), True)
                  for i, c in enumerate(chunks)]
        frames.append((b"]", False))
        h.send_stream("application/json; charset=UTF-8", frames, {},
                      lambda sent: (("[" if sent == 0 else ",\r\n") + json.dumps(error, indent=2) + "]").encode())


class ImagesAPI:
    """OpenAI images/generations (gpt-image style usage, b64_json data)."""

    def generations(self, h: "Handler") -> None:
        body = h.json_body()
        h.note(model=str(body.get("model") or DEFAULT_MODEL))
        count = h.opt["images"]
        if count is None:
            count = body.get("n", 1)
            if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10:
                raise BadRequest(f"invalid n {count!r}: expected an integer 1..10")
        u = h.usage
        if body.get("stream") is True:
            self.stream(h, body, count)
            return
        result = {
            "created": int(time.time()),
            "data": [{"b64_json": TINY_PNG_B64} for _ in range(count)],
            "usage": {"input_tokens": u.input, "output_tokens": u.output, "total_tokens": u.input + u.output,
                      "input_tokens_details": {"text_tokens": u.input, "image_tokens": 0}},
        }
        for key in ("background", "output_format", "quality", "size"):
            if key in body:
                result[key] = body[key]
        h.send_json(200, result, {"x-request-id": new_id("req_")})


    @staticmethod
    def stream(h: "Handler", body: dict, count: int) -> None:
        """stream: true: per image, `partial_images` (0..3) image_generation.partial_image events,
        then image_generation.completed (a content event for drop_after / error_after)."""
        partial = body.get("partial_images", 0)
        if isinstance(partial, bool) or not isinstance(partial, int) or not 0 <= partial <= 3:
            raise BadRequest(f"invalid partial_images {partial!r}: expected an integer 0..3")
        u = h.usage
        common = {"created_at": int(time.time()), "size": body.get("size", "1024x1024"),
                  "quality": body.get("quality", "high"), "background": body.get("background", "opaque"),
                  "output_format": body.get("output_format", "png")}
        frames = []
        for _ in range(count):
            frames += [(sse({"type": "image_generation.partial_image", "b64_json": TINY_PNG_B64, **common,
                             "partial_image_index": i}, "image_generation.partial_image"), False)
                       for i in range(partial)]
            frames.append((sse({"type": "image_generation.completed", "b64_json": TINY_PNG_B64, **common,
                                "usage": {"input_tokens": u.input, "output_tokens": u.output,
                                          "total_tokens": u.input + u.output,
                                          "input_tokens_details": {"text_tokens": u.input, "image_tokens": 0}}},
                               "image_generation.completed"), True))

        def error_frame(_sent: int) -> bytes:
            return sse({"type": "error", "error": error_body("openai", 500, "fake upstream stream error")["error"]},
                       "error")

        h.send_stream("text/event-stream; charset=utf-8", frames, {"x-request-id": new_id("req_")}, error_frame)


class ModelsAPI:
    """GET .../models in the provider family's list format."""

    IDS = {
        "anthropic": ["claude-sonnet-4-5-20250929", "claude-opus-4-1-20250805", "claude-haiku-4-5-20251001"],
        "openai": ["gpt-4o", "gpt-4o-mini", "gpt-5", "gpt-image-1"],
        "deepseek": ["deepseek-chat", "deepseek-reasoner"],
        "moonshot": ["kimi-k2-0905-preview", "moonshot-v1-8k"],
        "zhipu": ["glm-4.6", "glm-4.5-air"],
        "gemini": ["gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite"],
    }

    def list(self, h: "Handler") -> None:
        ids = self.IDS.get(h.provider, self.IDS["openai"])
        if h.family == "anthropic":
            data = [{"type": "model", "id": i, "display_name": i, "created_at": "2025-01-01T00:00:00Z"} for i in ids]
            h.send_json(200, {"data": data, "has_more": False, "first_id": ids[0], "last_id": ids[-1]})
        elif h.family == "gemini":
            models = [{"name": f"models/{i}", "version": "001", "displayName": i, "inputTokenLimit": 1048576,
                       "outputTokenLimit": 65536,
                       "supportedGenerationMethods": ["generateContent", "countTokens"]} for i in ids]
            h.send_json(200, {"models": models})
        else:
            prefix = "models/" if h.provider == "gemini" else ""
            data = [{"id": prefix + i, "object": "model", "created": 1700000000, "owned_by": h.provider} for i in ids]
            h.send_json(200, {"object": "list", "data": data})


ANTHROPIC, CHAT, RESPONSES, GEMINI, IMAGES, MODELS = (
    AnthropicAPI(), ChatCompletionsAPI(), ResponsesAPI(), GeminiAPI(), ImagesAPI(), ModelsAPI())

Route = collections.namedtuple("Route", "method pattern family name fn")
ROUTES = [Route(m, re.compile(p + "$"), fam, name, fn) for m, p, fam, name, fn in [
    ("POST", r"/v1/messages/count_tokens", "anthropic", "anthropic.count_tokens", ANTHROPIC.count_tokens),
    ("POST", r"/v1/messages", "anthropic", "anthropic.messages", ANTHROPIC.messages),
    ("POST", r"/chat/completions", "openai", "openai.chat_completions", CHAT.completions),
    ("POST", r"/responses/input_tokens", "openai", "openai.responses.input_tokens", RESPONSES.input_tokens),
    ("POST", r"/responses/(?P<response_id>[^/]+)/cancel", "openai", "openai.responses.cancel", RESPONSES.cancel),
    ("GET", r"/responses/(?P<response_id>[^/]+)", "openai", "openai.responses.retrieve", RESPONSES.retrieve),
    ("POST", r"/responses", "openai", "openai.responses", RESPONSES.create),
    ("POST", r"/models/(?P<model>[^/:]+):(?P<action>generateContent|streamGenerateContent|countTokens)",
     "gemini", "gemini.models", GEMINI.model_action),
    ("POST", r"/images/generations", "openai", "openai.images.generations", IMAGES.generations),
    ("GET", r"/models", None, "models.list", MODELS.list),
]]


def match_route(method: str, path: str):
    for route in ROUTES:
        if route.method == method:
            found = route.pattern.search(path)
            if found:
                return route, found.groupdict()
    return None, {}


# ---------------------------------------------------------------------------
# Shared server state: request log, config defaults, stored responses
# ---------------------------------------------------------------------------

class Recorder:
    def __init__(self, cap: int = MAX_RECORDS):
        self._cond = threading.Condition()
        self._records: collections.deque = collections.deque(maxlen=cap)
        self._seq = 0

    def add(self, **fields) -> dict:
        with self._cond:
            self._seq += 1
            record = {"seq": self._seq, "time": time.time(), **fields, "outcome": "in_progress",
                      "status": None, "stream": False, "events_sent": 0, "deltas_sent": 0}
            self._records.append(record)
            return record

    def update(self, record: dict, **fields) -> None:
        with self._cond:
            record.update(fields)
            if "outcome" in fields:
                record["ended"] = time.time()
                self._cond.notify_all()

    def clear(self) -> int:
        with self._cond:
            count = len(self._records)
            self._records.clear()
            return count

    def query(self, path_contains=None, provider=None, body_contains=None, wait_ms: int = 0) -> list[dict]:
        """Matching records, oldest first. With wait_ms, wait (up to wait_ms) until at least
        one record matches and none of the matching records is still in_progress."""
        deadline = time.monotonic() + wait_ms / 1000

        def wanted(r: dict) -> bool:
            return ((path_contains is None or path_contains in r["path"])
                    and (provider is None or r["provider"] == provider)
                    and (body_contains is None or body_contains in r["body"]))

        with self._cond:
            while True:
                selected = [dict(r) for r in self._records if wanted(r)]
                left = deadline - time.monotonic()
                settled = selected and all(r["outcome"] != "in_progress" for r in selected)
                if left <= 0 or settled:
                    return selected
                self._cond.wait(left)


class State:
    def __init__(self, log=None):
        self.recorder = Recorder()
        self.log = log
        self._lock = threading.Lock()
        self._config: dict = {}
        self._responses: collections.OrderedDict = collections.OrderedDict()

    def options(self, directive_text: str) -> dict:
        with self._lock:
            opt = {**DEFAULTS, **self._config}
        opt.update(parse_directives(directive_text))
        return opt

    def get_config(self) -> dict:
        with self._lock:
            return dict(self._config)

    def update_config(self, changes: dict) -> dict:
        with self._lock:
            config = dict(self._config)
            for key, value in changes.items():
                if value is None:
                    config.pop(key, None)
                else:
                    config[key] = coerce_option(key, value)
            self._config = config
            return dict(config)

    def reset_config(self) -> None:
        with self._lock:
            self._config = {}

    def store_response(self, response: dict) -> None:
        with self._lock:
            self._responses[response["id"]] = response
            while len(self._responses) > MAX_STORED_RESPONSES:
                self._responses.popitem(last=False)

    def get_response(self, response_id: str) -> dict | None:
        with self._lock:
            return self._responses.get(response_id)

    def write_log(self, line: str) -> None:
        if self.log is not None:
            with self._lock:
                self.log.write(line + "\n")
                self.log.flush()


# ---------------------------------------------------------------------------
# HTTP handler
# ---------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-upstream/1.0"
    sys_version = ""
    timeout = 600  # idle keep-alive connections are closed after this

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_PUT(self):
        self._handle("PUT")

    def do_PATCH(self):
        self._handle("PATCH")

    @property
    def state(self) -> State:
        return self.server.state

    def version_string(self) -> str:
        return self.server_version

    def send_error(self, code, message=None, explain=None):
        """http.server's own errors (malformed request line, bad method...) as JSON, not HTML."""
        self.log_error("code %d, message %s", code, message)
        self.close_connection = True
        body = dumps({"error": {"code": code, "message": message or status_phrase(code),
                                "type": "invalid_request_error"}}).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, fmt, *args):
        self.state.write_log(f"{self.log_date_time_string()} {self.address_string()} {fmt % args}")

    # -- request plumbing ---------------------------------------------------

    def _handle(self, method: str) -> None:
        self.opt = None
        self.rec = None
        self.headers_sent = False
        self.events_sent = 0
        url = urlsplit(self.path)
        self.req_path, self.query = unquote(url.path), url.query
        try:
            body = self._read_body()
            framing_error = None
        except BadRequest as exc:
            body, framing_error = b"", exc
            self.close_connection = True
        if self.req_path == "/_fake" or self.req_path.startswith("/_fake/"):
            if framing_error:
                self._control_reply(400, {"error": str(framing_error)})
            else:
                self._control(method, body)
            return
        self._provider_request(method, body, framing_error)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                if not line.endswith(b"\n"):
                    raise BadRequest("truncated chunked request body")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise BadRequest(f"bad chunk size line {line[:40]!r}") from None
                if size == 0:
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                total += size
                if size < 0 or total > MAX_BODY:
                    raise BadRequest("request body too large")
                data = self.rfile.read(size)
                if len(data) != size or self.rfile.readline(3).strip():
                    raise BadRequest("truncated or malformed chunk")
                parts.append(data)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            size = int(length)
        except ValueError:
            raise BadRequest(f"bad Content-Length {length!r}") from None
        if not 0 <= size <= MAX_BODY:
            raise BadRequest(f"bad Content-Length {length!r}")
        data = self.rfile.read(size)
        if len(data) != size:
            raise BadRequest("truncated request body")
        return data

    def _provider_request(self, method: str, body: bytes, framing_error: Exception | None) -> None:
        path = self.req_path
        self.provider = path.lstrip("/").split("/", 1)[0]
        self.body_text = body.decode("utf-8", "replace")
        self._json = None
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        route, params = match_route(method, path)
        self.family = route.family if route and route.family else guess_family(self.provider, path)
        self.rec = self.state.recorder.add(
            method=method, path=path, query=self.query, provider=self.provider, headers=headers,
            body=self.body_text, body_len=len(body), route=route.name if route else None, model=None)
        outcome = "completed"
        try:
            try:
                if framing_error:
                    raise framing_error
                self.opt = self.state.options(self.body_text + "\n" + unquote(self.query))
                self.usage = Usage(self.opt)
                if self.opt["delay"]:
                    self.wait_ms(self.opt["delay"])
                if route is None:
                    self.send_error_shape(404, f"fake upstream: no route for {method} {path}")
                elif self.opt["status"] >= 400:
                    self.send_error_shape(self.opt["status"])
                else:
                    route.fn(self, **params)
            except (BadRequest, DirectiveError) as exc:
                if self.headers_sent:
                    raise
                self.opt = None  # never drop a 400
                self.send_error_shape(400, f"fake upstream: {exc}")
        except ClientGone:
            outcome = "client_aborted"
        except Dropped:
            outcome = "dropped"
        except Exception as exc:  # a bug in this file: keep serving, but say so
            self.state.write_log(traceback.format_exc())
            self.state.recorder.update(self.rec, error=f"{type(exc).__name__}: {exc}")
            if self.headers_sent:
                outcome = "dropped"
            else:
                try:
                    self.opt = None
                    self.send_error_shape(500, f"fake upstream internal error: {exc}")
                except ClientGone:
                    outcome = "client_aborted"
        if outcome != "completed":
            self.close_connection = True
        self.state.recorder.update(self.rec, outcome=outcome)

    def _control(self, method: str, body: bytes) -> None:
        path, st = self.req_path, self.state
        args = {k: v[-1] for k, v in parse_qs(self.query).items()}
        try:
            if path == "/_fake/health" and method == "GET":
                self._control_reply(200, "ok")
            elif path == "/_fake/requests" and method == "GET":
                records = st.recorder.query(args.get("path_contains"), args.get("provider"),
                                            args.get("body_contains"), int(args.get("wait_ms", 0)))
                self._control_reply(200, records)
            elif path == "/_fake/requests" and method == "DELETE":
                self._control_reply(200, {"cleared": st.recorder.clear()})
            elif path == "/_fake/config" and method == "GET":
                self._control_reply(200, {"config": st.get_config()})
            elif path == "/_fake/config" and method == "POST":
                changes = json.loads(body.decode("utf-8") or "{}")
                if not isinstance(changes, dict):
                    raise ValueError("config body must be a JSON object")
                self._control_reply(200, {"config": st.update_config(changes)})
            elif path == "/_fake/config" and method == "DELETE":
                st.reset_config()
                self._control_reply(200, {"config": {}})
            else:
                self._control_reply(404, {"error": f"unknown control endpoint {method} {path}"})
        except ValueError as exc:  # includes JSONDecodeError, DirectiveError, bad ints
            self._control_reply(400, {"error": str(exc)})

    def _control_reply(self, status: int, payload) -> None:
        is_text = isinstance(payload, str)
        data = (payload if is_text else json.dumps(payload)).encode()
        try:
            self._start(status, {"Content-Type": "text/plain" if is_text else "application/json",
                                 "Content-Length": str(len(data))})
            self._write(data)
        except ClientGone:
            self.close_connection = True

    # -- socket helpers -----------------------------------------------------

    def _peer_state(self, timeout: float) -> str:
        """'closed' if the client hung up, 'data' if it sent more bytes, else 'idle'."""
        try:
            poller = select.poll()
            poller.register(self.connection, select.POLLIN | select.POLLPRI)
            if not poller.poll(max(0, math.ceil(timeout * 1000))):
                return "idle"
            peek = self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            return "data" if peek else "closed"
        except BlockingIOError:
            return "idle"
        except (OSError, ValueError):
            return "closed"

    def wait_ms(self, ms: int) -> None:
        """Sleep, but notice promptly (-> ClientGone) if the client closes meanwhile."""
        deadline = time.monotonic() + ms / 1000
        while (left := deadline - time.monotonic()) > 0:
            peer = self._peer_state(left)
            if peer == "closed":
                raise ClientGone()
            if peer == "data":  # pipelined bytes: cannot poll any more, just sleep
                time.sleep(max(0.0, deadline - time.monotonic()))
                return

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            raise ClientGone() from None

    def _start(self, status: int, headers: dict) -> None:
        if self._peer_state(0) == "closed":
            raise ClientGone()
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
        except OSError:
            raise ClientGone() from None
        self.headers_sent = True
        if self.rec is not None:
            self.state.recorder.update(self.rec, status=status)

    def _drop(self) -> None:
        try:
            self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        raise Dropped()

    # -- API for formats ----------------------------------------------------

    def note(self, **fields) -> None:
        self.state.recorder.update(self.rec, **fields)

    def json_body(self) -> dict:
        if self._json is None:
            try:
                self._json = json.loads(self.body_text)
            except ValueError as exc:
                raise BadRequest(f"request body is not valid JSON: {exc}") from None
            if not isinstance(self._json, dict):
                raise BadRequest("request body must be a JSON object")
        return self._json

    def greeting(self) -> str:
        return f"Hello from fake {self.provider}"

    def stream_pieces(self, json_text: str | None) -> list[str]:
        count = self.opt["events"]
        if json_text is not None:
            return split_text(json_text, count) if count else []
        return [f"tok{i} " for i in range(1, count + 1)]

    def send_json(self, status: int, obj, headers: dict | None = None) -> None:
        data = dumps(obj).encode()
        self._start(status, {"Content-Type": "application/json", **(headers or {}),
                             "Content-Length": str(len(data))})
        if self.opt and self.opt["drop_after"] is not None:
            self._write(data[: len(data) // 2])
            self._drop()
        self._write(data)

    def send_error_shape(self, status: int, message: str | None = None) -> None:
        request_id = new_id("req_")
        headers = {"anthropic": {"request-id": request_id},
                   "gemini": {"Content-Type": "application/json; charset=UTF-8"}}.get(
                       self.family, {"x-request-id": request_id})
        if self.opt and self.opt["retry_after"] is not None:
            headers["retry-after"] = str(self.opt["retry_after"])
        if self.opt and self.opt["reset_after"] is not None:
            headers.update(rate_limit_headers(self.family, self.opt["reset_after"]))
        self.send_json(status, error_body(self.family, status, message, request_id), headers)

    def send_stream(self, content_type: str, frames: list[tuple[bytes, bool]], headers: dict,
                    error_frame=None) -> None:
        """Write frames one by one (own chunk + flush each), applying pacing and failure directives.

        frames: (bytes, is_content); content frames are the text deltas counted by
        drop_after / error_after / silence. error_frame(events_sent) -> bytes.
        """
        opt = self.opt
        chunked = self.request_version != "HTTP/1.0"
        framing = {"Transfer-Encoding": "chunked"} if chunked else {"Connection": "close"}
        self._start(200, {"Content-Type": content_type, "Cache-Control": "no-cache", **headers, **framing})
        self.note(stream=True)
        if not chunked:
            self.close_connection = True
        drop_after, error_after = opt["drop_after"], opt["error_after"]
        content = 0

        def emit(data: bytes) -> None:
            if self._peer_state(0) == "closed":
                raise ClientGone()
            self._write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            self.events_sent += 1
            self.note(events_sent=self.events_sent)

        def check_failures() -> bool:
            if drop_after is not None and content >= drop_after:
                self._drop()
            if error_after is not None and error_frame is not None and content >= error_after:
                emit(error_frame(self.events_sent))
                return True
            return False

        for index, (data, is_content) in enumerate(frames):
            if index and opt["interval"]:
                self.wait_ms(opt["interval"])
            if is_content and check_failures():
                break
            emit(data)
            if is_content:
                content += 1
                self.note(deltas_sent=content)
                if check_failures():
                    break
                if content == 1 and opt["silence"]:
                    self.wait_ms(opt["silence"])
        if chunked:
            self._write(b"0\r\n\r\n")


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, address, state: State):
        self.state = state
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)

    def server_bind(self):
        # Skip HTTPServer.server_bind's getfqdn(): a reverse DNS lookup can stall startup.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        self.state.write_log(f"error serving {client_address}:\n{traceback.format_exc()}")


def write_port_file(path: str, port: int) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as handle:
        handle.write(f"{port}\n")
    os.replace(tmp, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Fake upstream LLM provider for zenn-gateway tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="write the bound port here (atomically) once listening")
    parser.add_argument("--log", help="access/error log file ('-' for stderr); default: no log")
    parser.add_argument("--selftest", action="store_true", help="run the built-in self test and exit")
    args = parser.parse_args(argv)
    if args.selftest:
        return _selftest()
    # Block SIGTERM/SIGINT in every thread (threads inherit the mask) and take them
    # synchronously with sigwait below: no handler can run at an awkward moment.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    log = None
    if args.log == "-":
        log = sys.stderr
    elif args.log:
        log = open(args.log, "a", encoding="utf-8")
    server = FakeServer((args.host, args.port), State(log))
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    if args.port_file:
        write_port_file(args.port_file, port)
    print(f"fake_upstream listening on {args.host}:{port}", file=sys.stderr, flush=True)
    signal.sigwait(stop_signals)
    server.shutdown()
    server.server_close()
    return 0


# ---------------------------------------------------------------------------
# Self test: python3 tests/fake_upstream.py --selftest
# ---------------------------------------------------------------------------

def _selftest() -> int:  # noqa: C901 - one linear script
    import concurrent.futures
    import urllib.error
    import urllib.request

    server = FakeServer(("127.0.0.1", 0), State())
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    base = f"http://127.0.0.1:{port}"

    def expect(cond, what):
        if not cond:
            raise AssertionError(what)

    def call(method, path, body=None, headers=None):
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        req = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=20) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers, err.read()

    def jcall(method, path, body=None):
        status, _, raw = call(method, path, body)
        return status, json.loads(raw)

    def records(**query):
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        return jcall("GET", "/_fake/requests?" + qs)[1]

    def parse_sse(raw: str):
        events = []
        for block in re.split(r"\r?\n\r?\n", raw.strip()):
            name, data = None, []
            for line in block.splitlines():
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
            if data:
                events.append((name, "\n".join(data)))
        return events

    def chat(prompt, **extra):
        return {"model": "m-1", "messages": [{"role": "user", "content": prompt}], **extra}

    # health, keep-alive, chunked request body
    expect(call("GET", "/_fake/health")[2] == b"ok", "health")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(2):
        conn.request("POST", "/openai/v1/chat/completions", body=iter([b'{"model":"x",', b'"messages":[]} ']),
                     headers={"Content-Type": "application/json"}, encode_chunked=True)
        resp = conn.getresponse()
        expect(resp.status == 200 and json.loads(resp.read())["object"] == "chat.completion", "chunked body")
    conn.close()
    rec = records(path_contains="/openai/v1/chat")[-1]
    expect(rec["body"] == '{"model":"x","messages":[]} ' and rec["headers"]["transfer-encoding"] == "chunked",
           f"chunked record {rec}")
    expect(rec["provider"] == "openai" and rec["outcome"] == "completed" and rec["body_len"] == 28, "record")

    # Anthropic non-stream usage mapping, count_tokens, 529
    status, msg = jcall("POST", "/anthropic/v1/messages", chat(
        "[[fake:input=100,output=12,cache_read=40,cache_write_5m=7,cache_write_1h=3]]"))
    u = msg["usage"]
    expect(status == 200 and msg["model"] == "m-1" and msg["content"][0]["text"] == "Hello from fake anthropic",
           "anthropic")
    expect((u["input_tokens"], u["output_tokens"], u["cache_read_input_tokens"], u["cache_creation_input_tokens"],
            u["cache_creation"]["ephemeral_1h_input_tokens"]) == (100, 12, 40, 10, 3), f"anthropic usage {u}")
    expect(jcall("POST", "/anthropic/v1/messages/count_tokens", chat("[[fake:input=77]]"))[1]
           == {"input_tokens": 77}, "count_tokens")
    status, err = jcall("POST", "/deepseek/anthropic/v1/messages", chat("[[fake:status=529]]"))
    expect(status == 529 and err["error"]["type"] == "overloaded_error", f"529 {err}")

    # Anthropic stream, read event by event with timing
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/anthropic/v1/messages",
                 json.dumps(chat("[[fake:events=4,interval=60,output=33]]", stream=True)))
    resp = conn.getresponse()
    expect(resp.getheader("Transfer-Encoding") == "chunked"
           and resp.getheader("Content-Type") == "text/event-stream; charset=utf-8", "sse headers")
    names, arrivals, raw = [], [], ""
    while True:
        line = resp.readline().decode()
        if not line:
            break
        raw += line
        if line.startswith("event:"):
            names.append(line[6:].strip())
            arrivals.append(time.monotonic())
    conn.close()
    expect(names == ["message_start", "content_block_start", "ping"] + ["content_block_delta"] * 4
           + ["content_block_stop", "message_delta", "message_stop"], f"anthropic events {names}")
    expect(all(b - a >= 0.045 for a, b in zip(arrivals, arrivals[1:])), "events arrive paced")
    events = [json.loads(d) for _, d in parse_sse(raw)]
    expect(events[3]["delta"]["text"] == "tok1 " and events[-2]["usage"] == {"output_tokens": 33}, "anthropic data")

    # error_after: in-stream error event
    _, _, raw = call("POST", "/anthropic/v1/messages", chat("[[fake:error_after=1]]", stream=True))
    expect([n for n, _ in parse_sse(raw.decode())][-1] == "error", "error_after")

    # OpenAI chat usage variants and streams
    _, body = jcall("POST", "/openai/v1/chat/completions", chat("[[fake:input=50,cache_read=20,reasoning=4]]"))
    expect(body["usage"]["prompt_tokens_details"]["cached_tokens"] == 20
           and body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 4
           and body["usage"]["total_tokens"] == 60, "openai usage")
    _, body = jcall("POST", "/deepseek/chat/completions", chat("[[fake:input=50,cache_read=20]]"))
    expect(body["usage"]["prompt_cache_hit_tokens"] == 20 and body["usage"]["prompt_cache_miss_tokens"] == 30, "ds")
    _, body = jcall("POST", "/moonshot/v1/chat/completions", chat("[[fake:cache_read=5]]"))
    expect(body["usage"]["cached_tokens"] == 5, "moonshot")
    for include in (True, False):
        extra = {"stream": True, "stream_options": {"include_usage": True}} if include else {"stream": True}
        _, _, raw = call("POST", "/zhipu/api/paas/v4/chat/completions", chat("hi", **extra))
        datas = [d for _, d in parse_sse(raw.decode())]
        chunks = [json.loads(d) for d in datas[:-1]]
        expect(datas[-1] == "[DONE]" and chunks[0]["choices"][0]["delta"]["role"] == "assistant", "chat stream")
        with_usage = [c for c in chunks if c.get("usage")]
        expect(len(with_usage) == (1 if include else 0), f"include_usage={include}")
        if include:
            expect(chunks[-1]["choices"] == [] and chunks[-2]["choices"][0]["finish_reason"] == "stop", "usage chunk")

    # Responses API
    _, resp_obj = jcall("POST", "/openai/v1/responses", {"model": "gpt-5", "input": "[[fake:cache_read=3]]"})
    expect(resp_obj["object"] == "response" and resp_obj["status"] == "completed"
           and resp_obj["output"][0]["content"][0]["type"] == "output_text"
           and resp_obj["usage"]["input_tokens_details"]["cached_tokens"] == 3, "responses")
    expect(jcall("GET", f"/openai/v1/responses/{resp_obj['id']}")[1]["id"] == resp_obj["id"], "retrieve")
    expect(jcall("POST", f"/openai/v1/responses/{resp_obj['id']}/cancel")[1]["status"] == "cancelled", "cancel")
    expect(jcall("GET", "/openai/v1/responses/resp_nope")[0] == 404, "retrieve 404")
    expect(jcall("POST", "/openai/v1/responses/input_tokens", {"input": "x"})[1]
           == {"object": "response.input_tokens", "input_tokens": 25}, "input_tokens")
    for terminal in TERMINALS:
        _, _, raw = call("POST", "/openai/v1/responses",
                         {"model": "gpt-5", "stream": True, "input": f"[[fake:terminal={terminal}]]"})
        evs = parse_sse(raw.decode())
        datas = [json.loads(d) for _, d in evs]
        expect([d["sequence_number"] for d in datas] == list(range(len(datas))), "sequence numbers")
        expect(evs[0][0] == "response.created" and evs[-1][0] == f"response.{terminal}"
               and datas[-1]["response"]["status"] == terminal and datas[-1]["response"]["usage"], f"{terminal}")

    # Gemini native
    schema = {"type": "object", "properties": {"reasoning": {"type": "string"},
                                               "model_choice": {"type": "string", "enum": ["flash", "pro"]}},
              "required": ["reasoning", "model_choice"]}
    _, body = jcall("POST", "/gemini/v1beta/models/gemini-2.5-flash:generateContent", {
        "contents": [{"role": "user", "parts": [{"text": "route"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": schema}})
    answer = json.loads(body["candidates"][0]["content"]["parts"][0]["text"])
    expect(answer == {"reasoning": "fake", "model_choice": "flash"} and body["modelVersion"] == "gemini-2.5-flash",
           f"gemini json {answer}")
    _, _, raw = call("POST", "/gemini/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
                     {"contents": [{"parts": [{"text": "[[fake:thoughts=5,output=9]]"}]}]})
    expect(raw.count(b"\r\n\r\n") == 3, "gemini sse separators")
    last = json.loads(parse_sse(raw.decode())[-1][1])
    expect(last["candidates"][0]["finishReason"] == "STOP"
           and last["usageMetadata"]["totalTokenCount"] == 25 + 9 + 5, f"gemini stream {last}")
    _, _, raw = call("POST", "/gemini/v1/models/gemini-2.5-pro:streamGenerateContent", {"contents": []})
    expect(len(json.loads(raw)) == 3, "gemini json array stream")
    expect(jcall("POST", "/gemini/v1beta/models/g:countTokens", {"contents": []})[1]["totalTokens"] == 25, "count")
    status, err = jcall("POST", "/gemini/v1beta/models/g:generateContent", {"contents": [], "x": "[[fake:status=503]]"})
    expect(status == 503 and err["error"]["status"] == "UNAVAILABLE", "gemini error")

    # Images, models, 404s, bad input
    _, body = jcall("POST", "/openai/v1/images/generations", {"model": "gpt-image-1", "prompt": "cat", "n": 2})
    expect(len(body["data"]) == 2 and base64.b64decode(body["data"][0]["b64_json"]).startswith(b"\x89PNG"), "img")
    _, body = jcall("POST", "/openai/v1/images/generations", {"prompt": "[[fake:images=3]]"})
    expect(len(body["data"]) == 3 and body["usage"]["total_tokens"] == 35, "images override")
    expect("has_more" in jcall("GET", "/anthropic/v1/models")[1], "anthropic models")
    expect("models" in jcall("GET", "/gemini/v1beta/models")[1], "gemini models")
    expect(jcall("GET", "/gemini/v1beta/openai/models")[1]["object"] == "list", "openai models")
    expect(jcall("POST", "/anthropic/v1/nope", {})[1]["error"]["type"] == "not_found_error", "404 anthropic")
    expect(jcall("POST", "/openai/v1/nope", {})[0] == 404, "404 openai")
    expect(jcall("POST", "/openai/v1/chat/completions", b"{not json")[0] == 400, "bad json")
    expect(jcall("POST", "/openai/v1/chat/completions", chat("[[fake:events=x]]"))[0] == 400, "bad directive")

    # drop_after: stream and non-stream
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/anthropic/v1/messages", json.dumps(chat("[[fake:events=5,drop_after=2]] drop-s",
                                                                   stream=True)))
    try:
        conn.getresponse().read()
        expect(False, "stream drop should be incomplete")
    except http.client.IncompleteRead as exc:
        expect(exc.partial.count(b"content_block_delta") == 4, "two deltas before drop")  # event + type
    conn.close()
    rec = records(body_contains="drop-s", wait_ms=3000)[0]
    expect(rec["outcome"] == "dropped" and rec["deltas_sent"] == 2, f"drop record {rec}")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/openai/v1/chat/completions", json.dumps(chat("[[fake:drop_after=0]] drop-j")))
    try:
        conn.getresponse().read()
        expect(False, "non-stream drop should be incomplete")
    except http.client.IncompleteRead:
        pass
    conn.close()
    expect(records(body_contains="drop-j", wait_ms=3000)[0]["outcome"] == "dropped", "drop json")

    # client closes mid-stream -> client_aborted, detected during interval and silence waits
    for marker, directive in (("abort-i", "events=50,interval=50"), ("abort-s", "events=3,silence=10000")):
        sock = socket.create_connection(("127.0.0.1", port))
        payload = json.dumps(chat(f"[[fake:{directive}]] {marker}", stream=True)).encode()
        sock.sendall(b"POST /anthropic/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))
        seen = b""
        while b"content_block_delta" not in seen:
            seen += sock.recv(65536)
        sock.close()
        started = time.monotonic()
        rec = records(body_contains=marker, wait_ms=5000)[0]
        expect(rec["outcome"] == "client_aborted" and time.monotonic() - started < 2, f"abort {marker} {rec}")

    # delay; wait_ms waits for a matching record to appear and settle
    late = threading.Thread(target=call, args=("POST", "/openai/v1/chat/completions",
                                               chat("[[fake:delay=300]] late-1")))
    started = time.monotonic()
    late.start()
    rec = records(body_contains="late-1", wait_ms=5000)
    expect(len(rec) == 1 and rec[0]["outcome"] == "completed" and time.monotonic() - started >= 0.3, "delay")
    late.join()
    expect(jcall("POST", "/_fake/config", {"status": 500})[1] == {"config": {"status": 500}}, "config set")
    expect(jcall("POST", "/openai/v1/chat/completions", chat("x"))[0] == 500, "config applies")
    jcall("DELETE", "/_fake/config")
    expect(jcall("POST", "/openai/v1/chat/completions", chat("x"))[0] == 200, "config reset")
    expect(jcall("POST", "/_fake/config", {"bogus": 1})[0] == 400, "config validation")

    # 200 parallel requests, half of them streams
    def one(i):
        return call("POST", "/openai/v1/chat/completions",
                    chat(f"[[fake:interval=5]] par-{i}", stream=bool(i % 2)))[0]
    with concurrent.futures.ThreadPoolExecutor(200) as pool:
        expect(set(pool.map(one, range(200))) == {200}, "parallel")
    expect(len(records(body_contains="par-")) == 200, "parallel records")

    rec = records()[0]
    expect(set(rec) >= {"seq", "time", "method", "path", "query", "provider", "headers", "body", "body_len",
                        "outcome", "events_sent"}, "record keys")
    expect(jcall("DELETE", "/_fake/requests")[1]["cleared"] > 0 and records() == [], "clear")
    server.shutdown()
    server.server_close()
    print("fake_upstream selftest: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
