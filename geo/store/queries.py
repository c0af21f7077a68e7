"""Read-side tables for planners: areas with counts, people, plans, coverage, stored plans."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import pandas as pd
from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from geo.plan import GridPlan
from geo.store.fanout import _SCOPE, unit_plan_frames
from geo.store.plans import plan_frames, plan_row

__all__ = [
    "DatabaseSummary",
    "PublishedPlan",
    "area_exists",
    "area_table",
    "building_footprints",
    "count_rows",
    "coverage_table",
    "database_summary",
    "example_address",
    "grids_cross",
    "inner_published",
    "load_in_force",
    "load_plan",
    "people_table",
    "plan_in_force",
    "plan_status",
    "plans_table",
    "published_plan",
    "published_plan_id",
    "top_level_areas",
]

_AREAS_SQL = (
    "WITH RECURSIVE tree(root, id) AS (SELECT id, id FROM admin_areas "
    "UNION ALL SELECT t.root, a.id FROM admin_areas a JOIN tree t ON a.parent_id = t.id), "
    "n AS (SELECT root, count(h.id) AS households FROM tree "
    "LEFT JOIN households h ON h.area_id = tree.id GROUP BY root) "
    "SELECT a.code, a.name, a.level, p.code AS parent_code, n.households "
    "FROM admin_areas a LEFT JOIN admin_areas p ON p.id = a.parent_id "
    "JOIN n ON n.root = a.id "
)


def area_exists(session: Session, code: str) -> bool:
    """Whether an admin area with this code is loaded."""
    found = session.execute(
        text("SELECT 1 FROM admin_areas WHERE code = :c"), {"c": code}
    ).first()
    return found is not None


def area_table(conn: Connection | Session, level: str | None = None) -> pd.DataFrame:
    """Admin areas with the households in them and below them (optionally one level)."""
    sql = _AREAS_SQL + ("WHERE a.level = :l " if level else "") + "ORDER BY a.code"
    return pd.read_sql_query(text(sql), _conn(conn), params={"l": level})


def people_table(
    conn: Connection | Session, roles: Sequence[str] | None = None
) -> pd.DataFrame:
    """Grid workers, grid leaders and party members with their work phones.

    ``roles`` keeps only those roles (e.g. the public viewer shows grid workers
    and leaders, never party members).
    """
    sql = (
        "SELECT p.external_id AS person_id, p.name, p.role, p.work_phone, "
        "a.code AS area_code FROM people p LEFT JOIN admin_areas a ON a.id = p.area_id "
        "WHERE CAST(:r AS text[]) IS NULL OR p.role = ANY(:r) "
        "ORDER BY p.external_id"
    )
    params = {"r": list(roles) if roles is not None else None}
    return pd.read_sql_query(text(sql), _conn(conn), params=params)


@dataclass(frozen=True)
class PublishedPlan:
    """The published plan of an area: ids and names a viewer needs."""

    plan_id: int
    area_code: str
    area_name: str
    lock_version: int


def published_plan(session: Session, area_code: str | None) -> PublishedPlan | None:
    """The published plan of ``area_code``, or of the first top-level area with one."""
    row = session.execute(
        text(
            "SELECT p.id, a.code, a.name, p.lock_version FROM plans p "
            "JOIN admin_areas a ON a.id = p.area_id WHERE p.status = 'published' "
            "AND (CAST(:c AS text) IS NULL OR a.code = :c) "
            "ORDER BY a.parent_id IS NOT NULL, a.code LIMIT 1"
        ),
        {"c": area_code},
    ).first()
    return None if row is None else PublishedPlan(*row)


def plans_table(conn: Connection | Session) -> pd.DataFrame:
    """Every plan: area, version, status, dates, grids."""
    sql = (
        "SELECT p.id, a.code AS area_code, p.version, p.status, p.parent_id, "
        "p.valid_from, p.valid_to, p.lock_version, count(g.id) AS grids "
        "FROM plans p JOIN admin_areas a ON a.id = p.area_id "
        "LEFT JOIN grids g ON g.plan_id = p.id GROUP BY p.id, a.code ORDER BY p.id"
    )
    return pd.read_sql_query(text(sql), _conn(conn))


def coverage_table(conn: Connection | Session, plan_id: int) -> pd.DataFrame:
    """Households per grid with the grid worker and covering party members."""
    sql = (
        "SELECT g.code AS grid_code, w.name AS grid_worker, w.work_phone, "
        "count(x.household_id) AS households, "
        "count(x.member_id) AS households_with_member, "
        "count(DISTINCT x.member_id) AS party_members "
        "FROM grids g LEFT JOIN people w ON w.id = g.worker_id "
        "LEFT JOIN assignments x ON x.grid_id = g.id "
        "WHERE g.plan_id = :p GROUP BY g.code, w.name, w.work_phone ORDER BY g.code"
    )
    return pd.read_sql_query(text(sql), _conn(conn), params={"p": plan_id})


def published_plan_id(session: Session, area_code: str) -> int | None:
    """The id of the area's published plan, or None."""
    row = session.execute(
        text(
            "SELECT p.id FROM plans p JOIN admin_areas a ON a.id = p.area_id "
            "WHERE a.code = :c AND p.status = 'published'"
        ),
        {"c": area_code},
    ).first()
    return None if row is None else int(row[0])


