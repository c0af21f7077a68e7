"""Shared data and fixtures for the HTTP API tests (no tests here).

Each API test module loads the same seeded county (2,500 households) plus a small
Liechtenstein-style village with Western addresses into the session's test
database, *committed* (the app uses its own connections), with two plans of the
county — one archived (published 2024-01-01), one published (2025-01-01) — and
empties the tables again when the module ends.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from samples import sample_county
from sqlalchemy import Engine, text

from api.app import create_app
from geo.gridding.generate import generate_grids
from geo.io import prepare
from geo.plan import GridPlan
from geo.sample import SampleCounty
from geo.store.db import make_engine, session_scope
from geo.store.keys import create_key
from geo.store.loading import load
from geo.store.plans import publish_plan, save_generated_plan
from geo.store.settings import Settings

COUNTY = "330803000000"
LI_ROOT = "LI-0001"
LI_VADUZ = "LI-9490"
#: A municipality without households (loaded, but not in any plan).
LI_EMPTY = "LI-9497"
ARCHIVED_AT = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
PUBLISHED_AT = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
TABLES = (
    "assignments, grids, plans, households, people, admin_areas, api_keys, cap_reveals"
)

_FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
_CN_DIGITS = "零一二三四五六七八九"


def cn_number(n: int) -> str:
    """12 -> 十二, 3 -> 三, 40 -> 四十 (1..99)."""
    assert 0 < n < 100
    tens, ones = divmod(n, 10)
    if tens == 0:
        return _CN_DIGITS[ones]
    head = "" if tens == 1 else _CN_DIGITS[tens]
    return head + "十" + (_CN_DIGITS[ones] if ones else "")


def fullwidth(s: str) -> str:
    return s.translate(_FULLWIDTH)


@functools.cache
def county() -> SampleCounty:
    return sample_county(2500, seed=7)


@functools.cache
def western() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """A tiny Vaduz (areas, households) with Western addresses."""
    root = shapely.box(9.49, 47.11, 9.56, 47.17)
    vaduz = shapely.box(9.50, 47.12, 9.55, 47.16)
    areas = gpd.GeoDataFrame(
        {
            "code": [LI_ROOT, LI_VADUZ],
            "name": ["Liechtenstein", "Vaduz"],
            "level": ["county", "village"],
            "parent_code": [None, LI_ROOT],
        },
        geometry=[root, vaduz],
        crs=4326,
    )
    streets = ["Landstrasse", "Äulestrasse", "Kirchstrasse", "Im Gapetsch"]
    rows = []
    for i in range(40):
        street = streets[i % len(streets)]
        number = 10 + i // len(streets)
        rows.append(
            {
                "household_id": f"LI-{i:03d}",
                "address": f"{street} {number}, 9490 Vaduz",
                "people": 2,
                "area_code": LI_VADUZ,
                "geometry": shapely.Point(
                    9.505 + (i % 8) * 0.005, 47.125 + (i // 8) * 0.006
                ),
            }
        )
    households = gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)
    return areas, households


@functools.cache
def plans() -> tuple[GridPlan, GridPlan, GridPlan]:
    """(old county plan, current county plan, Vaduz plan), generated once."""
    c = county()
    old = generate_grids(c.households, c.areas, min_households=120, max_households=200)
    new = generate_grids(c.households, c.areas)
    li_areas, li_households = western()
    li = generate_grids(li_households, li_areas, min_households=10, max_households=40)
    return old, new, li


@dataclass
class ApiData:
    url: str
    viewer: str
    planner: str
    old_plan: int
    plan: int
    li_plan: int
    extra: dict[str, Any] = field(default_factory=dict)


def _staff(engine: Engine) -> None:
    """Give every grid a grid worker and every assignment a covering party member."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "WITH w AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS rn, "
                "count(*) OVER () AS n FROM people WHERE role = 'grid_worker') "
                "UPDATE grids g SET worker_id = w.id FROM w WHERE w.rn = g.id % w.n"
            )
        )
        conn.execute(
            text(
                "WITH m AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS rn, "
                "count(*) OVER () AS n FROM people WHERE role = 'party_member') "
                "UPDATE assignments a SET member_id = m.id FROM m "
                "WHERE m.rn = a.household_id % m.n"
            )
        )


