"""The web viewer ``GET /map``: an offline page of the published plan, over HTTP."""

from __future__ import annotations

import re

import api_support as support
import pytest
from api_support import ApiData, assert_problem, without_nonces
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api.app import create_app
from geo.store.settings import Settings

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
    # the same plan is served from the cache the second time (its scripts
    # with a fresh CSP nonce)
    again = client.get("/map").text
    assert again != html and without_nonces(again) == without_nonces(html)


def test_viewer_unknown_area_is_404(client: TestClient) -> None:
    body = assert_problem(client.get("/map", params={"area": "nope"}), 404)
    assert "No published plan for area 'nope'" in body["detail"]


def test_viewer_basemap_is_the_admin_outlines_or_the_configured_tiles(
    client: TestClient, api_data: ApiData
) -> None:
    html = client.get("/map").text
    assert "L.tileLayer" not in html  # no tile server: nothing leaves the server
    assert html.count("GridMap.lines(") >= 1  # the admin area outlines
    assert (
        "\\u884c\\u653f\\u533a\\u5212\\u754c\\u7ebf" in html or "行政区划界线" in html
    )
    tiles = "http://10.0.0.5/tiles/{z}/{x}/{y}.png"
    app = create_app(Settings(database_url=api_data.url, viewer_tiles=tiles))
    with TestClient(app) as c:
        page = c.get("/map").text
    assert "L.tileLayer" in page and "http://10.0.0.5/tiles/{z}/{x}/{y}.png" in page
    with pytest.raises(ValidationError, match="XYZ"):
        Settings(database_url=api_data.url, viewer_tiles="http://10.0.0.5/tiles.png")
