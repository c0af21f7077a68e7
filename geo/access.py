"""API keys as a workflow: issue, list and revoke them, each step audited.

One implementation for ``gridmap keys`` and the admin routes of the API
(``/keys``). A key issued by another key (an ``admin`` key over HTTP) can only
be for an area inside the issuer's own, and an area-limited admin lists and
revokes only keys inside its area (others are 404, as if absent). Every key
created or revoked is a line of the audit, written in the caller's transaction:
recorded if and only if the change commits.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from geo.errors import InputError, NotFound, OutOfScope
from geo.store.audit import record_now
from geo.store.keys import (
    ApiKeyInfo,
    area_within,
    create_key,
    list_keys,
    person_area,
    revoke_key,
    split_token,
)
from geo.store.models import API_ROLES

__all__ = ["IssuedKey", "issue_key", "keys_visible", "withdraw_key"]


@dataclass(frozen=True)
class IssuedKey:
    """A key just created: its token (shown this once only) and what it is."""

    token: str
    prefix: str
    role: str
    name: str | None
    area_code: str | None
    person_id: int | None
    expires_at: dt.datetime | None


def _inside(session: Session, code: str | None, by: ApiKeyInfo | None) -> bool:
    if by is None or by.area_code is None:
        return True
    return code is not None and area_within(session, code, by.area_code)


def issue_key(
    session: Session,
    role: str,
    *,
    name: str | None = None,
    area_code: str | None = None,
    expires_on: dt.date | None = None,
    person_id: int | None = None,
    by: ApiKeyInfo | None = None,
    endpoint: str = "gridmap keys create",
) -> IssuedKey:
    """Create an API key and record it in the audit.

    Parameters
    ----------
    session
        The caller's transaction (the key and its audit line commit together).
    role
        One of :data:`geo.store.models.API_ROLES`.
    name
        Who or what the key is for.
    area_code
        The admin area or grid the key is limited to; None: the whole register.
    expires_on
        The last day (UTC) the key works; None: until revoked.
    person_id
        The person (``people.id``) the key belongs to.
    by
        The key issuing it (an admin key over HTTP); None: the command line.
    endpoint
        Where the request came from, for the audit.

    Returns
    -------
    IssuedKey
        The token (only its hash is stored) and the key's attributes.

    Raises
    ------
    geo.errors.InputError
        An unknown role, area, person or a past expiry (the field is named).
    geo.errors.OutOfScope
        ``by`` is limited to an area and the new key's area is not inside it.

    Examples
    --------
    ::

        with session_scope(engine) as s:
            issued = issue_key(s, "viewer", area_code="330803101201")
    """
    source = "key"
    if role not in API_ROLES:
        raise InputError.one(
            source,
            f"role must be one of {', '.join(API_ROLES)}, not {role!r}",
            field="role",
        )
    if expires_on is not None and expires_on < dt.datetime.now(dt.UTC).date():
        raise InputError.one(
            source, f"expires {expires_on} is in the past", field="expires"
        )
    if not _inside(session, area_code, by):
        assert by is not None
        where = "the whole register" if area_code is None else f"area {area_code}"
        raise OutOfScope(
            f"key {by.prefix} is limited to {by.area_code}: it cannot issue a key "
            f"for {where}; give an area inside {by.area_code}"
        )
    if person_id is not None and by is not None and by.area_code is not None:
        # unknown and outside say the same: no oracle of people elsewhere
        home = person_area(session, person_id)
        if not home or not _inside(session, home, by):
            raise InputError.one(
                source,
                f"there is no person with id {person_id} inside {by.area_code}",
                field="person",
            )
    until = None
    if expires_on is not None:
        until = dt.datetime.combine(
            expires_on + dt.timedelta(days=1), dt.time(), dt.UTC
        )
    try:
        token = create_key(
            session,
            role,
            name=name,
            area_code=area_code,
            expires_at=until,
            person_id=person_id,
        )
    except ValueError as exc:
        field = "area" if "area" in str(exc) else "person"
        raise InputError.one(source, str(exc), field=field) from None
    prefix = str(split_token(token))
    record_now(
        session,
        "key_created",
        endpoint=endpoint,
        key_prefix=prefix,
        detail={
            "role": role,
            "area": area_code,
            "expires_at": until.isoformat() if until else None,
            "person_id": person_id,
            "by": by.prefix if by else None,
        },
    )
    return IssuedKey(token, prefix, role, name, area_code, person_id, until)


def keys_visible(session: Session, *, by: ApiKeyInfo | None = None) -> list[ApiKeyInfo]:
    """Active keys (expired ones too), oldest first; for an area-limited ``by``
    only the keys inside its area.

    Parameters
    ----------
    session
        Any session.
    by
        The key asking (an admin key over HTTP); None: every key.

    Returns
    -------
    list of ApiKeyInfo
        Never the tokens.

    Examples
    --------
    ::

        with session_scope(engine) as s:
            prefixes = [k.prefix for k in keys_visible(s)]
    """
    return [k for k in list_keys(session) if _inside(session, k.area_code, by)]


def withdraw_key(
    session: Session,
    prefix: str,
    *,
    by: ApiKeyInfo | None = None,
    endpoint: str = "gridmap keys revoke",
) -> None:
    """Revoke the key with ``prefix`` (at once, for every server process: keys
    are checked against the database on each request) and record it.

    Parameters
    ----------
    session
        The caller's transaction.
    prefix
        The key's prefix (the 8 hex digits after ``gm_``).
    by
        The key asking (an admin key over HTTP); None: the command line.
    endpoint
        Where the request came from, for the audit.

    Raises
    ------
    geo.errors.NotFound
        No active key has this prefix, or (for an area-limited ``by``) not
        inside its area.

    Examples
    --------
    ::

        with session_scope(engine) as s:
            withdraw_key(s, "0a1b2c3d")
    """
    target = next((k for k in list_keys(session) if k.prefix == prefix), None)
    if target is None or not _inside(session, target.area_code, by):
        raise NotFound(f"there is no active key with prefix {prefix!r}", what="key")
    revoke_key(session, prefix)
    record_now(
        session,
        "key_revoked",
        endpoint=endpoint,
        key_prefix=prefix,
        detail={"by": by.prefix} if by else {},
    )
