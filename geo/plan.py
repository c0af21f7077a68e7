"""Plans as values: GridPlan and PlanDiff."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import pandas as pd

__all__ = ["GridPlan", "PlanDiff"]


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


@dataclass(frozen=True)
class PlanDiff:
    """Differences between two plans (see :func:`diff_plans`)."""

    households: pd.DataFrame
    grids: gpd.GeoDataFrame
    summary: dict[str, Any]
