"""A planner's manual edits: validated, clear refusals, saved drafts with optimistic locking."""

from __future__ import annotations

import pytest
import shapely
from samples import sample_county
from sqlalchemy import text

from geo.errors import EditError, PlanConflictError
from geo.gridding.edits import (
    merge_grids,
    move_building,
    move_households,
    split_grid,
    validate_plan,
)
from geo.gridding.generate import generate_grids
from geo.io import prepare
from geo.sample import SampleCounty
from geo.store.db import session_scope
from geo.store.loading import load
from geo.store.plans import plan_frames, publish_plan, save_generated_plan, update_draft


@pytest.fixture(scope="module")
def county() -> SampleCounty:
    return sample_county(6_000, seed=31)


@pytest.fixture(scope="module")
def plan(county):
    return generate_grids(county.households, county.areas)


def _neighbours(plan):
    g = plan.grids
    for i, a in g.iterrows():
        for j, b in g.iterrows():
            if (
                i < j
                and a["area_code"] == b["area_code"]
                and shapely.length(
                    shapely.intersection(a.geometry.boundary, b.geometry.boundary)
                )
                > 0
            ):
                yield a["grid_code"], b["grid_code"]


def test_generated_plan_validates(county, plan) -> None:
    leaf = county.areas[county.areas["level"].isin(["village", "community"])]
    assert validate_plan(plan, county.households, areas=leaf) == []


def test_move_households_to_a_neighbour(county, plan) -> None:
    hh = county.households.set_index("household_id")
    # neighbouring grids where three rural households (no building id) live
    # right by the shared edge (within about 50 m)
    for src, dst in _neighbours(plan):
        members = plan.assignments.loc[
            plan.assignments["grid_code"] == src, "household_id"
        ]
        rural = [
            h for h in members if hh.loc[h, "building_id"] != hh.loc[h, "building_id"]
        ]
        dst_poly = plan.grids.set_index("grid_code").geometry[dst]
        nearest = sorted(
            rural, key=lambda h: shapely.distance(hh.loc[h, "geometry"], dst_poly)
        )[:3]
        if (
            len(nearest) == 3
            and shapely.distance(hh.loc[nearest[-1], "geometry"], dst_poly) < 5e-4
        ):
            break
    else:
        raise AssertionError("no neighbouring grids with rural households by the edge")
    edited = move_households(
        plan, county.households, nearest, dst, allow_out_of_band=True
    )
    now = edited.assignments.set_index("household_id")["grid_code"]
    assert (now[nearest] == dst).all()
    assert (
        validate_plan(
            edited, county.households, min_households=0, max_households=10_000
        )
        == []
    )
    leaf = county.areas[county.areas["level"].isin(["village", "community"])]
    union = shapely.union_all(edited.grids.geometry.values)
    assert (
        shapely.symmetric_difference(
            union, shapely.union_all(leaf.geometry.values)
        ).area
        < 1e-10
    )


def test_edits_refused_with_clear_messages(county, plan) -> None:
    codes = plan.grids["grid_code"].tolist()
    with pytest.raises(EditError, match="unknown grid 'X'"):
        move_households(
            plan, county.households, [plan.assignments["household_id"].iloc[0]], "X"
        )
    h = plan.assignments.iloc[0]
    with pytest.raises(EditError, match=f"already in {h['grid_code']}"):
        move_households(plan, county.households, [h["household_id"]], h["grid_code"])
    # a grid far away: no shared boundary (a household with no building of its own)
    far = plan.grids.set_index("grid_code").geometry
    no_building = county.households.loc[
        county.households["building_id"].isna(), "household_id"
    ]
    h = plan.assignments[plan.assignments["household_id"].isin(set(no_building))].iloc[
        0
    ]
    src = h["grid_code"]
    remote = max(codes, key=lambda c: shapely.distance(far[c], far[src]))
    with pytest.raises(EditError, match="share no boundary"):
        move_households(
            plan, county.households, [h["household_id"]], remote, allow_out_of_band=True
        )
    # band: moving a whole grid's worth breaks it
    a, b = next(iter(_neighbours(plan)))
    many = plan.assignments.loc[
        plan.assignments["grid_code"] == a, "household_id"
    ].tolist()
    with pytest.raises(EditError, match=r"outside 200–300"):
        merge_grids(plan, [a, b])
    with pytest.raises(EditError, match="not adjacent"):
        merge_grids(plan, [src, remote], allow_out_of_band=True)
    assert many
    with pytest.raises(EditError, match="unknown building"):
        move_building(plan, county.households, "no-such-building", b)


def test_split_and_merge_round_trip(county, plan) -> None:
    big = plan.grids.sort_values("households").iloc[-1]["grid_code"]
    two = split_grid(plan, county.households, big, allow_out_of_band=True)
    assert big in set(two.grids["grid_code"]) and len(two.grids) == len(plan.grids) + 1
    new = sorted(set(two.grids["grid_code"]) - set(plan.grids["grid_code"]))[0]
    assert new[:-2] == big[:-2]
    back = merge_grids(two, [big, new], allow_out_of_band=True)
    assert len(back.grids) == len(plan.grids)
    assert validate_plan(back, county.households) == []


def test_concurrent_edits_second_save_refused(engine, county, plan) -> None:
    """Two planners load the same draft; the second save is refused, the first is kept."""
    root = county.areas.loc[county.areas["level"] == "county", "code"].iloc[0]
    try:
        with session_scope(engine) as s:
            load(s, prepare(county.areas, "areas", source="areas"))
            load(s, prepare(county.households, "households", source="hh"))
            pid = save_generated_plan(s, root, plan)
        with session_scope(engine) as s:
            _, _, info_a = plan_frames(s, pid)
        with session_scope(engine) as s:
            _, _, info_b = plan_frames(s, pid)
        assert info_a["lock_version"] == info_b["lock_version"] == 0
        src, dst = next(iter(_neighbours(plan)))
        hid = plan.assignments.loc[
            plan.assignments["grid_code"] == src, "household_id"
        ].iloc[0]
        try:
            edit_a = move_households(
                plan, county.households, [hid], dst, allow_out_of_band=True
            )
        except EditError:
            edit_a = split_grid(plan, county.households, src, allow_out_of_band=True)
        with session_scope(engine) as s:
            v = update_draft(
                s, pid, edit_a.grids, edit_a.assignments, expected_lock_version=0
            )
        assert v == 1
        edit_b = merge_grids(plan, [src, dst], allow_out_of_band=True)
        with pytest.raises(PlanConflictError, match="saved by someone else"):
            with session_scope(engine) as s:
                update_draft(
                    s, pid, edit_b.grids, edit_b.assignments, expected_lock_version=0
                )
        with session_scope(engine) as s:
            grids, _, info = plan_frames(s, pid)
            assert info["lock_version"] == 1
            assert set(grids["grid_code"]) == set(edit_a.grids["grid_code"])
            publish_plan(s, pid)
        with pytest.raises(PlanConflictError, match="is published"):
            with session_scope(engine) as s:
                update_draft(
                    s, pid, edit_a.grids, edit_a.assignments, expected_lock_version=1
                )
    finally:
        with session_scope(engine) as s:
            s.execute(text("DELETE FROM plans"))
            s.execute(text("DELETE FROM households"))
            s.execute(text("DELETE FROM people"))
            s.execute(text("UPDATE admin_areas SET parent_id = NULL"))
            s.execute(text("DELETE FROM admin_areas"))
