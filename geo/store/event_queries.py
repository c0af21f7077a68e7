"""Reading events: one event with its log, and pages of events by filter."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import InputError, NotFound
from geo.events.flow import (
    STATUSES,
    TIERS,
)
from geo.store.event_routing import Person, Routing

__all__ = [
    "EventLogEntry",
    "EventPage",
    "EventRecord",
    "get_event",
    "list_events",
]


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


def _with_routing(rec: EventRecord, routing: Routing | None) -> EventRecord:
    return EventRecord(**{**rec.__dict__, "routing": routing})
