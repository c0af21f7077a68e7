"""``POST /events`` in one statement: resolve, route, insert the events and their
log entries, and read them back — one round trip on an autocommit connection for
a whole batch of reports (the server sends the reports waiting at that moment
together: :mod:`api.report_batches`).

:data:`REPORT_SQL` does what :func:`geo.store.events.report_event` does for the
common cases — an address whose canonical key names exactly one household in a
grid of the published plans, or (without an address) a point inside such a
grid — and answers no row for everything else (no such category or reporter, no
exact key, an ambiguous key, a household in no grid, a point outside every
grid, no routing rule), writing nothing for that report. The caller then runs
:func:`~geo.store.events.report_event`, which decides those cases (trigram
matching, the nearest grid, the errors naming the field). Both store the same
rows and give the same :class:`~geo.store.events.EventRecord`: the statement
re-uses the routing CTEs (:func:`geo.store.event_routing._routing_ctes`) and the
event query (:data:`geo.store.event_queries._EVENT_SQL`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from typing import Any, Final

from geo.address import address_keys
from geo.store.event_queries import (
    _EVENT_SQL,
    EventLogEntry,
    EventRecord,
    _record,
    _with_routing,
)
from geo.store.event_routing import Person, _routing_ctes, routing_of

__all__ = [
    "REPORT_SQL",
    "REPORT_SQL_NATIVE",
    "report_batch",
    "report_params",
    "report_record",
]

_DEPTH: Final = (
    "array_position(ARRAY['province','city','county','township','village',"
    "'community']::text[], pa.level::text)"
)

_SELECT, _FROM = _EVENT_SQL.split(" FROM events e ", 1)

#: One statement for a batch of reports (psycopg ``%(batch)s``: a JSON array of
#: :func:`report_params` objects, numbered by ``i``): per report that it can
#: store, the event as :data:`geo.store.event_queries._EVENT_SQL` reads it plus ``i``,
#: its routing and its log entry; no row (nothing written) for a report that
#: :func:`report_event` must decide. Every step is set-based, so a batch of
#: many reports costs little more than one (the statement-level rollup
#: trigger, the plan, the commit run once per batch).
REPORT_SQL: Final = (
    "WITH req AS MATERIALIZED (SELECT * FROM jsonb_to_recordset(CAST(%(batch)s AS jsonb)) "
    "AS r(i int, cat text, rep text, key text, addr text, lon float8, lat float8, "
    "at timestamptz, kind text, rn text, rph text, actor text, descr text)), "
    "in_force AS (SELECT p.id, "
    f"{_DEPTH} AS depth FROM plans p JOIN admin_areas pa ON pa.id = p.area_id "
    "WHERE p.status = 'published'), "
    # an address: exactly one household with its key, and its grid
    "m AS (SELECT r.i, h.id, h.geom, count(*) OVER (PARTITION BY r.i) AS n FROM req r "
    "JOIN LATERAL (SELECT h.id, h.geom FROM households h WHERE h.address_key = r.key "
    "ORDER BY h.id LIMIT 2) h ON true WHERE r.key IS NOT NULL), "
    "hh AS (SELECT m.i, m.id, coalesce((SELECT a.grid_id FROM assignments a "
    "JOIN in_force f ON f.id = a.plan_id WHERE a.household_id = m.id "
    "ORDER BY f.depth DESC, f.id DESC LIMIT 1), (SELECT g2.id FROM grids g2 "
    "JOIN in_force f ON f.id = g2.plan_id WHERE ST_Intersects(g2.geom, m.geom) "
    "ORDER BY f.depth DESC, g2.code LIMIT 1)) AS grid_id FROM m WHERE m.n = 1), "
    # no address: the grid containing the point
    "pt AS (SELECT r.i, g.grid_id FROM req r JOIN LATERAL (SELECT g.id AS grid_id "
    "FROM grids g JOIN in_force f ON f.id = g.plan_id WHERE ST_Intersects(g.geom, "
    "ST_SetSRID(ST_MakePoint(r.lon, r.lat), 4326)) ORDER BY f.depth DESC, g.code "
    "LIMIT 1) g ON true WHERE r.addr IS NULL), "
    "place AS (SELECT i, grid_id, id AS hh_id, 'exact' AS located_by FROM hh "
    "WHERE grid_id IS NOT NULL UNION ALL SELECT i, grid_id, NULL::bigint, 'point' FROM pt), "
    "src AS (SELECT place.i, g.area_id, g.id AS grid_id, 'grid'::text AS tier, g.plan_id, "
    "g.code, place.hh_id, place.located_by FROM place JOIN grids g "
    "ON g.id = place.grid_id), "
    f"{_routing_ctes('src')}, "
    "lv AS (WITH RECURSIVE up AS (SELECT a.id AS start, a.id, a.level, a.parent_id, "
    "0 AS n FROM admin_areas a WHERE a.id IN (SELECT area_id FROM src) "
    "UNION ALL SELECT up.start, p.id, p.level, p.parent_id, up.n + 1 "
    "FROM admin_areas p JOIN up ON p.id = up.parent_id) "
    "SELECT start, (array_agg(id ORDER BY n) FILTER (WHERE level IN "
    "('village', 'community')))[1] AS vil, (array_agg(id ORDER BY n) FILTER "
    "(WHERE level = 'township'))[1] AS town FROM up GROUP BY start), "
    # the reports to store, each with its event id (nextval: once per row)
    "ok AS MATERIALIZED (SELECT src.i, src.area_id, src.grid_id, src.plan_id, src.code, "
    "src.hh_id, src.located_by, q.at, q.kind, q.rn, q.rph, q.actor, q.descr, q.addr, "
    "q.lon, q.lat, q.cat, rp.id AS rep_id, r.rule_id, r.assignee_id, "
    "coalesce(cat.deadline_hours, r.deadline_hours) AS hours, lv.vil, lv.town, "
    "nextval('events_id_seq'::regclass) AS id FROM src JOIN req q ON q.i = src.i "
    "JOIN event_categories cat ON cat.code = q.cat "
    "JOIN routed r ON r.area_id = src.area_id AND r.grid_id = src.grid_id "
    "AND r.tier = src.tier LEFT JOIN people rp ON rp.external_id = q.rep "
    "LEFT JOIN lv ON lv.start = src.area_id "
    "WHERE q.rep IS NULL OR rp.id IS NOT NULL), "
    "ins AS (INSERT INTO events (id, reported_at, reporter_kind, reporter_person_id, "
    "resident_name, resident_phone, reported_by, description, address, geom, "
    "located_by, household_id, plan_id, grid_id, area_id, village_id, township_id, "
    "category_code, tier, assignee_id, rule_id, deadline, status, updated_at) "
    "SELECT ok.id, ok.at, ok.kind, ok.rep_id, ok.rn, ok.rph, ok.actor, ok.descr, "
    "ok.addr, coalesce(ST_SetSRID(ST_MakePoint(ok.lon, ok.lat), 4326), "
    "(SELECT geom FROM households WHERE id = ok.hh_id)), ok.located_by, ok.hh_id, "
    "ok.plan_id, ok.grid_id, ok.area_id, ok.vil, ok.town, ok.cat, 'grid', "
    "ok.assignee_id, ok.rule_id, ok.at + make_interval(hours => ok.hours), "
    "'reported', ok.at FROM ok RETURNING *), "
    "lg AS (INSERT INTO event_log (event_id, at, actor, action, from_status, "
    "to_status, note, details) SELECT ins.id, ok.at, ok.actor, 'report', NULL, "
    "'reported', NULL, jsonb_build_object('grid', ok.code, 'plan_id', ok.plan_id, "
    "'located_by', ok.located_by, 'tier', 'grid', 'assignee', "
    "(SELECT external_id FROM people WHERE id = ok.assignee_id), 'rule_id', "
    "ok.rule_id, 'deadline_hours', ok.hours) FROM ins JOIN ok ON ok.id = ins.id "
    "RETURNING event_id, at, actor, action, from_status, to_status, note, details) "
    f"{_SELECT.replace(':now', 'ok.at')}, ok.i, rr.handler_role AS r_role, "
    "rr.deadline_hours AS r_hours, c.deadline_hours AS cat_hours, lg.at AS l_at, "
    "lg.actor AS l_actor, lg.action AS l_action, lg.from_status AS l_from, "
    "lg.to_status AS l_to, lg.note AS l_note, lg.details AS l_details "
    f"FROM ins e {_FROM} JOIN ok ON ok.id = e.id JOIN lg ON lg.event_id = e.id "
    "ORDER BY ok.i"
)


def _native(sql: str) -> tuple[str, tuple[str, ...]]:
    """``sql`` with PostgreSQL's ``$n`` placeholders, and the names in order.

    psycopg parses a statement for its ``%(name)s`` placeholders on every
    execution when it is longer than 4 kB (it caches only shorter ones); a raw
    cursor sends ``$n`` statements as they are.
    """
    names: list[str] = []

    def number(m: re.Match[str]) -> str:
        if m.group(1) not in names:
            names.append(m.group(1))
        return f"${names.index(m.group(1)) + 1}"

    return re.sub(r"%\((\w+)\)s", number, sql), tuple(names)


#: :data:`REPORT_SQL` for a raw cursor (``$1``: see :func:`report_batch`).
REPORT_SQL_NATIVE, _NAMES = _native(REPORT_SQL)
assert _NAMES == ("batch",)


def report_params(
    *,
    category: str,
    actor: str,
    description: str | None,
    address: str | None,
    lon: float | None,
    lat: float | None,
    reporter: str | None,
    resident_name: str | None,
    resident_phone: str | None,
    reported_at: dt.datetime,
) -> dict[str, Any] | None:
    """One report for :func:`report_batch`, or None when only
    :func:`~geo.store.events.report_event` can decide (no place, half a point,
    an address without a canonical key)."""
    if address is not None and not address.strip():
        address = None
    if (lon is None) != (lat is None) or (address is None and lon is None):
        return None
    key = address_keys([address])[0] if address is not None else None
    if address is not None and not key:
        return None
    return {
        "cat": category,
        "rep": reporter,
        "key": key,
        "addr": address,
        "lon": lon,
        "lat": lat,
        "at": reported_at.isoformat(),
        "kind": "resident" if (resident_name or resident_phone) else "person",
        "rn": resident_name,
        "rph": resident_phone,
        "actor": actor,
        "descr": description,
    }


def report_batch(reports: Sequence[dict[str, Any]]) -> list[Any]:
    """The parameters of :data:`REPORT_SQL_NATIVE` for ``reports`` (each of
    :func:`report_params`; its answer row carries its index as ``i``).

    JSON carries the floats exactly (shortest round-trip text) and the times
    as ISO 8601 with their offset.
    """
    batch = [{**r, "i": i} for i, r in enumerate(reports)]
    return [json.dumps(batch, ensure_ascii=False, allow_nan=False)]


def report_record(row: Any) -> EventRecord:
    """The event of a :data:`REPORT_SQL` row (named attributes), with its routing."""
    log = EventLogEntry(
        row.l_at,
        row.l_actor,
        row.l_action,
        row.l_from,
        row.l_to,
        row.l_note,
        row.l_details,
    )
    rec = _record(row, (log,))
    assignee = (
        Person(row.ap_id, row.ap_name, row.ap_role, row.ap_phone)
        if row.ap_id is not None
        else None
    )
    routing = routing_of(
        "grid",
        row.rule_id,
        row.rule_area,
        row.r_role,
        row.r_hours,
        assignee,
        category=(row.category_code, row.cat_hours),
    )
    return _with_routing(rec, routing)
