"""``POST /events``'s one-statement hot path (issue 13, ≥ 500 reports/s) answers
exactly what the reference path (``report_event`` in a session) answers: the same
body for the same input — Chinese addresses, points in WGS 84 and GCJ-02,
residents, a category with its own deadline — and the same problems for what only
the reference path decides (fuzzy, ambiguous or unknown addresses, points outside
every grid, unknown codes, keys)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import events_support as ev
import pytest
from api_support import assert_problem, auth
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.app import create_app
from api.routes import events as routes
from geo.crs import wgs84_to_gcj02
from geo.store import event_hotpath
from geo.store.db import make_engine
from geo.store.settings import Settings

RESIDENT = {"name": "刘阿姨", "phone": "13800001111"}
# what differs between two reports of the same thing: the event, the time
VOLATILE = ("id", "reported_at", "deadline", "updated_at", "links")


@pytest.fixture(scope="module")
def engine(db_url: str) -> Iterator[Engine]:
    e = make_engine(db_url)
    try:
        yield e
    finally:
        e.dispose()


world = ev.world


@pytest.fixture(scope="module")
def client(world: ev.World, db_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=db_url, escalate_every_s=0))
    with TestClient(app) as c:
        yield c


@pytest.fixture
def slow_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Records every report that went the reference way."""
    calls: list[dict[str, Any]] = []
    real = routes._report_in_session

    def spy(engine: Engine, args: dict[str, Any], key: Any) -> Any:
        calls.append(args)
        return real(engine, args, key)

    monkeypatch.setattr(routes, "_report_in_session", spy)
    return calls


def _post(client: TestClient, key: str, body: dict[str, Any]) -> Any:
    return client.post("/events", json=body, headers=auth(key))


def _reference(
    client: TestClient, key: str, body: dict[str, Any], mp: pytest.MonkeyPatch
) -> Any:
    """The answer with the hot path switched off."""
    with mp.context() as m:
        m.setattr(event_hotpath, "report_params", lambda **kw: None)
        return _post(client, key, body)


def _stable(answer: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in answer.items() if k not in VOLATILE}
    out["log"] = [{k: v for k, v in x.items() if k != "at"} for x in answer["log"]]
    return out


def _stored(engine: Engine, event_id: int) -> tuple[Any, ...]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT reporter_kind, reporter_person_id, resident_name, resident_phone, "
                "reported_by, description, address, ST_AsText(geom), located_by, "
                "household_id, plan_id, grid_id, area_id, village_id, township_id, "
                "category_code, tier, assignee_id, rule_id, deadline - reported_at, "
                "status, updated_at = reported_at, version FROM events WHERE id = :i"
            ),
            {"i": event_id},
        ).one()
        log = conn.execute(
            text(
                "SELECT actor, action, from_status, to_status, note, details, "
                "at = (SELECT reported_at FROM events WHERE id = :i) "
                "FROM event_log WHERE event_id = :i"
            ),
            {"i": event_id},
        ).all()
    return (tuple(row), [tuple(r) for r in log])


_LON, _LAT = ev.WEST_BOX[0] + 0.05, ev.WEST_BOX[1] + 0.05
_GCJ = tuple(float(v) for v in wgs84_to_gcj02(_LON, _LAT))

SAME_ANSWERS = {
    "chinese address, resident, reporter": {
        "category": "010101",
        "description": "楼上夜间噪音扰民",
        "address": ev.east_address(3),
        "reporter": "GW-E",
        "resident": RESIDENT,
    },
    "address only, category with its own deadline": {
        "category": "010204",
        "address": ev.west_address(4),
    },
    "address written differently (same canonical key)": {
        "category": "010101",
        "address": "平安镇西山村一组５号",
    },
    "wgs84 point": {"category": "020101", "lon": _LON, "lat": _LAT, "reporter": "TO-1"},
    "gcj02 point, resident without reporter": {
        "category": "010102",
        "lon": _GCJ[0],
        "lat": _GCJ[1],
        "crs": "gcj02",
        "resident": {"name": "老张"},
        "description": "漏水",
    },
    "address and point (the point is stored)": {
        "category": "010101",
        "address": ev.east_address(2),
        "lon": ev.EAST_BOX[0] + 0.01,
        "lat": ev.EAST_BOX[1] + 0.01,
    },
}


