"""Request dependencies: the database session and the API-key roles."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.dbpool import fetch_one
from api.problems import ProblemError
from geo.store.keys import (
    KEY_ROW_SQL,
    ApiKeyInfo,
    key_of_row,
    split_token,
    verify_key,
)

__all__ = [
    "HOUSEHOLD_READERS",
    "FastHandlerDep",
    "HandlerDep",
    "KeyDep",
    "PlannerDep",
    "PoolKeyDep",
    "SessionDep",
    "ViewerDep",
    "get_session",
    "optional_key",
    "pool_key",
    "require_handler",
    "require_handler_fast",
    "require_planner",
    "require_viewer",
]


def get_engine(request: Request) -> Engine:
    return request.app.state.engine  # type: ignore[no-any-return]


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the endpoint returns normally."""
    with Session(get_engine(request), expire_on_commit=False) as session:
        with session.begin():
            yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API key `gm_…` (see `gridmap keys create`).",
)
_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="apiKey",
    description="The same API key in an `X-API-Key` header.",
)

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="gridmap"'}


def optional_key(
    request: Request,
    session: SessionDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_header)],
) -> ApiKeyInfo | None:
    """The caller's key: None when none was sent, 401 when one was sent but is
    wrong, 429 while its address has sent too many wrong keys (see api.limits)."""
    token = bearer.credentials if bearer is not None else header
    if not token:
        return None
    _not_throttled(request)
    key = verify_key(session, token)
    if key is None:
        raise _invalid_key(request)
    return key


def _not_throttled(request: Request) -> None:
    """429 while the caller's address has sent too many wrong keys."""
    throttle = getattr(request.app.state, "auth_throttle", None)
    client = request.client.host if request.client else "unknown"
    if throttle is not None and (wait := throttle.retry_after(client)) is not None:
        raise ProblemError(
            429,
            f"Too many wrong API keys from {client}; try again in {wait} s.",
            type="/problems/too-many-failures",
            headers={"Retry-After": str(wait)},
        )


def _invalid_key(request: Request) -> ProblemError:
    """The 401 for a wrong key (counted against the caller's address)."""
    throttle = getattr(request.app.state, "auth_throttle", None)
    client = request.client.host if request.client else "unknown"
    if throttle is not None:
        throttle.fail(client)
    return ProblemError(
        401,
        "The API key is not valid (malformed, unknown or revoked). "
        "Ask an administrator for a key (gridmap keys create --role viewer).",
        type="/problems/invalid-key",
        headers=_CHALLENGE,
    )


KeyDep = Annotated[ApiKeyInfo | None, Depends(optional_key)]


#: Key roles that read households (auditor keys read the audit only, admin keys
#: manage keys).
HOUSEHOLD_READERS = ("viewer", "worker", "planner")


def need_role(key: ApiKeyInfo | None, role: str, what: str) -> ApiKeyInfo:
    """401 without a key, 403 with a key of too low a role (planner ⊃ worker,
    viewer; auditor and admin keys read no households)."""
    if key is None:
        raise ProblemError(
            401,
            f"{what} needs a {role} API key: send 'Authorization: Bearer gm_…' "
            "or 'X-API-Key: gm_…'.",
            type="/problems/missing-key",
            headers=_CHALLENGE,
        )
    if role == "planner" and key.role != "planner":
        raise ProblemError(
            403,
            f"{what} needs a planner key; key {key.prefix} is a {key.role} key.",
            type="/problems/forbidden",
        )
    if role in {"viewer", "worker"} and key.role not in HOUSEHOLD_READERS:
        raise ProblemError(
            403,
            f"{what} needs a viewer, worker or planner key; key {key.prefix} is "
            f"a {key.role} key.",
            type="/problems/forbidden",
        )
    if role in {"auditor", "admin"} and key.role != role:
        raise ProblemError(
            403,
            f"{what} needs an {role} key; key {key.prefix} is a {key.role} key.",
            type="/problems/forbidden",
        )
    return key


def require_viewer(key: KeyDep) -> ApiKeyInfo:
    return need_role(key, "viewer", "Reading households")


def require_planner(key: KeyDep) -> ApiKeyInfo:
    return need_role(key, "planner", "Changing plans")


ViewerDep = Annotated[ApiKeyInfo, Depends(require_viewer)]
PlannerDep = Annotated[ApiKeyInfo, Depends(require_planner)]


#: Key roles that handle events (report, sort, settle …) and see residents' data in them.
EVENT_HANDLER_ROLES = ("worker", "planner")


def require_handler(key: KeyDep) -> ApiKeyInfo:
    """A key that handles events: 401 without a key, 403 for a viewer key."""
    key = need_role(key, "worker", "Handling events")
    if key.role not in EVENT_HANDLER_ROLES:
        raise ProblemError(
            403,
            f"Handling events needs a worker or planner key; key {key.prefix} is a "
            f"{key.role} key.",
            type="/problems/forbidden",
        )
    return key


HandlerDep = Annotated[ApiKeyInfo, Depends(require_handler)]


async def pool_key(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_header)],
) -> ApiKeyInfo | None:
    """:func:`optional_key` with the key read on the lookups' pool: one
    autocommit round trip, no session (for the hot paths: ``GET /lookup``,
    ``POST /events``). None when no key was sent."""
    token = bearer.credentials if bearer is not None else header
    if not token:
        return None
    _not_throttled(request)
    prefix = split_token(token)
    row = (
        await fetch_one(request.app.state.pool, KEY_ROW_SQL, {"p": prefix})
        if prefix is not None
        else None
    )
    key = key_of_row(token, prefix, row) if prefix is not None else None
    if key is None:
        raise _invalid_key(request)
    return key


PoolKeyDep = Annotated[ApiKeyInfo | None, Depends(pool_key)]


async def require_handler_fast(key: PoolKeyDep) -> ApiKeyInfo:
    """:func:`require_handler` with the key read on the lookups' pool (see
    :func:`pool_key`; for ``POST /events``'s hot path).

    The same answers in the same order: 401 without a key, 429 while
    throttled, 401 for a wrong key, 403 for a viewer key.
    """
    return require_handler(key)


FastHandlerDep = Annotated[ApiKeyInfo, Depends(require_handler_fast)]
