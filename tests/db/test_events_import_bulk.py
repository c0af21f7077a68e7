"""Importing events fast (issue 13, 1M events < 60 s): placement once per household and
plan epoch, and the bulk mode that drops and rebuilds indexes and foreign keys inside
the import's transaction — the same rows, the same schema, still all or nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import events_support as ev
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import InputError
from geo.events.rows import read_event_rows
from geo.store import event_import
from geo.store import events as store

HEADER = (
    "event_id,reported_at,category,description,address,lon,lat,reporter,"
    "resident_name,resident_phone,status,settled_at,satisfaction\n"
)
REDRAWN_AT = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
SECOND_PLAN = {
    "EV11-A": ((120.0, 30.0, 120.1, 30.2), ev.EAST, "GW-W"),
    "EV11-B": ((120.1, 30.0, 120.2, 30.2), ev.EAST, "GW-E"),
    "EV12-A": (ev.WEST_BOX, ev.WEST, "GW-W"),
}


world = ev.world


def _schema(session: Session) -> list[Any]:
    """Indexes and constraints of events and event_log, by name and definition."""
    rows = session.execute(
        text(
            "SELECT 'index', c.relname::text, pg_get_indexdef(i.indexrelid) "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid IN ('events'::regclass, 'event_log'::regclass) "
            "UNION ALL SELECT 'constraint', conname::text, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE conrelid IN ('events'::regclass, "
            "'event_log'::regclass) ORDER BY 1, 2"
        )
    ).all()
    return [tuple(r) for r in rows]


def _rows(session: Session) -> list[Any]:
    return [
        tuple(r)
        for r in session.execute(
            text(
                "SELECT e.external_id, g.code, e.plan_id, e.household_id, e.tier, "
                "e.assignee_id, e.rule_id, e.deadline, e.located_by, e.village_id, "
                "e.township_id, l.action, l.details FROM events e "
                "JOIN grids g ON g.id = e.grid_id "
                "JOIN event_log l ON l.event_id = e.id ORDER BY e.external_id"
            )
        )
    ]


def _file(tmp_path: Path, prefix: str) -> Path:
    lines = []
    for i in range(1, 7):
        # before the first plan, during it, after the redraw; addresses and points
        for j, when in enumerate(("2024-06-01 10:00", "2025-03-01", "2026-07-01")):
            addr = ev.east_address(i) if i % 2 else ev.west_address(i)
            status, settled, rating = (
                ("settled", "2026-07-02", "") if j == 2 else ("reported", "", "")
            )
            if i == 6:
                lines.append(
                    f"{prefix}-{i}-{j},{when},010204,,,120.05,30.1,,,,{status},"
                    f"{settled},{rating}"
                )
            else:
                lines.append(
                    f"{prefix}-{i}-{j},{when},010101,,{addr},,,GW-E,,,{status},"
                    f"{settled},{rating}"
                )
    path = tmp_path / f"{prefix}.csv"
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_events_go_to_the_plan_in_force_when_reported(
    session: Session, world: ev.World, tmp_path: Path
) -> None:
    second = ev.save_and_publish(session, SECOND_PLAN, REDRAWN_AT)
    store.import_events(session, read_event_rows(_file(tmp_path, "P")), source="p.csv")
    got = {e.external_id: e for e in store.list_events(session, limit=100).items}
    # before any plan: the published one (the second); during the first: the
    # first; after the redraw: the second
    assert (got["P-1-0"].grid_code, got["P-1-0"].plan_id) == ("EV11-A", second)
    assert (got["P-1-1"].grid_code, got["P-1-1"].plan_id) == ("EV11-001", world.plan_id)
    assert (got["P-1-2"].grid_code, got["P-1-2"].plan_id) == ("EV11-A", second)
    assert (got["P-2-1"].grid_code, got["P-2-2"].grid_code) == ("EV12-001", "EV12-A")
    assert (got["P-6-1"].grid_code, got["P-6-1"].located_by) == ("EV11-001", "point")
    assert got["P-6-2"].grid_code == "EV11-A"


def test_a_bulk_import_stores_the_same_and_rebuilds_the_schema(
    session: Session,
    world: ev.World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ev.save_and_publish(session, SECOND_PLAN, REDRAWN_AT)
    schema = _schema(session)
    path = _file(tmp_path, "Q")
    session.execute(text("SAVEPOINT before_import"))
    store.import_events(session, read_event_rows(path), source="q.csv")
    row_by_row = _rows(session)
    assert len(row_by_row) == 18
    session.execute(text("ROLLBACK TO SAVEPOINT before_import"))
    assert _rows(session) == []
    monkeypatch.setattr(event_import, "BULK_ROWS", 1)
    store.import_events(session, read_event_rows(path), source="q.csv")
    bulk = _rows(session)
    # the same events (the ids of the plans and people are the same too)
    assert bulk == row_by_row
    assert _schema(session) == schema
    # the rebuilt foreign keys still hold
    with pytest.raises(Exception, match="foreign key"):
        with session.begin_nested():
            session.execute(text("UPDATE events SET grid_id = -1"))


def test_a_bulk_import_with_a_bad_row_writes_nothing(
    session: Session,
    world: ev.World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(event_import, "BULK_ROWS", 1)
    schema = _schema(session)
    path = tmp_path / "bad.csv"
    path.write_text(
        HEADER
        + f"D-1,2025-03-01,010101,,{ev.east_address(1)},,,,,,reported,,\n"
        + "D-2,2025-03-01,999999,,,120.05,30.1,,,,reported,,\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError) as info:
        store.import_events(session, read_event_rows(path), source="bad.csv")
    assert {(p.row, p.field) for p in info.value.problems} == {(2, "category")}
    assert session.execute(text("SELECT count(*) FROM events")).scalar_one() == 0
    assert _schema(session) == schema
    # the caller's transaction goes on as before the import: no staging tables
    # left, the settings as they were, and the next import works
    assert session.execute(text("SELECT to_regclass('_stage_raw')")).scalar() is None
    assert session.execute(text("SHOW join_collapse_limit")).scalar() == "8"
    path.write_text(
        HEADER + f"D-1,2025-03-01,010101,,{ev.east_address(1)},,,,,,reported,,\n",
        encoding="utf-8",
    )
    store.import_events(session, read_event_rows(path), source="good.csv")
    assert session.execute(text("SELECT count(*) FROM events")).scalar_one() == 1
    assert _schema(session) == schema
    assert session.execute(text("SHOW work_mem")).scalar() != "256MB"


def test_times_keep_their_microseconds(
    session: Session, world: ev.World, tmp_path: Path
) -> None:
    # staged as integers (microseconds since 1970) and turned back into times
    path = tmp_path / "us.csv"
    path.write_text(
        HEADER
        + f"U-1,2025-03-01T08:30:00.123457+08:00,010101,,{ev.east_address(1)},,,,,,"
        + "settled,2099-12-31T23:59:59.999999Z,\n"
        + "U-2,1999-12-31 23:59:59.000001,010101,,,120.05,30.1,,,,reported,,\n",
        encoding="utf-8",
    )
    store.import_events(session, read_event_rows(path), source="us.csv")
    got = session.execute(
        text("SELECT reported_at, settled_at FROM events ORDER BY external_id")
    ).all()
    utc = dt.UTC
    assert got == [
        (
            dt.datetime(2025, 3, 1, 0, 30, 0, 123457, tzinfo=utc),
            dt.datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=utc),
        ),
        (dt.datetime(1999, 12, 31, 23, 59, 59, 1, tzinfo=utc), None),
    ]
