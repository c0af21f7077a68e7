"""The database side of drawing a plan unit by unit (:mod:`geo.fanout`).

A plan drawn on a Dask cluster is a draft whose ``metrics["fanout"]`` lists its
units (townships or counties) and their state::

    {"units": {"330803100": {"status": "done", "households": 2410, ...},
               "330803101": {"status": "failed", "error": "ValueError: ..."}},
     "excluded": [], "ref_latitude": 29.1, "kind": "generate"}

Each unit is written by :func:`write_unit` in ONE transaction: the unit's old
rows (a retried unit, a worker that died before) are deleted, its grids are
copied in with ``COPY``, its assignments staged with ``COPY`` and inserted, and
its state is set to ``done`` in the same commit. A worker that dies before that
commit leaves nothing of its unit. :func:`geo.store.plans.publish_plan` refuses
a draft whose units are not all done or excluded
(:class:`~geo.errors.IncompletePlanError`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import InputError, NotFound, PlanConflictError, Problem
from geo.store.plans import insert_draft, save_assignments
from geo.vocabulary import VILLAGE_LEVELS

__all__ = [
    "FANOUT_KEY",
    "Unit",
    "create_draft",
    "exclude_units",
    "fanout_state",
    "missing_grid_codes",
    "plan_info",
    "plan_units",
    "set_plan_summary",
    "set_unit_state",
    "unit_plan_frames",
    "write_unit",
]

#: The key of ``plans.metrics`` holding the units of a plan drawn unit by unit.
FANOUT_KEY = "fanout"

#: Test hook: when this environment variable names a file whose content is a
#: unit code, the worker writing that unit deletes the file and exits the
#: process after copying its grids, before committing (a worker dying mid-write).
DIE_HOOK_ENV = "GRIDMAP_FANOUT_TEST_DIE"

_SCOPE = (
    "WITH RECURSIVE scope AS (SELECT id FROM admin_areas WHERE code = :c "
    "UNION ALL SELECT a.id FROM admin_areas a JOIN scope s ON a.parent_id = s.id) "
)


@dataclass(frozen=True)
class Unit:
    """One independent part of an area: drawn by one task."""

    code: str
    level: str
    households: int


def plan_units(
    session: Session, area_code: str, *, respect_level: str = "village"
) -> tuple[list[Unit], float]:
    """Split ``area_code`` into independent units; also the whole area's reference latitude.

    Generation groups leaf areas (villages and communities, or townships when
    ``respect_level="township"``) only with siblings of the same parent, so any
    set of areas that holds whole parents can be drawn alone with the same
    result. The units are the townships of the area (the parents of its
    villages), or its counties when the area is a province or a city or the
    leaves are townships. When the area is itself such a unit, when a leaf has
    no such ancestor, or when households hang above the units, the area is one
    unit. Reads only codes, levels, counts and the leaves' north/south bounds
    (no geometry, no household rows).

    Returns
    -------
    (units, ref_latitude)
        Units ordered by code (only those with households, at least one), and
        the latitude generation of the whole area uses for its east-west scale
        (the mean of the leaves' bounds, leaves ordered by code).
    """
    row = session.execute(
        text("SELECT level FROM admin_areas WHERE code = :c"), {"c": area_code}
    ).first()
    if row is None:
        raise NotFound(f"There is no admin area {area_code!r}.", what="area")
    area_level = str(row[0])
    leaf_levels = VILLAGE_LEVELS if respect_level == "village" else (respect_level,)
    rows = session.execute(
        text(
            _SCOPE + "SELECT a.code, a.level, p.code, "
            "ST_YMin(ST_Envelope(a.geom)), ST_YMax(ST_Envelope(a.geom)), "
            "(SELECT count(*) FROM households h WHERE h.area_id = a.id) "
            "FROM admin_areas a LEFT JOIN admin_areas p ON p.id = a.parent_id "
            "WHERE a.id IN (SELECT id FROM scope) ORDER BY a.code"
        ),
        {"c": area_code},
    ).all()
    parent = {str(c): (None if p is None else str(p)) for c, _, p, *_ in rows}
    level = {str(c): str(lv) for c, lv, *_ in rows}
    count = {str(r[0]): int(r[5]) for r in rows}
    leaves = [r for r in rows if r[1] in leaf_levels]
    if not leaves:
        return [Unit(area_code, area_level, sum(count.values()))], float("nan")
    bounds = np.array([[float(r[3]), float(r[4])] for r in leaves])
    ref_latitude = float(np.mean(bounds))
    unit_level = (
        "county"
        if respect_level == "township" or area_level in ("province", "city")
        else "township"
    )

    def unit_of(code: str) -> str | None:
        c: str | None = code
        while c is not None and c != area_code:
            if level[c] == unit_level:
                return c
            c = parent.get(c)
        return None

    whole = [Unit(area_code, area_level, sum(count.values()))]
    of_leaf = {str(r[0]): unit_of(str(r[0])) for r in leaves}
    if any(u is None for u in of_leaf.values()):
        return whole, ref_latitude
    codes = sorted({u for u in of_leaf.values() if u is not None})
    # every household must hang at or below some unit
    per_unit = dict.fromkeys(codes, 0)
    for code, n in count.items():
        if n == 0:
            continue
        u = code if code in per_unit else unit_of(code)
        if u is None:
            return whole, ref_latitude
        per_unit[u] += n
    units = [Unit(c, level[c], per_unit[c]) for c in codes if per_unit[c] > 0]
    return units or whole, ref_latitude


def create_draft(
    session: Session,
    area_code: str,
    units: Sequence[Unit],
    *,
    kind: str,
    params: Mapping[str, Any],
    ref_latitude: float | None = None,
    name: str | None = None,
    created_by: str | None = None,
    parent_id: int | None = None,
) -> int:
    """A new, empty draft plan of ``area_code`` whose units are all pending; its id.

    The caller commits (workers in other processes must see the plan).
    """
    area = session.execute(
        text("SELECT id FROM admin_areas WHERE code = :c"), {"c": area_code}
    ).scalar()
    if area is None:
        raise NotFound(f"There is no admin area {area_code!r}.", what="area")
    state: dict[str, Any] = {
        "kind": kind,
        "units": {
            u.code: {"status": "pending", "level": u.level, "households": u.households}
            for u in units
        },
        "excluded": [],
        "ref_latitude": None
        if ref_latitude is None or np.isnan(ref_latitude)
        else ref_latitude,
    }
    return insert_draft(
        session,
        int(area),
        name=name,
        parent_id=parent_id,
        params=params,
        metrics={FANOUT_KEY: state},
        created_by=created_by,
    )


def fanout_state(session: Session, plan_id: int) -> dict[str, Any]:
    """``{"area_code", "status", "params", "parent_id", "fanout"}`` of a plan.

    Raises :class:`~geo.errors.NotFound` for an unknown plan and
    :class:`~geo.errors.InputError` when the plan was not drawn unit by unit.
    """
    row = session.execute(
        text(
            "SELECT a.code, p.status, p.params, p.metrics, p.parent_id FROM plans p "
            "JOIN admin_areas a ON a.id = p.area_id WHERE p.id = :p"
        ),
        {"p": plan_id},
    ).first()
    if row is None:
        raise NotFound(f"There is no plan {plan_id}.", what="plan")
    fan = (row[3] or {}).get(FANOUT_KEY)
    if not fan:
        raise InputError.one(
            f"plan {plan_id}", "the plan was not drawn unit by unit", field="plan_id"
        )
    return {
        "area_code": row[0],
        "status": row[1],
        "params": dict(row[2] or {}),
        "fanout": fan,
        "parent_id": row[4],
    }


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def set_unit_state(
    session: Session, plan_id: int, unit_code: str, state: Mapping[str, Any]
) -> None:
    """Record one unit's state (e.g. ``{"status": "failed", "error": ...}``)."""
    session.execute(
        text(
            "UPDATE plans SET metrics = jsonb_set(metrics, "
            "ARRAY['fanout', 'units', CAST(:u AS text)], CAST(:s AS jsonb)) WHERE id = :p"
        ),
        {"p": plan_id, "u": unit_code, "s": _json(dict(state))},
    )


def set_plan_summary(
    session: Session, plan_id: int, summary: Mapping[str, Any]
) -> None:
    """Merge plan-level figures (combined metrics, failed units) into ``metrics``."""
    session.execute(
        text(
            "UPDATE plans SET metrics = metrics || CAST(:m AS jsonb), "
            "lock_version = lock_version + 1 WHERE id = :p"
        ),
        {"p": plan_id, "m": _json(dict(summary))},
    )


def _delete_unit_rows(session: Session, plan_id: int, unit_code: str) -> int:
    """Delete the plan's grids (and by cascade their assignments) inside the unit."""
    return int(
        session.execute(  # type: ignore[attr-defined]
            text(
                _SCOPE + "DELETE FROM grids WHERE plan_id = :p "
                "AND area_id IN (SELECT id FROM scope)"
            ),
            {"p": plan_id, "c": unit_code},
        ).rowcount
    )


def write_unit(
    session: Session,
    plan_id: int,
    unit_code: str,
    grids: gpd.GeoDataFrame,
    assignments: pd.DataFrame,
    state: Mapping[str, Any],
) -> None:
    """Replace the unit's grids and assignments in a draft and mark the unit done.

    Call in one transaction (the worker's ``session_scope``): anything of the
    unit from an earlier attempt is deleted first, grids are loaded with ``COPY``,
    assignments through :func:`~geo.store.plans.save_assignments` (``COPY`` into
    a staging table) and the unit's state is set last, so the commit makes the
    unit complete at once and a crash before it leaves none of its rows.
    """
    status = session.execute(
        text("SELECT status FROM plans WHERE id = :p"), {"p": plan_id}
    ).scalar()
    if status is None:
        raise NotFound(f"There is no plan {plan_id}.", what="plan")
    if status != "draft":
        raise PlanConflictError(
            f"plan {plan_id} is {status}; units are written into drafts only"
        )
    _delete_unit_rows(session, plan_id, unit_code)
    _copy_grids(session, plan_id, unit_code, grids)
    hook = os.environ.get(DIE_HOOK_ENV)
    if hook and _take_hook(hook, unit_code):
        os._exit(70)  # a worker dying mid-write (tests only)
    save_assignments(session, plan_id, assignments)
    set_unit_state(session, plan_id, unit_code, {**dict(state), "status": "done"})


def _take_hook(path: str, unit_code: str) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            armed = f.read().strip() == unit_code
        if armed:
            os.remove(path)
        return armed
    except OSError:
        return False


def _copy_grids(
    session: Session, plan_id: int, unit_code: str, grids: gpd.GeoDataFrame
) -> None:
    """``COPY`` a unit's grids into ``grids`` (area codes must lie in the unit)."""
    if grids.empty:
        return
    src = f"unit {unit_code} of plan {plan_id}"
    if grids.crs is None or grids.crs.to_epsg() != 4326:
        grids = grids.to_crs(4326)
    codes: dict[str, int] = {
        str(c): int(i)
        for c, i in session.execute(
            text(
                _SCOPE
                + "SELECT code, id FROM admin_areas WHERE id IN (SELECT id FROM scope)"
            ),
            {"c": unit_code},
        ).all()
    }
    people: dict[str, int] = {}
    if "worker_id" in grids.columns:
        wanted = sorted({str(w) for w in grids["worker_id"].dropna()})
        if wanted:
            people = {
                str(e): int(i)
                for e, i in session.execute(
                    text(
                        "SELECT external_id, id FROM people WHERE external_id = ANY(:w)"
                    ),
                    {"w": wanted},
                ).all()
            }
    unknown = sorted({str(a) for a in grids["area_code"] if str(a) not in codes})
    if unknown:
        raise InputError(
            [Problem(src, f"grid area {a!r} is not inside the unit") for a in unknown]
        )
    geoms = [
        shapely.orient_polygons(
            shapely.MultiPolygon([g]) if g.geom_type == "Polygon" else g
        )
        for g in np.asarray(grids.geometry.values, dtype=object)
    ]
    wkb = shapely.to_wkb(
        shapely.set_srid(np.asarray(geoms, dtype=object), 4326),
        hex=True,
        include_srid=True,
    )
    attr_cols = [
        c for c in ("households", "load", "exception", "cause", "areas") if c in grids
    ]
    names = grids["name"] if "name" in grids.columns else [None] * len(grids)
    kinds = grids["kind"] if "kind" in grids.columns else ["comprehensive"] * len(grids)
    workers = (
        grids["worker_id"] if "worker_id" in grids.columns else [None] * len(grids)
    )
    attrs = grids[attr_cols].to_dict("records") if attr_cols else [{}] * len(grids)
    conn: Any = session.connection().connection.driver_connection
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY grids (plan_id, code, name, kind, area_id, worker_id, geom, attrs) FROM STDIN"
        ) as cp,
    ):
        for code, acode, nm, kd, wk, g, at in zip(
            grids["grid_code"],
            grids["area_code"],
            names,
            kinds,
            workers,
            wkb,
            attrs,
            strict=True,
        ):
            cp.write_row(
                (
                    plan_id,
                    str(code),
                    None if nm is None or pd.isna(nm) else str(nm),
                    kd,
                    codes[str(acode)],
                    None if wk is None or pd.isna(wk) else people.get(str(wk)),
                    g,
                    _json({k: (None if _isna(v) else v) for k, v in at.items()}),
                )
            )


