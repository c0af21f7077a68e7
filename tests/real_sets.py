"""The real data sets the tests read in place (never copied: ODbL): Liechtenstein."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd

from geo.io import read_table

#: The OSM extract beside the project (read in place, never copied: ODbL).
REAL_DATA_DIR = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "liechtenstein_2024"
)


def liechtenstein_areas(real_data: Path) -> gpd.GeoDataFrame:
    """Country (county level) → 2 districts (township) → 11 municipalities (village)."""
    admin = read_table(real_data / "admin_all.parquet")
    munis = read_table(real_data / "admin_units.parquet")
    country = admin[admin["admin_level"].astype(int) == 2]
    districts = admin[admin["admin_level"].astype(int) == 6]
    assert len(country) == 1 and len(districts) == 2 and len(munis) == 11
    top = "LI-" + str(country["id"].iloc[0])
    # each municipality's district: the one containing a point inside it
    inner = munis.geometry.representative_point()
    district_of = [
        "LI-"
        + str(
            districts["id"].iloc[
                int(districts.geometry.contains(p).to_numpy().argmax())
            ]
        )
        for p in inner
    ]
    frame = pd.DataFrame(
        {
            "code": [
                top,
                *("LI-" + districts["id"].astype(str)),
                *("LI-" + munis["unit_osm_id"].astype(str)),
            ],
            "name": [*country["name"], *districts["name"], *munis["unit_name"]],
            "level": ["county"] + ["township"] * 2 + ["village"] * 11,
            "parent_code": [None, top, top, *district_of],
        }
    )
    geoms = [*country.geometry, *districts.geometry, *munis.geometry]
    return gpd.GeoDataFrame(frame, geometry=geoms, crs=admin.crs)


def liechtenstein_households(real_data: Path) -> gpd.GeoDataFrame:
    """Address points as households, with a western address line."""
    pts = read_table(real_data / "addresses.parquet")
    street = pts["addr:street"].fillna(pts["addr:place"]).fillna("")
    city = (
        pts["addr:postcode"].fillna("").astype(str) + " " + pts["addr:city"].fillna("")
    ).str.strip()
    address = (street + " " + pts["addr:housenumber"].fillna("")).str.strip()
    address = address.where(city == "", address + ", " + city)
    return gpd.GeoDataFrame(
        {
            "household_id": pts["osm_type"] + "/" + pts["id"].astype(str),
            "address": address,
            "municipality": pts["unit_name"],
        },
        geometry=pts.geometry,
        crs=pts.crs,
    )
