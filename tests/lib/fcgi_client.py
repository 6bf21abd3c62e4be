"""A minimal FastCGI client (the responder role, one request per connection), so tests can talk to
a program started on its own socket with a config of their own, without a web server."""

import socket
import struct

BEGIN, ABORT, END, PARAMS, STDIN, STDOUT, STDERR = 1, 2, 3, 4, 5, 6, 7


def _record(kind, content, req_id=1):
    out = b""
    while True:
        piece, content = content[:65535], content[65535:]
        out += struct.pack(">BBHHBx", 1, kind, req_id, len(piece), 0) + piece
        if not content:
            return out


def _nv(name, value):
    def ln(n):
        return struct.pack(">B", n) if n < 128 else struct.pack(">I", n | 0x80000000)
    name, value = name.encode(), value.encode()
    return ln(len(name)) + ln(len(value)) + name + value


def request(sock_path, method, uri, headers=None, body=b"", timeout=30):
    """Send one request; returns (status, headers as a dict with lower-case names, body bytes)."""
    params = {"REQUEST_METHOD": method, "REQUEST_URI": uri, "SCRIPT_NAME": uri.split("?")[0],
              "QUERY_STRING": uri.partition("?")[2], "SERVER_PROTOCOL": "HTTP/1.1",
              "REMOTE_ADDR": "127.0.0.1", "CONTENT_LENGTH": str(len(body))}
    for k, v in (headers or {}).items():
        name = k.upper().replace("-", "_")
        params[name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + name] = v
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    try:
        data = _record(BEGIN, struct.pack(">HB5x", 1, 0))
        data += _record(PARAMS, b"".join(_nv(k, v) for k, v in params.items())) + _record(PARAMS, b"")
        if body:
            data += _record(STDIN, body)
        data += _record(STDIN, b"")
        s.sendall(data)
        buf, out = b"", b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        while len(buf) >= 8:
            _, kind, _, clen, plen = struct.unpack(">BBHHBx", buf[:8])
            if len(buf) < 8 + clen + plen:
                break
            if kind == STDOUT:
                out += buf[8:8 + clen]
            buf = buf[8 + clen + plen:]
    finally:
        s.close()
    head, _, payload = out.partition(b"\r\n\r\n")
    hdrs, status = {}, 200
    for line in head.decode("latin-1").split("\r\n"):
        k, _, v = line.partition(":")
        if k.lower() == "status":
            status = int(v.strip().split()[0])
        elif k:
            hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, payload
