"""The audit (table ``audit_log``): append-only, written in batches, pruned by age.

What is recorded (kinds): ``read`` — a key read personal data (the households'
external ids or the matters' ids it was shown, or the count for lists);
``refused`` — a request refused for its key, role or area (401, 403, 404 of a
scoped key, 429); ``capped`` — a request refused by a collection cap (429);
``key_created`` / ``key_revoked`` / ``key_expired``; ``publish``. Each line has
the time, the key (id, prefix, area), the client address and the endpoint.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.store.models import AUDIT_KINDS

__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "AuditRecord",
    "list_entries",
    "prune",
    "record_expired_keys",
    "record_now",
    "write_entries",
]

#: Audit lines older than this are pruned by ``gridmap audit prune`` by default.
DEFAULT_RETENTION_DAYS = 180


@dataclass(frozen=True)
class AuditRecord:
    """One audit line before it is written."""

    kind: str
    endpoint: str
    key_id: int | None = None
    key_prefix: str | None = None
    area_code: str | None = None
    client: str | None = None
    status: int | None = None
    households: tuple[str, ...] | None = None
    matters: tuple[int, ...] | None = None
    n: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def __post_init__(self) -> None:
        if self.kind not in AUDIT_KINDS:
            raise ValueError(
                f"audit kind must be one of {AUDIT_KINDS}, not {self.kind!r}"
            )


_COLUMNS = (
    "at, kind, key_id, key_prefix, area_code, client, endpoint, status, "
    "households, matters, n, detail"
)
_COPY = f"COPY audit_log ({_COLUMNS}) FROM STDIN"
_COPY_TYPES = (
    "timestamptz",
    "text",
    "int4",
    "text",
    "text",
    "text",
    "text",
    "int4",
    "text[]",
    "int8[]",
    "int4",
    "text",  # the detail's JSON text: the server parses it as jsonb
)


def write_entries(session: Session, records: Sequence[AuditRecord]) -> int:
    """Append ``records`` in the session's transaction with one ``COPY`` (a
    second's worth of reads is one round trip, no statement per row); the
    caller commits."""
    if not records:
        return 0
    raw = session.connection().connection.driver_connection
    assert raw is not None  # a live psycopg connection while the session is open
    with raw.cursor() as cur, cur.copy(_COPY) as copy:
        copy.set_types(_COPY_TYPES)
        for r in records:
            copy.write_row(
                (
                    r.at,
                    r.kind,
                    r.key_id,
                    r.key_prefix,
                    r.area_code,
                    r.client,
                    r.endpoint,
                    r.status,
                    list(r.households) if r.households is not None else None,
                    list(r.matters) if r.matters is not None else None,
                    r.n,
                    json.dumps(r.detail, ensure_ascii=False, default=str),
                )
            )
    return len(records)


def record_expired_keys(session: Session) -> list[str]:
    """Write a ``key_expired`` line for every key whose expiry has passed and
    was not recorded yet (revoked keys are not expired); their prefixes.

    One statement: the keys are marked as they are recorded, so server
    processes sweeping at the same time record each key once.
    """
    rows = session.execute(
        text(
            "WITH due AS (UPDATE api_keys SET expiry_audited_at = now() "
            "WHERE expires_at <= now() AND revoked_at IS NULL "
            "AND expiry_audited_at IS NULL "
            "RETURNING id, prefix, area_code, expires_at) "
            "INSERT INTO audit_log (kind, endpoint, key_id, key_prefix, area_code, "
            "detail) SELECT 'key_expired', 'expiry', id, prefix, area_code, "
            "jsonb_build_object('expires_at', expires_at) FROM due "
            "RETURNING key_prefix"
        )
    ).scalars()
    return [str(p) for p in rows]


def record_now(
    session: Session,
    kind: str,
    *,
    endpoint: str,
    detail: dict[str, Any] | None = None,
    key_prefix: str | None = None,
) -> None:
    """Write one audit line in the caller's transaction (the CLI's keys and
    publishes: recorded if and only if the change commits)."""
    write_entries(
        session,
        [AuditRecord(kind, endpoint, key_prefix=key_prefix, detail=dict(detail or {}))],
    )


def list_entries(
    session: Session,
    *,
    key_prefix: str | None = None,
    area_code: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    kind: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Audit lines, newest first, filtered by key prefix, kind, time
    (``since <= at < until``) and area: lines of keys whose area is
    ``area_code`` or lies inside it (an area below it, or a grid there)."""
    where: list[str] = []
    params: dict[str, Any] = {"lim": limit}
    if key_prefix is not None:
        where.append("l.key_prefix = :kp")
        params["kp"] = key_prefix
    if kind is not None:
        where.append("l.kind = :kind")
        params["kind"] = kind
    if since is not None:
        where.append("l.at >= :since")
        params["since"] = since
    if until is not None:
        where.append("l.at < :until")
        params["until"] = until
    cte = ""
    if area_code is not None:
        cte = (
            "WITH RECURSIVE down AS (SELECT id, code FROM admin_areas "
            "WHERE code = :area UNION SELECT a.id, a.code FROM admin_areas a "
            "JOIN down d ON a.parent_id = d.id), "
            "codes AS (SELECT code FROM down UNION SELECT g.code FROM grids g "
            "WHERE g.area_id IN (SELECT id FROM down)) "
        )
        where.append("l.area_code IN (SELECT code FROM codes)")
        params["area"] = area_code
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    rows = session.execute(
        text(
            f"{cte}SELECT l.id, l.at, l.kind, l.key_id, l.key_prefix, l.area_code, "
            "l.client, l.endpoint, l.status, l.households, l.matters, l.n, l.detail "
            f"FROM audit_log l{clause} ORDER BY l.at DESC, l.id DESC LIMIT :lim"
        ),
        params,
    ).mappings()
    return [dict(r) for r in rows]


def prune(session: Session, *, older_than: dt.timedelta) -> int:
    """Delete audit lines older than ``older_than``; how many went. The only
    delete the audit's trigger lets through (``gridmap.audit_prune`` is set for
    this transaction)."""
    session.execute(text("SELECT set_config('gridmap.audit_prune', 'on', true)"))
    n = len(
        session.execute(
            text(
                "DELETE FROM audit_log WHERE at < now() - CAST(:age AS interval) "
                "RETURNING id"
            ),
            {"age": f"{int(older_than.total_seconds())} seconds"},
        ).all()
    )
    session.execute(text("SELECT set_config('gridmap.audit_prune', '', true)"))
    return int(n or 0)
