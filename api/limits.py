"""Limits against cheap abuse: header sizes, control characters, failed keys.

* :class:`LimitedHttpToolsProtocol` — uvicorn's httptools protocol that stops
  reading a request head (request line and headers) at :data:`MAX_HEADER_BYTES`
  and answers 431 (``gridmap serve`` runs uvicorn with it): a huge or endless
  header costs the server at most the limit plus one read.
* :class:`RequestGuard` — ASGI middleware: the same header limit for servers
  run without that protocol, and a 422 problem naming the parameter for any
  control character (NUL, C0, DEL, C1) in a path parameter, a query parameter
  or a string of a JSON body.
* :class:`AuthThrottle` — per client address: after :data:`AUTH_FAILURES`
  wrong keys within :data:`AUTH_WINDOW_S`, requests carrying a wrong key are
  answered 429 with ``Retry-After`` until the window has passed (a valid key
  is never refused for its address's failures).
* :func:`client_address` — the client's address, taken from
  ``X-Forwarded-For`` only when the direct peer is a configured proxy.
* :class:`SecurityHeaders` — ``X-Content-Type-Options: nosniff`` on every
  answer; HTML pages (``/map``, ``/docs``) also get a Content-Security-Policy
  (with ``frame-ancestors``), ``X-Frame-Options`` and ``Referrer-Policy``.
* :class:`CollectionCap` — distinct households revealed per key and per
  client address in a sliding window, shared by the server processes through
  the database about once a second (:class:`CapSync`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import logging
import math
import re
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import httptools
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.periodic import Periodic
from api.problems import PROBLEM_JSON, ProblemError, problem_bytes, send_problem

log = logging.getLogger("gridmap.api.limits")

__all__ = [
    "AUTH_FAILURES",
    "AUTH_WINDOW_S",
    "MAX_HEADER_BYTES",
    "AuthThrottle",
    "CapSync",
    "CollectionCap",
    "LimitedHttpToolsProtocol",
    "RequestGuard",
    "SecurityHeaders",
    "client_address",
    "control_char",
    "html_csp",
    "server_options",
    "trusted_networks",
    "with_nonce",
]

#: Largest request head (request line + all headers) accepted, in bytes.
MAX_HEADER_BYTES = 32 * 1024
#: Wrong keys from one client address within AUTH_WINDOW_S before 429s.
AUTH_FAILURES = 20
AUTH_WINDOW_S = 60.0
#: Client addresses whose failures are remembered (oldest forgotten first).
AUTH_CLIENTS = 10_000

#: Unicode category Cc: C0 controls, DEL and C1 controls.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: What may be a control character in JSON text: an escape or a raw character
#: (raw tab/newline/return are legal between tokens; inside strings the JSON
#: parser refuses them itself).
_JSON_CONTROL = re.compile(
    r"\\u00[01][0-9a-fA-F]|\\u007[fF]|\\u00[89][0-9a-fA-F]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
)


def control_char(value: str) -> str | None:
    """The first control character in ``value`` as ``U+XXXX``, or None.

    >>> control_char("33\\x00"), control_char("衢江区 5组"), control_char("a\\tb")
    ('U+0000', None, 'U+0009')
    """
    m = _CONTROL.search(value)
    return f"U+{ord(m.group(0)):04X}" if m else None


def _too_large_detail(size: int | None = None) -> str:
    seen = f" ({size} bytes)" if size is not None else ""
    return (
        f"The request line and headers{seen} exceed the limit of "
        f"{MAX_HEADER_BYTES} bytes."
    )


# --------------------------------------------------------------------- server


class _HeadTooLarge(Exception):
    pass


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bound on the request head.

    Bytes received while a request head is incomplete are counted; past
    :data:`MAX_HEADER_BYTES` the connection is answered 431 (problem+json) and
    closed, before the parser has buffered more than the limit and one read.
    """

    max_head_bytes = MAX_HEADER_BYTES

    _head_bytes: int | None = 0  # None: reading a body, not a head
    _completed = False  # a request ended in the bytes being parsed

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_bytes = 0
        super().connection_made(transport)

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if size > self.max_head_bytes:
            raise _HeadTooLarge(size)
        self._head_bytes = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_bytes = 0
        self._completed = True

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        self._completed = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._send_431()
                return
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        # only bytes that are all head so far count: when a request ended in
        # them they are mostly its body (a pipelined next head is checked whole
        # when complete, and counted from the next read on)
        if self._head_bytes is not None and not self._completed:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._send_431()

    def _send_431(self) -> None:
        body = problem_bytes(
            431,
            _too_large_detail(),
            "",
            title="Request header fields too large",
            type="/problems/headers-too-large",
        )
        head = (
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            + b"content-type: "
            + PROBLEM_JSON.encode()
            + b"\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\nconnection: close\r\n\r\n"
        )
        if not self.transport.is_closing():
            self.transport.write(head + body)
            self.transport.close()


