"""``/events``: report a matter, follow it through its transitions, count the outcomes.

Reading and changing events needs a key that handles them (``worker`` or
``planner``); those answers carry residents' names and phones and households.
``/events/stats`` and ``/events/categories`` are public: aggregates and the
catalogue only, nothing about a household or a resident. No SQL here: every
query is in :mod:`geo.store.events`.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.audit import note_read
from api.deps import FastHandlerDep, HandlerDep, SessionDep, scoped_session
from api.problems import ProblemError, problem_responses
from geo.crs import gcj02_to_wgs84
from geo.errors import NotFound
from geo.events import ACTIONS, STATUSES, TIERS
from geo.store import event_hotpath as hotpath
from geo.store import events as store
from geo.store.keys import ApiKeyInfo, person_of

router = APIRouter(tags=["events"])

GEOJSON = "application/geo+json"
_MAX_ID = 2**63 - 1

Status = Literal[
    "reported", "sorted", "in_hand", "settled", "evaluated", "closed", "returned"
]
Tier = Literal["grid", "village", "township"]
Action = Literal["sort", "accept", "settle", "evaluate", "close", "return"]
assert set(Status.__args__) == set(STATUSES)  # type: ignore[attr-defined]
assert set(Tier.__args__) == set(TIERS)  # type: ignore[attr-defined]
assert set(Action.__args__) == set(ACTIONS)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------
# Request and response models
# ---------------------------------------------------------------------------


class ResidentIn(BaseModel):
    """A resident whose report a grid worker takes (private: handlers only)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=100)
    phone: str | None = Field(None, min_length=1, max_length=40)


class EventIn(BaseModel):
    """A new matter: a category, and an address and/or a point."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "category": "010101",
                    "description": "楼上夜间噪音扰民",
                    "address": "高家镇湖仁村3组12号",
                    "reporter": "P-0001",
                    "resident": {"name": "刘阿姨", "phone": "13800000000"},
                }
            ]
        },
    )

    category: str = Field(min_length=1, max_length=16, description="catalogue code")
    description: str | None = Field(None, max_length=4000)
    address: str | None = Field(None, min_length=1, max_length=500)
    lon: float | None = Field(None, ge=-180, le=180)
    lat: float | None = Field(None, ge=-90, le=90)
    crs: Literal["wgs84", "gcj02"] = "wgs84"
    reporter: str | None = Field(
        None, min_length=1, max_length=100, description="a person's id (person_id)"
    )
    resident: ResidentIn | None = None

    @model_validator(mode="after")
    def _where(self) -> EventIn:
        if (self.lon is None) != (self.lat is None):
            raise ValueError("a point needs both lon and lat")
        if self.lon is not None and not (
            math.isfinite(self.lon) and math.isfinite(self.lat or 0.0)
        ):
            raise ValueError("lon and lat must be finite numbers")
        if (self.address is None or not self.address.strip()) and self.lon is None:
            raise ValueError("give an address or a point (lon, lat)")
        return self


class TransitionIn(BaseModel):
    """A transition; ``expected_version`` is the version the caller last saw."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"expected_version": 1, "tier": "village"}]},
    )

    expected_version: int = Field(ge=1, le=2**31 - 1)
    tier: Tier | None = Field(
        None, description="sort only: the tier (default: the category's)"
    )
    note: str | None = Field(None, max_length=2000, description="required to return")
    satisfaction: int | None = Field(None, ge=1, le=5, description="evaluate only")
    comment: str | None = Field(None, max_length=2000, description="evaluate only")
    by: str | None = Field(
        None, min_length=1, max_length=100, description="the person acting (person_id)"
    )


class PersonOut(BaseModel):
    id: str
    name: str
    role: str
    work_phone: str | None


class RoutingOut(BaseModel):
    """Where the event went and why."""

    tier: str
    handler_role: str
    rule_id: int
    rule_area: str | None = Field(
        description="the area whose rule applied; null: default"
    )
    deadline_hours: int
    assignee: PersonOut | None
    reason: str


