"""A customer of the portal's account API, as a browser is one: it keeps the session cookie and
sends the portal's own Origin on requests that change state (override with origin=...)."""

import secrets

from zgtest import BASE, request

PASSWORD = "correct horse battery staple"


def new_email(tag="p"):
    return "%s-%s@example.com" % (tag, secrets.token_hex(6))


class Portal:
    def __init__(self, origin=BASE):
        self.cookie = None
        self.origin = origin
        self.set_cookie = None

    def call(self, method, path, body=None, headers=None, origin="default"):
        h = {}
        if self.cookie:
            h["Cookie"] = "zg_session=" + self.cookie
        o = self.origin if origin == "default" else origin
        if o and method not in ("GET", "HEAD"):
            h["Origin"] = o
        h.update(headers or {})
        r = request(method, path, headers=h, body=body)
        sc = r.headers.get("set-cookie")
        if sc:
            self.set_cookie = sc
            value = sc.split(";", 1)[0].partition("=")[2]
            self.cookie = value or None
        return r

    def signup(self, email=None, password=PASSWORD, **extra):
        self.email = email or new_email()
        body = dict(email=self.email, password=password, **extra)
        return self.call("POST", "/api/v1/account/signup", body)

    def login(self, email, password=PASSWORD):
        return self.call("POST", "/api/v1/account/login", {"email": email, "password": password})

    def me(self):
        return self.call("GET", "/api/v1/account")

    def new_key(self, **body):
        return self.call("POST", "/api/v1/account/keys", body)
