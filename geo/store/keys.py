"""API keys: random tokens with a public prefix, stored only as a SHA-256 hash.

A key has a role, an area (an admin area code — county, township, village or
community — or a grid code; None: the whole register), an optional expiry and
an optional person. :func:`apply_scope` turns a session into the key's view:
the key's areas in transaction-local settings and the role ``gridmap_scoped``,
for which the row-level security policies of migration ``0008_key_scopes``
hide every personal row outside those areas.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.store.models import API_ROLES

__all__ = [
    "KEY_ROW_SQL",
    "SCOPED_ROLE",
    "SCOPE_SQL",
    "TOKEN_PREFIX",
    "ApiKeyInfo",
    "apply_scope",
    "area_in_scope",
    "area_within",
    "base_in_scope",
    "create_key",
    "expired_prefix",
    "hash_token",
    "key_of_row",
    "list_keys",
    "new_token",
    "part_in_scope",
    "person_area",
    "person_of",
    "plan_in_scope",
    "resolve_area",
    "revoke_key",
    "scope_params",
    "split_token",
    "verify_key",
]

#: Every token starts with this, so a leaked one is easy to recognise (and grep for).
TOKEN_PREFIX = "gm"
_TOKEN_RE = re.compile(rf"{TOKEN_PREFIX}_([0-9a-f]{{8}})_([A-Za-z0-9_-]{{32,64}})")


@dataclass(frozen=True)
class ApiKeyInfo:
    """What is known about a key: never the token itself."""

    id: int
    prefix: str
    role: str
    name: str | None
    #: admin area or grid code the key is limited to; None: the whole register
    area_code: str | None = None
    #: the person (``people.id``) the key belongs to
    person_id: int | None = None
    expires_at: dt.datetime | None = None

    @property
    def scoped(self) -> bool:
        """Whether the key is limited to an area."""
        return self.area_code is not None


def hash_token(token: str) -> str:
    """The stored form of a token: hex SHA-256 of the whole token.

    Tokens carry 256 random bits, so a fast hash is enough (no salt or key
    stretching needed: there is nothing to guess).

    Examples
    --------
    >>> hash_token("gm_0123abcd_" + "x" * 43)[:12]
    'cbbd11165bac'
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh ``(token, prefix)``: ``gm_<8 hex prefix>_<43 url-safe chars>``.

    Examples
    --------
    >>> token, prefix = new_token()
    >>> token.startswith(f"gm_{prefix}_"), len(prefix), split_token(token) == prefix
    (True, 8, True)
    """
    prefix = secrets.token_hex(4)
    return f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}", prefix


def split_token(token: str) -> str | None:
    """The public prefix of a well-formed token, else None.

    Examples
    --------
    >>> split_token("gm_0123abcd_" + "a" * 43)
    '0123abcd'
    >>> split_token("not a token") is None
    True
    """
    m = _TOKEN_RE.fullmatch(token.strip())
    return m.group(1) if m else None


#: The role scoped sessions run as (not the tables' owner: row-level security
#: applies to it).
SCOPED_ROLE = "gridmap_scoped"

#: Roles that read no personal rows at all: their sessions see no area.
_NO_AREA_ROLES = ("auditor", "admin")


def resolve_area(session: Session, code: str) -> str | None:
    """``"area"`` or ``"grid"`` for a known admin area or grid code, else None."""
    row = session.execute(
        text(
            "SELECT 'area' FROM admin_areas WHERE code = :c UNION ALL "
            "SELECT 'grid' FROM grids WHERE code = :c LIMIT 1"
        ),
        {"c": code},
    ).first()
    return None if row is None else str(row[0])


def person_area(session: Session, person_id: int) -> str | None:
    """The admin area code of person ``person_id`` (``""``: none), or None when
    there is no such person; answered without the row-level security of the
    register (migration 0010), so an admin key can issue a key to a person."""
    row = session.execute(
        text("SELECT gridmap_person_area(:p)"), {"p": person_id}
    ).scalar_one()
    return None if row is None else str(row)


def area_within(session: Session, code: str, root: str) -> bool:
    """Whether the admin area or grid ``code`` lies inside the admin area or
    grid ``root`` (``root`` itself included; a grid lies inside the areas
    above its own)."""
    if code == root:
        return True
    row = session.execute(
        text(
            "WITH RECURSIVE up AS ("
            "SELECT a.id, a.parent_id, a.code FROM admin_areas a WHERE a.id = "
            "coalesce((SELECT id FROM admin_areas WHERE code = :c), "
            "(SELECT g.area_id FROM grids g WHERE g.code = :c ORDER BY g.id DESC "
            "LIMIT 1)) UNION ALL SELECT a.id, a.parent_id, a.code FROM admin_areas a "
            "JOIN up ON a.id = up.parent_id) "
            "SELECT EXISTS (SELECT 1 FROM up WHERE code = :r)"
        ),
        {"c": code, "r": root},
    ).scalar_one()
    return bool(row)


def create_key(
    session: Session,
    role: str,
    *,
    name: str | None = None,
    area_code: str | None = None,
    expires_at: dt.datetime | None = None,
    person_id: int | None = None,
) -> str:
    """Store a new key of ``role``; return its token.

    ``area_code`` limits it to an admin area (and below) or one grid (None:
    the whole register); ``person_id`` names the person it belongs to. The
    token is returned once and never stored; the caller commits.

    Raises
    ------
    ValueError
        For an unknown role, area code or person.
    """
    if role not in API_ROLES:
        raise ValueError(f"role must be one of {', '.join(API_ROLES)}, not {role!r}")
    if area_code is not None and resolve_area(session, area_code) is None:
        raise ValueError(f"area {area_code!r} is neither an admin area nor a grid code")
    if person_id is not None and person_area(session, person_id) is None:
        raise ValueError(f"there is no person with id {person_id}")
    for _ in range(5):
        token, prefix = new_token()
        taken = session.execute(
            text("SELECT 1 FROM api_keys WHERE prefix = :p"), {"p": prefix}
        ).first()
        if taken is None:
            break
    else:  # pragma: no cover - 5 collisions in 2**32 prefixes
        raise RuntimeError("could not find a free key prefix")
    session.execute(
        text(
            "INSERT INTO api_keys (prefix, key_hash, role, name, area_code, "
            "expires_at, person_id) VALUES (:p, :h, :r, :n, :a, :e, :person)"
        ),
        {
            "p": prefix,
            "h": hash_token(token),
            "r": role,
            "n": name,
            "a": area_code,
            "e": expires_at,
            "person": person_id,
        },
    )
    return token


#: The key's areas (the area and every area below it; a grid key: its grid's
#: area) and grid into the transaction-local settings, then the scoped role.
#: An area that no longer exists gives the scope ``-1``: nothing.
SCOPE_SQL = (
    "WITH RECURSIVE root AS ("
    "SELECT a.id, NULL::text AS grid FROM admin_areas a WHERE a.code = CAST(%(code)s AS text) "
    "UNION ALL (SELECT g.area_id, g.code FROM grids g JOIN plans p ON p.id = g.plan_id "
    "WHERE g.code = CAST(%(code)s AS text) AND NOT EXISTS (SELECT 1 FROM admin_areas x "
    "WHERE x.code = CAST(%(code)s AS text)) "
    "ORDER BY p.status = 'published' DESC, p.id DESC LIMIT 1)), "
    "down AS (SELECT id FROM root UNION "
    "SELECT a.id FROM admin_areas a JOIN down d ON a.parent_id = d.id) "
    "SELECT set_config('gridmap.areas', CASE WHEN CAST(%(none)s AS boolean) THEN '-1' "
    "WHEN CAST(%(code)s AS text) IS NULL THEN '' "
    "ELSE coalesce((SELECT string_agg(id::text, ',') FROM down), '-1') END, true), "
    "set_config('gridmap.grid', coalesce((SELECT grid FROM root "
    "WHERE grid IS NOT NULL LIMIT 1), ''), true), "
    f"set_config('role', '{SCOPED_ROLE}', true)"
)


def scope_params(key: ApiKeyInfo) -> dict[str, Any]:
    """The parameters of :data:`SCOPE_SQL` for ``key``.

    Examples
    --------
    >>> k = ApiKeyInfo(1, "gm_1", "viewer", None, area_code="V1")
    >>> scope_params(k)
    {'code': 'V1', 'none': False}
    """
    return {"code": key.area_code, "none": key.role in _NO_AREA_ROLES}


def apply_scope(session: Session, key: ApiKeyInfo) -> None:
    """Limit the session's transaction to what ``key`` may see and change.

    One statement: the key's areas and grid become the transaction-local
    settings ``gridmap.areas`` and ``gridmap.grid``, and the transaction runs
    as :data:`SCOPED_ROLE`, so the row-level security policies hide every
    household, person, matter and assignment outside them (and refuse writes
    there). Unscoped keys see the whole register; auditor and admin keys no
    personal row at all. Both settings end with the transaction.
    """
    session.connection().exec_driver_sql(SCOPE_SQL, scope_params(key))


def expired_prefix(session: Session, token: str) -> str | None:
    """The prefix of ``token`` when it is a key that has expired (not revoked)."""
    prefix = split_token(token)
    if prefix is None:
        return None
    row = session.execute(
        text(
            "SELECT key_hash FROM api_keys WHERE prefix = :p AND revoked_at IS NULL "
            "AND expires_at <= now()"
        ),
        {"p": prefix},
    ).first()
    if row is None or not hmac.compare_digest(row[0], hash_token(token.strip())):
        return None
    return prefix


def person_of(session: Session, key: ApiKeyInfo) -> str | None:
    """The external id of the person ``key`` belongs to (None: no person).

    A key whose person is gone (or outside its area) gets ``""``: it names
    nobody, so it can act for nobody.
    """
    if key.person_id is None:
        return None
    row = session.execute(
        text("SELECT external_id FROM people WHERE id = :p"), {"p": key.person_id}
    ).first()
    return str(row[0]) if row is not None else ""


def plan_in_scope(session: Session, plan_id: int) -> bool:
    """Whether plan ``plan_id`` exists and its area lies inside the session's
    scope (always true for an unscoped session and an existing plan)."""
    row = session.execute(
        text("SELECT gridmap_area_ok(area_id) FROM plans WHERE id = :p"),
        {"p": plan_id},
    ).first()
    return bool(row and row[0])


def part_in_scope(session: Session, plan_id: int, code: str) -> bool:
    """Whether the admin area ``code`` lies inside the session's scope and inside
    (or is) plan ``plan_id``'s area: a key limited to a township may draft its
    township's part of the county's plan (only that part is copied)."""
    row = session.execute(
        text(
            "WITH RECURSIVE up AS (SELECT id, parent_id FROM admin_areas WHERE code = :c "
            "UNION ALL SELECT a.id, a.parent_id FROM admin_areas a JOIN up "
            "ON a.id = up.parent_id) SELECT gridmap_area_ok(x.id) FROM admin_areas x "
            "WHERE x.code = :c AND EXISTS (SELECT 1 FROM plans p JOIN up "
            "ON up.id = p.area_id WHERE p.id = :p)"
        ),
        {"c": code, "p": plan_id},
    ).first()
    return bool(row and row[0])


def base_in_scope(session: Session, plan_id: int, other_id: int) -> bool:
    """Whether plan ``other_id`` lies inside the session's scope and plan
    ``plan_id``'s area is (or is above) ``other_id``'s: a township's key may
    compare its draft with the county's plan it was drafted from (the diff reads
    only the county plan's grids inside the township)."""
    row = session.execute(
        text(
            "WITH RECURSIVE up AS (SELECT a.id, a.parent_id FROM admin_areas a "
            "JOIN plans o ON o.area_id = a.id WHERE o.id = :o "
            "UNION ALL SELECT a.id, a.parent_id FROM admin_areas a JOIN up "
            "ON a.id = up.parent_id) SELECT gridmap_area_ok(o.area_id) FROM plans o "
            "WHERE o.id = :o AND EXISTS (SELECT 1 FROM plans p JOIN up "
            "ON up.id = p.area_id WHERE p.id = :p)"
        ),
        {"o": other_id, "p": plan_id},
    ).first()
    return bool(row and row[0])


