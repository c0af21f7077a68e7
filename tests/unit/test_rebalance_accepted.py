"""A grid kept out of band from the previous plan stays so only while its area is
unchanged; a building split across grids stays split in the re-cut."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.gridding.checks import check_plan
from geo.gridding.generate import generate_grids
from geo.gridding.rebalance import rebalance


def _building(bid: str, n: int, x: float, y: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "household_id": [f"{bid}-{i:03d}" for i in range(n)],
            "building_id": bid,
            "unit": [f"{i // 10 + 1}单元" for i in range(n)],
            "x": x,
            "y": y,
        }
    )


def _households(*buildings: pd.DataFrame) -> gpd.GeoDataFrame:
    df = pd.concat(buildings, ignore_index=True)
    return gpd.GeoDataFrame(
        df.drop(columns=["x", "y"]), geometry=shapely.points(df["x"], df["y"]), crs=4326
    )


def test_an_accepted_exception_is_redrawn_when_its_area_changes() -> None:
    """A village of 430 households, one building of 321 among them, cannot be cut
    into grids of 200-300 (the building's halves are 161 and 160; no grouping
    with 104 and 5 is in band both ways): generation leaves a grid under the band
    with a proof. A new building of 76 arrives beside the big one: 506 households now
    split in band (e.g. 161+76 and 160+104+5). The rebalance redraws the grid it had
    kept (before: it kept that grid "as it was" with no cause, and called the other
    grid's 345 households an infeasible total, untrue of the village), and cuts
    the big building's halves as two parts (before: one node of 321, over any
    grid, and the re-cut gave up)."""
    village = gpd.GeoDataFrame(
        {"code": ["330803100201"], "name": ["东村"], "level": ["village"]},
        geometry=[shapely.box(120.0, 30.0, 120.01, 30.01)],
        crs=4326,
    )
    before = _households(
        _building("A", 321, 120.008, 30.005),
        _building("B", 104, 120.002, 30.005),
        _building("C", 5, 120.003, 30.002),
    )
    plan = generate_grids(before, village)
    out = [e for e in plan.report["exceptions"] if e.get("kind") == "out_of_band"]
    assert len(out) == 1 and out[0]["households"] < 200
    assert out[0]["cause"] == "no_in_band_split"

    after = _households(
        _building("A", 321, 120.008, 30.005),
        _building("B", 104, 120.002, 30.005),
        _building("C", 5, 120.003, 30.002),
        _building("D", 76, 120.009, 30.008),
    )
    r = rebalance(plan.grids, plan.assignments, after)
    assert len(r.plan.grids) == 2
    assert r.plan.grids["households"].between(200, 300).all()
    assert check_plan(r.plan, after, village) == []
    # the big building's households lie in both grids, the new one with a half
    grid_of = r.plan.assignments.set_index("household_id")["grid_code"]
    assert grid_of[after["building_id"].eq("A").to_numpy()].nunique() == 2


def test_an_accepted_exception_is_kept_while_its_area_is_unchanged() -> None:
    """The same village with households added elsewhere only (a second village):
    the grid under the band is kept as it was, and its village's grids are untouched."""
    villages = gpd.GeoDataFrame(
        {
            "code": ["330803100201", "330803100202"],
            "name": ["东村", "西村"],
            "level": ["village", "village"],
        },
        geometry=[
            shapely.box(120.0, 30.0, 120.01, 30.01),
            shapely.box(120.01, 30.0, 120.02, 30.01),
        ],
        crs=4326,
    )
    east = [
        _building("A", 321, 120.008, 30.005),
        _building("B", 104, 120.002, 30.005),
        _building("C", 5, 120.003, 30.002),
    ]
    west = [_building(f"W{i}", 25, 120.011 + 0.0008 * i, 30.005) for i in range(10)]
    plan = generate_grids(_households(*east, *west), villages)
    kept = plan.grids[plan.grids["households"] < 200]
    assert len(kept) == 1 and kept["area_code"].iloc[0] == "330803100201"
    east_before = plan.grids[plan.grids["area_code"] == "330803100201"]
    grown = _households(*east, *west, _building("W10", 60, 120.019, 30.002))
    r = rebalance(plan.grids, plan.assignments, grown)
    east_after = r.plan.grids[r.plan.grids["area_code"] == "330803100201"]
    assert sorted(east_after["households"]) == sorted(east_before["households"])
    assert kept["grid_code"].iloc[0] not in r.report["grids_touched"]
    assert r.report["new_households"] == 60
    assert "kept as it was" in str(
        east_after.loc[east_after["households"] < 200, "exception"].iloc[0]
    )
    # ... with the cause generation proved (before: none, and check_plan called
    # the kept grid out of band without a cause)
    assert east_after.loc[east_after["households"] < 200, "cause"].tolist() == [
        "no_in_band_split"
    ]
    kept_entry = [
        e
        for e in r.plan.report["exceptions"]
        if e["grid_code"] == kept["grid_code"].iloc[0] and e["kind"] == "out_of_band"
    ]
    assert [e.get("cause") for e in kept_entry] == ["no_in_band_split"]
    assert check_plan(r.plan, grown, villages) == []
    # a plan that named no cause (e.g. one drawn elsewhere) gives none: no
    # cause is made up for a grid nobody proved anything of
    bare = rebalance(plan.grids.drop(columns="cause"), plan.assignments, grown)
    assert [
        e.get("cause")
        for e in bare.plan.report["exceptions"]
        if e["grid_code"] == kept["grid_code"].iloc[0] and e["kind"] == "out_of_band"
    ] == [None]
    assert {v.rule for v in check_plan(bare.plan, grown, villages)} == {"out_of_band"}


def test_a_building_over_the_band_split_across_grids_stays_in_parts() -> None:
    """In a rebalance a building of 321 households whose halves lie in two grids
    gives two atoms, each a part of a split building, and the building graph of a
    window holding both keeps them as two nodes under the band (before: two plain
    atoms at one point, one node of 321, and every re-cut of the window gave up,
    leaving a Helsinki block out of band without a cause)."""
    from geo.gridding._adjacency import _graph
    from geo.gridding._atoms import _atoms
    from geo.plan import Band

    hh = _households(
        _building("A", 321, 120.008, 30.005),
        _building("B", 104, 120.002, 30.005),
        _building("S", 100, 120.005, 30.002),
    )
    # grid 0 holds A's first 161 and half of S, grid 1 the rest
    pos = ([0] * 161 + [1] * 160) + [1] * 104 + ([0] * 50 + [1] * 50)
    band = Band(200, 300)
    atoms, _ = _atoms(hh, np.asarray(pos), np.ones(len(hh)), band, ["G0", "G1"])
    by_load = sorted((a.load, a.stack >= 0) for a in atoms)
    assert by_load == [
        (50.0, False),
        (50.0, False),
        (104.0, False),
        (160.0, True),
        (161.0, True),
    ]
    g = _graph(
        shapely.box(120.0, 30.0, 120.01, 30.01), list(range(len(atoms))), atoms, 0.866
    )
    assert g is not None
    assert len(g.w) == 4  # A's two parts, B, and S (its halves: one building point)
    assert (g.w <= band.max).all()
