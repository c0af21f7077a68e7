"""Storing grid plans in PostGIS: drafts, versions, publishing, reading back."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geo.errors import (
    IncompletePlanError,
    InputError,
    NotFound,
    OutOfScope,
    PlanConflictError,
    Problem,
    UnstaffedPlanError,
)

__all__ = [
    "PlanConflictError",
    "area_frames",
    "copy_plan",
    "next_version",
    "plan_frames",
    "plan_grids",
    "plan_row",
    "publish_plan",
    "save_assignments",
    "save_generated_plan",
    "save_plan",
    "unstaffed_grids",
    "update_draft",
]


#: Per-grid figures from generation kept in ``grids.attrs``.
_GRID_ATTRS = ("households", "load", "exception", "cause", "areas")


def _id_maps(session: Session) -> tuple[dict[str, int], dict[str, int]]:
    """Area code -> id and person external id -> id."""
    codes: dict[str, int] = dict(
        session.execute(text("SELECT code, id FROM admin_areas")).all()  # type: ignore[arg-type]
    )
    people: dict[str, int] = dict(
        session.execute(text("SELECT external_id, id FROM people")).all()  # type: ignore[arg-type]
    )
    return codes, people


#: First key of the transaction-level advisory lock that serialises version
#: numbering per area (the second key is the area id).
PLAN_VERSION_LOCK = 0x67726964  # "grid"


def next_version(session: Session, area_id: int) -> int:
    """The area's next plan version, locked for the caller's transaction.

    Two transactions saving plans of one area at once would both read the same
    ``max(version)`` and one would fail on ``uq_plans_area_version``. A
    transaction-level advisory lock on the area is taken first, so the second
    waits until the first commits or rolls back and then reads the new maximum
    (each statement sees a fresh snapshot under READ COMMITTED). The lock is
    released when the transaction ends; readers and other areas never wait.
    """
    session.execute(
        text("SELECT pg_advisory_xact_lock(:k, :a)"),
        {"k": PLAN_VERSION_LOCK, "a": area_id},
    )
    return int(
        session.execute(
            text("SELECT coalesce(max(version), 0) + 1 FROM plans WHERE area_id = :a"),
            {"a": area_id},
        ).scalar_one()
    )


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
    codes, people = _id_maps(session)
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
    plan_id = insert_draft(
        session,
        int(area),
        name=name,
        parent_id=parent_id,
        params=params or {},
        metrics=metrics or {},
        created_by=created_by,
    )
    _insert_grids(session, plan_id, grids, codes, people)
    return plan_id


def insert_draft(
    session: Session,
    area_id: int,
    *,
    name: str | None,
    parent_id: int | None,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    created_by: str | None,
) -> int:
    """A new empty draft plan of the area at its next version (see
    :func:`next_version`); its id. The caller adds grids and commits."""
    return int(
        session.execute(
            text(
                "INSERT INTO plans (area_id, version, name, status, parent_id, params, "
                "metrics, created_by) VALUES (:a, :v, :n, 'draft', :parent, "
                "CAST(:params AS jsonb), CAST(:metrics AS jsonb), :by) RETURNING id"
            ),
            {
                "a": area_id,
                "v": next_version(session, area_id),
                "n": name,
                "parent": parent_id,
                "params": json.dumps(dict(params), ensure_ascii=False, default=str),
                "metrics": json.dumps(dict(metrics), ensure_ascii=False, default=str),
                "by": created_by,
            },
        ).scalar_one()
    )


def _insert_grids(
    session: Session,
    plan_id: int,
    grids: gpd.GeoDataFrame,
    codes: dict[str, int],
    people: dict[str, int],
) -> None:
    geoms = np.asarray(grids.geometry.values, dtype=object)
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
            "attrs": json.dumps(
                {
                    c: (None if pd.isna(grids[c].iloc[i]) else grids[c].iloc[i])
                    for c in _GRID_ATTRS
                    if c in grids.columns
                },
                ensure_ascii=False,
                default=str,
            ),
        }
        for i, (code, acode) in enumerate(
            zip(grids["grid_code"], grids["area_code"], strict=True)
        )
    ]
    if rows:
        session.execute(
            text(
                "INSERT INTO grids (plan_id, code, name, kind, area_id, worker_id, geom, attrs) "
                "VALUES (:plan, :code, :name, :kind, :area, :worker, "
                "ST_SetSRID(ST_GeomFromWKB(decode(:wkb, 'hex')), 4326), CAST(:attrs AS jsonb))"
            ),
            rows,
        )


def publish_plan(
    session: Session,
    plan_id: int,
    *,
    at: dt.datetime | None = None,
    allow_unstaffed: bool = True,
) -> None:
    """Publish a draft atomically: the area's published plan is archived in the same step.

    Lookups never see two published plans (a unique index forbids it) nor none
    in between (both changes commit together). The tables lookups read (plans,
    grids, assignments) are analysed in the same transaction. The caller commits.
    With ``allow_unstaffed=False`` (what :func:`geo.services.publish`, the
    workflow every front end calls, passes unless told otherwise) a draft with
    grids that have no grid worker is refused with
    :class:`~geo.errors.UnstaffedPlanError`; this storage step alone accepts it.
    """
    at = at or dt.datetime.now(dt.UTC)
    row = session.execute(
        text("SELECT area_id, status, metrics FROM plans WHERE id = :p FOR UPDATE"),
        {"p": plan_id},
    ).first()
    if row is None:
        raise NotFound(f"There is no plan {plan_id}.", what="plan")
    area_id, status, metrics = row
    if status != "draft":
        raise PlanConflictError(
            f"plan {plan_id} is {status}; only a draft can be published"
        )
    _refuse_unfinished_units(plan_id, metrics)
    if not allow_unstaffed and (codes := unstaffed_grids(session, plan_id)):
        raise UnstaffedPlanError(plan_id, codes)
    replaced = _replace_overlapping(session, plan_id, area_id, at)
    if replaced:
        session.execute(
            text(
                "UPDATE plans SET metrics = metrics || CAST(:m AS jsonb) WHERE id = :p"
            ),
            {"p": plan_id, "m": json.dumps({"replaced": replaced}, default=str)},
        )
    try:
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
    except IntegrityError:  # the one-published-plan index: someone published first
        raise PlanConflictError(
            f"Another plan of the same area was published at the same time as plan "
            f"{plan_id}; reload the plans and try again."
        ) from None
    # lookups start using this plan's grids and assignments now: give the planner
    # fresh statistics instead of waiting for autovacuum (tables in a fixed order)
    session.execute(text("ANALYZE plans, grids, assignments"))


def unstaffed_grids(session: Session, plan_id: int) -> list[str]:
    """Codes of the grids of plan ``plan_id`` with no grid worker, in code order."""
    return list(
        session.execute(
            text(
                "SELECT code FROM grids WHERE plan_id = :p AND worker_id IS NULL "
                "ORDER BY code"
            ),
            {"p": plan_id},
        ).scalars()
    )


_SUBTREE = (
    "WITH RECURSIVE sub AS (SELECT id FROM admin_areas WHERE id = :a "
    "UNION ALL SELECT c.id FROM admin_areas c JOIN sub ON c.parent_id = sub.id) "
)
_ANCESTORS = (
    "WITH RECURSIVE up AS (SELECT parent_id AS id FROM admin_areas WHERE id = :a "
    "UNION ALL SELECT p.parent_id FROM admin_areas p JOIN up ON p.id = up.id "
    "WHERE p.parent_id IS NOT NULL) "
)


def copy_plan(
    session: Session,
    plan_id: int,
    *,
    created_by: str | None,
    without_area_id: int | None = None,
    only_area_id: int | None = None,
    note: Mapping[str, Any] | None = None,
) -> int:
    """A new draft copied from plan ``plan_id`` in SQL (grids, assignments, workers,
    members), optionally leaving out the grids inside the area ``without_area_id``
    (and their households), or keeping only those inside ``only_area_id`` (a
    draft of that area, whose publication replaces its part of the plan); its
    id. The caller commits."""
    row = session.execute(
        text("SELECT area_id, params, metrics, name FROM plans WHERE id = :p"),
        {"p": plan_id},
    ).first()
    if row is None:
        raise NotFound(f"There is no plan {plan_id}.", what="plan")
    metrics = dict(row[2] or {})
    metrics.pop("fanout", None)  # the copy is complete whatever its source was
    metrics.update(note or {})
    new_id = insert_draft(
        session,
        int(row[0]) if only_area_id is None else only_area_id,
        name=row[3],
        parent_id=plan_id,
        params=row[1] or {},
        metrics=metrics,
        created_by=created_by,
    )
    skip = (
        "AND area_id NOT IN (SELECT id FROM sub)"
        if without_area_id is not None
        else "AND area_id IN (SELECT id FROM sub)"
        if only_area_id is not None
        else ""
    )
    sub = without_area_id if without_area_id is not None else only_area_id
    prefix = _SUBTREE if sub is not None else ""
    args = {"n": new_id, "p": plan_id, "a": sub}
    session.execute(
        text(
            prefix
            + "INSERT INTO grids (plan_id, code, name, kind, area_id, worker_id, "
            "geom, attrs) SELECT :n, code, name, kind, area_id, worker_id, geom, attrs "
            f"FROM grids WHERE plan_id = :p {skip}"
        ),
        args,
    )
    session.execute(
        text(
            "INSERT INTO assignments (plan_id, household_id, grid_id, member_id, "
            "on_boundary) SELECT :n, x.household_id, g2.id, x.member_id, x.on_boundary "
            "FROM assignments x JOIN grids g ON g.id = x.grid_id "
            "JOIN grids g2 ON g2.plan_id = :n AND g2.code = g.code WHERE x.plan_id = :p"
        ),
        {"n": new_id, "p": plan_id},
    )
    return new_id


def _replace_overlapping(
    session: Session, plan_id: int, area_id: int, at: dt.datetime
) -> list[dict[str, Any]]:
    """One published grid per household: before ``plan_id`` is published, the
    published plans of areas inside its area are archived (it covers them), and
    each published plan of an enclosing area is replaced by a new version without
    the grids inside this area (copied in SQL, published in the same transaction,
    the old version archived). Returns what was replaced."""
    done: list[dict[str, Any]] = []
    uncovered = session.execute(
        text(
            _SUBTREE + "SELECT p.id, count(*) FROM plans p JOIN assignments x "
            "ON x.plan_id = p.id WHERE p.status = 'published' AND p.id <> :p "
            "AND p.area_id IN (SELECT id FROM sub) AND p.area_id <> :a AND NOT EXISTS (SELECT 1 FROM "
            "assignments y WHERE y.plan_id = :p AND y.household_id = x.household_id) "
            "GROUP BY p.id ORDER BY p.id"
        ),
        {"a": area_id, "p": plan_id},
    ).all()
    if uncovered:
        other, n = uncovered[0]
        raise PlanConflictError(
            f"plan {plan_id} leaves {n} household(s) of the published plan {other} "
            "(an area inside this one) without a grid; publishing it would take their "
            "grid away. Draft from the published plans instead, or generate this area "
            "with its households."
        )
    inner = session.execute(
        text(
            _SUBTREE + "UPDATE plans SET status = 'archived', valid_to = :at, "
            "lock_version = lock_version + 1 WHERE status = 'published' "
            "AND id <> :p AND area_id IN (SELECT id FROM sub) AND area_id <> :a RETURNING id"
        ),
        {"a": area_id, "p": plan_id, "at": at},
    ).all()
    done += [
        {"plan": int(r[0]), "how": "archived (inside this plan's area)"} for r in inner
    ]
    outer = session.execute(
        text(
            _ANCESTORS + "SELECT p.id, a.code, gridmap_area_ok(p.area_id) FROM plans p "
            "JOIN admin_areas a ON a.id = p.area_id WHERE p.status = 'published' "
            "AND p.area_id IN (SELECT id FROM up) ORDER BY p.id"
        ),
        {"a": area_id},
    ).all()
    for old, code, ours in outer:
        if not ours:  # a key limited to this area: the wider plan is not its own
            raise OutOfScope(
                f"publishing plan {plan_id} replaces its part of the published plan "
                f"{old} of {code}, which lies outside the area of this key: a planner "
                f"key of {code} publishes it"
            )
        inside = session.execute(
            text(
                _SUBTREE + "SELECT count(*) FROM grids WHERE plan_id = :o "
                "AND area_id IN (SELECT id FROM sub)"
            ),
            {"a": area_id, "o": old},
        ).scalar_one()
        if not inside:
            continue
        new = copy_plan(
            session,
            int(old),
            created_by=f"publish of plan {plan_id}",
            without_area_id=area_id,
            note={"part_replaced_by": plan_id},
        )
        session.execute(
            text(
                "UPDATE plans SET status = 'archived', valid_to = :at, "
                "lock_version = lock_version + 1 WHERE id = :o"
            ),
            {"o": old, "at": at},
        )
        session.execute(
            text(
                "UPDATE plans SET status = 'published', valid_from = :at WHERE id = :n"
            ),
            {"n": new, "at": at},
        )
        done.append(
            {
                "plan": int(old),
                "how": f"replaced by plan {new} without this area's grids",
            }
        )
    return done


def _refuse_unfinished_units(plan_id: int, metrics: Mapping[str, Any] | None) -> None:
    """A plan drawn unit by unit (``metrics["fanout"]``, :mod:`geo.store.fanout`)
    publishes only when every unit finished or was excluded explicitly."""
    fan = (metrics or {}).get("fanout")
    if not fan:
        return
    excluded = set(fan.get("excluded", []))
    left = {
        code: str(u.get("error") or u.get("status"))
        for code, u in sorted(fan.get("units", {}).items())
        if u.get("status") != "done" and code not in excluded
    }
    if left:
        listed = "; ".join(f"{c}: {m}" for c, m in list(left.items())[:20])
        raise IncompletePlanError(
            f"plan {plan_id} cannot be published: {len(left)} unit(s) did not finish "
            f"({listed}); re-run them (retry) or exclude them explicitly",
            units=left,
        )


def plan_grids(session: Session, plan_id: int) -> gpd.GeoDataFrame:
    """The grids of a plan with their household counts and the proven cause of
    each one out of band (``cause``, else None), as a GeoDataFrame."""
    sql = (
        "SELECT g.code AS grid_code, g.name, g.kind, a.code AS area_code, "
        "count(x.household_id) AS households, g.attrs->>'cause' AS cause, g.geom "
        "FROM grids g JOIN admin_areas a ON a.id = g.area_id "
        "LEFT JOIN assignments x ON x.grid_id = g.id "
        "WHERE g.plan_id = :p GROUP BY g.id, a.code ORDER BY g.code"
    )
    return gpd.read_postgis(
        text(sql), session.connection(), geom_col="geom", params={"p": plan_id}
    ).rename_geometry("geometry")


def area_frames(
    session: Session, area_code: str
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """The area ``area_code`` with everything below it, and the households in them.

    Returns ``(areas, households)`` as generation takes them: areas with
    ``code, name, level, parent_code``; households with ``household_id``
    (the external id), ``address, people, building_id, unit, weight, area_code``.
    """
    exists = session.execute(
        text("SELECT 1 FROM admin_areas WHERE code = :c"), {"c": area_code}
    ).first()
    if exists is None:
        raise NotFound(f"There is no admin area {area_code!r}.", what="area")
    scope = (
        "WITH RECURSIVE scope AS (SELECT id FROM admin_areas WHERE code = :c "
        "UNION ALL SELECT a.id FROM admin_areas a JOIN scope s ON a.parent_id = s.id) "
    )
    areas = gpd.read_postgis(
        text(
            scope + "SELECT a.code, a.name, a.level, p.code AS parent_code, a.geom "
            "FROM admin_areas a LEFT JOIN admin_areas p ON p.id = a.parent_id "
            "WHERE a.id IN (SELECT id FROM scope) ORDER BY a.code"
        ),
        session.connection(),
        geom_col="geom",
        params={"c": area_code},
    )
    households = gpd.read_postgis(
        text(
            scope + "SELECT h.external_id AS household_id, h.address, h.people, "
            "h.building_id, h.unit, h.weight, a.code AS area_code, h.geom "
            "FROM households h JOIN admin_areas a ON a.id = h.area_id "
            "WHERE h.area_id IN (SELECT id FROM scope) ORDER BY h.external_id"
        ),
        session.connection(),
        geom_col="geom",
        params={"c": area_code},
    )
    return areas.rename_geometry("geometry"), households.rename_geometry("geometry")


def save_assignments(session: Session, plan_id: int, assignments: Any) -> int:
    """Store ``household_id → grid_code`` rows (external ids) for a plan; returns the count.

    Raises :class:`~geo.io.InputError` naming unknown households or grid codes;
    nothing is stored then (the caller rolls back).
    """
    conn: Any = session.connection().connection.driver_connection
    session.execute(
        text(
            "CREATE TEMP TABLE _stage_assign (external_id text, code text, member text) "
            "ON COMMIT DROP"
        )
    )
    members = (
        assignments["member_id"]
        if "member_id" in assignments.columns
        else pd.Series([None] * len(assignments))
    )
    with conn.cursor() as cur, cur.copy("COPY _stage_assign FROM STDIN") as cp:
        for hid, code, member in zip(
            assignments["household_id"], assignments["grid_code"], members, strict=True
        ):
            cp.write_row(
                (str(hid), str(code), None if pd.isna(member) else str(member))
            )
    bad = session.execute(
        text(
            "SELECT s.external_id, s.code, h.id IS NULL, g.id IS NULL FROM _stage_assign s "
            "LEFT JOIN households h ON h.external_id = s.external_id "
            "LEFT JOIN grids g ON g.plan_id = :p AND g.code = s.code "
            "WHERE h.id IS NULL OR g.id IS NULL LIMIT 20"
        ),
        {"p": plan_id},
    ).all()
    if bad:
        raise InputError(
            [
                Problem(
                    "assignments",
                    f"household {hid!r}: "
                    + ("unknown household" if no_h else f"unknown grid {code!r}"),
                )
                for hid, code, no_h, _ in bad
            ]
        )
    n = session.execute(  # type: ignore[attr-defined]
        text(
            "INSERT INTO assignments (plan_id, household_id, grid_id, member_id) "
            "SELECT :p, h.id, g.id, m.id FROM _stage_assign s "
            "JOIN households h ON h.external_id = s.external_id "
            "JOIN grids g ON g.plan_id = :p AND g.code = s.code "
            "LEFT JOIN people m ON m.external_id = s.member"
        ),
        {"p": plan_id},
    ).rowcount
    session.execute(text("DROP TABLE _stage_assign"))
    return int(n)


def save_generated_plan(
    session: Session,
    area_code: str,
    plan: Any,
    *,
    name: str | None = None,
    created_by: str | None = None,
    parent_id: int | None = None,
) -> int:
    """Store a :class:`geo.gridding.generate.GridPlan` as a new draft plan with its assignments."""
    report = dict(plan.report)
    plan_id = save_plan(
        session,
        area_code,
        plan.grids,
        name=name,
        params=report.get("params", {}),
        metrics={
            **report.get("metrics", {}),
            "exceptions": report.get("exceptions", []),
            "seconds": report.get("seconds"),
            **({"rebalance": report["rebalance"]} if "rebalance" in report else {}),
        },
        created_by=created_by,
        parent_id=parent_id,
    )
    save_assignments(session, plan_id, plan.assignments)
    return plan_id


def plan_row(session: Session, plan_id: int) -> dict[str, Any]:
    """A stored plan's ``id, area_code, status, version, lock_version, metrics``.

    Raises :class:`~geo.errors.NotFound` when there is no plan ``plan_id``.
    """
    row = session.execute(
        text(
            "SELECT p.id, a.code, p.status, p.version, p.lock_version, p.metrics "
            "FROM plans p JOIN admin_areas a ON a.id = p.area_id WHERE p.id = :p"
        ),
        {"p": plan_id},
    ).first()
    if row is None:
        raise NotFound(f"There is no plan {plan_id}.", what="plan")
    info = dict(
        zip(
            ("id", "area_code", "status", "version", "lock_version", "metrics"),
            row,
            strict=True,
        )
    )
    return info


def plan_frames(
    session: Session, plan_id: int
) -> tuple[gpd.GeoDataFrame, Any, dict[str, Any]]:
    """A stored plan as ``(grids, assignments, info)`` for rebalancing and diffs.

    ``grids`` has ``grid_code, area_code, households`` and polygons;
    ``assignments`` is ``household_id`` (external id) → ``grid_code``; ``info``
    holds the plan's ``id, area_code, status, version, lock_version, metrics``.
    """
    info = plan_row(session, plan_id)
    grids = plan_grids(session, plan_id)
    assignments = pd.read_sql_query(
        text(
            "SELECT h.external_id AS household_id, g.code AS grid_code FROM assignments x "
            "JOIN households h ON h.id = x.household_id JOIN grids g ON g.id = x.grid_id "
            "WHERE x.plan_id = :p ORDER BY h.external_id"
        ),
        session.connection(),
        params={"p": plan_id},
    )
    return grids, assignments, info


def update_draft(
    session: Session,
    plan_id: int,
    grids: gpd.GeoDataFrame,
    assignments: Any,
    *,
    expected_lock_version: int,
    metrics: Mapping[str, Any] | None = None,
) -> int:
    """Save an edited draft, refusing it if someone else saved first (optimistic lock).

    ``expected_lock_version`` is the plan's ``lock_version`` when the editor
    loaded it. Returns the new version. Raises :class:`PlanConflictError` when
    the plan is no longer a draft or was saved by someone else in between;
    nothing is written then (the caller rolls back) and the other save is kept.
    """
    row = session.execute(
        text(
            "UPDATE plans SET lock_version = lock_version + 1, "
            "metrics = coalesce(CAST(:m AS jsonb), metrics) "
            "WHERE id = :p AND status = 'draft' AND lock_version = :v RETURNING lock_version"
        ),
        {
            "p": plan_id,
            "v": expected_lock_version,
            "m": json.dumps(dict(metrics), ensure_ascii=False, default=str)
            if metrics
            else None,
        },
    ).first()
    if row is None:
        now = session.execute(
            text("SELECT status, lock_version FROM plans WHERE id = :p"), {"p": plan_id}
        ).first()
        if now is None:
            raise NotFound(f"There is no plan {plan_id}.", what="plan")
        if now[0] != "draft":
            raise PlanConflictError(
                f"plan {plan_id} is {now[0]}; edits are saved as a new draft instead"
            )
        raise PlanConflictError(
            f"plan {plan_id} was saved by someone else (version {now[1]}, you loaded "
            f"version {expected_lock_version}); reload it and apply your edit again"
        )
    bad = [
        str(c)
        for c, g in zip(grids["grid_code"], grids.geometry.values, strict=True)
        if g is None or g.is_empty or not g.is_valid
    ]
    if bad:
        raise InputError(
            [
                Problem(f"plan {plan_id}", f"grid {c}: invalid or empty polygon")
                for c in bad
            ]
        )
    session.execute(text("DELETE FROM grids WHERE plan_id = :p"), {"p": plan_id})
    codes, people = _id_maps(session)
    _insert_grids(session, plan_id, grids, codes, people)
    save_assignments(session, plan_id, assignments)
    return int(row[0])