def plan_in_force(session: Session, area_code: str) -> int | None:
    """The published plan whose grids answer for the area: its own, else that of
    the nearest area above it, when that plan's grids inside the area are the
    whole answer there (no grid of it crosses the area's boundary and no plan
    of an area inside is published); None otherwise.

    Publishing keeps one published answer per household (a township's plan
    replaces its part of the county's), so a township covered by the county's
    plan has no plan of its own: its grids are in the county's.
    """
    own = published_plan_id(session, area_code)
    if own is not None:
        return own
    row = session.execute(
        text(
            "WITH RECURSIVE up AS (SELECT parent_id AS id, 1 AS d FROM admin_areas "
            "WHERE code = :c UNION ALL SELECT a.parent_id, up.d + 1 FROM admin_areas a "
            "JOIN up ON a.id = up.id WHERE a.parent_id IS NOT NULL) "
            "SELECT p.id FROM plans p JOIN up ON p.area_id = up.id "
            "WHERE p.status = 'published' ORDER BY up.d LIMIT 1"
        ),
        {"c": area_code},
    ).first()
    if row is None:
        return None
    pid = int(row[0])
    inner = session.execute(
        text(
            _SCOPE + "SELECT 1 FROM plans p WHERE p.status = 'published' AND "
            "p.area_id IN (SELECT id FROM scope) LIMIT 1"
        ),
        {"c": area_code},
    ).first()
    return None if inner is not None or grids_cross(session, pid, area_code) else pid


def grids_cross(session: Session, plan_id: int, area_code: str) -> bool:
    """Whether a grid of the plan holds households both inside the area
    ``area_code`` and outside it (its grids inside the area are then not the
    whole answer there)."""
    row = session.execute(
        text(
            _SCOPE + "(SELECT 1 FROM grids g JOIN assignments x ON x.grid_id = g.id "
            "JOIN households h ON h.id = x.household_id WHERE g.plan_id = :p "
            "AND g.area_id IN (SELECT id FROM scope) "
            "AND h.area_id NOT IN (SELECT id FROM scope) LIMIT 1) "
            "UNION ALL (SELECT 1 FROM households h JOIN assignments x "
            "ON x.household_id = h.id AND x.plan_id = :p JOIN grids g ON g.id = x.grid_id "
            "WHERE h.area_id IN (SELECT id FROM scope) "
            "AND g.area_id NOT IN (SELECT id FROM scope) LIMIT 1) LIMIT 1"
        ),
        {"c": area_code, "p": plan_id},
    ).first()
    return row is not None


