"""``/keys``: issue, list and revoke API keys, for admin keys (``geo.access``)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import KeyDep, SessionDep, need_role
from api.problems import problem_responses
from geo.access import issue_key, keys_visible, withdraw_key
from geo.store.keys import ApiKeyInfo
from geo.store.models import API_ROLES

router = APIRouter(tags=["keys"])


def require_admin(key: KeyDep) -> ApiKeyInfo:
    return need_role(key, "admin", "Managing API keys")


AdminDep = Annotated[ApiKeyInfo, Depends(require_admin)]


class KeyIn(BaseModel):
    """A key to issue."""

    model_config = ConfigDict(extra="forbid")

    role: str = Field(pattern="^(" + "|".join(API_ROLES) + ")$")
    name: str | None = Field(default=None, max_length=200)
    area: str | None = Field(
        default=None,
        min_length=1,
        max_length=40,
        description="admin area or grid code; none: the whole register",
    )
    expires: dt.date | None = Field(default=None, description="last day it works (UTC)")
    person: int | None = Field(default=None, ge=1, le=2**31 - 1)


def _key_out(k: Any) -> dict[str, Any]:
    return {
        "prefix": k.prefix,
        "role": k.role,
        "name": k.name,
        "area": k.area_code,
        "person": k.person_id,
        "expires_at": k.expires_at.isoformat() if k.expires_at else None,
    }


@router.get(
    "/keys",
    summary="Active API keys (never their tokens)",
    description=(
        "Every active key, expired ones too (their `expires_at` says so), oldest "
        "first; an admin key limited to an area lists the keys inside it only. "
        "Needs an admin key."
    ),
    responses=problem_responses(401, 403),
)
def list_keys_route(session: SessionDep, key: AdminDep) -> JSONResponse:
    return JSONResponse({"keys": [_key_out(k) for k in keys_visible(session, by=key)]})


@router.post(
    "/keys",
    status_code=201,
    summary="Issue an API key (its token is in this answer only)",
    description=(
        "Creates a key of `role` for `area` (an admin area or grid code; none: "
        "the whole register), optionally until `expires` and for `person` "
        "(`people.id`). An admin key limited to an area issues keys inside it "
        "only (403 otherwise). Recorded in the audit (`key_created`, with the "
        "issuing key). Needs an admin key."
    ),
    responses=problem_responses(401, 403, 422),
)
def create_key_route(
    request: Request, session: SessionDep, key: AdminDep, body: KeyIn
) -> JSONResponse:
    issued = issue_key(
        session,
        body.role,
        name=body.name,
        area_code=body.area,
        expires_on=body.expires,
        person_id=body.person,
        by=key,
        endpoint=f"POST {request.url.path}",
    )
    return JSONResponse(
        {"token": issued.token, **_key_out(issued)},
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )


@router.delete(
    "/keys/{prefix}",
    status_code=204,
    summary="Revoke an API key",
    description=(
        "Revokes the key at once on every server process. 404 for an unknown "
        "prefix, or one outside the area of an area-limited admin key. Recorded "
        "in the audit (`key_revoked`). Needs an admin key."
    ),
    responses=problem_responses(401, 403, 404),
)
def revoke_key_route(
    request: Request,
    session: SessionDep,
    key: AdminDep,
    prefix: Annotated[str, Path(pattern="^[0-9a-f]{8}$")],
) -> Response:
    withdraw_key(session, prefix, by=key, endpoint=f"DELETE {request.url.path}")
    return Response(status_code=204)


__all__ = ["router"]
