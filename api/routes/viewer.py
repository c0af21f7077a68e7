"""The web viewer: the published plan of an area on an offline map (``GET /map``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import text

from api.deps import SessionDep
from api.problems import ProblemError, problem_responses
from geo.store.plans import area_frames
from geo.store.queries import load_plan

router = APIRouter(tags=["viewer"])


@router.get(
    "/map",
    response_class=HTMLResponse,
    summary="Web viewer: grids, houses and who covers them (offline, one HTML page)",
    description=(
        "The published plan of `area` (default: the top-level area with a published "
        "plan) as a Leaflet map with every script inlined — no CDN, no tiles unless "
        "configured. Click a house for its grid, grid worker and covering party "
        "member (work phones); search by grid code, or type an address: it is "
        "resolved by `GET /lookup` on the same origin (ranked candidates to pick "
        "from when ambiguous)."
    ),
    responses=problem_responses(404, 422),
)
def viewer(
    request: Request,
    session: SessionDep,
    area: Annotated[str | None, Query(max_length=32, description="area code")] = None,
) -> HTMLResponse:
    from maps import coverage_map

    row = session.execute(
        text(
            "SELECT p.id, a.code, a.name, p.lock_version FROM plans p "
            "JOIN admin_areas a ON a.id = p.area_id WHERE p.status = 'published' "
            "AND (CAST(:c AS text) IS NULL OR a.code = :c) "
            "ORDER BY a.parent_id IS NOT NULL, a.code LIMIT 1"
        ),
        {"c": area},
    ).first()
    if row is None:
        raise ProblemError(
            404,
            f"No published plan for area {area!r}."
            if area
            else "No plan is published yet.",
            type="/problems/no-plan",
        )
    plan_id, code, name, version = row
    cache: dict[tuple[int, int], str] = request.app.state.__dict__.setdefault(
        "viewer_cache", {}
    )
    html = cache.get((plan_id, version))
    if html is None:
        plan, _ = load_plan(session, plan_id)
        areas, households = area_frames(session, code)
        people = session.execute(
            text(
                "SELECT p.external_id AS person_id, p.name, p.role, p.work_phone, "
                "a.code AS area_code FROM people p LEFT JOIN admin_areas a "
                "ON a.id = p.area_id"
            )
        ).all()
        import pandas as pd

        ppl = pd.DataFrame(
            people, columns=["person_id", "name", "role", "work_phone", "area_code"]
        )
        m = coverage_map(
            plan,
            households,
            people=ppl,
            areas=areas,
            title=f"{name} 网格",
            lookup_url=str(request.scope.get("root_path", "")) + "/lookup",
        )
        html = m.get_root().render()
        cache.clear()
        cache[(plan_id, version)] = html
    return HTMLResponse(html)
