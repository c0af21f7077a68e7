"""Plans and jobs over HTTP: list, inspect, generate (background job), publish."""

from __future__ import annotations

import api_support as support
import pytest
from api_support import COUNTY, LI_EMPTY, LI_ROOT, ApiData, assert_problem, auth
from fastapi.testclient import TestClient

# the shared module-scoped fixtures (data committed to the test database)
api_data = support.api_data
client = support.client


def test_list_and_inspect(client: TestClient, api_data: ApiData) -> None:
    plans = client.get("/plans").json()
    ids = [p["id"] for p in plans]
    assert ids == sorted(ids, reverse=True)
    assert {api_data.plan, api_data.old_plan, api_data.li_plan} <= set(ids)
    published = client.get("/plans", params={"status": "published"}).json()
    assert {p["id"] for p in published} == {api_data.plan, api_data.li_plan}
    of_county = client.get("/plans", params={"area": COUNTY}).json()
    assert {p["id"] for p in of_county} >= {api_data.plan, api_data.old_plan}
    detail = client.get(f"/plans/{api_data.old_plan}").json()
    assert detail["status"] == "archived"
    assert detail["valid_from"].startswith("2024-01-01")
    assert detail["valid_to"].startswith("2025-01-01")
    assert detail["grids"] > 0 and detail["households"] == 2500
    assert "exceptions" in detail["metrics"] and "in_band_share" in detail["metrics"]
    assert detail["params"]
    assert "metrics" not in plans[0]  # the list stays small


@pytest.mark.parametrize("plan_id", ["999999", "0", "-3", "99999999999"])
def test_unknown_plan_is_404(client: TestClient, plan_id: str) -> None:
    assert_problem(client.get(f"/plans/{plan_id}"), 404)


def test_bad_plan_id_and_status(client: TestClient) -> None:
    assert_problem(client.get("/plans/abc"), 422)
    assert_problem(client.get("/plans", params={"status": "live"}), 422)


def test_writes_need_a_planner_key(client: TestClient, api_data: ApiData) -> None:
    body = {"area_code": COUNTY}
    assert_problem(client.post("/plans", json=body), 401)
    assert_problem(client.post("/plans", json=body, headers=auth("bad")), 401)
    r = client.post("/plans", json=body, headers=auth(api_data.viewer))
    assert "planner" in assert_problem(r, 403)["detail"]
    assert_problem(client.post(f"/plans/{api_data.plan}/publish"), 401)
    assert_problem(
        client.post(f"/plans/{api_data.plan}/publish", headers=auth(api_data.viewer)),
        403,
    )
    assert_problem(client.get("/jobs/abc"), 401)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"area_code": COUNTY, "min_households": 300, "max_households": 200},
        {"area_code": COUNTY, "target": 500},
        {"area_code": COUNTY, "min_households": 0},
        {"area_code": COUNTY, "respect_level": "county"},
        {"area_code": COUNTY, "unknown": 1},
        {"area_code": ""},
    ],
)
def test_generate_validation_is_422(
    client: TestClient, api_data: ApiData, body: dict[str, object]
) -> None:
    assert_problem(
        client.post("/plans", json=body, headers=auth(api_data.planner)), 422
    )


def test_generate_unknown_area_is_404(client: TestClient, api_data: ApiData) -> None:
    r = client.post(
        "/plans", json={"area_code": "999999999999"}, headers=auth(api_data.planner)
    )
    assert "999999999999" in assert_problem(r, 404)["detail"]


def test_generate_then_publish(client: TestClient, api_data: ApiData) -> None:
    key = api_data.planner
    r = client.post(
        "/plans",
        json={"area_code": COUNTY, "name": "via API", "min_households": 150},
        headers=auth(key),
    )
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] in {"queued", "running", "succeeded"}
    assert r.headers["location"] == f"/jobs/{job['id']}"
    done = support.wait_job(client, r.headers["location"], key)
    assert done["status"] == "succeeded", done
    assert done["progress"] == 1.0 and done["plan_id"]
    plan_id = done["plan_id"]
    # a draft is the planners' own: 404 to anyone else, in the list too
    assert client.get(f"/plans/{plan_id}").status_code == 404
    assert plan_id not in {p["id"] for p in client.get("/plans").json()}
    listed = client.get("/plans", headers=auth(key)).json()
    assert plan_id in {p["id"] for p in listed}
    draft = client.get(f"/plans/{plan_id}", headers=auth(key)).json()
    assert draft["status"] == "draft" and draft["name"] == "via API"
    assert draft["households"] == 2500
    assert draft["params"]["min_households"] == 150
    assert draft["created_by"].startswith("api key ")

    published = client.post(f"/plans/{plan_id}/publish", headers=auth(key))
    assert published.status_code == 200, published.text
    assert published.json()["status"] == "published"
    assert client.get(f"/plans/{api_data.plan}").json()["status"] == "archived"
    # lookups follow the newly published plan
    grids = client.get("/collections/grids/items", params={"area": COUNTY}).json()
    assert {f["properties"]["plan_id"] for f in grids["features"]} == {plan_id}

    again = client.post(f"/plans/{plan_id}/publish", headers=auth(key))
    assert "only a draft" in assert_problem(again, 409)["detail"]
    assert_problem(client.post("/plans/999999/publish", headers=auth(key)), 404)


