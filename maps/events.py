"""The events layer (三事分流): open matters per grid, overdue ones marked.

:func:`event_counts` turns events (one row per event, or counts per grid) into
the per-grid counts a map draws; :class:`EventLayer` hands them to
``gridmap-events.js`` (or, on the served viewer, lets the page fetch them).
Counts only: nothing about a resident, an address or a description.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from branca.element import MacroElement
from folium.template import Template

from geo.events.flow import OPEN_STATUSES
from maps.layers import _js

__all__ = ["EventLayer", "event_counts"]


def event_counts(events: pd.DataFrame) -> dict[str, list[Any]]:
    """Open and overdue events per grid: ``{"grids", "open", "overdue"}``.

    ``events`` is either counts per grid (``grid_code``, ``open``, ``overdue``,
    as :func:`geo.store.event_views.open_events_by_grid` answers) or one row per
    event with ``grid_code`` and optional ``status`` (only open ones count) and
    ``overdue`` (bool).

    Examples
    --------
    >>> ev = pd.DataFrame({"grid_code": ["A", "A", "B", "B"],
    ...                    "status": ["in_hand", "closed", "sorted", "reported"],
    ...                    "overdue": [True, False, False, False]})
    >>> event_counts(ev)
    {'grids': ['A', 'B'], 'open': [1, 2], 'overdue': [1, 0]}
    """
    if "grid_code" not in events.columns:
        raise ValueError("events need a 'grid_code' column")
    if {"open", "overdue"} <= set(events.columns) and "status" not in events.columns:
        per = events.groupby("grid_code", sort=True)[["open", "overdue"]].sum()
    else:
        ev = events
        if "status" in ev.columns:
            ev = ev[ev["status"].isin(OPEN_STATUSES)]
        late = (
            ev["overdue"].fillna(False).astype(bool)
            if "overdue" in ev.columns
            else pd.Series(False, index=ev.index)
        )
        per = (
            pd.DataFrame({"grid_code": ev["grid_code"], "open": 1, "overdue": late})
            .groupby("grid_code", sort=True)[["open", "overdue"]]
            .sum()
        )
    per = per[per["open"] > 0]
    return {
        "grids": [str(c) for c in per.index],
        "open": [int(v) for v in per["open"]],
        "overdue": [int(v) for v in per["overdue"]],
    }


class EventLayer(MacroElement):
    """The events group: per-grid counts given, or fetched by the served viewer
    from ``cfg.eventsUrl`` (``counts=None``)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            GridMap.events({{ this._parent._parent.get_name() }}, {{ this._parent.get_name() }}, {{ this.counts_json }});
        {% endmacro %}
        """
    )

    def __init__(self, counts: dict[str, list[Any]] | None) -> None:
        super().__init__()
        self._name = "EventLayer"
        self.counts = counts

    @property
    def counts_json(self) -> str:
        return _js(self.counts)
