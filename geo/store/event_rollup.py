"""Event statistics from the rollup that triggers keep (migration 0006).

:func:`geo.store.events.event_statistics` reads these instead of scanning every
event when it can (no ``since``/``until``): three short queries over tables of
a few thousand rows, whatever the number of events.

* counts by status and tier, open, settled, settled in the grid / village and
  the ratings come from ``event_rollup`` and are exact;
* overdue events (open, deadline before ``now``) are the open events of
  ``event_open_deadlines`` whose deadline falls on a UTC day before ``now``'s,
  plus the open events whose deadline lies between 00:00 UTC that day and
  ``now``, counted in ``events`` (partial index on open events' deadlines): exact;
* the median hours from report to settlement comes from ``event_settle_hist``:
  the values at the middle ranks are placed evenly inside their bucket and
  interpolated as ``percentile_cont`` does, so the median is within one bucket
  width of the exact one (**0.1 h** for durations under a day, **1 h** under 30
  days, **24 h** beyond; :data:`MEDIAN_PRECISION_H`).

Every function takes an ``e``-aliased condition (``where``) on the area columns
(the same as the direct query's area filter) and returns rows with the
attributes of the direct statistics query.
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.orm import Session

__all__ = ["MEDIAN_PRECISION_H", "bucket_width_h", "rollup_stats_rows"]

#: Upper bounds (hours to settle) and the median's precision below each.
MEDIAN_PRECISION_H: Final = ((24.0, 0.1), (720.0, 1.0), (float("inf"), 24.0))

_STATUSES: Final = (
    "reported",
    "sorted",
    "in_hand",
    "settled",
    "evaluated",
    "closed",
    "returned",
)
_TIERS: Final = ("grid", "village", "township")
_OPEN: Final = "('reported', 'sorted', 'in_hand', 'returned')"
_SETTLED: Final = "('settled', 'evaluated', 'closed')"

_KEY: Final = {
    "grid": "nullif(e.grid_id, 0)",
    "village": "nullif(e.village_id, 0)",
    "township": "nullif(e.township_id, 0)",
    "all": "NULL::int",
}
_NAMES: Final = {
    "grid": "LEFT JOIN grids k ON k.id = s.key",
    "village": "LEFT JOIN admin_areas k ON k.id = s.key",
    "township": "LEFT JOIN admin_areas k ON k.id = s.key",
}


_WIDTH: Final = "CASE WHEN bucket < 240 THEN 0.1 WHEN bucket < 7200 THEN 1 ELSE 24 END"

_RAW_KEY: Final = {
    "grid": "e.grid_id",
    "village": "e.village_id",
    "township": "e.township_id",
    "all": "0",
}

#: The median of each group (``key``, 0 for none) and of all (``is_total``) from
#: the histogram, in two steps so that the sorts and windows see few rows:
#: the day-wide coarse bucket (``cb``) holding the middle ranks, then the fine
#: buckets inside it only. Within a fine bucket its values are taken as evenly
#: spread; the two middle ranks are interpolated as ``percentile_cont`` does.
_MEDIAN_SQL: Final = (
    "WITH f AS MATERIALIZED (SELECT {key} AS k, bucket, "
    "floor(bucket / 240::float8)::int AS cb, n::int AS n "
    "FROM event_settle_hist e WHERE n > 0{where}), "
    "c AS (SELECT k, grouping(k) AS is_total, cb, sum(n)::int AS n FROM f "
    "GROUP BY GROUPING SETS ((k, cb), (cb))), "
    "cc AS (SELECT k, is_total, cb, n, sum(n) OVER (PARTITION BY k, is_total "
    "ORDER BY cb) - n AS before, (sum(n) OVER (PARTITION BY k, is_total) - 1) "
    "/ 2.0 AS p FROM c), "
    "pick AS (SELECT k, is_total, cb, before, p FROM cc "
    "WHERE floor(p) >= before AND floor(p) < before + n "
    "OR ceil(p) >= before AND ceil(p) < before + n), "
    "fine AS (SELECT pick.k, 0 AS is_total, pick.cb, pick.before, pick.p, f.bucket, "
    "f.n FROM pick JOIN f ON f.k = pick.k AND f.cb = pick.cb WHERE pick.is_total = 0 "
    "UNION ALL SELECT NULL, 1, pick.cb, pick.before, pick.p, f.bucket, sum(f.n)::int "
    "FROM pick JOIN f ON f.cb = pick.cb WHERE pick.is_total = 1 "
    "GROUP BY pick.cb, pick.before, pick.p, f.bucket), "
    "w AS (SELECT k, is_total, bucket, n, p, before + sum(n) OVER (PARTITION BY k, "
    "is_total, cb ORDER BY bucket) - n AS before FROM fine), "
    "v AS (SELECT k, is_total, max(p - floor(p)) AS frac, "
    "max(CASE WHEN floor(p) >= before AND floor(p) < before + n THEN "
    f"bucket / 10.0 + ({_WIDTH}) * (floor(p) - before + 0.5) / n END) AS lo, "
    "max(CASE WHEN ceil(p) >= before AND ceil(p) < before + n THEN "
    f"bucket / 10.0 + ({_WIDTH}) * (ceil(p) - before + 0.5) / n END) AS hi "
    "FROM w GROUP BY k, is_total) "
    "SELECT nullif(k, 0) AS key, is_total, lo + frac * (hi - lo) AS median_h FROM v"
)


def bucket_width_h(hours: float) -> float:
    """The width of the histogram bucket holding ``hours`` (the median's precision)."""
    return next(w for bound, w in MEDIAN_PRECISION_H if hours < bound)


def _and(where: str) -> str:
    return f" AND {where}" if where else ""


def rollup_stats_rows(
    session: Session,
    group_by: str,
    where: str,
    params: dict[str, Any],
    now: dt.datetime,
) -> list[Any]:
    """The rows of the statistics (groups then the total) from the rollup."""
    key = _KEY[group_by]

    def n(cond: str, name: str) -> str:
        return f"CAST(coalesce(sum(n) FILTER (WHERE {cond}), 0) AS bigint) AS {name}"

    counts = [
        n("true", "total"),
        *(n(f"status = '{s}'", f"st_{s}") for s in _STATUSES),
        *(n(f"tier = '{t}'", f"ti_{t}") for t in _TIERS),
        n(f"status IN {_OPEN}", "open"),
        n(f"settled AND status IN {_SETTLED}", "settled"),
        n(
            f"settled AND status IN {_SETTLED} AND tier = 'grid' AND NOT escalated",
            "in_grid",
        ),
        n(
            f"settled AND status IN {_SETTLED} AND tier IN ('grid', 'village')",
            "in_village",
        ),
        "sum(sat_sum)::numeric / nullif(sum(sat_n), 0) AS mean_sat",
        "CAST(coalesce(sum(sat_n), 0) AS bigint) AS rated",
    ]
    sql = (
        f"WITH s AS (SELECT {key} AS key, grouping({key}) AS is_total, "
        f"{', '.join(counts)} FROM event_rollup e WHERE n <> 0{_and(where)} "
        f"GROUP BY ROLLUP ({key})) "
    )
    if group_by == "all":
        sql += "SELECT s.*, NULL AS code, NULL AS name FROM s"
    else:
        sql += (
            f"SELECT s.*, k.code, k.name FROM s {_NAMES[group_by]} "
            "ORDER BY s.is_total, k.code NULLS LAST"
        )
    rows = session.execute(text(sql), params).mappings().all()
    day = now.astimezone(dt.UTC).date()
    p = {
        **params,
        "today": day,
        "day_start": dt.datetime.combine(day, dt.time(), dt.UTC),
        "now": now,
    }
    overdue = {
        (r.key, r.is_total): int(r.overdue or 0)
        for r in session.execute(
            text(
                f"SELECT {key} AS key, grouping({key}) AS is_total, sum(n) AS overdue "
                "FROM (SELECT e.grid_id, e.area_id, e.village_id, e.township_id, e.n "
                "FROM event_open_deadlines e WHERE e.n <> 0 "
                f"AND e.day < CAST(:today AS date){_and(where)} UNION ALL "
                "SELECT coalesce(e.grid_id, 0), coalesce(e.area_id, 0), "
                "coalesce(e.village_id, 0), coalesce(e.township_id, 0), 1 FROM events e "
                f"WHERE e.status IN {_OPEN} AND e.deadline >= :day_start "
                f"AND e.deadline < :now{_and(where)}) e GROUP BY ROLLUP ({key})"
            ),
            p,
        )
    }
    medians = {
        (r.key, r.is_total): r.median_h
        for r in session.execute(
            text(_MEDIAN_SQL.format(key=_RAW_KEY[group_by], where=_and(where))),
            params,
        )
    }
    out = []
    for r in rows:
        k = (r["key"], r["is_total"])
        out.append(
            SimpleNamespace(**r, overdue=overdue.get(k, 0), median_h=medians.get(k))
        )
    return out
