"""Drafts edited in place: copying a plan, reading and writing only the grids an edit touches, the history."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import EditError, NotFound, StaleDraft
from geo.store.plans import _SUBTREE, copy_plan

__all__ = [
    "DraftInfo",
    "Touched",
    "area_ids",
    "copy_to_draft",
    "draft_codes",
    "grid_neighbours",
    "grids_inside",
    "has_grid",
    "history",
    "is_inside",
    "lock_draft",
    "not_a_draft",
    "parent_staff",
    "read_touched",
    "record",
    "staff_pool",
    "undo_target",
    "write_touched",
]


@dataclass(frozen=True)
class DraftInfo:
    """A plan row as an edit sees it (locked for the caller's transaction)."""

    plan_id: int
    area_code: str
    status: str
    version: int
    params: dict[str, Any]
    metrics: dict[str, Any]


@dataclass(frozen=True)
class Touched:
    """Grids of one plan and all their households, as an edit reads and writes them.

    ``grids``: ``grid_code, area_code, name, kind, worker_id`` (person external
    id), ``attrs`` (dict: ``locked``, ``exception`` …), polygons (EPSG:4326).
    ``households``: ``household_id`` (external), ``building_id, unit,
    grid_code, member_id``, points.
    """

    grids: gpd.GeoDataFrame
    households: gpd.GeoDataFrame

    def snapshot(self) -> dict[str, Any]:
        """JSON for the history: enough to write this state back exactly."""
        g = self.grids
        return {
            "grids": [
                {
                    "code": str(r.grid_code),
                    "area_code": str(r.area_code),
                    "name": None if pd.isna(r.name) else r.name,
                    "kind": r.kind,
                    "worker": None if pd.isna(r.worker_id) else str(r.worker_id),
                    "attrs": r.attrs,
                    "wkb": shapely.to_wkb(r.geometry, hex=True),
                }
                for r in g.itertuples()
            ],
            "households": {
                str(h): [str(c), None if pd.isna(m) else str(m)]
                for h, c, m in zip(
                    self.households["household_id"],
                    self.households["grid_code"],
                    self.households["member_id"],
                    strict=True,
                )
            },
        }

    @staticmethod
    def from_snapshot(snap: dict[str, Any]) -> Touched:
        """The state :meth:`snapshot` wrote (households without points)."""
        rows = snap["grids"]
        grids = gpd.GeoDataFrame(
            {
                "grid_code": [r["code"] for r in rows],
                "area_code": [r["area_code"] for r in rows],
                "name": [r["name"] for r in rows],
                "kind": [r["kind"] for r in rows],
                "worker_id": [r["worker"] for r in rows],
                "attrs": [r["attrs"] for r in rows],
            },
            geometry=[shapely.from_wkb(r["wkb"]) for r in rows],
            crs=4326,
        )
        hh = snap["households"]
        households = gpd.GeoDataFrame(
            {
                "household_id": list(hh),
                "grid_code": [v[0] for v in hh.values()],
                "member_id": [v[1] for v in hh.values()],
            },
            geometry=[None] * len(hh),
            crs=4326,
        )
        return Touched(grids, households)


def lock_draft(
    session: Session, plan_id: int, *, expected_version: int | None
) -> DraftInfo:
    """Lock the plan row for this transaction and check it may be edited.

    Raises :class:`NotFound` (no such plan), :class:`EditError` (not a draft:
    published and archived plans are never edited in place) or
    :class:`StaleDraft` (``expected_version`` is not the current version).
    """
    row = session.execute(
        text(
            "SELECT p.id, a.code, p.status, p.lock_version, p.params, p.metrics "
            "FROM plans p JOIN admin_areas a ON a.id = p.area_id WHERE p.id = :p "
            "FOR UPDATE OF p"
        ),
        {"p": plan_id},
    ).first()
    if row is None:
        raise NotFound(f"There is no plan {plan_id}.", what="plan")
    info = DraftInfo(
        int(row[0]), str(row[1]), str(row[2]), int(row[3]), row[4] or {}, row[5] or {}
    )
    if info.status != "draft":
        raise not_a_draft(plan_id, info.status)
    if expected_version is not None and expected_version != info.version:
        raise StaleDraft(plan_id, expected_version, info.version)
    return info


def not_a_draft(plan_id: int, status: str) -> EditError:
    """The refusal to edit plan ``plan_id`` in place: it is ``status``, not a draft."""
    return EditError(
        f"plan {plan_id} is {status}: only drafts are edited; start one with "
        f"POST /plans/{plan_id}/draft (Workspace.draft)"
    )


def copy_to_draft(
    session: Session,
    plan_id: int,
    *,
    created_by: str | None,
    area_id: int | None = None,
) -> int:
    """A new draft copied from plan ``plan_id``: grids, assignments, workers, members
    (with ``area_id``, only those inside that area: a draft of the area).

    The copy is made in SQL (no rows travel to Python); its parent is
    ``plan_id``. Returns the new draft's id. The caller commits.
    """
    return copy_plan(session, plan_id, created_by=created_by, only_area_id=area_id)


def parent_staff(session: Session, plan_id: int, households: list[str]) -> pd.DataFrame:
    """Grid and party member of each household in the plan this draft was copied from:
    ``household_id`` (external) → ``grid_code, member_id`` (empty without a parent)."""
    return pd.read_sql_query(
        text(
            "SELECT h.external_id AS household_id, g.code AS grid_code, "
            "m.external_id AS member_id FROM plans d "
            "JOIN assignments x ON x.plan_id = d.parent_id "
            "JOIN households h ON h.id = x.household_id JOIN grids g ON g.id = x.grid_id "
            "LEFT JOIN people m ON m.id = x.member_id "
            "WHERE d.id = :p AND h.external_id = ANY(:h)"
        ),
        session.connection(),
        params={"p": plan_id, "h": list(households)},
    ).set_index("household_id")


def staff_pool(
    session: Session, plan_id: int, area_codes: list[str], touched: list[str]
) -> tuple[pd.DataFrame, set[str]]:
    """The grid workers and party members of ``area_codes`` (``person_id, role,
    area_code``) and those of them on a grid of the plan other than ``touched``."""
    people = pd.read_sql_query(
        text(
            "SELECT p.external_id AS person_id, p.role, a.code AS area_code "
            "FROM people p JOIN admin_areas a ON a.id = p.area_id "
            "WHERE a.code = ANY(:a) AND p.role IN ('grid_worker', 'party_member') "
            "ORDER BY p.external_id"
        ),
        session.connection(),
        params={"a": list(area_codes)},
    )
    busy = {
        str(w)
        for (w,) in session.execute(
            text(
                "SELECT p.external_id FROM grids g JOIN people p ON p.id = g.worker_id "
                "WHERE g.plan_id = :p AND NOT g.code = ANY(:t) AND p.external_id = ANY(:c)"
            ),
            {"p": plan_id, "t": list(touched), "c": people["person_id"].tolist()},
        )
    }
    return people, busy


def has_grid(session: Session, plan_id: int, code: str) -> bool:
    """Whether the plan has a grid ``code``."""
    return (
        session.execute(
            text("SELECT 1 FROM grids WHERE plan_id = :p AND code = :c"),
            {"p": plan_id, "c": code},
        ).first()
        is not None
    )


def draft_codes(session: Session, plan_id: int) -> dict[str, dict[str, Any]]:
    """Every grid code of the plan with its worker (external id) and attrs."""
    rows = session.execute(
        text(
            "SELECT g.code, p.external_id, g.attrs FROM grids g "
            "LEFT JOIN people p ON p.id = g.worker_id WHERE g.plan_id = :p"
        ),
        {"p": plan_id},
    ).all()
    return {str(c): {"worker": w, "attrs": a or {}} for c, w, a in rows}


def grids_of(
    session: Session,
    plan_id: int,
    *,
    households: list[str] = (),  # type: ignore[assignment]
    buildings: list[str] = (),  # type: ignore[assignment]
) -> dict[str, str]:
    """The grid code of each named household (external id) or building in the plan."""
    rows = session.execute(
        text(
            "SELECT h.external_id, h.building_id, g.code FROM households h "
            "JOIN assignments x ON x.household_id = h.id AND x.plan_id = :p "
            "JOIN grids g ON g.id = x.grid_id "
            "WHERE h.external_id = ANY(:h) OR h.building_id = ANY(:b)"
        ),
        {"p": plan_id, "h": list(households), "b": list(buildings)},
    ).all()
    out: dict[str, str] = {}
    for hid, bid, code in rows:
        if hid in households:
            out[f"h:{hid}"] = code
        if bid is not None and bid in buildings:
            out.setdefault(f"b:{bid}", code)
            if out[f"b:{bid}"] != code:
                out[f"b:{bid}"] = "*"
    return out


def _frame(session: Session, sql: str, params: dict[str, Any]) -> gpd.GeoDataFrame:
    """Rows of ``sql`` (its last column ``geom`` as WKB) as a GeoDataFrame in
    EPSG:4326: one cursor and one vectorised WKB parse (``gpd.read_postgis``
    costs ~5x more on the few hundred rows an edit reads)."""
    res = session.execute(text(sql), params)
    cols = list(res.keys())
    rows = res.all()
    df = pd.DataFrame.from_records(rows, columns=cols)
    geom = shapely.from_wkb(df.pop("geom").to_numpy()) if len(df) else []
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geom, crs=4326).values)


