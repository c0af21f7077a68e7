"""check_plan: hand-made plans that break each rule once, and plans that keep them all."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from shapely.geometry.base import BaseGeometry

from geo.gridding.checks import RULES, Violation, check_plan
from geo.plan import EXCEPTION_CAUSES, UNRESOLVED, GridPlan

# a small band keeps the hand-made plans small: grids of 2–4 households
BAND = {"min_households": 2, "max_households": 4}
V1 = shapely.box(0.0, 0.0, 0.02, 0.01)  # two grids: west and east halves
V2 = shapely.box(0.02, 0.0, 0.03, 0.01)  # one grid
WEST = shapely.box(0.0, 0.0, 0.01, 0.01)
EAST = shapely.box(0.01, 0.0, 0.02, 0.01)

POINTS = {
    "w1": (0.002, 0.002),
    "w2": (0.004, 0.006),
    "w3": (0.008, 0.008),
    "e1": (0.012, 0.002),
    "e2": (0.015, 0.005),
    "e3": (0.018, 0.009),
    "v1": (0.022, 0.002),
    "v2": (0.025, 0.005),
    "v3": (0.028, 0.007),
}


def _areas(extra: list[tuple[str, BaseGeometry]] | None = None) -> gpd.GeoDataFrame:
    rows = [("T", V1.union(V2), "township", None)]
    rows += [
        (c, g, "village", "T") for c, g in [("V1", V1), ("V2", V2), *(extra or [])]
    ]
    return gpd.GeoDataFrame(
        {
            "code": [r[0] for r in rows],
            "level": [r[2] for r in rows],
            "parent_code": [r[3] for r in rows],
        },
        geometry=[r[1] for r in rows],
        crs=4326,
    )


def _households(points: dict[str, tuple[float, float]] | None = None, **cols: Any):
    pts = points or POINTS
    return gpd.GeoDataFrame(
        {"household_id": list(pts), **cols},
        geometry=[shapely.Point(xy) for xy in pts.values()],
        crs=4326,
    )


def _plan(
    grids: list[tuple[str, BaseGeometry, list[str]]],
    exceptions: list[dict[str, Any]] | None = None,
    *,
    assignments: list[tuple[str, str]] | None = None,
) -> GridPlan:
    frame = gpd.GeoDataFrame(
        {
            "grid_code": [g[0] for g in grids],
            "area_code": [g[0][:2] for g in grids],
            "households": [len(g[2]) for g in grids],
            "load": [float(len(g[2])) for g in grids],
        },
        geometry=[g[1] for g in grids],
        crs=4326,
    )
    pairs = assignments or [(h, g[0]) for g in grids for h in g[2]]
    asg = pd.DataFrame(pairs, columns=["household_id", "grid_code"])
    report = {"params": {"respect_level": "village"}, "exceptions": exceptions or []}
    return GridPlan(grids=frame, assignments=asg, report=report)


CLEAN = [
    ("V101", WEST, ["w1", "w2", "w3"]),
    ("V102", EAST, ["e1", "e2", "e3"]),
    ("V201", V2, ["v1", "v2", "v3"]),
]


def _rules(vs: list[Violation]) -> list[tuple[str | None, str]]:
    return sorted(((v.grid_code, v.rule) for v in vs), key=lambda t: (t[0] or "", t[1]))


def test_a_clean_plan_has_no_violations() -> None:
    assert check_plan(_plan(CLEAN), _households(), _areas(), **BAND) == []


def test_every_rule_is_named() -> None:
    assert set(RULES) >= {
        "out_of_band",
        "invalid_polygon",
        "not_contiguous",
        "overlap",
        "gap",
        "outside_areas",
        "unassigned",
        "assigned_twice",
        "outside_grid",
    }


# --------------------------------------------------------------------------- band


def _small_v2(exceptions: list[dict[str, Any]] | None) -> list[Violation]:
    """V2 with one household: out of band (the band is 2–4)."""
    pts = {k: v for k, v in POINTS.items() if k not in ("v2", "v3")}
    grids = [*CLEAN[:2], ("V201", V2, ["v1"])]
    return check_plan(_plan(grids, exceptions), _households(pts), _areas(), **BAND)


def _entry(**kw: Any) -> dict[str, Any]:
    return {"area_code": "V2", "grid_code": "V201", "kind": "out_of_band", **kw}


def test_out_of_band_without_an_entry() -> None:
    vs = _small_v2(None)
    assert _rules(vs) == [("V201", "out_of_band")]
    assert "1 households, outside 2–4: no exception entry" in vs[0].detail


def test_out_of_band_with_an_entry_but_no_cause() -> None:
    vs = _small_v2([_entry(reason="no straight cut keeps whole buildings")])
    assert _rules(vs) == [("V201", "out_of_band")]
    assert "no cause in its exception entries" in vs[0].detail


def test_out_of_band_unresolved() -> None:
    vs = _small_v2([_entry(cause=UNRESOLVED)])
    assert _rules(vs) == [("V201", "out_of_band")]
    assert "cause unresolved" in vs[0].detail


def test_out_of_band_with_an_unknown_cause() -> None:
    vs = _small_v2([_entry(cause="too_hard")])
    assert _rules(vs) == [("V201", "out_of_band")]
    assert "too_hard" in vs[0].detail


@pytest.mark.parametrize("cause", sorted(EXCEPTION_CAUSES))
def test_out_of_band_with_a_proven_cause(cause: str) -> None:
    assert _small_v2([_entry(cause=cause, check={"households": 1})]) == []


def test_a_proven_cause_next_to_unresolved_proves_nothing() -> None:
    vs = _small_v2([_entry(cause=["infeasible_total", UNRESOLVED])])
    assert _rules(vs) == [("V201", "out_of_band")]


def test_a_cause_for_another_grid_does_not_count() -> None:
    vs = _small_v2([_entry(grid_code="V101", cause="infeasible_total")])
    assert _rules(vs) == [("V201", "out_of_band")]


def test_band_uses_load() -> None:
    plan = _plan(CLEAN)
    plan.grids.loc[0, "load"] = 4.5  # weighted households over the band
    vs = check_plan(plan, _households(), _areas(), **BAND)
    assert _rules(vs) == [("V101", "out_of_band")]


# --------------------------------------------------------------------------- polygons


def test_an_invalid_polygon() -> None:
    # a bow-tie over the west half: self-intersecting
    bowtie = shapely.Polygon([(0, 0), (0.01, 0.01), (0.01, 0), (0, 0.01)])
    grids = [("V101", bowtie, ["w1", "w2", "w3"]), *CLEAN[1:]]
    vs = check_plan(_plan(grids), _households(), _areas(), **BAND)
    assert ("V101", "invalid_polygon") in _rules(vs)
    assert "Self-intersection" in next(
        v.detail for v in vs if v.rule == "invalid_polygon"
    )


def test_an_empty_polygon() -> None:
    grids = [("V101", shapely.Polygon(), ["w1", "w2", "w3"]), *CLEAN[1:]]
    vs = check_plan(_plan(grids), _households(), _areas(), **BAND)
    rules = _rules(vs)
    assert ("V101", "invalid_polygon") in rules
    assert (None, "gap") in rules  # the west half is in no grid
    assert ("V101", "outside_grid") in rules


# --------------------------------------------------------------------------- contiguity

# V1 cut into a west strip + east strip grid and a middle grid: the outer one is
# two pieces inside one village
MIDDLE = shapely.box(0.005, 0.0, 0.015, 0.01)
OUTER = shapely.MultiPolygon(
    [shapely.box(0.0, 0.0, 0.005, 0.01), shapely.box(0.015, 0.0, 0.02, 0.01)]
)
SPLIT = [
    ("V101", OUTER, ["w1", "w2", "e3"]),
    ("V102", MIDDLE, ["w3", "e1", "e2"]),
    CLEAN[2],
]


def test_a_grid_in_two_parts_inside_one_village() -> None:
    vs = check_plan(_plan(SPLIT), _households(), _areas(), **BAND)
    assert _rules(vs) == [("V101", "not_contiguous")]
    assert "2 parts where the areas it covers are 1 piece(s)" in vs[0].detail


def test_an_isolated_piece_explains_two_parts() -> None:
    entry = {"grid_code": "V101", "kind": "not_contiguous", "cause": "isolated_piece"}
    assert check_plan(_plan(SPLIT, [entry]), _households(), _areas(), **BAND) == []


def test_another_cause_does_not_explain_two_parts() -> None:
    entry = {"grid_code": "V101", "kind": "not_contiguous", "cause": "infeasible_total"}
    vs = check_plan(_plan(SPLIT, [entry]), _households(), _areas(), **BAND)
    assert _rules(vs) == [("V101", "not_contiguous")]


def test_a_grid_in_the_pieces_of_a_village_with_an_exclave() -> None:
    """V3 is a main piece and an exclave beyond V2: one grid over both is fine."""
    main, exclave = (
        shapely.box(0.0, 0.01, 0.02, 0.02),
        shapely.box(0.03, 0.0, 0.04, 0.01),
    )
    v3 = shapely.MultiPolygon([main, exclave])
    pts = {**POINTS, "x1": (0.01, 0.015), "x2": (0.035, 0.005), "x3": (0.005, 0.018)}
    areas = _areas([("V3", v3)])
    grids = [*CLEAN, ("V301", v3, ["x1", "x2", "x3"])]
    assert check_plan(_plan(grids), _households(pts), areas, **BAND) == []
    # but two parts inside the main piece are not explained by the exclave
    cut = shapely.MultiPolygon(
        [shapely.box(0.0, 0.01, 0.005, 0.02), shapely.box(0.015, 0.01, 0.02, 0.02)]
    )
    grids = [
        *CLEAN,
        ("V301", cut, ["x3"]),
        (
            "V302",
            shapely.union_all([shapely.box(0.005, 0.01, 0.015, 0.02), exclave]),
            ["x1", "x2"],
        ),
    ]
    vs = check_plan(
        _plan(grids), _households(pts), areas, min_households=1, max_households=4
    )
    assert _rules(vs) == [("V301", "not_contiguous")]


# --------------------------------------------------------------------------- tiling


def test_overlapping_grids() -> None:
    wider = shapely.box(0.0, 0.0, 0.012, 0.01)
    grids = [("V101", wider, ["w1", "w2", "w3"]), *CLEAN[1:]]
    vs = check_plan(_plan(grids), _households(), _areas(), **BAND)
    assert _rules(vs) == [("V101", "overlap")]
    assert "with grid V102" in vs[0].detail


def test_a_gap() -> None:
    narrower = shapely.box(0.0, 0.0, 0.009, 0.01)
    grids = [("V101", narrower, ["w1", "w2", "w3"]), *CLEAN[1:]]
    vs = check_plan(_plan(grids), _households(), _areas(), **BAND)
    assert _rules(vs) == [(None, "gap")]
    assert "of area V1 (5.00%) is in no grid" in vs[0].detail


def test_a_grid_reaching_outside_the_areas() -> None:
    taller = shapely.box(0.02, 0.0, 0.03, 0.011)
    grids = [*CLEAN[:2], ("V201", taller, ["v1", "v2", "v3"])]
    vs = check_plan(_plan(grids), _households(), _areas(), **BAND)
    assert _rules(vs) == [("V201", "outside_areas")]


def test_an_area_without_grid_or_household_need_not_be_covered() -> None:
    far = shapely.box(0.05, 0.0, 0.06, 0.01)
    assert check_plan(_plan(CLEAN), _households(), _areas([("V9", far)]), **BAND) == []


def test_an_area_with_a_household_but_no_grid_is_a_gap() -> None:
    far = shapely.box(0.05, 0.0, 0.06, 0.01)
    pts = {**POINTS, "f1": (0.055, 0.005)}
    vs = check_plan(_plan(CLEAN), _households(pts), _areas([("V9", far)]), **BAND)
    assert _rules(vs) == [(None, "gap"), (None, "unassigned")]
    assert "area V9 (100.00%)" in next(v.detail for v in vs if v.rule == "gap")


def test_a_vertex_on_a_neighbours_edge_is_no_overlap() -> None:
    """Over 0.5°, projecting a straight edge bends it away from a vertex lying on it
    in lon/lat; measured naively in UTM that invents square metres of overlap."""
    big = shapely.box(0.0, 40.0, 0.5, 40.5)
    west = shapely.Polygon(
        [(0, 40), (0.25, 40), (0.25, 40.25), (0.25, 40.5), (0, 40.5)]
    )
    east = shapely.box(0.25, 40.0, 0.5, 40.5)
    areas = gpd.GeoDataFrame(
        {"code": ["V1"], "level": ["village"]}, geometry=[big], crs=4326
    )
    pts = {"a": (0.1, 40.1), "b": (0.1, 40.2), "c": (0.4, 40.1), "d": (0.25, 40.25)}
    grids = [("V101", west, ["a", "b"]), ("V102", east, ["c", "d"])]
    assert check_plan(_plan(grids), _households(pts), areas, **BAND) == []


# --------------------------------------------------------------------------- households


def test_a_household_in_no_grid() -> None:
    pts = {**POINTS, "w4": (0.005, 0.005)}
    vs = check_plan(_plan(CLEAN), _households(pts), _areas(), **BAND)
    assert _rules(vs) == [(None, "unassigned")]
    assert "1 household(s) in no grid: w4" == vs[0].detail


def test_a_household_in_two_grids() -> None:
    pairs = [(h, g[0]) for g in CLEAN for h in g[2]] + [("e1", "V101")]
    vs = check_plan(_plan(CLEAN, assignments=pairs), _households(), _areas(), **BAND)
    rules = _rules(vs)
    assert (None, "assigned_twice") in rules
    assert ("V101", "outside_grid") in rules  # e1 is not in the west half
    assert ("V101", "household_count") in rules  # says 3, 4 assigned


def test_an_unknown_household_and_an_unknown_grid() -> None:
    pairs = [(h, g[0]) for g in CLEAN for h in g[2]] + [("ghost", "V101")]
    pairs[0] = ("w1", "V199")
    vs = check_plan(_plan(CLEAN, assignments=pairs), _households(), _areas(), **BAND)
    assert _rules(vs) == [
        (None, "unknown_household"),  # V101 still counts 3: w2, w3 and the ghost
        ("V199", "unknown_grid"),
    ]


def test_a_household_outside_its_grid() -> None:
    grids = [
        ("V101", WEST, ["w1", "w2", "e1"]),
        ("V102", EAST, ["w3", "e2", "e3"]),
        CLEAN[2],
    ]
    vs = check_plan(_plan(grids), _households(), _areas(), **BAND)
    assert _rules(vs) == [("V101", "outside_grid"), ("V102", "outside_grid")]
    assert vs[0].detail.endswith(": e1") or vs[1].detail.endswith(": e1")


def test_a_household_on_the_edge_of_its_grid() -> None:
    pts = {**POINTS, "e1": (0.01, 0.005)}  # on the line between the halves
    assert check_plan(_plan(CLEAN), _households(pts), _areas(), **BAND) == []
    grids = [
        ("V101", WEST, ["w1", "w2", "w3", "e1"]),
        ("V102", EAST, ["e2", "e3"]),
        CLEAN[2],
    ]
    assert check_plan(_plan(grids), _households(pts), _areas(), **BAND) == []


def test_a_building_split_between_grids() -> None:
    grids = [
        ("V101", WEST, ["w1", "w2", "w3"]),
        ("V102", EAST, ["e1", "e2", "e3"]),
        CLEAN[2],
    ]
    b = ["B1", "B2", "B3", "B3", "B5", "B6", "B7", "B8", "B9"]  # w3 and e1 share B3
    vs = check_plan(_plan(grids), _households(building_id=b), _areas(), **BAND)
    assert _rules(vs) == [("V101", "building_split")]
    assert vs[0].detail == "building B3 (2 households) spread over grids V101, V102"
    # a building larger than a grid may be split (building_over_max)
    big = ["B1"] * 5 + ["B6", "B7", "B8", "B9"]
    vs = check_plan(_plan(grids), _households(building_id=big), _areas(), **BAND)
    assert vs == []


# --------------------------------------------------------------------------- real plans


def test_a_generated_sample_county_keeps_every_rule() -> None:
    from geo.gridding.generate import generate_grids
    from geo.sample import generate_county

    c = generate_county(6_000, seed=3)
    plan = generate_grids(c.households, c.areas)
    assert plan.report["metrics"]["in_band_share"] == 1.0
    assert check_plan(plan, c.households, c.areas) == []
    # and the checker does see a broken copy of it
    g = plan.grids.copy()
    g.loc[0, "geometry"] = g.geometry.iloc[0].buffer(0.001)
    vs = check_plan(GridPlan(g, plan.assignments, plan.report), c.households, c.areas)
    assert {v.rule for v in vs} >= {"overlap"}
    assert all(
        v.grid_code in (None, g["grid_code"].iloc[0]) or v.rule == "overlap" for v in vs
    )


def _drifted(seed: int) -> tuple[Any, gpd.GeoDataFrame, Any]:
    """A sample county, a plan drawn without a random 5 % of its households."""
    import numpy as np

    from geo.gridding.generate import generate_grids
    from geo.sample import generate_county

    county = generate_county(6_000, seed=seed)
    hh = county.households.reset_index(drop=True)
    later = np.random.default_rng(seed).random(len(hh)) < 0.05
    return county, hh, generate_grids(hh[~later], county.areas), later


def test_geos_misreading_a_union_is_no_gap() -> None:
    """Here GEOS intersects village 330803100209 with the union of all grids and
    returns nothing (a robustness fault); a naive check saw two villages uncovered."""
    county, hh, plan, later = _drifted(4)
    assert check_plan(plan, hh[~later], county.areas) == []


def test_generated_split_building_households_lie_in_their_grid() -> None:
    county, hh, plan, later = _drifted(5)
    assert check_plan(plan, hh[~later], county.areas) == []


def test_a_rebalanced_sample_county_keeps_every_rule() -> None:
    from geo.gridding.rebalance import rebalance

    county, hh, plan, _ = _drifted(4)
    r = rebalance(plan.grids, plan.assignments, hh)
    assert check_plan(r.plan, hh, county.areas) == []
