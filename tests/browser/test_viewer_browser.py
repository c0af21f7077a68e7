"""The served web viewer ``GET /map`` in a real browser, against a real server.

A uvicorn server on 127.0.0.1 (a free port) serves the API over the shared test
data (see api_support); Debian chromium driven by Playwright loads ``/map``,
clicks a house, and types addresses that the page resolves through ``GET /lookup``
on the same origin. Any console error, and any request to another host, fails.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import api_support as support
import browser_support
import pytest
from api_support import APT_RE, VILLAGE_RE, cn_number
from api_support import pick_address as _pick
from browser_support import PHONE, served

from geo.store.settings import Settings

browser = browser_support.browser

GRID = re.compile(r"330803\d{8}")
SCREENSHOT = Path("/tmp/viewer.png")
MAP = "window[document.querySelector('.folium-map').id]"
POPUP = "((document.querySelector('.leaflet-popup-content')||{}).innerText||'')"
#: the one console message a deliberate 404 from /lookup makes Chromium print
NOT_FOUND = "Failed to load resource: the server responded with a status of 404"
#: ... and the one a deliberately wrong key makes
UNAUTHORIZED = "Failed to load resource: the server responded with a status of 401"


api_data = support.api_data


#: Records every Content-Security-Policy refusal in ``window.__csp``.
_RECORD_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  e => window.__csp.push(e.effectiveDirective + ' ' + e.blockedURI));
"""


@pytest.fixture(scope="module")
def server(api_data: support.ApiData) -> Iterator[str]:
    with served(Settings(database_url=api_data.url)) as base:
        yield base


