"""What the viewer's edit mode reads: a plan's buildings in a box and its grids (planner keys)."""

from __future__ import annotations

import api_support as support
from api_support import ApiData, assert_problem, auth, county
from fastapi.testclient import TestClient

api_data = support.api_data
client = support.client


def _box(hh, pad: float = 0.0) -> str:
    x0, y0, x1, y1 = hh.total_bounds
    return f"{x0 - pad},{y0 - pad},{x1 + pad},{y1 + pad}"


def test_buildings_of_a_plan_in_a_box(client: TestClient, api_data: ApiData) -> None:
    hh = county().households
    r = client.get(
        f"/plans/{api_data.plan}/buildings",
        params={"bbox": _box(hh, 0.001)},
        headers=auth(api_data.planner),
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    body = r.json()
    assert body["type"] == "FeatureCollection" and not body["truncated"]
    feats = body["features"]
    by_kind: dict[str, list] = {"building": [], "household": []}
    for f in feats:
        by_kind[f["properties"]["kind"]].append(f)
    # every household once: in its building, or as a unit of its own
    assert sum(f["properties"]["households"] for f in feats) == len(hh)
    assert len(by_kind["building"]) == hh["building_id"].nunique()
    assert len(by_kind["household"]) == int(hh["building_id"].isna().sum())
    sizes = hh.groupby("building_id").size()
    for f in by_kind["building"]:
        p = f["properties"]
        assert p["households"] == sizes[p["id"]]
        assert p["grid_code"] in p["grids"] and p["address"]
    one = by_kind["household"][0]["properties"]
    row = hh.set_index("household_id").loc[one["id"]]
    assert one["address"] == row["address"] and one["households"] == 1

    # a small box around one building still counts the whole building
    bid = sizes.idxmax()
    mine = hh[hh["building_id"] == bid]
    x, y = mine.geometry.x.iloc[0], mine.geometry.y.iloc[0]
    r = client.get(
        f"/plans/{api_data.plan}/buildings",
        params={"bbox": f"{x - 1e-6},{y - 1e-6},{x + 1e-6},{y + 1e-6}"},
        headers=auth(api_data.planner),
    )
    got = {f["properties"]["id"]: f["properties"] for f in r.json()["features"]}
    assert got[bid]["households"] == len(mine)

    r = client.get(
        f"/plans/{api_data.plan}/buildings",
        params={"bbox": _box(hh), "limit": 5},
        headers=auth(api_data.planner),
    )
    assert len(r.json()["features"]) == 5 and r.json()["truncated"]


def test_grids_of_a_plan_with_band_state(client: TestClient, api_data: ApiData) -> None:
    r = client.get(f"/plans/{api_data.plan}/grids", headers=auth(api_data.planner))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "published" and body["band"] == {"min": 200, "max": 300}
    feats = body["features"]
    plan = support.plans()[1]
    assert sorted(f["properties"]["code"] for f in feats) == sorted(
        plan.grids["grid_code"]
    )
    counts = plan.assignments.groupby("grid_code").size()
    for f in feats:
        p = f["properties"]
        assert p["households"] == counts[p["code"]]
        assert p["in_band"] == (200 <= p["households"] <= 300)
        assert p["worker_id"] and p["worker_name"]
        assert f["geometry"]["type"] in {"Polygon", "MultiPolygon"}


def test_edit_views_need_a_planner_key(client: TestClient, api_data: ApiData) -> None:
    for path, params in (
        (f"/plans/{api_data.plan}/grids", {}),
        (f"/plans/{api_data.plan}/buildings", {"bbox": "118,28,119,29"}),
    ):
        assert_problem(client.get(path, params=params), 401)
        assert_problem(
            client.get(path, params=params, headers=auth(api_data.viewer)), 403
        )
    assert_problem(
        client.get("/plans/999999/grids", headers=auth(api_data.planner)), 404
    )
    assert_problem(
        client.get(
            f"/plans/{api_data.plan}/buildings",
            params={"bbox": "1,2,3"},
            headers=auth(api_data.planner),
        ),
        400,
    )
