"""The web viewer: the published plan of an area on an offline map (``GET /map``)."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import pandas as pd
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from api.audit import note_read
from api.deps import HandlerDep, KeyDep, SessionDep, ViewerDep
from api.limits import with_nonce
from api.plan_access import check_plan_visible
from api.problems import ProblemError, problem_responses
from geo.store.event_views import open_events_by_grid, open_events_on_plan
from geo.store.plans import area_frames
from geo.store.queries import (
    inner_published,
    load_in_force,
    load_plan,
    people_table,
    published_plan,
)

_T = TypeVar("_T")

router = APIRouter(tags=["viewer"])

#: Rendered viewer pages (and key holders' household layers) kept per process.
PAGE_CACHE_ENTRIES = 16
_CACHE_INIT = threading.Lock()


@router.get(
    "/map",
    response_class=HTMLResponse,
    summary="Web viewer: grids and who works them (offline, one HTML page)",
    description=(
        "The published plan of `area` (default: the top-level area with a published "
        "plan) as a Leaflet map with every script inlined — no CDN, no tiles unless "
        "configured (`GRIDMAP_VIEWER_TILES`, a WGS84 XYZ template; otherwise the admin "
        "area outlines are the basemap). Public: grids, villages, household counts and grid workers' "
        "work phones, nothing per household. Search by grid code, or type an "
        "address: it is resolved by `GET /lookup` on the same origin. Holders of a "
        "viewer key type it into the page's key box to add the households (their "
        "grid and covering party member) from `GET /map/households`."
    ),
    responses=problem_responses(404, 422),
)
def viewer(
    request: Request,
    session: SessionDep,
    area: Annotated[str | None, Query(max_length=32, description="area code")] = None,
) -> HTMLResponse:
    found = published_plan(session, area)
    if found is None:
        raise ProblemError(
            404,
            f"No published plan for area {area!r}."
            if area
            else "No plan is published yet.",
            type="/problems/no-plan",
        )
    plan_id, code, name, version = (
        found.plan_id,
        found.area_code,
        found.area_name,
        found.lock_version,
    )
    root = str(request.scope.get("root_path", ""))

    tiles = getattr(request.app.state, "viewer_tiles", None)

    def render() -> str:
        from maps import Context, coverage_map
        from maps.edit import add_edit_mode

        plan = load_in_force(session, plan_id)  # with the plans of areas inside
        areas, _households = area_frames(session, code)
        m = coverage_map(
            plan,
            None,  # public: grids, counts and grid workers, no household
            people=_people(session, roles=("grid_worker", "grid_leader")),
            areas=areas,
            # offline context: admin outlines (public; building footprints would
            # place households, so they stay out of the public page)
            basemap={"url": tiles, "crs": "wgs84"} if tiles else None,
            context=Context(areas=areas),
            title=f"{name} 网格",
            lookup_url=root + "/lookup",
            households_url=root + "/map/households",
            plan_id=plan_id,
            events_url=root + "/map/events/grids",
            event_points_url=root + "/map/events",
        )
        # drawn for everyone, shown only once a planner's key is typed in
        add_edit_mode(m, plans_url=root + "/plans", plan_id=plan_id)
        return m.get_root().render()

    # keyed by the plan and its version: publishing or editing makes a new key
    inner = tuple(inner_published(session, plan_id))
    scope = _scope(request)  # a key's session sees only its area's people
    page = _cache(request).get(("page", plan_id, version, inner, root, scope), render)
    return HTMLResponse(with_nonce(request.scope, page))


#: Most villages one ``GET /map/households?areas=`` asks for.
MAX_LAYER_AREAS = 50


@dataclass(frozen=True)
class _Layer:
    """A plan's household layer, rendered once: the index (grids, members and
    per village its count and box) and each village's packed households."""

    index: str
    groups: dict[str, tuple[str, list[str]]]  # area -> (its JSON, household ids)


@router.get(
    "/map/households",
    summary="Households of the web viewer (viewer key), village by village",
    description=(
        "What `GET /map` leaves out for key holders: the households of a plan's "
        "area with their grid and covering party member (work phone), packed as "
        "the viewer draws them (`maps.coverage.household_layers`). Without "
        "`areas`: the index (the plan's grids, the members, and per village "
        "`area`, `n` households and `bbox`), no household. With `areas` (up to "
        f"{MAX_LAYER_AREAS} village codes from the index, comma-separated): those "
        "villages' households (`data`); each household counts against the "
        "collection caps and is in the audit. The viewer page asks for a key, "
        "sends it in `X-API-Key` and loads the villages in view from zoom 15."
    ),
    responses=problem_responses(401, 403, 404, 422, 429),
)
def viewer_households(
    request: Request,
    session: SessionDep,
    key: ViewerDep,
    plan: Annotated[int, Query(ge=1, le=2**31 - 1, description="plan id")],
    areas: Annotated[
        str | None,
        Query(
            max_length=2000,
            description="village codes of the index, comma-separated",
            pattern=r"^[^,]+(,[^,]+)*$",
        ),
    ] = None,
) -> Response:
    check_plan_visible(session, key, plan)  # a draft's households: planner keys
    grid_plan, info = load_plan(session, plan)  # NotFound → 404
    version = info.get("lock_version")

    def render() -> _Layer:
        from maps.coverage import household_layers

        _areas, households = area_frames(session, str(info["area_code"]))
        body = household_layers(
            grid_plan, households, people=_people(session, roles=None), ids=True
        )
        groups = {}
        for g in body["groups"]:
            ids = g.pop("households")
            groups[g["area"]] = (_json(g), ids)
        index = {
            "grids": body["grids"],
            "members": body["members"],
            "groups": [
                {k: g[k] for k in ("area", "n", "bbox")} for g in body["groups"]
            ],
        }
        return _Layer(_json(index), groups)

    layer = _cache(request).get(("households", plan, version, _scope(request)), render)
    headers = {
        "Cache-Control": "private, no-store",
        "X-GridMap-Key-Role": key.role,
        # the area the key is limited to (none: the whole register): the edit mode
        # drafts that area's part of a plan covering it
        "X-GridMap-Key-Area": key.area_code or "",
    }
    if areas is None:
        # the page draws the open events too when the key handles events
        return Response(layer.index, media_type="application/json", headers=headers)
    asked = list(dict.fromkeys(areas.split(",")))
    if len(asked) > MAX_LAYER_AREAS:
        raise ProblemError(
            422,
            f"areas names {len(asked)} villages; ask for at most {MAX_LAYER_AREAS} "
            "at a time.",
            type="/problems/invalid-request",
        )
    unknown = [a for a in asked if a not in layer.groups]
    if unknown:
        raise ProblemError(
            422,
            f"areas: {', '.join(unknown[:5])} not in plan {plan}'s household layer "
            "(GET /map/households?plan=… without areas lists them).",
            type="/problems/invalid-request",
        )
    # the households shown count against the caps (429 past them) and are audited
    note_read(request, households=[h for a in asked for h in layer.groups[a][1]])
    head = layer.index[: layer.index.rindex(',"groups":')]
    body = head + ',"groups":[' + ",".join(layer.groups[a][0] for a in asked) + "]}"
    return Response(body, media_type="application/json", headers=headers)