@pytest.mark.parametrize("case", list(SAME_ANSWERS))
def test_hot_path_answers_and_stores_what_the_reference_path_does(
    client: TestClient,
    world: ev.World,
    engine: Engine,
    slow_calls: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    body = SAME_ANSWERS[case]
    fast = _post(client, world.worker, body)
    assert fast.status_code == 201, fast.text
    assert slow_calls == []  # it did take the hot path
    ref = _reference(client, world.worker, body, monkeypatch)
    assert ref.status_code == 201, ref.text
    assert len(slow_calls) == 1
    a, b = fast.json(), ref.json()
    assert a["id"] != b["id"]
    assert fast.headers["location"] == f"/events/{a['id']}"
    assert _stable(a) == _stable(b)
    assert _stored(engine, a["id"]) == _stored(engine, b["id"])
    # and it reads back the same as GET /events/{id} says
    got = client.get(f"/events/{a['id']}", headers=auth(world.worker)).json()
    assert {k: v for k, v in got.items() if k != "routing"} == {
        k: v for k, v in a.items() if k != "routing"
    }


def test_the_rollup_counts_hot_path_reports(
    client: TestClient, world: ev.World, slow_calls: list[dict[str, Any]]
) -> None:
    before = client.get("/events/stats", params={"group_by": "all"}).json()
    r = _post(
        client, world.worker, {"category": "010101", "address": ev.east_address(6)}
    )
    assert r.status_code == 201 and slow_calls == []
    after = client.get("/events/stats", params={"group_by": "all"}).json()
    assert after["total"]["total"] == before["total"]["total"] + 1
    assert after["total"]["by_status"]["reported"] == (
        before["total"]["by_status"]["reported"] + 1
    )


REFERENCE_DECIDES = {
    "fuzzy address (a typo)": (
        {"category": "010101", "address": "平安镇东山村1组3号楼"},
        None,
    ),
    "unknown address": ({"category": "010101", "address": "幸福路99号"}, 422),
    "point outside every grid": (
        {"category": "010101", "lon": 121.0, "lat": 31.0},
        422,
    ),
    "unknown category": (
        {"category": "999999", "address": ev.east_address(1)},
        422,
    ),
    "unknown reporter": (
        {"category": "010101", "address": ev.east_address(1), "reporter": "NOBODY"},
        422,
    ),
}


@pytest.mark.parametrize("case", list(REFERENCE_DECIDES))
def test_what_the_hot_path_cannot_decide_goes_the_reference_way(
    client: TestClient,
    world: ev.World,
    slow_calls: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    body, status = REFERENCE_DECIDES[case]
    fast = _post(client, world.worker, body)
    ref = _reference(client, world.worker, body, monkeypatch)
    assert len(slow_calls) == 2  # both went the reference way
    if status is None:  # decided: the same answer
        assert fast.status_code == ref.status_code
        if fast.status_code == 201:
            assert _stable(fast.json()) == _stable(ref.json())
        return
    assert assert_problem(fast, status) == assert_problem(ref, status)


def test_keys_are_checked_first_and_the_same_way(
    client: TestClient, world: ev.World, slow_calls: list[dict[str, Any]]
) -> None:
    good = {"category": "010101", "address": ev.east_address(1)}
    bad = {"category": "010101", "nonsense": True}
    assert assert_problem(client.post("/events", json=bad), 401)["type"].endswith(
        "missing-key"
    )
    wrong = "gm_0123abcd_" + "x" * 40
    for body in (good, bad):
        p = assert_problem(client.post("/events", json=body, headers=auth(wrong)), 401)
        assert p["type"].endswith("invalid-key")
        p = assert_problem(
            client.post("/events", json=body, headers=auth(world.viewer)), 403
        )
        assert p["type"].endswith("forbidden")
    p = assert_problem(
        client.post("/events", json=good, headers={"X-API-Key": "not-a-key"}), 401
    )
    assert p["type"].endswith("invalid-key")
    assert assert_problem(_post(client, world.worker, bad), 422)
    r = client.post("/events", json=good, headers={"X-API-Key": world.planner})
    assert r.status_code == 201 and r.json()["log"][0]["actor"].startswith(
        "planner key"
    )
    assert slow_calls == []
