"""Offline map context from the database (issue 26): building footprints
approximated from households' points, drawn with admin outlines under the grids."""

from __future__ import annotations

import geopandas as gpd
import pyproj
import shapely
from sqlalchemy.orm import Session

import maps
from geo.io import prepare
from geo.store.loading import load
from geo.store.plans import area_frames
from geo.store.queries import building_footprints
from maps.layers import LineLayer

VILLAGE = shapely.box(118.90, 28.90, 118.92, 28.91)
GEOD = pyproj.Geod(ellps="WGS84")


def _setup(session: Session) -> None:
    areas = gpd.GeoDataFrame(
        {
            "code": ["330803000000", "330803100000", "330803100201"],
            "name": ["衢江区", "高家镇", "湖仁村"],
            "level": ["county", "township", "village"],
            "parent_code": [None, "330803000000", "330803100000"],
        },
        geometry=[VILLAGE.buffer(0.01), VILLAGE.buffer(0.005), VILLAGE],
        crs=4326,
    )
    load(session, prepare(areas, "areas", source="areas"))
    hh = gpd.GeoDataFrame(
        {
            "household_id": ["a1", "a2", "a3", "b1", "loose"],
            "address": [f"高家镇湖仁村{i}号" for i in range(1, 6)],
            "building_id": ["A", "A", "A", "B", None],
            "area_code": "330803100201",
        },
        geometry=shapely.points(
            [118.905, 118.9052, 118.905, 118.915, 118.912],
            [28.905, 28.905, 28.9052, 28.905, 28.906],
        ),
        crs=4326,
    )
    load(session, prepare(hh, "households", source="hh"))


def test_building_footprints_hull_the_households_and_draw_as_context(
    session: Session,
) -> None:
    _setup(session)
    fp = building_footprints(session, "330803100000")  # the township and below
    assert fp["building_id"].tolist() == ["A", "B"]
    assert fp["households"].tolist() == [3, 1]
    assert fp.crs.to_epsg() == 4326
    a, b = fp.geometry
    # each covers its households, with about 6 m to spare
    for x, y in [(118.905, 28.905), (118.9052, 28.905), (118.905, 28.9052)]:
        assert a.contains(shapely.Point(x, y))
    area_b = abs(GEOD.geometry_area_perimeter(b)[0])
    assert 80 < area_b < 120  # an octagon of radius 6 m: ~102 m²
    assert not a.intersects(b)

    areas, _ = area_frames(session, "330803000000")
    m = maps.balance_map(
        gpd.GeoDataFrame(
            {
                "grid_code": ["33080310020101"],
                "area_code": ["330803100201"],
                "households": [4],
            },
            geometry=[VILLAGE],
            crs=4326,
        ),
        areas=areas,
        context=maps.Context(areas=areas, buildings=fp),
    )
    groups = [c for c in m._children.values() if hasattr(c, "layer_name")]
    names = [g.layer_name for g in groups]
    # context first (under the grids), then the grids
    assert names[:2] == ["建筑（2）", "行政区划界线"], names
    (bl,) = [c for c in groups[0]._children.values() if isinstance(c, LineLayer)]
    (al,) = [c for c in groups[1]._children.values() if isinstance(c, LineLayer)]
    assert len(bl.data["features"]) == 2 and len(al.data["features"]) == 3
    # the county line is the boldest and is drawn last (over the village's)
    assert al.data["features"][-1]["properties"]["w"] == 3.0
    assert al.data["features"][0]["properties"]["dash"] == "4 3"
    html = m.get_root().render()
    assert "tile.openstreetmap" not in html and "autonavi" not in html
