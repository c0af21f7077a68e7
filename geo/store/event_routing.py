"""The catalogue of matters and the routing rules: who handles an event, and why.

Routing is data (``routing_rules``): the rule of the nearest area on the
event's area chain (else the default rule) names the handler's role and the
tier's deadline; the handler is the grid's worker (role ``grid_worker``) or the
nearest person with that role on the chain. One set-based statement
(:func:`_routing_ctes`) routes one event or a million.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import InputError, NotFound, Problem
from geo.events.catalogue import Category, read_catalogue
from geo.events.flow import (
    TIERS,
)
from geo.vocabulary import PERSON_ROLES

__all__ = [
    "Person",
    "Routing",
    "RoutingRuleInfo",
    "list_categories",
    "list_routing_rules",
    "load_catalogue",
    "route",
    "routing_of",
    "set_routing_rule",
]


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
class RoutingRuleInfo:
    id: int
    area_code: str | None
    tier: str
    handler_role: str
    deadline_hours: int
    note: str | None


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
