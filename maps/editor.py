"""A draft redrawn by hand in a notebook: a live map widget over :class:`geo.editing.Draft`.

Built on `anywidget <https://anywidget.dev>`_: the widget's front end is one ES
module (``static/gridmap-editor.js``) with the vendored Leaflet in front of it,
so it runs offline in JupyterLab, Notebook 7 and VS Code with no extension to
build, and it is a ``ipywidgets`` widget (traitlets synced both ways), so a
planner can drive it from Python as well as with the mouse. (ipyleaflet would
have drawn the map too, but its selection tools are per-layer Python callbacks
with a round trip per click, and it would be a second map stack beside the
viewer's Leaflet code.)

The widget only selects and displays: each button sends a message that this
class runs through the draft (:mod:`geo.editing`, the same rules as over HTTP
and in the viewer) and answers with the new state of the map.

Examples
--------
::

    from maps.editor import GridEditor

    d = ws.draft(ws.area("330803001000").plan_id)
    ed = GridEditor(d, area="330803001000")
    ed                                    # the map: select, move, undo, validate
    ed.select(buildings=["B330803001001-0001"])
    ed.move_to("33080300100102")          # what the 移入网格 button does
    ed.touched                            # the grids touched, with counts
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import anywidget
import pandas as pd
import traitlets

from geo.editing import Draft, EditResult
from geo.errors import GridMapError
from maps.assets import STATIC_DIR, inline_css

__all__ = ["GridEditor"]

#: how far the drawn polygons are simplified (degrees, ~1 m)
_SIMPLIFY = 1e-5


@cache
def _esm() -> str:
    leaflet = (STATIC_DIR / "vendor/leaflet/leaflet.js").read_text(encoding="utf-8")
    own = (STATIC_DIR / "gridmap-editor.js").read_text(encoding="utf-8")
    return leaflet + "\n;\n" + own


@cache
def _css() -> str:
    css = STATIC_DIR / "vendor/leaflet/leaflet.css"
    return inline_css(css.read_text(encoding="utf-8"), css.parent) + _OWN_CSS


_OWN_CSS = """
.gm-editor { display: flex; gap: 8px; font: 13px/1.4 system-ui, sans-serif; }
.gm-editor-map { flex: 1 1 auto; min-width: 300px; }
.gm-editor-side { flex: 0 0 260px; display: flex; flex-direction: column; gap: 6px; }
.gm-ed-btn { margin: 0 4px 4px 0; padding: 2px 8px; cursor: pointer; }
.gm-ed-btn.on { background: #ff7f00; color: #fff; }
.gm-ed-touched { border-collapse: collapse; width: 100%; }
.gm-ed-touched td, .gm-ed-touched th { border: 1px solid #ccc; padding: 1px 4px; }
.gm-ed-message.error { color: #b00020; }
.gm-ed-problems { margin: 0; padding-left: 16px; color: #8a4b00; }
"""


def _label(code: str, area_name: str | None) -> str:
    """A grid's short label: its village and its sequence there (last 2 digits)."""
    return f"{area_name or ''} {int(code[-2:]) if code[-2:].isdigit() else code}"


class GridEditor(anywidget.AnyWidget):  # type: ignore[misc]
    """The draft ``draft`` inside ``area`` on a map: select buildings (click,
    lasso, brush), move them into a grid, undo/redo, validate.

    Parameters
    ----------
    draft : geo.editing.Draft
        The draft to edit (:meth:`geo.workspace.Workspace.draft`).
    area : str
        The admin area shown (a township or village code).
    height : int
        Height of the map in pixels.

    Examples
    --------
    ::

        ed = GridEditor(ws.draft(plan_id), area="330803001000")
    """

    _esm = traitlets.Unicode().tag(sync=True)
    _css = traitlets.Unicode().tag(sync=True)
    grids = traitlets.Dict().tag(sync=True)
    buildings = traitlets.Dict().tag(sync=True)
    selected = traitlets.List(traitlets.Unicode()).tag(sync=True)
    touched_rows = traitlets.List(traitlets.Dict()).tag(sync=True)
    problems = traitlets.List(traitlets.Unicode()).tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)
    message_kind = traitlets.Unicode("info").tag(sync=True)
    version = traitlets.Int(0).tag(sync=True)
    band = traitlets.List(traitlets.Float(), [200.0, 300.0]).tag(sync=True)
    height = traitlets.Int(560).tag(sync=True)

    def __init__(self, draft: Draft, area: str, *, height: int = 560) -> None:
        super().__init__(_esm=_esm(), _css=_css(), height=height)
        self.draft = draft
        self.area = area
        self._touched: dict[str, dict[str, Any]] = {}
        self._names: dict[str, str | None] = {}
        self.on_msg(self._on_message)
        self.refresh()

    def refresh(self) -> None:
        """Read the draft's grids and buildings in the area again."""
        from geo.editing import band_of
        from geo.store import drafts
        from geo.store.db import session_scope

        with session_scope(self.draft.engine) as s:
            info = drafts.lock_draft(s, self.draft.plan_id, expected_version=None)
            grids, buildings = drafts.editor_view(s, self.draft.plan_id, self.area)
        band = band_of(info)
        self._names = dict(
            zip(grids["grid_code"].astype(str), grids["area_name"], strict=True)
        )
        grids["label"] = [
            _label(str(c), n)
            for c, n in zip(grids["grid_code"], grids["area_name"], strict=True)
        ]
        grids["geometry"] = grids.geometry.simplify(_SIMPLIFY)
        self.band = [float(band.min), float(band.max)]
        self.grids = json.loads(grids.to_json(drop_id=True))
        self.buildings = json.loads(buildings.to_json(drop_id=True))
        self.version = info.version

    # --- what the buttons do, callable from Python -------------------------------
    def select(
        self, *, buildings: list[str] | tuple[str, ...] = (), add: bool = False
    ) -> list[str]:
        """Select buildings by id (``h:<household id>`` for a household alone),
        as a click, lasso or brush does; ``add`` keeps the current selection."""
        known = {f["properties"]["building_id"] for f in self.buildings["features"]}
        unknown = [b for b in buildings if b not in known]
        if unknown:
            raise GridMapError(
                f"buildings not in area {self.area}: {', '.join(unknown[:5])}"
            )
        now = list(self.selected) if add else []
        self.selected = list(dict.fromkeys([*now, *buildings]))
        return list(self.selected)

    def move_to(self, grid: str, *, allow_out_of_band: bool = False) -> EditResult:
        """Move the selected buildings into the neighbouring grid ``grid``."""
        if not self.selected:
            raise GridMapError("nothing selected: select buildings first")
        hh = [b[2:] for b in self.selected if b.startswith("h:")]
        bs = [b for b in self.selected if not b.startswith("h:")]
        res = self.draft.move(
            to_grid=grid,
            households=hh,
            buildings=bs,
            allow_out_of_band=allow_out_of_band,
        )
        self.selected = []
        return self._show(res)

    def undo(self) -> EditResult:
        """Revert the draft's last edit."""
        return self._show(self.draft.undo())

    def redo(self) -> EditResult:
        """Re-apply the edit undone last."""
        return self._show(self.draft.redo())

    def lock(self, grids: list[str]) -> EditResult:
        """Lock grids (nothing taken from them; rebalance leaves them)."""
        return self._show(self.draft.lock(grids))

    def unlock(self, grids: list[str]) -> EditResult:
        """Unlock grids."""
        return self._show(self.draft.unlock(grids))

    def split(self, grid: str, *, parts: int = 2) -> EditResult:
        """Split ``grid`` into ``parts`` by the engine."""
        return self._show(self.draft.split(grid, parts=parts))

    def merge(self, grids: list[str]) -> EditResult:
        """Merge adjacent grids."""
        return self._show(self.draft.merge(grids))

    def rebalance(self) -> EditResult:
        """Bring the unlocked grids into band around the edits."""
        return self._show(self.draft.rebalance())

    def validate(self) -> Any:
        """Every rule the draft breaks (shown under the table)."""
        v = self.draft.validate()
        self.problems = [str(p) for p in v.problems]
        self.message = "校验通过" if v.valid else f"{len(v.problems)} 个问题"
        self.message_kind = "info" if v.valid else "error"
        return v

    @property
    def touched(self) -> pd.DataFrame:
        """The grids this editor's edits touched, latest state (code, label,
        status, households, in_band, cause)."""
        cols = ["code", "label", "status", "households", "in_band", "cause"]
        return pd.DataFrame(list(self._touched.values()), columns=cols)

    # --- plumbing -------------------------------------------------------------
    def _show(self, res: EditResult) -> EditResult:
        for g in res.grids:
            self._touched[g.code] = {
                "code": g.code,
                "label": _label(g.code, self._names.get(g.code)),
                "status": g.status,
                "households": g.households,
                "in_band": g.in_band,
                "cause": g.cause,
            }
        self.refresh()
        for g in res.grids:  # a new grid's village is known after the refresh
            self._touched[g.code]["label"] = _label(g.code, self._names.get(g.code))
        self.touched_rows = list(self._touched.values())
        self.problems = list(res.problems)
        self.message = f"v{res.version}: {res.summary}"
        self.message_kind = "info"
        return res

    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        op = content.get("op")
        try:
            if op == "move":
                self.move_to(str(content.get("to_grid") or ""))
            elif op == "undo":
                self.undo()
            elif op == "redo":
                self.redo()
            elif op == "validate":
                self.validate()
        except GridMapError as e:  # shown in the panel: the widget never raises
            self.message = str(e)
            self.message_kind = "error"
