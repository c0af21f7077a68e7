"""One published answer per household: a township plan published under the county plan
replaces that part of it (a new county version without the township's grids), and
/lookup, /collections/grids/items and /map agree for every sampled address."""

from __future__ import annotations

import api_support as support
import geopandas as gpd
import numpy as np
import shapely
from api_support import COUNTY, ApiData, assert_problem, auth, county
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo.gridding.generate import generate_grids
from geo.store.db import make_engine, session_scope
from geo.store.plans import area_frames, save_generated_plan

api_data = support.api_data
client = support.client


def _published_per_household(url: str) -> dict[int, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT n, count(*) FROM (SELECT h.id, count(x.plan_id) AS n "
                "FROM households h LEFT JOIN assignments x ON x.household_id = h.id "
                "AND x.plan_id IN (SELECT id FROM plans WHERE status = 'published') "
                "GROUP BY h.id) c GROUP BY n"
            )
        ).all()
    engine.dispose()
    return {int(n): int(c) for n, c in rows}


def test_township_plan_replaces_its_part_of_the_county_plan(
    client: TestClient, api_data: ApiData
) -> None:
    hh = county().households
    town = county().areas.query("level == 'township'")["code"].iloc[0]
    engine = make_engine(api_data.url)
    with session_scope(engine) as s:
        areas, households = area_frames(s, town)
        township_plan = save_generated_plan(
            s, town, generate_grids(households, areas), name="township"
        )
        county_codes_in_town = {
            c
            for (c,) in s.execute(
                text(
                    "SELECT g.code FROM grids g JOIN admin_areas v ON v.id = g.area_id "
                    "WHERE g.plan_id = :p AND v.parent_id = (SELECT id FROM admin_areas "
                    "WHERE code = :t)"
                ),
                {"p": api_data.plan, "t": town},
            )
        }
    engine.dispose()
    assert _published_per_household(api_data.url)[1] == len(hh) + 40  # + Vaduz

    r = client.post(
        f"/plans/{township_plan}/publish",
        params={"allow_unstaffed": "true"},  # drawn here, not staffed
        headers=auth(api_data.planner),
    )
    assert r.status_code == 200, r.text
    replaced = r.json()["metrics"]["replaced"]
    assert replaced[0]["plan"] == api_data.plan
    old = client.get(f"/plans/{api_data.plan}").json()
    assert old["status"] == "archived"
    current = [
        p
        for p in client.get("/plans", params={"status": "published"}).json()
        if p["area_code"] == COUNTY
    ]
    assert len(current) == 1 and current[0]["parent_id"] == api_data.plan
    assert current[0]["households"] == len(hh) - len(households)
    # every household in exactly one published grid
    assert _published_per_household(api_data.url) == {1: len(hh) + 40}

    # /lookup, the grids collection and /map agree for 1,000 sampled addresses
    rng = np.random.default_rng(3)
    sample = hh.iloc[rng.choice(len(hh), size=1000, replace=False)]
    answers = {}
    for lo in range(0, len(sample), 500):
        part = sample.iloc[lo : lo + 500]
        body = client.post(
            "/lookup/batch",
            headers=auth(api_data.viewer),
            json={
                "items": [
                    {"id": h, "address": a}
                    for h, a in zip(part["household_id"], part["address"], strict=True)
                ]
            },
        ).json()
        for res in body["results"]:
            if res["status"] == 200 and res["match"] == "exact":
                answers[res["id"]] = res["result"]["grid"]["code"]
    assert len(answers) >= 900, "exact addresses answer"
    feats = client.get(
        "/collections/grids/items", params={"limit": 1000, "bbox": "118,28,120,30"}
    ).json()["features"]
    grids = gpd.GeoDataFrame(
        {"code": [f["properties"]["code"] for f in feats]},
        geometry=[shapely.geometry.shape(f["geometry"]) for f in feats],
        crs=4326,
    )
    assert not set(grids["code"]) & (county_codes_in_town - set(grids["code"]))
    pts = sample.set_index("household_id").loc[list(answers)]
    hit = gpd.sjoin(
        gpd.GeoDataFrame(geometry=pts.geometry.values, index=pts.index, crs=4326),
        grids,
        predicate="intersects",
    )
    per_point = hit.groupby(level=0)["code"].apply(set)
    agree = sum(answers[h] in per_point.get(h, set()) for h in answers)
    assert agree == len(answers), "the collection's grid holds the lookup's grid"
    page = client.get("/map").text
    for code in set(answers.values()):
        assert code in page, f"/map draws grid {code}"

    # a county draft that leaves the township's households out cannot take them away
    r = client.post(f"/plans/{current[0]['id']}/draft", headers=auth(api_data.planner))
    assert r.status_code == 201
    r = client.post(f"/plans/{r.json()['id']}/publish", headers=auth(api_data.planner))
    assert "without a grid" in assert_problem(r, 409)["detail"]