class LogOut(BaseModel):
    at: dt.datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str
    note: str | None
    details: dict[str, Any]


class EventOut(BaseModel):
    id: int
    external_id: str | None
    version: int
    status: str
    tier: str
    category: dict[str, str]
    description: str | None
    reported_at: dt.datetime
    reported_by: str | None
    reporter_kind: str
    reporter: PersonOut | None
    resident: dict[str, str | None] | None
    address: str | None
    lon: float | None
    lat: float | None
    located_by: str
    household: dict[str, str | None] | None
    grid: str | None
    plan_id: int | None
    plan_version: int | None
    village: dict[str, str | None] | None
    township: dict[str, str | None] | None
    assignee: PersonOut | None
    deadline: dt.datetime
    overdue: bool
    escalated: bool
    escalation_level: int
    settled_at: dt.datetime | None
    closed_at: dt.datetime | None
    satisfaction: int | None
    satisfaction_comment: str | None
    updated_at: dt.datetime
    routing: RoutingOut | None = None
    log: list[LogOut] | None = None
    links: list[dict[str, str]]


class EventPageOut(BaseModel):
    items: list[EventOut]
    total: int
    limit: int
    offset: int
    links: list[dict[str, str]]


class StatsRowOut(BaseModel):
    code: str | None
    name: str | None
    total: int
    by_status: dict[str, int]
    by_tier: dict[str, int]
    open: int
    overdue: int
    settled: int
    median_hours_to_settle: float | None
    settled_in_grid_share: float | None = Field(description="小事不出格")
    settled_in_village_share: float | None = Field(description="大事不出村")
    mean_satisfaction: float | None
    rated: int


class StatsOut(BaseModel):
    group_by: str
    area: str | None
    since: dt.datetime | None
    until: dt.datetime | None
    total: StatsRowOut
    groups: list[StatsRowOut]


class CategoryOut(BaseModel):
    code: str
    name: str
    subclass_code: str
    subclass_name: str
    class_code: str
    class_name: str
    default_tier: str
    deadline_hours: int | None


# ---------------------------------------------------------------------------
# Shaping answers
# ---------------------------------------------------------------------------


def _person(p: store.Person | None) -> PersonOut | None:
    return PersonOut(**p.__dict__) if p is not None else None


def event_out(e: store.EventRecord, *, private: bool) -> EventOut:
    """An event as the API shows it; without ``private`` no resident or household data."""
    r = e.routing
    return EventOut(
        id=e.id,
        external_id=e.external_id,
        version=e.version,
        status=e.status,
        tier=e.tier,
        category={
            "code": e.category_code,
            "name": e.category_name,
            "class": e.class_name,
        },
        description=e.description if private else None,
        reported_at=e.reported_at,
        reported_by=e.reported_by,
        reporter_kind=e.reporter_kind,
        reporter=_person(e.reporter),
        resident=(
            {"name": e.resident_name, "phone": e.resident_phone}
            if private and e.reporter_kind == "resident"
            else None
        ),
        address=e.address if private else None,
        lon=e.lon if private else None,
        lat=e.lat if private else None,
        located_by=e.located_by,
        household=(
            {"id": e.household_id, "address": e.household_address}
            if private and e.household_id is not None
            else None
        ),
        grid=e.grid_code,
        plan_id=e.plan_id,
        plan_version=e.plan_version,
        village={"code": e.village_code, "name": e.village_name}
        if e.village_code
        else None,
        township=(
            {"code": e.township_code, "name": e.township_name}
            if e.township_code
            else None
        ),
        assignee=_person(e.assignee),
        deadline=e.deadline,
        overdue=e.overdue,
        escalated=e.escalated,
        escalation_level=e.escalation_level,
        settled_at=e.settled_at,
        closed_at=e.closed_at,
        satisfaction=e.satisfaction,
        satisfaction_comment=e.satisfaction_comment if private else None,
        updated_at=e.updated_at,
        routing=(
            RoutingOut(
                tier=r.tier,
                handler_role=r.handler_role,
                rule_id=r.rule_id,
                rule_area=r.rule_area_code,
                deadline_hours=r.deadline_hours,
                assignee=_person(r.assignee),
                reason=r.reason,
            )
            if r is not None
            else None
        ),
        log=[LogOut(**x.__dict__) for x in e.log] if e.log else None,
        links=[{"rel": "self", "href": f"/events/{e.id}"}],
    )


