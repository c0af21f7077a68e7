"""Storing grid plans in PostGIS: drafts, versions, publishing, reading back."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.io import InputError, Problem

__all__ = [
    "PlanConflictError",
    "plan_grids",
    "publish_plan",
    "save_plan",
]


class PlanConflictError(RuntimeError):
    """A plan changed state under the caller (published twice, edited concurrently)."""


def save_plan(
    session: Session,
    area_code: str,
    grids: gpd.GeoDataFrame,
    *,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    created_by: str | None = None,
    parent_id: int | None = None,
) -> int:
    """Store ``grids`` as a new draft plan of the area ``area_code``; return its id.

    ``grids`` needs ``grid_code`` and ``area_code`` columns (the admin area each
    grid belongs to) and polygons in EPSG:4326; ``name``, ``kind`` and
    ``worker_id`` (a person's external id) are optional. The plan's version is
    the area's next version number. The caller commits.
    """
    src = f"plan for {area_code}"
    if grids.crs is None or grids.crs.to_epsg() != 4326:
        raise InputError([Problem(src, f"grids must be in EPSG:4326, not {grids.crs}")])
    for col in ("grid_code", "area_code"):
        if col not in grids.columns:
            raise InputError([Problem(src, f"grids need a '{col}' column")])
    dup = grids["grid_code"][grids["grid_code"].duplicated()].tolist()
    if dup:
        raise InputError(
            [Problem(src, f"duplicate grid codes: {', '.join(map(str, dup[:10]))}")]
        )
    area = session.execute(
        text("SELECT id FROM admin_areas WHERE code = :c"), {"c": area_code}
    ).scalar()
    if area is None:
        raise InputError([Problem(src, f"unknown area {area_code!r}")])
    codes = dict(session.execute(text("SELECT code, id FROM admin_areas")).all())
    people = dict(session.execute(text("SELECT external_id, id FROM people")).all())
    problems: list[Problem] = []
    geoms = np.asarray(grids.geometry.values, dtype=object)
    for i, (code, acode) in enumerate(
        zip(grids["grid_code"], grids["area_code"], strict=True), 1
    ):
        if acode not in codes:
            problems.append(
                Problem(
                    src,
                    f"grid {code}: unknown area {acode!r}",
                    row=i,
                    field="area_code",
                )
            )
        g = geoms[i - 1]
        if (
            g is None
            or g.is_empty
            or not g.is_valid
            or g.geom_type not in {"Polygon", "MultiPolygon"}
        ):
            reason = "empty" if g is None or g.is_empty else shapely.is_valid_reason(g)
            problems.append(
                Problem(
                    src, f"grid {code}: bad polygon ({reason})", row=i, field="geometry"
                )
            )
    if problems:
        raise InputError(problems)
    version = session.execute(
        text("SELECT coalesce(max(version), 0) + 1 FROM plans WHERE area_id = :a"),
        {"a": area},
    ).scalar()
    plan_id = session.execute(
        text(
            "INSERT INTO plans (area_id, version, name, status, parent_id, params, metrics, "
            "created_by) VALUES (:a, :v, :n, 'draft', :parent, CAST(:params AS jsonb), "
            "CAST(:metrics AS jsonb), :by) RETURNING id"
        ),
        {
            "a": area,
            "v": version,
            "n": name,
            "parent": parent_id,
            "params": json.dumps(dict(params or {}), ensure_ascii=False, default=str),
            "metrics": json.dumps(dict(metrics or {}), ensure_ascii=False, default=str),
            "by": created_by,
        },
    ).scalar_one()
    multi = [
        shapely.MultiPolygon([g]) if g.geom_type == "Polygon" else g for g in geoms
    ]
    multi = [shapely.orient_polygons(g) for g in multi]
    rows = [
        {
            "plan": plan_id,
            "code": str(code),
            "name": (grids["name"].iloc[i] if "name" in grids.columns else None),
            "kind": (
                grids["kind"].iloc[i] if "kind" in grids.columns else "comprehensive"
            ),
            "area": codes[acode],
            "worker": people.get(grids["worker_id"].iloc[i])
            if "worker_id" in grids.columns
            else None,
            "wkb": shapely.to_wkb(multi[i], hex=True),
        }
        for i, (code, acode) in enumerate(
            zip(grids["grid_code"], grids["area_code"], strict=True)
        )
    ]
    if rows:
        session.execute(
            text(
                "INSERT INTO grids (plan_id, code, name, kind, area_id, worker_id, geom) "
                "VALUES (:plan, :code, :name, :kind, :area, :worker, "
                "ST_SetSRID(ST_GeomFromWKB(decode(:wkb, 'hex')), 4326))"
            ),
            rows,
        )
    return int(plan_id)


def publish_plan(
    session: Session, plan_id: int, *, at: dt.datetime | None = None
) -> None:
    """Publish a draft atomically: the area's published plan is archived in the same step.

    Lookups never see two published plans (a unique index forbids it) nor none
    in between (both changes commit together). The caller commits.
    """
    at = at or dt.datetime.now(dt.UTC)
    row = session.execute(
        text("SELECT area_id, status FROM plans WHERE id = :p FOR UPDATE"),
        {"p": plan_id},
    ).first()
    if row is None:
        raise LookupError(f"plan {plan_id} does not exist")
    area_id, status = row
    if status != "draft":
        raise PlanConflictError(
            f"plan {plan_id} is {status}; only a draft can be published"
        )
    session.execute(
        text(
            "UPDATE plans SET status = 'archived', valid_to = :at, lock_version = lock_version + 1 "
            "WHERE area_id = :a AND status = 'published'"
        ),
        {"a": area_id, "at": at},
    )
    session.execute(
        text(
            "UPDATE plans SET status = 'published', valid_from = :at, "
            "lock_version = lock_version + 1 WHERE id = :p"
        ),
        {"p": plan_id, "at": at},
    )


def plan_grids(session: Session, plan_id: int) -> gpd.GeoDataFrame:
    """The grids of a plan with their household counts, as a GeoDataFrame."""
    sql = (
        "SELECT g.code AS grid_code, g.name, g.kind, a.code AS area_code, "
        "count(x.household_id) AS households, g.geom "
        "FROM grids g JOIN admin_areas a ON a.id = g.area_id "
        "LEFT JOIN assignments x ON x.grid_id = g.id "
        "WHERE g.plan_id = :p GROUP BY g.id, a.code ORDER BY g.code"
    )
    return gpd.read_postgis(
        text(sql), session.connection(), geom_col="geom", params={"p": plan_id}
    )
