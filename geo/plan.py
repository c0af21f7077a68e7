"""Plans as values: GridPlan and PlanDiff."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import pandas as pd
from shapely.geometry.base import BaseGeometry

__all__ = ["EXCEPTION_CAUSES", "UNRESOLVED", "Band", "GridPlan", "PlanDiff"]

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
    "no_in_band_grouping": "a building of the unit belongs to no set of its whole "
    "buildings whose total is in band (an exact subset-sum, in the check), so no "
    "grid holding it can be in band",
    "no_in_band_split": "the unit's whole buildings cannot be split into groups "
    "that each total min–max, however they are grouped and wherever they stand "
    "(an exhaustive search; the groups it tried are counted in the check)",
    "no_connected_split": "no split of the unit's buildings into in-band grids that "
    "are each connected exists on its adjacency graph of building cells, nor with "
    "empty cells along its boundary for a grid to reach round by (an exact integer "
    "model, CP-SAT, for every count of grids the total allows; or a stranded "
    "building: under the band, it borders on each graph only buildings too heavy "
    "to join it; in the check)",
    "locked": "locked grids block every in-band answer (rebalancing)",
    "search_timed_out": "a search hit its time cap before it found an in-band "
    "answer or proved that none exists (the cap is in the check)",
}

#: Not a cause: the methods gave up where an in-band answer may exist. Reported
#: honestly as such; tests fail on it.
UNRESOLVED = "unresolved"


#: Slack for float loads (weighted households): 199.9999999999 is in a 200 band.
_EPS = 1e-9


class Band:
    """How many households a grid should hold: ``min``–``max``, aiming at ``target``.

    Loads may be weighted (not whole households), so comparisons allow a slack of
    1e-9.

    Parameters
    ----------
    min, max
        The band, ``0 <= min <= max`` (counting grids needs ``min > 0``).
    target
        The size to aim at inside the band; the middle of the band when omitted.

    Raises
    ------
    ValueError
        When the band is empty or the target lies outside it (the message names
        the parameter).

    Examples
    --------
    >>> band = Band(200, 300)
    >>> band.target, band.contains(250), band.feasible(350), band.grid_count(1000)
    (250.0, True, False, 4)
    >>> band.k_range(1000)
    [4, 5]
    """

    __slots__ = ("max", "min", "target")

    min: float
    max: float
    target: float

    def __init__(
        self, min: float = 200.0, max: float = 300.0, target: float | None = None
    ) -> None:
        lo, hi = float(min), float(max)
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 0 or lo > hi:
            raise ValueError(
                f"min_households={min:g} and max_households={max:g} make no band: "
                "need 0 <= min_households <= max_households"
            )
        tgt = (lo + hi) / 2 if target is None else float(target)
        if not lo <= tgt <= hi:
            raise ValueError(f"target {tgt:g} is outside the band {lo:g}–{hi:g}")
        object.__setattr__(self, "min", lo)
        object.__setattr__(self, "max", hi)
        object.__setattr__(self, "target", tgt)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a Band is immutable")

    def __repr__(self) -> str:
        return f"Band(min={self.min:g}, max={self.max:g}, target={self.target:g})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Band):
            return NotImplemented
        return (self.min, self.max, self.target) == (other.min, other.max, other.target)

    def __hash__(self) -> int:
        return hash((self.min, self.max, self.target))

    def _k_max(self, load: float) -> int:
        if self.min <= 0:
            raise ValueError("counting grids needs min_households > 0")
        return math.floor(load / self.min + _EPS)

    def contains(self, load: float) -> bool:
        """Whether one grid of ``load`` households is in band.

        Examples
        --------
        >>> Band(200, 300).contains(300), Band(200, 300).contains(301)
        (True, False)
        """
        return self.min - _EPS <= load <= self.max + _EPS

    def k_range(self, load: float) -> list[int]:
        """``[k_min, k_max]``: the grid counts whose band holds ``load`` (empty
        range when ``k_min > k_max``).

        Examples
        --------
        >>> Band(200, 300).k_range(620), Band(200, 300).k_range(350)
        ([3, 3], [2, 1])
        """
        return [math.ceil(load / self.max - _EPS), self._k_max(load)]

    def feasible(self, load: float) -> bool:
        """Whether some whole k has ``min·k <= load <= max·k``.

        Examples
        --------
        >>> [Band(200, 300).feasible(n) for n in (150, 250, 350, 400)]
        [False, True, False, True]
        """
        if load <= 0:
            return False
        k_min, k_max = self.k_range(load)
        return k_min <= k_max

    def counts(self, load: float, prefer: int) -> list[int]:
        """Every feasible grid count for ``load`` (at least 1), nearest to
        ``prefer`` first.

        Examples
        --------
        >>> Band(200, 300).counts(1200, prefer=5)
        [5, 4, 6]
        """
        k_min = max(1, math.ceil(load / self.max - _EPS))
        k_max = self._k_max(load)
        return sorted(range(k_min, k_max + 1), key=lambda k: (abs(k - prefer), k))

    def grid_count(self, load: float) -> int:
        """Number of grids for ``load``: in band when possible, else nearest to
        the target.

        Examples
        --------
        >>> Band(200, 300).grid_count(1000), Band(200, 300).grid_count(350)
        (4, 1)
        """
        if load <= 0:
            return 1
        k_min = max(1, math.ceil(load / self.max - _EPS))
        k_max = max(1, self._k_max(load))
        k = max(1, round(load / self.target))
        if k_min <= k_max:
            return min(max(k, k_min), k_max)
        return max(1, k)


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
        domain package keeps no dependency on drawing: this mirrors
        ``GeoDataFrame.explore()`` in geopandas, which imports folium lazily
        inside the method. It is the one import of ``maps`` in ``geo/``, allowed
        by name in ``tests/unit/test_architecture.py``.

        Examples
        --------
        >>> from geo.sample import generate_county
        >>> from geo.gridding.generate import generate_grids
        >>> c = generate_county(1_000, seed=2)
        >>> m = generate_grids(c.households, c.areas).explore(c.households)
        >>> type(m).__name__
        'OfflineMap'
        """
        import maps  # lazily, as geopandas imports folium in explore()

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
