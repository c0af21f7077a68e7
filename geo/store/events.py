"""Events (三事分流) in PostGIS: report, route, transition, list, escalate, count, import.

Every function takes a session first and never commits (the caller does).

* :func:`report_event` resolves the place with the same lookups as ``/lookup``
  (:func:`geo.store.lookup.lookup_address` / :func:`~geo.store.lookup.lookup_point`)
  and stores the household, grid, plan and areas *of that moment*: a later
  redraw never moves an old event.
* Routing is data (``routing_rules``): the rule of the nearest area on the
  event's area chain (else the default rule) names the handler's role and the
  tier's deadline; the handler is the grid's worker (role ``grid_worker``) or the
  nearest person with that role on the chain. One set-based statement
  (:func:`_routing_ctes`) routes one event or a million.
* Transitions follow :data:`geo.events.TRANSITIONS`; the row is locked, its
  ``version`` checked against ``expected_version`` (:class:`~geo.errors.EventConflict`)
  and every change is logged in ``event_log`` (append-only in the database).
* :func:`event_statistics` is one SQL statement; :func:`import_events` COPYs a
  prepared frame into a staging table and inserts it all-or-nothing.
"""

from __future__ import annotations

import datetime as dt
import json
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
from geo.errors import EventConflict, InputError, NotFound, Problem
from geo.events.catalogue import Category, read_catalogue
from geo.events.flow import (
    OPEN_STATUSES,
    SETTLED_STATUSES,
    STATUSES,
    TIERS,
    check_transition,
    lower_tier,
    upper_tier,
)
from geo.store.event_rollup import rollup_stats_rows
from geo.store.lookup import lookup_address, lookup_point
from geo.store.models import PERSON_ROLES

__all__ = [
    "STATS_GROUPS",
    "Escalation",
    "EventLogEntry",
    "EventPage",
    "EventRecord",
    "EventStats",
    "ImportReport",
    "Person",
    "Routing",
    "RoutingRuleInfo",
    "StatsRow",
    "escalate_overdue",
    "event_statistics",
    "get_event",
    "import_events",
    "list_categories",
    "list_events",
    "list_routing_rules",
    "load_catalogue",
    "report_event",
    "route",
    "routing_of",
    "set_routing_rule",
    "transition",
]

#: How :func:`event_statistics` can group events.
STATS_GROUPS: Final = ("grid", "village", "township", "all")


# ---------------------------------------------------------------------------
# Result types
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """A person of GridMap by external id, with their work contact."""

    id: str
    name: str
    role: str
    work_phone: str | None


@dataclass(frozen=True)
class Routing:
    """Where an event went and why: the tier, the rule used, the handler, the deadline."""

    tier: str
    rule_id: int
    rule_area_code: str | None
    handler_role: str
    deadline_hours: int
    assignee: Person | None
    reason: str


@dataclass(frozen=True)
class EventLogEntry:
    at: dt.datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str
    note: str | None
    details: dict[str, Any]


@dataclass(frozen=True)
class EventRecord:
    """An event with what it refers to (by external ids and codes).

    ``resident_name``/``resident_phone`` and ``household_id``/``household_address``
    (and ``address``) are private: only callers handling events may show them.
    """

    id: int
    external_id: str | None
    version: int
    status: str
    tier: str
    category_code: str
    category_name: str
    class_name: str
    description: str | None
    reported_at: dt.datetime
    reported_by: str | None
    reporter_kind: str
    reporter: Person | None
    resident_name: str | None
    resident_phone: str | None
    address: str | None
    lon: float | None
    lat: float | None
    located_by: str
    household_id: str | None
    household_address: str | None
    grid_code: str | None
    plan_id: int | None
    plan_version: int | None
    village_code: str | None
    village_name: str | None
    township_code: str | None
    township_name: str | None
    assignee: Person | None
    rule_id: int | None
    rule_area_code: str | None
    deadline: dt.datetime
    overdue: bool
    escalated: bool
    escalation_level: int
    settled_at: dt.datetime | None
    closed_at: dt.datetime | None
    satisfaction: int | None
    satisfaction_comment: str | None
    updated_at: dt.datetime
    log: tuple[EventLogEntry, ...] = ()
    routing: Routing | None = None


@dataclass(frozen=True)
class EventPage:
    items: list[EventRecord]
    total: int


@dataclass(frozen=True)
class Escalation:
    """One event :func:`escalate_overdue` moved up a tier."""

    event_id: int
    from_tier: str
    to_tier: str
    assignee: str | None
    deadline: dt.datetime


@dataclass(frozen=True)
class StatsRow:
    """Counts and outcomes of one group (a grid, village, township, or everything)."""

    code: str | None
    name: str | None
    total: int
    by_status: dict[str, int]
    by_tier: dict[str, int]
    open: int
    overdue: int
    settled: int
    median_hours_to_settle: float | None
    settled_in_grid_share: float | None
    settled_in_village_share: float | None
    mean_satisfaction: float | None
    rated: int


@dataclass(frozen=True)
class EventStats:
    group_by: str
    rows: list[StatsRow]
    total: StatsRow


@dataclass(frozen=True)
class RoutingRuleInfo:
    id: int
    area_code: str | None
    tier: str
    handler_role: str
    deadline_hours: int
    note: str | None


@dataclass(frozen=True)
class ImportReport:
    source: str
    rows: int
    inserted: int
    seconds: float

    def __str__(self) -> str:
        return f"events from {self.source}: {self.inserted} of {self.rows} rows imported in {self.seconds:.1f} s"


