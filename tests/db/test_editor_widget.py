"""The notebook editor (maps.editor.GridEditor) driven from Python as its buttons
drive it: the messages its front end sends run through the draft, and what it
shows (grids, buildings, the touched table) is what the database holds."""

from __future__ import annotations

import pytest
from editor_support import grid_counts, published_sample

from geo.errors import GridMapError
from maps.editor import GridEditor


@pytest.fixture(scope="module")
def world(make_database):  # type: ignore[no-untyped-def]
    ws, pid, township = published_sample(make_database("editor_widget"))
    yield ws, pid, township
    ws.engine.dispose()


def _movable(ed: GridEditor) -> tuple[str, str, str]:
    """A (building, from grid, to grid) the rules accept: the border buildings of
    the fullest grids first, each tried into a neighbour with room."""
    props = {
        f["properties"]["grid_code"]: f["properties"] for f in ed.grids["features"]
    }
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


def test_the_editor_moves_undoes_and_validates(world) -> None:  # type: ignore[no-untyped-def]
    ws, pid, township = world
    ed = GridEditor(ws.draft(pid), area=township)
    d = ed.draft
    codes = [f["properties"]["grid_code"] for f in ed.grids["features"]]
    assert codes and all(c.startswith(township[:9]) for c in codes)
    shown = {
        f["properties"]["grid_code"]: f["properties"]["households"]
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

    ed._on_message(ed, {"op": "undo"}, [])
    assert grid_counts(ws, d.plan_id, [a, b]) == before
    assert {r["code"]: r["households"] for r in ed.touched_rows} == before
    ed._on_message(ed, {"op": "redo"}, [])
    assert grid_counts(ws, d.plan_id, [a, b]) == after
    ed._on_message(ed, {"op": "validate"}, [])
    assert ed.message in ("校验通过",) or ed.message.endswith("个问题")
    assert list(ed.touched.columns)[:4] == ["code", "label", "status", "households"]


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