def _actor(key: ApiKeyInfo, by: str | None = None) -> str:
    who = f"{key.role} key {key.prefix}" + (f" ({key.name})" if key.name else "")
    return who + (f" for {by}" if by else "")


def _acting_person(session: Session, key: ApiKeyInfo, by: str | None) -> str | None:
    """The person a key belongs to (external id; None: none), refusing a ``by``
    or ``reporter`` naming someone else (403): a person's key acts as that
    person only."""
    person = person_of(session, key)
    if person is not None and by is not None and by != person:
        raise ProblemError(
            403,
            f"Key {key.prefix} belongs to person {person or '(gone)'}: it cannot act "
            f"for {by!r}.",
            type="/problems/forbidden",
        )
    return person


def _check_id(event_id: int) -> None:
    if not 0 < event_id <= _MAX_ID:
        raise NotFound(f"There is no event {event_id}.", what="event")


def _stats_row(r: store.StatsRow) -> StatsRowOut:
    return StatsRowOut(**r.__dict__)


# ---------------------------------------------------------------------------
# Public: catalogue and statistics
# ---------------------------------------------------------------------------


@router.get(
    "/events/categories",
    response_model=list[CategoryOut],
    summary="The catalogue of event categories (class → sub-class → item, usual tier)",
)
def categories(session: SessionDep) -> list[CategoryOut]:
    return [CategoryOut(**c.__dict__) for c in store.list_categories(session)]


@router.get(
    "/events/stats",
    response_model=StatsOut,
    summary="Counts and outcomes per grid, village or township (public: aggregates only)",
    description=(
        "Per group: events by status and tier, open and overdue, settled and the "
        "median hours to settle, the share settled inside the grid (小事不出格: "
        "tier grid, never escalated) and inside the village (大事不出村), mean "
        "satisfaction. `total` covers every group. Filter by `area` (that area and "
        "below) and by when events were reported (`since` ≤ reported_at < `until`). "
        "Nothing about a household or a resident."
    ),
    responses=problem_responses(404, 422),
)
def stats(
    session: SessionDep,
    group_by: Annotated[
        Literal["grid", "village", "township", "all"], Query()
    ] = "grid",
    area: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
    since: Annotated[dt.datetime | dt.date | None, Query()] = None,
    until: Annotated[dt.datetime | dt.date | None, Query()] = None,
) -> StatsOut:
    s, u = _when(since), _when(until)
    result = store.event_statistics(
        session, group_by=group_by, area_code=area, since=s, until=u
    )
    return StatsOut(
        group_by=group_by,
        area=area,
        since=s,
        until=u,
        total=_stats_row(result.total),
        groups=[_stats_row(r) for r in result.rows],
    )


def _when(v: dt.datetime | dt.date | None) -> dt.datetime | None:
    if v is None:
        return None
    if not isinstance(v, dt.datetime):
        return dt.datetime(v.year, v.month, v.day, tzinfo=dt.UTC)
    if v.tzinfo is None:
        v = v.replace(tzinfo=dt.UTC)
    if not (
        dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
        <= v
        <= dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
    ):
        raise ProblemError(
            422, f"{v} is out of range", type="/problems/invalid-request"
        )
    return v


