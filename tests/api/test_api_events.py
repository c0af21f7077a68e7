"""Events over HTTP (issue 13): report, list (JSON/GeoJSON), read, transitions with
optimistic concurrency, public statistics without residents' data, problems for
bad input."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import events_support as ev
import pytest
from api_support import assert_problem, auth
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from api.escalation import Escalator
from geo.store import events as store
from geo.store.db import make_engine, session_scope
from geo.store.settings import Settings

RESIDENT = {"name": "刘阿姨", "phone": "13800001111"}


@pytest.fixture(scope="module")
def world(db_url: str) -> Iterator[ev.World]:
    engine = make_engine(db_url)
    try:
        yield ev.load_world(engine)
    finally:
        ev.clear_world(engine)
        engine.dispose()


@pytest.fixture(scope="module")
def client(world: ev.World, db_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=db_url, escalate_every_s=0))
    with TestClient(app) as c:
        yield c


def _report(client: TestClient, key: str, **body: Any) -> Any:
    payload = {
        "category": "010101",
        "description": "楼上夜间噪音",
        "address": ev.east_address(1),
        "reporter": "GW-E",
        "resident": RESIDENT,
    }
    payload.update(body)
    return client.post("/events", json=payload, headers=auth(key))


def test_report_says_where_it_went_and_why(client: TestClient, world: ev.World) -> None:
    r = _report(client, world.worker)
    assert r.status_code == 201, r.text
    e = r.json()
    assert r.headers["location"] == f"/events/{e['id']}"
    assert (e["status"], e["tier"], e["grid"], e["version"]) == (
        "reported",
        "grid",
        "EV11-001",
        1,
    )
    assert e["plan_id"] == world.plan_id and e["village"]["code"] == ev.EAST
    assert e["assignee"]["id"] == "GW-E" and e["assignee"]["name"] == "王网格"
    routing = e["routing"]
    assert routing["tier"] == "grid" and routing["handler_role"] == "grid_worker"
    assert routing["rule_area"] is None and routing["deadline_hours"] == 72
    assert "default rule" in routing["reason"]
    reported = dt.datetime.fromisoformat(e["reported_at"])
    assert dt.datetime.fromisoformat(e["deadline"]) - reported == dt.timedelta(hours=72)
    # the key handles events: it sees the resident and the household
    assert e["resident"] == RESIDENT and e["household"]["id"] == "E1"
    assert e["log"][0]["actor"].startswith("worker key ")
    # a point in GCJ-02 works too
    lon, lat = ev.WEST_BOX[0] + 0.05, ev.WEST_BOX[1] + 0.05
    from geo.crs import wgs84_to_gcj02

    g_lon, g_lat = wgs84_to_gcj02(lon, lat)
    p = _report(
        client,
        world.planner,
        address=None,
        lon=float(g_lon),
        lat=float(g_lat),
        crs="gcj02",
        resident=None,
    )
    assert p.status_code == 201, p.text
    assert p.json()["grid"] == "EV12-001" and p.json()["resident"] is None


def test_keys_that_do_not_handle_events_are_refused(
    client: TestClient, world: ev.World
) -> None:
    body = {"category": "010101", "address": ev.east_address(1)}
    assert_problem(client.post("/events", json=body), 401)
    assert_problem(client.post("/events", json=body, headers=auth("gm_bad")), 401)
    r = client.post("/events", json=body, headers=auth(world.viewer))
    assert "worker or planner" in assert_problem(r, 403)["detail"]
    for url in ("/events", "/events/1"):
        assert_problem(client.get(url), 401)
        assert_problem(client.get(url, headers=auth(world.viewer)), 403)
    assert_problem(client.post("/events/1/sort", json={"expected_version": 1}), 401)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"category": "999999"}, "category"),
        ({"address": "平安镇南山村9组99号"}, "address"),
        ({"address": None, "lon": 121.9, "lat": 30.1}, "lon"),
        ({"reporter": "NOBODY"}, "reporter"),
        ({"address": None}, "address or a point"),
        ({"address": None, "lon": 120.1}, "both lon and lat"),
        ({"address": None, "lon": 500, "lat": 30}, "lon"),
        ({"address": "   "}, "address or a point"),
        ({"category": ""}, "category"),
        ({"colour": "red"}, "colour"),
        ({"description": "长" * 5000}, "description"),
        ({"resident": {"name": "x", "age": 3}}, "age"),
        ({"crs": "bd09"}, "crs"),
    ],
)
def test_bad_reports_are_4xx_problems(
    client: TestClient, world: ev.World, body: dict[str, Any], where: str
) -> None:
    p = assert_problem(_report(client, world.worker, **body), 422)
    assert where in p["detail"] or where in json.dumps(p, ensure_ascii=False)


def test_bad_bodies_are_4xx(client: TestClient, world: ev.World) -> None:
    h = {**auth(world.worker), "content-type": "application/json"}
    assert_problem(client.post("/events", content=b"{not json", headers=h), 422)
    assert_problem(client.post("/events", content=b"[]", headers=h), 422)
    assert_problem(client.post("/events", content=b"", headers=h), 422)


def test_transitions_with_versions(client: TestClient, world: ev.World) -> None:
    e = _report(client, world.worker).json()
    url = f"/events/{e['id']}"
    h = auth(world.worker)
    s = client.post(
        f"{url}/sort", json={"expected_version": 1, "tier": "village"}, headers=h
    )
    assert s.status_code == 200, s.text
    s = s.json()
    assert (s["status"], s["tier"], s["version"]) == ("sorted", "village", 2)
    assert (
        s["assignee"]["id"] == "VC-E"
        and s["routing"]["handler_role"] == "village_committee"
    )
    # the same transition again with the old version: 409, nothing written
    stale = client.post(
        f"{url}/sort", json={"expected_version": 1, "tier": "township"}, headers=h
    )
    body = assert_problem(stale, 409)
    assert body["type"] == "/problems/event-conflict" and body["current_version"] == 2
    assert "version 2, not 1" in body["detail"]
    # an illegal transition: 409 naming the status and the allowed actions
    bad = client.post(f"{url}/settle", json={"expected_version": 2}, headers=h)
    body = assert_problem(bad, 409)
    assert body["type"] == "/problems/illegal-transition"
    assert (body["event_status"], body["action"]) == ("sorted", "settle")
    assert body["allowed"] == ["accept", "return"]
    assert f"event {e['id']} is 'sorted'" in body["detail"]
    v = 2
    for action, extra in [
        ("accept", {"by": "VC-E"}),
        ("settle", {"note": "已调解"}),
        ("close", {}),
    ]:
        r = client.post(
            f"{url}/{action}", json={"expected_version": v, **extra}, headers=h
        )
        assert r.status_code == 200, r.text
        v += 1
        if action == "settle":
            # satisfaction is the resident's: a staff key cannot rate (issue 23)
            rate = {"expected_version": v, "satisfaction": 4, "comment": "满意"}
            body = assert_problem(
                client.post(f"{url}/evaluate", json=rate, headers=h), 403
            )
            assert "cannot rate" in body["detail"]
    got = client.get(url, headers=auth(world.planner)).json()
    assert (got["status"], got["version"], got["satisfaction"]) == ("closed", 5, None)
    assert [x["action"] for x in got["log"]] == [
        "report",
        "sort",
        "accept",
        "settle",
        "close",
    ]
    assert got["log"][2]["actor"].endswith("for VC-E")


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("sort", {}, 422),  # no expected_version
        ("sort", {"expected_version": 0}, 422),
        ("sort", {"expected_version": 1, "tier": "county"}, 422),
        ("fly", {"expected_version": 1}, 422),
        ("sort", {"expected_version": 1, "satisfaction": 3}, 422),
        ("return", {"expected_version": 1}, 409),  # reported: cannot return
        ("sort", {"expected_version": 1, "unknown": 1}, 422),
    ],
)
def test_bad_transitions_are_4xx(
    client: TestClient, world: ev.World, path: str, body: dict[str, Any], status: int
) -> None:
    e = _report(client, world.worker).json()
    assert_problem(
        client.post(f"/events/{e['id']}/{path}", json=body, headers=auth(world.worker)),
        status,
    )
    again = client.get(f"/events/{e['id']}", headers=auth(world.worker)).json()
    assert again["version"] == 1


def test_return_needs_a_note_and_satisfaction_a_range(
    client: TestClient, world: ev.World
) -> None:
    e = _report(client, world.worker).json()
    h = auth(world.worker)
    client.post(f"/events/{e['id']}/sort", json={"expected_version": 1}, headers=h)
    p = assert_problem(
        client.post(
            f"/events/{e['id']}/return", json={"expected_version": 2}, headers=h
        ),
        422,
    )
    assert p["errors"][0]["field"] == "note"
    assert_problem(
        client.post(
            f"/events/{e['id']}/evaluate",
            json={"expected_version": 2, "satisfaction": 9},
            headers=h,
        ),
        422,
    )


@pytest.mark.parametrize("event_id", ["0", "-1", "999999999", str(2**70)])
def test_unknown_events_are_404(
    client: TestClient, world: ev.World, event_id: str
) -> None:
    h = auth(world.worker)
    assert_problem(client.get(f"/events/{event_id}", headers=h), 404)


def test_non_numeric_id_is_422(client: TestClient, world: ev.World) -> None:
    assert_problem(client.get("/events/abc", headers=auth(world.worker)), 422)


def test_list_filters_pages_and_geojson(client: TestClient, world: ev.World) -> None:
    _report(client, world.worker, address=ev.west_address(5))
    h = auth(world.worker)
    west = client.get("/events", params={"area": ev.WEST}, headers=h).json()
    assert west["total"] >= 1 and all(
        x["village"]["code"] == ev.WEST for x in west["items"]
    )
    page = client.get("/events", params={"limit": 1}, headers=h).json()
    assert len(page["items"]) == 1 and page["total"] > 1
    assert page["links"][0]["rel"] == "next" and "offset=1" in page["links"][0]["href"]
    both = client.get(
        "/events", params={"status": "reported", "tier": "grid"}, headers=h
    )
    assert all(x["status"] == "reported" for x in both.json()["items"])
    gj = client.get(
        "/events", params={"format": "geojson", "grid": "EV12-001"}, headers=h
    )
    assert gj.headers["content-type"].startswith("application/geo+json")
    fc = gj.json()
    assert fc["type"] == "FeatureCollection" and fc["numberMatched"] >= 1
    f = fc["features"][0]
    assert f["geometry"]["type"] == "Point" and f["properties"]["grid"] == "EV12-001"
    acc = client.get("/events", headers={**h, "Accept": "application/geo+json"})
    assert acc.json()["type"] == "FeatureCollection"
    overdue = client.get("/events", params={"overdue": "true"}, headers=h).json()
    assert overdue["total"] == 0
    today = dt.date.today()
    span = client.get(
        "/events",
        params={
            "since": str(today - dt.timedelta(days=1)),
            "until": str(today + dt.timedelta(days=2)),
        },
        headers=h,
    ).json()
    assert span["total"] == client.get("/events", headers=h).json()["total"]
    for params in (
        {"status": "lost"},
        {"tier": "county"},
        {"limit": 0},
        {"limit": 5000},
        {"offset": -1},
        {"since": "yesterday"},
        {"format": "kml"},
        {"overdue": "maybe"},
    ):
        assert_problem(client.get("/events", params=params, headers=h), 422)
    assert_problem(client.get("/events", params={"area": "NOPE"}, headers=h), 404)


def test_public_statistics_carry_no_resident_or_household_data(
    client: TestClient, world: ev.World
) -> None:
    _report(client, world.worker, resident={"name": "隐私测试", "phone": "13999999999"})
    r = client.get("/events/stats")  # no key
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["total"]["total"] >= 1 and s["group_by"] == "grid"
    assert {g["code"] for g in s["groups"]} <= {"EV11-001", "EV12-001"}
    text_ = r.text
    for secret in (
        "隐私测试",
        "13999999999",
        RESIDENT["name"],
        "E1",
        ev.east_address(1),
        "王网格",
    ):
        assert secret not in text_
    for group_by in ("village", "township", "all"):
        g = client.get(
            "/events/stats", params={"group_by": group_by, "area": ev.TOWNSHIP}
        )
        assert (
            g.status_code == 200 and g.json()["total"]["total"] == s["total"]["total"]
        )
    v = client.get("/events/stats", params={"group_by": "village"}).json()
    assert {g["name"] for g in v["groups"]} <= {"东山村", "西山村"}
    assert_problem(client.get("/events/stats", params={"group_by": "household"}), 422)
    assert_problem(client.get("/events/stats", params={"area": "NOPE"}), 404)
    assert_problem(client.get("/events/stats", params={"since": "soon"}), 422)
    cats = client.get("/events/categories").json()
    assert len(cats) == 94 and cats[0]["class_name"] == "矛盾纠纷"


def test_the_server_escalates_overdue_events(world: ev.World, db_url: str) -> None:
    engine: Engine = make_engine(db_url)
    try:
        with session_scope(engine) as s:
            old = store.report_event(
                s,
                category="010101",
                actor="tests",
                address=ev.east_address(6),
                reported_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=4),
            )
        esc = Escalator(engine, every_s=0.05)
        esc.start()
        try:
            for _ in range(200):
                with session_scope(engine) as s:
                    if store.get_event(s, old.id).escalated:
                        break
                time.sleep(0.05)
        finally:
            esc.stop()
        assert esc.runs >= 1
        with session_scope(engine) as s:
            e = store.get_event(s, old.id)
        assert (e.tier, e.escalation_level) == ("village", 1)
        assert e.log[-1].actor == "escalation (server)"
        assert Escalator(engine, every_s=0).run_once() == []  # nothing left
        off = Escalator(engine, every_s=0)
        off.start()  # 0: never runs
        assert off._thread is None
    finally:
        engine.dispose()
