"""Request dependencies: the database session and the API-key roles."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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
    apply_scope,
    base_in_scope,
    expired_prefix,
    key_of_row,
    part_in_scope,
    plan_in_scope,
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
    "scoped_plan",
    "scoped_session",
]


def get_engine(request: Request) -> Engine:
    return request.app.state.engine  # type: ignore[no-any-return]


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

BearerDep = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
HeaderDep = Annotated[str | None, Security(_header)]


@contextmanager
def scoped_session(engine: Engine, key: ApiKeyInfo | None) -> Iterator[Session]:
    """A session in one transaction, limited to what ``key`` may see and change
    (:func:`geo.store.keys.apply_scope`; None: the public view). Committed when
    the block ends normally. Every request's database work with a key goes
    through here (:func:`get_session` and the lookups' reference path)."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        if key is not None:
            apply_scope(session, key)
        yield session


def get_session(
    request: Request, bearer: BearerDep, header: HeaderDep
) -> Iterator[Session]:
    """One transaction per request, committed when the endpoint returns normally.

    When the request carries an API key it is verified first (401 when wrong,
    429 while its address sends too many wrong keys) and the transaction is
    limited to the key's area (:func:`scoped_session`): no route can read or
    change a household, person or matter outside it. The key is kept in
    ``request.state.key`` for :func:`optional_key`.
    """
    token = bearer.credentials if bearer is not None else header
    with Session(get_engine(request), expire_on_commit=False) as session:
        with session.begin():
            key: ApiKeyInfo | None = None
            if token:
                key = verify_key(session, token)
                if key is None:
                    if (gone := expired_prefix(session, token)) is not None:
                        request.scope.setdefault("state", {}).setdefault("audit", {})[
                            "expired"
                        ] = gone
                    raise _invalid_key(request)
                apply_scope(session, key)
            request.state.key = key
            yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def optional_key(request: Request, session: SessionDep) -> ApiKeyInfo | None:
    """The caller's key (verified by :func:`get_session`): None when none was
    sent."""
    return getattr(request.state, "key", None)


def _client(request: Request) -> str:
    """The client's address (behind a trusted proxy: the forwarded one; see
    :class:`api.audit.AuditMiddleware`)."""
    found = getattr(request.state, "client", None)
    if found:
        return str(found)
    return request.client.host if request.client else "unknown"


def _invalid_key(request: Request) -> ProblemError:
    """The 401 for a wrong key (counted against the caller's address), or 429
    while that address has sent too many wrong keys. A valid key is never
    refused for its address's failures: it is checked before this is asked."""
    throttle = getattr(request.app.state, "auth_throttle", None)
    client = _client(request)
    if throttle is not None:
        if (wait := throttle.retry_after(client)) is not None:
            return ProblemError(
                429,
                f"Too many wrong API keys from {client}; try again in {wait} s.",
                type="/problems/too-many-failures",
                headers={"Retry-After": str(wait)},
            )
        throttle.fail(client)
    return ProblemError(
        401,
        "The API key is not valid (malformed, unknown, expired or revoked). "
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
    request: Request, bearer: BearerDep, header: HeaderDep
) -> ApiKeyInfo | None:
    """:func:`optional_key` with the key read on the lookups' pool: one
    autocommit round trip, no session (for the hot paths: ``GET /lookup``,
    ``POST /events``). None when no key was sent."""
    token = bearer.credentials if bearer is not None else header
    if not token:
        return None
    prefix = split_token(token)
    row = (
        await fetch_one(request.app.state.pool, KEY_ROW_SQL, {"p": prefix})
        if prefix is not None
        else None
    )
    key = key_of_row(token, prefix, row) if prefix is not None else None
    if key is None:
        raise _invalid_key(request)
    request.state.key = key
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


def _own_part(request: Request, session: Session, name: str, plan_id: int) -> bool:
    """Where a key limited to an area may name a plan covering more than its area:
    ``POST /plans/{plan_id}/draft?area=...`` for an area inside the key's own (a
    draft of only that part: a township's grids of the county's plan, which the
    key may then edit), and ``GET /plans/{plan_id}/diff/{other_id}`` for a plan
    ``other_id`` inside the key's area that ``plan_id`` covers (compared by its
    grids in ``other_id``'s area only)."""
    if name != "plan_id":
        return False
    path = request.url.path.rstrip("/")
    if request.method == "POST" and path.endswith(f"/plans/{plan_id}/draft"):
        part = request.query_params.get("area")
        return bool(part) and part_in_scope(session, plan_id, str(part))
    other = request.path_params.get("other_id")
    if (
        request.method == "GET"
        and other is not None
        and str(other).isdigit()
        and 0 < int(other) < 2**31
        and path.endswith(f"/plans/{plan_id}/diff/{other}")
    ):
        return base_in_scope(session, plan_id, int(other))
    return False


def scoped_plan(request: Request, session: SessionDep) -> None:
    """404 for a plan outside an area-limited key's area, as if it did not exist.

    A router-wide dependency of the plan and edit routes: a key limited to an
    area acts on (and, for planner keys, reads) only plans whose area lies
    inside its own, so a village's key cannot edit, publish or rebalance the
    county's plan. Every ``{plan_id}`` / ``{other_id}`` of the path is checked.
    """
    key: ApiKeyInfo | None = getattr(request.state, "key", None)
    if key is None or not key.scoped:
        return
    if request.method == "GET" and key.role != "planner":
        return  # plans are public to read
    for name in ("plan_id", "other_id"):
        raw = request.path_params.get(name)
        if raw is None or not str(raw).isdigit() or not 0 < int(raw) < 2**31:
            continue
        if not plan_in_scope(session, int(raw)) and not _own_part(
            request, session, name, int(raw)
        ):
            raise ProblemError(
                404,
                f"There is no plan {raw} inside the area of key {key.prefix} "
                f"({key.area_code}).",
                type="/problems/unknown-plan",
            )
