"""Vector tiles of the grids, built in PostGIS (ST_AsMVT)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from api.deps import KeyDep, SessionDep
from api.plan_access import check_plan_visible
from api.problems import ProblemError, problem_responses
from geo.store.features import grid_tile

router = APIRouter(tags=["tiles"])

MVT = "application/vnd.mapbox-vector-tile"


@router.get(
    "/tiles/{z}/{x}/{y}.pbf",
    summary="Mapbox vector tile of the grids (layer 'grids', Web Mercator XYZ)",
    description="The published grids, or one plan's with `plan=ID` (a draft needs a "
    "planner key: 404 otherwise). Empty tiles are 200 with an empty body.",
    response_class=Response,
    responses={
        200: {"content": {MVT: {"schema": {"type": "string", "format": "binary"}}}},
        **problem_responses(401, 404, 422),
    },
)
def tile(
    session: SessionDep,
    key: KeyDep,
    z: Annotated[int, Path(ge=0, le=24, openapi_examples={"z": {"value": 12}})],
    x: Annotated[int, Path(ge=0, openapi_examples={"x": {"value": 3400}})],
    y: Annotated[int, Path(ge=0, openapi_examples={"y": {"value": 1714}})],
    plan: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    n = 1 << z
    if x >= n or y >= n:
        raise ProblemError(
            404,
            f"Tile {z}/{x}/{y} does not exist: at zoom {z}, x and y go from 0 to {n - 1}.",
            type="/problems/no-tile",
        )
    check_plan_visible(session, key, plan)  # a draft's grids: planner keys only
    data = grid_tile(session, z, x, y, plan_id=plan)
    # a draft's tiles are a planner's: never kept by a shared cache
    cache = "public, max-age=60" if plan is None or key is None else "private, no-store"
    return Response(data, media_type=MVT, headers={"Cache-Control": cache})
