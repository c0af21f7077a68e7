"""``Workspace.area`` answers with the plan in force: a township covered by its
county's published plan gets the county plan's grids inside it (as ``gridmap run``
leaves the database), not None — the notebooks used to publish a new township
plan over it when they saw None, even the audit that only reads."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from geo.errors import InputError
from geo.workspace import Workspace


@pytest.fixture(scope="module")
def ws(make_database):  # type: ignore[no-untyped-def]
    w = Workspace.connect(make_database("in_force"))
    w.load_sample(households=3_000, seed=4)
    county = str(w.areas(level="county")["code"].iloc[0])
    pid = w.save_draft(w.area(county), w.generate(w.area(county)))
    w.publish(pid, allow_unstaffed=True)
    yield w
    w.engine.dispose()


def _county(ws: Workspace) -> str:
    return str(ws.areas(level="county")["code"].iloc[0])


def _below(ws: Workspace, code: str) -> set[str]:
    areas = ws.area(code).areas
    return set(areas["code"].astype(str))


def test_a_township_under_a_county_plan_gets_its_grids_of_it(ws: Workspace) -> None:
    county = ws.area(_county(ws))
    towns = ws.areas(level="township")
    code = str(towns.sort_values("households").iloc[-1]["code"])
    area = ws.area(code)
    assert area.plan is not None and area.plan_id == county.plan_id
    assert area.plan_info is not None and area.plan_info["area_code"] == county.code
    inside = _below(ws, code)
    # exactly the county plan's grids in the township, with all its households
    assert set(area.plan.grids["area_code"].astype(str)) <= inside
    mine = county.plan.grids[county.plan.grids["area_code"].astype(str).isin(inside)]
    assert set(area.plan.grids["grid_code"]) == set(mine["grid_code"])
    assert set(area.plan.assignments["household_id"]) == set(
        area.households["household_id"]
    )
    in_county = county.plan.assignments.set_index("household_id")["grid_code"]
    got = area.plan.assignments.set_index("household_id")["grid_code"]
    assert (in_county.loc[got.index] == got).all()
    codes = set(area.plan.grids["grid_code"])
    assert all(e["grid_code"] in codes for e in area.plan.report["exceptions"])
    # nothing changed: a rebalance of it moves no one, and a draft of it publishes
    # as the township's part of the county's answer
    r = ws.rebalance(area)
    assert r.report["moved_households"] == 0
    draft = ws.save_draft(area, r.plan, parent_id=area.plan_id)
    ws.publish(draft, allow_unstaffed=True)
    again = ws.area(code)
    assert again.plan_id == draft and again.plan_info["area_code"] == code
    assert set(again.plan.assignments["household_id"]) == set(
        area.households["household_id"]
    )
    # and the county's own plan no longer holds the township's grids
    after = ws.area(county.code)
    assert after.plan is not None
    assert not set(after.plan.grids["area_code"].astype(str)) & inside


def test_no_plan_when_a_grid_of_the_plan_above_crosses_the_area(
    ws: Workspace,
) -> None:
    county = ws.area(_county(ws))
    with ws.session() as s:
        row = s.execute(
            text(
                "SELECT h_area.code FROM assignments x "
                "JOIN households h ON h.id = x.household_id "
                "JOIN grids g ON g.id = x.grid_id "
                "JOIN admin_areas h_area ON h_area.id = h.area_id "
                "WHERE x.plan_id = :p AND g.area_id <> h.area_id LIMIT 1"
            ),
            {"p": county.plan_id},
        ).first()
    # the sample's small villages share grids with a neighbour
    assert row is not None, "the sample county has a grid over two villages"
    village = ws.area(str(row[0]))
    assert village.plan is None and village.plan_id is None
    with pytest.raises(InputError) as e:
        ws.draft(village.plan_id)  # type: ignore[arg-type]
    assert "plan_id" in e.value.params and "None" in str(e.value)
    # nor can the village's part of the county plan be drafted on its own
    with pytest.raises(InputError) as e:
        ws.draft(county.plan_id, area=village.code)
    assert "area" in e.value.params and "both inside and outside" in str(e.value)


def test_an_area_with_a_plan_of_its_own_keeps_it(ws: Workspace) -> None:
    county = ws.area(_county(ws))
    assert county.plan_info is not None
    assert county.plan_info["area_code"] == county.code
    assert len(county.plan.assignments) <= len(county.households)


def test_a_draft_of_a_townships_part_publishes_over_that_part_only(
    ws: Workspace,
) -> None:
    towns = ws.areas(level="township")
    code = str(towns.sort_values("households").iloc[0]["code"])
    area = ws.area(code)
    assert area.plan_id is not None
    whole = ws.area(str(area.plan_info["area_code"]))
    others = set(whole.plan.grids["grid_code"]) - set(area.plan.grids["grid_code"])
    d = ws.draft(area.plan_id, area=code)
    stored, info = ws.plan(d.plan_id)
    assert info["area_code"] == code and info["status"] == "draft"
    grids = set(stored.grids["grid_code"])
    assert grids == set(area.plan.grids["grid_code"])
    assert set(stored.assignments["household_id"]) == set(
        area.plan.assignments["household_id"]
    )
    src, dst = _two_neighbours(d, grids)
    b, _ = d.border(src, dst)[0]
    unit = {"households": [b[2:]]} if b.startswith("h:") else {"buildings": [b]}
    r = d.move(**unit, to_grid=dst, allow_out_of_band=True)
    assert not r.problems or all("band" in str(p) for p in r.problems)
    ws.publish(d.plan_id, allow_unstaffed=True)
    now = ws.area(code)
    assert now.plan_id == d.plan_id and now.plan_info["area_code"] == code
    rest = ws.area(whole.code)
    assert set(rest.plan.grids["grid_code"]) == others  # the rest as it was
    # the county plan holds no grid of the township any more: refused, naming area
    with pytest.raises(InputError) as e:
        ws.draft(rest.plan_id, area=code)
    assert "area" in e.value.params


def _two_neighbours(d, grids):  # type: ignore[no-untyped-def]
    for a in sorted(grids):
        for b in d.neighbours(a):
            if b in grids and d.border(a, b):
                return a, b
    raise AssertionError("no two neighbouring grids with a movable building")
