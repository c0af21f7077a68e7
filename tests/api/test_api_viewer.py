"""The web viewer ``GET /map``: an offline page of the published plan, over HTTP."""

from __future__ import annotations

import re

import api_support as support
from api_support import ApiData, assert_problem
from fastapi.testclient import TestClient

api_data = support.api_data
client = support.client


def test_viewer_page_is_offline_and_shows_the_plan(
    client: TestClient, api_data: ApiData
) -> None:
    r = client.get("/map")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "L.map(" in html  # the Leaflet map is built in the page itself
    # no script, stylesheet or image is fetched from anywhere else
    loads = re.findall(r'src\s*=\s*["\'](https?://[^"\']+)', html)
    links = re.findall(r'<link[^>]+href\s*=\s*["\'](https?://[^"\']+)', html)
    assert loads == [] and links == []
    # grid codes of the published plan and work phones are on the page
    grids = client.get("/collections/grids/items", params={"limit": 5}).json()[
        "features"
    ]
    assert grids and all(f["properties"]["code"] in html for f in grids)
    # the same plan is served from the cache the second time
    assert client.get("/map").text == html


def test_viewer_unknown_area_is_404(client: TestClient) -> None:
    body = assert_problem(client.get("/map", params={"area": "nope"}), 404)
    assert "No published plan for area 'nope'" in body["detail"]
