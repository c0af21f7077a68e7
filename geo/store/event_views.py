"""Events read for maps, notebooks and the sample: per grid of a plan, and the
households matters can be placed at.

Every function takes a session (or connection) first and only reads.

* :func:`open_events_by_grid` — open and overdue events per grid of a plan
  (aggregates only: public maps show these).
* :func:`open_events_on_plan` — the open events themselves, placed on a plan's
  grids (category, status, tier, deadline; no resident data, no description, no
  address): what event handlers' keys draw on the viewer.
* :func:`event_counts_by_grid` — every event per grid of a plan (open, overdue,
  settled, settled inside the grid), for audits.
* :func:`published_households` — the households in published grids.

Events keep the grid of the moment they were reported; on a map of today's plan
they are placed by their point in today's grids (a redraw moves the map, never
the stored event).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

import geopandas as gpd
import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import NotFound
from geo.events.flow import OPEN_STATUSES, SETTLED_STATUSES

__all__ = [
    "event_counts_by_grid",
    "open_events_by_grid",
    "open_events_on_plan",
    "published_households",
]

_OPEN: Final = "e.status IN ({})".format(", ".join(f"'{s}'" for s in OPEN_STATUSES))
_SETTLED: Final = "e.status IN ({})".format(
    ", ".join(f"'{s}'" for s in SETTLED_STATUSES)
)


def _now(now: dt.datetime | None) -> dt.datetime:
    return now if now is not None else dt.datetime.now(dt.UTC)


def _check_plan(session: Session, plan_id: int) -> None:
    if (
        session.execute(
            text("SELECT 1 FROM plans WHERE id = :p"), {"p": plan_id}
        ).first()
        is None
    ):
        raise NotFound(f"There is no plan {plan_id}.", what="plan")


def _placed(where: str) -> str:
    """Events (``e``) matching ``where`` placed in the grid (``g``) of plan
    ``:plan`` containing their point; one grid each (the lowest code on a shared edge)."""
    return (
        "SELECT DISTINCT ON (e.id) e.*, g.code AS grid_code FROM events e "
        "JOIN grids g ON g.plan_id = :plan AND ST_Intersects(g.geom, e.geom) "
        f"WHERE {where} ORDER BY e.id, g.code"
    )


def open_events_by_grid(
    session: Session, plan_id: int, *, now: dt.datetime | None = None
) -> pd.DataFrame:
    """``grid_code``, ``open``, ``overdue`` of every grid of the plan with an open event.

    Open: reported, sorted, in hand or returned; overdue: open and past its
    deadline at ``now``. Counts only — nothing about a resident or a household.
    :class:`~geo.errors.NotFound` for an unknown plan.
    """
    _check_plan(session, plan_id)
    rows = session.execute(
        text(
            f"WITH o AS ({_placed(_OPEN)}) SELECT grid_code, count(*) AS open, "
            "count(*) FILTER (WHERE deadline < :now) AS overdue FROM o "
            "GROUP BY grid_code ORDER BY grid_code"
        ),
        {"plan": plan_id, "now": _now(now)},
    ).all()
    return pd.DataFrame(
        [tuple(r) for r in rows], columns=["grid_code", "open", "overdue"]
    ).astype({"open": int, "overdue": int})


def open_events_on_plan(
    session: Session, plan_id: int, *, now: dt.datetime | None = None
) -> pd.DataFrame:
    """The open events placed on the plan's grids, oldest first.

    Columns: ``id``, ``grid_code``, ``lon``, ``lat``, ``category_code``,
    ``category_name``, ``class_name``, ``status``, ``tier``, ``reported_at``,
    ``deadline``, ``overdue``, ``escalated``. No resident name or phone, no
    description, no address: for the map of event handlers.
    :class:`~geo.errors.NotFound` for an unknown plan.
    """
    _check_plan(session, plan_id)
    rows = session.execute(
        text(
            f"WITH o AS ({_placed(_OPEN)}) SELECT o.id, o.grid_code, ST_X(o.geom) AS lon, "
            "ST_Y(o.geom) AS lat, o.category_code, c.name AS category_name, c.class_name, "
            "o.status, o.tier, o.reported_at, o.deadline, o.deadline < :now AS overdue, "
            "o.escalated FROM o JOIN event_categories c ON c.code = o.category_code "
            "ORDER BY o.reported_at, o.id"
        ),
        {"plan": plan_id, "now": _now(now)},
    ).all()
    cols = [
        "id",
        "grid_code",
        "lon",
        "lat",
        "category_code",
        "category_name",
        "class_name",
        "status",
        "tier",
        "reported_at",
        "deadline",
        "overdue",
        "escalated",
    ]
    return pd.DataFrame([tuple(r) for r in rows], columns=cols)


def event_counts_by_grid(
    session: Session,
    plan_id: int,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> pd.DataFrame:
    """Every grid of the plan with its households and the events placed in it.

    Columns: ``grid_code``, ``area_code`` (its village/community),
    ``households``, ``events``, ``open``, ``overdue``, ``settled``,
    ``settled_in_grid`` (tier grid, never escalated: 小事不出格),
    ``settled_in_village`` (大事不出村), ``escalated``, ``mean_satisfaction``.
    Events reported in ``[since, until)`` when given. Aggregates only.
    """
    where = ["true"]
    params: dict[str, Any] = {"plan": plan_id, "now": _now(now)}
    if since is not None:
        where.append("e.reported_at >= :since")
        params["since"] = since
    if until is not None:
        where.append("e.reported_at < :until")
        params["until"] = until
    rows = session.execute(
        text(
            f"WITH ev AS ({_placed(' AND '.join(where))}), "
            "agg AS (SELECT grid_code, count(*) AS events, "
            f"count(*) FILTER (WHERE {_OPEN.replace('e.', 'ev.')}) AS open, "
            f"count(*) FILTER (WHERE {_OPEN.replace('e.', 'ev.')} AND ev.deadline < :now) "
            "AS overdue, "
            f"count(*) FILTER (WHERE {_SETTLED.replace('e.', 'ev.')}) AS settled, "
            f"count(*) FILTER (WHERE {_SETTLED.replace('e.', 'ev.')} AND ev.tier = 'grid' "
            "AND NOT ev.escalated) AS in_grid, "
            f"count(*) FILTER (WHERE {_SETTLED.replace('e.', 'ev.')} "
            "AND ev.tier IN ('grid', 'village')) AS in_village, "
            "count(*) FILTER (WHERE ev.escalated) AS escalated, "
            "avg(ev.satisfaction) AS mean_sat FROM ev GROUP BY grid_code), "
            "hh AS (SELECT grid_id, count(*) AS n FROM assignments WHERE plan_id = :plan "
            "GROUP BY grid_id) "
            "SELECT g.code, a.code, coalesce(hh.n, 0), coalesce(agg.events, 0), "
            "coalesce(agg.open, 0), coalesce(agg.overdue, 0), coalesce(agg.settled, 0), "
            "coalesce(agg.in_grid, 0), coalesce(agg.in_village, 0), "
            "coalesce(agg.escalated, 0), agg.mean_sat FROM grids g "
            "LEFT JOIN admin_areas a ON a.id = g.area_id "
            "LEFT JOIN hh ON hh.grid_id = g.id LEFT JOIN agg ON agg.grid_code = g.code "
            "WHERE g.plan_id = :plan ORDER BY g.code"
        ),
        params,
    ).all()
    cols = [
        "grid_code",
        "area_code",
        "households",
        "events",
        "open",
        "overdue",
        "settled",
        "settled_in_grid",
        "settled_in_village",
        "escalated",
        "mean_satisfaction",
    ]
    df = pd.DataFrame([tuple(r) for r in rows], columns=cols)
    for c in cols[2:-1]:
        df[c] = df[c].astype(int)
    df["mean_satisfaction"] = pd.to_numeric(df["mean_satisfaction"]).astype(float)
    return df


def published_households(session: Session) -> gpd.GeoDataFrame:
    """Households in a grid of a published plan: ``household_id`` (external id),
    ``address``, ``people``, ``area_code`` (village/community) and the point."""
    df = gpd.read_postgis(
        text(
            "SELECT DISTINCT ON (h.id) h.external_id AS household_id, h.address, "
            "h.people, a.code AS area_code, h.geom FROM households h "
            "JOIN assignments s ON s.household_id = h.id "
            "JOIN plans p ON p.id = s.plan_id AND p.status = 'published' "
            "JOIN admin_areas a ON a.id = h.area_id "
            "WHERE h.geom IS NOT NULL AND h.address IS NOT NULL ORDER BY h.id"
        ),
        session.connection(),
        geom_col="geom",
    )
    return df.rename_geometry("geometry")
