"""A tiny township for the event tests (no tests here).

平安镇 (township EV10) of county EV00 has two villages, 东山村 (EV11) and 西山村
(EV12), six households each, one grid per village (plan 1, published
2025-01-01) with its grid worker, a village committee member per village and a
township office. ``load_world`` commits it (the API and concurrency tests need
other connections to see it); ``clear_world`` empties the tables again; the
``world`` fixture does both around a test module.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geo.io import prepare
from geo.store.db import session_scope
from geo.store.keys import create_key
from geo.store.loading import load
from geo.store.plans import publish_plan, save_assignments, save_plan

COUNTY, TOWNSHIP, EAST, WEST = "EV00", "EV10", "EV11", "EV12"
TABLES = (
    "event_log, events, assignments, grids, plans, households, people, "
    "admin_areas, api_keys, cap_reveals"
)
PUBLISHED_AT = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
EAST_BOX = (120.0, 30.0, 120.2, 30.2)
WEST_BOX = (120.2, 30.0, 120.4, 30.2)


def east_address(n: int) -> str:
    return f"平安镇东山村1组{n}号"


def west_address(n: int) -> str:
    return f"平安镇西山村1组{n}号"


def _point(box: tuple[float, float, float, float], n: int) -> shapely.Point:
    return shapely.Point(box[0] + 0.02 + 0.025 * n, box[1] + 0.1)


@dataclass(frozen=True)
class World:
    plan_id: int
    planner: str
    worker: str
    viewer: str


def areas() -> gpd.GeoDataFrame:
    county = shapely.box(120.0, 30.0, 120.4, 30.2)
    return gpd.GeoDataFrame(
        {
            "code": [COUNTY, TOWNSHIP, EAST, WEST],
            "name": ["测试县", "平安镇", "东山村", "西山村"],
            "level": ["county", "township", "village", "village"],
            "parent_code": [None, COUNTY, TOWNSHIP, TOWNSHIP],
        },
        geometry=[county, county, shapely.box(*EAST_BOX), shapely.box(*WEST_BOX)],
        crs=4326,
    )


def households() -> gpd.GeoDataFrame:
    rows = []
    for n in range(1, 7):
        rows.append(
            {
                "household_id": f"E{n}",
                "address": east_address(n),
                "area_code": EAST,
                "geometry": _point(EAST_BOX, n),
            }
        )
        rows.append(
            {
                "household_id": f"W{n}",
                "address": west_address(n),
                "area_code": WEST,
                "geometry": _point(WEST_BOX, n),
            }
        )
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)


def people() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "person_id": ["GW-E", "GW-W", "VC-E", "VC-W", "TO-1"],
            "name": ["王网格", "李网格", "张村委", "赵村委", "陈镇办"],
            "role": [
                "grid_worker",
                "grid_worker",
                "village_committee",
                "village_committee",
                "township_office",
            ],
            "work_phone": [
                "0570-1001",
                "0570-1002",
                "0570-2001",
                "0570-2002",
                "0570-3001",
            ],
            "area_code": [EAST, WEST, EAST, WEST, TOWNSHIP],
        }
    )


def grids(boxes: dict[str, tuple[tuple[float, ...], str, str]]) -> gpd.GeoDataFrame:
    """``code → (box, area code, worker id)`` as a plan's grids."""
    return gpd.GeoDataFrame(
        {
            "grid_code": list(boxes),
            "area_code": [v[1] for v in boxes.values()],
            "worker_id": [v[2] for v in boxes.values()],
        },
        geometry=[shapely.box(*v[0]) for v in boxes.values()],
        crs=4326,
    )


def save_and_publish(
    session: Session,
    boxes: dict[str, tuple[tuple[float, ...], str, str]],
    at: dt.datetime,
) -> int:
    """A plan of the county with these grids, households assigned by location."""
    g = grids(boxes)
    plan_id = save_plan(session, COUNTY, g, name=f"plan {at:%Y}")
    hh = households()
    joined = gpd.sjoin(hh, g, predicate="within")
    save_assignments(session, plan_id, joined[["household_id", "grid_code"]])
    publish_plan(session, plan_id, at=at)
    return plan_id


FIRST_PLAN = {
    "EV11-001": (EAST_BOX, EAST, "GW-E"),
    "EV12-001": (WEST_BOX, WEST, "GW-W"),
}


def clear_world(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
        conn.execute(text("DELETE FROM routing_rules WHERE area_code IS NOT NULL"))


def clear_events(engine: Engine) -> None:
    """Forget committed events (TRUNCATE: the log refuses row deletes)."""
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE event_log, events"))


def load_world(engine: Engine) -> World:
    clear_world(engine)
    with session_scope(engine) as s:
        load(s, prepare(areas(), "areas", source="areas"))
        load(s, prepare(people(), "people", source="people"))
        load(s, prepare(households(), "households", source="households"))
    with session_scope(engine) as s:
        plan_id = save_and_publish(s, FIRST_PLAN, PUBLISHED_AT)
        planner = create_key(s, "planner", name="events tests")
        worker = create_key(s, "worker", name="王网格")
        viewer = create_key(s, "viewer", name="events tests")
    return World(plan_id, planner, worker, viewer)


@pytest.fixture(scope="module")
def world(engine: Engine) -> Iterator[World]:
    """The township loaded for a test module (``world = ev.world``), cleared after."""
    try:
        yield load_world(engine)
    finally:
        clear_world(engine)
