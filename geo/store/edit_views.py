"""What the viewer's edit mode reads: a plan's buildings in a box and its grids with band state."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import NotFound
from geo.plan import Band

__all__ = ["MAX_BUILDINGS", "plan_buildings", "plan_grids"]

#: The most building features one answer holds (the viewer asks per view).
MAX_BUILDINGS = 20_000

# Households of the plan in the box; a building is every household of the plan
# sharing its building_id (also those outside the box, so its count is whole);
# a household without a building is a unit of its own.
_BUILDINGS_SQL = """
WITH inbox AS (
  SELECT h.id, h.building_id FROM households h
  JOIN assignments x ON x.household_id = h.id AND x.plan_id = :p
  WHERE h.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)
), units AS (
  SELECT h.external_id, h.building_id, h.address, h.geom, g.code,
    coalesce((g.attrs->>'locked')::boolean, false) AS locked
  FROM households h
  JOIN assignments x ON x.household_id = h.id AND x.plan_id = :p
  JOIN grids g ON g.id = x.grid_id
  WHERE h.id IN (SELECT id FROM inbox WHERE building_id IS NULL)
     OR h.building_id IN (SELECT DISTINCT building_id FROM inbox
                          WHERE building_id IS NOT NULL)
)
SELECT CASE WHEN building_id IS NULL THEN 'household' ELSE 'building' END AS kind,
  coalesce(building_id, external_id) AS uid,
  count(*) AS households,
  mode() WITHIN GROUP (ORDER BY code) AS grid_code,
  array_agg(DISTINCT code ORDER BY code) AS grids,
  bool_or(locked) AS locked,
  min(address) AS first_address, max(address) AS last_address,
  ST_X(ST_Centroid(ST_Collect(geom))) AS lon,
  ST_Y(ST_Centroid(ST_Collect(geom))) AS lat
FROM units
GROUP BY 1, 2
ORDER BY 1, 2
LIMIT :lim
"""

_GRIDS_SQL = """
SELECT g.code, a.code AS area_code, g.attrs, w.external_id AS worker_id,
  w.name AS worker_name, coalesce(n.households, 0) AS households,
  ST_AsGeoJSON(ST_ForcePolygonCCW(g.geom), 7) AS geom,
  ST_X(ST_PointOnSurface(g.geom)) AS lon, ST_Y(ST_PointOnSurface(g.geom)) AS lat
FROM grids g
JOIN admin_areas a ON a.id = g.area_id
LEFT JOIN people w ON w.id = g.worker_id
LEFT JOIN (SELECT grid_id, count(*) AS households FROM assignments
           WHERE plan_id = :p GROUP BY grid_id) n ON n.grid_id = g.id
WHERE g.plan_id = :p
ORDER BY g.code
"""


def _plan_row(session: Session, plan_id: int) -> Any:
    row = session.execute(
        text(
            "SELECT p.id, p.status, p.lock_version, p.params, p.parent_id, a.code "
            "FROM plans p JOIN admin_areas a ON a.id = p.area_id WHERE p.id = :p"
        ),
        {"p": plan_id},
    ).first()
    if row is None:
        raise NotFound(f"There is no plan {plan_id}.", what="plan")
    return row


def _label(first: str | None, last: str | None, n: int) -> str:
    """A building's address: what its households' addresses share."""
    if not first:
        return ""
    if n == 1 or not last:
        return first
    k = 0
    while k < min(len(first), len(last)) and first[k] == last[k]:
        k += 1
    return first[:k] or first


def plan_buildings(
    session: Session,
    plan_id: int,
    bbox: tuple[float, float, float, float],
    *,
    limit: int = MAX_BUILDINGS,
) -> dict[str, Any]:
    """The plan's buildings with a household in ``bbox``, as a GeoJSON collection.

    A building is the households sharing a ``building_id`` (there are no
    footprints: its point is their centroid); a household without one is its own
    unit (``kind`` ``household``, ``id`` its external id). Each feature has
    ``kind``, ``id``, ``grid_code`` (of most of its households), ``grids`` (all
    of them: more than one only for a building over the band), ``households``,
    ``locked`` (a grid of it is locked) and ``address``. ``truncated`` says the
    answer stopped at ``limit`` features.
    """
    plan = _plan_row(session, plan_id)
    x0, y0, x1, y1 = bbox
    rows = session.execute(
        text(_BUILDINGS_SQL),
        {"p": plan_id, "x0": x0, "y0": y0, "x1": x1, "y1": y1, "lim": limit + 1},
    ).all()
    features = [
        {
            "type": "Feature",
            "id": f"{r.kind[0]}:{r.uid}",
            "geometry": {
                "type": "Point",
                "coordinates": [round(float(r.lon), 7), round(float(r.lat), 7)],
            },
            "properties": {
                "kind": r.kind,
                "id": r.uid,
                "grid_code": r.grid_code,
                "grids": list(r.grids),
                "households": int(r.households),
                "locked": bool(r.locked),
                "address": _label(r.first_address, r.last_address, int(r.households)),
            },
        }
        for r in rows[:limit]
    ]
    return {
        "type": "FeatureCollection",
        "plan_id": plan_id,
        "version": int(plan.lock_version),
        "bbox": [x0, y0, x1, y1],
        "truncated": len(rows) > limit,
        "features": features,
    }


def plan_grids(session: Session, plan_id: int) -> dict[str, Any]:
    """Every grid of the plan with its band state, as a GeoJSON collection.

    Each feature has ``code``, ``area_code``, ``households`` (counted from the
    plan's assignments), ``in_band``, ``cause`` (why it is out of band, as an
    edit or the engine recorded it), ``locked``, ``worker_id``, ``worker_name``
    and ``label`` (a point inside it, ``[lon, lat]``). The collection carries
    the plan's ``status``, ``version`` (name it as ``expected_version``),
    ``parent_id``, ``area_code`` and ``band`` (``min``, ``max``).
    """
    plan = _plan_row(session, plan_id)
    params = plan.params or {}
    band = Band(
        float(params.get("min_households", 200)),
        float(params.get("max_households", 300)),
    )
    rows = session.execute(text(_GRIDS_SQL), {"p": plan_id}).all()
    features = []
    for r in rows:
        attrs = r.attrs or {}
        n = int(r.households)
        features.append(
            {
                "type": "Feature",
                "id": r.code,
                "geometry": json.loads(r.geom) if r.geom else None,
                "properties": {
                    "code": r.code,
                    "area_code": r.area_code,
                    "households": n,
                    "in_band": band.contains(n),
                    "cause": attrs.get("exception") or None,
                    "locked": bool(attrs.get("locked")),
                    "worker_id": r.worker_id,
                    "worker_name": r.worker_name,
                    "label": [round(float(r.lon), 7), round(float(r.lat), 7)],
                },
            }
        )
    return {
        "type": "FeatureCollection",
        "plan_id": plan_id,
        "status": plan.status,
        "version": int(plan.lock_version),
        "parent_id": plan.parent_id,
        "area_code": plan.code,
        "band": {"min": band.min, "max": band.max},
        "features": features,
    }
