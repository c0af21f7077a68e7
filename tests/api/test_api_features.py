"""OGC API - Features style collections and vector tiles over HTTP."""

from __future__ import annotations

import math
from urllib.parse import parse_qs, urlsplit

import api_support as support
import pytest
import shapely
from api_support import COUNTY, ApiData, assert_problem, auth, county
from fastapi.testclient import TestClient
from shapely.geometry import shape

GEOJSON = "application/geo+json"

# the shared module-scoped fixtures (data committed to the test database)
api_data = support.api_data
client = support.client


def test_landing_conformance_collections(client: TestClient) -> None:
    links = {x["rel"] for x in client.get("/").json()["links"]}
    assert {"service-desc", "service-doc", "conformance", "data"} <= links
    conf = client.get("/conformance").json()["conformsTo"]
    assert any(c.endswith("conf/geojson") for c in conf)
    cols = client.get("/collections").json()["collections"]
    assert {c["id"] for c in cols} == {"grids", "areas", "households"}
    one = client.get("/collections/grids").json()
    assert one["id"] == "grids" and any(x["rel"] == "items" for x in one["links"])


def test_grid_items_are_published_geojson_lonlat_ccw(
    client: TestClient, api_data: ApiData
) -> None:
    r = client.get("/collections/grids/items", params={"limit": 1000})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(GEOJSON)
    fc = r.json()
    assert fc["type"] == "FeatureCollection"
    assert fc["numberMatched"] == fc["numberReturned"] == len(fc["features"]) > 5
    assert {f["properties"]["plan_status"] for f in fc["features"]} == {"published"}
    assert {f["properties"]["plan_id"] for f in fc["features"]} == {
        api_data.plan,
        api_data.li_plan,
    }
    for f in fc["features"]:
        geom = shape(f["geometry"])
        assert geom.is_valid
        for poly in getattr(geom, "geoms", [geom]):
            assert poly.exterior.is_ccw  # RFC 7946 right-hand rule
            assert all(not r.is_ccw for r in poly.interiors)
        x, y = geom.representative_point().coords[0]
        assert -180 <= x <= 180 and -90 <= y <= 90
        assert (
            x > y
        )  # lon first (China: ~118 E, 29 N; Vaduz: ~9.5 E, 47 N → checked below)
        if f["properties"]["area_code"].startswith("LI"):
            pytest.fail("Vaduz grids should come after the county's (ordered by id)")
        else:
            assert 118 < x < 120 and 28 < y < 30
        w = f["properties"]["worker"]
        assert w is None or set(w) == {"name", "role", "work_phone"}
        break


def test_paging_links_and_counts(client: TestClient) -> None:
    first = client.get("/collections/areas/items", params={"limit": 2}).json()
    total = first["numberMatched"]
    assert first["numberReturned"] == 2 and total > 4
    rels = {x["rel"]: x["href"] for x in first["links"]}
    assert "prev" not in rels and "next" in rels
    q = parse_qs(urlsplit(rels["next"]).query)
    assert q["offset"] == ["2"] and q["limit"] == ["2"]
    seen = [f["id"] for f in first["features"]]
    url = rels["next"]
    while url:
        page = client.get(url).json()
        seen += [f["id"] for f in page["features"]]
        rels = {x["rel"]: x["href"] for x in page["links"]}
        assert "prev" in rels
        url = rels.get("next")
    assert len(seen) == len(set(seen)) == total
    last = client.get(
        "/collections/areas/items", params={"limit": 2, "offset": total + 5}
    ).json()
    assert last["numberReturned"] == 0 and last["numberMatched"] == total


def test_bbox_filter(client: TestClient) -> None:
    everything = client.get("/collections/grids/items", params={"limit": 1000}).json()
    vaduz = client.get(
        "/collections/grids/items", params={"bbox": "9.4,47.0,9.7,47.3"}
    ).json()
    assert 0 < vaduz["numberMatched"] < everything["numberMatched"]
    assert all(f["properties"]["area_code"].startswith("LI") for f in vaduz["features"])
    nothing = client.get("/collections/grids/items", params={"bbox": "0,0,1,1"}).json()
    assert nothing["numberMatched"] == 0 and nothing["features"] == []
    three_d = client.get(
        "/collections/grids/items", params={"bbox": "9.4,47.0,0,9.7,47.3,100"}
    ).json()
    assert three_d["numberMatched"] == vaduz["numberMatched"]


@pytest.mark.parametrize(
    "bbox",
    [
        "1,2,3",
        "a,b,c,d",
        "0,0,1,nan",
        "0,0,1,inf",
        "200,0,201,1",
        "0,-95,1,1",
        "29,118,30,119,1",
        "10,5,9,6",  # minlon > maxlon (antimeridian)
        "0,5,1,4",  # minlat > maxlat
        "",
    ],
)
def test_bad_bbox_is_400(client: TestClient, bbox: str) -> None:
    body = assert_problem(
        client.get("/collections/grids/items", params={"bbox": bbox}), 400
    )
    assert "bbox" in body["detail"]


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 10_001}, {"offset": -1}, {"limit": "x"}]
)
def test_bad_paging_is_422(client: TestClient, params: dict[str, object]) -> None:
    assert_problem(client.get("/collections/areas/items", params=params), 422)


