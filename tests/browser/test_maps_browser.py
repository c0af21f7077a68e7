"""The saved maps in a real browser (Debian chromium driven by Playwright), offline."""

from __future__ import annotations

import json
import re
from pathlib import Path

import browser_support
import pytest
from browser_support import PHONE

import maps
from geo.gridding.generate import generate_grids
from geo.sample import generate_county

browser = browser_support.browser


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("maps")
    c = generate_county(3_000, seed=1)
    a = generate_grids(c.households, c.areas, barriers=c.barriers)
    b = generate_grids(
        c.households,
        c.areas,
        barriers=c.barriers,
        min_households=150,
        max_households=250,
    )
    cov = maps.coverage_map(
        maps.sample_coverage(a, c.households, c.people),
        c.households,
        people=c.people,
        areas=c.areas,
        barriers=c.barriers,
    )
    return {
        "coverage": maps.save_html(cov, out / "coverage.html"),
        "balance": maps.save_html(maps.balance_map(a), out / "balance.html"),
        "diff": maps.save_html(
            maps.diff_map(a, None, b, None, c.households), out / "diff.html"
        ),
    }


class Page:
    """A page that records console errors and refuses every non-local request."""

    def __init__(self, browser, path: Path) -> None:
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.page = browser.new_page(viewport={"width": 1280, "height": 860})
        self.page.on(
            "console",
            lambda m: self.errors.append(m.text) if m.type == "error" else None,
        )
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.route("**/*", self._route)
        self.page.goto(path.as_uri())
        self.page.wait_for_selector("[data-gridmap-ready]", timeout=30_000)
        self.page.wait_for_selector(".leaflet-overlay-pane canvas", timeout=30_000)

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith(("file://", "data:", "blob:")):
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()

    def check_clean(self) -> None:
        assert self.foreign == [], self.foreign
        assert self.errors == [], self.errors


MAP = "window[document.querySelector('.folium-map').id]"


def test_measuring_a_distance_and_an_area(browser, pages):
    """The measuring tool: three clicks on the map give the line's length and
    the triangle's area, as computed from the points themselves; a double
    click ends it (no extra point), 清 clears it."""
    pg = Page(browser, pages["balance"])
    page = pg.page
    page.evaluate(f"() => {MAP}.setView([29.0, 118.9], 15, {{animate: false}})")
    box = page.query_selector(".folium-map").bounding_box()
    page.click(".gm-measure-toggle")
    clicks = [(400, 300), (700, 300), (700, 600)]
    for x, y in clicks[:2]:
        page.mouse.click(box["x"] + x, box["y"] + y)
    x, y = clicks[2]
    page.mouse.dblclick(box["x"] + x, box["y"] + y)  # the third point, and the end
    got = page.evaluate(
        f"""() => {{
          const map = {MAP};
          const pts = {json.dumps(clicks)}.map(p => map.containerPointToLatLng(p));
          const m = JSON.parse(map.getContainer().getAttribute('data-gridmap-measure'));
          return {{m, len: GridMap.measureLength(pts), area: GridMap.measureArea(pts),
                   leg: map.distance(pts[0], pts[1]), zoom: map.getZoom()}};
        }}"""
    )
    m = got["m"]
    assert got["zoom"] == 15 and m["points"] == 3, got
    assert m["metres"] == pytest.approx(got["len"], abs=0.2)
    assert m["square_metres"] == pytest.approx(got["area"], abs=1)
    # a right triangle of legs a, b: area a*b/2 (to within the sphere's curvature)
    assert m["square_metres"] == pytest.approx(got["leg"] ** 2 * 0.5, rel=0.02)
    tip = page.inner_text(".gm-measure-tip")
    assert "长度" in tip and "面积" in tip and "亩" in tip, tip
    # ended: another click adds nothing; 清 clears
    page.mouse.click(box["x"] + 500, box["y"] + 500)
    m2 = page.evaluate(
        f"() => JSON.parse({MAP}.getContainer().getAttribute('data-gridmap-measure'))"
    )
    assert m2["points"] == 3
    page.click(".gm-measure-clear")
    assert page.query_selector(".gm-measure-tip") is None
    pg.check_clean()
    page.close()


def test_coverage_map_in_chromium(browser, pages, tmp_path):
    pg = Page(browser, pages["coverage"])
    page = pg.page
    # the controls are there
    for sel in (
        ".leaflet-control-layers",
        ".leaflet-control-zoom-fullscreen",
        ".gm-measure",
        ".leaflet-control-search",
        ".gm-legend",
        ".gm-label",
    ):
        assert page.query_selector(sel), sel
    # zoom onto a single house and click it
    page.evaluate(
        f"""() => {{
          const map = {MAP}, lyr = map._gridmap.allHouses[0];
          lyr._decode();
          let k = 0; while (lyr.cnt[k] > 1) k++;
          window._gmPick = lyr.latlng(k);
          map.setView(window._gmPick, 17, {{animate: false}});
        }}"""
    )
    page.wait_for_function(
        f"() => {MAP}.getZoom() === 17 && {MAP}._gridmap.houses.some(h => h._group && {MAP}.hasLayer(h._group))"
    )
    xy = page.evaluate(
        f"() => {{ const p = {MAP}.latLngToContainerPoint(window._gmPick); return [p.x, p.y]; }}"
    )
    box = page.query_selector(".folium-map").bounding_box()
    page.mouse.click(box["x"] + xy[0], box["y"] + xy[1])
    page.wait_for_selector(".leaflet-popup-content", timeout=5_000)
    text = page.inner_text(".leaflet-popup-content")
    assert "地址" in text and "网格员" in text and "联户党员" in text, text
    assert re.search(r"网格\s+330803\d{8}", text), text
    assert len(PHONE.findall(text)) >= 2, text
    page.screenshot(path=str(tmp_path / "coverage-popup.png"))

    # search by grid code, then by address
    page.click(".leaflet-control-search .search-button")
    page.fill("input.search-input", "网格 3308")
    page.wait_for_selector(".search-tip", timeout=5_000)
    page.click(".search-tip >> nth=0")
    page.wait_for_function(
        "() => /330803\\d{8}/.test((document.querySelector('.leaflet-popup-content')||{}).innerText||'')"
    )
    page.fill("input.search-input", "")
    page.fill("input.search-input", "组1")
    page.wait_for_selector(".search-tip", timeout=5_000)
    tip = page.inner_text(".search-tip >> nth=0")
    page.click(".search-tip >> nth=0")
    page.wait_for_function(
        "t => ((document.querySelector('.leaflet-popup-content')||{}).innerText||'').includes(t)",
        arg=tip,
    )
    # colour by member, then back
    page.check("input[name=gm-mode][value=member]")
    page.check("input[name=gm-mode][value=grid]")
    pg.check_clean()
    page.close()


@pytest.mark.parametrize("name", ["balance", "diff"])
def test_other_maps_render_cleanly(browser, pages, name, tmp_path):
    pg = Page(browser, pages[name])
    assert pg.page.query_selector(".gm-legend")
    pg.page.screenshot(path=str(tmp_path / f"{name}.png"))
    pg.check_clean()
    pg.page.close()
