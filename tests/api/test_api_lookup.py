"""``/lookup`` and ``/lookup/batch`` over HTTP against a real PostGIS."""

from __future__ import annotations

import re
import time
from typing import Any

import api_support as support
import numpy as np
import pytest
from api_support import (
    APT_RE,
    VILLAGE_RE,
    ApiData,
    assert_problem,
    auth,
    cn_number,
    county,
    fullwidth,
)
from api_support import pick_address as _pick
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo.crs import wgs84_to_gcj02
from geo.store.db import make_engine

# the shared module-scoped fixtures (data committed to the test database)
api_data = support.api_data
client = support.client


class Keyed:
    """The test client with a viewer key on every request (household answers,
    candidates and batches need a key)."""

    def __init__(self, client: TestClient, token: str) -> None:
        self.client, self.headers = client, auth(token)

    def get(self, url: str, headers: dict[str, str] | None = None, **kw: Any) -> Any:
        return self.client.get(url, headers={**self.headers, **(headers or {})}, **kw)

    def post(self, url: str, headers: dict[str, str] | None = None, **kw: Any) -> Any:
        return self.client.post(url, headers={**self.headers, **(headers or {})}, **kw)


@pytest.fixture(scope="module")
def keyed(client: TestClient, api_data: ApiData) -> Keyed:
    return Keyed(client, api_data.viewer)


@pytest.fixture(scope="module")
def apartment() -> tuple[str, str, re.Match[str]]:
    return _pick(APT_RE)


@pytest.fixture(scope="module")
def village() -> tuple[str, str, re.Match[str]]:
    return _pick(VILLAGE_RE, small=True)


def _variants_apartment(m: re.Match[str]) -> list[str]:
    place, no, bld, unit, room = m.groups()
    return [
        f"浙江省衢州市衢江区{place}{no}号{bld}幢{unit}单元{room}室",
        f"衢江区{place}{no}号{bld}栋{unit}单元{room}室",  # 栋 for 幢
        f"{place}{no}号{bld}幢{unit}单元{room}",  # no prefix, no 室
        fullwidth(f"浙江省衢州市衢江区{place}{no}号{bld}栋{unit}单元{room}室"),
        f"浙江省 衢州市，衢江区 {place} {no}号 {bld}号楼 {unit}单元 {room}室",
    ]


def _variants_village(m: re.Match[str]) -> list[str]:
    village, group, no = m.groups()
    g, n = int(group), int(no)
    return [
        f"浙江省衢州市衢江区{village}{g}组{n}号",
        f"衢江区{village}{cn_number(g)}组{cn_number(n)}号",  # Chinese numerals
        fullwidth(f"{village}{g}组{n}号"),
        f"{village}{g}村民小组{n}号",
    ]


def test_apartment_address_variants_all_match_exactly(
    keyed: Keyed, apartment: tuple[str, str, re.Match[str]]
) -> None:
    hid, _, m = apartment
    for variant in _variants_apartment(m):
        r = keyed.get("/lookup", params={"address": variant})
        assert r.status_code == 200, (variant, r.text)
        body = r.json()
        assert body["match"] == "exact", variant
        assert body["result"]["household"]["id"] == hid, variant
        assert body["result"]["score"] == 1.0


def test_village_address_variants_all_match_exactly(
    keyed: Keyed, village: tuple[str, str, re.Match[str]]
) -> None:
    hid, _, m = village
    for variant in _variants_village(m):
        r = keyed.get("/lookup", params={"address": variant})
        assert r.status_code == 200, (variant, r.text)
        assert r.json()["result"]["household"]["id"] == hid, variant


