"""The planner's Python API end to end on a real database of its own."""

from __future__ import annotations

import pytest

from geo.errors import PlanConflictError
from geo.workspace import Workspace


@pytest.fixture(scope="module")
def ws(make_database):  # type: ignore[no-untyped-def]
    w = Workspace.connect(make_database("ws"))
    yield w
    w.engine.dispose()


def test_planner_workflow(ws: Workspace) -> None:
    reports = ws.load_sample(households=3_000, seed=4)
    assert [r.kind for r in reports] == ["areas", "people", "households"]
    towns = ws.areas(level="township")
    code = towns.sort_values("households").iloc[-1]["code"]
    area = ws.area(code)
    assert area.plan is None and len(area.households) == towns["households"].max()
    plan = ws.generate(area)
    assert plan.report["metrics"]["households"] == len(area.households)
    plan = ws.staff(plan, area)
    assert plan.grids["worker_id"].notna().mean() > 0.9
    assert plan.assignments["member_id"].notna().mean() > 0.5
    pid = ws.save_draft(area, plan)
    ws.publish(pid)
    area = ws.area(code)
    assert area.plan_id == pid and len(area.plan.grids) == len(plan.grids)
    r = ws.rebalance(area)
    assert r.report["moved_households"] == 0  # nothing changed since the plan
    d = ws.diff(area.plan, r.plan)
    assert d.summary["households_changed"] == 0
    draft = ws.save_draft(area, r.plan, parent_id=pid)
    v = ws.save_edit(draft, r.plan, expected_version=0)
    with pytest.raises(PlanConflictError):
        ws.save_edit(draft, r.plan, expected_version=0)
    assert v == 1
    plans = ws.plans()
    assert set(plans["status"]) == {"published", "draft"}
    cov = ws.coverage(pid)
    assert cov["households"].sum() == len(area.households)
    assert cov["grid_worker"].notna().mean() > 0.9
    assert (
        cov["households_with_member"].sum()
        == plan.assignments["member_id"].notna().sum()
    )
    stored, _ = ws.plan(pid)
    assert (
        stored.assignments["member_id"].notna().sum()
        == plan.assignments["member_id"].notna().sum()
    )


def test_code_retired_through_workspace_is_never_reused(ws: Workspace) -> None:
    """Regression: Workspace.rebalance + save_draft did not store the retired codes,
    so the next rebalance (through Workspace, the CLI or the API, which all read
    them back from the stored plan) could hand a retired code to a new grid."""
    from dataclasses import replace

    import geopandas as gpd
    import numpy as np
    import shapely

    from geo import services

    if ws.areas().empty:
        ws.load_sample(households=3_000, seed=4)
    towns = ws.areas(level="township")
    code = towns.sort_values("households").iloc[-1]["code"]
    area = ws.area(code)
    if area.plan is None:
        pid = ws.save_draft(area, ws.generate(area))
        ws.publish(pid, allow_unstaffed=True)  # staffing is not what this tests
        area = ws.area(code)
    # demolish one grid's households: the rebalance retires its code
    g = area.plan.grids.sort_values("households").iloc[0]
    victim = str(g["grid_code"])
    gone = set(
        area.plan.assignments.loc[
            area.plan.assignments["grid_code"] == victim, "household_id"
        ]
    )
    shrunk = replace(
        area, households=area.households[~area.households["household_id"].isin(gone)]
    )
    r = ws.rebalance(shrunk)
    retired = set(r.report["retired_codes"])
    assert retired and retired.isdisjoint(r.plan.grids["grid_code"])
    first = ws.save_draft(shrunk, r.plan, parent_id=area.plan_id)
    _, info = ws.plan(first)
    assert set(info["metrics"]["retired_codes"]) == retired
    ws.publish(first, allow_unstaffed=True)  # ws.rebalance does not restaff
    # a new estate in the retired grid's place: new grids are split off
    rng = np.random.default_rng(7)
    box = g.geometry
    pts = []
    while len(pts) < 900:
        x0, y0, x1, y1 = box.bounds
        p = shapely.Point(rng.uniform(x0, x1), rng.uniform(y0, y1))
        if box.contains(p):
            pts.append(p)
    estate = gpd.GeoDataFrame(
        {
            "household_id": [f"ESTATE-{i}" for i in range(len(pts))],
            "address": [
                f"浙江省衢州市衢江区新村{i // 20 + 1}幢{i % 20 + 1}室"
                for i in range(len(pts))
            ],
        },
        geometry=pts,
        crs=4326,
    )
    ws.load("households", estate, source="estate")
    grown = ws.area(code)
    assert grown.plan_id == first
    again = ws.rebalance(grown)
    assert again.report["grids_created"], "the estate must split grids"
    assert retired.isdisjoint(again.plan.grids["grid_code"])
    # the stored workflow (what the CLI and the API jobs run) honours them too
    with ws.session() as s:
        saved = services.rebalance_and_save(s, first, created_by="test")
        assert retired.isdisjoint(saved.result.plan.grids["grid_code"])
        assert saved.result.report["grids_created"]
        s.rollback()
