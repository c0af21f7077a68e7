"""Grid polygons: a sliver left by repairing an overlay is not a second part."""

from __future__ import annotations

import numpy as np
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
