"""Response and request models of the API (what the OpenAPI document shows)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from geo.store.lookup import Answer, Contact, GridInfo, LookupResult, PlanInfo

__all__ = [
    "MAX_BATCH",
    "AnswerOut",
    "BatchIn",
    "BatchItem",
    "BatchOut",
    "ContactOut",
    "GenerateIn",
    "GridOut",
    "JobOut",
    "LookupOut",
    "PlanDetailOut",
    "PlanOut",
    "PublishIn",
]

#: Most items in one batch lookup.
MAX_BATCH = 10_000

Crs = Literal["wgs84", "gcj02"]


class ContactOut(BaseModel):
    """A responsible person's work contact."""

    name: str
    role: str = Field(
        description="grid_worker 网格员, grid_leader 网格长, party_member 联户党员"
    )
    work_phone: str | None


class AreaOut(BaseModel):
    code: str
    name: str
    level: str


class GridOut(BaseModel):
    """A grid, its plan and its admin areas from the county down."""

    id: int
    code: str
    name: str | None
    kind: str = Field(description="comprehensive 全科 or dedicated 专属")
    plan_id: int
    plan_version: int
    plan_status: str
    areas: list[AreaOut]


class HouseholdOut(BaseModel):
    """Only the id and the address: never the people or other attributes."""

    id: str
    address: str | None


class AnswerOut(BaseModel):
    score: float = Field(description="1 for an exact or point match, else 0–1")
    located_by: str = Field(
        description="assignment (the plan assigns the household to the grid), "
        "location (not assigned: the grid containing the household) or point"
    )
    household: HouseholdOut | None
    grid: GridOut | None
    grid_worker: ContactOut | None
    party_member: ContactOut | None = Field(
        description="the household's covering party member (联户党员)"
    )


class NearestOut(BaseModel):
    grid: GridOut
    dist_m: float


class LookupOut(BaseModel):
    """``result`` is the answer; ``candidates`` rank alternatives (all of them when ambiguous)."""

    match: Literal["exact", "fuzzy", "ambiguous", "point"]
    query: dict[str, Any]
    as_of: dt.datetime | None
    result: AnswerOut | None
    candidates: list[AnswerOut]


def contact_out(c: Contact | None) -> ContactOut | None:
    return ContactOut(name=c.name, role=c.role, work_phone=c.work_phone) if c else None


def grid_out(g: GridInfo) -> GridOut:
    return GridOut(
        id=g.id,
        code=g.code,
        name=g.name,
        kind=g.kind,
        plan_id=g.plan_id,
        plan_version=g.plan_version,
        plan_status=g.plan_status,
        areas=[AreaOut(code=a.code, name=a.name, level=a.level) for a in g.areas],
    )


def answer_out(a: Answer) -> AnswerOut:
    return AnswerOut(
        score=a.score,
        located_by=a.located_by,
        household=HouseholdOut(id=a.household_id, address=a.address)
        if a.household_id is not None
        else None,
        grid=grid_out(a.grid) if a.grid is not None else None,
        grid_worker=contact_out(a.grid.worker) if a.grid is not None else None,
        party_member=contact_out(a.member),
    )


