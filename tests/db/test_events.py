"""Events (三事分流) in PostGIS: reporting, routing by tier, transitions, escalation,
concurrency, redraws and statistics (issue 13)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from typing import Any

import events_support as ev
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from geo.errors import EventConflict, IllegalTransition, InputError, NotFound
from geo.events import STATUSES, TRANSITIONS, allowed_actions
from geo.store import events as store
from geo.store.db import session_scope

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
ACTOR = "tests"


world = ev.world


@pytest.fixture
def committed(engine: Engine, world: ev.World) -> Iterator[Engine]:
    """For tests that commit events: they are forgotten afterwards."""
    yield engine
    ev.clear_events(engine)


def _report(session: Session, n: int = 1, **kw: Any) -> store.EventRecord:
    args: dict[str, Any] = {
        "category": "010101",
        "actor": ACTOR,
        "address": ev.east_address(n),
        "reporter": "GW-E",
        "reported_at": T0,
    }
    args.update(kw)
    return store.report_event(session, **args)


def _step(
    session: Session, e: store.EventRecord, action: str, **kw: Any
) -> store.EventRecord:
    kw.setdefault("now", e.updated_at + H)
    if action == "evaluate":
        kw.setdefault("satisfaction", 5)
    if action == "return":
        kw.setdefault("note", "not ours")
    return store.transition(
        session, e.id, action, actor=ACTOR, expected_version=e.version, **kw
    )


# -- schema ------------------------------------------------------------------------


def test_migration_loads_the_catalogue_and_default_rules(
    session: Session, world: ev.World
) -> None:
    cats = store.list_categories(session)
    assert len(cats) == 94
    assert len({c.subclass_code for c in cats}) == 23
    assert len({c.class_code for c in cats}) == 8
    assert {c.class_name for c in cats} >= {"矛盾纠纷", "社会治安", "安全隐患", "其他"}
    assert {c.default_tier for c in cats} == {"grid", "village", "township"}
    rules = {
        r.tier: r for r in store.list_routing_rules(session) if r.area_code is None
    }
    assert {t: (r.handler_role, r.deadline_hours) for t, r in rules.items()} == {
        "grid": ("grid_worker", 72),
        "village": ("village_committee", 168),
        "township": ("township_office", 360),
    }


def test_event_log_is_append_only(session: Session, world: ev.World) -> None:
    e = _report(session)
    for sql in (
        "UPDATE event_log SET note = 'rewritten' WHERE event_id = :e",
        "DELETE FROM event_log WHERE event_id = :e",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            with session.begin_nested():
                session.execute(text(sql), {"e": e.id})
    assert len(store.get_event(session, e.id).log) == 1


# -- reporting and routing ----------------------------------------------------------


def test_report_by_address_goes_to_the_grid_worker(
    session: Session, world: ev.World
) -> None:
    e = _report(session, 2, resident_name="刘阿姨", resident_phone="13800000000")
    assert (e.status, e.tier, e.version) == ("reported", "grid", 1)
    assert e.grid_code == "EV11-001" and e.plan_id == world.plan_id
    assert (e.household_id, e.household_address) == ("E2", ev.east_address(2))
    assert (e.village_code, e.township_code) == (ev.EAST, ev.TOWNSHIP)
    assert e.assignee is not None and e.assignee.id == "GW-E"
    assert e.reporter_kind == "resident" and e.resident_name == "刘阿姨"
    assert e.deadline == T0 + 72 * H
    assert e.located_by == "exact"
    assert e.routing is not None and e.routing.rule_area_code is None
    assert "default rule" in e.routing.reason and "王网格" in e.routing.reason
    assert [x.action for x in e.log] == ["report"]
    assert e.lon is not None and e.lat is not None  # the household's point


def test_report_by_point_and_category_deadline(
    session: Session, world: ev.World
) -> None:
    lon, lat = ev.WEST_BOX[0] + 0.05, ev.WEST_BOX[1] + 0.05
    # 家庭暴力: its own 24 h deadline
    e = _report(session, address=None, lon=lon, lat=lat, category="010204")
    assert e.grid_code == "EV12-001" and e.household_id is None
    assert e.assignee is not None and e.assignee.id == "GW-W"
    assert e.located_by == "point" and e.deadline == T0 + 24 * H
    assert e.routing is not None and "24 h" in e.routing.reason


@pytest.mark.parametrize(
    ("kw", "field", "words"),
    [
        ({"category": "999999"}, "category", "unknown category"),
        ({"address": "平安镇南山村9组99号"}, "address", "no household"),
        ({"address": None, "lon": 121.5, "lat": 30.1}, "lon", "nearest grid is"),
        ({"address": None}, "address", "give an address"),
        ({"address": None, "lon": 120.1}, "lon", "both lon and lat"),
        ({"address": None, "lon": 200.0, "lat": 30.0}, "lon", "longitude"),
        ({"reporter": "NOBODY"}, "reporter", "unknown person"),
    ],
)
def test_report_refuses_bad_input(
    session: Session, world: ev.World, kw: dict[str, Any], field: str, words: str
) -> None:
    before = session.execute(text("SELECT count(*) FROM events")).scalar_one()
    with pytest.raises(InputError) as info:
        _report(session, **kw)
    assert info.value.problems[0].field == field
    assert words in str(info.value)
    assert session.execute(text("SELECT count(*) FROM events")).scalar_one() == before


@pytest.mark.parametrize(
    ("tier", "handler", "hours"),
    [("grid", "GW-E", 72), ("village", "VC-E", 168), ("township", "TO-1", 360)],
)
def test_sorting_routes_by_tier(
    session: Session, world: ev.World, tier: str, handler: str, hours: int
) -> None:
    e = _report(session)
    s = _step(session, e, "sort", tier=tier)
    assert (s.status, s.tier) == ("sorted", tier)
    assert s.assignee is not None and s.assignee.id == handler
    if tier != "grid":
        assert s.deadline == e.updated_at + H + hours * H
        assert s.routing is not None and s.routing.handler_role in s.routing.reason
    else:
        assert s.deadline == e.deadline  # same tier: same handler and deadline
    assert s.log[-1].action == "sort" and s.log[-1].details["tier"] == tier


def test_sort_defaults_to_the_category_tier(session: Session, world: ev.World) -> None:
    e = _report(session, category="010103")  # 宅基地界址纠纷: 村事
    s = _step(session, e, "sort")
    assert s.tier == "village" and s.assignee is not None and s.assignee.id == "VC-E"


def test_area_rules_override_the_default_nearest_first(
    session: Session, world: ev.World
) -> None:
    store.set_routing_rule(
        session,
        area_code=ev.TOWNSHIP,
        tier="village",
        handler_role="township_office",
        deadline_hours=100,
    )
    east_rule = store.set_routing_rule(
        session,
        area_code=ev.EAST,
        tier="village",
        handler_role="village_committee",
        deadline_hours=48,
        note="东山村 answers in two days",
    )
    east = _step(session, _report(session), "sort", tier="village")
    west = _step(
        session, _report(session, address=ev.west_address(1)), "sort", tier="village"
    )
    assert east.routing is not None and west.routing is not None
    assert (east.routing.rule_id, east.routing.deadline_hours) == (east_rule, 48)
    assert east.rule_area_code == ev.EAST and east.assignee is not None
    assert east.assignee.id == "VC-E"
    # 西山村 has no rule of its own: its township's rule applies
    assert (west.rule_area_code, west.routing.deadline_hours) == (ev.TOWNSHIP, 100)
    assert west.assignee is not None and west.assignee.id == "TO-1"
    with pytest.raises(InputError, match="unknown area"):
        store.set_routing_rule(
            session,
            area_code="NOPE",
            tier="grid",
            handler_role="grid_worker",
            deadline_hours=1,
        )


# -- transitions ---------------------------------------------------------------------

#: A path from ``reported`` to each status.
PATHS = {
    "reported": [],
    "sorted": ["sort"],
    "in_hand": ["sort", "accept"],
    "settled": ["sort", "accept", "settle"],
    "evaluated": ["sort", "accept", "settle", "evaluate"],
    "closed": ["sort", "accept", "settle", "evaluate", "close"],
    "returned": ["sort", "return"],
}
ILLEGAL = [
    (status, action)
    for status in STATUSES
    for action in TRANSITIONS
    if action not in allowed_actions(status)
]


def test_the_paths_cover_every_status() -> None:
    assert set(PATHS) == set(STATUSES)
    assert len(ILLEGAL) > 20


@pytest.mark.parametrize(("status", "action"), ILLEGAL)
def test_every_illegal_transition_is_refused(
    session: Session, world: ev.World, status: str, action: str
) -> None:
    e = _report(session)
    for step in PATHS[status]:
        e = _step(session, e, step)
    assert e.status == status
    with pytest.raises(IllegalTransition) as info:
        _step(session, e, action)
    err = info.value
    assert (err.event_id, err.status, err.action) == (e.id, status, action)
    assert f"event {e.id}" in str(err) and repr(status) in str(err)
    assert repr(action) in str(err)
    after = store.get_event(session, e.id)
    assert (after.version, after.status, len(after.log)) == (
        e.version,
        status,
        len(e.log),
    )


def test_a_whole_life_is_logged(session: Session, world: ev.World) -> None:
    e = _report(session)
    for action in ["sort", "accept", "settle"]:
        e = _step(session, e, action, note=f"{action} done")
    e = _step(session, e, "evaluate", satisfaction=4, comment="很满意")
    e = _step(session, e, "close")
    assert (e.status, e.version, e.satisfaction) == ("closed", 6, 4)
    assert e.satisfaction_comment == "很满意"
    assert e.settled_at is not None and e.closed_at is not None
    assert [(x.action, x.from_status, x.to_status) for x in e.log] == [
        ("report", None, "reported"),
        ("sort", "reported", "sorted"),
        ("accept", "sorted", "in_hand"),
        ("settle", "in_hand", "settled"),
        ("evaluate", "settled", "evaluated"),
        ("close", "evaluated", "closed"),
    ]
    assert all(x.actor == ACTOR for x in e.log)


def test_return_goes_back_a_level_then_to_the_reporter(
    session: Session, world: ev.World
) -> None:
    e = _step(session, _report(session), "sort", tier="township")
    r = _step(session, e, "return", note="村里能办")
    assert (r.status, r.tier) == ("returned", "village")
    assert r.assignee is not None and r.assignee.id == "VC-E"
    assert r.log[-1].note == "村里能办"
    g = _step(session, _step(session, r, "sort", tier="grid"), "return", note="请补充")
    assert (g.status, g.tier) == ("returned", "grid")
    assert g.assignee is not None and g.assignee.id == "GW-E"  # the reporter
    with pytest.raises(InputError, match="note"):
        _step(session, _step(session, g, "sort", tier="grid"), "return", note=" ")


@pytest.mark.parametrize("rating", [0, 6, None])
def test_evaluation_needs_a_rating_of_1_to_5(
    session: Session, world: ev.World, rating: int | None
) -> None:
    e = _report(session)
    for step in PATHS["settled"]:
        e = _step(session, e, step)
    with pytest.raises(InputError) as info:
        store.transition(
            session,
            e.id,
            "evaluate",
            actor=ACTOR,
            satisfaction=rating,
            expected_version=e.version,
        )
    assert info.value.problems[0].field == "satisfaction"


def test_stale_version_and_unknown_event(session: Session, world: ev.World) -> None:
    e = _report(session)
    _step(session, e, "sort")
    with pytest.raises(EventConflict) as info:
        _step(session, e, "accept")  # e.version is 1; the event is at 2
    assert (info.value.expected, info.value.current) == (1, 2)
    with pytest.raises(NotFound):
        store.transition(session, 10**9, "sort", actor=ACTOR)


def test_concurrent_transitions_one_wins_the_other_conflicts(
    engine: Engine, committed: Engine
) -> None:
    """Two real transactions: the second waits on the row lock, then sees the
    first's new version and is refused; nothing of it is written."""
    with session_scope(engine) as s:
        e = _report(s)
    first = engine.connect()
    s1 = Session(bind=first)
    results: dict[str, Any] = {}
    try:
        s1.begin()
        store.transition(
            s1, e.id, "sort", actor="one", expected_version=1, tier="village"
        )

        def second() -> None:
            with session_scope(engine) as s2:
                s2.execute(text("SET LOCAL application_name = 'events-second'"))
                try:
                    store.transition(
                        s2,
                        e.id,
                        "sort",
                        actor="two",
                        expected_version=1,
                        tier="township",
                    )
                    results["second"] = "won"
                except EventConflict as exc:
                    results["second"] = exc

        t = threading.Thread(target=second)
        t.start()
        # wait until the second transaction is blocked on the first one's lock
        with engine.connect() as watch:
            for _ in range(600):
                waiting = watch.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name "
                        "= 'events-second' AND wait_event_type = 'Lock'"
                    )
                ).scalar_one()
                # a new transaction each time: pg_stat_activity is a snapshot
                watch.rollback()
                if waiting:
                    break
                time.sleep(0.05)
            assert waiting, "the second transaction never waited for the first"
        s1.commit()
        t.join(30)
    finally:
        s1.close()
        first.close()
    assert isinstance(results["second"], EventConflict)
    with session_scope(engine) as s:
        now = store.get_event(s, e.id)
    assert (now.version, now.tier, now.status) == (2, "village", "sorted")
    assert [x.actor for x in now.log] == [ACTOR, "one"]


