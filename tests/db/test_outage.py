"""A database outage (issue 15, item 6): while the database is down the API answers
503 problem+json with Retry-After; once it is back the next request succeeds;
``/healthz`` never touches the database, ``/readyz`` says what is missing.

The database is stopped and started, so this runs on an embedded cluster of its
own (a temporary ``data_dir``), never on the cluster the test session shares.
Timings are measured by ``bench/outage.py``, not asserted here.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from geo.io import prepare
from geo.store.db import make_engine, session_scope, upgrade
from geo.store.embedded import EmbeddedPostgres
from geo.store.loading import load
from geo.store.plans import publish_plan, save_plan
from geo.store.settings import Settings

VILLAGE = shapely.box(118.90, 28.90, 118.92, 28.92)
POINT = {"lon": 118.905, "lat": 28.905}
ADDRESS = "停电村1组1号"


def _seed(url: str, *, publish: bool) -> None:
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            areas = gpd.GeoDataFrame(
                {
                    "code": ["OUT-1"],
                    "name": ["停电村"],
                    "level": ["village"],
                    "parent_code": [None],
                },
                geometry=[VILLAGE],
                crs=4326,
            )
            load(s, prepare(areas, "areas", source="areas"))
            households = gpd.GeoDataFrame(
                {"household_id": ["H1"], "address": [ADDRESS], "people": [3]},
                geometry=[shapely.Point(POINT["lon"], POINT["lat"])],
                crs=4326,
            )
            load(s, prepare(households, "households", source="households"))
            grids = gpd.GeoDataFrame(
                {"grid_code": ["OUT-1-01"], "area_code": ["OUT-1"]},
                geometry=[VILLAGE],
                crs=4326,
            )
            plan = save_plan(s, "OUT-1", grids, name="outage")
            s.execute(
                text(
                    "INSERT INTO assignments (plan_id, household_id, grid_id) "
                    "SELECT :p, h.id, g.id FROM households h, grids g WHERE g.plan_id = :p"
                ),
                {"p": plan},
            )
            if publish:
                publish_plan(s, plan)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    root: Path = tmp_path_factory.mktemp("outage")
    pg = EmbeddedPostgres(Settings(data_dir=root / "state"))
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(pg.root, ignore_errors=True)


@pytest.fixture(scope="module")
def client(cluster: EmbeddedPostgres) -> Iterator[TestClient]:
    url = cluster.url()
    upgrade(url)
    _seed(url, publish=True)
    with TestClient(create_app(Settings(database_url=url))) as c:
        yield c


def _assert_unavailable(r) -> None:  # type: ignore[no-untyped-def]
    assert r.status_code == 503, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/problem+json")
    assert int(r.headers["retry-after"]) > 0
    body = r.json()
    assert body["status"] == 503 and "database" in body["detail"].lower()


def _requests(client: TestClient) -> dict[str, object]:
    return {
        "point (hot path)": client.get("/lookup", params=POINT),
        "address (hot path)": client.get("/lookup", params={"address": ADDRESS}),
        "fuzzy address (SQLAlchemy)": client.get(
            "/lookup", params={"address": "停电村一组壹号码"}
        ),
        "areas (SQLAlchemy session)": client.get("/collections/areas/items"),
    }


def test_outage_gives_503_then_the_next_requests_succeed(
    client: TestClient, cluster: EmbeddedPostgres
) -> None:
    before = _requests(client)
    assert {k: r.status_code for k, r in before.items()} == {  # type: ignore[attr-defined]
        "point (hot path)": 200,
        "address (hot path)": 200,
        "fuzzy address (SQLAlchemy)": before["fuzzy address (SQLAlchemy)"].status_code,  # type: ignore[attr-defined]
        "areas (SQLAlchemy session)": 200,
    }
    assert client.get("/readyz").status_code == 200

    cluster.stop()
    try:
        for name, r in _requests(client).items():
            assert r.status_code == 503, name  # type: ignore[attr-defined]
            _assert_unavailable(r)
        # again: the pools keep answering 503, never 500
        _assert_unavailable(client.get("/lookup", params=POINT))
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        _assert_unavailable(ready)
        assert ready.json()["reasons"]
    finally:
        cluster.start()

    # the very first requests after the restart succeed (stale connections are
    # replaced, not handed out)
    after = _requests(client)
    assert {k: r.status_code for k, r in after.items()} == {  # type: ignore[attr-defined]
        k: r.status_code  # type: ignore[attr-defined]
        for k, r in before.items()
    }
    assert after["point (hot path)"].json() == before["point (hot path)"].json()  # type: ignore[attr-defined]
    assert client.get("/readyz").status_code == 200


def test_a_restart_between_requests_is_invisible_to_clients(
    client: TestClient, cluster: EmbeddedPostgres
) -> None:
    """No request during the outage: every pooled connection is stale afterwards."""
    assert client.get("/lookup", params=POINT).status_code == 200
    assert client.get("/collections/areas/items").status_code == 200
    cluster.stop()
    cluster.start()
    for _ in range(6):  # more than either pool holds
        assert client.get("/lookup", params=POINT).status_code == 200
        assert client.get("/lookup", params={"address": ADDRESS}).status_code == 200
        assert client.get("/collections/areas/items").status_code == 200


def test_healthz_and_readyz(client: TestClient, cluster: EmbeddedPostgres) -> None:
    assert client.get("/healthz").status_code == 200
    ok = client.get("/readyz")
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["status"] == "ready" and body["schema"]
    assert ok.headers["cache-control"] == "no-store"


def test_readyz_names_what_is_missing(make_database) -> None:  # type: ignore[no-untyped-def]
    url = make_database("readyz")
    with TestClient(create_app(Settings(database_url=url))) as c:
        r = c.get("/readyz")
        assert r.status_code == 503
        assert "gridmap db upgrade" in r.json()["detail"]
        upgrade(url)
        r = c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["reasons"] == [
            "no plan is published yet, so lookups find no grid; publish one "
            "(gridmap publish --plan ID)"
        ]
        _seed(url, publish=True)
        assert c.get("/readyz").status_code == 200
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(text("UPDATE alembic_version SET version_num = 'old'"))
        finally:
            engine.dispose()
        r = c.get("/readyz")
        assert r.status_code == 503
        assert "schema is at revision old" in r.json()["detail"]