def answer_dict(a: Answer, grids: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """:func:`answer_out` as plain JSON data, each grid built once (for batches)."""
    g = a.grid
    grid = None
    if g is not None:
        grid = grids.get(g.id)
        if grid is None:
            grid = grids[g.id] = grid_out(g).model_dump()
    return {
        "score": a.score,
        "located_by": a.located_by,
        "household": {"id": a.household_id, "address": a.address}
        if a.household_id is not None
        else None,
        "grid": grid,
        "grid_worker": _contact_dict(g.worker) if g is not None else None,
        "party_member": _contact_dict(a.member),
    }


def _contact_dict(c: Contact | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"name": c.name, "role": c.role, "work_phone": c.work_phone}


def lookup_out(
    r: LookupResult, query: dict[str, Any], as_of: dt.datetime | None
) -> LookupOut:
    best = r.best
    return LookupOut(
        match=r.match,  # type: ignore[arg-type]
        query=query,
        as_of=as_of,
        result=answer_out(best) if best is not None else None,
        candidates=[answer_out(a) for a in r.answers[1:]]
        if best is not None
        else [answer_out(a) for a in r.answers],
    )


# ---------------------------------------------------------------------------
# Batch
# ---------------------------------------------------------------------------


class BatchItem(BaseModel):
    """An address, or a point (lon/lat, WGS 84 unless ``crs`` is gcj02)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, max_length=200, description="echoed back")
    address: str | None = Field(None, max_length=500)
    lon: float | None = Field(None, ge=-180, le=180)
    lat: float | None = Field(None, ge=-90, le=90)
    crs: Crs = "wgs84"

    @model_validator(mode="after")
    def _one_kind(self) -> BatchItem:
        point = self.lon is not None or self.lat is not None
        if self.address is not None and point:
            raise ValueError("give either an address or lon/lat, not both")
        if self.address is None and not point:
            raise ValueError("give an address or lon and lat")
        if point and (self.lon is None or self.lat is None):
            raise ValueError("a point needs both lon and lat")
        if point and not (math.isfinite(self.lon) and math.isfinite(self.lat)):  # type: ignore[arg-type]
            raise ValueError("lon and lat must be finite numbers")
        return self


class BatchIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {"id": "a1", "address": "衢江区樟潭街道金头路6号1幢1单元101室"},
                        {"id": "p1", "lon": 118.9, "lat": 29.0},
                        {"id": "p2", "lon": 118.905, "lat": 28.997, "crs": "gcj02"},
                    ],
                    "as_of": None,
                }
            ]
        },
    )

    items: list[BatchItem] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description=f"1 to {MAX_BATCH} addresses or points",
    )
    as_of: dt.date | dt.datetime | None = None
    limit: int = Field(3, ge=1, le=20, description="most candidates per address")


class BatchResult(BaseModel):
    index: int
    id: str | None
    status: int = Field(description="200 answered, 404 no household / no grid")
    match: str
    result: AnswerOut | None = None
    candidates: list[AnswerOut] = []
    nearest: NearestOut | None = None
    detail: str | None = None


class BatchOut(BaseModel):
    as_of: dt.datetime | None
    summary: dict[str, int]
    results: list[BatchResult]


# ---------------------------------------------------------------------------
# Plans and jobs
# ---------------------------------------------------------------------------


class PlanOut(BaseModel):
    id: int
    area_code: str
    area_name: str
    version: int
    name: str | None
    status: str
    parent_id: int | None
    created_at: dt.datetime
    created_by: str | None
    valid_from: dt.datetime | None
    valid_to: dt.datetime | None
    grids: int
    households: int
    links: list[dict[str, str]] = []


class PlanDetailOut(PlanOut):
    params: dict[str, Any]
    metrics: dict[str, Any] = Field(description="generation metrics incl. exceptions")


def plan_out(p: PlanInfo, *, detail: bool = False) -> PlanOut:
    data = {
        k: v for k, v in p.__dict__.items() if detail or k not in ("params", "metrics")
    }
    data["links"] = [
        {"rel": "self", "href": f"/plans/{p.id}"},
        {
            "rel": "items",
            "type": "application/geo+json",
            "href": f"/collections/grids/items?plan={p.id}",
        },
    ]
    return PlanDetailOut(**data) if detail else PlanOut(**data)


class GenerateIn(BaseModel):
    """Draw a new draft plan for an area (geo.gridding.generate.generate_grids)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "area_code": "330803000000",
                    "min_households": 200,
                    "max_households": 300,
                }
            ]
        },
    )

    area_code: str = Field(min_length=1, max_length=32)
    name: str | None = Field(None, max_length=200)
    min_households: float = Field(200, gt=0, le=100_000)
    max_households: float = Field(300, gt=0, le=100_000)
    target: float | None = Field(None, gt=0, le=100_000)
    respect_level: Literal["village", "township"] = "village"
    seed: int = Field(0, ge=0, le=2**31 - 1)

    @model_validator(mode="after")
    def _band(self) -> GenerateIn:
        if self.min_households > self.max_households:
            raise ValueError("min_households must not exceed max_households")
        if self.target is not None and not (
            self.min_households <= self.target <= self.max_households
        ):
            raise ValueError("target must lie within min_households..max_households")
        return self


class JobOut(BaseModel):
    id: str
    kind: str
    status: Literal["queued", "running", "succeeded", "failed"]
    stage: str
    progress: float = Field(ge=0, le=1)
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    params: dict[str, Any]
    plan_id: int | None
    error: dict[str, Any] | None
    links: list[dict[str, str]]


class RebalanceIn(BaseModel):
    """Rebalance a plan against today's households (geo.gridding.rebalance.rebalance)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"min_households": 200, "max_households": 300, "locked": []}]
        },
    )
    min_households: float = Field(200, gt=0, le=100_000)
    max_households: float = Field(300, gt=0, le=100_000)
    locked: list[str] = Field(default_factory=list, max_length=10_000)


class PublishIn(BaseModel):
    """Options of a publish (the body is optional; the query may say the same)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"allow_unstaffed": False}]}
    )
    allow_unstaffed: bool = Field(
        False,
        description="publish even when some grids have no grid worker "
        "(refused with 422 otherwise)",
    )


class PlanDiffOut(BaseModel):
    """What changed from one plan to another."""

    old_plan: int
    new_plan: int
    summary: dict[str, Any]
    households: list[dict[str, str]]
