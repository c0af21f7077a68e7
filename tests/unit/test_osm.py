"""geo.io.osm: the documented household estimate, rule by rule."""

from __future__ import annotations

import geopandas as gpd
import shapely

from geo.io.osm import estimate_households, osm_households

SQUARE_100 = shapely.box(0, 0, 10, 10)  # 100 m² in EPSG:32632


def _b(**cols: list) -> gpd.GeoDataFrame:
    n = len(next(iter(cols.values())))
    return gpd.GeoDataFrame(cols, geometry=[SQUARE_100] * n, crs=32632)


def test_flats_win_over_everything() -> None:
    b = _b(building=["apartments", "garage"], **{"building:flats": ["12", "3"]})
    assert estimate_households(b, metric_crs=32632).tolist() == [12, 3]


def test_floor_area_for_homes() -> None:
    # 100 m² × levels × 0.8 / 80 m² = levels households (at least 1)
    b = _b(
        building=["apartments", "house", "residential", "terrace"],
        **{"building:levels": ["6", None, "2;3", "0"]},
    )
    assert estimate_households(b, metric_crs=32632).tolist() == [6, 1, 2, 1]


def test_building_yes_needs_levels_or_an_address_and_no_business_tags() -> None:
    b = _b(
        building=["yes", "yes", "yes", "yes", "yes"],
        **{
            "building:levels": ["4", None, None, "5", "5"],
            "addr:housenumber": [None, "7a", None, None, None],
            "name": [None, None, None, "Kiasma", None],
            "shop": [None, None, None, None, "department_store"],
        },
    )
    assert estimate_households(b, metric_crs=32632).tolist() == [4, 1, 0, 0, 0]


def test_non_residential_buildings_hold_nobody() -> None:
    b = _b(
        building=["school", "church", "garage", "shed", "commercial", "industrial"],
        **{"building:levels": ["3"] * 6},
    )
    assert estimate_households(b, metric_crs=32632).tolist() == [0] * 6


def test_households_sit_at_their_building_with_unit_numbers() -> None:
    b = gpd.GeoDataFrame(
        {
            "id": [1, 2],
            "osm_type": ["way", "relation"],
            "building": ["apartments", "shed"],
            "building:levels": ["3", "1"],
        },
        geometry=[shapely.box(0, 0, 10, 10), shapely.box(20, 0, 30, 10)],
        crs=32632,
    )
    hh = osm_households(b, metric_crs=32632, prefix="X-")
    assert hh["household_id"].tolist() == ["X-way/1#1", "X-way/1#2", "X-way/1#3"]
    assert hh["building_id"].unique().tolist() == ["X-way/1"]
    assert hh.geometry.nunique() == 1 and hh.geometry.iloc[0].within(b.geometry.iloc[0])