def test_racing_transitions_exactly_one_succeeds(
    engine: Engine, committed: Engine
) -> None:
    with session_scope(engine) as s:
        e = _report(s, 3)
    barrier = threading.Barrier(4)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            with session_scope(engine) as s:
                store.transition(
                    s, e.id, "sort", actor=f"racer {i}", expected_version=1
                )
            result = "won"
        except EventConflict:
            result = "conflict"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["conflict", "conflict", "conflict", "won"]
    with session_scope(engine) as s:
        assert store.get_event(s, e.id).version == 2


# -- escalation ------------------------------------------------------------------------


def test_overdue_events_escalate_one_level_at_a_time(
    session: Session, world: ev.World
) -> None:
    e = _report(session)
    fresh = _report(session, 4, reported_at=T0 + 70 * H)
    settled = _report(session, 5)
    for step in PATHS["settled"]:
        settled = _step(session, settled, step)
    assert store.escalate_overdue(session, now=T0 + 71 * H) == []
    done = store.escalate_overdue(session, now=T0 + 73 * H)
    assert [(x.event_id, x.from_tier, x.to_tier, x.assignee) for x in done] == [
        (e.id, "grid", "village", "VC-E")
    ]
    up = store.get_event(session, e.id, now=T0 + 73 * H)
    assert (up.tier, up.escalated, up.escalation_level, up.version) == (
        "village",
        True,
        1,
        2,
    )
    assert up.deadline == T0 + 73 * H + 168 * H and not up.overdue
    assert up.log[-1].action == "escalate" and up.log[-1].actor == "escalation"
    assert up.log[-1].details == {
        "from_tier": "grid",
        "tier": "village",
        "assignee": "VC-E",
        "rule_id": up.rule_id,
    }
    later = T0 + 73 * H + 169 * H
    done = store.escalate_overdue(session, now=later)
    assert {(x.event_id, x.to_tier) for x in done} == {
        (e.id, "township"),
        (fresh.id, "village"),
    }
    top = store.get_event(session, e.id, now=later)
    assert (top.tier, top.escalation_level) == ("township", 2)
    assert top.assignee is not None and top.assignee.id == "TO-1"
    # the top tier stays (listed as overdue), settled events never escalate
    much_later = later + 400 * H
    assert {x.event_id for x in store.escalate_overdue(session, now=much_later)} == {
        fresh.id
    }
    assert store.get_event(session, e.id, now=much_later).overdue
    assert store.get_event(session, settled.id).tier == "grid"
    page = store.list_events(session, overdue=True, now=much_later)
    assert e.id in {x.id for x in page.items}


