"""Loading areas, households and people: every format, bad input, idempotence, rollback."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from samples import sample_county
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.io import InputError, prepare, read_table
from geo.sample import SampleCounty
from geo.store.db import session_scope
from geo.store.loading import area_bounds, load


@pytest.fixture(scope="module")
def county() -> SampleCounty:
    return sample_county(2_000, seed=7)


def _load_file(session: Session, kind: str, path: Path, **kw):
    frame = read_table(path, crs=kw.pop("crs", None))
    bounds = area_bounds(session) if kind == "households" else None
    prepared = prepare(frame, kind, source=path.name, expected_bounds=bounds, **kw)
    return load(session, prepared)


def _count(session: Session, table: str) -> int:
    return session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def _load_areas(session: Session, county: SampleCounty) -> None:
    load(session, prepare(county.areas, "areas", source="areas"))


def _write(gdf: gpd.GeoDataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        gdf.to_parquet(path)
    elif path.suffix == ".csv":
        df = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
        df["lon"], df["lat"] = gdf.geometry.x, gdf.geometry.y
        df.to_csv(path, index=False, encoding="utf-8")
    else:
        gdf.to_file(path, engine="pyogrio")
    return path


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg", ".shp", ".parquet", ".csv"])
def test_every_format_loads(
    session: Session, county: SampleCounty, tmp_path: Path, suffix: str
):
    areas = county.areas
    if suffix == ".csv":
        area_path = _write(areas, tmp_path / "areas.geojson")
    else:
        area_path = _write(areas, tmp_path / f"areas{suffix}")
    rep = _load_file(session, "areas", area_path)
    assert rep.inserted == len(areas)
    hh = county.households
    rep = _load_file(
        session, "households", _write(hh, tmp_path / f"households{suffix}")
    )
    assert (rep.rows, rep.inserted) == (len(hh), len(hh))
    assert _count(session, "households") == len(hh)
    # Chinese addresses survive every format byte for byte
    stored = dict(
        session.execute(text("SELECT external_id, address FROM households")).all()
    )
    expected = dict(zip(hh["household_id"], hh["address"], strict=True))
    assert stored == expected
    # every household got the village it lies in
    got = dict(
        session.execute(
            text(
                "SELECT h.external_id, a.code FROM households h JOIN admin_areas a ON a.id = h.area_id"
            )
        ).all()
    )
    assert got == dict(zip(hh["household_id"], hh["area_code"], strict=True))


def test_people_and_normalised_addresses(
    session: Session, county: SampleCounty, tmp_path: Path
):
    _load_areas(session, county)
    path = tmp_path / "people.csv"
    county.people.to_csv(path, index=False, encoding="utf-8")
    rep = _load_file(session, "people", path)
    assert rep.inserted == len(county.people)
    roles = set(session.execute(text("SELECT DISTINCT role FROM people")).scalars())
    assert roles == {
        "grid_worker",
        "grid_leader",
        "party_member",
        "village_committee",
        "township_office",
    }
    hh = county.households.copy()
    hh.loc[0, "address"] = "浙江省衢州市衢江区樟潭街道沈家路８号３栋２单元５０１室"
    load(session, prepare(hh, "households", source="hh"))
    norm, key = session.execute(
        text("SELECT address_norm, address_key FROM households WHERE external_id = :i"),
        {"i": hh.loc[0, "household_id"]},
    ).one()
    assert "8号3幢2单元501室" in norm
    assert key is not None


def test_reload_is_idempotent_and_updates_only_changes(
    session: Session, county: SampleCounty
):
    _load_areas(session, county)
    again = load(session, prepare(county.areas, "areas", source="areas"))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, len(county.areas))
    hh = county.households
    first = load(session, prepare(hh, "households", source="hh"))
    assert first.inserted == len(hh)
    second = load(session, prepare(hh, "households", source="hh"))
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, len(hh))
    changed = hh.copy()
    changed.loc[3, "people"] = 9
    third = load(session, prepare(changed, "households", source="hh"))
    assert (third.inserted, third.updated) == (0, 1)
    assert _count(session, "households") == len(hh)


# -- bad input -------------------------------------------------------------------


def _problems(exc: InputError) -> str:
    return str(exc)


def test_empty_and_missing_files(tmp_path: Path):
    empty = tmp_path / "empty.geojson"
    empty.write_text("")
    with pytest.raises(InputError, match="empty.geojson: the file is empty"):
        read_table(empty)
    header_only = tmp_path / "h.csv"
    header_only.write_text("household_id,lon,lat\n")
    with pytest.raises(InputError, match="h.csv: the file has no rows"):
        read_table(header_only)
    no_features = tmp_path / "none.geojson"
    no_features.write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(InputError, match="no rows"):
        read_table(no_features)
    with pytest.raises(InputError, match="file not found"):
        read_table(tmp_path / "nope.gpkg")


def test_file_without_crs_is_refused_unless_told(county: SampleCounty, tmp_path: Path):
    path = _write(county.households.head(20), tmp_path / "hh.shp")
    path.with_suffix(".prj").unlink()
    with pytest.raises(
        InputError,
        match=r"hh.shp: the file declares no coordinate reference system; pass crs ",
    ):
        read_table(path)
    frame = read_table(path, crs="EPSG:4326")
    assert frame.crs.to_epsg() == 4326
    with pytest.raises(InputError, match="conflicts with the file's own CRS"):
        read_table(
            _write(county.households.head(5), tmp_path / "x.gpkg"), crs="EPSG:3857"
        )


def test_projected_file_is_transformed(
    session: Session, county: SampleCounty, tmp_path: Path
):
    _load_areas(session, county)
    hh = county.households.head(50)
    path = _write(
        hh.to_crs("EPSG:4549"), tmp_path / "cgcs2000.gpkg"
    )  # CGCS2000 / GK CM 120E
    load(session, prepare(read_table(path), "households", source=path.name))
    xy = session.execute(
        text("SELECT ST_X(geom), ST_Y(geom) FROM households WHERE external_id = :i"),
        {"i": hh["household_id"].iloc[0]},
    ).one()
    assert xy == pytest.approx((hh.geometry.x.iloc[0], hh.geometry.y.iloc[0]), abs=1e-7)


def test_wrong_crs_and_swapped_coordinates(
    session: Session, county: SampleCounty, tmp_path: Path
):
    _load_areas(session, county)
    hh = county.households.head(30)
    swapped = tmp_path / "swapped.csv"
    pd.DataFrame(
        {"household_id": hh["household_id"], "lon": hh.geometry.y, "lat": hh.geometry.x}
    ).to_csv(swapped, index=False)
    with pytest.raises(
        InputError,
        match=r"swapped.csv: coordinates look like latitude/longitude in the wrong order",
    ):
        _load_file(session, "households", swapped)
    metres = tmp_path / "metres.csv"
    proj = hh.to_crs("EPSG:32650")
    pd.DataFrame(
        {
            "household_id": hh["household_id"],
            "lon": proj.geometry.x,
            "lat": proj.geometry.y,
        }
    ).to_csv(metres, index=False)
    with pytest.raises(
        InputError, match=r"metres.csv row 1, field 'geometry': coordinates outside lon"
    ):
        _load_file(session, "households", metres)
    # the same numbers with the right --crs and x/y names load fine
    xy = tmp_path / "xy.csv"
    pd.DataFrame(
        {"household_id": hh["household_id"], "x": proj.geometry.x, "y": proj.geometry.y}
    ).to_csv(xy, index=False)
    with pytest.raises(InputError, match="x/y columns carry no CRS"):
        read_table(xy)
    assert _load_file(session, "households", xy, crs="EPSG:32650").inserted == 30


def test_duplicate_ids_unknown_columns_and_bad_values(
    county: SampleCounty, tmp_path: Path
):
    hh = county.households.head(10).copy()
    hh.loc[7, "household_id"] = hh.loc[2, "household_id"]
    with pytest.raises(InputError) as info:
        prepare(hh, "households", source="hh.gpkg")
    assert (
        f"hh.gpkg row 3, field 'household_id': duplicate household_id {hh.loc[2, 'household_id']!r} (rows 3, 8)"
        in str(info.value)
    )

    extra = county.households.head(5).assign(colour="red", floor=3)
    with pytest.raises(InputError, match=r"unknown column\(s\) 'colour', 'floor'"):
        prepare(extra, "households", source="hh.gpkg")
    kept = prepare(extra, "households", source="hh.gpkg", extra="attrs")
    assert json.loads(kept.frame["attrs"].iloc[0]) == {"colour": "red", "floor": 3}
    assert "colour" not in prepare(extra, "households", extra="ignore").frame.columns

    bad = county.households.head(5).copy()
    bad["people"] = ["2", "two", "-1", "1.5", None]
    with pytest.raises(InputError) as info:
        prepare(bad, "households", source="hh.csv")
    msg = str(info.value)
    assert "hh.csv row 2, field 'people': not a number: 'two'" in msg
    assert "hh.csv row 3, field 'people': must be ≥ 0, got -1" in msg
    assert "hh.csv row 4, field 'people': not a whole number: '1.5'" in msg

    with pytest.raises(
        InputError, match=r"missing required column\(s\) 'household_id'"
    ):
        prepare(
            county.households.drop(columns="household_id"), "households", source="hh"
        )
    people = county.people.head(3).copy()
    people.loc[1, "role"] = "mayor"
    with pytest.raises(InputError, match=r"row 2, field 'role': unknown role 'mayor'"):
        prepare(people, "people", source="people.csv")


def test_broken_geometry(county: SampleCounty):
    areas = county.areas.head(3).copy()
    bowtie = shapely.Polygon(
        [(118.9, 28.9), (119.0, 29.0), (119.0, 28.9), (118.9, 29.0)]
    )
    areas.loc[areas.index[1], "geometry"] = bowtie
    areas.loc[areas.index[2], "geometry"] = None
    with pytest.raises(InputError) as info:
        prepare(areas, "areas", source="areas.gpkg")
    msg = str(info.value)
    assert (
        "areas.gpkg row 2, field 'geometry': invalid polygon (Self-intersection" in msg
    )
    assert "areas.gpkg row 3, field 'geometry': geometry is missing or empty" in msg
    repaired = prepare(areas.head(2), "areas", source="areas.gpkg", make_valid=True)
    assert repaired.frame.geometry.is_valid.all()
    points = county.households.head(2)
    with pytest.raises(InputError, match="expected a Polygon or MultiPolygon"):
        prepare(
            points.assign(code="x", name="n", level="village")[
                ["code", "name", "level", "geometry"]
            ],
            "areas",
            source="a",
        )


def test_households_outside_every_area_roll_back_everything(
    engine, county: SampleCounty
):
    hh = county.households.head(20).copy()
    hh["household_id"] = "rollback-" + hh["household_id"]
    hh.loc[hh.index[5], "geometry"] = shapely.Point(100.0, 10.0)
    hh["area_code"] = None
    with session_scope(engine) as s:
        before = _count(s, "households")
    with pytest.raises(
        InputError,
        match=r"row 6, field 'geometry': the point \(100.000000, 10.000000\) lies outside every loaded admin area",
    ):
        with session_scope(engine) as s:
            load(s, prepare(county.areas, "areas", source="areas"))
            load(s, prepare(hh, "households", source="hh"))
    with session_scope(engine) as s:
        assert _count(s, "households") == before
        assert s.execute(text("SELECT count(*) FROM admin_areas")).scalar_one() == 0


def test_database_error_mid_copy_rolls_back(engine, county: SampleCounty):
    """A failure inside PostgreSQL (after COPY started) leaves nothing behind."""
    hh = county.households.head(300).copy()
    hh["household_id"] = "midcopy-" + hh["household_id"]
    prepared = prepare(hh, "households", source="hh")
    # prepare() refuses such a value; slip it in after, so PostgreSQL fails
    prepared.frame.loc[250, "people"] = 10**12  # overflows int4 mid-COPY
    with pytest.raises(Exception, match="out of range"):
        with session_scope(engine) as s:
            load(s, prepare(county.areas, "areas", source="areas"))
            load(s, prepared)
    with session_scope(engine) as s:
        n = s.execute(
            text("SELECT count(*) FROM households WHERE external_id LIKE 'midcopy-%'")
        ).scalar_one()
        assert n == 0
        assert s.execute(text("SELECT count(*) FROM admin_areas")).scalar_one() == 0


def test_area_parents_must_exist_and_rank_above(county: SampleCounty, session: Session):
    areas = county.areas.copy()
    village = areas.index[areas["level"] == "village"][0]
    areas.loc[village, "parent_code"] = "999999999999"
    with pytest.raises(
        InputError, match="parent area '999999999999' is neither in the file nor loaded"
    ):
        load(session, prepare(areas, "areas", source="areas"))
    areas = county.areas.copy()
    county_row = areas.index[areas["level"] == "county"][0]
    areas.loc[county_row, "parent_code"] = areas.loc[village, "code"]
    with pytest.raises(InputError, match=r"\(county\) cannot sit under"):
        load(session, prepare(areas, "areas", source="areas"))


def _indexes(session: Session) -> set[str]:
    return set(
        session.execute(
            text("SELECT indexname FROM pg_indexes WHERE tablename = 'households'")
        ).scalars()
    )


def test_bulk_load_rebuilds_indexes(
    session: Session, county: SampleCounty, monkeypatch
):
    import geo.store.loading

    _load_areas(session, county)
    before = _indexes(session)
    assert (
        "ix_households_address_norm_trgm" in before and "idx_households_geom" in before
    )
    monkeypatch.setattr(geo.store.loading, "BULK_ROWS", 100)
    rep = load(session, prepare(county.households, "households", source="hh"))
    assert rep.inserted == len(county.households)
    assert _indexes(session) == before
    # the rebuilt trigram index answers a Chinese similarity query through the index
    session.execute(text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(
        session.execute(
            text(
                "EXPLAIN SELECT id FROM households WHERE address_norm % '湖仁村3组12号'"
            )
        ).scalars()
    )
    assert "ix_households_address_norm_trgm" in plan