def _isna(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def exclude_units(session: Session, plan_id: int, codes: Iterable[str]) -> list[str]:
    """Exclude units from a draft explicitly; their rows are deleted. Returns all excluded.

    Raises :class:`~geo.errors.InputError` naming codes that are not units of
    the plan and :class:`~geo.errors.PlanConflictError` when it is not a draft.
    """
    state = fanout_state(session, plan_id)
    if state["status"] != "draft":
        raise PlanConflictError(
            f"plan {plan_id} is {state['status']}; only a draft's units can be excluded"
        )
    wanted = [str(c) for c in codes]
    units = state["fanout"].get("units", {})
    bad = [c for c in wanted if c not in units]
    if bad:
        raise InputError(
            [
                Problem(
                    f"plan {plan_id}",
                    f"{c!r} is not a unit of the plan",
                    field="exclude",
                )
                for c in bad
            ]
        )
    for c in wanted:
        _delete_unit_rows(session, plan_id, c)
    excluded = sorted(set(state["fanout"].get("excluded", [])) | set(wanted))
    session.execute(
        text(
            "UPDATE plans SET metrics = jsonb_set(metrics, '{fanout,excluded}', "
            "CAST(:e AS jsonb)), lock_version = lock_version + 1 WHERE id = :p"
        ),
        {"p": plan_id, "e": _json(excluded)},
    )
    return excluded


def unit_plan_frames(
    session: Session, plan_id: int, unit_code: str
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """A stored plan's grids and assignments inside one unit, as
    :func:`geo.store.plans.plan_frames` gives them for the whole plan."""
    sql = (
        _SCOPE + "SELECT g.code AS grid_code, g.name, g.kind, a.code AS area_code, "
        "count(x.household_id) AS households, g.geom "
        "FROM grids g JOIN admin_areas a ON a.id = g.area_id "
        "LEFT JOIN assignments x ON x.grid_id = g.id "
        "WHERE g.plan_id = :p AND g.area_id IN (SELECT id FROM scope) "
        "GROUP BY g.id, a.code ORDER BY g.code"
    )
    grids = gpd.read_postgis(
        text(sql),
        session.connection(),
        geom_col="geom",
        params={"p": plan_id, "c": unit_code},
    ).rename_geometry("geometry")
    assignments = pd.read_sql_query(
        text(
            _SCOPE + "SELECT h.external_id AS household_id, g.code AS grid_code "
            "FROM assignments x JOIN households h ON h.id = x.household_id "
            "JOIN grids g ON g.id = x.grid_id WHERE x.plan_id = :p "
            "AND g.area_id IN (SELECT id FROM scope) ORDER BY h.external_id"
        ),
        session.connection(),
        params={"p": plan_id, "c": unit_code},
    )
    return grids, assignments


def missing_grid_codes(
    session: Session, plan_id: int, codes: Sequence[str]
) -> list[str]:
    """Those of ``codes`` that are not grids of the plan."""
    if not codes:
        return []
    found = set(
        session.execute(
            text("SELECT code FROM grids WHERE plan_id = :p AND code = ANY(:c)"),
            {"p": plan_id, "c": list(codes)},
        ).scalars()
    )
    return sorted(set(codes) - found)


def plan_info(session: Session, plan_id: int) -> dict[str, Any] | None:
    """``{"area_code", "status", "params", "metrics"}`` of a plan, or None."""
    row = session.execute(
        text(
            "SELECT a.code, p.status, p.params, p.metrics FROM plans p "
            "JOIN admin_areas a ON a.id = p.area_id WHERE p.id = :p"
        ),
        {"p": plan_id},
    ).first()
    if row is None:
        return None
    return {
        "area_code": str(row[0]),
        "status": row[1],
        "params": dict(row[2] or {}),
        "metrics": dict(row[3] or {}),
    }
