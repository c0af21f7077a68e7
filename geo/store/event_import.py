"""Importing files of past events: COPY into a staging table, all or nothing.

:func:`import_events` COPYs a prepared frame into a staging table, places and
routes it set-based and inserts it all-or-nothing.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.address import address_keys
from geo.errors import InputError, Problem
from geo.store.event_routing import _routing_ctes

__all__ = [
    "BULK_ROWS",
    "ImportReport",
    "import_events",
]


@dataclass(frozen=True)
class ImportReport:
    source: str
    rows: int
    inserted: int
    seconds: float

    def __str__(self) -> str:
        return f"events from {self.source}: {self.inserted} of {self.rows} rows imported in {self.seconds:.1f} s"


# ---------------------------------------------------------------------------
# Import (COPY, all-or-nothing)
# ---------------------------------------------------------------------------

_STAGE_COLUMNS: Final = (
    "row_no",
    "external_id",
    "reported_at",
    "category",
    "description",
    "address",
    "place_no",
    "lon",
    "lat",
    "reporter",
    "resident_name",
    "resident_phone",
    "tier",
    "status",
    "assignee",
    "deadline",
    "settled_at",
    "closed_at",
    "satisfaction",
    "comment",
)
_STAGE_TIMES: Final = ("reported_at", "deadline", "settled_at", "closed_at")


def _micros(values: Any) -> pa.Array:
    """Time-zone-aware times as microseconds since 1970 UTC (null when missing):
    the server reads integers several times faster than times as text."""
    us = pd.Series(values).dt.tz_convert("UTC").dt.as_unit("us")
    return pa.array(us).cast(pa.int64())


def _at(column: str) -> str:
    """The time of a staged column of :func:`_micros` (exact: float8 holds every
    microsecond of these centuries, and ``to_timestamp`` rounds to the microsecond)."""
    return f"to_timestamp({column}::float8 / 1000000)"


def _plan_bounds(session: Session) -> list[dt.datetime]:
    """Where the plans in force change: every ``valid_from``/``valid_to`` of a
    published or archived plan, in order."""
    return list(
        session.execute(
            text(
                "SELECT valid_from FROM plans WHERE status IN ('published', 'archived') "
                "AND valid_from IS NOT NULL UNION SELECT valid_to FROM plans "
                "WHERE status IN ('published', 'archived') AND valid_to IS NOT NULL "
                "ORDER BY 1"
            )
        ).scalars()
    )


def _stage_table(
    rows: pd.DataFrame, bounds: Sequence[dt.datetime]
) -> tuple[pa.Table, pa.Table]:
    """The rows as the staging table's columns, and their *places*.

    A place is a distinct address in an *epoch* — a stretch between plan
    ``bounds`` within which the plans in force do not change — so it has one
    household and one grid; ``place_no`` numbers them (null without an
    address). Each distinct address is parsed once.
    """
    address = pa.array(rows["address"], type=pa.large_string(), from_pandas=True)
    if isinstance(address, pa.ChunkedArray):
        address = address.combine_chunks()
    coded = address.dictionary_encode()
    keys = address_keys(coded.dictionary.to_pylist())
    key_no = coded.indices.to_numpy(zero_copy_only=False)  # float, NaN when null
    reported = pd.Series(rows["reported_at"]).dt.tz_convert("UTC")
    edges = np.array(
        [pd.Timestamp(b).tz_convert("UTC").as_unit("ns").value for b in bounds],
        dtype=np.int64,
    )
    epoch = np.searchsorted(edges, reported.dt.as_unit("ns").to_numpy("int64"), "right")
    has_key = ~np.isnan(key_no)
    pair = np.where(
        has_key, np.nan_to_num(key_no).astype(np.int64) * (len(edges) + 1) + epoch, -1
    )
    place_no, uniques = pd.factorize(pair, use_na_sentinel=False)
    starts = [None, *bounds]
    valid = uniques >= 0
    places = pa.table(
        {
            "place_no": pa.array(np.flatnonzero(valid), type=pa.int32()),
            "addr_key": pa.array(
                [keys[int(u) // (len(edges) + 1)] for u in uniques[valid]],
                type=pa.large_string(),
            ),
            "epoch": _micros(
                pd.Series(
                    [starts[int(u) % (len(edges) + 1)] for u in uniques[valid]],
                    dtype="datetime64[us, UTC]",
                )
            ),
        }
    )
    columns: dict[str, Any] = {}
    for c in _STAGE_COLUMNS:
        if c == "row_no":
            columns[c] = pa.array(rows["row"], type=pa.int64())
        elif c == "external_id":
            columns[c] = pa.array(rows["event_id"], from_pandas=True)
        elif c == "place_no":
            columns[c] = pa.array(place_no, mask=~has_key, type=pa.int32())
        elif c in _STAGE_TIMES:
            columns[c] = _micros(rows[c])
        elif c == "satisfaction":
            columns[c] = pa.array(rows[c], type=pa.int64(), from_pandas=True)
        elif c in ("lon", "lat"):
            columns[c] = pa.array(rows[c], type=pa.float64(), from_pandas=True)
        else:
            columns[c] = pa.array(rows[c], type=pa.large_string(), from_pandas=True)
    return pa.table(columns), places


def _copy(conn: Any, table: str, data: pa.Table) -> None:
    """COPY an Arrow table into ``table`` (its columns by name), as CSV written
    by Arrow in chunks: the server parses one while the next is written."""
    options = pacsv.WriteOptions(include_header=False)
    with (
        conn.cursor() as cur,
        cur.copy(
            f"COPY {table} ({', '.join(data.column_names)}) FROM STDIN (FORMAT csv)"
        ) as cp,
    ):
        for batch in data.to_batches(max_chunksize=50_000):
            buf = pa.BufferOutputStream()
            pacsv.write_csv(batch, buf, write_options=options)
            cp.write(buf.getvalue().to_pybytes())


def import_events(
    session: Session, rows: pd.DataFrame, *, source: str, actor: str = "import"
) -> ImportReport:
    """Store events prepared by :func:`geo.events.rows.prepare_event_rows`, all or nothing.

    The rows are COPYed into a staging table and resolved set-based: an
    ``address`` by its exact canonical key (one household), else ``lon``/``lat``
    by the grid containing the point; the household's or point's grid is taken
    from the plans in force at ``reported_at`` (the published ones when no plan
    was in force then). ``tier`` defaults to ``grid`` for reported events and
    the category's tier otherwise; ``assignee`` and ``deadline`` default to the
    routing. Each event gets one ``import`` log entry. From :data:`BULK_ROWS`
    rows into a smaller table the indexes and constraints are rebuilt after the
    insert instead of kept row by row (:func:`_bulk_mode`; same transaction).

    Only small tables are resolved on the way — one row per place (address
    and plan epoch), per row placed by its point, per grid and tier — and the
    rows are read twice, for the problems and for the insert, each time joined
    to those small tables in the order written. Event ids follow the rows'
    order as read.

    Raises
    ------
    InputError
        Naming the file, row and field of every row that cannot be stored
        (unknown category or person, an address no household has, a point in
        no grid, an event_id already stored); nothing is written.
    """
    t0 = time.perf_counter()
    n = len(rows)
    if n == 0:
        raise InputError.one(source, "the file has no rows")
    stage, places = _stage_table(rows, _plan_bounds(session))
    # in a savepoint: whatever fails (a problem, a rule missing, the database)
    # leaves the caller's transaction as it was — no staging tables, no
    # dropped indexes or constraints, no settings changed
    with session.begin_nested():
        inserted = _store(session, stage, places, source=source, actor=actor)
    return ImportReport(source, n, inserted, time.perf_counter() - t0)


#: Settings of the import's statements (restored after): JIT compiling costs
#: seconds and never pays off here; the hashes of a million rows fit in
#: memory instead of spilling; and the joins run in the order written (each to
#: a small table, hashed) — the planner misjudges the staged rows' joins and
#: would multiply rows first; indexes are rebuilt in memory.
_IMPORT_SETTINGS: Final = {
    "jit": "off",
    "work_mem": "256MB",
    "join_collapse_limit": "1",
    "maintenance_work_mem": "512MB",
}


def _store(
    session: Session, stage: pa.Table, places: pa.Table, *, source: str, actor: str
) -> int:
    """Stage, check, place, route and insert the rows (see :func:`import_events`)."""
    n = stage.num_rows
    saved = {
        name: session.execute(
            text("SELECT current_setting(:name)"), {"name": name}
        ).scalar_one()
        for name in _IMPORT_SETTINGS
    }
    for name, value in _IMPORT_SETTINGS.items():
        session.execute(
            text("SELECT set_config(:name, :value, true)"),
            {"name": name, "value": value},
        )
    session.execute(
        text(
            "CREATE TEMP TABLE _stage_raw (row_no int, external_id text, "
            "reported_at bigint, category text, description text, address text, "
            "place_no int, lon float8, lat float8, reporter text, resident_name text, "
            "resident_phone text, tier text, status text, assignee text, "
            "deadline bigint, settled_at bigint, closed_at bigint, "
            "satisfaction int, comment text) ON COMMIT DROP"
        )
    )
    session.execute(
        text(
            "CREATE TEMP TABLE _stage_places (place_no int, addr_key text, "
            "epoch bigint) ON COMMIT DROP"
        )
    )
    conn: Any = session.connection().connection.driver_connection
    _copy(conn, "_stage_places", places)
    _copy(conn, "_stage_raw", stage)
    del stage
    session.execute(text("ANALYZE _stage_raw"))
    for sql in _PLACE_SQL:
        session.execute(text(sql))
    # (before the problems: an event_id stored meanwhile cannot slip in)
    bulk = _bulk_mode(session, n)
    problems = _import_problems(session, source)
    if problems:
        raise InputError(problems[:100], total=len(problems))
    inserted = session.execute(
        text(
            "WITH ins AS (INSERT INTO events (external_id, reported_at, reporter_kind, "
            "reporter_person_id, resident_name, resident_phone, reported_by, description, "
            "address, geom, located_by, household_id, plan_id, grid_id, area_id, "
            "village_id, township_id, category_code, tier, assignee_id, rule_id, deadline, "
            "status, escalated, escalation_level, settled_at, closed_at, satisfaction, "
            "satisfaction_comment, updated_at) "
            "SELECT s.external_id, t.reported_at, CASE WHEN s.resident_name IS NOT NULL "
            "OR s.resident_phone IS NOT NULL THEN 'resident' ELSE 'person' END, "
            "rp.id, s.resident_name, s.resident_phone, :actor, s.description, "
            "s.address, CASE WHEN s.lon IS NOT NULL THEN "
            "ST_SetSRID(ST_MakePoint(s.lon, s.lat), 4326) ELSE "
            "(SELECT geom FROM households WHERE id = pl.hid) END, "
            "CASE WHEN pl.grid_id IS NOT NULL OR pl.hid IS NOT NULL THEN 'exact' "
            "ELSE 'point' END, CASE WHEN pl.n = 1 THEN pl.hid END, "
            "coalesce(pl.plan_id, pt.plan_id), r.grid_id, r.area_id, r.village_id, "
            f"r.township_id, s.category, {_TIER}, coalesce(ap.id, r.assignee_id), "
            "r.rule_id, coalesce(t.deadline, t.reported_at + make_interval(hours => "
            "coalesce(c.deadline_hours, r.deadline_hours))), s.status, false, 0, "
            "t.settled_at, t.closed_at, s.satisfaction, s.comment, "
            "coalesce(t.closed_at, t.settled_at, t.reported_at) "
            f"{_SOURCE} JOIN _stage_route r ON r.grid_id = {_GRID} AND r.tier = {_TIER} "
            "RETURNING id, status, reported_at, external_id) "
            "INSERT INTO event_log (event_id, at, actor, action, from_status, to_status, "
            "note, details) SELECT id, reported_at, :actor, 'import', NULL, status, "
            ":note, CASE WHEN external_id IS NULL THEN '{}'::jsonb ELSE "
            "jsonb_build_object('external_id', external_id) END FROM ins"
        ),
        {"actor": actor, "note": f"imported from {source}"},
    ).rowcount  # type: ignore[attr-defined]
    if inserted != n:
        raise InputError.one(
            source,
            f"only {inserted} of {n} rows could be routed (is there a routing rule "
            "for every tier?); nothing was written",
        )
    if bulk is not None:
        _rebuild(session, bulk)
    session.execute(text(f"DROP TABLE {', '.join(_STAGE_TABLES)}"))
    session.execute(text("ANALYZE events"))
    for name, value in saved.items():
        session.execute(
            text("SELECT set_config(:name, :value, true)"),
            {"name": name, "value": value},
        )
    return int(inserted)


_IN_FORCE_AT = (
    "p.status IN ('published', 'archived') AND p.valid_from <= {t} "
    "AND {t} < coalesce(p.valid_to, 'infinity'::timestamptz)"
)
_DEPTH_PA = (
    "array_position(ARRAY['province','city','county','township','village',"
    "'community']::text[], pa.level::text)"
)
_EPOCH = f"coalesce({_at('k.epoch')}, '-infinity'::timestamptz)"

_STAGE_TABLES: Final = (
    "_stage_raw",
    "_stage_places",
    "_stage_place",
    "_stage_pt",
    "_stage_combos",
    "_stage_route",
)

#: Small tables that place the staged rows (``_stage_raw``), built in order:
#: per place (``_stage_places``: an address key in a plan epoch, null for the
#: start of time) its households and the grid of the household's assignment in
#: the plans in force then (else the published ones); the grid containing the
#: point (or the household) of each row not placed so, in the plans in force
#: at ``reported_at`` (else published); and per placed grid and tier, the grid's
#: area, village and township and the routing.
_PLACE_SQL: Final = (
    "CREATE TEMP TABLE _stage_place ON COMMIT DROP AS "
    "SELECT k.place_no, hh.hid, hh.n, a.grid_id, a.plan_id FROM _stage_places k "
    "LEFT JOIN LATERAL (SELECT min(h.id) AS hid, nullif(count(*), 0)::int AS n "
    "FROM households h WHERE h.address_key = k.addr_key) hh ON true "
    "LEFT JOIN LATERAL (SELECT asg.grid_id, asg.plan_id FROM assignments asg "
    "JOIN plans p ON p.id = asg.plan_id JOIN admin_areas pa ON pa.id = p.area_id "
    "WHERE hh.n = 1 AND asg.household_id = hh.hid AND "
    f"(({_IN_FORCE_AT.format(t=_EPOCH)}) OR p.status = 'published') "
    f"ORDER BY ({_IN_FORCE_AT.format(t=_EPOCH)}) DESC, {_DEPTH_PA} DESC, "
    "p.id DESC LIMIT 1) a ON true",
    "ANALYZE _stage_place",
    "CREATE TEMP TABLE _stage_pt ON COMMIT DROP AS SELECT s.row_no, l.grid_id, l.plan_id "
    "FROM _stage_raw s LEFT JOIN _stage_place pl ON pl.place_no = s.place_no "
    "JOIN LATERAL (SELECT g.id AS grid_id, g.plan_id FROM grids g "
    "JOIN plans p ON p.id = g.plan_id JOIN admin_areas pa ON pa.id = p.area_id "
    f"WHERE (({_IN_FORCE_AT.format(t=_at('s.reported_at'))}) "
    "OR p.status = 'published') "
    "AND ST_Intersects(g.geom, CASE WHEN s.lon IS NOT NULL "
    "THEN ST_SetSRID(ST_MakePoint(s.lon, s.lat), 4326) "
    "ELSE (SELECT geom FROM households WHERE id = pl.hid) END) "
    f"ORDER BY ({_IN_FORCE_AT.format(t=_at('s.reported_at'))}) DESC, {_DEPTH_PA} DESC, "
    "g.code LIMIT 1) l ON true "
    "WHERE pl.grid_id IS NULL AND (pl.n = 1 OR s.lon IS NOT NULL)",
    "ANALYZE _stage_pt",
    "CREATE TEMP TABLE _stage_combos ON COMMIT DROP AS "
    "SELECT g.area_id, g.id AS grid_id, t.tier FROM grids g "
    "CROSS JOIN unnest(ARRAY['grid', 'village', 'township']) AS t(tier) "
    "WHERE g.id IN (SELECT grid_id FROM _stage_place UNION SELECT grid_id FROM _stage_pt)",
    "CREATE TEMP TABLE _stage_route ON COMMIT DROP AS "
    f"WITH {_routing_ctes('_stage_combos')}, "
    "lv AS (WITH RECURSIVE up AS (SELECT a.id AS start, a.id, a.level, a.parent_id, "
    "0 AS n FROM admin_areas a WHERE a.id IN (SELECT area_id FROM _stage_combos) "
    "UNION ALL SELECT up.start, p.id, p.level, p.parent_id, up.n + 1 "
    "FROM admin_areas p JOIN up ON p.id = up.parent_id) "
    "SELECT start, (array_agg(id ORDER BY n) FILTER (WHERE level IN "
    "('village', 'community')))[1] AS vil, (array_agg(id ORDER BY n) FILTER "
    "(WHERE level = 'township'))[1] AS town FROM up GROUP BY start) "
    "SELECT r.grid_id, r.tier, r.area_id, lv.vil AS village_id, lv.town AS township_id, "
    "r.rule_id, r.deadline_hours, r.assignee_id FROM routed r "
    "LEFT JOIN lv ON lv.start = r.area_id",
    "ANALYZE _stage_route",
)

#: The staged rows joined to what places them (aliases: ``s`` the row, ``t``
#: its times, ``pl``
#: its place, ``pt`` its point's grid, ``c`` the category, ``rp``/``ap``
#: reporter and assignee): each join after the rows' own has a small inner side.
_SOURCE: Final = (
    f"FROM _stage_raw s CROSS JOIN LATERAL (SELECT {_at('s.reported_at')} AS reported_at, "
    f"{_at('s.deadline')} AS deadline, {_at('s.settled_at')} AS settled_at, "
    f"{_at('s.closed_at')} AS closed_at) t "
    "LEFT JOIN _stage_place pl ON pl.place_no = s.place_no "
    "LEFT JOIN _stage_pt pt ON pt.row_no = s.row_no "
    "LEFT JOIN event_categories c ON c.code = s.category "
    "LEFT JOIN people rp ON rp.external_id = s.reporter "
    "LEFT JOIN people ap ON ap.external_id = s.assignee "
)
_GRID: Final = "coalesce(pl.grid_id, pt.grid_id)"
_TIER: Final = (
    "coalesce(s.tier, CASE WHEN s.status = 'reported' THEN 'grid' "
    "ELSE c.default_tier::text END)"
)

#: From this many rows, and at least as many as the table holds, an import
#: drops the secondary indexes and foreign keys of ``events`` and ``event_log``
#: and builds them again after the insert (in its transaction: all or nothing).
BULK_ROWS: Final = 100_000


@dataclass(frozen=True)
class _Bulk:
    indexes: list[str]  # CREATE INDEX statements
    constraints: list[tuple[str, str, str]]  # table, name, definition; drop order


def _bulk_mode(session: Session, n: int) -> _Bulk | None:
    """Drop what a big import would otherwise maintain row by row; what to rebuild.

    Only when ``n >= BULK_ROWS`` and ``events`` holds fewer rows than ``n``
    (then building afresh is cheaper than ``n`` index and foreign-key updates).
    The drop locks both tables exclusively, and the tables their foreign keys
    refer to against writes, until the import commits.
    """
    if n < BULK_ROWS:
        return None
    have = session.execute(
        text("SELECT reltuples FROM pg_class WHERE oid = 'events'::regclass")
    ).scalar_one()
    if have > n:
        return None
    # foreign keys first (one refers to the primary key of events), then the
    # primary keys and unique constraints (their indexes built by sorting)
    constraints = [
        (r.tbl, r.conname, r.def_)
        for r in session.execute(
            text(
                "SELECT conrelid::regclass::text AS tbl, conname, "
                "pg_get_constraintdef(oid) AS def_ FROM pg_constraint "
                "WHERE conrelid IN ('events'::regclass, 'event_log'::regclass) "
                "AND contype IN ('f', 'p', 'u') "
                "ORDER BY contype <> 'f', conrelid, conname"
            )
        )
    ]
    indexes = session.execute(
        text(
            "SELECT i.indexrelid::regclass::text AS name, "
            "pg_get_indexdef(i.indexrelid) AS def_ FROM pg_index i "
            "WHERE i.indrelid IN ('events'::regclass, 'event_log'::regclass) "
            # partial ones stay: few rows, and a rebuilt predicate reads differently
            "AND i.indpred IS NULL AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
            "WHERE c.conindid = i.indexrelid) ORDER BY 1"
        )
    ).all()
    for tbl, name, _ in constraints:
        session.execute(text(f'ALTER TABLE {tbl} DROP CONSTRAINT "{name}"'))
    for r in indexes:
        session.execute(text(f"DROP INDEX {r.name}"))
    return _Bulk([r.def_ for r in indexes], constraints)


def _rebuild(session: Session, bulk: _Bulk) -> None:
    for ddl in bulk.indexes:
        session.execute(text(ddl))
    for tbl, name, definition in reversed(bulk.constraints):
        session.execute(text(f'ALTER TABLE {tbl} ADD CONSTRAINT "{name}" {definition}'))


def _import_problems(session: Session, source: str) -> list[Problem]:
    """Every problem of the staged rows, by row and field: one pass over them."""
    checks = (
        (
            "'category'",
            "c.code IS NULL",
            "'unknown category ' || quote_literal(s.category)",
        ),
        (
            "'reporter'",
            "s.reporter IS NOT NULL AND rp.id IS NULL",
            "'unknown person ' || quote_literal(s.reporter)",
        ),
        (
            "'assignee'",
            "s.assignee IS NOT NULL AND ap.id IS NULL",
            "'unknown person ' || quote_literal(s.assignee)",
        ),
        (
            "'event_id'",
            "e.id IS NOT NULL",
            "'event ' || quote_literal(s.external_id) || ' is already stored'",
        ),
        (
            "'address'",
            "pl.n > 1 AND s.lon IS NULL",
            "'the address matches ' || pl.n || ' households; give lon/lat'",
        ),
        (
            "'address'",
            "s.address IS NOT NULL AND pl.hid IS NULL AND s.lon IS NULL",
            "'no household has the address ' || quote_literal(s.address) "
            "|| ' (an import needs an exact match); give lon/lat'",
        ),
        (
            "CASE WHEN s.lon IS NULL THEN 'address' ELSE 'lon' END",
            f"{_GRID} IS NULL AND (pl.hid IS NOT NULL OR s.lon IS NOT NULL) "
            "AND (pl.n IS NULL OR pl.n = 1 OR s.lon IS NOT NULL)",
            "'the place is in no grid of the plans in force at reported_at, nor of "
            "the published plans'",
        ),
    )
    values = ", ".join(
        f"({field}, CASE WHEN {cond} THEN {message} END)"
        for field, cond, message in checks
    )
    bad = " OR ".join(f"({cond})" for _, cond, _ in checks)
    # (the rows with problems found in the joins' order, then sorted: few)
    rows = session.execute(
        text(
            "SELECT row_no, field, message FROM ("
            f"SELECT s.row_no, p.field, p.message {_SOURCE}"
            "LEFT JOIN events e ON e.external_id = s.external_id "
            f"CROSS JOIN LATERAL (VALUES {values}) p(field, message) "
            f"WHERE ({bad}) AND p.message IS NOT NULL OFFSET 0) found ORDER BY 1, 2"
        )
    ).all()
    return [Problem(source, msg, row=r, field=f) for r, f, msg in rows]
