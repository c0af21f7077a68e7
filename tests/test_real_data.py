"""The real OpenStreetMap extract of Liechtenstein loads: municipalities and address points."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.io import prepare, read_table
from geo.loading import load


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


@pytest.mark.slow
def test_liechtenstein_loads(session: Session, real_data: Path) -> None:
    areas = liechtenstein_areas(real_data)
    rep = load(session, prepare(areas, "areas", source="admin_all.parquet"))
    assert rep.inserted == 14
    hh = liechtenstein_households(real_data)
    prepared = prepare(hh, "households", source="addresses.parquet", extra="attrs")
    rep = load(session, prepared)
    assert rep.inserted == len(hh) == 12_489
    per_muni = dict(
        session.execute(
            text(
                "SELECT a.name, count(*) FROM households h JOIN admin_areas a ON a.id = h.area_id "
                "GROUP BY a.name"
            )
        ).all()
    )
    # every address lands in the municipality OSM puts it in (deepest level wins)
    assert per_muni == hh.groupby("municipality").size().to_dict()
    assert sum(per_muni.values()) == 12_489
    # western addresses are keyed for exact lookup, and umlauts survive
    key_count = session.execute(
        text("SELECT count(*) FROM households WHERE address_key IS NOT NULL")
    ).scalar_one()
    assert key_count > 12_000
    umlaut = session.execute(
        text(
            "SELECT count(*) FROM households WHERE address LIKE '%ä%' OR address LIKE '%ü%'"
        )
    ).scalar_one()
    assert umlaut > 0
    # re-loading is a no-op
    again = load(session, prepared)
    assert (again.inserted, again.updated) == (0, 0)


@pytest.mark.slow
def test_liechtenstein_municipalities_directly_from_the_file(
    session: Session, real_data: Path
) -> None:
    """The raw municipality file loads with column mapping alone (the CLI's --map/--set)."""
    frame = read_table(real_data / "admin_units.parquet")
    prepared = prepare(
        frame,
        "areas",
        source="admin_units.parquet",
        columns={"code": "unit_osm_id", "name": "unit_name"},
        defaults={"level": "village"},
        extra="attrs",
    )
    rep = load(session, prepared)
    assert rep.inserted == 11
    exclaves = session.execute(
        text("SELECT count(*) FROM admin_areas WHERE ST_NumGeometries(geom) > 1")
    ).scalar_one()
    assert exclaves == 7
