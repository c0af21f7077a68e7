"""The statistics rollup (migration 0006): kept by triggers through every write path
(report, transitions, escalation, import, direct SQL, TRUNCATE) and giving the same
figures as the direct query over the events (issue 13, statistics < 200 ms)."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import events_support as ev
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geo.events.rows import read_event_rows
from geo.store import events as store
from geo.store.event_rollup import bucket_width_h

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
ACTOR = "tests"
HEADER = (
    "event_id,reported_at,category,description,address,lon,lat,reporter,"
    "resident_name,resident_phone,status,settled_at,satisfaction\n"
)


world = ev.world


def _report(session: Session, n: int, west: bool, at: dt.datetime) -> Any:
    return store.report_event(
        session,
        category="010101",
        actor=ACTOR,
        address=ev.west_address(n) if west else ev.east_address(n),
        reporter="GW-W" if west else "GW-E",
        reported_at=at,
    )


def _step(session: Session, e: Any, action: str, at: dt.datetime, **kw: Any) -> Any:
    return store.transition(
        session, e.id, action, actor=ACTOR, expected_version=e.version, now=at, **kw
    )


def _same(session: Session, now: dt.datetime, **kw: Any) -> None:
    """The rollup's answer equals the direct query's (the median within a bucket)."""
    for group_by in store.STATS_GROUPS:
        fast = store.event_statistics(session, group_by=group_by, now=now, **kw)
        slow = store.event_statistics(
            session, group_by=group_by, now=now, use_rollup=False, **kw
        )
        assert [r.code for r in fast.rows] == [r.code for r in slow.rows], group_by
        for a, b in [*zip(fast.rows, slow.rows, strict=True), (fast.total, slow.total)]:
            exact = b.median_hours_to_settle
            if exact is None:
                assert a.median_hours_to_settle is None
            else:
                assert a.median_hours_to_settle is not None
                assert (
                    abs(a.median_hours_to_settle - exact)
                    <= bucket_width_h(exact) + 0.01
                ), (group_by, a.code, a.median_hours_to_settle, exact)
            assert {**a.__dict__, "median_hours_to_settle": None} == {
                **b.__dict__,
                "median_hours_to_settle": None,
            }, (group_by, a.code)


def _rollup(session: Session) -> list[Any]:
    return [
        tuple(r)
        for r in session.execute(
            text(
                "SELECT * FROM event_rollup WHERE n <> 0 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8"
            )
        )
    ]


def test_rollup_matches_the_events_after_every_kind_of_write(
    session: Session, world: ev.World, tmp_path: Path
) -> None:
    rnd = random.Random(5)
    events = []
    for i in range(24):
        at = T0 + i * 7 * H
        events.append(_report(session, 1 + i % 6, west=i % 3 == 0, at=at))
    _same(session, T0 + 200 * H)
    # transitions: sort to every tier, accept, settle after varied delays, rate,
    # close, return (unsettles)
    for i, e in enumerate(events[:18]):
        at = e.reported_at
        e = _step(
            session, e, "sort", at + H, tier=("grid", "village", "township")[i % 3]
        )
        e = _step(session, e, "accept", at + 2 * H)
        if i % 5 == 4:
            continue
        e = _step(session, e, "settle", at + rnd.uniform(0.2, 900) * H)
        if i % 4 == 0:
            e = _step(session, e, "return", e.updated_at + H, note="not done")
            continue
        if i % 3 != 2:
            e = _step(session, e, "evaluate", e.updated_at + H, satisfaction=1 + i % 5)
        if i % 2:
            e = _step(session, e, "close", e.updated_at + H)
        events[i] = e
    _same(session, T0 + 300 * H)
    # escalation of the open ones past their deadline
    assert store.escalate_overdue(session, now=T0 + 400 * H)
    _same(session, T0 + 400 * H)
    _same(session, T0 + 2000 * H)
    # an import (settled and rated rows, one by point)
    path = tmp_path / "events.csv"
    path.write_text(
        HEADER
        + f"R-1,2025-03-01 08:30,010101,噪音,{ev.east_address(1)},,,GW-E,,,reported,,\n"
        + "R-2,2025-03-02 09:00,040101,垃圾,,120.3,30.05,GW-W,,,evaluated,"
        + "2025-03-03 10:00,4\n"
        + f"R-3,2024-06-01 10:00,010103,宅基地,{ev.west_address(2)},,,,,,settled,"
        + "2024-06-05,\n",
        encoding="utf-8",
    )
    store.import_events(session, read_event_rows(path), source="events.csv")
    _same(session, T0 + 400 * H)
    # the area filter is served from the rollup too
    _same(session, T0 + 400 * H, area_code=ev.WEST)
    _same(session, T0 + 400 * H, area_code=ev.TOWNSHIP)
    # a direct UPDATE and DELETE go through the triggers as well
    session.execute(
        text("UPDATE events SET satisfaction = 2 WHERE satisfaction IS NOT NULL")
    )
    session.execute(text("ALTER TABLE event_log DISABLE TRIGGER event_log_append_only"))
    session.execute(
        text(
            "DELETE FROM event_log WHERE event_id IN (SELECT id FROM events "
            "WHERE external_id = 'R-2')"
        )
    )
    session.execute(text("ALTER TABLE event_log ENABLE TRIGGER event_log_append_only"))
    session.execute(text("DELETE FROM events WHERE external_id = 'R-2'"))
    _same(session, T0 + 400 * H)
    # counting every event again from scratch gives the same rollup
    before = _rollup(session)
    assert before
    session.execute(
        text("TRUNCATE event_rollup, event_open_deadlines, event_settle_hist")
    )
    session.execute(
        text(
            "WITH x AS (UPDATE events SET version = version RETURNING id) "
            "SELECT count(*) FROM x"
        )
    )
    assert _rollup(session) == []  # an update adds and subtracts: nets to nothing


def test_rollup_rebuilt_from_scratch_equals_the_maintained_one(
    session: Session, world: ev.World
) -> None:
    for i in range(6):
        e = _report(session, 1 + i, west=i % 2 == 1, at=T0 + i * H)
        e = _step(session, e, "sort", T0 + 10 * H, tier="village")
        e = _step(session, e, "accept", T0 + 11 * H)
        if i % 2:
            _step(session, e, "settle", T0 + (12 + 3 * i) * H)
    maintained = _rollup(session)
    session.execute(text("TRUNCATE event_rollup"))
    # the migration's backfill statement: every event counted once
    session.execute(
        text(
            "INSERT INTO event_rollup SELECT coalesce(grid_id, 0), coalesce(area_id, 0), "
            "coalesce(village_id, 0), coalesce(township_id, 0), status, tier, escalated, "
            "settled_at IS NOT NULL, count(*), coalesce(sum(satisfaction), 0), "
            "count(satisfaction) FROM events GROUP BY 1, 2, 3, 4, 5, 6, 7, 8"
        )
    )
    assert _rollup(session) == maintained


def test_truncating_events_empties_the_rollup(engine: Engine, world: ev.World) -> None:
    with engine.begin() as conn:
        s = Session(bind=conn)
        _report(s, 1, west=False, at=T0)
        s.flush()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT sum(n) FROM event_rollup")).scalar() == 1
    ev.clear_events(engine)
    with engine.connect() as conn:
        for table in ("event_rollup", "event_open_deadlines", "event_settle_hist"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0


def test_dated_statistics_still_scan_the_events(
    session: Session, world: ev.World
) -> None:
    for i in range(4):
        _report(session, 1 + i, west=False, at=T0 + i * 24 * H)
    got = store.event_statistics(
        session, group_by="all", since=T0 + 24 * H, until=T0 + 72 * H
    )
    assert got.total.total == 2
