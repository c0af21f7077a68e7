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

from functools import cache
from typing import Any

import anywidget
import pandas as pd
import traitlets

from geo.editing import Draft, EditResult
from geo.errors import GridMapError
from geo.store.drafts import not_a_draft
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


def unit_id(p: dict[str, Any]) -> str:
    """The id the editor selects a unit by, from its properties in
    :func:`geo.store.edit_views.plan_buildings`: a building's id, or
    ``h:<household id>`` for a household without one.

    Parameters
    ----------
    p : dict
        A building feature's ``properties`` (``kind``, ``id``).

    Returns
    -------
    str
        What :meth:`GridEditor.select` takes.

    Examples
    --------
    >>> unit_id({"kind": "building", "id": "B1"}), unit_id({"kind": "household", "id": "H1"})
    ('B1', 'h:H1')
    """
    return str(p["id"]) if p["kind"] == "building" else f"h:{p['id']}"


def _merged_grids(
    shown: list[dict[str, Any]], fresh: list[dict[str, Any]], codes: set[str]
) -> list[dict[str, Any]]:
    """The grids shown with those of ``codes`` replaced by ``fresh`` (by code)."""
    kept = [f for f in shown if f["properties"]["code"] not in codes]
    return sorted([*kept, *fresh], key=lambda f: str(f["properties"]["code"]))


def _merged_buildings(
    shown: list[dict[str, Any]], fresh: list[dict[str, Any]], codes: set[str]
) -> list[dict[str, Any]]:
    """The buildings shown with those on a grid of ``codes`` replaced by ``fresh``:
    in their place, those no longer in the area dropped, new ones in order."""
    new = {f["id"]: f for f in fresh}
    out = []
    for f in shown:
        if f["id"] in new:
            out.append(new.pop(f["id"]))
        elif not codes.intersection(f["properties"]["grids"]):
            out.append(f)
    for f in new.values():  # a building that came into the area (rare)
        key = (f["properties"]["kind"], f["properties"]["id"])
        at = next(
            (
                i
                for i, o in enumerate(out)
                if (o["properties"]["kind"], o["properties"]["id"]) > key
            ),
            len(out),
        )
        out.insert(at, f)
    return out


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
    #: the 允许超出户数范围 box: moves and splits may leave grids out of band
    #: (the planner's acceptance is recorded as the grid's cause)
    allow_out_of_band = traitlets.Bool(False).tag(sync=True)

    def __init__(self, draft: Draft, area: str, *, height: int = 560) -> None:
        super().__init__(_esm=_esm(), _css=_css(), height=height)
        self.draft = draft
        self.area = area
        self._touched: dict[str, dict[str, Any]] = {}
        self._names: dict[str, str | None] = {}
        self.on_msg(self._on_message)
        self.refresh()

    def refresh(self) -> None:
        """Read the draft's grids and buildings in the area again (all of them)."""
        from geo.store.db import session_scope
        from geo.store.edit_views import plan_buildings, plan_grids

        with session_scope(self.draft.engine) as s:
            grids = plan_grids(
                s, self.draft.plan_id, area=self.area, simplify=_SIMPLIFY
            )
            buildings = plan_buildings(
                s, self.draft.plan_id, area=self.area, limit=None
            )
        if grids["status"] != "draft":
            raise not_a_draft(self.draft.plan_id, grids["status"])
        self._names = {}
        self._take(grids, buildings, None)

    def _refresh_touched(self, res: EditResult) -> None:
        """After the edit ``res``: read again only the grids it changed and the
        buildings on them (and the version; nothing is locked), and put them in
        place of what was shown of them. Whatever else changed the draft since
        (another editor, :meth:`Draft.reload`) makes it a full :meth:`refresh`."""
        from geo.store.db import session_scope
        from geo.store.edit_views import plan_buildings, plan_grids

        codes = sorted({g.code for g in res.grids})
        if res.version != self.version + 1:
            self.refresh()
            return
        with session_scope(self.draft.engine) as s:
            grids = plan_grids(
                s, self.draft.plan_id, area=self.area, codes=codes, simplify=_SIMPLIFY
            )
            buildings = plan_buildings(
                s, self.draft.plan_id, area=self.area, grids=codes, limit=None
            )
        if grids["version"] != res.version or buildings["version"] != res.version:
            self.refresh()
            return
        self._take(grids, buildings, codes)

    def _take(
        self,
        grids: dict[str, Any],
        buildings: dict[str, Any],
        codes: list[str] | None,
    ) -> None:
        """Show ``grids`` and ``buildings`` (:mod:`geo.store.edit_views`): all of
        them (``codes`` None), or in place of what was shown of the grids
        ``codes`` and of the buildings on them."""
        for c in codes or ():
            self._names.pop(c, None)
        for f in grids["features"]:
            p = f["properties"]
            self._names[p["code"]] = p["area_name"]
            p["title"] = _label(p["code"], p["area_name"])
        g_feats, b_feats = grids["features"], buildings["features"]
        if codes is not None:
            g_feats = _merged_grids(self.grids["features"], g_feats, set(codes))
            b_feats = _merged_buildings(self.buildings["features"], b_feats, set(codes))
        band = grids["band"]
        self.band = [float(band["min"]), float(band["max"])]
        self.grids = {"type": "FeatureCollection", "features": g_feats}
        self.buildings = {"type": "FeatureCollection", "features": b_feats}
        self.version = int(grids["version"])

    # --- what the buttons do, callable from Python -------------------------------
    def select(
        self, *, buildings: list[str] | tuple[str, ...] = (), add: bool = False
    ) -> list[str]:
        """Select buildings by id (``h:<household id>`` for a household alone),
        as a click, lasso or brush does; ``add`` keeps the current selection."""
        known = {unit_id(f["properties"]) for f in self.buildings["features"]}
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
            allow_out_of_band=allow_out_of_band or self.allow_out_of_band,
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
        return self._show(
            self.draft.split(
                grid, parts=parts, allow_out_of_band=self.allow_out_of_band
            )
        )

    def merge(self, grids: list[str]) -> EditResult:
        """Merge adjacent grids."""
        return self._show(
            self.draft.merge(grids, allow_out_of_band=self.allow_out_of_band)
        )

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
        self._refresh_touched(res)
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
            elif op in ("lock", "unlock"):
                getattr(self, op)([str(content.get("grid") or "")])
            elif op == "split":
                self.split(str(content.get("grid") or ""))
            elif op == "rebalance":
                self.rebalance()
        except GridMapError as e:  # shown in the panel: the widget never raises
            self.message = str(e)
            self.message_kind = "error"
