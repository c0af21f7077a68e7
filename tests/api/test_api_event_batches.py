"""``POST /events``'s hot path in batches (issue 13, ≥ 500 reports/s): the reports
waiting together go as one statement and each gets the answer it would get alone;
what only the reference path decides is still left to it, report by report; and a
report whose statement fails fails alone."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time
from typing import Any

import events_support as ev
import psycopg
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from api.report_batches import ReportBatcher
from geo.store import event_hotpath
from geo.store import events as store

AT = dt.datetime(2026, 3, 1, 8, 30, 0, 123456, tzinfo=dt.UTC)
_LON, _LAT = ev.WEST_BOX[0] + 0.05, ev.WEST_BOX[1] + 0.05

# (category, address, lon, lat, reporter, resident name): the hot path's cases
REPORTS = [
    ("010101", ev.east_address(3), None, None, "GW-E", "刘阿姨"),
    ("010204", ev.west_address(4), None, None, None, None),
    ("010101", "平安镇西山村一组５号", None, None, None, None),
    ("020101", None, _LON, _LAT, "TO-1", None),
    (
        "010101",
        ev.east_address(2),
        ev.EAST_BOX[0] + 0.01,
        ev.EAST_BOX[1] + 0.01,
        None,
        None,
    ),
    ("999999", ev.east_address(1), None, None, None, None),  # unknown category
    ("010101", ev.east_address(1), None, None, "NOBODY", None),  # unknown reporter
    ("010101", None, 121.0, 31.0, None, None),  # outside every grid
]
DECIDED_ELSEWHERE = {5, 6, 7}
VOLATILE = {"id", "version"}


world = ev.world


def _params(i: int, description: str | None = "批量") -> dict[str, Any]:
    cat, addr, lon, lat, rep, name = REPORTS[i]
    params = event_hotpath.report_params(
        category=cat,
        actor="worker key test",
        description=description,
        address=addr,
        lon=lon,
        lat=lat,
        reporter=rep,
        resident_name=name,
        resident_phone=None,
        reported_at=AT,
    )
    assert params is not None
    return params


async def _send(
    db_url: str, reports: list[dict[str, Any]]
) -> tuple[list[Any], list[int]]:
    """Every report at once through one batcher: its answers and batch sizes."""
    url = db_url.replace("postgresql+psycopg://", "postgresql://")
    async with AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool:
        await pool.open(wait=True)
        batcher = ReportBatcher(pool)
        answers = await asyncio.gather(
            *(batcher.report(r) for r in reports), return_exceptions=True
        )
        return list(answers), batcher.sizes


def _event(row: Any) -> dict[str, Any]:
    rec = event_hotpath.report_record(row)
    return {k: v for k, v in rec.__dict__.items() if k not in VOLATILE}


def _stored(engine: Engine, event_id: int) -> tuple[Any, ...]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT reporter_kind, reporter_person_id, resident_name, reported_by, "
                "description, address, ST_AsText(geom), located_by, household_id, "
                "plan_id, grid_id, area_id, village_id, township_id, category_code, "
                "tier, assignee_id, rule_id, deadline, status, updated_at, "
                "(SELECT array_agg(ROW(actor, action, to_status, details, at)::text) "
                "FROM event_log l WHERE l.event_id = e.id) FROM events e WHERE id = :i"
            ),
            {"i": event_id},
        ).one()
    return tuple(row)


def test_a_batch_answers_and_stores_what_each_report_alone_does(
    db_url: str, engine: Engine, world: ev.World
) -> None:
    reports = [_params(i) for i in range(len(REPORTS))]
    together, sizes = asyncio.run(_send(db_url, reports))
    assert sizes == [len(REPORTS)]  # one statement for all of them
    alone = []
    for r in reports:
        answers, sizes = asyncio.run(_send(db_url, [r]))
        assert sizes == [1]
        alone.append(answers[0])
    for i, (a, b) in enumerate(zip(together, alone, strict=True)):
        if i in DECIDED_ELSEWHERE:
            assert a is None and b is None, i  # left to the reference path
            continue
        assert a is not None and b is not None, i
        assert a.id != b.id
        assert _event(a) == _event(b), i
        assert _stored(engine, a.id) == _stored(engine, b.id), i
    assert together[0].reported_at == AT  # to the microsecond, through JSON
    # the statistics' rollup counted the batch's events as it counts single ones
    with Session(engine) as session:
        for group_by in ("all", "grid"):
            fast, slow = (
                store.event_statistics(
                    session, group_by=group_by, now=AT, use_rollup=rollup
                )
                for rollup in (True, False)
            )
            strip = {"median_hours_to_settle": None}
            assert [{**r.__dict__, **strip} for r in (*fast.rows, fast.total)] == [
                {**r.__dict__, **strip} for r in (*slow.rows, slow.total)
            ]
        assert fast.total.total >= 2 * (len(REPORTS) - len(DECIDED_ELSEWHERE))


def test_a_report_whose_statement_fails_fails_alone(
    db_url: str, engine: Engine, world: ev.World
) -> None:
    # a NUL cannot be stored (the API refuses it before; here it makes the
    # batch's statement fail, as any database error of one report would)
    reports = [_params(0), _params(1, "bad\x00text"), _params(3)]
    answers, sizes = asyncio.run(_send(db_url, reports))
    assert sizes == [3, 1, 1, 1]  # the batch, then each alone
    assert isinstance(answers[1], psycopg.Error)
    assert answers[0] is not None and answers[2] is not None
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT count(*) FROM events WHERE id IN (:a, :b)"),
            {"a": answers[0].id, "b": answers[2].id},
        ).scalar_one()
    assert stored == 2


def test_without_a_database_a_batch_fails_at_once(world: ev.World) -> None:
    # nothing listens there: no connection within the pool's timeout (the 503
    # of every report), once for the batch, not once per report in turn
    async def send() -> tuple[list[Any], list[int], float]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = f"postgresql://nobody@127.0.0.1:{port}/none?connect_timeout=1"
        async with AsyncConnectionPool(
            url, min_size=1, timeout=1.0, open=False
        ) as pool:
            await pool.open(wait=False)
            batcher = ReportBatcher(pool)
            t = time.monotonic()
            answers = await asyncio.gather(
                *(batcher.report(_params(i)) for i in (0, 1, 3)), return_exceptions=True
            )
            return list(answers), batcher.sizes, time.monotonic() - t

    answers, sizes, took = asyncio.run(send())
    assert all(isinstance(a, psycopg.OperationalError) for a in answers), answers
    assert sizes == [3]
    assert took < 2.5
