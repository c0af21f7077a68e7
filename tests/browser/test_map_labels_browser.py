"""Grid labels at township zoom in a real browser (Debian chromium via Playwright):
no two visible label boxes overlap, in the coverage and the balance map (issue 26)."""

from __future__ import annotations

from pathlib import Path

import browser_support
import pytest

import maps
from geo.gridding.generate import generate_grids
from geo.sample import generate_county

browser = browser_support.browser

MAP = "window[document.querySelector('.folium-map').id]"


@pytest.fixture(scope="module")
def county_maps(tmp_path_factory) -> tuple[dict[str, Path], list[list[float]]]:
    out = tmp_path_factory.mktemp("labels")
    c = generate_county(20_000, seed=0)  # the main job's county: 81 grids
    plan = maps.sample_coverage(
        generate_grids(c.households, c.areas, barriers=c.barriers),
        c.households,
        c.people,
    )
    cov = maps.coverage_map(plan, c.households, people=c.people, areas=c.areas)
    bal = maps.balance_map(plan, areas=c.areas)
    # the township with the most grids
    town = plan.grids["area_code"].str[:9].value_counts().index[0] + "000"
    x0, y0, x1, y1 = c.areas.set_index("code").loc[[town]].total_bounds
    return (
        {
            "coverage": maps.save_html(cov, out / "coverage.html"),
            "balance": maps.save_html(bal, out / "balance.html"),
        },
        [[float(y0), float(x0)], [float(y1), float(x1)]],
    )


#: Visible label boxes that overlap (by more than half a pixel), and how many show.
_OVERLAPS = """() => {
  const view = document.querySelector('.folium-map').getBoundingClientRect();
  const boxes = [];
  document.querySelectorAll('.gm-label:not(.gm-label-hidden) span').forEach(s => {
    const r = s.getBoundingClientRect(), cs = getComputedStyle(s);
    if (!r.width || cs.visibility === 'hidden' || cs.display === 'none') return;
    if (r.right < view.left || r.left > view.right || r.bottom < view.top || r.top > view.bottom) return;
    boxes.push([r.left, r.top, r.right, r.bottom, s.textContent]);
  });
  const bad = [];
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const a = boxes[i], b = boxes[j];
    if (a[0] < b[2] - 0.5 && a[2] > b[0] + 0.5 && a[1] < b[3] - 0.5 && a[3] > b[1] + 0.5)
      bad.push([a[4], b[4]]);
  }
  return {shown: boxes.length, hidden: document.querySelectorAll('.gm-label.gm-label-hidden').length, bad: bad};
}"""


def _open(browser, path: Path):
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route(
        "**/*",
        lambda r: (
            r.continue_()
            if r.request.url.startswith(("file://", "data:", "blob:"))
            else r.abort()
        ),
    )
    page.goto(path.as_uri())
    page.wait_for_selector("[data-gridmap-ready]", timeout=30_000)
    return page, errors


def _passes(page) -> int:
    return int(
        page.evaluate(
            "() => +document.querySelector('.folium-map').getAttribute('data-gridmap-labels') || 0"
        )
    )


@pytest.mark.parametrize("kind", ["coverage", "balance"])
def test_visible_labels_never_overlap_at_township_zoom(browser, county_maps, kind):
    paths, town = county_maps
    page, errors = _open(browser, paths[kind])
    try:
        seen = _passes(page)
        assert seen >= 1  # the first pass ran before the page said ready
        # the township, fitted as a planner would open it, then closer (animated)
        page.evaluate(f"() => {{ {MAP}.fitBounds({town!r}, {{animate: false}}); }}")
        page.wait_for_function(
            f"() => +document.querySelector('.folium-map').getAttribute('data-gridmap-labels') > {seen}"
        )
        for zoom in (None, 14, 15, 16):
            if zoom is not None:
                seen = _passes(page)
                page.evaluate(f"() => {{ {MAP}.setZoom({zoom}); }}")
                page.wait_for_function(
                    f"() => {MAP}.getZoom() === {zoom} && !{MAP}._animatingZoom && "
                    f"+document.querySelector('.folium-map').getAttribute('data-gridmap-labels') > {seen}"
                )
            z = page.evaluate(f"() => {MAP}.getZoom()")
            res = page.evaluate(_OVERLAPS)
            assert res["bad"] == [], (kind, z, res["bad"][:5])
            assert res["shown"] >= 3, (kind, z, res)
        assert errors == []
    finally:
        page.close()


def _wait_pass(page, seen: int) -> None:
    page.wait_for_function(
        f"() => !{MAP}._animatingZoom && +document.querySelector('.folium-map')"
        f".getAttribute('data-gridmap-labels') > {seen}"
    )


def test_labels_hidden_for_room_come_back_when_zoomed_in(browser, county_maps):
    paths, town = county_maps
    page, errors = _open(browser, paths["coverage"])
    try:
        seen = _passes(page)
        page.evaluate(f"() => {{ {MAP}.fitBounds({town!r}, {{animate: false}}); }}")
        _wait_pass(page, seen)
        z = page.evaluate(f"() => {MAP}.getZoom()")
        near = page.evaluate(_OVERLAPS)
        # two levels out, labels forced on: many must give way, none overlap
        seen = _passes(page)
        page.evaluate(
            f"() => {{ const m = {MAP}; m._gridmap.cfg.labelZoom = 0; "
            f"m.setZoom({z - 2}, {{animate: false}}); }}"
        )
        _wait_pass(page, seen)
        far = page.evaluate(_OVERLAPS)
        assert far["bad"] == [] and far["hidden"] > 0, far
        assert far["shown"] < near["shown"], (far, near)
        # back in: the same labels as before
        seen = _passes(page)
        page.evaluate(f"() => {{ {MAP}.setZoom({z}, {{animate: false}}); }}")
        _wait_pass(page, seen)
        again = page.evaluate(_OVERLAPS)
        assert again["bad"] == [] and again["shown"] == near["shown"], (near, again)
        assert errors == []
    finally:
        page.close()
