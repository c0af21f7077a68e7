"""Redrawing a draft over HTTP: start a draft, edit, undo/redo, validate, history (planner keys)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import shapely
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.audit import note_read
from api.deps import PlannerDep, SessionDep
from api.problems import problem_responses
from api.routes.features import parse_bbox
from geo import editing
from geo.store.edit_views import MAX_BUILDINGS, plan_buildings, plan_grids, plan_staff
from geo.validation import validate as validate_plan

router = APIRouter(tags=["edits"])

PlanId = Annotated[int, Field(gt=0, lt=2**31)]
Code = Annotated[str, Field(min_length=1, max_length=40)]
Id = Annotated[str, Field(min_length=1, max_length=200)]


class DraftOut(BaseModel):
    """A new draft and the version its first edit must name."""

    id: int
    version: int
    parent_id: int


class VersionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expected_version: int = Field(ge=0, description="the draft's version you saw")


class EditIn(BaseModel):
    """One edit of a draft: ``op`` and the fields it needs."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "expected_version": 0,
                    "op": "move",
                    "buildings": ["B330803100201-0007"],
                    "to_grid": "33080310020102",
                }
            ]
        },
    )
    expected_version: int = Field(ge=0, description="the draft's version you saw")
    op: Literal[
        "move", "split", "merge", "lock", "unlock", "rebalance", "assign_worker"
    ]
    households: list[Id] = Field(default=[], max_length=5000)
    buildings: list[Id] = Field(default=[], max_length=2000)
    to_grid: Code | None = None
    grid: Code | None = None
    parts: int = Field(default=2, ge=2, le=20)
    line: list[tuple[float, float]] | None = Field(
        default=None, min_length=2, max_length=500, description="lon/lat points"
    )
    grids: list[Code] = Field(default=[], max_length=50)
    person_id: Id | None = None
    allow_out_of_band: bool = False

    @model_validator(mode="after")
    def _needs(self) -> EditIn:
        need = {
            "move": ("to_grid",),
            "split": ("grid",),
            "merge": ("grids",),
            "lock": ("grids",),
            "unlock": ("grids",),
            "assign_worker": ("grid", "person_id"),
            "rebalance": (),
        }[self.op]
        missing = [f for f in need if not getattr(self, f)]
        if self.op == "move" and not (self.households or self.buildings):
            missing.append("households or buildings")
        if missing:
            raise ValueError(f"{self.op} needs {', '.join(missing)}")
        if self.line is not None:
            for lon, lat in self.line:
                if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                    raise ValueError(f"line point ({lon}, {lat}) is not lon/lat")
        return self

    def edit(self) -> editing.Edit:
        return editing.Edit(
            op=self.op,
            households=tuple(self.households),
            buildings=tuple(self.buildings),
            to_grid=self.to_grid,
            grid=self.grid,
            parts=self.parts,
            line=tuple(self.line) if self.line else None,
            grids=tuple(self.grids),
            person_id=self.person_id,
            allow_out_of_band=self.allow_out_of_band,
        )


class GridChangeOut(BaseModel):
    code: str
    status: Literal["changed", "created", "retired"]
    households: int
    in_band: bool
    cause: str | None = Field(description="why it is out of band (None in band)")
    worker_id: str | None
    locked: bool
    geometry: dict[str, Any] | None = Field(description="GeoJSON, EPSG:4326")


class EditOut(BaseModel):
    plan_id: int
    version: int = Field(description="name it as expected_version in the next edit")
    edit_id: int
    summary: str
    grids: list[GridChangeOut]
    problems: list[str]
    staff: dict[str, Any]


class ValidationOut(BaseModel):
    plan_id: int
    version: int
    valid: bool
    problems: list[str]
    warnings: list[str]
    exceptions: dict[str, str] = Field(description="out-of-band grids and their causes")
    grids: int
    households: int


class HistoryOut(BaseModel):
    seq: int
    kind: str
    op: dict[str, Any]
    state: str
    actor: str | None
    at: Any
    version: int
    summary: dict[str, Any]