def area_in_scope(session: Session, code: str) -> bool:
    """Whether the admin area ``code`` exists inside the session's scope."""
    row = session.execute(
        text("SELECT gridmap_area_ok(id) FROM admin_areas WHERE code = :c"),
        {"c": code},
    ).first()
    return bool(row and row[0])


def verify_key(session: Session, token: str) -> ApiKeyInfo | None:
    """The key ``token`` belongs to, or None (malformed, unknown, revoked, wrong)."""
    prefix = split_token(token)
    if prefix is None:
        return None
    row = session.execute(text(_KEY_ROW), {"p": prefix}).first()
    return key_of_row(token, prefix, row)


_KEY_ROW = (
    "SELECT id, key_hash, role, name, area_code, person_id, expires_at FROM api_keys "
    "WHERE prefix = :p AND revoked_at IS NULL "
    "AND (expires_at IS NULL OR expires_at > now())"
)

#: :func:`verify_key`'s query for a raw psycopg connection (``%(p)s``: the prefix).
KEY_ROW_SQL = _KEY_ROW.replace(":p", "%(p)s")


def key_of_row(token: str, prefix: str, row: Any) -> ApiKeyInfo | None:
    """The key of a :data:`KEY_ROW_SQL` row (id, key_hash, role, name, area_code,
    person_id, expires_at) if ``token`` matches its hash, else None."""
    if row is None or not hmac.compare_digest(row[1], hash_token(token.strip())):
        return None
    return ApiKeyInfo(
        id=row[0],
        prefix=prefix,
        role=row[2],
        name=row[3],
        area_code=row[4],
        person_id=row[5],
        expires_at=row[6],
    )


def revoke_key(session: Session, prefix: str) -> bool:
    """Revoke the key with ``prefix``; False when there is no such active key."""
    row = session.execute(
        text(
            "UPDATE api_keys SET revoked_at = now() "
            "WHERE prefix = :p AND revoked_at IS NULL RETURNING id"
        ),
        {"p": prefix},
    ).first()
    return row is not None


def list_keys(session: Session) -> list[ApiKeyInfo]:
    """Active keys (prefix, role, name, area, person, expiry), oldest first;
    expired keys are listed too (their expiry says so)."""
    rows = session.execute(
        text(
            "SELECT id, prefix, role, name, area_code, person_id, expires_at "
            "FROM api_keys WHERE revoked_at IS NULL ORDER BY id"
        )
    ).all()
    return [
        ApiKeyInfo(
            id=r.id,
            prefix=r.prefix,
            role=r.role,
            name=r.name,
            area_code=r.area_code,
            person_id=r.person_id,
            expires_at=r.expires_at,
        )
        for r in rows
    ]
