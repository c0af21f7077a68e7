"""Transitions of events and the escalation of overdue ones.

Transitions follow :data:`geo.events.TRANSITIONS`; the row is locked, its
``version`` checked against ``expected_version`` (:class:`~geo.errors.EventConflict`)
and every change is logged in ``event_log`` (append-only in the database).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import EventConflict, InputError, NotFound
from geo.events.flow import (
    TIERS,
    check_transition,
    lower_tier,
    upper_tier,
)
from geo.store.event_queries import EventRecord, _now, _with_routing, get_event
from geo.store.event_report import _append_log, _person_id
from geo.store.event_routing import Routing, _routing_ctes, route

__all__ = [
    "Escalation",
    "escalate_overdue",
    "transition",
]


@dataclass(frozen=True)
class Escalation:
    """One event :func:`escalate_overdue` moved up a tier."""

    event_id: int
    from_tier: str
    to_tier: str
    assignee: str | None
    deadline: dt.datetime


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