def _out(r: editing.EditResult) -> EditOut:
    return EditOut(
        plan_id=r.plan_id,
        version=r.version,
        edit_id=r.edit_id,
        summary=r.summary,
        grids=[
            GridChangeOut(
                code=g.code,
                status=g.status,
                households=g.households,
                in_band=g.in_band,
                cause=g.cause,
                worker_id=g.worker_id,
                locked=g.locked,
                geometry=None
                if g.geometry is None
                else shapely.geometry.mapping(g.geometry),
            )
            for g in r.grids
        ],
        problems=r.problems,
        staff=r.staff,
    )


def _actor(key: Any) -> str:
    return f"api key {key.prefix}" + (f" ({key.name})" if key.name else "")


@router.post(
    "/plans/{plan_id}/draft",
    status_code=201,
    response_model=DraftOut,
    summary="Start a draft copied from a plan (grids, households, workers, members)",
    description=(
        "With `area`, only the plan's grids inside that area are copied, into a "
        "draft of the area: publishing it replaces that part of the plan. A key "
        "limited to an area may draft its own part of a plan covering it (a "
        "township's grids of the county's plan) this way. 422 when a grid of the "
        "plan crosses the area's boundary or the plan has no grid there."
    ),
    responses=problem_responses(401, 403, 404, 422),
)
def start_draft(
    session: SessionDep,
    key: PlannerDep,
    plan_id: PlanId,
    area: Annotated[
        str | None,
        Query(
            max_length=64,
            description="copy only the grids inside this admin area (its code)",
        ),
    ] = None,
) -> DraftOut:
    new_id, version = editing.start_draft(
        session, plan_id, actor=_actor(key), area=area
    )
    return DraftOut(id=new_id, version=version, parent_id=plan_id)


@router.post(
    "/plans/{plan_id}/edits",
    response_model=EditOut,
    summary="Apply one edit to a draft (all or nothing; 409 on a stale version)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def edit(
    session: SessionDep, key: PlannerDep, plan_id: PlanId, body: EditIn
) -> EditOut:
    return _out(
        editing.apply_edit(
            session,
            plan_id,
            body.edit(),
            expected_version=body.expected_version,
            actor=_actor(key),
        )
    )