# ---------------------------------------------------------------------------
# Handlers: report, list, read, transitions
# ---------------------------------------------------------------------------


@router.post(
    "/events",
    status_code=201,
    response_model=EventOut,
    summary="Report a matter; the answer says where it went and why",
    description=(
        "The place is resolved like `/lookup` (the address first, else the point); "
        "the household, grid and plan of this moment are stored with the event. "
        "It goes to the grid's worker (tier grid, 民事) with the tier's deadline; "
        "`routing` names the rule used. With `resident` the report is a resident's, "
        "taken by `reporter`. Needs a worker or planner key."
    ),
    responses=problem_responses(401, 403, 422),
)
async def report(request: Request, key: FastHandlerDep, body: EventIn) -> Response:
    lon, lat = body.lon, body.lat
    if lon is not None and lat is not None and body.crs == "gcj02":
        w_lon, w_lat = gcj02_to_wgs84(lon, lat)
        lon, lat = float(w_lon), float(w_lat)
    args: dict[str, Any] = {
        "category": body.category,
        "actor": _actor(key),
        "description": body.description,
        "address": body.address,
        "lon": lon,
        "lat": lat,
        "reporter": body.reporter,
        "resident_name": body.resident.name if body.resident else None,
        "resident_phone": body.resident.phone if body.resident else None,
        "reported_at": dt.datetime.now(dt.UTC),
    }
    # hot path: one statement on the pooled autocommit connections, with the
    # reports waiting at the moment (an exact address or a point in a grid;
    # api.report_batches); anything else (fuzzy or ambiguous
    # addresses, points outside every grid, unknown codes: the errors) is
    # decided by store.report_event in a transaction of its own
    # (keys limited to an area report in their scoped session: row-level
    # security refuses a matter outside the key's area)
    bound = key.scoped or key.person_id is not None
    params = hotpath.report_params(**args) if not bound else None
    row = await request.app.state.reports.report(params) if params is not None else None
    if row is not None:
        e = hotpath.report_record(row)
    else:
        e = await run_in_threadpool(
            _report_in_session, request.app.state.engine, args, key
        )
    note_read(request, matters=[e.id], households=[e.household_id])
    # serialised here, once (returning the model would validate it again)
    return Response(
        event_out(e, private=True).model_dump_json(),
        status_code=201,
        media_type="application/json",
        headers={"Location": f"/events/{e.id}"},
    )


def _report_in_session(
    engine: Engine, args: dict[str, Any], key: ApiKeyInfo
) -> store.EventRecord:
    with scoped_session(engine, key) as session:
        _acting_person(session, key, args.get("reporter"))
        return store.report_event(session, **args)


