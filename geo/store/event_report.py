"""Reporting an event: the place resolved as ``/lookup`` does, then routed.

:func:`report_event` resolves the place with the same lookups as ``/lookup``
(:func:`geo.store.lookup.lookup_address` / :func:`~geo.store.lookup.lookup_point`)
and stores the household, grid, plan and areas *of that moment*: a later
redraw never moves an old event. Every change to an event is logged in
``event_log`` (:func:`_append_log`; append-only in the database).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import InputError, Problem
from geo.store.event_queries import EventRecord, _now, _with_routing, get_event
from geo.store.event_routing import route, routing_of
from geo.store.lookup import lookup_address, lookup_point

__all__ = [
    "report_event",
]


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