@router.post(
    "/plans/{plan_id}/undo",
    response_model=EditOut,
    summary="Undo the draft's last edit",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def undo(
    session: SessionDep, key: PlannerDep, plan_id: PlanId, body: VersionIn
) -> EditOut:
    return _out(
        editing.undo(
            session, plan_id, expected_version=body.expected_version, actor=_actor(key)
        )
    )


@router.post(
    "/plans/{plan_id}/redo",
    response_model=EditOut,
    summary="Redo the edit undone last",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def redo(
    session: SessionDep, key: PlannerDep, plan_id: PlanId, body: VersionIn
) -> EditOut:
    return _out(
        editing.redo(
            session, plan_id, expected_version=body.expected_version, actor=_actor(key)
        )
    )


@router.get(
    "/plans/{plan_id}/validate",
    response_model=ValidationOut,
    summary="Every rule the plan breaks: band, contiguity, tiling, households, staffing",
    responses=problem_responses(401, 403, 404, 422),
)
def validate(session: SessionDep, key: PlannerDep, plan_id: PlanId) -> ValidationOut:
    v = validate_plan(session, plan_id)
    return ValidationOut(
        plan_id=v.plan_id,
        version=v.version,
        valid=v.valid,
        problems=v.problems,
        warnings=v.warnings,
        exceptions=v.exceptions,
        grids=v.grids,
        households=v.households,
    )


@router.get(
    "/plans/{plan_id}/history",
    response_model=list[HistoryOut],
    summary="The draft's history: every edit, undo, redo and publish (who, when, counts)",
    responses=problem_responses(401, 403, 404, 422),
)
def history(
    session: SessionDep,
    key: PlannerDep,
    plan_id: PlanId,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[HistoryOut]:
    rows = editing.history(session, plan_id)[-limit:]
    return [HistoryOut(**{k: r[k] for k in HistoryOut.model_fields}) for r in rows]


@router.get(
    "/plans/{plan_id}/grids/{code}/neighbours",
    response_model=list[str],
    summary="Codes of the grids sharing a boundary with a grid",
    responses=problem_responses(401, 403, 404, 422),
)
def neighbours(
    session: SessionDep, key: PlannerDep, plan_id: PlanId, code: Code
) -> list[str]:
    return editing.neighbours(session, plan_id, code)


_GEOJSON = "application/geo+json"


def _geojson(body: dict[str, Any]) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        media_type=_GEOJSON,
        headers={"Cache-Control": "private, no-store"},
    )


@router.get(
    "/plans/{plan_id}/buildings",
    response_class=Response,
    summary="Buildings of a plan in a box, for selecting them in the viewer's edit mode",
    description=(
        "GeoJSON points: one per building (the households sharing a building id, "
        "whole even where they leave the box) and one per household without a "
        "building, with `kind` (`building` or `household`), `id` (what a `move` "
        "names in `buildings` or `households`), `grid_code`, `grids`, "
        "`households`, `locked` and `address`; `version` is the plan's. At most "
        f"{MAX_BUILDINGS:,} features (`truncated` says when more lie in the box)."
    ),
    responses={
        200: {"content": {_GEOJSON: {}}, "description": "GeoJSON FeatureCollection"},
        **problem_responses(400, 401, 403, 404, 422),
    },
)
def buildings(
    request: Request,
    session: SessionDep,
    key: PlannerDep,
    plan_id: PlanId,
    bbox: Annotated[
        str,
        Query(
            description="minlon,minlat,maxlon,maxlat (WGS 84)",
            openapi_examples={"quzhou": {"value": "118.90,29.00,118.92,29.02"}},
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=MAX_BUILDINGS)] = MAX_BUILDINGS,
) -> Response:
    body = plan_buildings(session, plan_id, parse_bbox(bbox), limit=limit)
    # addresses of the households in the box: counted in the audit, as the
    # viewer's household layer is (the planner's area, a view at a time)
    note_read(
        request, n=sum(int(f["properties"]["households"]) for f in body["features"])
    )
    return _geojson(body)


@router.get(
    "/plans/{plan_id}/grids",
    response_class=Response,
    summary="Every grid of a plan (draft or not) with its count, band state, cause and lock",
    description=(
        "GeoJSON polygons with `code`, `area_code`, `households` (counted from the "
        "plan's assignments), `in_band`, `cause`, `locked`, `worker_id`, "
        "`worker_name` and `label` (a point inside); the collection has the plan's "
        "`status`, `version` (the next edit's `expected_version`), `parent_id`, "
        "`area_code` and `band`."
    ),
    responses={
        200: {"content": {_GEOJSON: {}}, "description": "GeoJSON FeatureCollection"},
        **problem_responses(401, 403, 404, 422),
    },
)
def grids(session: SessionDep, key: PlannerDep, plan_id: PlanId) -> Response:
    return _geojson(plan_grids(session, plan_id))


@router.get(
    "/plans/{plan_id}/staff",
    summary="The grid workers and leaders of a plan's area, with the grids they work",
    description=(
        "For `assign_worker`: each person's `id` (what the edit names in "
        "`person_id`), `name`, `role`, `area_code`, `area_name` and `grids` (the "
        "plan's grids whose worker they are; empty: free). Inside the key's "
        "area only."
    ),
    responses=problem_responses(401, 403, 404, 422),
)
def staff(
    request: Request, session: SessionDep, key: PlannerDep, plan_id: PlanId
) -> JSONResponse:
    people = plan_staff(session, plan_id)
    note_read(request, n=len(people))
    return JSONResponse(
        {"plan_id": plan_id, "people": people},
        headers={"Cache-Control": "private, no-store"},
    )
