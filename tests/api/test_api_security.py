"""Hostile but cheap requests (issue 15, items 1-3): what the public viewer gives
away, control characters, header sizes, repeated wrong keys and page renders.

All against the shared API test county in the real test PostGIS (api_support).
The header limit of the real server parser is tested in test_api_live_limits.
"""

from __future__ import annotations

import re
import string
from typing import Any
from urllib.parse import quote

import api_support as support
import pytest
from api_support import COUNTY, LI_ROOT, ApiData, assert_problem, auth
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from api.limits import MAX_HEADER_BYTES, AuthThrottle
from geo.store.db import make_engine, session_scope
from geo.store.plans import save_generated_plan
from geo.store.settings import Settings

api_data = support.api_data
client = support.client


def _households(client: TestClient, key: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    url: str | None = "/collections/households/items?limit=10000"
    while url:
        r = client.get(url, headers={"X-API-Key": key})
        assert r.status_code == 200, r.text
        body = r.json()
        out += body["features"]
        url = next((lk["href"] for lk in body["links"] if lk["rel"] == "next"), None)
    return out


@pytest.fixture(scope="module")
def households(client: TestClient, api_data: ApiData) -> list[dict[str, Any]]:
    hh = _households(client, api_data.viewer)
    assert len(hh) == len(support.county().households) + 40
    return hh


# ------------------------------------------------------------------ 1. privacy


def _assert_nothing_per_household(html: str, households: list[dict[str, Any]]) -> None:
    assert "GridMap.houses(" not in html
    leaks = [f["id"] for f in households if f["id"] in html]
    assert leaks == [], leaks[:5]
    leaks = [
        f["properties"]["address"]
        for f in households
        if f["properties"]["address"] and f["properties"]["address"] in html
    ]
    assert leaks == [], leaks[:5]
    # no house number / flat of any address, Chinese or Western
    assert not re.search(r"\d+\s*(号|室|单元)", html)
    assert "strasse" not in html.lower()
    for f in households:
        lon, lat = f["geometry"]["coordinates"]
        # as the page used to pack them (micro-degrees) and as GeoJSON writes them
        for token in (
            f'"{round(lon * 1e6)}',
            f"[{round(lon * 1e6)},",
            f"{lon:.6f},{lat:.6f}",
            f"{lat:.6f},{lon:.6f}",
            f"{lat:.6f}, {lon:.6f}",
        ):
            assert token not in html, (f["id"], token)


def test_public_viewer_has_nothing_per_household(
    client: TestClient, api_data: ApiData, households: list[dict[str, Any]]
) -> None:
    people = support.county().people
    workers = set(people.loc[people["role"] != "party_member", "name"])
    members = set(people.loc[people["role"] == "party_member", "name"]) - workers
    for params in ({}, {"area": COUNTY}, {"area": LI_ROOT}):
        r = client.get("/map", params=params)
        assert r.status_code == 200, r.text
        html = r.text
        _assert_nothing_per_household(html, households)
        shown = [m for m in members if m in html]
        assert shown == [], shown
    # what the public page does show: grids, counts, grid workers' work phones
    html = client.get("/map", params={"area": COUNTY}).text
    grids = client.get(
        "/collections/grids/items", params={"limit": 10000, "area": COUNTY}
    ).json()["features"]
    assert grids and all(f["properties"]["code"] in html for f in grids)
    named = [f["properties"]["worker"]["name"] for f in grids]
    assert named and all(n in html for n in named)
    assert f"{len(support.county().households):,} 户" in html
    assert "gm-keybox" in html and '"housesUrl":"/map/households"' in html


def test_households_are_for_viewer_keys(
    client: TestClient, api_data: ApiData, households: list[dict[str, Any]]
) -> None:
    # anonymous: refused on both data endpoints
    assert_problem(client.get("/collections/households/items"), 401)
    assert_problem(client.get("/map/households", params={"plan": api_data.plan}), 401)
    r = client.get(
        "/map/households",
        params={"plan": api_data.plan},
        headers={"X-API-Key": api_data.viewer},
    )
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "private, no-store"
    # without areas: the index, villages with their counts and boxes, no household
    index = r.json()
    county = support.county()
    assert sum(g["n"] for g in index["groups"]) == len(county.households)
    assert all("data" not in g and len(g["bbox"]) == 4 for g in index["groups"])
    assert not any(a in r.text for a in county.households["address"].head(50))
    # with areas: those villages' households, packed
    areas = [g["area"] for g in index["groups"]]
    groups = []
    for i in range(0, len(areas), 50):
        part = client.get(
            "/map/households",
            params={"plan": api_data.plan, "areas": ",".join(areas[i : i + 50])},
            headers={"X-API-Key": api_data.viewer},
        )
        assert part.status_code == 200, part.text
        groups += part.json()["groups"]
        r = part
    body = {**r.json(), "groups": groups}
    assert [g["area"] for g in groups] == areas
    n = sum(
        c * k
        for g in body["groups"]
        for c, k in zip(g["data"]["n"][0::2], g["data"]["n"][1::2], strict=True)
    )
    assert n == len(county.households)
    for g in groups:  # each village's count is its households, as packed
        runs = g["data"]["n"]
        assert g["n"] == sum(c * k for c, k in zip(runs[0::2], runs[1::2], strict=True))
    for bad in ("nope", ",".join(f"A{i}" for i in range(60))):
        assert_problem(
            client.get(
                "/map/households",
                params={"plan": api_data.plan, "areas": bad},
                headers={"X-API-Key": api_data.viewer},
            ),
            422,
        )
    assert len(body["members"]) > 0 and all("联户党员" in m[1] for m in body["members"])
    grids = client.get(
        "/collections/grids/items", params={"limit": 10000, "area": COUNTY}
    ).json()["features"]
    assert sorted(body["grids"]) == sorted(f["properties"]["code"] for f in grids)
    # the first address of every village, whole (the rest are front-coded)
    assert all(g["data"]["s"][0] in county.households["address"].values for g in groups)
    # an unknown plan is a 404 problem
    assert_problem(
        client.get(
            "/map/households", params={"plan": 99999}, headers=auth(api_data.viewer)
        ),
        404,
    )


# -------------------------------------------------------- 2. cache per plan


def test_viewer_pages_are_cached_per_area_until_a_plan_is_published(
    api_data: ApiData, monkeypatch: pytest.MonkeyPatch
) -> None:
    import maps

    renders: list[str] = []
    real = maps.coverage_map

    def counting(*args: Any, **kwargs: Any) -> Any:
        renders.append(kwargs.get("title", ""))
        return real(*args, **kwargs)

    monkeypatch.setattr(maps, "coverage_map", counting)
    app = create_app(Settings(database_url=api_data.url))
    with TestClient(app) as c:
        pages = {}
        for _ in range(3):
            for area in (COUNTY, LI_ROOT):
                r = c.get("/map", params={"area": area})
                assert r.status_code == 200, r.text
                page = support.without_nonces(r.text)  # a fresh nonce each time
                assert pages.setdefault(area, page) == page
        assert len(renders) == 2, renders
        # a newly published plan of Vaduz is shown at once; the county stays cached
        _, _, li = support.plans()
        engine = make_engine(api_data.url)
        try:
            with session_scope(engine) as s:
                new_id = save_generated_plan(s, LI_ROOT, li, name="Vaduz 2")
        finally:
            engine.dispose()
        r = c.post(
            f"/plans/{new_id}/publish",
            params={"allow_unstaffed": "true"},
            headers=auth(api_data.planner),
        )
        assert r.status_code == 200, r.text
        page = c.get("/map", params={"area": LI_ROOT}).text
        assert f'"planId":{new_id}' in page and page != pages[LI_ROOT]
        page = c.get("/map", params={"area": COUNTY}).text
        assert support.without_nonces(page) == pages[COUNTY]
        assert len(renders) == 3, renders


# ------------------------------------------------------ 2. wrong-key throttle


def test_repeated_wrong_keys_are_throttled(api_data: ApiData) -> None:
    app = create_app(Settings(database_url=api_data.url))
    url = "/collections/households/items"
    with TestClient(app) as c, TestClient(app, client=("10.9.8.7", 4000)) as other:
        for i in range(20):
            r = c.get(url, headers={"X-API-Key": f"gm_{i:08x}_wrong"})
            assert_problem(r, 401)
        body = assert_problem(c.get(url, headers={"X-API-Key": "gm_again"}), 429)
        assert "Too many wrong API keys" in body["detail"]
        wait = int(c.get(url, headers=auth("gm_x")).headers["retry-after"])
        assert 1 <= wait <= 60
        # a right key is never locked out by its address's wrong ones (an
        # attacker sharing a NAT or proxy cannot deny a valid key) ...
        assert c.get(url, headers=auth(api_data.viewer)).status_code == 200
        # ... wrong keys from that address still wait (guessing 256-bit tokens
        # gains nothing from the gap), public requests go on, and other
        # clients are not affected
        assert_problem(c.get(url, headers=auth("gm_y")), 429)
        assert c.get("/collections/grids/items", params={"limit": 1}).status_code == 200
        assert other.get(url, headers=auth(api_data.viewer)).status_code == 200


def test_throttle_window_and_memory_are_bounded() -> None:
    now = [0.0]
    t = AuthThrottle(max_failures=3, window_s=60, max_clients=100, clock=lambda: now[0])
    for _ in range(3):
        assert t.retry_after("a") is None
        t.fail("a")
        now[0] += 10
    assert t.retry_after("a") == 30  # the first failure leaves the window at 60
    now[0] = 60.5
    assert t.retry_after("a") is None
    for i in range(1000):
        t.fail(f"client-{i}")
    assert len(t._failures) == 100  # the oldest clients are forgotten


# ------------------------------------------------------------ 2. header size


def test_oversized_headers_are_431_in_the_app(client: TestClient) -> None:
    r = client.get("/lookup", headers={"X-Filler": "a" * (MAX_HEADER_BYTES + 1)})
    body = assert_problem(r, 431)
    assert str(MAX_HEADER_BYTES) in body["detail"]
    ok = client.get("/collections", headers={"X-Filler": "a" * 8000})
    assert ok.status_code == 200


# ------------------------------------------------- 3. control characters


def _nul_cases(api_data: ApiData) -> list[tuple[str, str, dict[str, Any], str]]:
    viewer = {"X-API-Key": api_data.viewer}
    planner = {"X-API-Key": api_data.planner}
    return [
        ("GET", "/collections/areas/items/33%00", {}, "path parameter 'fid'"),
        (
            "GET",
            "/collections/grids/items?area=33%00",
            {},
            "query parameter 'area'",
        ),
        ("GET", "/plans?area=33%00", {}, "query parameter 'area'"),
        (
            "GET",
            "/collections/households/items/a%00b",
            {"headers": viewer},
            "path parameter 'fid'",
        ),
        (
            "POST",
            "/plans",
            {"headers": planner, "json": {"area_code": "33\u0000"}},
            "body field 'area_code'",
        ),
    ]


def test_nul_bytes_are_422_naming_the_parameter(
    client: TestClient, api_data: ApiData
) -> None:
    for method, url, kwargs, where in _nul_cases(api_data):
        body = assert_problem(client.request(method, url, **kwargs), 422)
        assert where in body["detail"] and "U+0000" in body["detail"], (url, body)
        assert body["errors"][0]["location"] == where


def test_other_control_characters_are_refused(
    client: TestClient, api_data: ApiData
) -> None:
    for ch in ("\x01", "\x1b", "\x7f", "\x85", "\t", "\n"):
        body = assert_problem(
            client.get("/lookup", params={"address": "衢江区" + ch}), 422
        )
        assert "query parameter 'address'" in body["detail"]
    r = client.post(
        "/lookup/batch",
        json={"items": [{"address": "衢江区"}, {"id": "b", "address": "x\u0007y"}]},
    )
    body = assert_problem(r, 422)
    assert "body field 'items.1.address'" in body["detail"]
    # an escaped backslash followed by "u0000" is text, not a control character
    r = client.post(
        "/lookup/batch",
        json={"items": [{"address": "a\\u0000b"}]},
        headers=auth(api_data.viewer),
    )
    assert r.status_code == 200, r.text
    # Chinese, full-width and Western text passes
    r = client.get("/lookup", params={"address": "Landstrasse 10, 9490 Vaduz"})
    assert r.status_code == 200, r.text


_CONTROL_CHARS = "".join(map(chr, [*range(0x20), *range(0x7F, 0xA0)]))
_TEXT = st.text(
    alphabet=st.sampled_from(
        _CONTROL_CHARS
        + string.printable
        + "衢江区樟潭街道湖桥路号幢单元室组村０１２%/?#&=\\\"'"
    ),
    max_size=24,
)


def _text_params() -> list[tuple[str, str, str]]:
    """(method, path template, query parameter) of every string query parameter,
    and (method, path template, "") of every path with string path parameters."""
    spec = create_app().openapi()
    out = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method != "get":
                continue
            for p in op.get("parameters", []):
                schema = p.get("schema", {})
                kinds = {schema.get("type")} | {
                    s.get("type") for s in schema.get("anyOf", [])
                }
                if p["in"] == "query" and "string" in kinds:
                    out.append((method.upper(), path, p["name"]))
            if "{" in path:
                out.append((method.upper(), path, ""))
    return out


TEXT_PARAMS = _text_params()


def test_the_fuzz_covers_the_text_parameters() -> None:
    names = {(p, n) for _, p, n in TEXT_PARAMS}
    for expected in (
        ("/lookup", "address"),
        ("/collections/{cid}/items", "area"),
        ("/collections/{cid}/items", "bbox"),
        ("/plans", "area"),
        ("/map", "area"),
        ("/collections/{cid}/items/{fid}", ""),
    ):
        assert expected in names, sorted(names)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
@given(
    target=st.sampled_from(TEXT_PARAMS),
    value=_TEXT,
    cid=st.sampled_from(["grids", "areas", "households"]),
)
def test_fuzz_text_parameters_never_500(
    client: TestClient,
    api_data: ApiData,
    target: tuple[str, str, str],
    value: str,
    cid: str,
) -> None:
    method, template, name = target
    params: dict[str, str] = {}
    if name:
        params[name] = value
    else:  # the last path parameter gets the text, the others a plain value
        head, _, tail = template.rpartition("{")
        template = head + "\x00" + tail.split("}", 1)[1]
    path = re.sub(r"\{[^}]+\}", "1", template.replace("{cid}", cid))
    path = path.replace("\x00", quote(value, safe="") or "x")
    r = client.request(
        method, path, params=params, headers={"X-API-Key": api_data.viewer}
    )
    assert r.status_code < 500, (method, path, params, r.text[:300])
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/problem+json")
    if any(ch in _CONTROL_CHARS for ch in value) and (name or quote(value, safe="")):
        assert r.status_code == 422, (method, path, params, r.text[:300])
