"""The viewer's events layer over HTTP (issue 13): open events per grid for everyone
(counts only), the events themselves for keys that handle them."""

from __future__ import annotations

from collections.abc import Iterator

import api_support as support
import event_map_support as evm
import pytest
from api_support import ApiData, assert_problem
from fastapi.testclient import TestClient

from api.app import create_app
from geo.store.settings import Settings

api_data = support.api_data


@pytest.fixture(scope="module")
def events(api_data: ApiData) -> evm.MapEvents:
    return evm.load_events(api_data)


@pytest.fixture(scope="module")
def client(api_data: ApiData, events: evm.MapEvents) -> Iterator[TestClient]:
    # escalation off: the counts must not move under the test
    settings = Settings(database_url=api_data.url, escalate_every_s=0)
    with TestClient(create_app(settings)) as c:
        yield c


def _no_private(body: str, events: evm.MapEvents) -> None:
    leaked = [v for v in events.private if v in body]
    assert leaked == [], leaked[:5]


def test_counts_per_grid_are_public_and_private_free(
    client: TestClient, api_data: ApiData, events: evm.MapEvents
) -> None:
    assert events.overdue >= 1 and events.open > events.overdue
    r = client.get("/map/events/grids", params={"plan": api_data.plan})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"plan", "grids", "open", "overdue"}
    assert sum(body["open"]) == events.open
    assert sum(body["overdue"]) == events.overdue
    assert sum(1 for n in body["overdue"] if n) == events.overdue_grids
    assert all(
        o >= d >= 0 and o > 0
        for o, d in zip(body["open"], body["overdue"], strict=True)
    )
    _no_private(r.text, events)
    assert r.headers["cache-control"] == "no-store"


def test_the_events_themselves_need_a_handlers_key(
    client: TestClient, api_data: ApiData, events: evm.MapEvents
) -> None:
    url, params = "/map/events", {"plan": api_data.plan}
    assert_problem(client.get(url, params=params), 401)
    assert_problem(
        client.get(url, params=params, headers={"X-API-Key": api_data.viewer}), 403
    )
    for key in (events.worker, api_data.planner):
        r = client.get(url, params=params, headers={"X-API-Key": key})
        assert r.status_code == 200, r.text
        body = r.json()
        rows = body["events"]
        assert len(rows) == events.open
        assert sum(row[6] for row in rows) == events.overdue
        assert {row[4] for row in rows} <= {"reported", "sorted", "in_hand", "returned"}
        assert all(0 <= row[2] < len(body["grids"]) for row in rows)
        _no_private(r.text, events)  # no resident, address or description
        assert r.headers["cache-control"] == "private, no-store"


def test_unknown_plan_is_404(client: TestClient) -> None:
    assert_problem(client.get("/map/events/grids", params={"plan": 999_999}), 404)
    assert_problem(client.get("/map/events/grids", params={"plan": 0}), 422)


def test_the_page_fetches_counts_and_says_which_key_handles_events(
    client: TestClient, api_data: ApiData, events: evm.MapEvents
) -> None:
    html = client.get("/map").text
    assert '"eventsUrl":"/map/events/grids"' in html
    assert '"eventPointsUrl":"/map/events"' in html
    assert "GridMap.events(" in html
    _no_private(html, events)
    for key, role in ((api_data.viewer, "viewer"), (events.worker, "worker")):
        r = client.get(
            "/map/households",
            params={"plan": api_data.plan},
            headers={"X-API-Key": key},
        )
        assert r.status_code == 200 and r.headers["x-gridmap-key-role"] == role
