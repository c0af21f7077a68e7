"""OGC API - Features style collections: grids, areas, households (GeoJSON)."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.audit import note_read
from api.deps import KeyDep, SessionDep, need_role
from api.plan_access import check_plan_visible, sees_drafts
from api.problems import ProblemError, problem_responses
from geo.store.features import FEATURE_COLLECTIONS, feature, features

router = APIRouter(tags=["features"])

GEOJSON = "application/geo+json"
MAX_LIMIT = 10_000
_CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
]
_GEOJSON_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "GeoJSON (RFC 7946: lon/lat, exterior rings counter-clockwise)",
        "content": {GEOJSON: {"schema": {"type": "object"}}},
    }
}


def _json(body: Any, media_type: str = "application/json") -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, default=str), media_type=media_type
    )


def _collection(cid: str, base: str) -> dict[str, Any]:
    meta = FEATURE_COLLECTIONS[cid]
    return {
        "id": cid,
        "title": meta["title"],
        "description": meta["description"],
        "itemType": "feature",
        "crs": ["http://www.opengis.net/def/crs/OGC/1.3/CRS84"],
        "links": [
            {
                "rel": "self",
                "type": "application/json",
                "href": f"{base}/collections/{cid}",
            },
            {
                "rel": "items",
                "type": GEOJSON,
                "href": f"{base}/collections/{cid}/items",
            },
        ],
    }


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _check_collection(cid: str) -> None:
    if cid not in FEATURE_COLLECTIONS:
        raise ProblemError(
            404,
            f"There is no collection {cid!r}; the collections are "
            + ", ".join(sorted(FEATURE_COLLECTIONS))
            + ".",
            type="/problems/unknown-collection",
        )


def parse_bbox(bbox: str) -> tuple[float, float, float, float]:
    """``minlon,minlat,maxlon,maxlat`` (a 6-number 3D bbox drops its heights)."""
    parts = [p.strip() for p in bbox.split(",")]
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        nums = []
    if len(nums) == 6:
        nums = [nums[0], nums[1], nums[3], nums[4]]
    if len(nums) != 4 or not all(math.isfinite(v) for v in nums):
        raise ProblemError(
            400,
            f"bbox must be 'minlon,minlat,maxlon,maxlat' with 4 numbers, got {bbox!r}.",
            type="/problems/bad-bbox",
        )
    x0, y0, x1, y1 = nums
    if not (
        -180 <= x0 <= 180 and -180 <= x1 <= 180 and -90 <= y0 <= 90 and -90 <= y1 <= 90
    ):
        raise ProblemError(
            400,
            f"bbox {bbox!r} is not in lon/lat: longitudes must be within -180..180 and "
            "latitudes within -90..90 (longitude first).",
            type="/problems/bad-bbox",
        )
    if y0 > y1:
        raise ProblemError(
            400,
            f"bbox {bbox!r}: the minimum latitude is above the maximum.",
            type="/problems/bad-bbox",
        )
    if x0 > x1:
        raise ProblemError(
            400,
            f"bbox {bbox!r}: boxes crossing the antimeridian (minlon > maxlon) are "
            "not supported; send two requests.",
            type="/problems/bad-bbox",
        )
    return x0, y0, x1, y1


@router.get("/", summary="Landing page", tags=["meta"])
def landing(request: Request) -> Response:
    base = _base(request)
    return _json(
        {
            "title": "GridMap API",
            "description": "Community grid governance (网格化管理): lookups, grids, "
            "households, plans.",
            "links": [
                {"rel": "self", "type": "application/json", "href": f"{base}/"},
                {
                    "rel": "service-desc",
                    "type": "application/vnd.oai.openapi+json;version=3.0",
                    "href": f"{base}/openapi.json",
                },
                {"rel": "service-doc", "type": "text/html", "href": f"{base}/docs"},
                {
                    "rel": "conformance",
                    "type": "application/json",
                    "href": f"{base}/conformance",
                },
                {
                    "rel": "data",
                    "type": "application/json",
                    "href": f"{base}/collections",
                },
            ],
        }
    )


@router.get("/conformance", summary="OGC API conformance classes", tags=["meta"])
def conformance() -> dict[str, list[str]]:
    return {"conformsTo": _CONFORMANCE}


@router.get("/collections", summary="The feature collections")
def collections(request: Request) -> Response:
    base = _base(request)
    return _json(
        {
            "collections": [_collection(c, base) for c in FEATURE_COLLECTIONS],
            "links": [
                {
                    "rel": "self",
                    "type": "application/json",
                    "href": f"{base}/collections",
                }
            ],
        }
    )


@router.get(
    "/collections/{cid}",
    summary="One collection",
    responses=problem_responses(404),
)
def collection(request: Request, cid: str) -> Response:
    _check_collection(cid)
    return _json(_collection(cid, _base(request)))


@router.get(
    "/collections/{cid}/items",
    summary="Features of a collection, paged (GeoJSON)",
    description=(
        "`grids` are the published grids unless `plan` picks one plan (a draft "
        "needs a planner key: 404 otherwise); `area` keeps "
        "what lies in that admin area or below it. `households` need a viewer key. "
        "Pages follow `next`/`prev` links; `numberMatched` counts all matches."
    ),
    response_class=Response,
    responses={**_GEOJSON_RESPONSE, **problem_responses(400, 401, 404, 422)},
)
def items(
    request: Request,
    session: SessionDep,
    key: KeyDep,
    cid: str,
    bbox: Annotated[
        str | None,
        Query(
            description="minlon,minlat,maxlon,maxlat (WGS 84)",
            openapi_examples={"quzhou": {"value": "118.85,28.95,118.95,29.05"}},
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    plan: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="grids: plan id")
    ] = None,
    area: Annotated[
        str | None, Query(max_length=32, description="admin area code (and below)")
    ] = None,
) -> Response:
    _check_collection(cid)
    if cid == "households":
        need_role(key, "viewer", "Reading households")
    if plan is not None and cid != "grids":
        raise ProblemError(
            400, "plan= filters grids only.", type="/problems/invalid-request"
        )
    check_plan_visible(session, key, plan)  # a draft's grids: planner keys only
    box = parse_bbox(bbox) if bbox is not None else None
    page = features(
        session, cid, bbox=box, limit=limit, offset=offset, plan_id=plan, area_code=area
    )
    n = len(page.features)
    if cid == "households":
        note_read(request, households=[str(f["id"]) for f in page.features])
    url = request.url
    links = [
        {"rel": "self", "type": GEOJSON, "href": str(url)},
        {
            "rel": "collection",
            "type": "application/json",
            "href": f"{_base(request)}/collections/{cid}",
        },
    ]
    if offset + n < page.number_matched:
        links.append(
            {
                "rel": "next",
                "type": GEOJSON,
                "href": str(url.include_query_params(offset=offset + n, limit=limit)),
            }
        )
    if offset > 0:
        links.append(
            {
                "rel": "prev",
                "type": GEOJSON,
                "href": str(
                    url.include_query_params(offset=max(0, offset - limit), limit=limit)
                ),
            }
        )
    return _json(
        {
            "type": "FeatureCollection",
            "features": page.features,
            "numberMatched": page.number_matched,
            "numberReturned": n,
            "timeStamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "links": links,
        },
        GEOJSON,
    )


@router.get(
    "/collections/{cid}/items/{fid}",
    summary="One feature (grid id, area code or household id)",
    response_class=Response,
    responses={**_GEOJSON_RESPONSE, **problem_responses(401, 404)},
)
def item(
    request: Request, session: SessionDep, key: KeyDep, cid: str, fid: str
) -> Response:
    _check_collection(cid)
    if cid == "households":
        need_role(key, "viewer", "Reading households")
    if len(fid) > 200:
        raise ProblemError(404, "No such feature (the id is too long).")
    f = feature(session, cid, fid)
    if (
        f is not None
        and cid == "grids"
        and f["properties"].get("plan_status") == "draft"
        and not sees_drafts(key)
    ):
        f = None  # a draft's grid: as if there were none (planner keys see it)
    if f is None:
        raise ProblemError(
            404,
            f"There is no feature {fid!r} in {cid}"
            + (
                " (grid ids are numbers)"
                if cid == "grids" and not fid.isdigit()
                else ""
            )
            + ".",
            type="/problems/unknown-feature",
        )
    if cid == "households":
        note_read(request, households=[fid])
    base = _base(request)
    f["links"] = [
        {
            "rel": "self",
            "type": GEOJSON,
            "href": f"{base}/collections/{cid}/items/{fid}",
        },
        {
            "rel": "collection",
            "type": "application/json",
            "href": f"{base}/collections/{cid}",
        },
    ]
    return _json(f, GEOJSON)