def read_touched(session: Session, plan_id: int, codes: list[str]) -> Touched:
    """The grids ``codes`` of the plan and every household assigned to them."""
    params = {"p": plan_id, "c": list(codes)}
    grids = _frame(
        session,
        "SELECT g.code AS grid_code, a.code AS area_code, g.name, g.kind, "
        "p.external_id AS worker_id, g.attrs, ST_AsBinary(g.geom) AS geom "
        "FROM grids g JOIN admin_areas a ON a.id = g.area_id "
        "LEFT JOIN people p ON p.id = g.worker_id "
        "WHERE g.plan_id = :p AND g.code = ANY(:c) ORDER BY g.code",
        params,
    )
    households = _frame(
        session,
        "SELECT h.external_id AS household_id, h.building_id, h.unit, "
        "g.code AS grid_code, m.external_id AS member_id, "
        "ST_AsBinary(h.geom) AS geom "
        "FROM grids g JOIN assignments x ON x.grid_id = g.id "
        "JOIN households h ON h.id = x.household_id "
        "LEFT JOIN people m ON m.id = x.member_id "
        "WHERE g.plan_id = :p AND g.code = ANY(:c) ORDER BY h.external_id",
        params,
    )
    return Touched(grids, households)


def write_touched(
    session: Session,
    plan_id: int,
    before_codes: list[str],
    after: Touched,
    *,
    before: Touched | None = None,
) -> int:
    """Write ``after`` over the grids ``before_codes``; returns the new version.

    Grids of ``after`` are inserted or updated by code, grids of
    ``before_codes`` not in ``after`` are deleted, and every household of
    ``after`` gets its grid and member (with ``before``, the state read: only
    the households whose grid or member changed). Only these rows are written,
    so an edit costs what it touches. The plan's ``lock_version`` goes up by one.
    """
    g = after.grids
    multi = [
        shapely.orient_polygons(
            shapely.MultiPolygon([x]) if x.geom_type == "Polygon" else x
        )
        for x in g.geometry.values
    ]
    bad = [str(c) for c, x in zip(g["grid_code"], multi, strict=True) if not x.is_valid]
    if bad:
        raise EditError(
            f"the edit would leave invalid polygons in grid(s) {', '.join(bad)}"
        )
    if len(g):
        session.execute(
            text(
                "INSERT INTO grids (plan_id, code, name, kind, area_id, worker_id, geom, attrs) "
                "SELECT :p, v.code, v.name, coalesce(v.kind, 'comprehensive'), a.id, w.id, "
                "ST_SetSRID(ST_GeomFromWKB(decode(v.wkb, 'hex')), 4326), "
                "CAST(v.attrs AS jsonb) FROM unnest(CAST(:codes AS text[]), "
                "CAST(:names AS text[]), CAST(:kinds AS text[]), CAST(:areas AS text[]), "
                "CAST(:workers AS text[]), CAST(:wkbs AS text[]), CAST(:attrs AS text[])) "
                "AS v(code, name, kind, area, worker, wkb, attrs) "
                "JOIN admin_areas a ON a.code = v.area "
                "LEFT JOIN people w ON w.external_id = v.worker "
                "ON CONFLICT (plan_id, code) DO UPDATE SET name = excluded.name, "
                "kind = excluded.kind, area_id = excluded.area_id, "
                "worker_id = excluded.worker_id, geom = excluded.geom, attrs = excluded.attrs"
            ),
            {
                "p": plan_id,
                "codes": [str(c) for c in g["grid_code"]],
                "names": [None if pd.isna(n) else str(n) for n in g["name"]],
                "kinds": [None if pd.isna(k) else str(k) for k in g["kind"]],
                "areas": [str(a) for a in g["area_code"]],
                "workers": [None if pd.isna(w) else str(w) for w in g["worker_id"]],
                "wkbs": [shapely.to_wkb(x, hex=True) for x in multi],
                "attrs": [
                    json.dumps(a or {}, ensure_ascii=False, default=str)
                    for a in g["attrs"]
                ],
            },
        )
    h = after.households
    if before is not None and len(h):
        was = before.households.set_index(before.households["household_id"].astype(str))
        ids = h["household_id"].astype(str)
        old_grid = was["grid_code"].astype(str).reindex(ids).to_numpy()
        old_member = was["member_id"].reindex(ids).astype(object).to_numpy()
        new_member = h["member_id"].astype(object).to_numpy()
        same_member = np.array(
            [
                (pd.isna(a) and pd.isna(b)) or a == b
                for a, b in zip(old_member, new_member, strict=True)
            ],
            dtype=bool,
        )
        h = h[~((old_grid == h["grid_code"].astype(str).to_numpy()) & same_member)]
    if len(h):
        session.execute(
            text(
                "UPDATE assignments x SET grid_id = g.id, member_id = m.id "
                "FROM unnest(CAST(:ids AS text[]), CAST(:codes AS text[]), "
                "CAST(:members AS text[])) AS v(hid, code, member) "
                "JOIN households hh ON hh.external_id = v.hid "
                "JOIN grids g ON g.plan_id = :p AND g.code = v.code "
                "LEFT JOIN people m ON m.external_id = v.member "
                "WHERE x.plan_id = :p AND x.household_id = hh.id"
            ),
            {
                "p": plan_id,
                "ids": [str(i) for i in h["household_id"]],
                "codes": [str(c) for c in h["grid_code"]],
                "members": [None if pd.isna(m) else str(m) for m in h["member_id"]],
            },
        )
    gone = sorted(set(before_codes) - {str(c) for c in g["grid_code"]})
    if gone:
        left = session.execute(
            text(
                "SELECT g.code, count(*) FROM grids g JOIN assignments x ON x.grid_id = g.id "
                "WHERE g.plan_id = :p AND g.code = ANY(:c) GROUP BY g.code"
            ),
            {"p": plan_id, "c": gone},
        ).all()
        if left:  # a retired grid still holding households would lose them
            raise EditError(
                f"grid {left[0][0]} would be removed with {left[0][1]} households in it"
            )
        session.execute(
            text("DELETE FROM grids WHERE plan_id = :p AND code = ANY(:c)"),
            {"p": plan_id, "c": gone},
        )
    return int(
        session.execute(
            text(
                "UPDATE plans SET lock_version = lock_version + 1 WHERE id = :p "
                "RETURNING lock_version"
            ),
            {"p": plan_id},
        ).scalar_one()
    )