# ---------------------------------------------------------------------------
# Catalogue and routing rules
# ---------------------------------------------------------------------------


def load_catalogue(
    session: Session, categories: Sequence[Category] | None = None
) -> int:
    """Upsert catalogue items (the shipped catalogue by default); their count."""
    cats = list(categories) if categories is not None else read_catalogue()
    if not cats:
        return 0
    session.execute(
        text(
            "INSERT INTO event_categories (code, name, subclass_code, subclass_name, "
            "class_code, class_name, default_tier, deadline_hours) "
            "VALUES (:code, :name, :subclass_code, :subclass_name, :class_code, "
            ":class_name, :default_tier, :deadline_hours) ON CONFLICT (code) DO UPDATE "
            "SET name = EXCLUDED.name, subclass_code = EXCLUDED.subclass_code, "
            "subclass_name = EXCLUDED.subclass_name, class_code = EXCLUDED.class_code, "
            "class_name = EXCLUDED.class_name, default_tier = EXCLUDED.default_tier, "
            "deadline_hours = EXCLUDED.deadline_hours"
        ),
        [c.__dict__ for c in cats],
    )
    return len(cats)


def list_categories(session: Session) -> list[Category]:
    """The catalogue, by code."""
    rows = session.execute(
        text(
            "SELECT code, name, subclass_code, subclass_name, class_code, class_name, "
            "default_tier, deadline_hours FROM event_categories ORDER BY code"
        )
    ).all()
    return [Category(*r) for r in rows]


def set_routing_rule(
    session: Session,
    *,
    tier: str,
    handler_role: str,
    deadline_hours: int,
    area_code: str | None = None,
    note: str | None = None,
) -> int:
    """Add or replace the rule of ``tier`` in ``area_code`` (None: the default); its id."""
    problems = []
    if tier not in TIERS:
        problems.append(Problem("routing rule", f"unknown tier {tier!r}", field="tier"))
    if handler_role not in PERSON_ROLES:
        problems.append(
            Problem(
                "routing rule",
                f"unknown role {handler_role!r}; one of {', '.join(PERSON_ROLES)}",
                field="handler_role",
            )
        )
    if deadline_hours <= 0:
        problems.append(
            Problem("routing rule", "must be positive", field="deadline_hours")
        )
    if area_code is not None and (
        session.execute(
            text("SELECT 1 FROM admin_areas WHERE code = :c"), {"c": area_code}
        ).first()
        is None
    ):
        problems.append(
            Problem("routing rule", f"unknown area {area_code!r}", field="area_code")
        )
    if problems:
        raise InputError(problems)
    return int(
        session.execute(
            text(
                "INSERT INTO routing_rules (area_code, tier, handler_role, deadline_hours, note) "
                "VALUES (:a, :t, :r, :h, :n) ON CONFLICT (coalesce(area_code, ''), tier) "
                "DO UPDATE SET handler_role = EXCLUDED.handler_role, "
                "deadline_hours = EXCLUDED.deadline_hours, note = EXCLUDED.note RETURNING id"
            ),
            {
                "a": area_code,
                "t": tier,
                "r": handler_role,
                "h": deadline_hours,
                "n": note,
            },
        ).scalar_one()
    )


def list_routing_rules(session: Session) -> list[RoutingRuleInfo]:
    """Every routing rule: defaults first, then by area code and tier."""
    rows = session.execute(
        text(
            "SELECT id, area_code, tier, handler_role, deadline_hours, note FROM routing_rules "
            "ORDER BY area_code NULLS FIRST, array_position(ARRAY['grid','village','township'], tier::text)"
        )
    ).all()
    return [RoutingRuleInfo(*r) for r in rows]


def _routing_ctes(source: str) -> str:
    """CTEs routing every distinct ``(area_id, grid_id, tier)`` of relation ``source``.

    Ends with ``routed(area_id, grid_id, tier, rule_id, rule_area, handler_role,
    deadline_hours, assignee_id)``: the rule of the nearest area on the area's
    parent chain with that tier (else the default rule), and its handler — the
    grid's worker for ``grid_worker``, else (or when the grid has none) the person
    of that role in the nearest area of the chain (lowest id).
    """
    return (
        f"combos AS (SELECT DISTINCT area_id, grid_id, tier FROM {source}), "
        "chain AS (WITH RECURSIVE up AS (SELECT a.id AS start, a.id, a.code, "
        "a.parent_id, 0 AS n FROM admin_areas a "
        "WHERE a.id IN (SELECT area_id FROM combos) "
        "UNION ALL SELECT up.start, p.id, p.code, p.parent_id, up.n + 1 "
        "FROM admin_areas p JOIN up ON p.id = up.parent_id) "
        "SELECT start, id, code, n FROM up), "
        "rule AS (SELECT DISTINCT ON (c.area_id, c.grid_id, c.tier) c.area_id, c.grid_id, "
        "c.tier, r.id AS rule_id, r.area_code AS rule_area, r.handler_role, "
        "r.deadline_hours FROM combos c JOIN routing_rules r ON r.tier = c.tier "
        "LEFT JOIN chain ch ON ch.start = c.area_id AND ch.code = r.area_code "
        "WHERE r.area_code IS NULL OR ch.id IS NOT NULL "
        "ORDER BY c.area_id, c.grid_id, c.tier, ch.n NULLS LAST, r.id), "
        # materialized: once per combination, not once per row joined to it
        "routed AS MATERIALIZED (SELECT rule.*, coalesce(CASE WHEN rule.handler_role = 'grid_worker' "
        "THEN (SELECT g.worker_id FROM grids g WHERE g.id = rule.grid_id) END, "
        "(SELECT p.id FROM chain ch JOIN people p ON p.area_id = ch.id "
        "AND p.role = rule.handler_role WHERE ch.start = rule.area_id "
        "ORDER BY ch.n, p.id LIMIT 1)) AS assignee_id FROM rule)"
    )


