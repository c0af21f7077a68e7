"""The maps' ready signal in a real browser: a view set once the page says
``data-gridmap-ready`` stays where it was set.

A page that signals ready and only then applies its initial extent (a deferred or
animated ``fitBounds``, a re-fit on load or resize) throws a user who searches at
once back to the whole county. Two ways in:

* an init script sets a view from inside the page in the very moment the attribute
  appears (a ``MutationObserver``), the earliest any script can react;
* on a CPU slowed down through the DevTools protocol (as on a small fresh machine),
  the test waits for the signal as any test does and then sets a view. (This one
  failed on the old page only now and then: the throttle slows Playwright's own
  in-page wait as much as the page, so the first way is the deterministic one.)

Then two animation frames pass (anything the page queued before has started by
then) and the view must be the one set, with no zoom animation running and no view
change since.
"""

from __future__ import annotations

from pathlib import Path

import browser_support
import pytest
from samples import sample_county

import maps
from geo.gridding.generate import generate_grids

browser = browser_support.browser

MAP = "window[document.querySelector('.folium-map').id]"
#: how much slower than this machine the CPU runs in the throttled tests
SLOWDOWN = 4

#: after 2 frames: the view, whether a zoom animation runs, the view changes logged
STATE = f"""() => new Promise(done => requestAnimationFrame(() =>
  requestAnimationFrame(() => {{
    const map = {MAP}, c = map.getCenter();
    done({{lat: c.lat, lng: c.lng, zoom: map.getZoom(),
           animating: !!map._animatingZoom, changes: window._gmChanges || null}});
  }})))"""

#: log every view change from now on (window._gmChanges)
WATCH = """map => {
  window._gmChanges = [];
  map.on('zoomanim zoomstart movestart viewreset', e =>
    window._gmChanges.push(e.type + ' ' + map.getZoom()));
}"""

#: set the view the moment the page signals ready, from inside the page
ON_READY = """
(() => {
  const target = %s;
  new MutationObserver((records, obs) => {
    const box = document.querySelector('[data-gridmap-ready]');
    if (!box) return;
    obs.disconnect();
    const map = window[box.id];
    map.setView(target, 17, {animate: false});
    (%s)(map);
    window._gmSet = true;
  }).observe(document, {subtree: true, attributes: true,
                        attributeFilter: ['data-gridmap-ready']});
})();
"""


@pytest.fixture(scope="module")
def county():
    c = sample_county(1_500, seed=3)
    return c, generate_grids(c.households, c.areas, barriers=c.barriers)


@pytest.fixture(scope="module")
def pages(county, tmp_path_factory) -> dict[str, Path]:
    c, a = county
    out = tmp_path_factory.mktemp("ready")
    cov = maps.coverage_map(
        maps.sample_coverage(a, c.households, c.people),
        c.households,
        people=c.people,
        areas=c.areas,
    )
    return {
        "coverage": maps.save_html(cov, out / "coverage.html"),
        "balance": maps.save_html(maps.balance_map(a), out / "balance.html"),
        "diff": maps.save_html(
            maps.diff_map(a, None, a, None, c.households), out / "diff.html"
        ),
    }


@pytest.fixture(scope="module")
def target(county) -> list[float]:
    """A house far from the initial view's centre, to zoom onto (lat, lng)."""
    c, _ = county
    p = c.households.geometry.iloc[len(c.households) // 3]
    return [round(p.y, 6), round(p.x, 6)]


def _open(browser, path: Path, *, init: str | None = None, slow: bool = False):
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.route(
        "**/*",
        lambda r: r.continue_() if r.request.url.startswith("file://") else r.abort(),
    )
    if slow:
        cdp = page.context.new_cdp_session(page)
        cdp.send("Emulation.setCPUThrottlingRate", {"rate": SLOWDOWN})
    if init:
        page.add_init_script(init)
    page.goto(path.as_uri(), wait_until="commit")
    return page, errors


def _assert_stuck(state: dict, target: list[float], zoom: int) -> None:
    assert state["changes"] == [], f"the view changed after it was set: {state}"
    assert not state["animating"], (
        f"a zoom animation runs after the view was set: {state}"
    )
    assert state["zoom"] == zoom, state
    assert abs(state["lat"] - target[0]) < 1e-6, state
    assert abs(state["lng"] - target[1]) < 1e-6, state


@pytest.mark.parametrize("name", ["coverage", "balance", "diff"])
def test_view_set_at_the_ready_signal_sticks(browser, pages, target, name) -> None:
    page, errors = _open(browser, pages[name], init=ON_READY % (target, WATCH))
    try:
        page.wait_for_function("() => window._gmSet === true", timeout=30_000)
        _assert_stuck(page.evaluate(STATE), target, 17)
        # the page had built everything by the time it said so
        assert page.evaluate(f"() => {MAP}._gridmap.ready") is True
        assert page.query_selector(".gm-legend")
        assert errors == [], errors
    finally:
        page.close()


def test_view_set_right_after_ready_on_a_slow_cpu_sticks(
    browser, pages, target
) -> None:
    page, errors = _open(browser, pages["coverage"], slow=True)
    try:
        page.wait_for_selector("[data-gridmap-ready]", timeout=60_000)
        page.evaluate(
            f"""t => {{ const map = {MAP};
                map.setView(t, 17, {{animate: false}}); ({WATCH})(map); }}""",
            target,
        )
        _assert_stuck(page.evaluate(STATE), target, 17)
        assert errors == [], errors
    finally:
        page.close()
