"""Writing validated areas, households and people into PostGIS (COPY + upsert)."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.address import address_keys, normalize_many
from geo.io import InputError, Prepared, Problem
from geo.vocabulary import AREA_LEVELS

__all__ = [
    "LoadReport",
    "ProgressFn",
    "area_frame",
    "load",
    "load_areas",
    "load_households",
    "load_people",
]

#: ``progress(step, done, total)``; the library never prints.
ProgressFn = Callable[[str, int, int], None]
_CHUNK = 100_000
_RANK = {level: i for i, level in enumerate(AREA_LEVELS)}


@dataclass(frozen=True)
class LoadReport:
    """What a load did: rows read, inserted, updated and left unchanged."""

    kind: str
    source: str
    rows: int
    inserted: int
    updated: int
    unchanged: int
    seconds: float
    #: Things the load changed in the input, e.g. what ``clip=True`` cut.
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        return (
            f"{self.kind} from {self.source}: {self.rows} rows — {self.inserted} new, "
            f"{self.updated} updated, {self.unchanged} unchanged ({self.seconds:.1f} s)"
        ) + "".join(f"\n  {n}" for n in self.notes)


def _noop(step: str, done: int, total: int) -> None:
    return None


def load(
    session: Session,
    prepared: Prepared,
    *,
    progress: ProgressFn | None = None,
    clip: bool = False,
) -> LoadReport:
    """Load a prepared input of any kind (see :func:`geo.io.prepare`).

    ``clip`` (areas only): cut overlaps with sibling areas out of the later
    area instead of refusing the file (see :func:`load_areas`).
    """
    if prepared.kind == "areas":
        return load_areas(session, prepared, progress=progress, clip=clip)
    if clip:
        raise ValueError("clip applies to areas only")
    fn = {"households": load_households, "people": load_people}[prepared.kind]
    return fn(session, prepared, progress=progress)


def _dbapi(session: Session) -> Any:
    return session.connection().connection.driver_connection


def _copy(
    session: Session,
    table: str,
    columns: list[str],
    frame: pd.DataFrame,
    *,
    progress: ProgressFn,
    step: str,
) -> None:
    """COPY ``frame[columns]`` into ``table`` in chunks (CSV, geometry as hex EWKB)."""
    conn = _dbapi(session)
    total = len(frame)
    cols = ", ".join(columns)
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT csv)") as cp,
    ):
        for start in range(0, total, _CHUNK):
            part = frame.iloc[start : start + _CHUNK]
            buf = io.StringIO()
            part[columns].to_csv(
                buf, header=False, index=False, quoting=csv.QUOTE_MINIMAL
            )
            cp.write(buf.getvalue())
            progress(step, min(start + _CHUNK, total), total)


def _ewkb(geoms: Any) -> np.ndarray:
    return shapely.to_wkb(np.asarray(geoms, dtype=object), hex=True, include_srid=False)


#: A load this large, and at least as large as the table, rebuilds secondary indexes.
BULK_ROWS = 100_000


@contextmanager
def _bulk_indexes(session: Session, table: str, n_rows: int) -> Iterator[None]:
    """Drop ``table``'s non-unique indexes around a bulk write and rebuild them after.

    Building a GIN/GiST index once is several times faster than maintaining it
    row by row. Only for loads of ``BULK_ROWS`` or more rows into a table holding
    fewer than half as many (a first load, or a large addition); a re-load of
    the same data keeps its indexes. Everything stays inside the caller's
    transaction, so a failure restores the indexes with the data.
    """
    existing = session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
    if n_rows < BULK_ROWS or existing * 2 > n_rows:
        yield
        return
    defs = session.execute(
        text(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = CAST(:t AS regclass) AND NOT i.indisunique"
        ),
        {"t": table},
    ).all()
    for name, _ in defs:
        session.execute(text(f'DROP INDEX "{name}"'))
    yield
    for _, ddl in defs:
        session.execute(text(ddl))


def _upsert_counts(session: Session, sql: str) -> tuple[int, int]:
    row = session.execute(
        text(
            f"WITH up AS ({sql} RETURNING (xmax = 0) AS inserted) "
            "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up"
        )
    ).one()
    return int(row[0]), int(row[1])


def _analyze(session: Session, table: str, changed: int) -> None:
    """Refresh the planner's statistics of ``table`` after a load changed rows.

    Without it, lookups on a freshly loaded county run on empty or stale
    statistics (10x slower) until autovacuum gets round to the table. ANALYZE
    runs inside the caller's transaction and sees its uncommitted rows.
    """
    if changed:
        session.execute(text(f"ANALYZE {table}"))


# -- admin areas ---------------------------------------------------------------


def area_frame(session: Session) -> gpd.GeoDataFrame:
    """All admin areas as a GeoDataFrame (``id, code, name, level, parent_code``)."""
    sql = (
        "SELECT a.id, a.code, a.name, a.level, p.code AS parent_code, a.geom "
        "FROM admin_areas a LEFT JOIN admin_areas p ON p.id = a.parent_id ORDER BY a.code"
    )
    return gpd.read_postgis(text(sql), session.connection(), geom_col="geom")


def load_areas(
    session: Session,
    prepared: Prepared,
    *,
    progress: ProgressFn | None = None,
    clip: bool = False,
) -> LoadReport:
    """Upsert admin areas by ``code``; parents resolved from the file or the database.

    Raises :class:`~geo.io.InputError` (nothing written) for an unknown parent
    code or a parent whose level does not rank above the child's, and for
    sibling areas (same parent, or no parent and the same level) that overlap
    beyond a sliver (see :mod:`geo.store.overlaps`), in the file or with loaded
    areas. With ``clip`` such overlaps are cut out of the later area instead
    (loaded areas come first, then file order) and the report's ``notes`` say
    what was cut.
    """
    t0 = time.perf_counter()
    progress = progress or _noop
    df = prepared.frame
    src = prepared.source
    existing: dict[str, str] = dict(
        session.execute(text("SELECT code, level FROM admin_areas")).all()  # type: ignore[arg-type]
    )
    levels = {**existing, **dict(zip(df["code"], df["level"], strict=True))}
    problems: list[Problem] = []
    for i, (code, level, parent) in enumerate(
        zip(df["code"], df["level"], df["parent_code"], strict=True), start=1
    ):
        if parent is None:
            continue
        if parent not in levels:
            problems.append(
                Problem(
                    src,
                    f"parent area {parent!r} is neither in the file nor loaded",
                    row=i,
                    field="parent_code",
                )
            )
        elif _RANK[levels[parent]] >= _RANK[level]:
            problems.append(
                Problem(
                    src,
                    f"area {code!r} ({level}) cannot sit under {parent!r} ({levels[parent]})",
                    row=i,
                    field="parent_code",
                )
            )
    if problems:
        raise InputError(problems)
    df, notes = _check_overlaps(session, df, src, clip)
    stage = df.assign(rn=np.arange(1, len(df) + 1), geom=_ewkb(df.geometry.values))
    session.execute(
        text(
            "CREATE TEMP TABLE _stage_areas (rn int, code text, name text, level text, "
            "parent_code text, geom geometry(MultiPolygon, 4326), attrs jsonb) ON COMMIT DROP"
        )
    )
    _copy(
        session,
        "_stage_areas",
        ["rn", "code", "name", "level", "parent_code", "geom", "attrs"],
        stage,
        progress=progress,
        step="copy areas",
    )
    upserted = session.execute(
        text(
            "INSERT INTO admin_areas AS a (code, name, level, geom, attrs) "
            "SELECT code, name, level, geom, attrs FROM _stage_areas "
            "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, "
            "level = EXCLUDED.level, geom = EXCLUDED.geom, attrs = EXCLUDED.attrs, "
            "updated_at = now() "
            "WHERE (a.name, a.level, a.attrs) IS DISTINCT FROM "
            "(EXCLUDED.name, EXCLUDED.level, EXCLUDED.attrs) "
            "OR NOT ST_Equals(a.geom, EXCLUDED.geom) "
            "RETURNING a.code, (xmax = 0) AS inserted"
        )
    ).all()
    reparented = (
        session.execute(
            text(
                "UPDATE admin_areas a SET parent_id = p.id, updated_at = now() "
                "FROM _stage_areas s LEFT JOIN admin_areas p ON p.code = s.parent_code "
                "WHERE a.code = s.code AND a.parent_id IS DISTINCT FROM p.id "
                "RETURNING a.code"
            )
        )
        .scalars()
        .all()
    )
    session.execute(text("DROP TABLE _stage_areas"))
    new = {code for code, ins in upserted if ins}
    changed = ({code for code, ins in upserted if not ins} | set(reparented)) - new
    inserted, updated = len(new), len(changed)
    _analyze(session, "admin_areas", inserted + updated)
    return LoadReport(
        "areas",
        src,
        len(df),
        inserted,
        updated,
        len(df) - inserted - updated,
        time.perf_counter() - t0,
        notes=tuple(notes),
    )


def _check_overlaps(
    session: Session, df: Any, src: str, clip: bool
) -> tuple[Any, list[str]]:
    """Refuse (or with ``clip`` cut) overlaps between sibling areas."""
    from geo.store.overlaps import clip_overlaps, sibling_overlaps

    existing = area_frame(session)
    if not clip:
        found = sibling_overlaps(df, existing)
        if found:
            raise InputError(
                [
                    Problem(src, str(o), row=o.row, field="geometry", params=("clip",))
                    for o in found
                ]
            )
        return df, []
    geoms, clips = clip_overlaps(df, existing)
    empty = [
        Problem(
            src,
            f"area {c.code} ({c.name}) lies wholly inside {', '.join(c.others)}; "
            "nothing is left of it after clipping",
            row=c.row,
            field="geometry",
        )
        for c in clips
        if geoms[c.row - 1].is_empty
    ]
    if empty:
        raise InputError(empty)
    if not clips:
        return df, []
    out = df.copy()
    out = out.set_geometry(gpd.GeoSeries(geoms, index=df.index, crs=df.crs))
    return out, [str(c) for c in clips]


# -- households ------------------------------------------------------------------


def _resolve_areas(session: Session, prepared: Prepared) -> np.ndarray:
    """Area id per household: its ``area_code`` or the deepest area containing it."""
    df = prepared.frame
    src = prepared.source
    areas = area_frame(session)
    if areas.empty:
        raise InputError(
            [
                Problem(
                    src,
                    "no admin areas are loaded; load areas first (gridmap load areas FILE)",
                )
            ]
        )
    points = np.asarray(df.geometry.values, dtype=object)
    area_ids = np.full(len(df), -1, dtype=np.int64)
    problems: list[Problem] = []
    codes = df["area_code"].to_numpy(dtype=object)
    given = pd.notna(codes)
    if given.any():
        by_code = pd.Series(np.arange(len(areas)), index=areas["code"].to_numpy())
        pos = by_code.reindex(codes[given]).to_numpy()
        rows_given = np.flatnonzero(given)
        unknown = np.isnan(pos)
        for r in rows_given[unknown][:50]:
            problems.append(
                Problem(
                    src,
                    f"unknown area_code {codes[r]!r}",
                    row=int(r) + 1,
                    field="area_code",
                )
            )
        ok_rows = rows_given[~unknown]
        ok_pos = pos[~unknown].astype(np.int64)
        area_geoms = np.asarray(areas.geometry.values, dtype=object)
        inside = shapely.intersects(area_geoms[ok_pos], points[ok_rows])
        for r, p in zip(ok_rows[~inside][:50], ok_pos[~inside][:50], strict=True):
            problems.append(
                Problem(
                    src,
                    f"the point ({points[r].x:.6f}, {points[r].y:.6f}) lies outside its "
                    f"area {codes[r]!r} ({areas['name'].iloc[p]})",
                    row=int(r) + 1,
                    field="area_code",
                )
            )
        area_ids[ok_rows[inside]] = areas["id"].to_numpy()[ok_pos[inside]]
    todo = np.flatnonzero(~given)
    if len(todo):
        pt_idx, area_idx = areas.sindex.query(points[todo], predicate="intersects")
        rank = areas["level"].map(_RANK).to_numpy()
        # deepest level wins; ties (a point on a shared edge) go to the smaller code
        order = np.lexsort((area_idx, -rank[area_idx], pt_idx))
        pt_idx, area_idx = pt_idx[order], area_idx[order]
        first = np.ones(len(pt_idx), dtype=bool)
        first[1:] = pt_idx[1:] != pt_idx[:-1]
        area_ids[todo[pt_idx[first]]] = areas["id"].to_numpy()[area_idx[first]]
        outside = todo[area_ids[todo] < 0]
        for r in outside[:50]:
            problems.append(
                Problem(
                    src,
                    f"the point ({points[r].x:.6f}, {points[r].y:.6f}) lies outside every "
                    "loaded admin area",
                    row=int(r) + 1,
                    field="geometry",
                )
            )
        if len(outside) > 50:
            problems.append(
                Problem(src, f"{len(outside) - 50} more households outside every area")
            )
    if problems:
        raise InputError(problems)
    return area_ids


def area_bounds(session: Session) -> tuple[float, float, float, float] | None:
    """lon/lat box of all loaded areas, or None when there are none."""
    row = session.execute(
        text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
            "FROM (SELECT ST_Extent(geom) AS e FROM admin_areas) s"
        )
    ).one()
    return None if row[0] is None else (row[0], row[1], row[2], row[3])


def load_households(
    session: Session, prepared: Prepared, *, progress: ProgressFn | None = None
) -> LoadReport:
    """Upsert households by ``household_id`` with COPY; addresses normalised and keyed.

    Every household must lie in a loaded admin area (its ``area_code`` when
    given, otherwise the deepest area containing it); otherwise nothing is
    written and :class:`~geo.io.InputError` names the rows.
    """
    t0 = time.perf_counter()
    progress = progress or _noop
    df = prepared.frame
    progress("resolve areas", 0, len(df))
    area_ids = _resolve_areas(session, prepared)
    progress("normalise addresses", 0, len(df))
    addresses = df["address"].tolist()
    stage = pd.DataFrame(
        {
            "external_id": df["household_id"].to_numpy(),
            "address": df["address"].to_numpy(),
            "address_norm": normalize_many(addresses),
            "address_key": address_keys(addresses),
            "people": df["people"].to_numpy(),
            "building_id": df["building_id"].to_numpy(),
            "unit": df["unit"].to_numpy(),
            "weight": df["weight"].to_numpy(),
            "area_id": area_ids,
            "geom": _ewkb(df.geometry.values),
            "attrs": df["attrs"].to_numpy(),
        }
    )
    session.execute(
        text(
            "CREATE TEMP TABLE _stage_households (external_id text, address text, "
            "address_norm text, address_key text, people int, building_id text, unit text, "
            "weight float8, area_id int, geom geometry(Point, 4326), attrs jsonb) "
            "ON COMMIT DROP"
        )
    )
    _copy(
        session,
        "_stage_households",
        list(stage.columns),
        stage,
        progress=progress,
        step="copy households",
    )
    progress("upsert households", 0, len(df))
    empty = session.execute(
        text("SELECT NOT EXISTS (SELECT 1 FROM households)")
    ).scalar()
    with _bulk_indexes(session, "households", len(df)):
        if empty:  # a first load: nothing to conflict with, skip the upsert machinery
            inserted = session.execute(  # type: ignore[attr-defined]
                text(
                    "INSERT INTO households (external_id, address, address_norm, "
                    "address_key, people, building_id, unit, weight, area_id, geom, attrs) "
                    "SELECT external_id, address, address_norm, address_key, people, "
                    "building_id, unit, weight, area_id, geom, attrs FROM _stage_households"
                )
            ).rowcount
            updated = 0
        else:
            inserted, updated = _upsert_counts(
                session,
                "INSERT INTO households AS h (external_id, address, address_norm, address_key, "
                "people, building_id, unit, weight, area_id, geom, attrs) "
                "SELECT external_id, address, address_norm, address_key, people, building_id, "
                "unit, weight, area_id, geom, attrs FROM _stage_households "
                "ON CONFLICT (external_id) DO UPDATE SET address = EXCLUDED.address, "
                "address_norm = EXCLUDED.address_norm, address_key = EXCLUDED.address_key, "
                "people = EXCLUDED.people, building_id = EXCLUDED.building_id, "
                "unit = EXCLUDED.unit, weight = EXCLUDED.weight, area_id = EXCLUDED.area_id, "
                "geom = EXCLUDED.geom, attrs = EXCLUDED.attrs, updated_at = now() "
                "WHERE (h.address, h.address_norm, h.address_key, h.people, h.building_id, "
                "h.unit, h.weight, h.area_id, h.attrs) IS DISTINCT FROM (EXCLUDED.address, "
                "EXCLUDED.address_norm, EXCLUDED.address_key, EXCLUDED.people, "
                "EXCLUDED.building_id, EXCLUDED.unit, EXCLUDED.weight, EXCLUDED.area_id, "
                "EXCLUDED.attrs) OR NOT ST_Equals(h.geom, EXCLUDED.geom)",
            )
    session.execute(text("DROP TABLE _stage_households"))
    _analyze(session, "households", inserted + updated)
    progress("upsert households", len(df), len(df))
    return LoadReport(
        "households",
        prepared.source,
        len(df),
        inserted,
        updated,
        len(df) - inserted - updated,
        time.perf_counter() - t0,
    )


# -- people --------------------------------------------------------------------


def load_people(
    session: Session, prepared: Prepared, *, progress: ProgressFn | None = None
) -> LoadReport:
    """Upsert grid workers, grid leaders and party members by ``person_id``."""
    t0 = time.perf_counter()
    df = prepared.frame
    src = prepared.source
    known: dict[str, int] = dict(  # type: ignore[arg-type]
        session.execute(text("SELECT code, id FROM admin_areas")).all()
    )
    problems = [
        Problem(src, f"unknown area_code {code!r}", row=i, field="area_code")
        for i, code in enumerate(df["area_code"], start=1)
        if code is not None and code not in known
    ]
    if problems:
        raise InputError(problems)
    stage = pd.DataFrame(
        {
            "external_id": df["person_id"].to_numpy(),
            "name": df["name"].to_numpy(),
            "role": df["role"].to_numpy(),
            "work_phone": df["work_phone"].to_numpy(),
            "area_id": pd.array(
                [known.get(c) if c is not None else None for c in df["area_code"]],
                dtype="Int64",
            ),
            "attrs": df["attrs"].to_numpy(),
        }
    )
    session.execute(
        text(
            "CREATE TEMP TABLE _stage_people (external_id text, name text, role text, "
            "work_phone text, area_id int, attrs jsonb) ON COMMIT DROP"
        )
    )
    _copy(
        session,
        "_stage_people",
        list(stage.columns),
        stage,
        progress=progress or _noop,
        step="copy people",
    )
    inserted, updated = _upsert_counts(
        session,
        "INSERT INTO people AS p (external_id, name, role, work_phone, area_id, attrs) "
        "SELECT external_id, name, role, work_phone, area_id, attrs FROM _stage_people "
        "ON CONFLICT (external_id) DO UPDATE SET name = EXCLUDED.name, role = EXCLUDED.role, "
        "work_phone = EXCLUDED.work_phone, area_id = EXCLUDED.area_id, attrs = EXCLUDED.attrs "
        "WHERE (p.name, p.role, p.work_phone, p.area_id, p.attrs) IS DISTINCT FROM "
        "(EXCLUDED.name, EXCLUDED.role, EXCLUDED.work_phone, EXCLUDED.area_id, EXCLUDED.attrs)",
    )
    session.execute(text("DROP TABLE _stage_people"))
    _analyze(session, "people", inserted + updated)
    return LoadReport(
        "people",
        src,
        len(df),
        inserted,
        updated,
        len(df) - inserted - updated,
        time.perf_counter() - t0,
    )
