"""Plans as values: GridPlan and PlanDiff."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import pandas as pd
from shapely.geometry.base import BaseGeometry

__all__ = ["EXCEPTION_CAUSES", "UNRESOLVED", "GridPlan", "PlanDiff"]

#: Why a grid may be out of band — each a fact about the map that the report backs
#: with its check (``exceptions[i]["cause"]`` and ``exceptions[i]["check"]``). A
#: grid out of band for any other reason is a bug.
EXCEPTION_CAUSES: dict[str, str] = {
    "infeasible_total": "no whole k of grids with min·k ≤ n ≤ max·k for the unit, "
    "after every allowed merge",
    "no_merge_partner": "the unit touches no other unit of its parent (an island), "
    "or its parent's total is itself infeasible",
    "building_over_max": "one building holds more households than a grid may",
    "isolated_piece": "an exclave piece that can neither stand alone nor join "
    "anything of its unit",
    "locked": "locked grids block every in-band answer (rebalancing)",
    "search_timed_out": "a search hit its time cap before it found an in-band "
    "answer or proved that none exists (the cap is in the check)",
}

#: Not a cause: the methods gave up where an in-band answer may exist. Reported
#: honestly as such; tests fail on it.
UNRESOLVED = "unresolved"


@dataclass(frozen=True)
class GridPlan:
    """A generated plan.

    Attributes
    ----------
    grids
        One row per grid: ``grid_code``, ``area_code`` (the village/community it
        belongs to), ``households``, ``load`` (weighted households), ``areas``
        (every area code it covers, ``;``-separated), ``exception`` (reason when
        out of band or otherwise special, else None), polygon in EPSG:4326.
    assignments
        ``household_id``, ``grid_code`` — every household exactly once.
    report
        ``params``, ``metrics``, ``exceptions`` (list of dicts with ``area_code``,
        ``grid_code``, ``kind``, ``reason``) and ``seconds``.
    """

    grids: gpd.GeoDataFrame
    assignments: pd.DataFrame
    report: dict[str, Any] = field(default_factory=dict)

    def explore(self, households: gpd.GeoDataFrame, **options: Any) -> Any:
        """An interactive map of the plan (a folium map), like ``GeoDataFrame.explore``.

        Draws :func:`maps.coverage_map` of this plan and ``households``;
        ``options`` go to it (``people``, ``areas``, ``basemap``, ``title`` …).
        ``maps`` (and folium) are imported only when this is called, so the
        domain package keeps no dependency on drawing.

        Examples
        --------
        >>> from geo.sample import generate_county
        >>> from geo.gridding.generate import generate_grids
        >>> c = generate_county(1_000, seed=2)
        >>> m = generate_grids(c.households, c.areas).explore(c.households)
        >>> type(m).__name__
        'OfflineMap'
        """
        maps = importlib.import_module("maps")  # lazily: geo does not depend on maps
        return maps.coverage_map(self, households, **options)


@dataclass(frozen=True)
class PlanDiff:
    """What changed between two plans (see :func:`geo.gridding.diff.diff_plans`).

    Attributes
    ----------
    households
        One row per household whose grid changed or that is in one plan only:
        ``household_id``, ``old_grid_code``, ``new_grid_code`` (empty when
        absent from that plan) and ``change`` (``moved``, ``added``, ``removed``).
    grids
        One row per grid code in either plan with ``change`` (``created``,
        ``retired``, ``reshaped``, ``unchanged``) and, for reshaped grids, the
        area that moved (symmetric difference) as geometry.
    summary
        Counts and code lists.
    added_boundaries, removed_boundaries
        Grid boundary lines of the new plan not in the old one, and of the old
        not in the new (EPSG:4326, compared with a tolerance).
    changed_grids
        Codes of new grids that did not exist or whose polygon changed.
    unchanged_households
        Households in the same grid in both plans.
    """

    households: pd.DataFrame
    grids: gpd.GeoDataFrame
    summary: dict[str, Any]
    added_boundaries: BaseGeometry
    removed_boundaries: BaseGeometry
    changed_grids: list[str]
    unchanged_households: int
