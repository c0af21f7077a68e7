"""The audit of the HTTP API: what each request revealed or was refused, written
in batches off the hot path.

* :func:`note_read` — a route says which households (external ids) or matters
  (ids) it is about to return, or how many rows a list holds.
* :class:`AuditMiddleware` — after each response, one :class:`AuditRecord`:
  ``read`` for a 2xx that noted something, ``refused`` for a 401/403/429 (and a
  404 of a key limited to an area), ``capped`` for a collection cap's 429.
* :class:`AuditWriter` — an in-process queue flushed every ``every_s`` seconds
  by a daemon thread and once more when the app shuts down (its lifespan), so a
  request only appends to a list.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from fastapi import Request
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.limits import client_address
from api.periodic import Periodic
from api.problems import ProblemError
from geo.store.audit import AuditRecord, record_expired_keys, write_entries
from geo.store.db import session_scope

__all__ = ["AuditMiddleware", "AuditWriter", "note_capped", "note_read", "record"]

log = logging.getLogger("gridmap.api.audit")

#: Most records kept in memory while the database cannot take them.
MAX_PENDING = 100_000


def note_read(
    request: Request,
    *,
    households: Iterable[str | None] = (),
    matters: Iterable[int | None] = (),
    n: int | None = None,
) -> None:
    """This request is about to reveal these households (external ids) and
    matters, or ``n`` rows of a list: recorded in the audit when the response
    succeeds. Households count against the collection caps of the key and of
    the client address (``app.state.caps``): past either, a 429 problem with
    ``Retry-After`` is raised instead (and recorded as ``capped``)."""
    note = request.scope.setdefault("state", {}).setdefault("audit", {})
    hh = [h for h in households if h is not None]
    ev = [int(m) for m in matters if m is not None]
    if hh:
        _admit(request, hh)
        note.setdefault("households", []).extend(hh)
    if ev:
        note.setdefault("matters", []).extend(ev)
    if n is not None:
        note["n"] = note.get("n", 0) + n


def _admit(request: Request, households: list[str]) -> None:
    caps = getattr(request.app.state, "caps", None)
    if caps is None:
        return
    key = getattr(request.state, "key", None)
    client = getattr(request.state, "client", None) or (
        request.client.host if request.client else "unknown"
    )
    by_key, by_client = caps
    holders = [(by_client, f"client {client}")]
    if key is not None:
        holders.insert(0, (by_key, f"key {key.prefix}"))
    for cap, holder in holders:
        wait = cap.admit(holder, households)
        if wait is not None:
            detail = {
                "holder": holder,
                "limit": cap.limit,
                "window_s": cap.window_s,
                "asked": len(set(households)),
            }
            note_capped(request, detail)
            raise ProblemError(
                429,
                f"{holder} has been shown {cap.limit} different households within "
                f"{cap.window_s:.0f} s, the most allowed; try again in {wait} s.",
                type="/problems/collection-cap",
                headers={"Retry-After": str(wait)},
                **detail,
            )


def record(request: Request, kind: str, detail: dict[str, Any]) -> None:
    """Queue an audit line of ``kind`` (e.g. ``publish``) for this request's key."""
    writer = getattr(request.app.state, "audit", None)
    if writer is None:
        return
    key = getattr(request.state, "key", None)
    writer.add(
        AuditRecord(
            kind,
            f"{request.method} {request.url.path}",
            key_id=key.id if key else None,
            key_prefix=key.prefix if key else None,
            area_code=key.area_code if key else None,
            client=getattr(request.state, "client", None),
            detail=detail,
        )
    )


def note_capped(request: Request, detail: dict[str, Any]) -> None:
    """Mark this request's refusal as a collection cap's."""
    note = request.scope.setdefault("state", {}).setdefault("audit", {})
    note["capped"] = detail


class AuditWriter(Periodic):
    """Audit records queued in memory and written in batches by a daemon thread."""

    thread_name = "gridmap-audit"

    def __init__(
        self, engine: Engine, *, every_s: float = 1.0, expiry_every_s: float = 60.0
    ) -> None:
        super().__init__(every_s)
        self.engine = engine
        #: how often keys whose expiry passed are written as ``key_expired``
        self.expiry_every_s = expiry_every_s
        self.written = 0
        self._pending: list[AuditRecord] = []
        self._lock = threading.Lock()
        self._swept = 0.0

    def add(self, record: AuditRecord) -> None:
        with self._lock:
            self._pending.append(record)
            if len(self._pending) > MAX_PENDING:  # the database is away for long
                del self._pending[: len(self._pending) - MAX_PENDING]

    def flush(self) -> int:
        """Write what is queued (one transaction); kept for the next try on failure."""
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return 0
        try:
            with session_scope(self.engine) as session:
                write_entries(session, batch)
        except Exception:
            log.exception("writing %d audit record(s) failed; kept", len(batch))
            with self._lock:
                self._pending[:0] = batch
            return 0
        self.written += len(batch)
        return len(batch)

    def sweep_expired(self) -> list[str]:
        """Record the keys that expired since the last sweep (any process's)."""
        try:
            with session_scope(self.engine) as session:
                return record_expired_keys(session)
        except Exception:
            log.exception("recording expired keys failed; tried again later")
            return []

    def on_start(self) -> None:
        self.sweep_expired()
        self._swept = time.monotonic()

    def tick(self) -> None:
        self.flush()
        if time.monotonic() - self._swept >= self.expiry_every_s:
            self.sweep_expired()
            self._swept = time.monotonic()

    def on_stop(self) -> None:
        self.flush()


def _record(scope: Scope, status: int) -> AuditRecord | None:
    state = scope.get("state") or {}
    key = state.get("key")
    note: dict[str, Any] = state.get("audit") or {}
    endpoint = f"{scope.get('method', '')} {scope.get('path', '')}"
    client = state.get("client")
    who: dict[str, Any] = {}
    if key is not None:
        who = {"key_id": key.id, "key_prefix": key.prefix, "area_code": key.area_code}
    if "expired" in note:  # the expiry itself: AuditWriter.sweep_expired
        return AuditRecord(
            "refused",
            endpoint,
            key_prefix=note["expired"],
            client=client,
            status=status,
            detail={"reason": "key expired"},
        )
    if "capped" in note:
        return AuditRecord(
            "capped",
            endpoint,
            client=client,
            status=status,
            detail=note["capped"],
            **who,
        )
    if 200 <= status < 300 and note:
        households = tuple(dict.fromkeys(note.get("households", ())))
        matters = tuple(dict.fromkeys(note.get("matters", ())))
        return AuditRecord(
            "read",
            endpoint,
            client=client,
            status=status,
            households=households or None,
            matters=matters or None,
            n=note.get("n", len(households) + len(matters)),
            **who,
        )
    if status in {401, 403, 429} or (
        status == 404 and key is not None and key.area_code is not None
    ):
        return AuditRecord("refused", endpoint, client=client, status=status, **who)
    return None


class AuditMiddleware:
    """ASGI middleware: one audit record per request that read personal data or
    was refused, handed to the app's :class:`AuditWriter` (``app.state.audit``;
    none: nothing is recorded). Also puts the client address (behind trusted
    proxies, the forwarded one) into ``request.state.client``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        app = scope.get("app")
        state = scope.setdefault("state", {})
        trusted = getattr(getattr(app, "state", None), "trusted_proxies", ())
        state["client"] = client_address(scope, trusted)
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            writer = getattr(getattr(app, "state", None), "audit", None)
            if writer is not None:
                record = _record(scope, status)
                if record is not None:
                    writer.add(record)
