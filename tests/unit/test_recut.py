"""Re-cutting on the building graph: in band, one piece, valid and tiling where greedy
cutting gives up (issue 11, items 3 and 4)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import geo.gridding._cpsat as _cpsat
import geo.gridding._recut as recut
from geo.gridding._atoms import _Atom, _Unit
from geo.gridding._cuts import _partition
from geo.gridding._exact import _exact_partition, _split_exists
from geo.gridding._recut import _recut_pieces
from geo.gridding.generate import generate_grids
from geo.gridding.rebalance import rebalance
from geo.plan import Band

LO, HI = 200, 300

#: generous cap for tests (the machine may be busy); the cap is not what is tested
TEST_CAP_S = 60.0


@pytest.fixture(autouse=True)
def _generous_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recut, "RECUT_CAP_S", TEST_CAP_S)


def buildings(
    xy: list[tuple[float, float]], sizes: list[int], prefix: str = "b"
) -> gpd.GeoDataFrame:
    """Households of buildings (``sizes[i]`` households at ``xy[i]``)."""
    rows = [
        (f"{prefix}{b}-{m}", f"{prefix}{b}", x, y)
        for b, ((x, y), n) in enumerate(zip(xy, sizes, strict=True))
        for m in range(n)
    ]
    return gpd.GeoDataFrame(
        {"household_id": [r[0] for r in rows], "building_id": [r[1] for r in rows]},
        geometry=shapely.points([r[2] for r in rows], [r[3] for r in rows]),
        crs=4326,
    )


def blocks(
    rng: np.random.Generator,
    nx: int,
    ny: int,
    size: float,
    sizes_fn,
    shape: shapely.Geometry | None = None,
) -> gpd.GeoDataFrame:
    """Buildings in square blocks, each block's total in band: an in-band
    contiguous partition exists by construction (the blocks)."""
    xy, sizes = [], []
    for i in range(nx):
        for j in range(ny):
            box = shapely.box(i * size, j * size, (i + 1) * size, (j + 1) * size)
            if shape is not None and not shape.contains(box.centroid):
                continue
            for n in sizes_fn(rng):
                xy.append(
                    (
                        rng.uniform((i + 0.05) * size, (i + 0.95) * size),
                        rng.uniform((j + 0.05) * size, (j + 0.95) * size),
                    )
                )
                sizes.append(n)
    return buildings(xy, sizes)


def big(rng: np.random.Generator) -> list[int]:
    """One building of 200–290, or one of 150–199 with a small one beside it."""
    if rng.random() < 0.5:
        return [int(rng.integers(200, 291))]
    a = int(rng.integers(150, 200))
    return [a, int(rng.integers(200 - a, 301 - a))]


def dense(rng: np.random.Generator) -> list[int]:
    """Buildings of 40–120 households adding up to 200–300."""
    while True:
        s: list[int] = []
        while sum(s) < 200:
            s.append(int(rng.integers(40, 121)))
        if sum(s) <= 300:
            return s


def village(poly: shapely.Geometry) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"code": ["V1"]}, geometry=[poly], crs=4326)


def assert_tiles(grids: gpd.GeoDataFrame, unit: shapely.Geometry) -> None:
    geoms = np.asarray(grids.geometry.values, dtype=object)
    assert shapely.is_valid(geoms).all()
    union = shapely.union_all(geoms)
    assert shapely.symmetric_difference(union, unit).area < 1e-10
    assert abs(shapely.area(geoms).sum() - union.area) < 1e-10


def assert_good(plan, unit: shapely.Geometry) -> None:
    g = plan.grids
    assert g["load"].between(LO, HI).all(), sorted(g["load"])
    assert (g["parts"] == 1).all(), g.loc[g["parts"] > 1, ["grid_code", "parts"]]
    assert_tiles(g, unit)


def test_buildings_of_150_to_290_households() -> None:
    unit = shapely.box(0, 0, 0.016, 0.012)
    hh = blocks(np.random.default_rng(3), 4, 3, 0.004, big)
    assert_good(generate_grids(hh, village(unit)), unit)


def test_dense_blocks_of_40_to_120_household_buildings() -> None:
    unit = shapely.box(0, 0, 0.010, 0.008)
    hh = blocks(np.random.default_rng(4), 5, 4, 0.002, dense)
    assert_good(generate_grids(hh, village(unit)), unit)


def test_long_thin_valley() -> None:
    """A 20:1 valley with buildings of up to 120 households along it."""
    unit = shapely.box(0, 0, 0.040, 0.002)
    hh = blocks(np.random.default_rng(5), 20, 1, 0.002, dense)
    assert_good(generate_grids(hh, village(unit)), unit)


def test_u_shaped_unit_is_cut_into_one_piece_grids() -> None:
    """A U of big buildings: a straight cut across the U left a grid in two
    pieces (in band, but not contiguous) before the re-cut."""
    u = shapely.union_all(
        [
            shapely.box(0, 0, 0.012, 0.004),
            shapely.box(0, 0, 0.004, 0.012),
            shapely.box(0.008, 0, 0.012, 0.012),
        ]
    )
    rng = np.random.default_rng(0)
    # the same draws as the case found by search (earlier layouts consume the rng)
    blocks(rng, 4, 3, 0.004, big)
    blocks(rng, 5, 4, 0.002, dense)
    blocks(rng, 20, 1, 0.002, dense)
    hh = blocks(rng, 3, 3, 0.004, big, shape=u)
    assert_good(generate_grids(hh, village(u)), u)


def test_l_shaped_unit() -> None:
    unit = shapely.union_all(
        [shapely.box(0, 0, 0.016, 0.004), shapely.box(0, 0, 0.004, 0.016)]
    )
    hh = blocks(np.random.default_rng(6), 4, 4, 0.004, big, shape=unit)
    assert_good(generate_grids(hh, village(unit)), unit)


def _atoms_of(xy: np.ndarray, sizes: list[int]) -> list[_Atom]:
    out, start = [], 0
    for (x, y), n in zip(xy, sizes, strict=True):
        out.append(_Atom(float(x), float(y), float(n), n, np.arange(start, start + n)))
        start += n
    return out


def test_out_of_band_pieces_are_re_cut_in_band_and_tile_the_unit() -> None:
    """A bad start (a straight cut leaving 120 | 480 households): the window
    re-cut finds three contiguous in-band grids that tile the unit exactly."""
    rng = np.random.default_rng(1)
    unit = shapely.box(0, 0, 0.01, 0.005)
    xy = np.column_stack([rng.uniform(0, 0.01, 60), rng.uniform(0, 0.005, 60)])
    sizes = [10] * 60
    atoms = _atoms_of(xy, sizes)
    order = np.argsort(xy[:, 0])
    left, right = order[:12].tolist(), order[12:].tolist()
    cut_x = (xy[order[11], 0] + xy[order[12], 0]) / 2
    pieces = [
        (shapely.box(0, 0, cut_x, 0.005), left),
        (shapely.box(cut_x, 0, 0.01, 0.005), right),
    ]
    out = _recut_pieces(unit, pieces, atoms, Band(LO, HI, 250), 1.0)
    loads = sorted(sum(atoms[a].load for a in m) for _, m in out)
    assert all(LO <= v <= HI for v in loads), loads
    assert sorted(a for _, m in out for a in m) == list(range(60))
    grids = gpd.GeoDataFrame(geometry=[g for g, _ in out])
    assert (grids.geometry.apply(lambda g: len(shapely.get_parts(g))) == 1).all()
    assert_tiles(grids, unit)


def test_a_building_no_in_band_set_can_hold_is_proven_not_searched() -> None:
    """Three buildings of 170 (510 households: two grids by the total, but no set
    of whole buildings totals 200–300): a subset-sum proves it, and the grid
    holding such a building says so (not a timeout)."""
    xy = np.array([[0.001, 0.001], [0.005, 0.001], [0.009, 0.001]])
    atoms = _atoms_of(xy, [170, 170, 170])
    u = _Unit(codes=["V1"], parent=None, geom=shapely.box(0, 0, 0.01, 0.002))
    u.atoms, u.load, u.count = [0, 1, 2], 510.0, 510
    notes: dict = {}
    pieces = _partition(u, atoms, Band(LO, HI, 250), 1.0, notes=notes)
    assert sorted(a for _, m in pieces for a in m) == [0, 1, 2]
    assert notes["_proof"]["building_loads"] == [170.0]
    assert "_cause" not in notes
    hh = buildings(xy.tolist(), [170, 170, 170])
    plan = generate_grids(hh, village(shapely.box(0, 0, 0.01, 0.002)))
    causes = {e["cause"] for e in plan.report["exceptions"] if e.get("cause")}
    assert causes == {"no_in_band_grouping"}, plan.report["exceptions"]


def test_buildings_no_grouping_can_split_in_band_are_proven() -> None:
    """Buildings of 150, 150 and 100 (400 households: two grids by the total, and
    every building is in some in-band set, but no grouping of all three is in
    band): the exact method proves it (no tree search runs to its cap), and the
    notes carry the loads and the groups it tried."""
    xy = np.array([[0.001, 0.001], [0.005, 0.001], [0.009, 0.001]])
    atoms = _atoms_of(xy, [150, 150, 100])
    u = _Unit(codes=["V1"], parent=None, geom=shapely.box(0, 0, 0.01, 0.002))
    u.atoms, u.load, u.count = [0, 1, 2], 400.0, 400
    notes: dict = {}
    pieces = _partition(u, atoms, Band(LO, HI, 250), 1.0, notes=notes)
    assert sorted(a for _, m in pieces for a in m) == [0, 1, 2]
    cause, check = notes["_cause"]
    assert cause == "no_in_band_split"
    assert check["building_loads"] == [150.0, 150.0, 100.0]
    assert check["groups_tried"] >= 1 and check["cap_exact_steps"] > 0


def test_search_cap_is_reported_as_search_timed_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Buildings of 120, 100, 80 and 100 in a row (400 households: in band only as
    120+80 and 100+100, which no straight cut gives): with every search capped
    at next to nothing, the grids left out of band carry the caps (steps,
    seconds, trees, exact steps) for the report, and claim no proof."""
    monkeypatch.setattr(recut, "RECUT_STEPS", 1)
    monkeypatch.setattr(recut, "TREE_TRIES", 0)
    monkeypatch.setattr(recut, "EXACT_STEPS", 1)
    monkeypatch.setattr(_cpsat, "CPSAT_DET_TIME", 1e-9)
    xy = np.array([[0.001, 0.001], [0.004, 0.001], [0.006, 0.001], [0.009, 0.001]])
    atoms = _atoms_of(xy, [120, 100, 80, 100])
    u = _Unit(codes=["V1"], parent=None, geom=shapely.box(0, 0, 0.01, 0.002))
    u.atoms, u.load, u.count = [0, 1, 2, 3], 400.0, 400
    notes: dict = {}
    pieces = _partition(u, atoms, Band(LO, HI, 250), 1.0, notes=notes)
    assert sorted(a for _, m in pieces for a in m) == [0, 1, 2, 3]
    cause, check = notes["_cause"]
    assert cause == "search_timed_out"
    assert check["cap_steps"] == 1 and check["cap_s"] == TEST_CAP_S
    assert check["cap_trees"] == 0 and check["cap_exact_steps"] == 1
    assert check["cap_cpsat_det_time"] == 1e-9 and check["cpsat"]["rim"] == "unknown"