# -- redraws -----------------------------------------------------------------------------


def test_events_keep_their_grid_after_a_redraw(
    session: Session, world: ev.World
) -> None:
    old = _report(session, 1)
    new_plan = ev.save_and_publish(
        session,
        {
            "EV11-A": ((120.0, 30.0, 120.1, 30.2), ev.EAST, "GW-W"),
            "EV11-B": ((120.1, 30.0, 120.2, 30.2), ev.EAST, "GW-E"),
            "EV12-A": (ev.WEST_BOX, ev.WEST, "GW-W"),
        },
        dt.datetime(2026, 6, 1, tzinfo=dt.UTC),
    )
    kept = store.get_event(session, old.id)
    assert (kept.grid_code, kept.plan_id, kept.household_id) == (
        "EV11-001",
        world.plan_id,
        "E1",
    )
    assert kept.assignee is not None and kept.assignee.id == "GW-E"
    again = _report(session, 1, reported_at=dt.datetime(2026, 6, 2, tzinfo=dt.UTC))
    assert (again.grid_code, again.plan_id) == ("EV11-A", new_plan)
    assert again.assignee is not None and again.assignee.id == "GW-W"
    # listing by the old grid's code still finds the old event
    assert [x.id for x in store.list_events(session, grid_code="EV11-001").items] == [
        old.id
    ]


