"""Assigning a stored plan's households to its grids, in PostGIS with the spatial indexes."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import NotFound

__all__ = ["PlanAssignmentReport", "assign_plan"]


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
        raise NotFound(f"There is no plan {plan_id}.", what="plan")
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