def test_viewer_in_chromium(browser, server: str, api_data: support.ApiData) -> None:
    origin = urlsplit(server)
    errors: list[tuple[str, str]] = []
    foreign: list[str] = []
    lookups: list[str] = []
    houses: list[dict[str, str]] = []
    house_urls: list[str] = []

    def route(r) -> None:
        u = urlsplit(r.request.url)
        if r.request.url.startswith(("data:", "blob:")) or (
            u.scheme,
            u.netloc,
        ) == (origin.scheme, origin.netloc):
            if u.path == "/lookup":
                lookups.append(r.request.url)
            if u.path == "/map/households":
                houses.append(r.request.headers)
                house_urls.append(r.request.url)
            r.continue_()
        else:
            foreign.append(r.request.url)
            r.abort()

    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.on(
        "console",
        lambda m: (
            errors.append((m.text, m.location.get("url", "")))
            if m.type == "error"
            else None
        ),
    )
    page.on("pageerror", lambda e: errors.append((str(e), "")))
    page.route("**/*", route)
    page.add_init_script(_RECORD_CSP)
    try:
        page.goto(server + "/map")
        page.wait_for_selector("[data-gridmap-ready]", timeout=30_000)
        page.wait_for_selector(".leaflet-overlay-pane canvas", timeout=30_000)
        page.wait_for_selector(".gm-label span", timeout=30_000)  # grids labelled
        assert page.evaluate(f"() => {MAP}._gridmap.cfg.lookupUrl") == "/lookup"

        # ---- public: no household in the page; a wrong key is refused in the box
        assert page.evaluate(f"() => {MAP}._gridmap.allHouses.length") == 0
        page.fill(".gm-keybox input[name=key]", "gm_00000000_not-a-key")
        page.click(".gm-keybox button")
        page.wait_for_function(
            "() => /not valid/.test(document.querySelector('.gm-keybox-msg').innerText)",
            timeout=10_000,
        )
        # ---- a viewer key typed once loads the households (X-API-Key): their
        # index, then the villages in view from the house zoom on (0 in a county
        # this small: all at once; 17 here first, as a large county would have it)
        page.evaluate(f"() => {{ {MAP}._gridmap.cfg.houseZoom = 17; }}")
        assert page.evaluate(f"() => {MAP}.getZoom()") < 17
        page.fill(".gm-keybox input[name=key]", api_data.viewer)
        page.click(".gm-keybox button")
        page.wait_for_selector("[data-gridmap-houses]", timeout=30_000)
        n = int(page.get_attribute(".folium-map", "data-gridmap-houses") or "0")
        assert n == len(support.county().households)
        assert houses[-1].get("x-api-key") == api_data.viewer, houses
        assert page.get_attribute(".folium-map", "data-gridmap-houses-loaded") == "0"
        assert house_urls and not [u for u in house_urls if "areas=" in u]
        first = support.county().households.geometry.iloc[0]
        page.evaluate(
            f"([x, y]) => {{ {MAP}.setView([y, x], 17, {{animate: false}}); }}",
            [first.x, first.y],
        )
        page.wait_for_function(
            "() => +document.querySelector('.folium-map')"
            ".getAttribute('data-gridmap-houses-loaded') > 0",
            timeout=30_000,
        )
        part = int(page.get_attribute(".folium-map", "data-gridmap-houses-loaded"))
        assert 0 < part <= n
        # back to the county's own house zoom (0), the county in view: every village
        page.evaluate(
            f"() => {{ const m = {MAP}; m._gridmap.cfg.houseZoom = 0; m.setZoom(11, {{animate: false}}); }}"
        )
        page.wait_for_function(
            "n => +document.querySelector('.folium-map')"
            ".getAttribute('data-gridmap-houses-loaded') === n",
            arg=n,
            timeout=30_000,
        )
        asked = [u for u in house_urls if "areas=" in u]
        assert asked and all("plan=" in u for u in house_urls), house_urls
        loaded = int(page.get_attribute(".folium-map", "data-gridmap-houses-loaded"))
        assert loaded == n
        assert any("areas=" in u for u in house_urls), house_urls

        # ---- click a single house: its grid, grid worker and member, work phones
        page.evaluate(
            f"""() => {{
              const map = {MAP}, lyr = map._gridmap.allHouses[0];
              lyr._decode();
              let k = 0; while (lyr.cnt[k] > 1) k++;
              window._gmPick = lyr.latlng(k);
              map.setView(window._gmPick, 17, {{animate: false}});
            }}"""
        )
        # (re-applied while the initial fit-bounds zoom animation may still run)
        page.wait_for_function(
            f"""() => {{
              const map = {MAP};
              if (map.getZoom() !== 17 && !map._animatingZoom)
                map.setView(window._gmPick, 17, {{animate: false}});
              return map.getZoom() === 17 && !map._animatingZoom &&
                map._gridmap.houses.some(h => h._group && map.hasLayer(h._group));
            }}"""
        )
        xy = page.evaluate(
            f"() => {{ const p = {MAP}.latLngToContainerPoint(window._gmPick);"
            " return [p.x, p.y]; }"
        )
        box = page.query_selector(".folium-map").bounding_box()
        assert box
        page.mouse.click(box["x"] + xy[0], box["y"] + xy[1])
        page.wait_for_selector(".leaflet-popup-content", timeout=5_000)
        text = page.inner_text(".leaflet-popup-content")
        assert "网格员" in text and GRID.search(text), text
        assert len(PHONE.findall(text)) >= 2, text
        page.evaluate(f"() => {{ {MAP}.closePopup(); }}")

        # ---- type an address (Chinese numerals: only the API reads them) -> jump
        hid, address, m = _pick(VILLAGE_RE, small=True)
        village, group, no = m.groups()
        typed = f"衢江区{village}{cn_number(int(group))}组{cn_number(int(no))}号"
        row = support.county().households.set_index("household_id").loc[hid]
        lon, lat = row.geometry.x, row.geometry.y
        page.evaluate(f"() => {{ {MAP}.setView([{lat} + 0.05, {lon} - 0.05], 12); }}")
        page.click(".leaflet-control-search .search-button")
        page.fill("input.search-input", typed)
        page.wait_for_function(
            f"a => {POPUP}.includes(a) && document.querySelector('.gm-hit')",
            arg=address,
            timeout=10_000,
        )
        assert any("address=" in u for u in lookups), lookups
        text = page.inner_text(".leaflet-popup-content")
        assert GRID.search(text) and PHONE.search(text), text
        centre = page.evaluate(
            f"() => {{ const c = {MAP}.getCenter(); return [c.lng, c.lat, {MAP}.getZoom()]; }}"
        )
        assert abs(centre[0] - lon) < 1e-4 and abs(centre[1] - lat) < 1e-4, centre
        assert centre[2] == 17
        page.wait_for_function(  # the popup has faded in
            "() => getComputedStyle(document.querySelector('.leaflet-popup')).opacity === '1'"
        )
        page.screenshot(path=str(SCREENSHOT))

        # ---- an incomplete address: ranked candidates to pick from
        _, _, am = _pick(APT_RE)
        place, no, bld, unit, _ = am.groups()
        page.fill("input.search-input", "")
        page.fill("input.search-input", f"{place}{no}号{bld}幢{unit}单元")
        page.wait_for_function(
            "() => document.querySelectorAll('.search-tip').length >= 2",
            timeout=10_000,
        )
        tips = page.locator(".search-tip").all_inner_texts()
        assert all(f"{unit}单元" in t and GRID.search(t) for t in tips), tips
        code = GRID.search(tips[1])
        assert code
        picked = tips[1].split("（")[0]
        page.click(".search-tip >> nth=1")
        page.wait_for_function(
            f"([a, c]) => {POPUP}.includes(a) && {POPUP}.includes(c)",
            arg=[picked, code.group(0)],
            timeout=5_000,
        )
        assert page.query_selector(".gm-hit")

        # ---- no match: the 404 problem's detail is shown
        page.fill("input.search-input", "")
        page.fill("input.search-input", "黑龙江省漠河市北极村99组999号")
        page.wait_for_function(
            "() => /No household matches/.test("
            "(document.querySelector('.search-alert')||{}).innerText||'')",
            timeout=10_000,
        )
        # every script of the page ran under the CSP (none refused) ...
        assert page.evaluate("() => window.__csp") == []
        # ... and markup slipped into the page cannot run script
        page.evaluate(
            """() => { const d = document.createElement('div');
              d.innerHTML = '<img src="data:," onerror="window.__pwned = 1">';
              document.body.appendChild(d); }"""
        )
        page.wait_for_function("() => window.__csp.length > 0", timeout=5_000)
        assert page.evaluate("() => window.__pwned") is None
        assert page.evaluate("() => window.__csp[0]").startswith("script-src")
    finally:
        page.screenshot(path="/tmp/viewer-last.png")
        page.close()

    assert foreign == [], foreign
    # the deliberate 404 above is logged by Chromium itself; nothing else may be
    unexpected = [
        (t, u)
        for t, u in errors
        if not (t.startswith(NOT_FOUND) and "/lookup?" in u)
        and not (t.startswith(UNAUTHORIZED) and "/map/households?" in u)
        # the deliberate injection (refusals before it: window.__csp == [])
        and not t.startswith("Executing inline event handler violates")
    ]
    assert unexpected == [], errors


def test_docs_offline_in_chromium(browser, server: str) -> None:
    """/docs renders Swagger UI with every request to another host blocked."""
    origin = urlsplit(server)
    errors: list[str] = []
    foreign: list[str] = []

    def route(r) -> None:
        u = urlsplit(r.request.url)
        if r.request.url.startswith(("data:", "blob:")) or (u.scheme, u.netloc) == (
            origin.scheme,
            origin.netloc,
        ):
            r.continue_()
        else:
            foreign.append(r.request.url)
            r.abort()

    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("**/*", route)
    page.add_init_script(_RECORD_CSP)
    try:
        page.goto(server + "/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=30_000)
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        assert "/lookup" in paths and "/map/households" in paths, paths
        assert page.inner_text(".info .title").startswith("GridMap API")
        assert page.evaluate("() => typeof SwaggerUIBundle") == "function"
        assert page.evaluate("() => window.__csp") == []  # nothing refused
    finally:
        page.close()
    assert foreign == [], foreign
    assert errors == [], errors
    # no ReDoc page (it would need a CDN too)
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(server + "/redoc", timeout=10)
        raise AssertionError("/redoc should not be served")
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
