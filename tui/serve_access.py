"""Who may use a served llmlab: the token policy and the gate every request passes first.

A served app can start jobs and read files on the box, so the web server spawns an app process
only for a request that shows the token. The gate is an aiohttp middleware on the whole
application: it answers 403 before any handler runs, so a refused page or websocket never
reaches the code that starts a process.

The browser shows the token once, as `/?token=...` in the URL the server printed; the page
handler then sets it as a cookie and redirects to a URL without it. The cookie is what the
page's websocket carries (textual-serve's page script builds the websocket URL itself, so a
query parameter cannot be threaded through it).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
from urllib.parse import urlsplit

from aiohttp import web

from core.errors import UsageError

TOKEN_ENV = "LLMLAB_SERVE_TOKEN"  # a token from the environment stays out of `ps` output
MIN_TOKEN_LENGTH = 16
TOKEN_PARAM = "token"
LOOPBACK_NAMES = {"localhost", "ip6-localhost"}

log = logging.getLogger("llmlab.serve")


def is_loopback(host: str) -> bool:
    """True when `host` is reachable only from this machine (127.0.0.0/8, ::1, localhost)."""
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to any interface


def choose_token(host: str, token: str | None, no_token: bool) -> tuple[str | None, bool]:
    """The token this server demands (None: none) and whether it was generated here."""
    if no_token and token is not None:
        raise UsageError("--no-token and --token contradict each other; choose one")
    if no_token:
        if not is_loopback(host):
            raise UsageError(f"--host {host} is reachable from other machines, so it needs a token: drop --no-token "
                             f"(a token is then generated and printed) or keep the default --host 127.0.0.1 "
                             f"and reach it through an SSH tunnel")
        return None, False
    if token is None:
        return secrets.token_urlsafe(24), True
    if len(token) < MIN_TOKEN_LENGTH:
        raise UsageError(f"--token (or ${TOKEN_ENV}) is {len(token)} characters long; use at least {MIN_TOKEN_LENGTH}, "
                         f"or leave it out and llmlab generates one")
    if not token.isascii() or not token.isprintable() or " " in token:
        raise UsageError("--token must be printable ASCII without spaces (it travels in a URL and a cookie)")
    return token, False


def cookie_name(port: int) -> str:
    # Browsers keep cookies per host, not per port: servers on two ports must not overwrite each other's.
    return f"llmlab-serve-{port}"


class TokenGate:
    """The middleware that refuses, with 403, every request that does not show the token.

    With a token: the `?token=` query parameter or the cookie must match it (compared in constant
    time), and a websocket opened from a page of another origin is refused even with the cookie.
    Without one (loopback only): the Host header must name this machine, so a web page whose
    domain is rebound to 127.0.0.1 cannot drive the app.
    """

    def __init__(self, token: str | None, port: int) -> None:
        self._token = token.encode() if token is not None else None
        self.cookie = cookie_name(port)

    def presented_token(self, request: web.Request) -> str | None:
        return request.query.get(TOKEN_PARAM) or request.cookies.get(self.cookie)

    def allows(self, request: web.Request) -> tuple[bool, str]:
        """(allowed, why not): the whole decision, without side effects."""
        if self._token is None:
            if not is_loopback(request.url.host or ""):
                return False, "a Host header that is not this machine (the server runs without a token)"
        else:
            presented = self.presented_token(request)
            if not presented:
                return False, "no token"
            # compare_digest on bytes: constant time, and no TypeError for non-ASCII input.
            if not hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), self._token):
                return False, "a wrong token"
        origin = request.headers.get("Origin")
        if request.headers.get("Upgrade", "").lower() == "websocket" and origin is not None:
            if urlsplit(origin).netloc.lower() != request.host.lower():
                return False, "a websocket from a page of another origin"
        return True, ""

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        allowed, reason = self.allows(request)
        if not allowed:
            # The path only: the query may hold a (wrong, or nearly right) token.
            log.warning("refused %s %s from %s: %s", request.method, request.path, request.remote, reason)
            raise web.HTTPForbidden(text="403 Forbidden: this llmlab server needs its token. Open the URL that "
                                         "`llmlab serve` printed (it ends in ?token=...).\n")
        return await handler(request)