@router.get(
    "/events",
    response_model=EventPageOut,
    summary="Events, newest first, filtered and paged (JSON or GeoJSON)",
    description=(
        "Filters: `area` (that area and below), `grid` (grid code), `status`, "
        "`tier`, `overdue`, `assignee` (person id), reported in [`since`, `until`). "
        "`?format=geojson` or `Accept: application/geo+json` answers a "
        "FeatureCollection. Needs a worker or planner key."
    ),
    responses=problem_responses(401, 403, 404, 422),
)
def events(
    request: Request,
    session: SessionDep,
    key: HandlerDep,
    area: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
    grid: Annotated[str | None, Query(min_length=1, max_length=40)] = None,
    status: Annotated[Status | None, Query()] = None,
    tier: Annotated[Tier | None, Query()] = None,
    overdue: Annotated[bool | None, Query()] = None,
    assignee: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    since: Annotated[dt.datetime | dt.date | None, Query()] = None,
    until: Annotated[dt.datetime | dt.date | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    format: Annotated[Literal["json", "geojson"] | None, Query()] = None,
) -> Response:
    page = store.list_events(
        session,
        area_code=area,
        grid_code=grid,
        status=status,
        tier=tier,
        overdue=overdue,
        assignee=assignee,
        since=_when(since),
        until=_when(until),
        limit=limit,
        offset=offset,
    )
    links = []
    if offset + limit < page.total:
        nxt = request.url.include_query_params(offset=offset + limit)
        links.append({"rel": "next", "href": str(nxt)})
    if offset > 0:
        prev = request.url.include_query_params(offset=max(0, offset - limit))
        links.append({"rel": "prev", "href": str(prev)})
    note_read(
        request,
        matters=[e.id for e in page.items],
        households=[e.household_id for e in page.items],
    )
    items = [event_out(e, private=True) for e in page.items]
    wants_geojson = format == "geojson" or (
        format is None and GEOJSON in request.headers.get("accept", "")
    )
    if wants_geojson:
        features = [
            {
                "type": "Feature",
                "id": it.id,
                "geometry": (
                    {"type": "Point", "coordinates": [it.lon, it.lat]}
                    if it.lon is not None
                    else None
                ),
                "properties": it.model_dump(
                    mode="json", exclude={"lon", "lat", "links"}
                ),
            }
            for it in items
        ]
        return JSONResponse(
            {
                "type": "FeatureCollection",
                "features": features,
                "numberMatched": page.total,
                "numberReturned": len(features),
                "links": links,
            },
            media_type=GEOJSON,
        )
    out = EventPageOut(
        items=items, total=page.total, limit=limit, offset=offset, links=links
    )
    return JSONResponse(out.model_dump(mode="json"))


@router.get(
    "/events/{event_id}",
    response_model=EventOut,
    summary="One event with its log",
    responses=problem_responses(401, 403, 404, 422),
)
def event(
    request: Request, session: SessionDep, key: HandlerDep, event_id: int
) -> EventOut:
    _check_id(event_id)
    e = store.get_event(session, event_id)
    note_read(request, matters=[e.id], households=[e.household_id])
    return event_out(e, private=True)


@router.post(
    "/events/{event_id}/{action}",
    response_model=EventOut,
    summary="A transition: sort, accept, settle, evaluate, close or return",
    description=(
        "Send the `expected_version` you last saw: if the event changed meanwhile "
        "the answer is 409 (`/problems/event-conflict`, with `current_version`) and "
        "nothing is written. An action the event's status does not allow is 409 "
        "`/problems/illegal-transition` naming the status and the allowed actions. "
        "`sort` takes a `tier` (民事 grid / 村事 village / 政事 township) and routes "
        "the event to that tier's handler; `evaluate` takes `satisfaction` 1–5 and "
        "`comment`; `return` needs a `note`."
    ),
    responses=problem_responses(401, 403, 404, 409, 422),
)
def act(
    request: Request,
    session: SessionDep,
    key: HandlerDep,
    action: Annotated[Action, Path()],
    body: TransitionIn,
    event_id: int,
) -> EventOut:
    _check_id(event_id)
    if action == "evaluate":
        raise ProblemError(
            403,
            "Satisfaction is the resident's to give: staff keys cannot rate a matter "
            f"(key {key.prefix} is a {key.role} key). Close it once settled.",
            type="/problems/forbidden",
        )
    person = _acting_person(session, key, body.by)
    if person is not None:
        current = store.get_event(session, event_id)  # outside the area: 404
        if current.assignee is None or current.assignee.id != person:
            raise ProblemError(
                403,
                f"Event {event_id} is not assigned to {person or 'the person of'} "
                f"key {key.prefix}: a person's key acts on that person's matters "
                "only.",
                type="/problems/forbidden",
            )
    e = store.transition(
        session,
        event_id,
        action,
        actor=_actor(key, body.by),
        expected_version=body.expected_version,
        tier=body.tier,
        note=body.note,
        satisfaction=body.satisfaction,
        comment=body.comment,
    )
    note_read(request, matters=[e.id], households=[e.household_id])
    return event_out(e, private=True)
