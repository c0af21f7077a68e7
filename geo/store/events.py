"""Events (三事分流) in PostGIS: report, route, transition, list, escalate, count, import.

Every function takes a session first and never commits (the caller does). This
module gathers the public names of the modules that hold them, one concern each:

* :mod:`geo.store.event_routing` — the catalogue and the routing rules; who
  handles an event of a tier in an area, and why (:func:`route`).
* :mod:`geo.store.event_queries` — one event with its log (:func:`get_event`),
  pages of events by filter (:func:`list_events`).
* :mod:`geo.store.event_report` — :func:`report_event` resolves the place with
  the same lookups as ``/lookup`` and stores the household, grid, plan and areas
  *of that moment*: a later redraw never moves an old event.
* :mod:`geo.store.event_transitions` — :func:`transition` (following
  :data:`geo.events.TRANSITIONS`, the row locked and its ``version`` checked)
  and :func:`escalate_overdue`.
* :mod:`geo.store.event_stats` — :func:`event_statistics`, one SQL statement.
* :mod:`geo.store.event_import` — :func:`import_events` COPYs a prepared frame
  into a staging table and inserts it all-or-nothing.
"""

from __future__ import annotations

from geo.store.event_import import BULK_ROWS, ImportReport, import_events
from geo.store.event_queries import (
    EventLogEntry,
    EventPage,
    EventRecord,
    get_event,
    list_events,
)
from geo.store.event_report import report_event
from geo.store.event_routing import (
    Person,
    Routing,
    RoutingRuleInfo,
    list_categories,
    list_routing_rules,
    load_catalogue,
    route,
    routing_of,
    set_routing_rule,
)
from geo.store.event_stats import (
    STATS_GROUPS,
    EventStats,
    StatsRow,
    event_statistics,
)
from geo.store.event_transitions import Escalation, escalate_overdue, transition

__all__ = [
    "BULK_ROWS",
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