def _person(session: Session, person_id: int | None) -> Person | None:
    if person_id is None:
        return None
    r = session.execute(
        text("SELECT external_id, name, role, work_phone FROM people WHERE id = :i"),
        {"i": person_id},
    ).first()
    return Person(*r) if r is not None else None


def _route_row(
    session: Session, area_id: int | None, grid_id: int | None, tier: str
) -> Any:
    row = session.execute(
        text(
            "WITH src AS (SELECT CAST(:a AS int) AS area_id, CAST(:g AS int) AS grid_id, "
            f"CAST(:t AS text) AS tier), {_routing_ctes('src')} "
            "SELECT rule_id, rule_area, handler_role, deadline_hours, assignee_id FROM routed"
        ),
        {"a": area_id, "g": grid_id, "t": tier},
    ).first()
    if row is None:
        raise NotFound(
            f"There is no routing rule for tier {tier!r} (not even a default one); "
            "add one (geo.store.events.set_routing_rule).",
            what="routing-rule",
        )
    return row


def route(
    session: Session, *, tier: str, area_id: int | None, grid_id: int | None
) -> Routing:
    """Who handles an event of ``tier`` in area ``area_id`` / grid ``grid_id``, and why."""
    r = _route_row(session, area_id, grid_id, tier)
    return routing_of(
        tier,
        r.rule_id,
        r.rule_area,
        r.handler_role,
        r.deadline_hours,
        _person(session, r.assignee_id),
    )


def routing_of(
    tier: str,
    rule_id: int,
    rule_area: str | None,
    handler_role: str,
    deadline_hours: int,
    person: Person | None,
    *,
    category: tuple[str, int | None] | None = None,
) -> Routing:
    """The :class:`Routing` of a rule and its handler, with the reason in words.

    ``category`` (code, deadline hours): a category with its own deadline
    overrides the rule's (as :func:`report_event` does).
    """
    rule = f"rule of area {rule_area}" if rule_area else "default rule"
    who = (
        f"{person.name} ({person.role} {person.id})"
        if person
        else f"nobody: no {handler_role} in the area's chain"
    )
    how = (
        "the grid's worker"
        if handler_role == "grid_worker"
        else f"the nearest {handler_role} up the area's chain"
    )
    reason = (
        f"{tier} matters go to {how} ({rule}: {tier} → {handler_role}, "
        f"{deadline_hours} h); assigned to {who}"
    )
    if category is not None and category[1]:
        deadline_hours = category[1]
        reason += (
            f"; category {category[0]} sets its own deadline of {deadline_hours} h"
        )
    return Routing(
        tier, rule_id, rule_area, handler_role, deadline_hours, person, reason
    )


# ---------------------------------------------------------------------------
# Reading events
# ---------------------------------------------------------------------------

_EVENT_SQL = (
    "SELECT e.id, e.external_id, e.version, e.status, e.tier, e.category_code, "
    "c.name AS category_name, c.class_name, e.description, e.reported_at, e.reported_by, "
    "e.reporter_kind, rp.external_id AS rp_id, rp.name AS rp_name, rp.role AS rp_role, "
    "rp.work_phone AS rp_phone, e.resident_name, e.resident_phone, e.address, "
    "ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat, e.located_by, h.external_id AS hh_id, "
    "h.address AS hh_address, g.code AS grid_code, e.plan_id, pl.version AS plan_version, "
    "v.code AS v_code, v.name AS v_name, t.code AS t_code, t.name AS t_name, "
    "ap.external_id AS ap_id, ap.name AS ap_name, ap.role AS ap_role, "
    "ap.work_phone AS ap_phone, e.rule_id, rr.area_code AS rule_area, e.deadline, "
    "(e.status IN ('reported', 'sorted', 'in_hand', 'returned') AND e.deadline < :now) "
    "AS overdue, e.escalated, e.escalation_level, e.settled_at, e.closed_at, "
    "e.satisfaction, e.satisfaction_comment, e.updated_at "
    "FROM events e JOIN event_categories c ON c.code = e.category_code "
    "LEFT JOIN people rp ON rp.id = e.reporter_person_id "
    "LEFT JOIN people ap ON ap.id = e.assignee_id "
    "LEFT JOIN households h ON h.id = e.household_id "
    "LEFT JOIN grids g ON g.id = e.grid_id LEFT JOIN plans pl ON pl.id = e.plan_id "
    "LEFT JOIN admin_areas v ON v.id = e.village_id "
    "LEFT JOIN admin_areas t ON t.id = e.township_id "
    "LEFT JOIN routing_rules rr ON rr.id = e.rule_id"
)


