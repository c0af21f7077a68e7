"""Matters on the shared API test data, for the viewer's events layer (no tests here).

``load_events`` adds a seeded year of matters (``geo.services.load_sample_events``)
to the data of ``api_support`` (committed: the app uses its own connections) plus
one matter reported 30 days ago and never sorted, so at least one grid has an
overdue one; it creates a worker key. The ``api_data`` teardown empties the
tables again (TRUNCATE … CASCADE reaches events and their log).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import api_support as support
import pandas as pd
from sqlalchemy import text

from geo.services import load_sample_events
from geo.store.db import make_engine, session_scope
from geo.store.events import report_event
from geo.store.keys import create_key

END = dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass(frozen=True)
class MapEvents:
    worker: str
    open: int
    overdue: int
    overdue_grids: int
    #: residents' phones and the addresses stored with events, and the test
    #: matter's resident name and description: never on a map
    private: tuple[str, ...]


def load_events(api_data: support.ApiData) -> MapEvents:
    engine = make_engine(api_data.url)
    try:
        with session_scope(engine) as s:
            load_sample_events(s, seed=11, end=END)
            _, address, _ = support.pick_address(support.VILLAGE_RE, small=True)
            report_event(
                s,
                category="030101",
                actor="tests",
                description="楼道堆放杂物（测试）",
                address=address,
                resident_name="测试居民",
                resident_phone="13912345678",
                reported_at=END - dt.timedelta(days=30),
            )
            worker = create_key(s, "worker", name="tests")
        with session_scope(engine) as s:
            plan = api_data.plan
            per = pd.DataFrame(
                s.execute(
                    text(
                        "SELECT DISTINCT ON (e.id) e.id, g.code, e.deadline < now() AS late "
                        "FROM events e JOIN grids g ON g.plan_id = :p "
                        "AND ST_Intersects(g.geom, e.geom) WHERE e.status IN "
                        "('reported', 'sorted', 'in_hand', 'returned') ORDER BY e.id, g.code"
                    ),
                    {"p": plan},
                ).all(),
                columns=["id", "code", "late"],
            )
            private = s.execute(
                text(
                    "SELECT resident_phone, address FROM events "
                    "WHERE resident_phone IS NOT NULL"
                )
            ).all()
    finally:
        engine.dispose()
    return MapEvents(
        worker=worker,
        open=len(per),
        overdue=int(per["late"].sum()),
        overdue_grids=int(per[per["late"]]["code"].nunique()),
        private=(
            "测试居民",
            "楼道堆放杂物",
            *(v for row in private for v in row if v),
        ),
    )