def test_grids_by_plan_and_area(client: TestClient, api_data: ApiData) -> None:
    old = client.get(
        "/collections/grids/items", params={"plan": api_data.old_plan, "limit": 1000}
    ).json()
    new = client.get(
        "/collections/grids/items", params={"plan": api_data.plan, "limit": 1000}
    ).json()
    assert {f["properties"]["plan_status"] for f in old["features"]} == {"archived"}
    assert old["numberMatched"] > new["numberMatched"]  # smaller grids in 2024
    township = county().areas.query("level == 'township'")["code"].iloc[0]
    part = client.get(
        "/collections/grids/items", params={"area": township, "limit": 1000}
    ).json()
    assert 0 < part["numberMatched"] < new["numberMatched"]
    whole = client.get(
        "/collections/grids/items", params={"area": COUNTY, "limit": 1000}
    ).json()
    assert whole["numberMatched"] == new["numberMatched"]
    unknown_plan = client.get("/collections/grids/items", params={"plan": 999999})
    assert assert_problem(unknown_plan, 404)["type"] == "/problems/unknown-plan"
    assert_problem(
        client.get("/collections/areas/items", params={"plan": api_data.plan}), 400
    )


def test_single_items(client: TestClient) -> None:
    grids = client.get("/collections/grids/items", params={"limit": 1}).json()
    fid = grids["features"][0]["id"]
    one = client.get(f"/collections/grids/items/{fid}")
    assert one.status_code == 200 and one.headers["content-type"].startswith(GEOJSON)
    assert one.json()["id"] == fid and one.json()["type"] == "Feature"
    area = client.get(f"/collections/areas/items/{COUNTY}").json()
    assert area["properties"]["level"] == "county"
    assert area["properties"]["parent_code"] is None
    assert shape(area["geometry"]).geom_type == "MultiPolygon"


@pytest.mark.parametrize(
    "path",
    [
        "/collections/grids/items/999999",
        "/collections/grids/items/abc",
        "/collections/grids/items/99999999999999999999",
        "/collections/areas/items/nope",
        "/collections/rivers/items",
        "/collections/rivers",
        "/collections/rivers/items/1",
    ],
)
def test_unknown_ids_are_404(client: TestClient, path: str) -> None:
    assert_problem(client.get(path), 404)


def test_households_need_a_viewer_key(client: TestClient, api_data: ApiData) -> None:
    body = assert_problem(client.get("/collections/households/items"), 401)
    assert "viewer" in body["detail"]
    r = client.get("/collections/households/items")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert_problem(
        client.get(
            "/collections/households/items", headers=auth("gm_deadbeef_" + "x" * 43)
        ),
        401,
    )
    assert_problem(
        client.get("/collections/households/items", headers=auth("garbage")), 401
    )
    assert_problem(client.get("/collections/households/items/H1"), 401)
    ok = client.get(
        "/collections/households/items",
        params={"limit": 3},
        headers=auth(api_data.viewer),
    )
    assert ok.status_code == 200, ok.text
    fc = ok.json()
    assert fc["numberMatched"] == len(county().households) + 40
    hid = fc["features"][0]["id"]
    via_header = client.get(
        f"/collections/households/items/{hid}", headers={"X-API-Key": api_data.viewer}
    )
    assert via_header.status_code == 200
    assert via_header.json()["geometry"]["type"] == "Point"
    planner = client.get(
        f"/collections/households/items/{hid}", headers=auth(api_data.planner)
    )
    assert planner.status_code == 200  # planner includes viewer
    assert_problem(
        client.get("/collections/households/items/nope", headers=auth(api_data.viewer)),
        404,
    )


# -- vector tiles --------------------------------------------------------------------


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    lat_r = math.radians(lat)
    y = int((1 - math.asinh(math.tan(lat_r)) / math.pi) / 2 * n)
    return x, y


def test_vector_tiles(client: TestClient, api_data: ApiData) -> None:
    c = shapely.unary_union(county().areas.geometry.values).representative_point()
    x, y = _tile_of(c.x, c.y, 10)
    r = client.get(f"/tiles/10/{x}/{y}.pbf")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    assert len(r.content) > 100
    assert b"grids" in r.content and b"330803" in r.content  # layer name, grid codes
    archived = client.get(f"/tiles/10/{x}/{y}.pbf", params={"plan": api_data.old_plan})
    assert archived.status_code == 200 and archived.content != r.content
    world = client.get("/tiles/0/0/0.pbf")
    assert world.status_code == 200 and b"grids" in world.content
    empty = client.get("/tiles/10/0/0.pbf")
    assert empty.status_code == 200 and empty.content == b""


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/tiles/1/2/0.pbf", 404),
        ("/tiles/1/0/2.pbf", 404),
        ("/tiles/0/1/1.pbf", 404),
        ("/tiles/25/0/0.pbf", 422),
        ("/tiles/-1/0/0.pbf", 422),
        ("/tiles/a/0/0.pbf", 422),
        ("/tiles/3/0/0.png", 404),
    ],
)
def test_bad_tiles(client: TestClient, path: str, status: int) -> None:
    assert_problem(client.get(path), status)
