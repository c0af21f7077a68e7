"""Household-less parts of grids: given to a neighbour, and exclaves gathered.

A grid's polygon is the union of its buildings' cells clipped to its area, so it
can come out in several parts: a cell reaching round a bend of the area line, or
a piece of the area (an exclave) with no household in it. :func:`settle_fragments`
gives a household-less part that borders another grid of the same unit to the
neighbour sharing most border, and puts every household-less exclave of a unit in
one grid: a grid that spans pieces of the area anyway (its households lie in more
than one piece) if there is one, else the grid already holding the largest such
exclave. So a unit whose area is in pieces has as few grids in several parts as
its households allow: only grids whose households themselves lie in several
pieces, or one grid if none does.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from geo.gridding._geometry import _clean, _union

__all__ = ["settle_fragments"]


def settle_fragments(rows: list[dict[str, Any]], hh: gpd.GeoDataFrame) -> None:
    """Give bordering household-less parts away, then gather each unit's exclaves.

    Parameters
    ----------
    rows : list of dict
        Grid rows with ``geometry``, ``_members`` (row numbers of ``hh``) and
        ``_unit``; changed in place.
    hh : GeoDataFrame
        The households (points) the members index.

    Examples
    --------
    >>> import geopandas as gpd, numpy as np, shapely
    >>> hh = gpd.GeoDataFrame(geometry=[shapely.Point(0.5, 0.5), shapely.Point(2.5, 0.5),
    ...     shapely.Point(6.5, 0.5)], crs=4326)
    >>> rows = [
    ...     {"geometry": shapely.MultiPolygon([shapely.box(0, 0, 2, 1),
    ...         shapely.box(4, 0, 5, 1)]), "_members": np.array([0]), "_unit": 0},
    ...     {"geometry": shapely.MultiPolygon([shapely.box(2, 0, 3, 1),
    ...         shapely.box(6, 0, 7, 1)]), "_members": np.array([1, 2]), "_unit": 0}]
    >>> settle_fragments(rows, hh)
    >>> [int(shapely.get_num_geometries(r["geometry"])) for r in rows]
    [1, 3]
    """
    pts = np.asarray(hh.geometry.values, dtype=object)
    _absorb_bordering(rows, pts)
    _gather_exclaves(rows, pts)


def _split(r: dict[str, Any], pts: np.ndarray) -> tuple[list[Any], list[Any]]:
    """A grid's parts with households, and those without."""
    parts = shapely.get_parts(r["geometry"])
    mine = pts[r["_members"]] if len(r["_members"]) else np.array([], dtype=object)
    keep: list[Any] = []
    give: list[Any] = []
    for p in parts:
        has = len(mine) and bool(shapely.intersects(p, mine).any())
        (keep if has else give).append(p)
    return keep, give


def _absorb_bordering(rows: list[dict[str, Any]], pts: np.ndarray) -> None:
    """Give household-less parts of a multi-part grid to the neighbour sharing most border."""
    for _ in range(3):
        geoms = np.asarray([r["geometry"] for r in rows], dtype=object)
        tree = shapely.STRtree(geoms)
        moved = False
        for i, r in enumerate(rows):
            if shapely.get_num_geometries(r["geometry"]) <= 1:
                continue
            parts = shapely.get_parts(r["geometry"])
            keep, give = _split(r, pts)
            if not keep:
                biggest = max(parts, key=lambda p: p.area)
                keep, give = [biggest], [p for p in parts if p is not biggest]
            for p in give:
                best_j, best_len = -1, 0.0
                for j in tree.query(p, predicate="intersects"):
                    j = int(j)
                    if j == i or rows[j]["_unit"] != r["_unit"]:
                        continue
                    shared = shapely.length(
                        shapely.intersection(p.boundary, geoms[j].boundary)
                    )
                    if shared > best_len:
                        best_j, best_len = j, shared
                if best_j < 0:
                    keep.append(p)
                    continue
                rows[best_j]["geometry"] = _union([rows[best_j]["geometry"], p])
                geoms[best_j] = rows[best_j]["geometry"]
                moved = True
            r["geometry"] = _joined(keep)
            geoms[i] = r["geometry"]
        if not moved:
            break


def _gather_exclaves(rows: list[dict[str, Any]], pts: np.ndarray) -> None:
    """Put each unit's household-less exclaves (parts no other grid of the unit
    borders, left by :func:`_absorb_bordering`) in one grid of the unit."""
    by_unit: dict[Any, list[int]] = {}
    for i, r in enumerate(rows):
        by_unit.setdefault(r["_unit"], []).append(i)
    geoms = np.asarray([r["geometry"] for r in rows], dtype=object)
    tree = shapely.STRtree(geoms)

    def apart(i: int, p: Any) -> bool:
        """Whether no other grid of the unit touches ``p``, not even at a point (a
        part meeting another at a point lies in the same piece of the area)."""
        return all(
            int(j) == i or rows[int(j)]["_unit"] != rows[i]["_unit"]
            for j in tree.query(p, predicate="intersects")
        )

    for members in by_unit.values():
        empties: dict[int, list[Any]] = {}
        stays: dict[int, list[Any]] = {}
        spanning: list[int] = []
        for i in members:
            if shapely.get_num_geometries(rows[i]["geometry"]) <= 1:
                continue
            keep, give = _split(rows[i], pts)
            if len(keep) > 1:
                spanning.append(i)
            away = [p for p in give if apart(i, p)]
            if away and keep:
                empties[i] = away
                stays[i] = keep + [p for p in give if not apart(i, p)]
        if not empties:
            continue
        if not spanning:  # the grid holding the largest exclave keeps them all
            spanning = [max(empties, key=lambda i: sum(p.area for p in empties[i]))]
        holders = np.asarray([rows[j]["geometry"] for j in spanning], dtype=object)
        taken: dict[int, list[Any]] = {}
        for i, away in empties.items():
            if i in spanning:
                continue
            for p in away:
                j = spanning[int(np.argmin(shapely.distance(p, holders)))]
                taken.setdefault(j, []).append(p)
            rows[i]["geometry"] = _joined(stays[i])
        for j, ps in taken.items():
            rows[j]["geometry"] = _union([rows[j]["geometry"], *ps])


def _joined(parts: list[Any]) -> Any:
    """One geometry of a grid's remaining parts."""
    return _clean(shapely.union_all(parts)) if len(parts) > 1 else parts[0]