def test_the_same_row_uncapped_is_cut_in_band() -> None:
    """The row above with the caps as shipped: the exact method (or the trees on
    the rim graph) finds 120+80 | 100+100, both grids one piece."""
    xy = np.array([[0.001, 0.001], [0.004, 0.001], [0.006, 0.001], [0.009, 0.001]])
    hh = buildings(xy.tolist(), [120, 100, 80, 100])
    unit = shapely.box(0, 0, 0.01, 0.002)
    plan = generate_grids(hh, village(unit))
    assert_good(plan, unit)
    assert sorted(plan.grids["load"]) == [200, 200]


#: six buildings whose only in-band split (three grids of 200) pairs each with the
#: third one on: 92+108, 75+125, 123+77; no set of them totals 300
_INTERLEAVED = [92, 75, 123, 108, 125, 77]


def test_a_split_no_connected_grids_can_make_is_proven(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The six in a row, in a strip: the buildings can be grouped in band, but
    the groups interleave, and three grids cannot each reach its pair past the
    others, even round them along the rim. The integer model proves it on both
    graphs; the exact search, run to its end on each graph with no run of the
    rim contracted, agrees; the grid says ``no_connected_split`` with its
    check."""
    graphs: list = []
    found = recut._cpsat_found

    def spy(gs, *a, **kw):
        graphs.append(gs)
        return found(gs, *a, **kw)

    monkeypatch.setattr(recut, "_cpsat_found", spy)
    unit = shapely.box(0, 0, 0.012, 0.002)
    xy = [(0.001 + 0.002 * i, 0.001) for i in range(6)]
    plan = generate_grids(buildings(xy, _INTERLEAVED), village(unit))
    outs = [e for e in plan.report["exceptions"] if e.get("kind") == "out_of_band"]
    assert outs and {e["cause"] for e in outs} == {"no_connected_split"}, outs
    check = outs[0]["check"]
    assert check["grid_counts"] == [2, 3] and check["buildings"] == 6
    assert check["cpsat"] == {"graph": "infeasible", "rim": "infeasible"}
    assert check["solver"].startswith("OR-Tools CP-SAT")
    assert "cannot be split into connected grids of 200–300" in outs[0]["reason"]
    assert _split_exists(np.array(_INTERLEAVED), Band(LO, HI))[0] is True
    for g in graphs[0]:
        ex = _exact_partition(g, Band(LO, HI), steps=10**7)
        assert ex.exhausted and ex.parts is None, len(g.w)
    assert (plan.grids["parts"] == 1).all()
    assert_tiles(plan.grids, unit)


def test_the_same_buildings_with_each_pair_side_by_side_are_in_band() -> None:
    """Counter-example: the six reordered so each pair stands together."""
    a, b, c, d, e, f = _INTERLEAVED
    unit = shapely.box(0, 0, 0.012, 0.002)
    xy = [(0.001 + 0.002 * i, 0.001) for i in range(6)]
    plan = generate_grids(buildings(xy, [a, d, b, e, c, f]), village(unit))
    assert_good(plan, unit)
    assert sorted(plan.grids["load"]) == [200, 200, 200]


@st.composite
def building_sets(draw, knife_edge: bool = False):
    """Random buildings (1–35 households) in a box or an L, the total feasible
    (with ``knife_edge``: exactly k·200, the first building topped up)."""
    shape = draw(st.sampled_from(["box", "L"]))
    n = draw(st.integers(12, 30) if knife_edge else st.integers(20, 120))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    unit = (
        shapely.box(0, 0, 0.01, 0.006)
        if shape == "box"
        else shapely.union_all(
            [shapely.box(0, 0, 0.01, 0.003), shapely.box(0, 0, 0.003, 0.01)]
        )
    )
    xy: list[tuple[float, float]] = []
    while len(xy) < n:
        x, y = rng.uniform(0, 0.01), rng.uniform(0, 0.01)
        if unit.contains(shapely.Point(x, y)):
            xy.append((x, y))
    sizes = rng.integers(1, 36, n).tolist()
    total = sum(sizes)
    k_min, k_max = -(-total // HI), total // LO
    topped = k_min > k_max or total < LO or knife_edge
    if knife_edge:
        sizes[0] += -(-total // LO) * LO - total
    elif topped:
        # top up the first building until the total is feasible: exactly k·200,
        # the knife edge where every grid must hold exactly 200
        need = max(LO, k_min * LO) - total
        sizes[0] += max(0, need)
    return unit, xy, sizes, topped


def _building_case(case) -> tuple[shapely.Geometry, gpd.GeoDataFrame] | None:
    unit, xy, sizes, _ = case
    sizes = [min(s, 35) if i else s for i, s in enumerate(sizes)]
    total = sum(sizes)
    if -(-total // HI) > total // LO:
        return None  # (the cap on the first building made the total infeasible)
    return unit, buildings(xy, sizes)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(building_sets().filter(lambda c: not c[3]))
def test_random_small_buildings_always_in_band_one_piece_tiling(case) -> None:
    made = _building_case(case)
    if made is None:
        return
    unit, hh = made
    assert_good(generate_grids(hh, village(unit)), unit)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(building_sets(knife_edge=True))
def test_knife_edge_totals_are_in_band_or_honestly_capped(case) -> None:
    """Totals of exactly k·200 (every grid must hold exactly 200): once a known gap
    of the re-cut (issue #11). Whole-building subsets of exactly 200 exist, but the
    contiguous ones may need a grid to reach past the other's buildings; the
    integer model finds those or proves there are none, within its cap. Every
    grid tiles and is one piece, and a grid out of band says why (a proof: no
    in-band grouping, or none into connected grids on either graph) or that a
    search was capped: never a false cause, never "unresolved"."""
    made = _building_case(case)
    if made is None:
        return
    unit, hh = made
    plan = generate_grids(hh, village(unit))
    g = plan.grids
    assert (g["parts"] == 1).all()
    assert_tiles(g, unit)
    out = {e["grid_code"]: e for e in plan.report["exceptions"] if e.get("cause")}
    loads = sorted(hh.groupby("building_id").size().astype(float), reverse=True)
    for code in g.loc[~g["load"].between(LO, HI), "grid_code"]:
        cause, check = out[code]["cause"], out[code]["check"]
        assert cause in (
            "search_timed_out",
            "no_in_band_split",
            "no_connected_split",
        ), out.get(code)
        if cause == "no_in_band_split":
            # the proof is about this map: its buildings' loads, none can split
            assert check["building_loads"] == loads
            assert _split_exists(np.array(loads), Band(LO, HI))[0] is False
        elif cause == "no_connected_split":
            # the integer model proved it on both graphs, every count
            assert check["building_loads"] == loads
            assert check["cpsat"] == {"graph": "infeasible", "rim": "infeasible"}
        else:
            assert check["cap_steps"] > 0 and check["cap_exact_steps"] > 0


# ---- rebalancing ---------------------------------------------------------------


def _small_buildings(rng: np.random.Generator, n: int, box: tuple) -> tuple[list, list]:
    x0, y0, x1, y1 = box
    xy = list(zip(rng.uniform(x0, x1, n), rng.uniform(y0, y1, n), strict=True))
    return xy, rng.integers(1, 12, n).tolist()


def _corner_growth() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, shapely.Geometry]:
    rng = np.random.default_rng(11)
    unit = shapely.box(0, 0, 0.02, 0.02)
    xy, sizes = _small_buildings(rng, 500, (0, 0, 0.02, 0.02))
    before = buildings(xy, sizes)
    # growth concentrated in one corner: many new households in the south-west
    nxy, nsizes = _small_buildings(rng, 90, (0, 0, 0.004, 0.004))
    grown = pd.concat([before, buildings(nxy, nsizes, prefix="n")], ignore_index=True)
    return before, gpd.GeoDataFrame(grown, crs=4326), unit


def test_growth_in_one_corner_rebalances_in_band_one_piece_tiling() -> None:
    before, grown, unit = _corner_growth()
    plan = generate_grids(before, village(unit))
    assert plan.report["metrics"]["in_band_share"] == 1.0
    r = rebalance(plan.grids, plan.assignments, grown)
    g = r.plan.grids
    assert g["load"].between(LO, HI).all(), sorted(g["load"])
    assert (g["parts"] == 1).all()
    assert_tiles(g, unit)
    rep = r.report
    assert rep["moved_households"] >= rep["lower_bound"]
    assert "recuts" in rep
    # changes.csv keeps its contract
    assert list(r.changes.columns) == ["household_id", "old_grid_code", "new_grid_code"]


def test_locked_neighbours_never_change() -> None:
    before, grown, unit = _corner_growth()
    plan = generate_grids(before, village(unit))
    # lock the grids around the corner grid that receives the growth
    corner = plan.grids.loc[plan.grids.geometry.intersects(shapely.Point(0.001, 0.001))]
    code = corner["grid_code"].iloc[0]
    geom = corner.geometry.iloc[0]
    nb = plan.grids[
        plan.grids.geometry.intersects(geom) & (plan.grids["grid_code"] != code)
    ]
    locked = nb["grid_code"].tolist()[:2]
    r = rebalance(plan.grids, plan.assignments, grown, locked=locked)
    g = r.plan.grids.set_index("grid_code")
    old = plan.grids.set_index("grid_code")
    a_old = plan.assignments.groupby("grid_code")["household_id"].apply(set)
    a_new = r.plan.assignments.groupby("grid_code")["household_id"].apply(set)
    for c in locked:
        assert g.loc[c].geometry.equals(old.loc[c].geometry)
        assert a_new[c] == a_old[c]
    out = g[~g["load"].between(LO, HI)]
    causes = {
        e["grid_code"]: e.get("cause")
        for e in r.plan.report["exceptions"]
        if e["kind"] == "out_of_band"
    }
    for c in out.index:
        assert causes[c] in {"locked", "infeasible_total"}, (c, causes[c])
    assert (g["parts"] == 1).all()
    assert_tiles(r.plan.grids, unit)


# ---- Liechtenstein --------------------------------------------------------------

#: OSM building types taken as homes (besides ``yes``: OSM's "some building")
RESIDENTIAL = {
    "house",
    "detached",
    "semidetached_house",
    "terrace",
    "bungalow",
    "farm",
    "apartments",
    "residential",
    "dormitory",
    "yes",
}


def liechtenstein_building_households(real_data: Path) -> gpd.GeoDataFrame:
    """Households estimated per building, one row per household.

    Residential-looking buildings (``building`` in :data:`RESIDENTIAL`, which
    includes the untyped ``yes``) hold ``building:flats`` households where mapped
    (not in this extract), else round(``building:levels`` (1 where unmapped) ×
    footprint m² / 100), at least 1 and at most 35 (the largest building the
    issue quotes); other buildings (garages, sheds, industry …) hold none. About
    33,800 households in 16,600 buildings.
    """
    from geo.io import read_table

    b = read_table(real_data / "buildings.parquet").reset_index(drop=True)
    area = b.to_crs(2056).area.to_numpy()
    levels = pd.to_numeric(b["building:levels"], errors="coerce").to_numpy()
    flats = pd.to_numeric(b["building:flats"], errors="coerce").to_numpy()
    levels = np.where(np.isnan(levels), 1.0, levels)
    est = np.where(np.isnan(flats), np.round(levels * area / 100), flats)
    home = b["building"].isin(RESIDENTIAL).to_numpy()
    n = np.where(home, np.clip(est, 1, 35), 0).astype(int)
    bid = (b["osm_type"] + "/" + b["id"].astype(str)).to_numpy()
    rep = np.repeat(np.arange(len(b)), n)
    k = np.concatenate([np.arange(m) for m in n if m])
    return gpd.GeoDataFrame(
        {
            "household_id": [f"{bid[i]}#{j}" for i, j in zip(rep, k, strict=True)],
            "building_id": bid[rep],
        },
        geometry=b.geometry.representative_point().values[rep],
        crs=b.crs,
    )


def _feasible(n: float) -> bool:
    return -(-n // HI) <= n // LO


@pytest.mark.slow
def test_liechtenstein_buildings_generate_in_band(real_data: Path) -> None:
    from real_sets import liechtenstein_areas

    areas = liechtenstein_areas(real_data)
    hh = liechtenstein_building_households(real_data)
    assert hh.groupby("building_id").size().max() == 35
    plan = generate_grids(hh, areas)
    g = plan.grids
    units = g.groupby("areas")["load"].sum()
    for codes, grids in g.groupby("areas"):
        if _feasible(units[codes]):
            assert grids["load"].between(LO, HI).all(), (codes, sorted(grids["load"]))
    assert shapely.is_valid(np.asarray(g.geometry.values, dtype=object)).all()


@pytest.mark.slow
def test_liechtenstein_drift_rebalances_in_band(real_data: Path) -> None:
    """Without 10 % of the buildings, then with them: the rebalanced plan is in
    band, valid, and no grid is newly in pieces outside municipalities that are
    themselves in pieces (exclaves)."""
    from real_sets import liechtenstein_areas

    areas = liechtenstein_areas(real_data)
    hh = liechtenstein_building_households(real_data)
    bids = hh["building_id"].unique()
    rng = np.random.default_rng(2024)
    later = hh["building_id"].isin(set(bids[rng.random(len(bids)) < 0.10])).to_numpy()
    plan = generate_grids(hh[~later], areas)
    r = rebalance(plan.grids, plan.assignments, hh)
    g = r.plan.grids
    assert g["load"].between(LO, HI).all(), sorted(g["load"])
    assert shapely.is_valid(np.asarray(g.geometry.values, dtype=object)).all()
    parts0 = dict(zip(plan.grids["grid_code"], plan.grids["parts"], strict=True))
    newly = g[
        [p > parts0.get(c, 1) for c, p in zip(g["grid_code"], g["parts"], strict=True)]
    ]
    exclaves = set(areas.loc[areas.geometry.geom_type == "MultiPolygon", "code"])
    assert set(newly["area_code"]) <= exclaves, newly[["grid_code", "parts"]]
    rep = r.report
    # 1.45x since over-full grids are split before flows spread their surplus
    assert rep["moved_households"] <= 2 * rep["lower_bound"]
