"""The viewer's events layer (issue 13) in Chromium, against a real server: open
events per grid for everyone, overdue grids marked; the events themselves appear
for a worker's key and not for a viewer's. Any console error, and any request to
another host, fails."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import api_support as support
import browser_support
import event_map_support as evm
import pytest
from browser_support import PHONE, served

from geo.store.settings import Settings

browser = browser_support.browser

MAP = "window[document.querySelector('.folium-map').id]"

api_data = support.api_data


@pytest.fixture(scope="module")
def events(api_data: support.ApiData) -> evm.MapEvents:
    return evm.load_events(api_data)


@pytest.fixture(scope="module")
def server(api_data: support.ApiData, events: evm.MapEvents) -> Iterator[str]:
    # escalation off: the counts must not move under the test
    with served(Settings(database_url=api_data.url, escalate_every_s=0)) as base:
        yield base


class _Page:
    """A fresh page (own storage) that records console errors, same-origin
    requests by path, and refuses every other host."""

    def __init__(self, browser, server: str) -> None:  # type: ignore[no-untyped-def]
        origin = urlsplit(server)
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.paths: list[str] = []
        self.page = browser.new_page(viewport={"width": 1280, "height": 860})

        def route(r) -> None:  # type: ignore[no-untyped-def]
            u = urlsplit(r.request.url)
            if r.request.url.startswith(("data:", "blob:")) or (
                u.scheme,
                u.netloc,
            ) == (origin.scheme, origin.netloc):
                self.paths.append(u.path)
                r.continue_()
            else:
                self.foreign.append(r.request.url)
                r.abort()

        self.page.on(
            "console",
            lambda m: self.errors.append(m.text) if m.type == "error" else None,
        )
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.route("**/*", route)
        self.page.goto(server + "/map")
        self.page.wait_for_selector("[data-gridmap-ready]", timeout=30_000)

    def attr(self, name: str) -> str | None:
        return self.page.get_attribute(".folium-map", name)

    def type_key(self, key: str) -> None:
        self.page.fill(".gm-keybox input[name=key]", key)
        self.page.click(".gm-keybox button")
        self.page.wait_for_selector("[data-gridmap-houses]", timeout=30_000)

    def close(self) -> None:
        self.page.close()
        assert self.errors == [], self.errors
        assert self.foreign == [], self.foreign


def test_public_viewer_shows_open_events_per_grid(
    browser, server: str, events: evm.MapEvents
) -> None:
    p = _Page(browser, server)
    try:
        p.page.wait_for_selector("[data-gridmap-events]", timeout=30_000)
        assert int(p.attr("data-gridmap-events") or -1) == events.open
        assert int(p.attr("data-gridmap-events-overdue") or -1) == events.overdue
        # one bubble per grid with open events; the overdue ones marked
        counts = p.page.evaluate(f"() => {MAP}._gridmap.events.totals")
        assert counts["open"] == events.open
        assert p.page.locator(".gm-ev-count").count() == counts["grids"] > 0
        assert p.page.locator(".gm-ev-overdue").count() == events.overdue_grids
        note = p.page.inner_text(".gm-ev-legend")
        assert f"未办结事件 {events.open} 件" in note
        assert f"超期 {events.overdue} 件" in note
        # the layer is in the layer control
        assert "未办结事件（按网格）" in (
            p.page.text_content(".leaflet-control-layers") or ""
        )
        # counts only: nothing private and no event drawn one by one
        html = p.page.content()
        assert [v for v in events.private if v in html] == []
        assert p.attr("data-gridmap-event-points") is None
        assert "/map/events" not in p.paths and "/map/events/grids" in p.paths
    finally:
        p.close()


def test_a_viewer_key_adds_households_but_no_events(
    browser, server: str, api_data: support.ApiData, events: evm.MapEvents
) -> None:
    p = _Page(browser, server)
    try:
        p.type_key(api_data.viewer)
        # the key's role is read before the houses are marked loaded: a viewer
        # key never asks for the events themselves
        assert "/map/events" not in p.paths
        assert p.attr("data-gridmap-event-points") is None
    finally:
        p.close()


def test_a_workers_key_draws_the_open_events(
    browser, server: str, events: evm.MapEvents
) -> None:
    p = _Page(browser, server)
    try:
        p.type_key(events.worker)
        p.page.wait_for_selector("[data-gridmap-event-points]", timeout=30_000)
        assert int(p.attr("data-gridmap-event-points") or -1) == events.open
        text = p.page.evaluate(
            f"""() => {{
              const lyr = {MAP}._gridmap.events.points.getLayers()
                .find(l => l.options.weight > 2);  // an overdue one
              lyr.openPopup();
              return document.querySelector('.leaflet-popup-content').innerText;
            }}"""
        )
        assert "超期" in text and "类别" in text and "期限" in text, text
        assert not PHONE.search(text) and "测试居民" not in text, text
    finally:
        p.close()
