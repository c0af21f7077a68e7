"""API keys: random tokens with a public prefix, stored only as a SHA-256 hash."""

from __future__ import annotations

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
    "TOKEN_PREFIX",
    "ApiKeyInfo",
    "create_key",
    "hash_token",
    "key_of_row",
    "list_keys",
    "new_token",
    "revoke_key",
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


def create_key(session: Session, role: str, *, name: str | None = None) -> str:
    """Store a new key of ``role`` (``viewer`` or ``planner``); return its token.

    The token is returned once and never stored; the caller commits.
    """
    if role not in API_ROLES:
        raise ValueError(f"role must be one of {', '.join(API_ROLES)}, not {role!r}")
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
            "INSERT INTO api_keys (prefix, key_hash, role, name) VALUES (:p, :h, :r, :n)"
        ),
        {"p": prefix, "h": hash_token(token), "r": role, "n": name},
    )
    return token


def verify_key(session: Session, token: str) -> ApiKeyInfo | None:
    """The key ``token`` belongs to, or None (malformed, unknown, revoked, wrong)."""
    prefix = split_token(token)
    if prefix is None:
        return None
    row = session.execute(
        text(
            "SELECT id, key_hash, role, name FROM api_keys "
            "WHERE prefix = :p AND revoked_at IS NULL"
        ),
        {"p": prefix},
    ).first()
    return key_of_row(token, prefix, row)


#: :func:`verify_key`'s query for a raw psycopg connection (``%(p)s``: the prefix).
KEY_ROW_SQL = (
    "SELECT id, key_hash, role, name FROM api_keys "
    "WHERE prefix = %(p)s AND revoked_at IS NULL"
)


def key_of_row(token: str, prefix: str, row: Any) -> ApiKeyInfo | None:
    """The key of a :data:`KEY_ROW_SQL` row (id, key_hash, role, name) if ``token``
    matches its hash, else None."""
    if row is None or not hmac.compare_digest(row[1], hash_token(token.strip())):
        return None
    return ApiKeyInfo(id=row[0], prefix=prefix, role=row[2], name=row[3])


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
    """Active keys (prefix, role, name), oldest first."""
    rows = session.execute(
        text(
            "SELECT id, prefix, role, name FROM api_keys WHERE revoked_at IS NULL "
            "ORDER BY id"
        )
    ).all()
    return [
        ApiKeyInfo(id=r.id, prefix=r.prefix, role=r.role, name=r.name) for r in rows
    ]
