"""The sample county's year of matters, loaded as the main job loads it (issue 13):
imported set-based at household points, routed to the right handlers, the overdue
ones escalated once."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import EmptyInput
from geo.services import generate_and_save, load_sample, load_sample_events, publish
from geo.store.event_views import (
    event_counts_by_grid,
    open_events_by_grid,
    open_events_on_plan,
)
from geo.store.events import event_statistics, list_events

END = dt.datetime(2026, 6, 1, 9, 30, tzinfo=dt.UTC)
COUNTY = "330803000000"


def _county(session: Session) -> int:
    load_sample(session, 1_500, seed=2)
    saved = generate_and_save(session, COUNTY, with_staff=True)
    publish(session, saved.plan_id)
    return saved.plan_id


def test_no_published_grid_no_sample(session: Session) -> None:
    load_sample(session, 300, seed=2)
    with pytest.raises(EmptyInput, match="publish a plan first"):
        load_sample_events(session, end=END)


def test_sample_events_loaded_and_routed(session: Session) -> None:
    plan_id = _county(session)
    done = load_sample_events(session, seed=4, end=END)
    assert done.imported.inserted == 300 and done.end == END
    q = session.execute(
        text(
            "SELECT count(*), count(grid_id), count(household_id), count(village_id), "
            "count(township_id), count(assignee_id), count(*) FILTER (WHERE escalated) "
            "FROM events"
        )
    ).one()
    assert q[:6] == (300, 300, 300, 300, 300, 300)
    assert q[6] == done.escalated
    # each tier's events are with the right person: the grid's worker, the
    # village committee of the event's village, the office of its township
    wrong = session.execute(
        text(
            "SELECT count(*) FROM events e JOIN people p ON p.id = e.assignee_id "
            "LEFT JOIN grids g ON g.id = e.grid_id WHERE NOT CASE e.tier "
            "WHEN 'grid' THEN p.id = g.worker_id "
            "WHEN 'village' THEN p.role = 'village_committee' AND p.area_id = e.village_id "
            "ELSE p.role = 'township_office' AND p.area_id = e.township_id END"
        )
    ).scalar_one()
    assert wrong == 0
    # escalated ones were logged; after the load only the top tier is overdue
    logged = session.execute(
        text("SELECT count(*) FROM event_log WHERE action = 'escalate'")
    ).scalar_one()
    assert logged == done.escalated
    overdue = list_events(session, overdue=True, now=END, limit=500).items
    assert all(e.tier == "township" for e in overdue)

    stats = event_statistics(session, group_by="township", now=END)
    t = stats.total
    assert t.total == 300 and sum(r.total for r in stats.rows) == 300
    assert t.settled > 0.9 * 300 and t.by_tier["grid"] > t.by_tier["township"]
    assert 3.5 < (t.mean_satisfaction or 0) < 4.7
    assert 0.3 < (t.settled_in_grid_share or 0) < (t.settled_in_village_share or 0)

    # per grid of today's plan: the open ones (public counts) and everything
    per_grid = open_events_by_grid(session, plan_id, now=END)
    assert per_grid["open"].sum() == t.open
    assert per_grid["overdue"].sum() == t.overdue
    points = open_events_on_plan(session, plan_id, now=END)
    assert len(points) == t.open
    assert not {"description", "address", "resident_name"} & set(points.columns)
    audit = event_counts_by_grid(session, plan_id, now=END)
    assert audit["events"].sum() == 300
    assert audit["households"].sum() == 1_500
    assert (audit["settled_in_grid"] <= audit["settled_in_village"]).all()
