"""Overlapping sibling areas (issue 15, item 5): refused at load naming both areas
and the overlap, shared edges and slivers tolerated, or clipped with ``clip``."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from api.cli import app
from geo.io import InputError, prepare
from geo.store.db import make_engine, upgrade
from geo.store.loading import load

# about 2.2 km x 2.2 km villages near Quzhou (4.3 km² each)
V1 = shapely.box(118.90, 28.90, 118.92, 28.92)
V2 = shapely.box(118.92, 28.90, 118.94, 28.92)  # shares V1's eastern edge
INSIDE_V1 = shapely.box(118.905, 28.905, 118.91, 28.91)  # wholly inside V1
# overlaps V2 by a 1 m wide strip along their edge (about 2,200 m², 0.05 %)
SLIVER = shapely.box(118.94 - 0.00001, 28.90, 118.96, 28.92)
HALF_V2 = shapely.box(118.93, 28.90, 118.95, 28.92)  # overlaps half of V2


def _areas(*rows: tuple[str, str, str, str | None, shapely.Geometry]):
    return gpd.GeoDataFrame(
        {
            "code": [r[0] for r in rows],
            "name": [r[1] for r in rows],
            "level": [r[2] for r in rows],
            "parent_code": [r[3] for r in rows],
        },
        geometry=[r[4] for r in rows],
        crs=4326,
    )


BASE = _areas(
    ("OV", "测试县", "county", None, shapely.box(118.8, 28.8, 119.1, 29.0)),
    ("OV-T1", "一号镇", "township", "OV", shapely.box(118.85, 28.85, 119.0, 28.95)),
    ("OV-V1", "东山村", "village", "OV-T1", V1),
    ("OV-V2", "西山村", "village", "OV-T1", V2),
)


def _load(session: Session, frame: gpd.GeoDataFrame, **kw: object):
    return load(session, prepare(frame, "areas", source="villages.geojson"), **kw)  # type: ignore[arg-type]


def _codes(session: Session) -> set[str]:
    return set(
        session.execute(text("SELECT code FROM admin_areas WHERE code LIKE 'OV%'"))
        .scalars()
        .all()
    )


def _area_m2(session: Session, code: str) -> float:
    return float(
        session.execute(
            text("SELECT ST_Area(geography(geom)) FROM admin_areas WHERE code = :c"),
            {"c": code},
        ).scalar_one()
    )


def test_an_area_inside_a_loaded_sibling_is_refused_naming_both(
    session: Session,
) -> None:
    _load(session, BASE)
    before = _codes(session)
    with pytest.raises(InputError) as err:
        _load(session, _areas(("OV-V3", "新村", "village", "OV-T1", INSIDE_V1)))
    msg = str(err.value)
    assert "OV-V3 (新村)" in msg and "OV-V1 (东山村" in msg
    assert "already loaded" in msg and "m²" in msg
    assert "villages.geojson" in msg and "row 1" in msg
    # 500 m x 550 m: the overlap is the whole new village
    overlap = err.value.problems[0].message
    assert "100.0% of the smaller area" in overlap
    assert _codes(session) == before  # nothing written


def test_overlapping_siblings_within_one_file_are_refused(session: Session) -> None:
    frame = _areas(
        *[tuple(r) for r in BASE.itertuples(index=False)],  # type: ignore[misc]
        ("OV-V5", "半山村", "village", "OV-T1", HALF_V2),
        # two parentless areas of the same level are siblings too
        ("OV2", "邻县", "county", None, shapely.box(119.0, 28.8, 119.3, 29.0)),
    )
    with pytest.raises(InputError) as err:
        _load(session, frame)
    msg = str(err.value)
    assert (
        "OV-V5 (半山村) overlaps its sibling OV-V2 (西山村, row 4 of the file)" in msg
    )
    assert "OV2 (邻县) overlaps its sibling OV (测试县, row 1 of the file)" in msg
    # the library names its parameter; the CLI adds its option (test_load_files)
    assert "load with clip=True" in msg and "--clip" not in msg
    assert err.value.params == ["clip"]
    assert _codes(session) == set()


def test_shared_edges_and_slivers_are_tolerated(session: Session) -> None:
    _load(session, BASE)  # V1 and V2 share an edge
    report = _load(session, _areas(("OV-V4", "窄村", "village", "OV-T1", SLIVER)))
    assert report.inserted == 1 and report.notes == ()
    # a village of another township may overlap (only siblings are compared)
    other = _areas(
        ("OV-T2", "二号镇", "township", "OV", shapely.box(119.0, 28.85, 119.05, 28.95)),
    )
    assert _load(session, other).inserted == 1
    # re-loading the same file compares areas with their new selves: no overlap
    assert _load(session, BASE).unchanged == len(BASE)


def test_clip_cuts_the_overlap_out_of_the_new_area_and_says_so(
    session: Session,
) -> None:
    _load(session, BASE)
    report = _load(
        session, _areas(("OV-V5", "半山村", "village", "OV-T1", HALF_V2)), clip=True
    )
    assert report.inserted == 1
    assert len(report.notes) == 1
    note = report.notes[0]
    assert "OV-V5 (半山村, row 1)" in note and "OV-V2 (西山村)" in note
    assert "m²" in note
    full = _area_m2(session, "OV-V2")
    assert _area_m2(session, "OV-V5") == pytest.approx(full / 2, rel=0.01)
    overlap = session.execute(
        text(
            "SELECT ST_Area(geography(ST_Intersection(a.geom, b.geom))) "
            "FROM admin_areas a, admin_areas b WHERE a.code = 'OV-V5' AND b.code = 'OV-V2'"
        )
    ).scalar_one()
    assert overlap < 1.0
    # the loaded sibling is untouched
    assert _area_m2(session, "OV-V2") == pytest.approx(full)


def test_clip_refuses_an_area_wholly_inside_a_sibling(session: Session) -> None:
    _load(session, BASE)
    with pytest.raises(InputError) as err:
        _load(
            session,
            _areas(("OV-V3", "新村", "village", "OV-T1", INSIDE_V1)),
            clip=True,
        )
    assert "OV-V3 (新村) lies wholly inside OV-V1 (东山村)" in str(err.value)
    assert "OV-V3" not in _codes(session)


def test_cli_refuses_overlaps_and_clips_with_the_option(
    make_database,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    url = make_database("overlaps")
    upgrade(url)
    env = {"GRIDMAP_DATABASE_URL": url}
    base = tmp_path / "base.geojson"
    BASE.to_file(base, driver="GeoJSON")
    half = tmp_path / "half.geojson"
    _areas(("OV-V5", "半山村", "village", "OV-T1", HALF_V2)).to_file(
        half, driver="GeoJSON"
    )
    runner = CliRunner()
    res = runner.invoke(app, ["load", "areas", str(base)], env=env)
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["load", "areas", str(half)], env=env)
    assert res.exit_code == 2
    out = " ".join(res.output.split())  # the console wraps long lines
    assert "nothing was written" in out
    assert "OV-V5 (半山村) overlaps its sibling OV-V2 (西山村, already loaded)" in out
    res = runner.invoke(app, ["load", "areas", str(half), "--clip"], env=env)
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "clipped" in out and "OV-V2 (西山村)" in out
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            n = conn.execute(
                text("SELECT count(*) FROM admin_areas WHERE code = 'OV-V5'")
            ).scalar_one()
    finally:
        engine.dispose()
    assert n == 1
