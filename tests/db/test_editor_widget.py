"""The notebook editor (maps.editor.GridEditor) driven from Python as its buttons
drive it: the messages its front end sends run through the draft, and what it
shows (grids, buildings, the touched table) is what the database holds."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from editor_support import grid_counts, published_sample
from sqlalchemy import event, text

from geo.errors import GridMapError, NotFound
from geo.store.db import session_scope
from geo.store.edit_views import plan_buildings, plan_grids
from maps.editor import GridEditor


@pytest.fixture(scope="module")
def world(make_database):  # type: ignore[no-untyped-def]
    ws, pid, township = published_sample(make_database("editor_widget"))
    yield ws, pid, township
    ws.engine.dispose()


def _movable(ed: GridEditor) -> tuple[str, str, str]:
    """A (building, from grid, to grid) the rules accept: the border buildings of
    the fullest grids first, each tried into a neighbour with room."""
    props = {f["properties"]["code"]: f["properties"] for f in ed.grids["features"]}
    by_size = sorted(props, key=lambda c: -props[c]["households"])
    for a in by_size:
        for b in ed.draft.neighbours(a):
            if b not in props or props[b]["households"] > 290:
                continue
            for bid, n in ed.draft.border(a, b, limit=5):
                if (
                    props[a]["households"] - n >= 200
                    and props[b]["households"] + n <= 300
                ):
                    return bid, a, b
    raise AssertionError("no building can move in band in this township")


def _as_a_fresh_read_shows(ws: Any, ed: GridEditor) -> None:
    """What the editor shows after its edits is what a new editor reads whole."""
    fresh = GridEditor(ws.draft(ed.draft.plan_id, new=False), area=ed.area)
    assert ed.version == fresh.version
    assert ed.band == fresh.band
    assert ed.grids == fresh.grids
    assert ed.buildings == fresh.buildings


def test_the_editor_moves_undoes_and_validates(world) -> None:  # type: ignore[no-untyped-def]
    ws, pid, township = world
    ed = GridEditor(ws.draft(pid), area=township)
    d = ed.draft
    codes = [f["properties"]["code"] for f in ed.grids["features"]]
    assert codes and all(c.startswith(township[:9]) for c in codes)
    shown = {
        f["properties"]["code"]: f["properties"]["households"]
        for f in ed.grids["features"]
    }
    assert shown == grid_counts(ws, d.plan_id, codes)
    n_buildings = sum(f["properties"]["households"] for f in ed.buildings["features"])
    assert n_buildings == sum(shown.values())
    assert (
        ed._esm.startswith("/* @preserve\n * Leaflet") and "export default" in ed._esm
    )

    bid, a, b = _movable(ed)
    ed.select(buildings=[bid])
    assert ed.selected == [bid]
    before = grid_counts(ws, d.plan_id, [a, b])
    ed._on_message(ed, {"op": "move", "to_grid": b}, [])  # the 移入网格 button
    assert ed.message_kind == "info", ed.message
    after = grid_counts(ws, d.plan_id, [a, b])
    moved = before[a] - after[a]
    assert moved > 0 and after[b] == before[b] + moved
    table = {r["code"]: r["households"] for r in ed.touched_rows}
    assert table == after
    assert ed.selected == []
    assert ed.version == d.version
    _as_a_fresh_read_shows(ws, ed)

    ed._on_message(ed, {"op": "undo"}, [])
    assert grid_counts(ws, d.plan_id, [a, b]) == before
    assert {r["code"]: r["households"] for r in ed.touched_rows} == before
    _as_a_fresh_read_shows(ws, ed)
    ed._on_message(ed, {"op": "redo"}, [])
    assert grid_counts(ws, d.plan_id, [a, b]) == after
    _as_a_fresh_read_shows(ws, ed)
    ed._on_message(ed, {"op": "validate"}, [])
    assert ed.message in ("校验通过",) or ed.message.endswith("个问题")
    assert list(ed.touched.columns)[:4] == ["code", "label", "status", "households"]

    # the grid buttons: lock (then nothing can be taken from it), unlock, split
    ed._on_message(ed, {"op": "lock", "grid": b}, [])
    assert ed.message_kind == "info", ed.message
    locked = {
        f["properties"]["code"]: f["properties"]["locked"] for f in ed.grids["features"]
    }
    assert locked[b] and not locked[a]
    _as_a_fresh_read_shows(ws, ed)  # the buildings on b are locked too
    back = next(u for u, _ in d.border(b, a))
    ed.select(buildings=[back])
    ed._on_message(ed, {"op": "move", "to_grid": a}, [])
    assert ed.message_kind == "error" and "lock" in ed.message
    ed._on_message(ed, {"op": "unlock", "grid": b}, [])
    ed._on_message(ed, {"op": "split", "grid": b}, [])  # halves out of band: refused
    assert ed.message_kind == "error" and "outside" in ed.message
    ed.allow_out_of_band = True  # the 允许超出户数范围 box
    ed._on_message(ed, {"op": "split", "grid": b}, [])
    assert ed.message_kind == "info", ed.message
    made = [r for r in ed.touched_rows if r["status"] == "created"]
    _as_a_fresh_read_shows(ws, ed)
    assert made and grid_counts(ws, d.plan_id, [b, made[0]["code"]]) == {
        r["code"]: r["households"]
        for r in ed.touched_rows
        if r["code"] in (b, made[0]["code"])
    }


def test_the_editor_shows_refusals_and_stale_drafts(world) -> None:  # type: ignore[no-untyped-def]
    ws, pid, township = world
    ed = GridEditor(ws.draft(pid), area=township)
    with pytest.raises(GridMapError, match="nothing selected"):
        ed.move_to("x")
    with pytest.raises(GridMapError, match="not in area"):
        ed.select(buildings=["B-nowhere"])
    bid, a, b = _movable(ed)
    ed.select(buildings=[bid])
    ed._on_message(ed, {"op": "move", "to_grid": "99999999999999"}, [])
    assert ed.message_kind == "error" and "99999999999999" in ed.message
    # someone else edits the draft (the viewer, the API): the widget says so
    other = ws.draft(ed.draft.plan_id, new=False)
    other.lock([a])
    ed.select(buildings=[bid])
    ed._on_message(ed, {"op": "move", "to_grid": b}, [])
    assert ed.message_kind == "error" and "version" in ed.message


def test_the_read_after_an_edit_is_the_touched_grids_and_takes_no_lock(world) -> None:  # type: ignore[no-untyped-def]
    """The widget's read after an edit: the grids the edit changed and the buildings
    on them, without the draft's row lock; a concurrent edit holding that lock does
    not hold the widget up (the read finishes while the lock is held)."""
    ws, pid, township = world
    ed = GridEditor(ws.draft(pid), area=township)
    bid, a, b = _movable(ed)
    lone = bid.startswith("h:")  # a household without a building
    res = ed.draft.move(  # made behind the widget's back: it shows it next
        to_grid=b, households=[bid[2:]] if lone else [], buildings=[] if lone else [bid]
    )
    statements: list[str] = []

    def seen(_c: Any, _cur: Any, sql: str, *_: Any) -> None:
        statements.append(sql)

    holder = ws.engine.connect()  # another edit, holding the draft's row lock
    tx = holder.begin()
    holder.execute(
        text("SELECT 1 FROM plans WHERE id = :p FOR UPDATE"), {"p": ed.draft.plan_id}
    )
    event.listen(ws.engine, "before_cursor_execute", seen)
    done, failed = threading.Event(), []

    def show() -> None:
        try:
            ed._show(res)
        except Exception as e:  # pragma: no cover - reported below
            failed.append(e)
        finally:
            done.set()

    worker = threading.Thread(target=show)
    worker.start()
    try:
        finished = done.wait(120)  # a guard only: a read that waits never finishes
    finally:
        event.remove(ws.engine, "before_cursor_execute", seen)
        tx.rollback()
        holder.close()
        worker.join()
    assert finished, "the read after an edit waited for the draft's row lock"
    assert not failed, failed
    assert not [q for q in statements if "FOR UPDATE" in q]
    reads = [q for q in statements if "ST_AsGeoJSON" in q or "ST_Centroid" in q]
    assert len(reads) == 2 and all("g.code = ANY(" in q for q in reads), reads
    assert {r["code"] for r in ed.touched_rows} >= {a, b}
    _as_a_fresh_read_shows(ws, ed)


def test_the_edit_views_read_an_area_and_grids(world) -> None:  # type: ignore[no-untyped-def]
    ws, pid, township = world
    with session_scope(ws.engine) as s:
        every = plan_grids(s, pid)
        mine = plan_grids(s, pid, area=township)
        codes = [f["properties"]["code"] for f in mine["features"]]
        assert codes == sorted(codes) and 0 < len(codes) < len(every["features"])
        assert all(f["properties"]["area_name"] for f in mine["features"])
        two = plan_grids(s, pid, area=township, codes=[codes[0], codes[-1], "nope"])
        assert two["features"] == [
            f for f in mine["features"] if f["id"] in (codes[0], codes[-1])
        ]
        on_first = plan_buildings(s, pid, area=township, grids=[codes[0]], limit=None)
        n = {
            f["properties"]["code"]: f["properties"]["households"]
            for f in mine["features"]
        }
        assert all(codes[0] in f["properties"]["grids"] for f in on_first["features"])
        assert (
            sum(f["properties"]["households"] for f in on_first["features"])
            >= n[codes[0]]
        )
        area = plan_buildings(s, pid, area=township, limit=None)
        assert not area["truncated"] and area["bbox"] is None
        assert sum(f["properties"]["households"] for f in area["features"]) == sum(
            n.values()
        )
        assert plan_buildings(s, pid, area=township, limit=3)["truncated"]
        with pytest.raises(NotFound, match="no such area"):
            plan_grids(s, pid, area="000000000000")
        with pytest.raises(NotFound, match="no such area"):
            plan_buildings(s, pid, area="000000000000")
