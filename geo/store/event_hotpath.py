"""``POST /events`` in one statement: resolve, route, insert the event and its log
entry, and read it back — one round trip on an autocommit connection.

:data:`REPORT_SQL` does what :func:`geo.store.events.report_event` does for the
common cases — an address whose canonical key names exactly one household in a
grid of the published plans, or (without an address) a point inside such a
grid — and answers no row for everything else (no such category or reporter, no
exact key, an ambiguous key, a household in no grid, a point outside every
grid, no routing rule), writing nothing. The caller then runs
:func:`~geo.store.events.report_event`, which decides those cases (trigram
matching, the nearest grid, the errors naming the field). Both store the same
rows and give the same :class:`~geo.store.events.EventRecord`: the statement
re-uses the routing CTEs (:func:`geo.store.events._routing_ctes`) and the
event query (:data:`geo.store.events._EVENT_SQL`).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Final

from geo.address import address_keys
from geo.store.events import (
    _EVENT_SQL,
    EventLogEntry,
    EventRecord,
    Person,
    _record,
    _routing_ctes,
    _with_routing,
    routing_of,
)

__all__ = [
    "REPORT_PARAM_NAMES",
    "REPORT_SQL",
    "REPORT_SQL_NATIVE",
    "report_params",
    "report_record",
]

_DEPTH: Final = (
    "array_position(ARRAY['province','city','county','township','village',"
    "'community']::text[], pa.level::text)"
)

_SELECT, _FROM = _EVENT_SQL.split(" FROM events e ", 1)

#: One statement (psycopg ``%(name)s`` parameters): the event as
#: :data:`geo.store.events._EVENT_SQL` reads it plus its routing and log entry,
#: or no row (nothing written) when :func:`report_event` must decide.
REPORT_SQL: Final = (
    "WITH cat AS (SELECT code, deadline_hours FROM event_categories "
    "WHERE code = %(cat)s), "
    "rep AS (SELECT id FROM people WHERE external_id = %(rep)s), "
    "in_force AS (SELECT p.id, "
    f"{_DEPTH} AS depth FROM plans p JOIN admin_areas pa ON pa.id = p.area_id "
    "WHERE p.status = 'published'), "
    # an address: exactly one household with its key, and its grid
    "m AS (SELECT h.id, h.geom FROM households h WHERE h.address_key = %(key)s "
    "ORDER BY h.id LIMIT 2), "
    "hh AS (SELECT m.id, coalesce((SELECT a.grid_id FROM assignments a "
    "JOIN in_force f ON f.id = a.plan_id WHERE a.household_id = m.id "
    "ORDER BY f.depth DESC, f.id DESC LIMIT 1), (SELECT g2.id FROM grids g2 "
    "JOIN in_force f ON f.id = g2.plan_id WHERE ST_Intersects(g2.geom, m.geom) "
    "ORDER BY f.depth DESC, g2.code LIMIT 1)) AS grid_id FROM m "
    "WHERE (SELECT count(*) FROM m) = 1), "
    # no address: the grid containing the point
    "pt AS (SELECT g.id AS grid_id FROM grids g JOIN in_force f ON f.id = g.plan_id "
    "WHERE CAST(%(addr)s AS text) IS NULL AND ST_Intersects(g.geom, "
    "ST_SetSRID(ST_MakePoint(CAST(%(lon)s AS float8), CAST(%(lat)s AS float8)), 4326)) "
    "ORDER BY f.depth DESC, g.code LIMIT 1), "
    "place AS (SELECT grid_id, id AS hh_id, 'exact' AS located_by FROM hh "
    "WHERE grid_id IS NOT NULL UNION ALL SELECT grid_id, NULL::bigint, 'point' FROM pt), "
    "src AS (SELECT g.area_id, g.id AS grid_id, 'grid'::text AS tier, g.plan_id, "
    "g.code, place.hh_id, place.located_by FROM place JOIN grids g "
    "ON g.id = place.grid_id), "
    f"{_routing_ctes('src')}, "
    "lv AS (WITH RECURSIVE up AS (SELECT id, level, parent_id, 0 AS n FROM admin_areas "
    "WHERE id = (SELECT area_id FROM src) UNION ALL SELECT p.id, p.level, p.parent_id, "
    "up.n + 1 FROM admin_areas p JOIN up ON p.id = up.parent_id) "
    "SELECT (SELECT id FROM up WHERE level IN ('village', 'community') "
    "ORDER BY n LIMIT 1) AS vil, (SELECT id FROM up WHERE level = 'township' "
    "ORDER BY n LIMIT 1) AS town), "
    "ok AS (SELECT src.*, r.rule_id, r.assignee_id, "
    "coalesce(cat.deadline_hours, r.deadline_hours) AS hours FROM src "
    "JOIN routed r ON r.area_id = src.area_id AND r.grid_id = src.grid_id "
    "AND r.tier = src.tier CROSS JOIN cat "
    "WHERE CAST(%(rep)s AS text) IS NULL OR EXISTS (SELECT 1 FROM rep)), "
    "ins AS (INSERT INTO events (reported_at, reporter_kind, reporter_person_id, "
    "resident_name, resident_phone, reported_by, description, address, geom, "
    "located_by, household_id, plan_id, grid_id, area_id, village_id, township_id, "
    "category_code, tier, assignee_id, rule_id, deadline, status, updated_at) "
    "SELECT %(at)s, %(kind)s, (SELECT id FROM rep), %(rn)s, %(rph)s, %(actor)s, "
    "%(desc)s, %(addr)s, coalesce(ST_SetSRID(ST_MakePoint(CAST(%(lon)s AS float8), "
    "CAST(%(lat)s AS float8)), 4326), (SELECT geom FROM households "
    "WHERE id = ok.hh_id)), ok.located_by, ok.hh_id, ok.plan_id, ok.grid_id, "
    "ok.area_id, lv.vil, lv.town, %(cat)s, 'grid', ok.assignee_id, ok.rule_id, "
    "CAST(%(at)s AS timestamptz) + make_interval(hours => ok.hours), 'reported', "
    "%(at)s FROM ok CROSS JOIN lv RETURNING *), "
    "lg AS (INSERT INTO event_log (event_id, at, actor, action, from_status, "
    "to_status, note, details) SELECT ins.id, %(at)s, %(actor)s, 'report', NULL, "
    "'reported', NULL, jsonb_build_object('grid', ok.code, 'plan_id', ok.plan_id, "
    "'located_by', ok.located_by, 'tier', 'grid', 'assignee', "
    "(SELECT external_id FROM people WHERE id = ok.assignee_id), 'rule_id', "
    "ok.rule_id, 'deadline_hours', ok.hours) FROM ins CROSS JOIN ok "
    "RETURNING at, actor, action, from_status, to_status, note, details) "
    f"{_SELECT.replace(':now', '%(at)s')}, rr.handler_role AS r_role, "
    "rr.deadline_hours AS r_hours, cat.deadline_hours AS cat_hours, lg.at AS l_at, "
    "lg.actor AS l_actor, lg.action AS l_action, lg.from_status AS l_from, "
    "lg.to_status AS l_to, lg.note AS l_note, lg.details AS l_details "
    f"FROM ins e {_FROM} CROSS JOIN lg CROSS JOIN cat"
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


#: :data:`REPORT_SQL` for a raw cursor (``$n``), and its parameters' names in order.
REPORT_SQL_NATIVE, REPORT_PARAM_NAMES = _native(REPORT_SQL)


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
    """The parameters of :data:`REPORT_SQL`, or None when only
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
        "at": reported_at,
        "kind": "resident" if (resident_name or resident_phone) else "person",
        "rn": resident_name,
        "rph": resident_phone,
        "actor": actor,
        "desc": description,
    }


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