def _record(r: Any, log: tuple[EventLogEntry, ...] = ()) -> EventRecord:
    def person(prefix: str) -> Person | None:
        pid = getattr(r, f"{prefix}_id")
        if pid is None:
            return None
        return Person(
            pid,
            getattr(r, f"{prefix}_name"),
            getattr(r, f"{prefix}_role"),
            getattr(r, f"{prefix}_phone"),
        )

    return EventRecord(
        id=r.id,
        external_id=r.external_id,
        version=r.version,
        status=r.status,
        tier=r.tier,
        category_code=r.category_code,
        category_name=r.category_name,
        class_name=r.class_name,
        description=r.description,
        reported_at=r.reported_at,
        reported_by=r.reported_by,
        reporter_kind=r.reporter_kind,
        reporter=person("rp"),
        resident_name=r.resident_name,
        resident_phone=r.resident_phone,
        address=r.address,
        lon=r.lon,
        lat=r.lat,
        located_by=r.located_by,
        household_id=r.hh_id,
        household_address=r.hh_address,
        grid_code=r.grid_code,
        plan_id=r.plan_id,
        plan_version=r.plan_version,
        village_code=r.v_code,
        village_name=r.v_name,
        township_code=r.t_code,
        township_name=r.t_name,
        assignee=person("ap"),
        rule_id=r.rule_id,
        rule_area_code=r.rule_area,
        deadline=r.deadline,
        overdue=bool(r.overdue),
        escalated=r.escalated,
        escalation_level=r.escalation_level,
        settled_at=r.settled_at,
        closed_at=r.closed_at,
        satisfaction=r.satisfaction,
        satisfaction_comment=r.satisfaction_comment,
        updated_at=r.updated_at,
        log=log,
    )


