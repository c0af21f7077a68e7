"""The served viewer's edit mode: selecting buildings and sending edits (planner keys only)."""

from __future__ import annotations

from typing import Any

import folium
from branca.element import MacroElement

from maps.assets import OfflineAssets

__all__ = ["EditMode", "add_edit_mode"]


class EditMode(OfflineAssets, MacroElement):
    """``GridMap.edit``: an "Edit" panel that appears when the key typed into the
    viewer's key box is a planner's (``gridmap-edit.js``).

    ``options`` are same-origin paths: ``plans`` (``/plans``), and the plan
    ``planId`` the page shows. The page draws and selects; every rule, count and
    check comes from the edit endpoints (``geo.editing``).
    """

    _template = folium.template.Template(
        """
        {% macro script(this, kwargs) %}
            GridMap.edit({{ this._parent.get_name() }}, {{ this.options|tojson }});
        {% endmacro %}
        """
    )
    default_js = [  # noqa: RUF012 (folium declares it per instance)
        ("gridmap_edit_js", "gridmap-edit.js")
    ]
    default_css = [  # noqa: RUF012 (folium declares it per instance)
        ("gridmap_edit_css", "gridmap-edit.css")
    ]

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__()
        self._name = "EditMode"
        self.options = options


def add_edit_mode(
    m: folium.Map, *, plans_url: str, plan_id: int, edit_zoom: int = 15
) -> folium.Map:
    """Add the edit mode to a served viewer page ``m`` (see :class:`EditMode`).

    ``plans_url`` is the same-origin path of the plans API (``/plans``),
    ``plan_id`` the published plan shown, ``edit_zoom`` the zoom from which
    buildings are loaded for selection.
    """
    EditMode({"plansUrl": plans_url, "planId": plan_id, "editZoom": edit_zoom}).add_to(
        m
    )
    return m