# -- listing and statistics ----------------------------------------------------------------


def test_list_filters_and_pages(session: Session, world: ev.World) -> None:
    ids = [_report(session, n, reported_at=T0 + n * H).id for n in range(1, 5)]
    west = _report(session, address=ev.west_address(2), reported_at=T0 + 9 * H)
    _step(session, store.get_event(session, ids[0]), "sort", tier="village")
    p = store.list_events(session, area_code=ev.EAST, limit=2)
    assert p.total == 4 and [x.id for x in p.items] == [ids[3], ids[2]]
    p2 = store.list_events(session, area_code=ev.EAST, limit=2, offset=2)
    assert [x.id for x in p2.items] == [ids[1], ids[0]]
    assert store.list_events(session, area_code=ev.TOWNSHIP).total == 5
    assert [x.id for x in store.list_events(session, tier="village").items] == [ids[0]]
    assert [x.id for x in store.list_events(session, status="sorted").items] == [ids[0]]
    assert [x.id for x in store.list_events(session, grid_code="EV12-001").items] == [
        west.id
    ]
    got = store.list_events(session, since=T0 + 2 * H, until=T0 + 4 * H)
    assert [x.id for x in got.items] == [ids[2], ids[1]]
    assert store.list_events(session, assignee="VC-E").total == 1
    with pytest.raises(NotFound):
        store.list_events(session, area_code="NOPE")
    with pytest.raises(InputError):
        store.list_events(session, status="lost")