def test_failed_job_reports_why(client: TestClient, api_data: ApiData) -> None:
    # an area without households: the job fails with a readable error
    r = client.post(
        "/plans", json={"area_code": LI_EMPTY}, headers=auth(api_data.planner)
    )
    assert r.status_code == 202
    done = support.wait_job(client, r.headers["location"], api_data.planner)
    assert done["status"] == "failed" and done["plan_id"] is None
    assert done["error"]["detail"] == f"area {LI_EMPTY} has no households loaded"


def test_unknown_job_is_404(client: TestClient, api_data: ApiData) -> None:
    assert_problem(client.get("/jobs/nope", headers=auth(api_data.planner)), 404)


def test_rebalance_job_and_diff(client: TestClient, api_data: ApiData) -> None:
    key = api_data.planner
    base = api_data.plan
    assert_problem(client.post(f"/plans/{base}/rebalance", json={}), 401)
    assert_problem(
        client.post(
            f"/plans/{base}/rebalance",
            json={"min_households": 300, "max_households": 200},
            headers=auth(key),
        ),
        422,
    )
    assert_problem(
        client.post("/plans/999999/rebalance", json={}, headers=auth(key)), 404
    )
    r = client.post(f"/plans/{base}/rebalance", json={"locked": []}, headers=auth(key))
    assert r.status_code == 202, r.text
    done = support.wait_job(client, r.headers["location"], key)
    assert done["status"] == "succeeded", done
    new = client.get(f"/plans/{done['plan_id']}", headers=auth(key)).json()
    assert new["status"] == "draft" and new["parent_id"] == base
    assert "rebalance" in new["metrics"]
    d = client.get(f"/plans/{base}/diff/{done['plan_id']}", headers=auth(key))
    assert d.status_code == 200, d.text
    body = d.json()
    assert body["summary"]["households_changed"] == len(body["households"])
    assert set(body["summary"]) >= {"created", "retired", "reshaped", "unchanged"}
    assert_problem(client.get(f"/plans/{base}/diff/999999", headers=auth(key)), 404)
    assert_problem(client.get(f"/plans/{base}/diff/{done['plan_id']}"), 401)


def test_publish_refuses_unstaffed_grids_unless_told(
    client: TestClient, api_data: ApiData
) -> None:
    from geo.store.db import make_engine, session_scope
    from geo.store.plans import save_generated_plan

    key = api_data.planner
    _, _, li = support.plans()
    engine = make_engine(api_data.url)
    try:
        with session_scope(engine) as s:
            plan_id = save_generated_plan(s, LI_ROOT, li, name="Vaduz, unstaffed")
    finally:
        engine.dispose()
    codes = sorted(li.grids["grid_code"].astype(str))
    r = client.post(f"/plans/{plan_id}/publish", headers=auth(key))
    body = assert_problem(r, 422)
    assert body["type"] == "/problems/unstaffed-grids"
    assert body["unstaffed"] == len(codes) and body["unstaffed_grids"] == codes
    assert f"{len(codes)} grid(s) with no grid worker" in body["detail"]
    assert ", ".join(codes[:5]) in body["detail"]
    plan = client.get(f"/plans/{plan_id}", headers=auth(api_data.planner)).json()
    assert plan["status"] == "draft"
    r = client.post(
        f"/plans/{plan_id}/publish", json={"allow_unstaffed": False}, headers=auth(key)
    )
    assert_problem(r, 422)
    assert_problem(
        client.post(
            f"/plans/{plan_id}/publish", json={"allow": True}, headers=auth(key)
        ),
        422,
    )
    # told in the body (the query's allow_unstaffed=true works the same way)
    r = client.post(
        f"/plans/{plan_id}/publish", json={"allow_unstaffed": True}, headers=auth(key)
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "published"
    assert client.get(f"/plans/{api_data.li_plan}").json()["status"] == "archived"
