"""A village in pieces: its household-less exclaves go to one grid, not to many."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

from geo.gridding.checks import check_plan
from geo.gridding.generate import generate_grids

LO, HI = 200, 300


def _village(pieces: list[shapely.Polygon]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "code": ["T1", "V1"],
            "name": ["某镇", "某村"],
            "level": ["township", "village"],
            "parent_code": [None, "T1"],
        },
        geometry=[shapely.box(-0.02, -0.01, 0.05, 0.02), shapely.MultiPolygon(pieces)],
        crs=4326,
    )


def _households(
    n: int, box: tuple[float, float, float, float], seed: int
) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    x = rng.uniform(box[0], box[2], n)
    y = rng.uniform(box[1], box[3], n)
    return gpd.GeoDataFrame(
        {
            "household_id": [f"h{i}" for i in range(n)],
            "building_id": [f"b{i}" for i in range(n)],
            "address": [f"某镇某村{i + 1}号" for i in range(n)],
        },
        geometry=shapely.points(x, y),
        crs=4326,
    )


def test_empty_exclaves_at_both_ends_go_to_one_grid() -> None:
    """Two household-less exclaves, one beyond each end of the main piece: the
    nearest-building rule would give one to each end's grid (two grids in
    pieces); they go to one grid, and the plan passes check_plan."""
    main = shapely.box(0.0, 0.0, 0.03, 0.01)
    west, east = (
        shapely.box(-0.015, 0.0, -0.01, 0.01),
        shapely.box(0.04, 0.0, 0.045, 0.01),
    )
    areas = _village([main, west, east])
    hh = _households(750, (0.001, 0.001, 0.029, 0.009), seed=7)
    plan = generate_grids(hh, areas, min_households=LO, max_households=HI)
    g = plan.grids
    assert len(g) == 3 and g["households"].between(LO, HI).all()
    parts = g["parts"].tolist()
    assert sorted(parts) == [1, 1, 3], parts
    holder = g.geometry.iloc[parts.index(3)]
    assert holder.covers(west) and holder.covers(east)
    total = shapely.union_all(np.asarray(g.geometry.values, dtype=object))
    assert abs(total.area - areas.geometry.iloc[1].area) < 1e-12
    assert not check_plan(plan, hh, areas, min_households=LO, max_households=HI)


def test_exclaves_go_to_the_grid_whose_households_span_pieces() -> None:
    """An exclave with a few households forces its grid into two parts; the
    empty exclave joins that grid rather than making a second grid in pieces."""
    main = shapely.box(0.0, 0.0, 0.03, 0.01)
    inhabited = shapely.box(0.04, 0.0, 0.045, 0.01)
    empty = shapely.box(-0.015, 0.0, -0.01, 0.01)
    areas = _village([main, inhabited, empty])
    hh = _households(745, (0.001, 0.001, 0.029, 0.009), seed=3)
    few = _households(5, (0.041, 0.001, 0.044, 0.009), seed=4)
    few["household_id"] = "x" + few["household_id"]
    few["building_id"] = "x" + few["building_id"]
    hh = gpd.GeoDataFrame(
        np.concatenate([hh.to_numpy(), few.to_numpy()]),
        columns=hh.columns,
        geometry="geometry",
        crs=4326,
    )
    plan = generate_grids(hh, areas, min_households=LO, max_households=HI)
    g = plan.grids
    assert g["households"].between(LO, HI).all()
    multi = g[g["parts"] > 1]
    assert len(multi) == 1, g[["grid_code", "parts"]]
    assert multi.geometry.iloc[0].covers(inhabited) and multi.geometry.iloc[0].covers(
        empty
    )
    assert not check_plan(plan, hh, areas, min_households=LO, max_households=HI)