def load_plan(
    session: Session, plan_id: int, *, within: str | None = None
) -> tuple[GridPlan, dict[str, Any]]:
    """A stored plan with its grid workers and covering members, and its info.

    ``within``: only its grids in that area and their households (and only the
    exceptions of those grids), as :func:`plan_in_force` hands a township the
    county's plan; ``info`` stays the whole plan's.
    """
    if within is None:
        grids, assignments, info = plan_frames(session, plan_id)
    else:
        info = plan_row(session, plan_id)
        grids, assignments = unit_plan_frames(session, plan_id, within)
    # (with ``within``, only the staff of its grids: a township of a province's
    # plan reads its own, not the province's)
    scope, inside_sql = (
        ("", "")
        if within is None
        else (_SCOPE, " AND g.area_id IN (SELECT id FROM scope)")
    )
    workers = session.execute(
        text(
            scope + "SELECT g.code, p.external_id FROM grids g "
            "JOIN people p ON p.id = g.worker_id WHERE g.plan_id = :p" + inside_sql
        ),
        {"p": plan_id, "c": within},
    ).all()
    grids["worker_id"] = grids["grid_code"].map(dict(workers))  # type: ignore[arg-type]
    members = session.execute(
        text(
            scope + "SELECT h.external_id, p.external_id FROM assignments x "
            "JOIN households h ON h.id = x.household_id "
            "JOIN grids g ON g.id = x.grid_id "
            "JOIN people p ON p.id = x.member_id WHERE x.plan_id = :p" + inside_sql
        ),
        {"p": plan_id, "c": within},
    ).all()
    assignments["member_id"] = assignments["household_id"].map(dict(members))  # type: ignore[arg-type]
    grids["load"] = grids["households"].astype(float)
    metrics = dict(info.get("metrics") or {})
    exceptions = metrics.get("exceptions", [])
    if within is not None:
        inside = set(grids["grid_code"].astype(str))
        exceptions = [e for e in exceptions if str(e.get("grid_code")) in inside]
    report = {"metrics": metrics, "exceptions": exceptions}
    return GridPlan(grids=grids, assignments=assignments, report=report), info


def inner_published(session: Session, plan_id: int) -> list[tuple[int, int]]:
    """``(id, lock_version)`` of the published plans of areas inside plan
    ``plan_id``'s area (their grids are in force there, see
    :func:`geo.store.plans.publish_plan`)."""
    rows = session.execute(
        text(
            "WITH RECURSIVE sub AS (SELECT c.id FROM admin_areas c JOIN plans q "
            "ON q.area_id = c.parent_id WHERE q.id = :p UNION ALL SELECT c.id FROM "
            "admin_areas c JOIN sub ON c.parent_id = sub.id) SELECT p.id, p.lock_version "
            "FROM plans p WHERE p.status = 'published' AND p.area_id IN "
            "(SELECT id FROM sub) ORDER BY p.id"
        ),
        {"p": plan_id},
    ).all()
    return [(int(i), int(v)) for i, v in rows]


def load_in_force(session: Session, plan_id: int) -> GridPlan:
    """Plan ``plan_id`` with the grids of the published plans inside its area:
    what is in force across the area, one grid per household."""
    plan, _ = load_plan(session, plan_id)
    inner = inner_published(session, plan_id)
    if not inner:
        return plan
    parts = [plan] + [load_plan(session, i)[0] for i, _ in inner]
    grids = gpd.GeoDataFrame(
        pd.concat([p.grids for p in parts], ignore_index=True), crs=plan.grids.crs
    )
    assignments = pd.concat([p.assignments for p in parts], ignore_index=True)
    exceptions = [e for p in parts for e in p.report.get("exceptions", [])]
    return GridPlan(grids, assignments, {**plan.report, "exceptions": exceptions})


def _conn(conn: Connection | Session) -> Connection:
    return conn.connection() if isinstance(conn, Session) else conn


@dataclass(frozen=True)
class DatabaseSummary:
    """What the database holds, as ``gridmap summary`` prints it."""

    areas: int
    households: int
    people: int
    plans: int
    grids: int
    #: (code, name, villages, households, households in apartment buildings)
    townships: list[tuple[Any, ...]]
    #: (plan id, version, status, grids, households assigned)
    plan_rows: list[tuple[Any, ...]]
    #: villages/communities with < 200, 200–300, 301–399 and ≥ 400 households
    village_sizes: tuple[int, int, int, int]


