"""What an editor draws of a plan: its buildings and its grids with band state.

One read for both editors: the viewer's edit mode (a box of buildings, every
grid, over HTTP) and the notebook's :class:`maps.editor.GridEditor` (an area,
then only the grids an edit touched).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import NotFound
from geo.plan import Band

__all__ = ["MAX_BUILDINGS", "plan_buildings", "plan_grids", "plan_staff"]

#: The most building features one answer holds (the viewer asks per view).
MAX_BUILDINGS = 20_000

# The households that pick the buildings (``{where}``: in the box, on grids of
# the area, on the grids named); a building is every household of the plan
# sharing its building_id (also those the filter leaves out, so its count is
# whole); a household without a building is a unit of its own.
_BUILDINGS_SQL = """
{down}picked AS (
  SELECT h.id, h.building_id FROM households h
  JOIN assignments x ON x.household_id = h.id AND x.plan_id = :p
  JOIN grids g ON g.id = x.grid_id
  WHERE {where}
), units AS (
  SELECT h.external_id, h.building_id, h.address, h.geom, g.code,
    coalesce((g.attrs->>'locked')::boolean, false) AS locked
  FROM households h
  JOIN assignments x ON x.household_id = h.id AND x.plan_id = :p
  JOIN grids g ON g.id = x.grid_id
  WHERE h.id IN (SELECT id FROM picked WHERE building_id IS NULL)
     OR h.building_id IN (SELECT DISTINCT building_id FROM picked
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
{limit}"""

# Households are counted per grid (the assignments' grid index), so a read of a
# few grids costs those grids, not the plan.
_GRIDS_SQL = """
{down}SELECT g.code, a.code AS area_code, a.name AS area_name, g.attrs,
  w.external_id AS worker_id, w.name AS worker_name,
  (SELECT count(*) FROM assignments x WHERE x.grid_id = g.id) AS households,
  ST_AsGeoJSON(ST_ForcePolygonCCW({geom}), 7) AS geom,
  ST_X(ST_PointOnSurface(g.geom)) AS lon, ST_Y(ST_PointOnSurface(g.geom)) AS lat
FROM grids g
JOIN admin_areas a ON a.id = g.area_id
LEFT JOIN people w ON w.id = g.worker_id
WHERE {where}
ORDER BY g.code
"""

# The area and every area below it.
_DOWN = (
    "WITH RECURSIVE down AS (SELECT id FROM admin_areas WHERE code = :a "
    "UNION ALL SELECT c.id FROM admin_areas c JOIN down d ON c.parent_id = d.id)"
)


def _filters(
    session: Session,
    *,
    bbox: tuple[float, float, float, float] | None,
    area: str | None,
    grids: list[str] | None,
) -> tuple[bool, str, dict[str, Any]]:
    """Whether the read needs the ``down`` areas, its ``WHERE`` conditions (on
    ``h``, ``g``) and their parameters; :class:`NotFound` for an unknown ``area``."""
    where: list[str] = ["g.plan_id = :p"]
    params: dict[str, Any] = {}
    if bbox is not None:
        x0, y0, x1, y1 = bbox
        where.append("h.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)")
        params.update(x0=x0, y0=y0, x1=x1, y1=y1)
    if area is not None:
        if not session.execute(
            text("SELECT 1 FROM admin_areas WHERE code = :a"), {"a": area}
        ).first():
            raise NotFound(f"area {area!r}: no such area", what="area")
        where.append("g.area_id IN (SELECT id FROM down)")
        params["a"] = area
    if grids is not None:
        where.append("g.code = ANY(:c)")
        params["c"] = list(grids)
    return area is not None, " AND ".join(where), params


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
    bbox: tuple[float, float, float, float] | None = None,
    *,
    area: str | None = None,
    grids: list[str] | None = None,
    limit: int | None = MAX_BUILDINGS,
) -> dict[str, Any]:
    """The plan's buildings with a household in ``bbox``, ``area`` and ``grids``,
    as a GeoJSON collection.

    A building is the households sharing a ``building_id`` (there are no
    footprints: its point is their centroid), always whole: a household the
    filters leave out still counts in its building. A household without one is
    its own unit (``kind`` ``household``, ``id`` its external id). The viewer's
    edit mode reads a box of it (``GET /plans/{id}/buildings``), the notebook
    editor (:class:`maps.editor.GridEditor`) an area, then the grids an edit
    touched.

    Parameters
    ----------
    session
        An open session (nothing is locked or written).
    plan_id
        Any plan (draft, published or archived).
    bbox
        ``(minlon, minlat, maxlon, maxlat)`` in WGS 84: buildings with a
        household inside; None: anywhere.
    area
        An admin area code: buildings with a household on a grid of this area
        or an area below it; None: any area. An unknown code raises
        :class:`~geo.errors.NotFound`.
    grids
        Grid codes: buildings with a household on one of them; None: any grid.
    limit
        The most features returned (``truncated`` says there were more);
        None: all.

    Returns
    -------
    dict
        A GeoJSON ``FeatureCollection`` of points, ordered by kind and id; each
        feature's ``id`` is ``b:<building id>`` or ``h:<household id>`` and its
        properties ``kind``, ``id``, ``grid_code`` (of most of its households),
        ``grids`` (all of them: more than one only for a building over the
        band), ``households``, ``locked`` (a grid of it is locked) and
        ``address``. The collection carries ``plan_id``, ``version`` (the
        plan's), ``bbox`` (as asked, or None) and ``truncated``.

    Examples
    --------
    ::

        plan_buildings(s, 7, (118.90, 29.00, 118.92, 29.02))["features"][0]
        plan_buildings(s, 7, area="330803001000", limit=None)
        plan_buildings(s, 7, area="330803001000", grids=["33080300100102"])
    """
    plan = _plan_row(session, plan_id)
    down, where, params = _filters(session, bbox=bbox, area=area, grids=grids)
    sql = _BUILDINGS_SQL.format(
        down=_DOWN + ", " if down else "WITH ",
        where=where,
        limit="" if limit is None else "LIMIT :lim",
    )
    if limit is not None:
        params["lim"] = limit + 1
    rows = session.execute(text(sql), {"p": plan_id, **params}).all()
    kept = rows if limit is None else rows[:limit]
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
        for r in kept
    ]
    return {
        "type": "FeatureCollection",
        "plan_id": plan_id,
        "version": int(plan.lock_version),
        "bbox": None if bbox is None else list(bbox),
        "truncated": len(rows) > len(kept),
        "features": features,
    }


def plan_grids(
    session: Session,
    plan_id: int,
    *,
    area: str | None = None,
    codes: list[str] | None = None,
    simplify: float = 0.0,
) -> dict[str, Any]:
    """The plan's grids (of ``area``, or ``codes``) with their band state, as a
    GeoJSON collection.

    The viewer's edit mode reads every grid (``GET /plans/{id}/grids``), the
    notebook editor (:class:`maps.editor.GridEditor`) those of an area, then
    the grids an edit touched. Nothing is locked: ``version`` is read as it is.

    Parameters
    ----------
    session
        The caller's session; the read takes no lock and writes nothing.
    plan_id
        A plan of any status: a draft, the published plan, an archived one.
    area
        An admin area code: only the grids of this area and the areas below
        it; None: all. An unknown code raises :class:`~geo.errors.NotFound`.
    codes
        Only the grids with these codes (those the plan lacks are left out);
        None: all.
    simplify
        Simplify the polygons by this tolerance in degrees, keeping their
        topology (``1e-5`` is ~1 m); 0: as stored.

    Returns
    -------
    dict
        A GeoJSON ``FeatureCollection`` of polygons ordered by code; each
        feature's properties are ``code``, ``area_code``, ``area_name``,
        ``households`` (counted from the plan's assignments), ``in_band``,
        ``cause`` (why it is out of band, as an edit or the engine recorded
        it), ``locked``, ``worker_id``, ``worker_name`` and ``label`` (a point
        inside it, ``[lon, lat]``). The collection carries the plan's
        ``status``, ``version`` (name it as ``expected_version``),
        ``parent_id``, ``area_code`` and ``band`` (``min``, ``max``).

    Examples
    --------
    ::

        plan_grids(s, 7)["band"]                       # {'min': 200.0, 'max': 300.0}
        plan_grids(s, 7, area="330803001000", simplify=1e-5)
        plan_grids(s, 7, codes=["33080300100102"])["version"]
    """
    plan = _plan_row(session, plan_id)
    params = plan.params or {}
    band = Band(
        float(params.get("min_households", 200)),
        float(params.get("max_households", 300)),
    )
    down, where, args = _filters(session, bbox=None, area=area, grids=codes)
    geom = "g.geom"
    if simplify > 0:
        geom = "ST_SimplifyPreserveTopology(g.geom, :tol)"
        args["tol"] = float(simplify)
    sql = _GRIDS_SQL.format(down=_DOWN + " " if down else "", where=where, geom=geom)
    rows = session.execute(text(sql), {"p": plan_id, **args}).all()
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
                    "area_name": r.area_name,
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


def plan_staff(session: Session, plan_id: int) -> list[dict[str, Any]]:
    """The grid workers and grid leaders of a plan's area (the area and the
    areas below it, as far as the session's scope shows people), with the grids
    of the plan each one is the worker of: what the edit mode offers for
    ``assign_worker``.

    Parameters
    ----------
    session
        The caller's (scoped) session.
    plan_id
        Any plan.

    Returns
    -------
    list of dict
        ``id`` (the external id an ``assign_worker`` names), ``name``, ``role``,
        ``area_code``, ``area_name`` and ``grids`` (codes, possibly empty),
        ordered by area and name.

    Raises
    ------
    geo.errors.NotFound
        There is no plan ``plan_id``.

    Examples
    --------
    ::

        free = [p for p in plan_staff(s, draft_id) if not p["grids"]]
    """
    _plan_row(session, plan_id)
    rows = session.execute(
        text(
            "WITH RECURSIVE down AS (SELECT p.area_id AS id FROM plans p "
            "WHERE p.id = :p UNION SELECT a.id FROM admin_areas a "
            "JOIN down d ON a.parent_id = d.id) "
            "SELECT pe.external_id, pe.name, pe.role, a.code, a.name AS area_name, "
            "coalesce((SELECT array_agg(g.code ORDER BY g.code) FROM grids g "
            "WHERE g.plan_id = :p AND g.worker_id = pe.id), '{}') AS grids "
            "FROM people pe JOIN admin_areas a ON a.id = pe.area_id "
            "WHERE pe.area_id IN (SELECT id FROM down) "
            "AND pe.role IN ('grid_worker', 'grid_leader') "
            "ORDER BY a.code, pe.name, pe.external_id"
        ),
        {"p": plan_id},
    ).all()
    return [
        {
            "id": r.external_id,
            "name": r.name,
            "role": r.role,
            "area_code": r.code,
            "area_name": r.area_name,
            "grids": list(r.grids),
        }
        for r in rows
    ]
