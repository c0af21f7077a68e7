"""Paged GeoJSON features (grids, households, areas) and vector tiles, built in PostGIS."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import NotFound

__all__ = ["FEATURE_COLLECTIONS", "FeaturePage", "feature", "features", "grid_tile"]


@dataclass(frozen=True)
class FeaturePage:
    """One page of GeoJSON features and how many match in all."""

    features: list[dict[str, Any]]
    number_matched: int


#: What each collection serves: title, description, id column, geometry.
FEATURE_COLLECTIONS: dict[str, dict[str, str]] = {
    "grids": {
        "title": "Grids (网格)",
        "description": "Grids of the plans: by default the published ones; "
        "filter with plan=ID or area=CODE.",
    },
    "areas": {
        "title": "Admin areas",
        "description": "County, townships (镇/乡/街道), villages (村) and communities (社区).",
    },
    "households": {
        "title": "Households",
        "description": "Household points with their addresses (viewer key needed).",
    },
}

_SELECTS = {
    "grids": (
        "SELECT g.id::text AS fid, json_build_object("
        "'code', g.code, 'name', g.name, 'kind', g.kind, 'plan_id', g.plan_id, "
        "'plan_status', p.status, 'area_code', a.code, 'area_name', a.name, "
        "'households', (g.attrs->>'households')::int, "
        "'worker', CASE WHEN w.id IS NULL THEN NULL ELSE json_build_object("
        "'name', w.name, 'role', w.role, 'work_phone', w.work_phone) END) AS props, "
        "ST_AsGeoJSON(ST_ForcePolygonCCW(g.geom), 7) AS geom "
        "FROM grids g JOIN plans p ON p.id = g.plan_id "
        "JOIN admin_areas a ON a.id = g.area_id LEFT JOIN people w ON w.id = g.worker_id"
    ),
    "areas": (
        "SELECT a.code AS fid, json_build_object('code', a.code, 'name', a.name, "
        "'level', a.level, 'parent_code', pa.code) AS props, "
        "ST_AsGeoJSON(ST_ForcePolygonCCW(a.geom), 7) AS geom "
        "FROM admin_areas a LEFT JOIN admin_areas pa ON pa.id = a.parent_id"
    ),
    "households": (
        "SELECT h.external_id AS fid, json_build_object('address', h.address, "
        "'building_id', h.building_id, 'unit', h.unit, 'people', h.people, "
        "'area_code', a.code) AS props, ST_AsGeoJSON(h.geom, 7) AS geom "
        "FROM households h LEFT JOIN admin_areas a ON a.id = h.area_id"
    ),
}
_ALIAS = {"grids": "g", "areas": "a", "households": "h"}
_ORDER = {"grids": "g.id", "areas": "a.code", "households": "h.external_id"}


def _where(
    collection: str,
    *,
    bbox: tuple[float, float, float, float] | None,
    plan_id: int | None,
    area_code: str | None,
) -> tuple[list[str], dict[str, Any]]:
    alias = _ALIAS[collection]
    where: list[str] = []
    params: dict[str, Any] = {}
    if bbox is not None:
        where.append(
            f"{alias}.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326) AND "
            f"ST_Intersects({alias}.geom, ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))"
        )
        params.update(dict(zip(("x0", "y0", "x1", "y1"), bbox, strict=True)))
    if collection == "grids":
        if plan_id is not None:
            where.append("g.plan_id = :plan")
            params["plan"] = plan_id
        else:
            where.append("p.status = 'published'")
    if area_code is not None:
        col = {"grids": "g.area_id", "households": "h.area_id", "areas": "a.id"}[
            collection
        ]
        where.append(
            f"{col} IN (WITH RECURSIVE down AS (SELECT id FROM admin_areas "
            "WHERE code = :area UNION ALL SELECT c.id FROM admin_areas c "
            "JOIN down d ON c.parent_id = d.id) SELECT id FROM down)"
        )
        params["area"] = area_code
    return where, params


def _feature(row: Any) -> dict[str, Any]:
    props = row.props if isinstance(row.props, dict) else json.loads(row.props)
    return {
        "type": "Feature",
        "id": row.fid,
        "geometry": json.loads(row.geom) if row.geom else None,
        "properties": props,
    }


def features(
    session: Session,
    collection: str,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    limit: int = 100,
    offset: int = 0,
    plan_id: int | None = None,
    area_code: str | None = None,
) -> FeaturePage:
    """A page of a collection's features (GeoJSON dicts, lon/lat, CCW exteriors).

    ``grids`` default to the published plans; ``plan_id`` picks one plan (any
    status). ``area_code`` keeps what lies in that area or below it.
    """
    if collection not in _SELECTS:
        raise NotFound(f"There is no collection {collection!r}.", what="collection")
    where, params = _where(collection, bbox=bbox, plan_id=plan_id, area_code=area_code)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    base = _SELECTS[collection]
    from_part = base[base.index(" FROM ") :]
    matched = session.execute(text("SELECT count(*)" + from_part + clause), params)
    rows = session.execute(
        text(f"{base}{clause} ORDER BY {_ORDER[collection]} LIMIT :lim OFFSET :off"),
        {**params, "lim": limit, "off": offset},
    ).all()
    return FeaturePage([_feature(r) for r in rows], int(matched.scalar_one()))


def feature(session: Session, collection: str, fid: str) -> dict[str, Any] | None:
    """One feature by id (grid id, area code, household external id), or None."""
    if collection not in _SELECTS:
        raise NotFound(f"There is no collection {collection!r}.", what="collection")
    if collection == "grids":
        if not fid.isdigit() or len(fid) > 9:
            return None
        cond, value = "g.id = :fid", int(fid)
    else:
        cond = "a.code = :fid" if collection == "areas" else "h.external_id = :fid"
        value = fid  # type: ignore[assignment]
    row = session.execute(
        text(f"{_SELECTS[collection]} WHERE {cond}"), {"fid": value}
    ).first()
    return _feature(row) if row is not None else None


def grid_tile(
    session: Session, z: int, x: int, y: int, *, plan_id: int | None = None
) -> bytes:
    """A Mapbox vector tile (layer ``grids``) of the published grids, or one plan's.

    Built in PostGIS with ``ST_TileEnvelope``/``ST_AsMVTGeom``/``ST_AsMVT``
    (Web Mercator tiles, 4096 extent, 64 buffer).
    """
    n = 1 << z
    if not (0 <= z <= 24 and 0 <= x < n and 0 <= y < n):
        raise ValueError(f"tile {z}/{x}/{y} does not exist (x and y must be < 2^z)")
    plan_cond = "g.plan_id = :plan" if plan_id is not None else "p.status = 'published'"
    row = session.execute(
        text(
            "WITH b AS (SELECT ST_TileEnvelope(:z, :x, :y) AS env), "
            "t AS (SELECT ST_AsMVTGeom(ST_Transform(g.geom, 3857), b.env, 4096, 64, true) "
            "AS geom, g.id, g.code, g.name, g.kind, g.plan_id, a.code AS area_code "
            "FROM grids g JOIN plans p ON p.id = g.plan_id "
            "JOIN admin_areas a ON a.id = g.area_id, b "
            f"WHERE {plan_cond} AND g.geom && ST_Transform(b.env, 4326)) "
            "SELECT ST_AsMVT(t.*, 'grids', 4096, 'geom', 'id') FROM t "
            "WHERE t.geom IS NOT NULL"
        ),
        {"z": z, "x": x, "y": y, "plan": plan_id},
    ).scalar()
    return bytes(row or b"")