def test_answer_has_grid_hierarchy_and_work_contacts_only(
    keyed: Keyed, api_data: ApiData, village: tuple[str, str, re.Match[str]]
) -> None:
    hid, address, _ = village
    body = keyed.get("/lookup", params={"address": address}).json()
    res = body["result"]
    assert res["household"] == {"id": hid, "address": address}
    grid = res["grid"]
    assert grid["plan_id"] == api_data.plan and grid["plan_status"] == "published"
    levels = [a["level"] for a in grid["areas"]]
    assert levels[0] == "county" and levels[-1] in {"village", "community"}
    assert grid["areas"][0]["code"] == "330803000000"
    assert res["located_by"] == "assignment"
    # the grid in the database is the household's assigned grid
    eng = make_engine(api_data.url)
    with eng.connect() as conn:
        row = conn.execute(
            text(
                "SELECT g.code, w.work_phone, m.work_phone FROM assignments a "
                "JOIN households h ON h.id = a.household_id JOIN grids g ON g.id = a.grid_id "
                "LEFT JOIN people w ON w.id = g.worker_id "
                "LEFT JOIN people m ON m.id = a.member_id "
                "WHERE h.external_id = :h AND a.plan_id = :p"
            ),
            {"h": hid, "p": api_data.plan},
        ).one()
    eng.dispose()
    assert grid["code"] == row[0]
    assert res["grid_worker"]["role"] == "grid_worker"
    assert res["grid_worker"]["work_phone"] == row[1]
    assert res["party_member"]["role"] == "party_member"
    assert res["party_member"]["work_phone"] == row[2]
    # never residents' personal data
    flat = rf"{body}"
    for private in ("'people'", "'attrs'", "'building_id'", "'weight'"):
        assert private not in flat


def test_fuzzy_typo_finds_the_household(
    keyed: Keyed, village: tuple[str, str, re.Match[str]]
) -> None:
    hid, address, m = village
    name = m.group(1)
    typo = address.replace(name, name[:-2] + "材" + name[-1:], 1)  # one wrong character
    r = keyed.get("/lookup", params={"address": typo})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["match"] in {"fuzzy", "ambiguous"}
    ranked = [body["result"]] if body["result"] else []
    ranked += body["candidates"]
    assert hid in [c["household"]["id"] for c in ranked]
    assert all(0 < c["score"] < 1 for c in ranked)
    scores = [c["score"] for c in ranked]
    assert scores == sorted(scores, reverse=True)