def record(
    session: Session,
    plan_id: int,
    *,
    kind: str,
    op: dict[str, Any],
    actor: str | None,
    version: int,
    summary: dict[str, Any],
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    state: str = "log",
    target_id: int | None = None,
) -> int:
    """Append one step to the plan's history; a new edit drops the redo tail."""
    if kind == "edit":
        session.execute(
            text(
                "UPDATE plan_edits SET state = 'dropped' WHERE plan_id = :p "
                "AND state = 'undone'"
            ),
            {"p": plan_id},
        )
    return int(
        session.execute(
            text(
                "INSERT INTO plan_edits (plan_id, seq, kind, op, state, target_id, actor, "
                "version, summary, before, after) VALUES (:p, (SELECT coalesce(max(seq), 0) "
                "+ 1 FROM plan_edits WHERE plan_id = :p), :k, CAST(:op AS jsonb), :s, :t, "
                ":a, :v, CAST(:sum AS jsonb), CAST(:b AS jsonb), CAST(:af AS jsonb)) "
                "RETURNING id"
            ),
            {
                "p": plan_id,
                "k": kind,
                "op": json.dumps(op, ensure_ascii=False, default=str),
                "s": state,
                "t": target_id,
                "a": actor,
                "v": version,
                "sum": json.dumps(summary, ensure_ascii=False, default=str),
                "b": None if before is None else json.dumps(before, ensure_ascii=False),
                "af": None if after is None else json.dumps(after, ensure_ascii=False),
            },
        ).scalar_one()
    )