def database_summary(conn: Connection | Session) -> DatabaseSummary:
    """Counts per table, households per township, plans, villages by size band."""
    c = _conn(conn)
    totals = c.execute(
        text(
            "SELECT (SELECT count(*) FROM admin_areas), (SELECT count(*) FROM households), "
            "(SELECT count(*) FROM people), (SELECT count(*) FROM plans), "
            "(SELECT count(*) FROM grids)"
        )
    ).one()
    townships = c.execute(
        text(
            "SELECT t.code, t.name, count(DISTINCT v.id), count(h.id), "
            "count(*) FILTER (WHERE h.building_id IS NOT NULL) "
            "FROM admin_areas t JOIN admin_areas v ON v.parent_id = t.id "
            "LEFT JOIN households h ON h.area_id = v.id "
            "WHERE t.level = 'township' GROUP BY t.code, t.name ORDER BY t.code"
        )
    ).all()
    plan_rows = c.execute(
        text(
            "SELECT p.id, p.version, p.status, count(DISTINCT g.id), count(a.household_id) "
            "FROM plans p LEFT JOIN grids g ON g.plan_id = p.id "
            "LEFT JOIN assignments a ON a.grid_id = g.id GROUP BY p.id ORDER BY p.id"
        )
    ).all()
    sizes = c.execute(
        text(
            "SELECT count(*) FILTER (WHERE n < 200), count(*) FILTER (WHERE n BETWEEN 200 AND 300), "
            "count(*) FILTER (WHERE n BETWEEN 301 AND 399), count(*) FILTER (WHERE n >= 400) "
            "FROM (SELECT v.id, count(h.id) AS n FROM admin_areas v "
            "LEFT JOIN households h ON h.area_id = v.id "
            "WHERE v.level IN ('village', 'community') GROUP BY v.id) s"
        )
    ).one()
    areas, households, people, plans, grids = (int(x) for x in totals)
    return DatabaseSummary(
        areas=areas,
        households=households,
        people=people,
        plans=plans,
        grids=grids,
        townships=[tuple(r) for r in townships],
        plan_rows=[tuple(r) for r in plan_rows],
        village_sizes=(int(sizes[0]), int(sizes[1]), int(sizes[2]), int(sizes[3])),
    )


def count_rows(conn: Connection | Session, table: str) -> int:
    """Rows in one of GridMap's tables."""
    if table not in {"admin_areas", "households", "people", "plans", "grids"}:
        raise ValueError(f"unknown table {table!r}")
    return int(_conn(conn).execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def top_level_areas(conn: Connection | Session) -> list[tuple[str, str]]:
    """(code, name) of every area without a parent."""
    rows = _conn(conn).execute(
        text("SELECT code, name FROM admin_areas WHERE parent_id IS NULL ORDER BY code")
    )
    return [(str(r[0]), str(r[1])) for r in rows]


def example_address(conn: Connection | Session) -> str | None:
    """The address of some household in a published plan (for the main job's hint)."""
    return (
        _conn(conn)
        .execute(
            text(
                "SELECT h.address FROM households h JOIN assignments a "
                "ON a.household_id = h.id JOIN plans p ON p.id = a.plan_id "
                "WHERE p.status = 'published' AND h.address IS NOT NULL "
                "ORDER BY h.id LIMIT 1"
            )
        )
        .scalar()
    )


def plan_status(session: Session, plan_id: int) -> str | None:
    """``draft``, ``published`` or ``archived``; None when there is no such plan."""
    return session.execute(
        text("SELECT status FROM plans WHERE id = :p"), {"p": plan_id}
    ).scalar_one_or_none()


#: A building's footprint as the map shows it: the hull of its households'
#: points, widened by a few metres (points alone give a small octagon).
_FOOTPRINT_M = 6.0


def building_footprints(session: Session, area_code: str) -> gpd.GeoDataFrame:
    """Approximate footprints of the buildings in an area and below it, for maps.

    Households carry a ``building_id`` but no polygon: each building is drawn as
    the convex hull of its households' points widened by 6 m (a lone point becomes
    a small octagon), in EPSG:4326, with its number of households. Context only,
    never used to draw or check grids.
    """
    return gpd.read_postgis(
        text(
            "WITH RECURSIVE scope AS (SELECT id FROM admin_areas WHERE code = :c "
            "UNION ALL SELECT a.id FROM admin_areas a JOIN scope s ON a.parent_id = s.id) "
            "SELECT h.building_id, count(*) AS households, "
            "ST_Buffer(ST_ConvexHull(ST_Collect(h.geom))::geography, :m, "
            "'quad_segs=2')::geometry AS geom FROM households h "
            "WHERE h.area_id IN (SELECT id FROM scope) AND h.building_id IS NOT NULL "
            "GROUP BY h.building_id ORDER BY h.building_id"
        ),
        session.connection(),
        geom_col="geom",
        params={"c": area_code, "m": _FOOTPRINT_M},
    ).rename_geometry("geometry")
