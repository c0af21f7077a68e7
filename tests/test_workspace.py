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