def load_api_data(db_url: str) -> Iterator[ApiData]:
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
        c = county()
        li_areas, li_households = western()
        with session_scope(engine) as s:
            empty = gpd.GeoDataFrame(
                {
                    "code": [LI_EMPTY],
                    "name": ["Triesenberg"],
                    "level": ["village"],
                    "parent_code": [LI_ROOT],
                },
                geometry=[shapely.box(9.551, 47.12, 9.559, 47.16)],
                crs=4326,
            )
            areas = pd.concat([c.areas, li_areas, empty], ignore_index=True)
            load(s, prepare(gpd.GeoDataFrame(areas, crs=4326), "areas", source="areas"))
            load(s, prepare(c.people, "people", source="people"))
            hh = pd.concat([c.households, li_households], ignore_index=True)
            load(s, prepare(gpd.GeoDataFrame(hh, crs=4326), "households", source="hh"))
        old, new, li = plans()
        with session_scope(engine) as s:
            old_id = save_generated_plan(s, COUNTY, old, name="2024 plan")
            publish_plan(s, old_id, at=ARCHIVED_AT)
            new_id = save_generated_plan(s, COUNTY, new, name="2025 plan")
            publish_plan(s, new_id, at=PUBLISHED_AT)
            li_id = save_generated_plan(s, LI_ROOT, li, name="Vaduz")
            publish_plan(s, li_id, at=PUBLISHED_AT)
            viewer = create_key(s, "viewer", name="tests")
            planner = create_key(s, "planner", name="tests")
        _staff(engine)
        yield ApiData(db_url, viewer, planner, old_id, new_id, li_id)
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
        engine.dispose()


@pytest.fixture(scope="module")
def api_data(db_url: str) -> Iterator[ApiData]:
    yield from load_api_data(db_url)


@pytest.fixture(scope="module")
def client(api_data: ApiData) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=api_data.url))
    with TestClient(app) as c:
        yield c


def wait_job(client: Any, url: str, key: str, timeout_s: float = 120) -> dict[str, Any]:
    """Poll a job's URL until it succeeded or failed; its last state."""
    deadline = time.monotonic() + timeout_s
    while True:
        job: dict[str, Any] = client.get(url, headers=auth(key)).json()
        if job["status"] in {"succeeded", "failed"}:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """The API routes in ``app.routes``, into included routers (FastAPI keeps
    an included router as one entry holding the original router)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (inner := getattr(route, "original_router", None)) is not None:
            yield from api_routes(inner.routes)


def without_nonces(html: str) -> str:
    """A page with its scripts' CSP nonces (one per response) taken out."""
    return re.sub(r' nonce="[^"]*"', "", html)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(r: Any, status: int) -> dict[str, Any]:
    """``r`` is an RFC 9457 problem with ``status`` and a readable detail."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert body["status"] == status
    assert body["title"] and body["type"]
    assert isinstance(body["detail"], str) and len(body["detail"]) > 10
    return body


APT_RE = re.compile(
    r"^(?:浙江省)?(?:衢州市)?(?:衢江区)?(.+?)(\d+)号(\d+)[幢栋](\d+)单元(\d+)室?$"
)
VILLAGE_RE = re.compile(r"^(?:浙江省)?(?:衢州市)?(?:衢江区)?(.+?村)(\d+)组(\d+)号$")


def pick_address(
    pattern: re.Pattern[str], small: bool = False
) -> tuple[str, str, re.Match[str]]:
    hh = county().households
    for hid, addr in zip(hh["household_id"], hh["address"], strict=True):
        m = pattern.match(addr)
        if m and (
            not small or all(int(g) < 100 for g in m.groups()[1:] if g.isdigit())
        ):
            return hid, addr, m
    raise AssertionError(f"no address matches {pattern.pattern}")
