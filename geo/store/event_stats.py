"""Statistics of events per grid, village or township: one SQL statement."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import InputError
from geo.events.flow import (
    OPEN_STATUSES,
    SETTLED_STATUSES,
    STATUSES,
    TIERS,
)
from geo.store.event_queries import _area_filter, _now
from geo.store.event_rollup import rollup_stats_rows

__all__ = [
    "STATS_GROUPS",
    "EventStats",
    "StatsRow",
    "event_statistics",
]


#: How :func:`event_statistics` can group events.
STATS_GROUPS: Final = ("grid", "village", "township", "all")


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