def record_publish(session: Session, plan_id: int, *, actor: str | None) -> int:
    """The publish of ``plan_id`` as a step of its history: who, when, and the
    plan's grids and households then."""
    grids, households, version = session.execute(
        text(
            "SELECT (SELECT count(*) FROM grids WHERE plan_id = :p), "
            "(SELECT count(*) FROM assignments WHERE plan_id = :p), "
            "(SELECT lock_version FROM plans WHERE id = :p)"
        ),
        {"p": plan_id},
    ).one()
    return record(
        session,
        plan_id,
        kind="publish",
        op={"op": "publish"},
        actor=actor,
        version=int(version),
        summary={
            "text": f"published: {grids} grids, {households} households",
            "grids": int(grids),
            "households": int(households),
        },
    )


def undo_target(session: Session, plan_id: int, *, redo: bool) -> dict[str, Any] | None:
    """The edit undo would revert (the last done) or redo would re-apply (the
    first undone after it); None when there is none."""
    sql = (
        "SELECT id, before, after, op FROM plan_edits WHERE plan_id = :p AND kind = 'edit' "
        + (
            "AND state = 'undone' ORDER BY seq ASC LIMIT 1"
            if redo
            else "AND state = 'done' ORDER BY seq DESC LIMIT 1"
        )
    )
    row = session.execute(text(sql), {"p": plan_id}).first()
    if row is None:
        return None
    return {"id": int(row[0]), "before": row[1], "after": row[2], "op": row[3]}