#: Seconds a server worker may take to answer uvicorn's health check.
WORKER_HEALTHCHECK_S = 60


def server_options() -> dict[str, Any]:
    """uvicorn options of ``gridmap serve``: the head limit with either parser
    (httptools by default; h11 if chosen answers 400 past the same limit)."""
    return {
        "http": LimitedHttpToolsProtocol,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        # with several workers uvicorn kills a worker that does not answer its
        # health check in time; importing GridMap and opening its pools can take
        # longer than uvicorn's 5 s default on a busy 2-core machine, which made
        # workers die and restart in a loop
        "timeout_worker_healthcheck": WORKER_HEALTHCHECK_S,
    }


# ------------------------------------------------------------------------ ASGI


def _invalid(location: str, code: str) -> tuple[str, dict[str, Any]]:
    message = (
        f"contains the control character {code}; control characters "
        "(NUL, C0, DEL, C1) are not accepted in text"
    )
    return f"{location}: {message}", {
        "type": "/problems/invalid-request",
        "errors": [{"location": location, "message": message}],
    }


_TEMPLATE_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::path)?\}")


def _path_patterns(app: Any) -> list[re.Pattern[str]]:
    """Regexes of the app's documented path templates (``/items/{fid}``)."""
    cached = getattr(getattr(app, "state", None), "_guard_paths", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    try:
        templates = list(app.openapi().get("paths", {}))
    except Exception:  # no OpenAPI document: name "the path"
        templates = []
    out = []
    for t in templates:
        pos, rx = 0, ""
        for m in _TEMPLATE_PARAM.finditer(t):
            rx += re.escape(t[pos : m.start()]) + f"(?P<{m.group(1)}>[^/]+)"
            pos = m.end()
        out.append(re.compile(rx + re.escape(t[pos:]) + r"\Z", re.DOTALL))
    if getattr(app, "state", None) is not None:
        app.state._guard_paths = out
    return out


def _path_param(scope: Scope) -> str:
    """``path parameter 'fid'`` of the path template the path matches, else
    ``the path``."""
    path = scope.get("path", "")
    for rx in _path_patterns(scope.get("app")):
        m = rx.match(path)
        if m:
            for name, value in m.groupdict().items():
                if control_char(value):
                    return f"path parameter '{name}'"
    return "the path"


def _json_location(value: Any, path: tuple[str, ...] = ()) -> tuple[str, str] | None:
    """``(where, U+XXXX)`` of the first string or key of a parsed JSON document
    with a control character, or None."""
    if isinstance(value, str):
        code = control_char(value)
        return (".".join(path) or "body", code) if code else None
    if isinstance(value, dict):
        for k, v in value.items():
            if code := control_char(str(k)):
                return ".".join((*path, str(k))) + " (a key)", code
            if found := _json_location(v, (*path, str(k))):
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if found := _json_location(v, (*path, str(i))):
                return found
    return None


def _body_problem(body: bytes) -> ProblemError | None:
    text = body.decode("utf-8", errors="replace")
    if not _JSON_CONTROL.search(text):
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None  # malformed JSON: the endpoint's own 422 names it
    found = _json_location(doc)
    if found is None:
        return None
    detail, extra = _invalid(f"body field '{found[0]}'", found[1])
    return ProblemError(422, detail, **extra)


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            v = value.split(b";")[0].strip().lower()
            return v == b"application/json" or v.endswith(b"+json")
    return False


class RequestGuard:
    """ASGI middleware: header size limit (431) and no control characters (422)."""

    def __init__(self, app: ASGIApp, max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        size = len(scope.get("raw_path") or b"") + len(scope.get("query_string", b""))
        size += sum(len(n) + len(v) + 4 for n, v in scope.get("headers", []))
        if size > self.max_header_bytes:
            await send_problem(
                send,
                431,
                _too_large_detail(size),
                path,
                title="Request header fields too large",
                type="/problems/headers-too-large",
            )
            return
        problem = self._url_problem(scope)
        if problem is not None:
            detail, extra = problem
            await send_problem(
                send, 422, detail, path, title="Invalid request", **extra
            )
            return
        if scope.get("method") in {"POST", "PUT", "PATCH"} and _is_json(scope):
            receive = self._checked(receive)
        await self.app(scope, receive, send)

    @staticmethod
    def _url_problem(scope: Scope) -> tuple[str, dict[str, Any]] | None:
        path = scope.get("path", "")
        if code := control_char(path):
            return _invalid(_path_param(scope), code)
        qs = scope.get("query_string", b"")
        if qs:
            for name, value in parse_qsl(qs.decode("latin-1"), keep_blank_values=True):
                if code := control_char(name):
                    return _invalid("a query parameter name", code)
                if code := control_char(value):
                    return _invalid(f"query parameter '{name}'", code)
        return None

    @staticmethod
    def _checked(receive: Receive) -> Receive:
        """``receive`` that checks the whole body once its last part is read;
        the 422 is raised where the endpoint reads it (a handled ProblemError)."""
        parts: list[bytes] = []

        async def checked() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                parts.append(message.get("body", b""))
                if not message.get("more_body", False):
                    problem = _body_problem(b"".join(parts))
                    parts.clear()
                    if problem is not None:
                        raise problem
            return message

        return checked


# ---------------------------------------------------------------- auth throttle


class AuthThrottle:
    """Failed API keys per client address, in a sliding window; bounded memory.

    >>> t, now = AuthThrottle(max_failures=2, window_s=60, clock=lambda: now), 0.0
    >>> t.fail("1.2.3.4"); t.fail("1.2.3.4"); t.retry_after("1.2.3.4")
    60
    >>> now = 61.0; t.retry_after("1.2.3.4") is None
    True
    """

    def __init__(
        self,
        max_failures: int = AUTH_FAILURES,
        window_s: float = AUTH_WINDOW_S,
        max_clients: int = AUTH_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_clients = max_clients
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float] | None:
        q = self._failures.get(client)
        if q is None:
            return None
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if not q:
            del self._failures[client]
            return None
        return q

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try a key again, or None if it may now."""
        with self._lock:
            now = self._clock()
            q = self._recent(client, now)
            if q is None or len(q) < self.max_failures:
                return None
            # allowed again once enough failures have left the window
            oldest = q[len(q) - self.max_failures]
            return max(1, math.ceil(oldest + self.window_s - now))

    def fail(self, client: str) -> None:
        """Record a wrong key from ``client``."""
        with self._lock:
            now = self._clock()
            q = self._recent(client, now)
            if q is None:
                q = self._failures[client] = deque(maxlen=self.max_failures)
            q.append(now)
            self._failures.move_to_end(client)
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)


# ------------------------------------------------------------- client address

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(proxies: list[str] | tuple[str, ...]) -> tuple[Network, ...]:
    """Parsed proxy addresses or networks (``10.0.0.1``, ``10.0.0.0/8``).

    >>> [str(n) for n in trusted_networks(["10.0.0.1", "192.168.0.0/16"])]
    ['10.0.0.1/32', '192.168.0.0/16']
    """
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in proxies)


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in n for n in networks)


def client_address(scope: Scope, trusted: tuple[Network, ...] = ()) -> str:
    """The client's address: the direct peer, unless that peer is a trusted
    proxy; then the right-most ``X-Forwarded-For`` entry that is not itself a
    trusted proxy (entries further left are whatever the client claimed).

    >>> scope = {"client": ("10.0.0.1", 1), "headers": [(b"x-forwarded-for", b"6.6.6.6, 1.2.3.4")]}
    >>> client_address(scope), client_address(scope, trusted_networks(["10.0.0.1"]))
    ('10.0.0.1', '1.2.3.4')
    """
    peer = (scope.get("client") or ("unknown", 0))[0]
    if not trusted or not _trusted(peer, trusted):
        return str(peer)
    forwarded: list[str] = []
    for name, value in scope.get("headers", []):
        if name == b"x-forwarded-for":
            forwarded += [v.strip() for v in value.decode("latin-1").split(",")]
    for address in reversed(forwarded):
        if address and not _trusted(address, trusted):
            return address
    return str(peer)


# ------------------------------------------------------------ collection caps


class CollectionCap:
    """Distinct households revealed per holder (a key, a client address) in a
    sliding window; bounded memory (the holders seen longest ago are forgotten).

    Counted in this process and, through :meth:`sync` (about once a second,
    :class:`CapSync`), with what every server process revealed to the same
    holder (``geo.store.caps``): the cap holds for the service. Between two
    syncs a household new to this process that another one revealed in that
    second is counted twice, so near the cap a request may be refused a few
    seconds early (``Retry-After`` :data:`RECHECK_S`); never late beyond the
    reveals of the last second.

    >>> now = 0.0
    >>> cap = CollectionCap(limit=3, window_s=60, clock=lambda: now)
    >>> cap.admit("k", ["a", "b"]), cap.admit("k", ["a", "c"]), cap.admit("k", ["d"])
    (None, None, 60)
    >>> now = 61.0; cap.admit("k", ["d"]) is None
    True
    >>> cap.sync(lambda revealed, holders, window_s: {"k": 3})  # all processes
    >>> cap.admit("k", ["e"])  # refused: asked again after the next syncs
    5
    """

    #: Retry-After when the service-wide count (not this process's own) takes
    #: a holder past the cap: it is re-read every second.
    RECHECK_S = 5
    #: Reveals kept for the next sync at most (the database away for long).
    MAX_PENDING = 1_000_000

    def __init__(
        self,
        limit: int,
        window_s: float = 3600.0,
        max_holders: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_holders = max_holders
        self._clock = clock
        self._seen: OrderedDict[str, OrderedDict[str, float]] = OrderedDict()
        #: per holder: distinct households of all processes at the last sync,
        #: and those new to this process since
        self._shared: dict[str, int] = {}
        self._fresh: dict[str, int] = {}
        self._pending: dict[tuple[str, str], dt.datetime] = {}
        #: when the last sync succeeded (a minute without one: this process's
        #: own counts only, as while the database is away)
        self._synced_at: float | None = None
        self._lock = threading.Lock()

    def admit(self, holder: str, households: list[str]) -> int | None:
        """Record ``households`` as revealed to ``holder`` and None, or — when
        they would take it past the limit — record nothing and return the
        seconds until enough of its window has passed."""
        with self._lock:
            now = self._clock()
            seen = self._seen.get(holder)
            if seen is None:
                seen = self._seen[holder] = OrderedDict()
            while seen and next(iter(seen.values())) <= now - self.window_s:
                seen.popitem(last=False)
            new = [h for h in dict.fromkeys(households) if h not in seen]
            if new and len(seen) + len(new) > self.limit:
                if len(new) > self.limit or not seen:
                    return max(1, math.ceil(self.window_s))
                # wait until enough of the oldest leave the window
                need = len(seen) + len(new) - self.limit
                oldest = list(seen.values())[min(need, len(seen)) - 1]
                return max(1, math.ceil(oldest + self.window_s - now))
            synced = self._synced_at is not None and now - self._synced_at < 60
            shared = self._shared.get(holder, 0) + self._fresh.get(holder, 0)
            if new and synced and shared + len(new) > self.limit:
                return self.RECHECK_S
            wall = dt.datetime.now(dt.UTC)
            for h in households:
                seen[h] = now
                seen.move_to_end(h)
                if len(self._pending) < self.MAX_PENDING:
                    self._pending[(holder, h)] = wall
            if new:
                self._fresh[holder] = self._fresh.get(holder, 0) + len(new)
            self._seen.move_to_end(holder)
            while len(self._seen) > self.max_holders:
                self._seen.popitem(last=False)
            return None

    def sync(self, exchange: Callable[..., dict[str, int]]) -> None:
        """Hand what was revealed since the last call to ``exchange(revealed,
        holders, window_s)`` (``geo.store.caps.sync_reveals`` in a transaction)
        and keep its answer: every process's distinct households per holder.
        On failure the reveals are kept for the next call."""
        with self._lock:
            pending, self._pending = self._pending, {}
            fresh, self._fresh = self._fresh, {}
            holders = [h for h, seen in self._seen.items() if seen]
        revealed = [(h, x, t) for (h, x), t in pending.items()]
        try:
            shared = exchange(revealed, holders, self.window_s)
        except Exception:
            with self._lock:
                for k, t in pending.items():
                    self._pending.setdefault(k, t)
                for h, n in fresh.items():
                    self._fresh[h] = self._fresh.get(h, 0) + n
            raise
        with self._lock:
            self._shared = shared
            self._synced_at = self._clock()


class CapSync(Periodic):
    """A daemon thread syncing the collection caps with the other processes
    about once a second (:meth:`CollectionCap.sync`), and once more at stop."""

    thread_name = "gridmap-caps"

    def __init__(
        self, caps: tuple[CollectionCap, ...], engine: Any, every_s: float = 1.0
    ) -> None:
        super().__init__(every_s)
        self.caps = caps
        self.engine = engine

    def _exchange(self, *args: Any) -> dict[str, int]:
        from geo.store.caps import sync_reveals
        from geo.store.db import session_scope

        with session_scope(self.engine) as session:
            return sync_reveals(session, *args)

    def sync(self) -> None:
        for cap in self.caps:
            try:
                cap.sync(self._exchange)
            except Exception:
                log.exception("syncing the collection caps failed; tried again")

    tick = on_stop = sync


# ----------------------------------------------------------- security headers


def html_csp(nonce: str) -> str:
    """The policy of the HTML pages (``/map``, ``/docs``): everything from this
    origin (the viewer and Swagger UI are served inline or from vendored files:
    no CDN); scripts only from this origin or inline with this response's
    ``nonce`` — no other inline script, no event-handler attribute, no
    ``eval`` — so markup that found its way into a popup or a label cannot run;
    images also from configured tile servers (any http(s) origin: intranet tile
    servers) and data/blob URLs; styles inline too (Leaflet positions with
    them); no framing by other sites, no plugins, forms and base URLs only to
    this origin, fetches to this origin only.

    >>> "'unsafe-inline'" in html_csp("n0").split("script-src")[1].split(";")[0]
    False
    """
    return (
        f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob: https: http:; "
        "connect-src 'self'; font-src 'self' data:; object-src 'none'; "
        "base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
    )


_SCRIPT_TAG = re.compile(r"<script(?=[\s>])", re.IGNORECASE)


def with_nonce(scope: Scope, html: str) -> str:
    """``html`` (a page GridMap rendered: folium's page, Swagger UI's) with this
    response's CSP nonce on each of its ``<script>`` tags (:class:`SecurityHeaders`
    makes the nonce and sends the policy)."""
    state = scope.setdefault("state", {})
    nonce = state.setdefault("csp_nonce", secrets.token_urlsafe(18))
    return _SCRIPT_TAG.sub(f'<script nonce="{nonce}"', html)


_HTML_HEADERS = (
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"referrer-policy", b"no-referrer"),
)


class SecurityHeaders:
    """ASGI middleware adding the security headers (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {n.lower() for n, _ in headers}
                add = [(b"x-content-type-options", b"nosniff")]
                ctype = next(
                    (v for n, v in headers if n.lower() == b"content-type"), b""
                )
                if ctype.startswith(b"text/html"):
                    # one per response, made when the page put it on its
                    # scripts (with_nonce); else one nothing carries
                    nonce = state.get("csp_nonce") or secrets.token_urlsafe(18)
                    add.append((b"content-security-policy", html_csp(nonce).encode()))
                    add += list(_HTML_HEADERS)
                headers += [(n, v) for n, v in add if n not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)
