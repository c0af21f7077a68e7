"""``/audit``: the audit's lines, for auditor keys."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from api.deps import KeyDep, SessionDep, need_role
from api.problems import problem_responses
from geo.store.audit import list_entries
from geo.store.keys import ApiKeyInfo
from geo.store.lookup import as_of_utc
from geo.store.models import AUDIT_KINDS

router = APIRouter(tags=["audit"])


def require_auditor(key: KeyDep) -> ApiKeyInfo:
    return need_role(key, "auditor", "Reading the audit")


@router.get(
    "/audit",
    summary="The audit: reads of personal data, refusals, caps, keys, publishes",
    description=(
        "Newest first. Filter by `key` (a key's prefix), `area` (lines of keys "
        "whose area is this one or inside it), `kind` and time (`since` ≤ at < "
        "`until`; a date means 00:00 UTC). An auditor key limited to an area sees "
        "the lines of keys inside its area only. Needs an auditor key."
    ),
    responses=problem_responses(401, 403, 422),
)
def audit(
    session: SessionDep,
    key: Annotated[ApiKeyInfo, Depends(require_auditor)],
    key_prefix: Annotated[
        str | None, Query(alias="key", min_length=8, max_length=16)
    ] = None,
    area: Annotated[str | None, Query(min_length=1, max_length=40)] = None,
    kind: Annotated[
        str | None, Query(pattern="^(" + "|".join(AUDIT_KINDS) + ")$")
    ] = None,
    since: Annotated[dt.datetime | dt.date | None, Query()] = None,
    until: Annotated[dt.datetime | dt.date | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> JSONResponse:
    args: dict[str, Any] = {
        "key_prefix": key_prefix,
        "kind": kind,
        "since": as_of_utc(since),
        "until": as_of_utc(until),
        "limit": limit,
    }
    rows = list_entries(session, area_code=key.area_code or area, **args)
    if key.area_code is not None and area is not None:
        inside = {r["id"] for r in list_entries(session, area_code=area, **args)}
        rows = [r for r in rows if r["id"] in inside]
    return JSONResponse(
        {
            "entries": [{**r, "at": r["at"].isoformat()} for r in rows],
            "returned": len(rows),
        }
    )


__all__ = ["router"]