def mark(session: Session, edit_id: int, state: str) -> None:
    """Set an edit's place on the undo stack (``done`` or ``undone``)."""
    session.execute(
        text("UPDATE plan_edits SET state = :s WHERE id = :i"),
        {"s": state, "i": edit_id},
    )


def history(session: Session, plan_id: int) -> list[dict[str, Any]]:
    """The plan's history, oldest first: seq, kind, op, state, actor, at, version, summary."""
    exists = session.execute(
        text("SELECT 1 FROM plans WHERE id = :p"), {"p": plan_id}
    ).first()
    if exists is None:
        raise NotFound(f"There is no plan {plan_id}.", what="plan")
    rows = session.execute(
        text(
            "SELECT seq, kind, op, state, actor, at, version, summary, target_id, id "
            "FROM plan_edits WHERE plan_id = :p ORDER BY seq"
        ),
        {"p": plan_id},
    ).all()
    return [
        dict(
            zip(
                (
                    "seq",
                    "kind",
                    "op",
                    "state",
                    "actor",
                    "at",
                    "version",
                    "summary",
                    "target_id",
                    "id",
                ),
                r,
                strict=True,
            )
        )
        for r in rows
    ]


def grid_neighbours(session: Session, plan_id: int, code: str) -> list[str]:
    """Codes of the plan's grids sharing a boundary (not just a point) with ``code``."""
    rows = session.execute(
        text(
            "SELECT o.code FROM grids g JOIN grids o ON o.plan_id = g.plan_id "
            "AND o.id <> g.id AND ST_Intersects(o.geom, g.geom) "
            "WHERE g.plan_id = :p AND g.code = :c "
            "AND ST_Length(ST_CollectionExtract(ST_Intersection(ST_Boundary(o.geom), "
            "ST_Boundary(g.geom)), 2)) > 0 ORDER BY o.code"
        ),
        {"p": plan_id, "c": code},
    ).all()
    if not rows:
        known = session.execute(
            text("SELECT 1 FROM grids WHERE plan_id = :p AND code = :c"),
            {"p": plan_id, "c": code},
        ).first()
        if known is None:
            raise EditError(f"plan {plan_id} has no grid {code!r}")
    return [str(r[0]) for r in rows]


def area_ids(session: Session, codes: list[str]) -> dict[str, int]:
    """The id of each of ``codes`` that is an admin area."""
    rows = session.execute(
        text("SELECT code, id FROM admin_areas WHERE code = ANY(:c)"),
        {"c": list(codes)},
    ).all()
    return {str(c): int(i) for c, i in rows}


def is_inside(session: Session, area_id: int, outer_id: int) -> bool:
    """Whether the area ``area_id`` lies below the area ``outer_id``."""
    row = session.execute(
        text(
            "WITH RECURSIVE up AS (SELECT parent_id AS id FROM admin_areas WHERE id = :a "
            "UNION ALL SELECT a.parent_id FROM admin_areas a JOIN up ON a.id = up.id "
            "WHERE a.parent_id IS NOT NULL) SELECT 1 FROM up WHERE id = :o LIMIT 1"
        ),
        {"a": area_id, "o": outer_id},
    ).first()
    return row is not None


def grids_inside(session: Session, plan_id: int, area_id: int) -> int:
    """How many grids of the plan lie in the area ``area_id`` (or below it)."""
    return int(
        session.execute(
            text(
                _SUBTREE + "SELECT count(*) FROM grids WHERE plan_id = :p "
                "AND area_id IN (SELECT id FROM sub)"
            ),
            {"a": area_id, "p": plan_id},
        ).scalar_one()
    )