def _now(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    return now if now.tzinfo is not None else now.replace(tzinfo=dt.UTC)


def _log(session: Session, event_id: int) -> tuple[EventLogEntry, ...]:
    rows = session.execute(
        text(
            "SELECT at, actor, action, from_status, to_status, note, details "
            "FROM event_log WHERE event_id = :e ORDER BY id"
        ),
        {"e": event_id},
    ).all()
    return tuple(EventLogEntry(*r) for r in rows)


def get_event(
    session: Session,
    event_id: int,
    *,
    with_log: bool = True,
    now: dt.datetime | None = None,
) -> EventRecord:
    """One event (with its log); :class:`~geo.errors.NotFound` when there is none."""
    r = session.execute(
        text(_EVENT_SQL + " WHERE e.id = :id"), {"id": event_id, "now": _now(now)}
    ).first()
    if r is None:
        raise NotFound(f"There is no event {event_id}.", what="event")
    return _record(r, _log(session, event_id) if with_log else ())


def _area_filter(session: Session, area_code: str, params: dict[str, Any]) -> str:
    """A condition on ``e``: the event lies in area ``area_code`` or below it."""
    area = session.execute(
        text("SELECT id FROM admin_areas WHERE code = :c"), {"c": area_code}
    ).scalar()
    if area is None:
        raise NotFound(f"There is no admin area {area_code!r}.", what="area")
    params["area"] = area
    return (
        "e.area_id IN (WITH RECURSIVE down AS (SELECT CAST(:area AS int) AS id "
        "UNION ALL SELECT a.id FROM admin_areas a JOIN down ON a.parent_id = down.id) "
        "SELECT id FROM down)"
    )


def list_events(
    session: Session,
    *,
    area_code: str | None = None,
    grid_code: str | None = None,
    status: str | None = None,
    tier: str | None = None,
    overdue: bool | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    assignee: str | None = None,
    limit: int = 100,
    offset: int = 0,
    now: dt.datetime | None = None,
) -> EventPage:
    """Events matching every filter given, newest first, and how many match in all.

    ``area_code``: in that area or below; ``grid_code``: in a grid of that code
    (any plan); ``since``/``until``: reported in ``[since, until)``;
    ``overdue``: open and past the deadline (at ``now``); ``assignee``: a
    person's external id.
    """
    params: dict[str, Any] = {"now": _now(now), "lim": limit, "off": offset}
    where = []
    if status is not None:
        if status not in STATUSES:
            raise InputError.one("events", f"unknown status {status!r}", field="status")
        where.append("e.status = :status")
        params["status"] = status
    if tier is not None:
        if tier not in TIERS:
            raise InputError.one("events", f"unknown tier {tier!r}", field="tier")
        where.append("e.tier = :tier")
        params["tier"] = tier
    if area_code is not None:
        where.append(_area_filter(session, area_code, params))
    if grid_code is not None:
        where.append("e.grid_id IN (SELECT id FROM grids WHERE code = :grid)")
        params["grid"] = grid_code
    if assignee is not None:
        where.append(
            "e.assignee_id IN (SELECT id FROM people WHERE external_id = :asg)"
        )
        params["asg"] = assignee
    if overdue is not None:
        cond = (
            "(e.status IN ('reported', 'sorted', 'in_hand', 'returned') "
            "AND e.deadline < :now)"
        )
        where.append(cond if overdue else f"NOT {cond}")
    if since is not None:
        where.append("e.reported_at >= :since")
        params["since"] = _now(since)
    if until is not None:
        where.append("e.reported_at < :until")
        params["until"] = _now(until)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    total = session.execute(
        text("SELECT count(*) FROM events e" + clause), params
    ).scalar_one()
    rows = session.execute(
        text(
            _EVENT_SQL + clause + " ORDER BY e.reported_at DESC, e.id DESC "
            "LIMIT :lim OFFSET :off"
        ),
        params,
    ).all()
    return EventPage([_record(r) for r in rows], int(total))


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------


def _area_levels(session: Session, area_id: int) -> tuple[int | None, int | None]:
    """The village (or community) and the township on ``area_id``'s chain."""
    r = session.execute(
        text(
            "WITH RECURSIVE up AS (SELECT id, level, parent_id, 0 AS n FROM admin_areas "
            "WHERE id = :a UNION ALL SELECT p.id, p.level, p.parent_id, up.n + 1 "
            "FROM admin_areas p JOIN up ON p.id = up.parent_id) "
            "SELECT (SELECT id FROM up WHERE level IN ('village', 'community') "
            "ORDER BY n LIMIT 1), (SELECT id FROM up WHERE level = 'township' "
            "ORDER BY n LIMIT 1)"
        ),
        {"a": area_id},
    ).one()
    return r[0], r[1]


def _person_id(session: Session, external_id: str | None, field: str) -> int | None:
    if external_id is None:
        return None
    pid = session.execute(
        text("SELECT id FROM people WHERE external_id = :e"), {"e": external_id}
    ).scalar()
    if pid is None:
        raise InputError.one("event", f"unknown person {external_id!r}", field=field)
    return int(pid)


def _category(session: Session, code: str) -> Any:
    row = session.execute(
        text(
            "SELECT code, name, default_tier, deadline_hours FROM event_categories "
            "WHERE code = :c"
        ),
        {"c": code},
    ).first()
    if row is None:
        raise InputError.one(
            "event",
            f"unknown category {code!r}; GET /events/categories lists them",
            field="category",
        )
    return row


def report_event(
    session: Session,
    *,
    category: str,
    actor: str,
    description: str | None = None,
    address: str | None = None,
    lon: float | None = None,
    lat: float | None = None,
    reporter: str | None = None,
    resident_name: str | None = None,
    resident_phone: str | None = None,
    reported_at: dt.datetime | None = None,
) -> EventRecord:
    """Record a new event and route it to the grid's worker (tier ``grid``).

    The place is resolved as ``/lookup`` does: the address (exact key, then a
    clear fuzzy match) gives the household and its grid; otherwise the point
    gives the grid containing it. An ambiguous address, or a place in no grid,
    is refused (:class:`~geo.errors.InputError` naming the field). ``reporter``
    is a person's external id; with ``resident_name``/``resident_phone`` the
    event is a resident's report taken by that person.

    Returns the stored event with its log and ``routing`` (where it went, why).
    """
    when = _now(reported_at)
    cat = _category(session, category)
    if address is not None and not address.strip():
        address = None
    if (lon is None) != (lat is None):
        raise InputError.one("event", "a point needs both lon and lat", field="lon")
    if address is None and lon is None:
        raise InputError.one(
            "event", "give an address or a point (lon, lat)", field="address"
        )
    reporter_id = _person_id(session, reporter, "reporter")
    kind = "resident" if (resident_name or resident_phone) else "person"
    household = grid = None
    located_by = ""
    problem: Problem | None = None
    if address is not None:
        found = lookup_address(session, address)
        best = found.best
        if best is not None and best.grid is not None:
            household, grid, located_by = best.household_id, best.grid, found.match
        elif found.match == "ambiguous":
            cands = "; ".join(
                f"{a.address} ({a.household_id})" for a in found.answers[:5]
            )
            problem = Problem(
                "event",
                f"the address {address!r} is ambiguous; candidates: {cands}. "
                "Give the full address or a point",
                field="address",
            )
        else:
            problem = Problem(
                "event",
                f"no household in a grid matches the address {address!r}",
                field="address",
            )
    if grid is None and lon is not None and lat is not None:
        try:
            found = lookup_point(session, lon, lat)
        except ValueError as exc:
            raise InputError.one("event", str(exc), field="lon") from None
        best = found.best
        if best is not None and best.grid is not None:
            grid, located_by, problem = best.grid, "point", None
        elif problem is None:
            near = found.nearest
            problem = Problem(
                "event",
                f"the point ({lon}, {lat}) is in no grid of the published plans"
                + (
                    f"; the nearest grid is {near.grid.code} ({near.dist_m:.0f} m away)"
                    if near
                    else ""
                ),
                field="lon",
            )
    if grid is None:
        assert problem is not None
        raise InputError([problem])
    area_id = session.execute(
        text("SELECT area_id FROM grids WHERE id = :g"), {"g": grid.id}
    ).scalar_one()
    village_id, township_id = _area_levels(session, area_id)
    hh_id = (
        session.execute(
            text("SELECT id FROM households WHERE external_id = :e"), {"e": household}
        ).scalar()
        if household is not None
        else None
    )
    routing = route(session, tier="grid", area_id=area_id, grid_id=grid.id)
    hours = cat.deadline_hours or routing.deadline_hours
    assignee_id = (
        _person_id(session, routing.assignee.id, "assignee")
        if routing.assignee
        else None
    )
    event_id = session.execute(
        text(
            "INSERT INTO events (reported_at, reporter_kind, reporter_person_id, "
            "resident_name, resident_phone, reported_by, description, address, geom, "
            "located_by, household_id, plan_id, grid_id, area_id, village_id, township_id, "
            "category_code, tier, assignee_id, rule_id, deadline, status, updated_at) "
            "VALUES (:at, :kind, :rep, :rn, :rph, :by, :d, :addr, "
            "coalesce(ST_SetSRID(ST_MakePoint(CAST(:lon AS float8), CAST(:lat AS float8)), 4326), "
            "(SELECT geom FROM households WHERE id = :hh)), :loc, :hh, :plan, :grid, "
            ":area, :vil, :town, :cat, 'grid', :asg, :rule, :deadline, 'reported', :at) "
            "RETURNING id"
        ),
        {
            "at": when,
            "kind": kind,
            "rep": reporter_id,
            "rn": resident_name,
            "rph": resident_phone,
            "by": actor,
            "d": description,
            "addr": address,
            "lon": lon,
            "lat": lat,
            "loc": located_by,
            "hh": hh_id,
            "plan": grid.plan_id,
            "grid": grid.id,
            "area": area_id,
            "vil": village_id,
            "town": township_id,
            "cat": category,
            "asg": assignee_id,
            "rule": routing.rule_id,
            "deadline": when + dt.timedelta(hours=hours),
        },
    ).scalar_one()
    details = {
        "grid": grid.code,
        "plan_id": grid.plan_id,
        "located_by": located_by,
        "tier": "grid",
        "assignee": routing.assignee.id if routing.assignee else None,
        "rule_id": routing.rule_id,
        "deadline_hours": hours,
    }
    _append_log(
        session,
        event_id,
        actor,
        "report",
        from_status=None,
        to_status="reported",
        note=None,
        details=details,
        at=when,
    )
    if cat.deadline_hours:
        routing = routing_of(
            routing.tier,
            routing.rule_id,
            routing.rule_area_code,
            routing.handler_role,
            routing.deadline_hours,
            routing.assignee,
            category=(category, cat.deadline_hours),
        )
    rec = get_event(session, event_id, now=when)
    return _with_routing(rec, routing)


def _with_routing(rec: EventRecord, routing: Routing | None) -> EventRecord:
    return EventRecord(**{**rec.__dict__, "routing": routing})


def _append_log(
    session: Session,
    event_id: int,
    actor: str,
    action: str,
    *,
    from_status: str | None,
    to_status: str,
    note: str | None,
    details: dict[str, Any],
    at: dt.datetime,
) -> None:
    session.execute(
        text(
            "INSERT INTO event_log (event_id, at, actor, action, from_status, to_status, "
            "note, details) VALUES (:e, :at, :actor, :action, :f, :t, :note, "
            "CAST(:details AS jsonb))"
        ),
        {
            "e": event_id,
            "at": at,
            "actor": actor,
            "action": action,
            "f": from_status,
            "t": to_status,
            "note": note,
            "details": json.dumps(details, ensure_ascii=False, default=str),
        },
    )


# ---------------------------------------------------------------------------
# Transitions
# ---------------------------------------------------------------------------


def transition(
    session: Session,
    event_id: int,
    action: str,
    *,
    actor: str,
    expected_version: int | None = None,
    tier: str | None = None,
    note: str | None = None,
    satisfaction: int | None = None,
    comment: str | None = None,
    now: dt.datetime | None = None,
) -> EventRecord:
    """Take ``action`` on an event (``sort``, ``accept``, ``settle``, ``evaluate``,
    ``close``, ``return``); the event as it is now, with its log and routing.

    The event's row is locked first. ``expected_version`` (when given) must be
    its current version, else :class:`~geo.errors.EventConflict` (nothing is
    written). An action its status does not allow raises
    :class:`~geo.errors.IllegalTransition`.

    * ``sort``: sets ``tier`` (default: the category's usual tier); a new tier
      routes the event to that tier's handler with a fresh deadline.
    * ``evaluate``: ``satisfaction`` 1–5 (required) and ``comment``.
    * ``return``: ``note`` required; the event goes back one tier (to that
      tier's handler), or from the grid to its reporter; a settled event is
      unsettled.
    """
    at = _now(now)
    row = session.execute(
        text(
            "SELECT e.id, e.status, e.tier, e.version, e.area_id, e.grid_id, "
            "e.reporter_person_id, c.default_tier, c.deadline_hours AS cat_hours "
            "FROM events e JOIN event_categories c ON c.code = e.category_code "
            "WHERE e.id = :id FOR UPDATE OF e"
        ),
        {"id": event_id},
    ).first()
    if row is None:
        raise NotFound(f"There is no event {event_id}.", what="event")
    if expected_version is not None and row.version != expected_version:
        raise EventConflict(event_id, expected_version, row.version)
    to = check_transition(event_id, row.status, action)
    sets: dict[str, Any] = {}
    details: dict[str, Any] = {}
    routing: Routing | None = None
    if action == "sort":
        new_tier = tier or row.default_tier
        if new_tier not in TIERS:
            raise InputError.one(
                "transition",
                f"unknown tier {new_tier!r}; one of {', '.join(TIERS)}",
                field="tier",
            )
        details["tier"] = new_tier
        if new_tier != row.tier or row.status == "returned":
            routing = route(
                session, tier=new_tier, area_id=row.area_id, grid_id=row.grid_id
            )
            sets.update(_routing_sets(session, routing, row.cat_hours, at))
            sets["tier"] = new_tier
            details.update(
                assignee=routing.assignee.id if routing.assignee else None,
                rule_id=routing.rule_id,
            )
    elif tier is not None:
        raise InputError.one(
            "transition", f"only 'sort' takes a tier, not {action!r}", field="tier"
        )
    if action == "evaluate":
        if satisfaction is None or not 1 <= satisfaction <= 5:
            raise InputError.one(
                "transition",
                "an evaluation needs a satisfaction of 1 to 5",
                field="satisfaction",
            )
        sets.update(satisfaction=satisfaction, satisfaction_comment=comment)
        details["satisfaction"] = satisfaction
    elif satisfaction is not None:
        raise InputError.one(
            "transition",
            f"only 'evaluate' takes a satisfaction, not {action!r}",
            field="satisfaction",
        )
    if action == "settle":
        sets["settled_at"] = at
    if action == "close":
        sets["closed_at"] = at
    if action == "return":
        if not (note and note.strip()):
            raise InputError.one(
                "transition", "a return needs a note saying why", field="note"
            )
        back = lower_tier(row.tier)
        if back is not None:
            routing = route(
                session, tier=back, area_id=row.area_id, grid_id=row.grid_id
            )
            sets.update(_routing_sets(session, routing, row.cat_hours, at))
            sets["tier"] = back
            details.update(
                tier=back, assignee=routing.assignee.id if routing.assignee else None
            )
        elif row.reporter_person_id is not None:
            sets["assignee_id"] = row.reporter_person_id
            details["to"] = "reporter"
        if row.status == "settled":
            sets["settled_at"] = None
    sets.update(status=to, updated_at=at)
    assign = ", ".join(f"{k} = :{k}" for k in sets)
    session.execute(
        text(f"UPDATE events SET {assign}, version = version + 1 WHERE id = :id"),
        {**sets, "id": event_id},
    )
    _append_log(
        session,
        event_id,
        actor,
        action,
        from_status=row.status,
        to_status=to,
        note=note,
        details=details,
        at=at,
    )
    return _with_routing(get_event(session, event_id, now=at), routing)


def _routing_sets(
    session: Session, routing: Routing, cat_hours: int | None, at: dt.datetime
) -> dict[str, Any]:
    hours = cat_hours or routing.deadline_hours
    return {
        "assignee_id": _person_id(session, routing.assignee.id, "assignee")
        if routing.assignee
        else None,
        "rule_id": routing.rule_id,
        "deadline": at + dt.timedelta(hours=hours),
    }


# ---------------------------------------------------------------------------
# Escalation
# ---------------------------------------------------------------------------


def escalate_overdue(
    session: Session, *, now: dt.datetime | None = None, actor: str = "escalation"
) -> list[Escalation]:
    """Move every open event past its deadline one tier up (grid → village → township).

    Each is reassigned to the new tier's handler with a fresh deadline, flagged
    ``escalated`` (``escalation_level`` + 1), its version bumped and an
    ``escalate`` entry logged. Events at the top tier stay (they show as
    overdue). Rows locked by a transition in progress are skipped (the next
    run takes them). One statement; returns what it did.
    """
    at = _now(now)
    case = (
        "CASE e.tier "
        + " ".join(f"WHEN '{t}' THEN '{upper_tier(t)}'" for t in TIERS if upper_tier(t))
        + " END"
    )
    rows = session.execute(
        text(
            "WITH esc AS (SELECT e.id, e.area_id, e.grid_id, e.tier AS old_tier, "
            f"{case} AS tier, e.status, c.deadline_hours AS cat_hours "
            "FROM events e JOIN event_categories c ON c.code = e.category_code "
            "WHERE e.status IN ('reported', 'sorted', 'in_hand', 'returned') "
            "AND e.deadline < :now AND e.tier <> 'township' "
            "FOR UPDATE OF e SKIP LOCKED), "
            f"{_routing_ctes('esc')}, "
            "upd AS (UPDATE events e SET tier = esc.tier, assignee_id = r.assignee_id, "
            "rule_id = r.rule_id, deadline = CAST(:now AS timestamptz) "
            "+ make_interval(hours => coalesce(esc.cat_hours, r.deadline_hours)), "
            "escalated = true, escalation_level = e.escalation_level + 1, "
            "version = e.version + 1, updated_at = :now FROM esc JOIN routed r "
            "ON r.area_id IS NOT DISTINCT FROM esc.area_id "
            "AND r.grid_id IS NOT DISTINCT FROM esc.grid_id AND r.tier = esc.tier "
            "WHERE e.id = esc.id RETURNING e.id, esc.old_tier, e.tier, e.status, "
            "e.assignee_id, e.deadline, e.rule_id), "
            "logged AS (INSERT INTO event_log (event_id, at, actor, action, from_status, "
            "to_status, note, details) SELECT upd.id, :now, :actor, 'escalate', upd.status, "
            "upd.status, 'past its deadline: escalated from ' || upd.old_tier || ' to ' "
            "|| upd.tier, jsonb_build_object('from_tier', upd.old_tier, 'tier', upd.tier, "
            "'assignee', p.external_id, 'rule_id', upd.rule_id) "
            "FROM upd LEFT JOIN people p ON p.id = upd.assignee_id RETURNING event_id) "
            "SELECT upd.id, upd.old_tier, upd.tier, p.external_id, upd.deadline "
            "FROM upd LEFT JOIN people p ON p.id = upd.assignee_id ORDER BY upd.id"
        ),
        {"now": at, "actor": actor},
    ).all()
    return [Escalation(*r) for r in rows]


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------

_GROUP_SQL: Final = {
    "grid": ("e.grid_id", "JOIN grids k ON k.id = s.key", "k.code", "k.name"),
    "village": (
        "e.village_id",
        "JOIN admin_areas k ON k.id = s.key",
        "k.code",
        "k.name",
    ),
    "township": (
        "e.township_id",
        "JOIN admin_areas k ON k.id = s.key",
        "k.code",
        "k.name",
    ),
}


def event_statistics(
    session: Session,
    *,
    group_by: str = "grid",
    area_code: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    now: dt.datetime | None = None,
    use_rollup: bool = True,
) -> EventStats:
    """Counts and outcomes per grid, village or township (or ``all``).

    Per group: events by status and by tier, open and overdue ones, settled
    ones and the median hours from report to settlement, the share of settled
    events settled inside the grid (tier ``grid``, never escalated: 小事不出格)
    and inside the village (tier ``grid`` or ``village``: 大事不出村), and the
    mean satisfaction of rated ones. Filters: ``area_code`` (that area and
    below), reported in ``[since, until)``. ``total`` covers every group.
    Aggregates only: nothing about a household or a resident.

    Without ``since``/``until`` (and unless ``use_rollup`` is False) the figures
    come from the rollup the triggers of migration 0006 keep
    (:mod:`geo.store.event_rollup`): the same counts, shares and ratings, the
    median within one histogram bucket (0.1 h under a day, 1 h under 30 days,
    24 h beyond). With ``since``/``until`` one query over the events.
    """
    if group_by not in STATS_GROUPS:
        raise InputError.one(
            "statistics",
            f"group_by must be one of {', '.join(STATS_GROUPS)}",
            field="group_by",
        )
    params: dict[str, Any] = {"now": _now(now)}
    where = []
    if area_code is not None:
        where.append(_area_filter(session, area_code, params))
    if since is not None:
        where.append("e.reported_at >= :since")
        params["since"] = _now(since)
    if until is not None:
        where.append("e.reported_at < :until")
        params["until"] = _now(until)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    rows: Sequence[Any]
    if use_rollup and since is None and until is None:
        rows = rollup_stats_rows(
            session, group_by, " AND ".join(where), params, params["now"]
        )
    else:
        rows = _direct_stats_rows(session, group_by, clause, params)
    return _stats(group_by, rows)


def _direct_stats_rows(
    session: Session, group_by: str, clause: str, params: dict[str, Any]
) -> Sequence[Any]:
    settled = "e.settled_at IS NOT NULL AND e.status IN ({})".format(
        ", ".join(f"'{s}'" for s in SETTLED_STATUSES)
    )
    open_ = "e.status IN ({})".format(", ".join(f"'{s}'" for s in OPEN_STATUSES))
    aggs = [
        "count(*) AS total",
        *(f"count(*) FILTER (WHERE e.status = '{s}') AS st_{s}" for s in STATUSES),
        *(f"count(*) FILTER (WHERE e.tier = '{t}') AS ti_{t}" for t in TIERS),
        f"count(*) FILTER (WHERE {open_}) AS open",
        f"count(*) FILTER (WHERE {open_} AND e.deadline < :now) AS overdue",
        f"count(*) FILTER (WHERE {settled}) AS settled",
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM "
        f"e.settled_at - e.reported_at) / 3600.0) FILTER (WHERE {settled}) AS median_h",
        f"count(*) FILTER (WHERE {settled} AND e.tier = 'grid' AND NOT e.escalated) AS in_grid",
        f"count(*) FILTER (WHERE {settled} AND e.tier IN ('grid', 'village')) AS in_village",
        "avg(e.satisfaction) AS mean_sat",
        "count(e.satisfaction) AS rated",
    ]
    key = _GROUP_SQL[group_by][0] if group_by != "all" else "NULL::int"
    sql = (
        f"WITH s AS (SELECT {key} AS key, grouping({key}) AS is_total, "
        f"{', '.join(aggs)} FROM events e{clause} GROUP BY ROLLUP ({key})) "
    )
    if group_by == "all":
        sql += "SELECT s.*, NULL AS code, NULL AS name FROM s"
    else:
        _, join, code, name = _GROUP_SQL[group_by]
        sql += (
            f"SELECT s.*, {code} AS code, {name} AS name FROM s "
            f"LEFT {join} ORDER BY s.is_total, {code} NULLS LAST"
        )
    return session.execute(text(sql), params).all()


def _stats(group_by: str, rows: Sequence[Any]) -> EventStats:
    def stats_row(r: Any) -> StatsRow:
        n_settled = int(r.settled)
        return StatsRow(
            code=r.code,
            name=r.name,
            total=int(r.total),
            by_status={s: int(getattr(r, f"st_{s}")) for s in STATUSES},
            by_tier={t: int(getattr(r, f"ti_{t}")) for t in TIERS},
            open=int(r.open),
            overdue=int(r.overdue),
            settled=n_settled,
            median_hours_to_settle=round(float(r.median_h), 2)
            if r.median_h is not None
            else None,
            settled_in_grid_share=round(r.in_grid / n_settled, 4)
            if n_settled
            else None,
            settled_in_village_share=round(r.in_village / n_settled, 4)
            if n_settled
            else None,
            mean_satisfaction=round(float(r.mean_sat), 2)
            if r.mean_sat is not None
            else None,
            rated=int(r.rated),
        )

    totals = [r for r in rows if r.is_total]
    groups = [stats_row(r) for r in rows if not r.is_total]
    if totals:
        total = stats_row(totals[0])
    else:  # no events at all: ROLLUP still yields the grand total, but be safe
        total = StatsRow(
            None,
            None,
            0,
            dict.fromkeys(STATUSES, 0),
            dict.fromkeys(TIERS, 0),
            0,
            0,
            0,
            None,
            None,
            None,
            None,
            0,
        )
    if group_by == "all":
        groups = []
    return EventStats(group_by, groups, total)


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