def _json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


@router.get(
    "/map/events/grids",
    summary="Open events per grid of a plan (public: counts only)",
    description=(
        "The viewer's events layer (三事分流): for each grid of plan `plan` with open "
        "events (reported, sorted, in hand, returned; placed by their point in the "
        "plan's grids), how many and how many are past their deadline. Counts "
        "only: no event, resident, address or description."
    ),
    responses=problem_responses(404, 422),
)
def viewer_event_counts(
    session: SessionDep,
    key: KeyDep,
    plan: Annotated[int, Query(ge=1, le=2**31 - 1, description="plan id")],
) -> Response:
    check_plan_visible(session, key, plan)  # a draft's grids: planner keys only
    counts = open_events_by_grid(session, plan)  # NotFound → 404
    body = {
        "plan": plan,
        "grids": counts["grid_code"].tolist(),
        "open": [int(v) for v in counts["open"]],
        "overdue": [int(v) for v in counts["overdue"]],
    }
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


@router.get(
    "/map/events",
    summary="Open events of a plan's grids, for the viewer (worker or planner key)",
    description=(
        "What the viewer draws for keys that handle events: each open event placed "
        "in plan `plan`'s grids as `[lon, lat, grid index, id, status, tier, "
        "overdue (0/1), category, class, reported_at, deadline]` (grid index into "
        "`grids`). No resident name or phone, no description, no address — "
        "`GET /events/{id}` has those. Send the key in `X-API-Key`."
    ),
    responses=problem_responses(401, 403, 404, 422, 429),
)
def viewer_event_points(
    request: Request,
    session: SessionDep,
    key: HandlerDep,
    plan: Annotated[int, Query(ge=1, le=2**31 - 1, description="plan id")],
) -> Response:
    check_plan_visible(session, key, plan)  # a draft's grids: planner keys only
    ev = open_events_on_plan(session, plan)  # NotFound → 404
    codes = sorted(set(ev["grid_code"]))
    idx = {c: i for i, c in enumerate(codes)}
    rows = [
        [
            round(float(r.lon), 6),
            round(float(r.lat), 6),
            idx[r.grid_code],
            int(r.id),
            r.status,
            r.tier,
            int(bool(r.overdue)),
            r.category_name,
            r.class_name,
            r.reported_at.isoformat(timespec="minutes"),
            r.deadline.isoformat(timespec="minutes"),
        ]
        for r in ev.itertuples(index=False)
    ]
    note_read(request, matters=[int(r[3]) for r in rows])
    body = {"plan": plan, "grids": codes, "events": rows}
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        media_type="application/json",
        headers={"Cache-Control": "private, no-store"},
    )


def _scope(request: Request) -> tuple[str | None, str | None]:
    """What a cached page depends on besides the plan: the key's role and area
    (its session sees its area only)."""
    key = getattr(request.state, "key", None)
    return (None, None) if key is None else (key.role, key.area_code)


def _people(session: Session, roles: tuple[str, ...] | None) -> pd.DataFrame:
    return people_table(session, roles)


class PageCache:
    """A bounded LRU of rendered pages; one render at a time per process, so a
    burst of requests for pages not cached costs one render each, not N."""

    def __init__(self, max_entries: int = PAGE_CACHE_ENTRIES) -> None:
        self.max_entries = max_entries
        self._pages: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.renders = 0

    def get(self, key: Hashable, render: Callable[[], _T]) -> _T:
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                self._pages.move_to_end(key)
                self.hits += 1
                return page
            page = render()
            self.renders += 1
            self._pages[key] = page
            while len(self._pages) > self.max_entries:
                self._pages.popitem(last=False)
            return page

    def __len__(self) -> int:
        return len(self._pages)


def _cache(request: Request) -> PageCache:
    state = request.app.state
    cache = getattr(state, "viewer_cache", None)
    if cache is None:
        with _CACHE_INIT:
            cache = getattr(state, "viewer_cache", None)
            if cache is None:
                cache = state.viewer_cache = PageCache()
    return cache  # type: ignore[no-any-return]
