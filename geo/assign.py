"""Assigning households to the grid that contains them (pure and in PostGIS)."""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

__all__ = [
    "AssignmentResult",
    "PlanAssignmentReport",
    "assign_households",
    "assign_plan",
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


@dataclass(frozen=True)
class PlanAssignmentReport:
    """What :func:`assign_plan` did for one plan."""

    plan_id: int
    assigned: int
    on_boundary: int
    outside: list[str] = field(default_factory=list)
    per_grid: dict[str, int] = field(default_factory=dict)


_ASSIGN_SQL = """
WITH RECURSIVE scope AS (
    SELECT area_id AS id FROM plans WHERE id = :plan
    UNION ALL
    SELECT a.id FROM admin_areas a JOIN scope s ON a.parent_id = s.id
),
hh AS (
    SELECT h.id, h.geom FROM households h WHERE h.area_id IN (SELECT id FROM scope)
),
hits AS (
    SELECT hh.id AS household_id, g.id AS grid_id, g.code,
           count(*) OVER (PARTITION BY hh.id) AS n,
           ST_Intersects(ST_Boundary(g.geom), hh.geom) AS edge
    FROM hh JOIN grids g ON g.plan_id = :plan AND ST_Intersects(g.geom, hh.geom)
),
chosen AS (
    SELECT DISTINCT ON (household_id) household_id, grid_id, (n > 1 OR edge) AS on_boundary
    FROM hits ORDER BY household_id, code
),
gone AS (
    DELETE FROM assignments a WHERE a.plan_id = :plan
      AND NOT EXISTS (SELECT 1 FROM chosen c WHERE c.household_id = a.household_id)
)
INSERT INTO assignments (plan_id, household_id, grid_id, on_boundary)
SELECT :plan, household_id, grid_id, on_boundary FROM chosen
ON CONFLICT (plan_id, household_id) DO UPDATE
   SET grid_id = EXCLUDED.grid_id, on_boundary = EXCLUDED.on_boundary,
       member_id = CASE WHEN assignments.grid_id = EXCLUDED.grid_id
                        THEN assignments.member_id END
"""

_OUTSIDE_SQL = """
WITH RECURSIVE scope AS (
    SELECT area_id AS id FROM plans WHERE id = :plan
    UNION ALL
    SELECT a.id FROM admin_areas a JOIN scope s ON a.parent_id = s.id
)
SELECT h.external_id FROM households h
WHERE h.area_id IN (SELECT id FROM scope)
  AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.plan_id = :plan AND a.household_id = h.id)
ORDER BY h.external_id
"""


def assign_plan(session: Session, plan_id: int) -> PlanAssignmentReport:
    """Assign every household of the plan's area to the plan's grid containing it.

    Runs in PostGIS with the GiST indexes. A point on a shared edge goes to the
    grid with the smallest code and is flagged ``on_boundary``; a household's
    covering party member is kept when its grid does not change. Households in
    no grid are reported (and hold no assignment). The caller commits.
    """
    if (
        session.execute(
            text("SELECT 1 FROM plans WHERE id = :p"), {"p": plan_id}
        ).first()
        is None
    ):
        raise LookupError(f"plan {plan_id} does not exist")
    session.execute(text(_ASSIGN_SQL), {"plan": plan_id})
    outside = session.execute(text(_OUTSIDE_SQL), {"plan": plan_id}).scalars().all()
    rows = session.execute(
        text(
            "SELECT g.code, count(a.household_id), count(*) FILTER (WHERE a.on_boundary) "
            "FROM grids g LEFT JOIN assignments a ON a.grid_id = g.id "
            "WHERE g.plan_id = :p GROUP BY g.code ORDER BY g.code"
        ),
        {"p": plan_id},
    ).all()
    per_grid = {code: int(n) for code, n, _ in rows}
    return PlanAssignmentReport(
        plan_id=plan_id,
        assigned=sum(per_grid.values()),
        on_boundary=sum(int(b) for _, _, b in rows),
        outside=list(outside),
        per_grid=per_grid,
    )
