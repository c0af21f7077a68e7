"""Grid polygons: a sliver left by repairing an overlay is not a second part."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

import geo.gridding.generate as gen


def test_a_sliver_part_left_by_an_overlay_is_not_a_second_part() -> None:
    """A part under the sliver size (an overlay's leftover at the end of a cut,
    touching the grid at a building point) does not make a grid two parts (nor
    a not_contiguous report)."""
    import geopandas as gpd

    from geo.gridding._geometry import _SLIVER

    # a ring that touches itself at a corner (a cut vertex landing on an edge):
    # repaired, a square and a triangle of ~5e-19 deg² meeting at that point
    ring = [(0, 0), (0.01, 0), (0.01, 0.01), (0.011, 0.01)]
    ring += [(0.011, 0.010000000000001), (0.01, 0.01), (0, 0.01), (0, 0)]
    grid = shapely.Polygon(ring)
    assert not grid.is_valid
    parts = shapely.get_parts(shapely.make_valid(grid))
    assert len(parts) == 2 and 0 < min(shapely.area(parts)) < _SLIVER
    hh = gpd.GeoDataFrame(
        {"household_id": [f"h{i}" for i in range(3)]},
        geometry=shapely.points([0.001, 0.002, 0.003], [0.001, 0.002, 0.003]),
        crs=4326,
    )
    leaf = gpd.GeoDataFrame(
        {"code": ["V1"]}, geometry=[shapely.box(0.0, 0.0, 0.02, 0.02)], crs=4326
    )
    row = {
        "area_code": "V1",
        "areas": "V1",
        "load": 3.0,
        "households": 3,
        "exception": None,
        "geometry": grid,
        "_members": np.arange(3),
        "_unit": "V1",
        "_cause": None,
        "_check": None,
    }
    exceptions: list = []
    grids, _ = gen._finish([row], hh, leaf, 1.0, 2, exceptions)
    assert grids["parts"].tolist() == [1]
    assert not [e for e in exceptions if e["kind"] == "not_contiguous"]


def test_a_repaired_polygon_keeps_its_territory() -> None:
    """A cut that crosses itself, repaired by ``make_valid`` into a collection of
    a multipolygon and a line, keeps both polygons (before, the repair dropped
    the multipolygon: a grid of 279 households with no territory, and a whole
    village in no grid, in the 50,000-household sample county of seed 1)."""
    from geo.gridding._geometry import _poly_only

    # two squares joined by a bow-tie, with a spike back along one edge
    ring = [(0, 0), (1, 0), (2, 1), (2, 0), (3, 0), (3, 1), (2, 1), (1, 1)]
    ring += [(1, 0), (1, 1), (0, 1), (0, 0)]
    fixed = shapely.make_valid(shapely.Polygon(ring))
    assert fixed.geom_type == "GeometryCollection"
    assert {p.geom_type for p in shapely.get_parts(fixed)} >= {"MultiPolygon"}
    kept = _poly_only(fixed)
    assert kept.geom_type == "MultiPolygon"
    assert abs(kept.area - fixed.area) < 1e-12 and kept.area > 1.9
    nested = shapely.GeometryCollection([fixed, shapely.Point(9, 9)])
    assert abs(_poly_only(nested).area - fixed.area) < 1e-12


@pytest.mark.parametrize(
    ("households", "seed"),
    [
        # a merged village group cut by a line that crosses itself: a repair
        # kept only the line, one grid had no territory, a village no grid
        (50_000, 1),
        # a cut's piece scaled back crossing itself a hair's width: repaired by
        # its linework, the ring gained land its neighbours held (overlaps)
        (20_000, 7),
        # a split building's point a hair outside its part: that part is not
        # empty land to pass on with a moved building
        (20_000, 10),
    ],
)
def test_larger_sample_counties_keep_every_rule(households: int, seed: int) -> None:
    """Plans of larger sample counties keep every rule of the validator (each
    case broke one before its fix)."""
    from geo.gridding.checks import check_plan
    from geo.sample import generate_county

    c = generate_county(households, seed=seed)
    plan = gen.generate_grids(c.households, c.areas)
    assert not shapely.is_empty(np.asarray(plan.grids.geometry.values)).any()
    assert check_plan(plan, c.households, c.areas) == []
