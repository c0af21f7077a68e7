"""``/lookup``: the grid and the responsible people of an address or a point."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from api.audit import note_read
from api.dbpool import fetch_all, fetch_all_after
from api.deps import (
    HOUSEHOLD_READERS,
    PoolKeyDep,
    SessionDep,
    ViewerDep,
    scoped_session,
)
from api.problems import ProblemError, problem_responses
from api.schemas import (
    BatchIn,
    BatchOut,
    Crs,
    LookupOut,
    NearestOut,
    answer_dict,
    grid_out,
    lookup_out,
)
from geo.address import address_keys
from geo.crs import gcj02_to_wgs84
from geo.store.keys import SCOPE_SQL, ApiKeyInfo, scope_params
from geo.store.lookup import (
    ADDRESS_ANSWERS_SQL,
    POINT_ANSWER_SQL,
    PUBLIC_ADDRESS_ANSWERS_SQL,
    Answer,
    LookupResult,
    as_of_utc,
    lookup_addresses,
    lookup_points,
    public_result,
)

router = APIRouter(tags=["lookup"])

_ADDRESS_EXAMPLES = {
    "chinese": {
        "summary": "Chinese address (any admin prefix, 栋/幢, full-width digits)",
        "value": "浙江省衢州市衢江区樟潭街道金头路6号1栋1单元101室",
    },
    "numerals": {
        "summary": "Chinese numerals",
        "value": "衢江区廿里镇岩林村三组十二号",
    },
    "western": {"summary": "Western address", "value": "Landstrasse 12, 9490 Vaduz"},
}


def _to_wgs84(lon: float, lat: float, crs: str) -> tuple[float, float]:
    if crs == "gcj02":
        w_lon, w_lat = gcj02_to_wgs84(lon, lat)
        return float(w_lon), float(w_lat)
    return lon, lat


def _not_found(
    r: LookupResult, query: dict[str, Any], *, public: bool = False
) -> ProblemError:
    if r.match == "outside":
        near = r.nearest
        where = f"({query['lon']}, {query['lat']})"
        if near is None:
            return ProblemError(
                404,
                f"No grid contains {where}: no plan is in force"
                + (" at that date." if query.get("as_of") else "."),
                type="/problems/no-grid",
                title="Not in any grid",
                nearest=None,
            )
        return ProblemError(
            404,
            f"No grid contains {where}. The nearest grid is {near.grid.code} "
            f"({near.dist_m:.0f} m away). Check that lon comes before lat and that the "
            "coordinates are WGS 84 (pass crs=gcj02 for AMap/Tencent coordinates).",
            type="/problems/no-grid",
            title="Not in any grid",
            nearest=NearestOut(
                grid=grid_out(near.grid), dist_m=near.dist_m
            ).model_dump(),
        )
    return ProblemError(
        404,
        f"No household matches {query['address']!r}"
        + (" exactly" if public else "")
        + (f" (read as {r.key!r})" if r.key else "")
        + ". Check the township, village or road name and the house number, "
        "or look the place up by point (lon, lat)."
        + (
            " Ranked candidates for an incomplete or misspelt address need an API key."
            if public
            else ""
        ),
        type="/problems/no-household",
        title="No matching household",
        key=r.key,
    )


def _ambiguous(query: dict[str, Any]) -> ProblemError:
    """The public answer to an address several households share (none listed)."""
    return ProblemError(
        422,
        f"{query['address']!r} matches more than one household: give the full "
        "address, down to the house or room number. Ranked candidates need an "
        "API key.",
        type="/problems/ambiguous-address",
        title="More than one household matches",
    )


@router.get(
    "/lookup",
    response_model=LookupOut,
    summary="Which grid, and who is responsible, for an address or a point",
    description=(
        "Give **either** `address` **or** `lon` and `lat`. An address is matched "
        "on its canonical key (admin prefixes, 栋/幢, full-width digits and Chinese "
        "numerals do not matter). **Without a key** the answer is the grid (code, "
        "name, areas) and the grid worker's name and work phone of the one "
        "household the address names exactly, and nothing else: an address "
        "several households share is a 422, any other a 404, neither listing "
        "households. **With a viewer, worker or planner key** (inside the key's "
        "area) the answer also has the household (id, address) and its covering "
        "party member, and unmatched addresses are ranked by trigram similarity: "
        "`match` says which (`exact`, `fuzzy`, `ambiguous` with up to `limit` "
        "ranked `candidates`). A point returns the grid containing it "
        "(`match=point`); outside every grid the 404 problem names the nearest "
        "grid and its distance in metres. `as_of` answers from the plans in force "
        "at that time."
    ),
    responses=problem_responses(401, 404, 422, 429),
)
async def lookup(
    request: Request,
    key: PoolKeyDep,
    address: Annotated[
        str | None,
        Query(min_length=1, max_length=500, openapi_examples=_ADDRESS_EXAMPLES),
    ] = None,
    lon: Annotated[
        float | None,
        Query(
            ge=-180,
            le=180,
            description="longitude",
            openapi_examples={"quzhou": {"value": 118.9}},
        ),
    ] = None,
    lat: Annotated[
        float | None,
        Query(
            ge=-90,
            le=90,
            description="latitude",
            openapi_examples={"quzhou": {"value": 29.0}},
        ),
    ] = None,
    crs: Annotated[
        Crs, Query(description="wgs84 (GPS) or gcj02 (AMap / Tencent maps)")
    ] = "wgs84",
    as_of: Annotated[
        dt.date | dt.datetime | None,
        Query(
            description="answer from the plan in force then (a date means 00:00 UTC)",
            openapi_examples={"date": {"value": "2025-06-01"}},
        ),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=20, description="most candidates (keys only)")
    ] = 5,
) -> Response:
    when = as_of_utc(as_of)
    public = key is None or key.role not in HOUSEHOLD_READERS
    point = lon is not None or lat is not None
    if address is not None and point:
        raise ProblemError(
            422,
            "Give either address=… or lon=…&lat=…, not both.",
            type="/problems/invalid-request",
        )
    if address is None and not point:
        raise ProblemError(
            422,
            "Give an address (address=…) or a point (lon=…&lat=…).",
            type="/problems/invalid-request",
        )
    if address is not None:
        if not address.strip():
            raise ProblemError(
                422, "The address is blank.", type="/problems/invalid-request"
            )
        query: dict[str, Any] = {"address": address}
        wgs84 = None
    else:
        if lon is None or lat is None:
            raise ProblemError(
                422, "A point needs both lon and lat.", type="/problems/invalid-request"
            )
        if not (math.isfinite(lon) and math.isfinite(lat)):
            raise ProblemError(
                422,
                "lon and lat must be finite numbers.",
                type="/problems/invalid-request",
            )
        wgs84 = _to_wgs84(lon, lat, crs)
        query = {"lon": lon, "lat": lat, "crs": crs}
        if crs != "wgs84":
            query["wgs84"] = [round(wgs84[0], 7), round(wgs84[1], 7)]
    if as_of is not None:
        query["as_of"] = str(as_of)
    else:
        # hot path: one prepared statement on a pooled connection, the answer
        # built as JSON in PostGIS (exact keys and points in a grid); with a key
        # it runs in a transaction limited to the key's area, as the reference
        # path's session is
        fast = await _fast_lookup(
            request, address, wgs84, query, None if public else key
        )
        if fast is not None:
            return fast
    # everything else (keys, fuzzy addresses, points outside every grid, as_of):
    # the set-based reference queries in geo.store.lookup, in a worker thread
    r = await run_in_threadpool(
        _reference_lookup,
        request.app.state.engine,
        address,
        wgs84,
        when,
        limit,
        None if public else key,
    )
    if public:
        if r.match == "ambiguous":  # exact keys only: several households share it
            raise _ambiguous(query)
        r = public_result(r)
    else:
        note_read(request, households=[a.household_id for a in r.answers])
    if r.match in {"none", "outside"}:
        raise _not_found(r, query, public=public)
    return JSONResponse(lookup_out(r, query, when).model_dump(mode="json"))


async def _fast_lookup(
    request: Request,
    address: str | None,
    wgs84: tuple[float, float] | None,
    query: dict[str, Any],
    key: ApiKeyInfo | None = None,
) -> Response | None:
    """The answer from one statement, or None when the reference path must
    decide. ``key`` None: the public answer; a household reader's key: the
    full answer of one exact household or a point, read inside its scope (a
    fuzzy or ambiguous address goes the reference path, which ranks)."""
    pool = request.app.state.pool

    async def rows_of(sql: str, params: dict[str, Any]) -> list[str]:
        if key is None:
            return [r[0] for r in await fetch_all(pool, sql, params)]
        scope = (SCOPE_SQL, scope_params(key))
        return [r[0] for r in await fetch_all_after(pool, scope, sql, params)]

    if address is not None:
        akey = address_keys([address])[0]
        if not akey:
            return None
        sql = PUBLIC_ADDRESS_ANSWERS_SQL if key is None else ADDRESS_ANSWERS_SQL
        rows = await rows_of(sql, {"key": akey, "lim": 2})
        if key is not None and len(rows) != 1:
            return None  # fuzzy candidates or a ranked ambiguity
        if not rows:
            raise _not_found(LookupResult("none", key=akey), query, public=True)
        if len(rows) > 1:
            raise _ambiguous(query)
        match = "exact"
        if key is not None:
            household = json.loads(rows[0])["household"]
            note_read(request, households=[household["id"] if household else None])
    else:
        assert wgs84 is not None
        rows = await rows_of(POINT_ANSWER_SQL, {"lon": wgs84[0], "lat": wgs84[1]})
        if not rows:
            return None  # outside every grid: the reference path finds the nearest
        rows, match = rows[:1], "point"
    head = json.dumps(
        {"match": match, "query": query, "as_of": None}, ensure_ascii=False
    )
    body = f'{head[:-1]},"result":{rows[0]},"candidates":[]}}'
    return Response(body.encode(), media_type="application/json")


def _reference_lookup(
    engine: Engine,
    address: str | None,
    wgs84: tuple[float, float] | None,
    when: dt.datetime | None,
    limit: int,
    key: ApiKeyInfo | None,
) -> LookupResult:
    """The reference lookup; ``key`` None: the public one (exact keys only)."""
    with scoped_session(engine, key) as session:
        if address is not None:
            return lookup_addresses(
                session,
                [address],
                as_of=when,
                limit=limit if key is not None else 2,
                fuzzy=key is not None,
            )[0]
        assert wgs84 is not None
        return lookup_points(session, [wgs84[0]], [wgs84[1]], as_of=when)[0]


@router.post(
    "/lookup/batch",
    response_model=BatchOut,
    summary=f"Look up to {10_000:,} addresses or points in one request",
    description=(
        "Each item is an address or a point; results come back in the same order "
        "with a per-item `status` (200 or 404) instead of failing the request. "
        "Answered with set-based SQL (a handful of queries for the whole batch). "
        "The body is limited (413 beyond it) and so is the number of items (422). "
        "Needs a viewer, worker or planner key (401 without)."
    ),
    responses=problem_responses(401, 403, 413, 422, 429),
)
def lookup_batch(
    request: Request, session: SessionDep, key: ViewerDep, body: BatchIn
) -> JSONResponse:
    when = as_of_utc(body.as_of)
    items = body.items
    addr_idx = [i for i, it in enumerate(items) if it.address is not None]
    pt_idx = [i for i, it in enumerate(items) if it.address is None]
    results: dict[int, LookupResult] = {}
    if addr_idx:
        found = lookup_addresses(
            session, [items[i].address for i in addr_idx], as_of=when, limit=body.limit
        )
        results.update(zip(addr_idx, found, strict=True))
    if pt_idx:
        lons, lats = [], []
        for i in pt_idx:
            lo, la = _to_wgs84(float(items[i].lon), float(items[i].lat), items[i].crs)  # type: ignore[arg-type]
            lons.append(lo)
            lats.append(la)
        results.update(
            zip(pt_idx, lookup_points(session, lons, lats, as_of=when), strict=True)
        )
    note_read(
        request,
        households=[a.household_id for r in results.values() for a in r.answers],
    )
    # plain dicts, each grid serialised once: pydantic models for 10,000 answers
    # would cost seconds (the response model still documents the shape)
    grids: dict[int, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    summary: dict[str, int] = {}
    for i, it in enumerate(items):
        r = results[i]
        summary[r.match] = summary.get(r.match, 0) + 1
        row: dict[str, Any] = {"index": i, "id": it.id, "match": r.match}
        if r.match in {"none", "outside"}:
            near = r.nearest
            row.update(
                status=404,
                result=None,
                candidates=[],
                nearest={
                    "grid": answer_dict(Answer(0, near.grid, "point"), grids)["grid"],
                    "dist_m": near.dist_m,
                }
                if near is not None
                else None,
                detail="no household matches this address"
                if r.match == "none"
                else "no grid contains this point"
                + (
                    f"; the nearest is {near.grid.code}, {near.dist_m:.0f} m away"
                    if near
                    else ""
                ),
            )
        else:
            best = r.best
            rest = r.answers[1:] if best is not None else r.answers
            row.update(
                status=200,
                result=answer_dict(best, grids) if best is not None else None,
                candidates=[answer_dict(a, grids) for a in rest],
                nearest=None,
                detail=None,
            )
        out.append(row)
    return JSONResponse(
        {
            "as_of": when.isoformat() if when is not None else None,
            "summary": summary,
            "results": out,
        }
    )


__all__ = ["router"]
