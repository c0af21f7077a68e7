"""Stranded buildings (geo.gridding._adjacency._stranded): a building under the band
that borders only buildings too heavy to join it proves ``no_connected_split``.
Checked against brute force over every set partition of small graphs, and end to
end, with the counter-example that removes the proof (issue 24)."""

from __future__ import annotations

import itertools

import geopandas as gpd
import numpy as np
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from samples import connected_split_counts

from geo.gridding._adjacency import _Graph, _stranded
from geo.gridding.checks import check_plan
from geo.gridding.generate import generate_grids


def _g(loads: list[float], edges: list[tuple[int, int]]) -> _Graph:
    n = len(loads)
    eu = np.array([a for a, _ in edges], dtype=np.int64)
    ev = np.array([b for _, b in edges], dtype=np.int64)
    return _Graph(
        keys=[(float(i), 0.0) for i in range(n)],
        groups=[[i] for i in range(n)],
        w=np.asarray(loads, dtype=float),
        regions=[[] for _ in range(n)],
        area=np.ones(n),
        perim=np.ones(n),
        eu=eu,
        ev=ev,
        elen=np.ones(len(edges)),
        virtual=np.zeros(len(edges), dtype=bool),
    )


def test_a_light_building_among_heavy_ones_is_stranded() -> None:
    # 28 households (half of a building of 56), beside its other half and 40s
    g = _g([28, 28, 40, 45], [(0, 1), (0, 2), (1, 3), (0, 3)])
    out = _stranded(g, 30, 50)
    assert [(s["load"], s["joins"]) for s in out] == [
        (28.0, [28.0, 40.0, 45.0]),
        (28.0, [28.0, 45.0]),
    ]


def test_a_light_neighbour_or_one_across_empty_cells_frees_it() -> None:
    assert _stranded(_g([28, 40, 20], [(0, 1), (0, 2)]), 30, 50) == []
    # 28 - empty - empty - 20: a grid can reach the 20 across the empty cells
    assert (
        _stranded(_g([28, 0, 0, 20, 40], [(0, 1), (1, 2), (2, 3), (0, 4)]), 30, 50)
        == []
    )
    # but not across a building: 28 - 40 - 20
    assert len(_stranded(_g([28, 40, 20], [(0, 1), (1, 2)]), 30, 50)) == 2


def test_a_light_building_alone_is_stranded_and_an_in_band_one_never() -> None:
    assert [s["joins"] for s in _stranded(_g([12, 0], [(0, 1)]), 30, 50)] == [[]]
    assert _stranded(_g([30, 50, 31], [(0, 1), (1, 2)]), 30, 50) == []


@st.composite
def _graphs(draw):
    """Connected graphs of 2–8 nodes, loads 0–260 (a third empty), band 200–300."""
    n = draw(st.integers(2, 8))
    loads = draw(
        st.lists(st.one_of(st.just(0), st.integers(1, 260)), min_size=n, max_size=n)
    )
    perm = draw(st.permutations(list(range(n))))
    edges = {(min(a, b), max(a, b)) for a, b in itertools.pairwise(perm)}
    extra = draw(
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=6)
    )
    edges |= {(min(a, b), max(a, b)) for a, b in extra if a != b}
    return loads, sorted(edges)


@settings(max_examples=400, deadline=None)
@given(_graphs())
def test_a_stranded_building_means_no_connected_in_band_split(graph) -> None:
    """Soundness: whenever a building is stranded, brute force over every set
    partition finds no split into connected parts of 200–300."""
    loads, edges = graph
    if _stranded(_g(loads, edges), 200, 300):
        assert connected_split_counts(tuple(loads), frozenset(edges)) == set()


def _estate(
    centre: int, light: tuple[tuple[int, int], ...]
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """A village with a 3 x 3 block of apartment buildings: the centre one of
    ``centre`` households, those at ``light`` of 20, the others of 40."""
    village = gpd.GeoDataFrame(
        {"code": ["V1"]}, geometry=[shapely.box(0, 0, 0.003, 0.003)], crs=4326
    )
    rows = []
    for i, j in itertools.product(range(3), range(3)):
        n = centre if (i, j) == (1, 1) else 20 if (i, j) in light else 40
        for h in range(n):
            rows.append(
                {
                    "household_id": f"H-{i}{j}-{h:03d}",
                    "building_id": f"B-{i}{j}",
                    "unit": f"{h // 10 + 1}单元",
                    "geometry": shapely.Point(0.0005 + 0.001 * i, 0.0005 + 0.001 * j),
                }
            )
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=4326), village


def test_generation_proves_a_stranded_building() -> None:
    """A building of 56 households, split by unit into two halves of 28, amid
    buildings of 40 (band 30–50), with a building of 20 at a corner: the halves
    could be grouped in band with the 20 (28 + 20), but the corner's cell meets
    the centre's at a point only, so each half is stranded (and the 20, beside
    40s only, too). The grids holding
    them are out of band with ``no_connected_split`` and the proof in the check,
    and the plan keeps every rule."""
    hh, village = _estate(56, ((0, 0),))
    plan = generate_grids(hh, village, min_households=30, max_households=50)
    out = [e for e in plan.report["exceptions"] if e["kind"] == "out_of_band"]
    assert out
    for e in out:
        assert e["cause"] == "no_connected_split"
        assert e["check"]["proof"] == "stranded_building"
        # the halves, and the corner 20 itself (beside 40s only)
        stuck = {s["load"]: s["joins"] for s in e["check"]["cells"]}
        assert set(stuck) == {20.0, 28.0}
        assert 20.0 not in stuck[28.0] and min(stuck[28.0]) + 28 > 50
        assert "borders only buildings of" in e["reason"]
    assert check_plan(plan, hh, village, min_households=30, max_households=50) == []


def test_a_light_building_beside_each_half_puts_the_block_in_band() -> None:
    """The counter-example: buildings of 20 beside the centre (sharing an edge of
    cells) on two sides: nothing is stranded and every grid is in band."""
    hh, village = _estate(56, ((0, 1), (2, 1)))
    plan = generate_grids(hh, village, min_households=30, max_households=50)
    assert plan.report["metrics"]["in_band_share"] == 1.0
    assert check_plan(plan, hh, village, min_households=30, max_households=50) == []
