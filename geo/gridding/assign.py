"""Assigning households to the grid that contains them (pure; the PostGIS version is geo.store.assign)."""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

__all__ = [
    "AssignmentResult",
    "assign_households",
]


@dataclass(frozen=True)
class AssignmentResult:
    """Result of :func:`assign_households`.

    Attributes
    ----------
    assignments
        One row per household inside some grid: ``household_id``, ``grid_code``,
        ``candidates`` (how many grids contain or touch the point) and
        ``on_boundary`` (the point lies on a grid edge).
    outside
        Households inside no grid: ``household_id`` and ``geometry``.
    """

    assignments: pd.DataFrame
    outside: gpd.GeoDataFrame


def assign_households(
    households: gpd.GeoDataFrame,
    grids: gpd.GeoDataFrame,
    *,
    household_id: str = "household_id",
    grid_code: str = "grid_code",
) -> AssignmentResult:
    """Give every household the grid that contains it.

    A point on an edge shared by several grids goes to the grid with the
    smallest code (the same rule :func:`assign_plan` applies in PostGIS), and
    is flagged ``on_boundary``. Households in no grid are returned apart.

    Parameters
    ----------
    households
        Points with a ``household_id`` column.
    grids
        Polygons with a ``grid_code`` column, in the same CRS.
    household_id, grid_code
        The names of those columns, when they are called otherwise.

    Returns
    -------
    AssignmentResult

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> grids = gpd.GeoDataFrame({"grid_code": ["A", "B"]},
    ...     geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)], crs=3857)
    >>> hh = gpd.GeoDataFrame({"household_id": ["h1", "h2", "h3"]},
    ...     geometry=shapely.points([0.5, 1.0, 5.0], [0.5, 0.5, 5.0]), crs=3857)
    >>> r = assign_households(hh, grids)
    >>> r.assignments[["household_id", "grid_code", "on_boundary"]].values.tolist()
    [['h1', 'A', False], ['h2', 'A', True]]
    >>> r.outside["household_id"].tolist()
    ['h3']
    """
    if households.crs != grids.crs:
        raise ValueError(
            f"households ({households.crs}) and grids ({grids.crs}) are in different CRS"
        )
    points = np.asarray(households.geometry.values, dtype=object)
    polys = np.asarray(grids.geometry.values, dtype=object)
    codes = grids[grid_code].astype(str).to_numpy()
    p_idx, g_idx = grids.sindex.query(points, predicate="intersects")
    order = np.lexsort((codes[g_idx], p_idx))
    p_idx, g_idx = p_idx[order], g_idx[order]
    first = np.ones(len(p_idx), dtype=bool)
    first[1:] = p_idx[1:] != p_idx[:-1]
    counts = np.bincount(p_idx, minlength=len(points))
    chosen_p, chosen_g = p_idx[first], g_idx[first]
    edge = shapely.intersects(shapely.boundary(polys[chosen_g]), points[chosen_p])
    assignments = pd.DataFrame(
        {
            "household_id": households[household_id].to_numpy()[chosen_p],
            "grid_code": codes[chosen_g],
            "candidates": counts[chosen_p],
            "on_boundary": edge | (counts[chosen_p] > 1),
        }
    )
    inside = np.zeros(len(points), dtype=bool)
    inside[chosen_p] = True
    outside = households.loc[~inside, [household_id, households.geometry.name]]
    return AssignmentResult(
        assignments.reset_index(drop=True), outside.reset_index(drop=True)
    )