def test_incomplete_address_is_ambiguous_with_ranked_candidates(
    keyed: Keyed, apartment: tuple[str, str, re.Match[str]]
) -> None:
    _, _, m = apartment
    place, no, bld, unit, _ = m.groups()
    r = keyed.get(
        "/lookup", params={"address": f"{place}{no}号{bld}幢{unit}单元", "limit": 4}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["match"] == "ambiguous" and body["result"] is None
    assert 2 <= len(body["candidates"]) <= 4
    assert all(f"{unit}单元" in c["household"]["address"] for c in body["candidates"])


def test_unknown_address_is_a_404_problem(keyed: Keyed) -> None:
    r = keyed.get("/lookup", params={"address": "黑龙江省漠河市北极村99组999号"})
    body = assert_problem(r, 404)
    assert "No household matches" in body["detail"]
    assert body["key"]


@pytest.mark.parametrize(
    "address",
    [
        "Landstrasse 12, 9490 Vaduz",
        "Landstr. 12, FL-9490 Vaduz",
        "landstrasse 12 9490 vaduz",
    ],
)
def test_western_addresses(keyed: Keyed, api_data: ApiData, address: str) -> None:
    r = keyed.get("/lookup", params={"address": address})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["match"] == "exact"
    res = body["result"]
    assert res["household"]["address"] == "Landstrasse 12, 9490 Vaduz"
    assert res["grid"]["plan_id"] == api_data.li_plan
    assert [a["code"] for a in res["grid"]["areas"]] == ["LI-0001", "LI-9490"]


def test_western_umlaut_and_fuzzy(keyed: Keyed) -> None:
    r = keyed.get("/lookup", params={"address": "Aeulestrasse 13, 9490 Vaduz"})
    assert r.status_code == 200 and r.json()["match"] == "exact"
    r = keyed.get("/lookup", params={"address": "Kirchstrase 14 Vaduz"})
    assert r.status_code == 200, r.text
    body = r.json()
    found = [body["result"]] if body["result"] else body["candidates"]
    assert found[0]["household"]["address"] == "Kirchstrasse 14, 9490 Vaduz"


def _inside_point(api_data: ApiData, plan: int) -> tuple[float, float, str]:
    eng = make_engine(api_data.url)
    with eng.connect() as conn:
        x, y, code = conn.execute(
            text(
                "SELECT ST_X(p), ST_Y(p), code FROM (SELECT ST_PointOnSurface(geom) AS p, "
                "code FROM grids WHERE plan_id = :p ORDER BY code LIMIT 1 OFFSET 3) s"
            ),
            {"p": plan},
        ).one()
    eng.dispose()
    return float(x), float(y), code


def test_point_lookup(client: TestClient, api_data: ApiData) -> None:
    lon, lat, code = _inside_point(api_data, api_data.plan)
    r = client.get("/lookup", params={"lon": lon, "lat": lat})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["match"] == "point"
    res = body["result"]
    assert res["grid"]["code"] == code and res["household"] is None
    assert res["party_member"] is None and res["grid_worker"]["work_phone"]


def test_gcj02_point_is_converted(client: TestClient, api_data: ApiData) -> None:
    lon, lat, code = _inside_point(api_data, api_data.plan)
    g_lon, g_lat = wgs84_to_gcj02(lon, lat)
    assert abs(g_lon - lon) + abs(g_lat - lat) > 0.002  # ~ hundreds of metres apart
    r = client.get("/lookup", params={"lon": g_lon, "lat": g_lat, "crs": "gcj02"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["result"]["grid"]["code"] == code
    assert body["query"]["wgs84"] == pytest.approx([lon, lat], abs=1e-6)


def test_point_outside_every_grid_names_the_nearest(client: TestClient) -> None:
    r = client.get("/lookup", params={"lon": 118.0, "lat": 29.0})
    body = assert_problem(r, 404)
    near = body["nearest"]
    assert near["grid"]["code"] and near["dist_m"] > 50_000
    assert "nearest grid" in body["detail"] and " m away" in body["detail"]


def test_as_of_answers_from_the_archived_plan(
    client: TestClient, api_data: ApiData, village: tuple[str, str, re.Match[str]]
) -> None:
    _, address, _ = village
    now = client.get("/lookup", params={"address": address}).json()["result"]["grid"]
    then = client.get("/lookup", params={"address": address, "as_of": "2024-06-01"})
    assert then.status_code == 200, then.text
    grid = then.json()["result"]["grid"]
    assert now["plan_id"] == api_data.plan
    assert grid["plan_id"] == api_data.old_plan and grid["plan_status"] == "archived"
    # the day the new plan took effect answers from the new one
    edge = client.get("/lookup", params={"address": address, "as_of": "2025-01-01"})
    assert edge.json()["result"]["grid"]["plan_id"] == api_data.plan
    # a point, with a datetime
    lon, lat, code = _inside_point(api_data, api_data.old_plan)
    r = client.get(
        "/lookup", params={"lon": lon, "lat": lat, "as_of": "2024-12-31T23:59:59Z"}
    )
    assert r.json()["result"]["grid"]["code"] == code
    assert r.json()["result"]["grid"]["plan_id"] == api_data.old_plan


def test_as_of_before_any_plan(client: TestClient, api_data: ApiData) -> None:
    lon, lat, _ = _inside_point(api_data, api_data.plan)
    r = client.get("/lookup", params={"lon": lon, "lat": lat, "as_of": "2020-01-01"})
    body = assert_problem(r, 404)
    assert "no plan is in force" in body["detail"]


# -- batch ---------------------------------------------------------------------------


def test_batch_of_10000_mixed_items(keyed: Keyed, api_data: ApiData) -> None:
    hh = county().households
    rng = np.random.default_rng(1)
    items: list[dict[str, object]] = []
    expect: list[str | None] = []
    for i in range(10_000):
        j = int(rng.integers(len(hh)))
        if i % 2 == 0:
            items.append({"id": f"a{i}", "address": hh["address"].iloc[j]})
            expect.append(hh["household_id"].iloc[j])
        else:
            p = hh.geometry.iloc[j]
            items.append({"id": f"p{i}", "lon": p.x, "lat": p.y})
            expect.append(None)
    items[1] = {"id": "out", "lon": 100.0, "lat": 20.0}
    items[2] = {"id": "none", "address": "不存在的地址999号"}
    t0 = time.perf_counter()
    r = keyed.post("/lookup/batch", json={"items": items})
    seconds = time.perf_counter() - t0
    assert r.status_code == 200, r.text[:500]
    results = r.json()["results"]
    assert [x["index"] for x in results] == list(range(10_000))
    assert [x["id"] for x in results] == [it["id"] for it in items]
    assert results[1]["status"] == 404 and results[1]["nearest"]["dist_m"] > 0
    assert results[2]["status"] == 404 and results[2]["match"] == "none"
    for x, want in zip(results[3:], expect[3:], strict=True):
        assert x["status"] == 200
        if want is not None:
            assert x["match"] in {"exact", "ambiguous"}
            if x["match"] == "exact":
                assert x["result"]["household"]["id"] == want
        else:
            assert x["match"] == "point" and x["result"]["grid"]["code"]
    summary = r.json()["summary"]
    assert sum(summary.values()) == 10_000
    assert seconds < 60


def test_batch_addresses_agree_with_single_lookups(
    keyed: Keyed, apartment: tuple[str, str, re.Match[str]]
) -> None:
    variants = _variants_apartment(apartment[2])
    batch = keyed.post(
        "/lookup/batch", json={"items": [{"address": v} for v in variants]}
    ).json()["results"]
    for v, b in zip(variants, batch, strict=True):
        single = keyed.get("/lookup", params={"address": v}).json()
        assert b["result"] == single["result"]


def test_batch_gcj02_and_as_of(keyed: Keyed, api_data: ApiData) -> None:
    lon, lat, code = _inside_point(api_data, api_data.old_plan)
    g_lon, g_lat = wgs84_to_gcj02(lon, lat)
    r = keyed.post(
        "/lookup/batch",
        json={
            "items": [{"lon": g_lon, "lat": g_lat, "crs": "gcj02"}],
            "as_of": "2024-03-01",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["result"]["grid"]["code"] == code


def test_batch_limits(keyed: Keyed) -> None:
    too_many = {"items": [{"lon": 118.9, "lat": 29.0}] * 10_001}
    body = assert_problem(keyed.post("/lookup/batch", json=too_many), 422)
    assert "10000" in body["detail"]
    big = {"items": [{"address": "浙" * 500}] * 9_000}  # ~14 MB
    body = assert_problem(keyed.post("/lookup/batch", json=big), 413)
    assert "limit" in body["detail"]
    assert_problem(keyed.post("/lookup/batch", json={"items": []}), 422)


@pytest.mark.parametrize(
    "item",
    [
        {"lon": 118.9},
        {"lat": 29},
        {},
        {"address": "a", "lon": 1, "lat": 2},
        {"lon": 181, "lat": 0},
        {"lon": 0, "lat": -91},
        {"lon": 1, "lat": 2, "crs": "bd09"},
        {"address": "x" * 501},
        {"address": "ok", "colour": "red"},
    ],
)
def test_batch_invalid_items_are_422(keyed: Keyed, item: dict[str, object]) -> None:
    body = assert_problem(keyed.post("/lookup/batch", json={"items": [item]}), 422)
    assert body["errors"] and "items.0" in body["detail"]


def test_batch_nan_is_422(keyed: Keyed) -> None:
    r = keyed.post(
        "/lookup/batch",
        content='{"items": [{"lon": NaN, "lat": 1}]}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")


# -- the public lookup ------------------------------------------------------------


def test_public_exact_answer_is_the_grid_and_its_worker_only(
    client: TestClient, village: tuple[str, str, re.Match[str]]
) -> None:
    hid, address, _ = village
    r = client.get("/lookup", params={"address": address})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["match"] == "exact" and body["candidates"] == []
    res = body["result"]
    assert res["household"] is None and res["party_member"] is None
    assert res["grid"]["code"] and res["grid"]["areas"]
    assert set(res["grid_worker"]) == {"name", "role", "work_phone"}
    assert hid not in r.text and address not in str(res)  # the query echoes it


def test_public_lookup_lists_no_candidates(
    client: TestClient, apartment: tuple[str, str, re.Match[str]]
) -> None:
    _, _, m = apartment
    place, no, bld, unit, room = m.groups()
    hh = county().households
    # an incomplete address (a whole stairwell): a 404 naming no household
    r = client.get("/lookup", params={"address": f"{place}{no}号{bld}幢{unit}单元"})
    body = assert_problem(r, 404)
    assert "need an API key" in body["detail"]
    assert not any(h in r.text for h in hh["household_id"].iloc[:500])
    assert "candidates" not in body and f"{room}室" not in r.text
    # a typo: no fuzzy guess without a key
    typo = f"{place}{no}号{bld}幢{unit}单元{room}x室"
    r = client.get("/lookup", params={"address": typo})
    assert r.status_code == 404 and "household" not in r.json().get("result", {})
    # limit is accepted but changes nothing
    r = client.get("/lookup", params={"address": typo, "limit": 20})
    assert r.status_code == 404


def test_public_batch_needs_a_key(client: TestClient) -> None:
    r = client.post("/lookup/batch", json={"items": [{"lon": 118.9, "lat": 29.0}]})
    body = assert_problem(r, 401)
    assert "key" in body["detail"]