def test_statistics_per_grid_village_township(
    session: Session, world: ev.World
) -> None:
    def life(
        n: int, tier: str | None, hours: int, rating: int | None, west: bool = False
    ):
        addr = ev.west_address(n) if west else ev.east_address(n)
        e = _report(session, address=addr)
        e = _step(session, e, "sort", tier=tier, now=T0 + H)
        e = _step(session, e, "accept", now=T0 + 2 * H)
        e = _step(session, e, "settle", now=T0 + hours * H)
        if rating:
            e = _step(
                session, e, "evaluate", satisfaction=rating, now=T0 + (hours + 1) * H
            )
        return e

    life(1, "grid", 10, 5)
    life(2, "grid", 20, 3)
    life(3, "village", 30, None)
    life(1, "township", 40, 4, west=True)
    open_east = _report(session, 4)
    escalated = _report(session, 5)
    store.escalate_overdue(session, now=T0 + 100 * H)  # both open ones → village
    escalated = store.get_event(session, escalated.id)
    for step in ["sort", "accept", "settle"]:
        escalated = _step(
            session, escalated, step, tier="village" if step == "sort" else None
        )
    assert open_east.id != escalated.id

    stats = store.event_statistics(session, group_by="village", now=T0 + 101 * H)
    by = {r.code: r for r in stats.rows}
    assert set(by) == {ev.EAST, ev.WEST}
    east = by[ev.EAST]
    assert east.name == "东山村" and east.total == 5
    assert east.settled == 4 and east.open == 1 and east.overdue == 0
    assert east.by_tier == {"grid": 2, "village": 3, "township": 0}
    assert east.by_status["settled"] == 2 and east.by_status["evaluated"] == 2
    assert east.settled_in_grid_share == 0.5  # 2 of 4 settled at grid, never escalated
    assert east.settled_in_village_share == 1.0
    assert east.median_hours_to_settle is not None
    assert east.mean_satisfaction == 4.0 and east.rated == 2
    west = by[ev.WEST]
    assert (west.total, west.settled_in_grid_share, west.settled_in_village_share) == (
        1,
        0.0,
        0.0,
    )
    assert stats.total.total == 6 and stats.total.settled == 5
    assert stats.total.mean_satisfaction == 4.0
    grids = store.event_statistics(session, group_by="grid")
    assert {r.code for r in grids.rows} == {"EV11-001", "EV12-001"}
    town = store.event_statistics(session, group_by="township")
    assert [(r.code, r.total) for r in town.rows] == [(ev.TOWNSHIP, 6)]
    only_west = store.event_statistics(session, group_by="all", area_code=ev.WEST)
    assert only_west.rows == [] and only_west.total.total == 1
    none = store.event_statistics(session, since=T0 + 1000 * H)
    assert none.rows == [] and none.total.total == 0
    assert none.total.median_hours_to_settle is None
    with pytest.raises(InputError):
        store.event_statistics(session, group_by="household")
