"""Importing past events from CSV (UTF-8, GB18030) and XLSX: all or nothing, every
problem named by file, row and field (issue 13)."""

from __future__ import annotations

from pathlib import Path

import events_support as ev
import openpyxl
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import InputError
from geo.events.rows import read_event_rows
from geo.store import events as store

HEADER = "event_id,reported_at,category,description,address,lon,lat,reporter,resident_name,resident_phone,status,settled_at,satisfaction\n"


world = ev.world


def _count(session: Session) -> tuple[int, int]:
    return (
        session.execute(text("SELECT count(*) FROM events")).scalar_one(),
        session.execute(text("SELECT count(*) FROM event_log")).scalar_one(),
    )


def _write(tmp_path: Path, name: str, body: str, encoding: str = "utf-8") -> Path:
    p = tmp_path / name
    p.write_bytes((HEADER + body).encode(encoding))
    return p


GOOD = (
    f"A-1,2025-03-01 08:30,010101,楼上噪音,{ev.east_address(1)},,,GW-E,刘阿姨,138,reported,,\n"
    f"A-2,2025-03-02 09:00,040101,垃圾堆放,,120.3,30.05,GW-W,,,evaluated,2025-03-03 10:00,4\n"
    f"A-3,2024-06-01 10:00,010103,宅基地,{ev.west_address(2)},,,,,,settled,2024-06-05,\n"
)


def test_a_good_file_is_imported(
    session: Session, world: ev.World, tmp_path: Path
) -> None:
    rows = read_event_rows(
        _write(tmp_path, "events.csv", GOOD), timezone="Asia/Shanghai"
    )
    report = store.import_events(session, rows, source="events.csv")
    assert (report.rows, report.inserted) == (3, 3)
    got = {e.external_id: e for e in store.list_events(session).items}
    a1, a2, a3 = got["A-1"], got["A-2"], got["A-3"]
    assert (a1.grid_code, a1.household_id, a1.tier, a1.status) == (
        "EV11-001",
        "E1",
        "grid",
        "reported",
    )
    assert a1.reported_at.isoformat() == "2025-03-01T00:30:00+00:00"
    assert a1.resident_name == "刘阿姨" and a1.reporter_kind == "resident"
    assert a1.assignee is not None and a1.assignee.id == "GW-E"
    assert (a1.deadline - a1.reported_at).total_seconds() == 72 * 3600
    assert (a2.grid_code, a2.located_by, a2.satisfaction) == ("EV12-001", "point", 4)
    assert a2.tier == "grid" and a2.household_id is None  # 040101 is 民事
    # reported before any plan: the published plan is used
    assert (a3.grid_code, a3.tier, a3.plan_id) == ("EV12-001", "village", world.plan_id)
    assert a3.assignee is not None and a3.assignee.id == "VC-W"
    log = store.get_event(session, a2.id).log
    assert [(x.action, x.to_status, x.note) for x in log] == [
        ("import", "evaluated", "imported from events.csv")
    ]
    stats = store.event_statistics(session, group_by="all")
    assert stats.total.total == 3 and stats.total.settled == 2


def test_a_gb18030_file_with_bad_rows_names_them_and_writes_nothing(
    session: Session, world: ev.World, tmp_path: Path
) -> None:
    before = _count(session)
    body = (
        f"B-1,2025-03-01 08:30,010101,噪音,{ev.east_address(1)},,,,,,reported,,\n"
        f"B-2,三月一日,010101,噪音,{ev.east_address(2)},,,,,,reported,,\n"
        f"B-3,2025-03-01,010101,噪音,,,,,,,reported,,\n"
        f"B-4,2025-03-01,010101,噪音,{ev.east_address(3)},,,,,,settled,,9\n"
    )
    path = _write(tmp_path, "事件.csv", body, encoding="gb18030")
    with pytest.raises(InputError) as info:
        read_event_rows(path)
    where = {(p.source, p.row, p.field) for p in info.value.problems}
    assert where == {
        ("事件.csv", 2, "reported_at"),
        ("事件.csv", 3, "address"),
        ("事件.csv", 4, "settled_at"),
        ("事件.csv", 4, "satisfaction"),
    }
    assert "'三月一日' is not a date" in str(info.value)
    assert _count(session) == before


def test_rows_the_database_cannot_place_are_named_and_nothing_is_written(
    session: Session, world: ev.World, tmp_path: Path
) -> None:
    store.import_events(
        session,
        read_event_rows(_write(tmp_path, "first.csv", GOOD)),
        source="first.csv",
    )
    before = _count(session)
    body = (
        f"C-1,2025-03-01,999999,,{ev.east_address(1)},,,,,,reported,,\n"
        f"C-2,2025-03-01,010101,,{ev.east_address(1)},,,NOBODY,,,reported,,\n"
        f"C-3,2025-03-01,010101,,平安镇南山村9组9号,,,,,,reported,,\n"
        f"C-4,2025-03-01,010101,,,121.5,30.1,,,,reported,,\n"
        f"A-1,2025-03-01,010101,,{ev.east_address(1)},,,,,,reported,,\n"
        f"C-6,2025-03-01,010101,,{ev.east_address(4)},,,,,,reported,,\n"
    )
    rows = read_event_rows(_write(tmp_path, "second.csv", body))
    with pytest.raises(InputError) as info:
        store.import_events(session, rows, source="second.csv")
    where = {(p.row, p.field) for p in info.value.problems}
    assert where == {
        (1, "category"),
        (2, "reporter"),
        (3, "address"),
        (4, "lon"),
        (5, "event_id"),
    }
    text_ = str(info.value)
    assert "second.csv row 1, field 'category': unknown category '999999'" in text_
    assert "already stored" in text_ and "no household has the address" in text_
    assert _count(session) == before


def test_unknown_columns_and_a_workbook(
    session: Session, world: ev.World, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("reported_at,category,address,colour\n2025-01-01,010101,x,red\n")
    with pytest.raises(InputError, match="unknown column"):
        read_event_rows(bad)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["reported_at", "category", "address", "status", "settled_at"])
    ws.append(
        ["2025-05-01 10:00", "030102", ev.west_address(3), "settled", "2025-05-02"]
    )
    ws.append(["2025-05-03 10:00", "030102", ev.west_address(4), None, None])
    path = tmp_path / "events.xlsx"
    wb.save(path)
    report = store.import_events(session, read_event_rows(path), source=path.name)
    assert report.inserted == 2
    west = store.list_events(session, area_code=ev.WEST)
    assert {e.household_id for e in west.items} == {"W3", "W4"}
    assert {e.status for e in west.items} == {"settled", "reported"}
