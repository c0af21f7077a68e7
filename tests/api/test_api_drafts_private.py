"""A draft's grids are a planner's: anonymous, viewer and worker keys get 404 for
them wherever a plan id is taken (features, one feature, tiles, the viewer's
layers), while published and archived plans stay public (issue 26)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import api_support as support
import pytest
import shapely
from api_support import LI_ROOT, ApiData, assert_problem, auth
from fastapi.testclient import TestClient

from geo.store.db import make_engine, session_scope
from geo.store.keys import create_key
from geo.store.plans import save_generated_plan

api_data = support.api_data
client = support.client


@pytest.fixture(scope="module")
def draft(api_data: ApiData) -> Iterator[tuple[int, str]]:
    """A draft plan of Vaduz (never published) and a worker key."""
    _, _, li = support.plans()
    engine = make_engine(api_data.url)
    try:
        with session_scope(engine) as s:
            plan_id = save_generated_plan(s, LI_ROOT, li, name="Vaduz, draft")
            worker = create_key(s, "worker", name="drafts test")
    finally:
        engine.dispose()
    yield plan_id, worker


def _tile(lon: float, lat: float, z: int) -> str:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return f"/tiles/{z}/{x}/{y}.pbf"


def test_draft_grids_need_a_planner_key(
    client: TestClient, api_data: ApiData, draft: tuple[int, str]
) -> None:
    plan_id, worker = draft
    planner = auth(api_data.planner)
    mine = client.get(
        "/collections/grids/items", params={"plan": plan_id}, headers=planner
    )
    assert mine.status_code == 200, mine.text
    feats = mine.json()["features"]
    assert feats and {f["properties"]["plan_status"] for f in feats} == {"draft"}
    grid_id = feats[0]["id"]
    centre = shapely.geometry.shape(feats[0]["geometry"]).representative_point()
    tile = _tile(centre.x, centre.y, 12)
    assert client.get(tile, params={"plan": plan_id}, headers=planner).content
    r = client.get(f"/collections/grids/items/{grid_id}", headers=planner)
    assert r.status_code == 200
    assert (
        client.get(
            "/map/events/grids", params={"plan": plan_id}, headers=planner
        ).status_code
        == 200
    )

    for who in ({}, auth(api_data.viewer), auth(worker)):
        for url, params in (
            ("/collections/grids/items", {"plan": plan_id}),
            (f"/collections/grids/items/{grid_id}", {}),
            (tile, {"plan": plan_id}),
            ("/map/events/grids", {"plan": plan_id}),
        ):
            r = client.get(url, params=params, headers=who)
            assert assert_problem(r, 404)["type"].startswith("/problems/unknown-")
    # keys that read households or events still do not see a draft's
    r = client.get(
        "/map/households", params={"plan": plan_id}, headers=auth(api_data.viewer)
    )
    assert_problem(r, 404)
    assert_problem(
        client.get("/map/events", params={"plan": plan_id}, headers=auth(worker)), 404
    )
    r = client.get("/map/households", params={"plan": plan_id}, headers=planner)
    assert r.status_code == 200


def test_published_and_archived_plans_stay_public(
    client: TestClient, api_data: ApiData, draft: tuple[int, str]
) -> None:
    for plan_id, status in (
        (api_data.plan, "published"),
        (api_data.old_plan, "archived"),
    ):
        r = client.get("/collections/grids/items", params={"plan": plan_id, "limit": 5})
        assert r.status_code == 200, r.text
        assert {f["properties"]["plan_status"] for f in r.json()["features"]} == {
            status
        }
        grid_id = r.json()["features"][0]["id"]
        assert client.get(f"/collections/grids/items/{grid_id}").status_code == 200
        r = client.get("/map/events/grids", params={"plan": plan_id})
        assert r.status_code == 200, r.text
    # the published grids (no plan id) never include the draft's
    plan_id, _ = draft
    every = client.get(
        "/collections/grids/items", params={"area": LI_ROOT, "limit": 1000}
    ).json()
    assert {f["properties"]["plan_id"] for f in every["features"]} == {api_data.li_plan}
    assert plan_id != api_data.li_plan
