"""The viewer's edit mode (``/map`` with a planner key) in a real browser, against a real server.

Debian chromium driven by Playwright, every request to another host blocked and
every console error fatal: a planner starts a draft, selects a household by
click and a few more by lasso (the mouse drawn with ``page.mouse``), clicks the
adjacent grid they go to and moves them; the live table's counts equal what
``GET /plans/{id}/grids`` says, undo puts them back, redo again; an edit by
someone else makes the page's next request a 409, shown with the current version
and a reload button; then the draft is published. A viewer key sees no Edit panel.

``GRIDMAP_DOC_SHOTS=1`` also writes the screenshot of ``docs/img/edit-mode.png``.
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import api_support as support
import browser_support
import geopandas as gpd
import numpy as np
import pytest
import shapely
from browser_support import served

from geo.crs import metric_crs_for
from geo.errors import EditError
from geo.gridding import edits as rules
from geo.store.settings import Settings

browser = browser_support.browser
api_data = support.api_data

MAP = "window[document.querySelector('.folium-map').id]"
ED = f"{MAP}._gridmap.edit"
ZOOM = 17
#: where on the 1280×860 page the picked spots are centred (clear of the panels)
SPOT = (470, 360)
DOC_SHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "edit-mode.png"
#: the one console message each deliberate refusal makes Chromium print
CONFLICT = "Failed to load resource: the server responded with a status of 409"


@pytest.fixture(scope="module")
def server(api_data: support.ApiData) -> Iterator[str]:
    with served(Settings(database_url=api_data.url)) as base:
        yield base


# ------------------------------------------------------------------ the spots


@dataclass(frozen=True)
class Spots:
    """Where to click and lasso: households of grid ``a`` to move into ``b``."""

    a: str
    b: str
    click: str  # a household clicked on
    lasso: list[tuple[float, float]]  # lon/lat ring drawn by the mouse
    inside: list[str]  # the units the lasso holds (of a or b)
    moving: list[str]  # households that change grid (click + lasso's of a)
    target: tuple[float, float]  # lon/lat of an empty spot in b
    centre: tuple[float, float]


def _find_spots() -> Spots:
    """The first place (deterministic order) where a household clicked and a few
    lassoed can move from a grid to its neighbour by the engine's own rule, and
    the clicks cannot hit anything else (units apart from the lasso's edge)."""
    plan = support.plans()[1]
    hh = support.county().households
    crs = metric_crs_for(hh)
    grids = plan.grids.set_index("grid_code").to_crs(crs)
    of = plan.assignments.set_index("household_id")["grid_code"]
    counts = of.value_counts()
    m = hh.to_crs(crs)
    # units as the edit mode shows them: buildings at their centroid, other households
    loose = m[m["building_id"].isna()]
    bld = m[m["building_id"].notna()].dissolve("building_id").centroid
    units = gpd.GeoDataFrame(
        {
            "uid": [f"h:{h}" for h in loose["household_id"]]
            + [f"b:{b}" for b in bld.index]
        },
        geometry=list(loose.geometry.values) + list(bld.values),
        crs=crs,
    )
    uxy = shapely.get_coordinates(units.geometry.values)
    grid_of_unit = np.array(
        [of[u[2:]] if u.startswith("h:") else "" for u in units["uid"]], dtype=object
    )
    for a in sorted(grids.index):
        if counts[a] < 206:
            continue
        for b in sorted(grids.index):
            if b == a or counts[b] > 294:
                continue
            edge = shapely.intersection(
                grids.geometry[a].boundary, grids.geometry[b].boundary
            )
            if edge.length < 50:
                continue
            mine = loose[loose["household_id"].map(of) == a]
            near = mine.assign(d=mine.distance(grids.geometry[b])).sort_values("d")
            for p2 in near.geometry[:40]:
                c2 = np.array([p2.x, p2.y])
                dist = np.hypot(*(uxy - c2).T)
                for r in (18.0, 26.0, 35.0, 45.0):
                    if np.any(np.abs(dist - r) < 5):
                        continue  # a unit too near the lasso's edge
                    inside = np.flatnonzero(dist < r)
                    codes = set(grid_of_unit[inside])
                    in_a = [units["uid"][i] for i in inside if grid_of_unit[i] == a]
                    if not codes <= {a, b} or len(in_a) < 2 or len(inside) > 8:
                        continue
                    spot = _with_click_and_target(
                        a, b, grids, loose, of, uxy, c2, r, in_a, hh, plan, crs
                    )
                    if spot is not None:
                        ins = sorted(str(units["uid"][i]) for i in inside)
                        return Spots(
                            a, b, spot[0], spot[1], ins, spot[2], spot[3], spot[4]
                        )
    raise AssertionError("no spot where households can move to a neighbouring grid")


def _with_click_and_target(
    a: str,
    b: str,
    grids: gpd.GeoDataFrame,
    loose: gpd.GeoDataFrame,
    of: Any,
    uxy: np.ndarray,
    c2: np.ndarray,
    r: float,
    in_a: list[str],
    hh: Any,
    plan: Any,
    crs: Any,
) -> (
    tuple[
        str,
        list[tuple[float, float]],
        list[str],
        tuple[float, float],
        tuple[float, float],
    ]
    | None
):
    """A household of ``a`` to click (alone under the pointer, outside the lasso,
    near it) and an empty spot of ``b``, such that the engine accepts the move."""
    mine = loose[loose["household_id"].map(of) == a].set_index("household_id")
    d = np.hypot(mine.geometry.x - c2[0], mine.geometry.y - c2[1])
    target = _empty_spot(grids.geometry[b], uxy, c2)
    if target is None:
        return None
    for hid in d[(d > r + 12) & (d < 120)].sort_values().index[:20]:
        p = mine.geometry[hid]
        if np.sum(np.hypot(*(uxy - np.array([p.x, p.y])).T) < 12) > 1:
            continue  # another unit under the click
        moving = sorted({hid, *[u[2:] for u in in_a]})
        if not (counts_ok(plan, a, len(moving)) and _rule_accepts(plan, hh, moving, b)):
            continue
        ring = [
            (c2[0] + r * math.cos(t), c2[1] + r * math.sin(t))
            for t in np.linspace(0, 2 * math.pi, 25)
        ]
        pts = gpd.GeoSeries(shapely.points([*ring, target, tuple(c2)]), crs=crs).to_crs(
            4326
        )
        ll = [(q.x, q.y) for q in pts]
        return str(hid), ll[:25], moving, ll[-2], ll[-1]
    return None


def counts_ok(plan, a: str, k: int) -> bool:
    n = int((plan.assignments["grid_code"] == a).sum())
    return n - k >= 200


def _rule_accepts(plan, hh, moving: list[str], b: str) -> bool:
    try:
        rules.move_households(plan, hh, moving, b)
    except EditError:
        return False
    return True


def _empty_spot(poly, uxy, c2) -> tuple[float, float] | None:
    """A point of grid ``poly`` near ``c2`` with no unit within 25 m."""
    for rad in (60, 90, 120, 150):
        for t in np.linspace(0, 2 * math.pi, 24, endpoint=False):
            q = (c2[0] + rad * math.cos(t), c2[1] + rad * math.sin(t))
            pt = shapely.Point(q)
            if not poly.contains(pt) or poly.boundary.distance(pt) < 12:
                continue
            if np.min(np.hypot(*(uxy - np.array(q)).T)) > 25:
                return q
    return None


# ------------------------------------------------------------------ helpers


def _get(server: str, path: str, key: str) -> Any:
    req = urllib.request.Request(
        server + path, headers={"Authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _post(server: str, path: str, key: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        server + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def _counts(server: str, draft: int, key: str) -> dict[str, int]:
    body = _get(server, f"/plans/{draft}/grids", key)
    return {
        f["properties"]["code"]: f["properties"]["households"] for f in body["features"]
    }


def _table(page) -> dict[str, int]:
    return {
        row.get_attribute("data-code"): int(row.query_selector(".gm-ed-n").inner_text())
        for row in page.query_selector_all(".gm-ed-table tbody tr")
    }


def _page(browser, server: str) -> tuple[Any, list[tuple[str, str]], list[str]]:
    origin = urlsplit(server)
    errors: list[tuple[str, str]] = []
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
    page.on(
        "console",
        lambda m: (
            errors.append((m.text, m.location.get("url", "")))
            if m.type == "error"
            else None
        ),
    )
    page.on("pageerror", lambda e: errors.append((str(e), "")))
    page.on("dialog", lambda d: d.accept())  # "publish?" is confirmed
    page.route("**/*", route)
    page.goto(server + "/map")
    page.wait_for_selector("[data-gridmap-ready]", timeout=30_000)
    return page, errors, foreign


def _key(page, key: str) -> None:
    page.fill(".gm-keybox input[name=key]", key)
    page.click(".gm-keybox button")
    page.wait_for_selector("[data-gridmap-houses]", timeout=30_000)


def _xy(page, lonlat: tuple[float, float]) -> tuple[float, float]:
    box = page.query_selector(".folium-map").bounding_box()
    p = page.evaluate(
        f"([x, y]) => {{ const p = {MAP}.latLngToContainerPoint([y, x]); return [p.x, p.y]; }}",
        list(lonlat),
    )
    return box["x"] + p[0], box["y"] + p[1]


def _attr(page, name: str) -> str | None:
    return page.get_attribute(".folium-map", f"data-gm-edit-{name}")


def _wait_attr(page, name: str, value: Any, timeout: int = 30_000) -> None:
    page.wait_for_function(
        "([n, v]) => document.querySelector('.folium-map').getAttribute('data-gm-edit-' + n) === v",
        arg=[name, str(value)],
        timeout=timeout,
    )


# ------------------------------------------------------------------ tests


def test_a_viewer_key_sees_no_edit_panel(browser, server: str, api_data) -> None:
    page, errors, foreign = _page(browser, server)
    try:
        _key(page, api_data.viewer)
        assert page.query_selector(".gm-edit") is None
        assert _attr(page, "on") is None
    finally:
        page.close()
    assert foreign == [] and errors == [], (foreign, errors)


def test_redraw_on_the_map(browser, server: str, api_data) -> None:
    t0 = time.monotonic()
    spots = _find_spots()
    planner = api_data.planner
    page, errors, foreign = _page(browser, server)
    try:
        _key(page, planner)
        page.wait_for_selector(".gm-edit", timeout=10_000)
        _wait_attr(page, "on", "1")
        page.wait_for_selector("[data-gm-edit-drafts]", timeout=10_000)

        # ---- start a draft from the published plan
        with page.expect_response(
            lambda r: r.url.endswith(f"/plans/{api_data.plan}/draft")
        ) as resp:
            page.click(".gm-edit button[data-act=new]")
        assert resp.value.status == 201, resp.value.text()
        draft = resp.value.json()["id"]
        _wait_attr(page, "draft", draft)
        v0 = int(_attr(page, "version") or -1)
        assert v0 == resp.value.json()["version"]
        before = _counts(server, draft, planner)

        # ---- zoom in: the buildings of the view are loaded for selection
        page.evaluate(
            f"""([x, y, sx, sy]) => {{
              const map = {MAP};
              map.setView([y, x], {ZOOM}, {{animate: false}});
              map.panBy([640 - sx, 430 - sy], {{animate: false}});
            }}""",
            [*spots.centre, *SPOT],
        )
        page.wait_for_function(
            f"() => {ED}.bseq > 0 && {ED}.units[{json.dumps('h:' + spots.click)}]",
            timeout=30_000,
        )

        # ---- click one household, then lasso a few more with shift held
        page.mouse.click(*_xy(page, _lonlat(page, "h:" + spots.click)))
        _wait_attr(page, "selected", 1)
        page.check("input[name=gm-ed-tool][value=lasso]")
        ring = [_xy(page, p) for p in spots.lasso]
        page.keyboard.down("Shift")
        page.mouse.move(*ring[0])
        page.mouse.down()
        for x, y in ring[1:]:
            page.mouse.move(x, y, steps=3)
        page.mouse.up()
        page.keyboard.up("Shift")
        want = sorted({"h:" + spots.click, *spots.inside})
        _wait_attr(page, "selected", len(want))
        assert page.evaluate(f"() => Object.keys({ED}.sel).sort()") == want

        # ---- click the adjacent grid they go to (the select tool), then move
        page.check("input[name=gm-ed-tool][value=select]")
        page.mouse.click(*_xy(page, spots.target))
        _wait_attr(page, "target", spots.b)
        assert page.input_value(".gm-edit select[name=target]") == spots.b
        page.wait_for_function(  # the grids of the selection are in the table
            "c => document.querySelector(`.gm-ed-table tr[data-code='${c}']`)",
            arg=spots.a,
        )
        _shot(page, spots)
        with page.expect_response(
            lambda r: r.url.endswith(f"/plans/{draft}/edits")
        ) as resp:
            page.click(".gm-edit button[data-act=move]")
        assert resp.value.status == 200, resp.value.text()
        _wait_attr(page, "version", v0 + 1)
        k = len(spots.moving)
        moved = _counts(server, draft, planner)
        assert moved[spots.a] == before[spots.a] - k
        assert moved[spots.b] == before[spots.b] + k
        table = _table(page)
        assert table[spots.a] == moved[spots.a] and table[spots.b] == moved[spots.b]
        assert page.get_attribute(
            f".gm-ed-table tr[data-code='{spots.b}']", "class"
        ) == ("gm-band-in")

        # ---- undo: the counts are back; redo: moved again
        with page.expect_response(
            lambda r: r.url.endswith(f"/plans/{draft}/undo")
        ) as resp:
            page.click(".gm-edit button[data-act=undo]")
        assert resp.value.status == 200, resp.value.text()
        _wait_attr(page, "version", v0 + 2)
        table = _table(page)
        assert table[spots.a] == before[spots.a] and table[spots.b] == before[spots.b]
        assert _counts(server, draft, planner) == before
        with page.expect_response(
            lambda r: r.url.endswith(f"/plans/{draft}/redo")
        ) as resp:
            page.click(".gm-edit button[data-act=redo]")
        assert resp.value.status == 200, resp.value.text()
        _wait_attr(page, "version", v0 + 3)
        assert _table(page)[spots.a] == moved[spots.a]

        # ---- someone else edits the draft: the page's next edit is refused (409),
        # shown with the current version, and a reload picks that version up
        other = sorted(set(before) - {spots.a, spots.b})[0]
        _post(
            server,
            f"/plans/{draft}/edits",
            planner,
            {"expected_version": v0 + 3, "op": "lock", "grids": [other]},
        )
        with page.expect_response(
            lambda r: r.url.endswith(f"/plans/{draft}/undo")
        ) as resp:
            page.click(".gm-edit button[data-act=undo]")
        assert resp.value.status == 409
        page.wait_for_selector(".gm-ed-conflict:not([hidden]) button[data-act=reload]")
        assert page.inner_text(".gm-ed-conflict .gm-ed-current") == str(v0 + 4)
        assert _counts(server, draft, planner) == moved, "nothing was overwritten"
        page.click(".gm-ed-conflict button[data-act=reload]")
        _wait_attr(page, "version", v0 + 4)
        assert page.is_hidden(".gm-ed-conflict")

        # ---- validate, then publish
        page.click(".gm-edit button[data-act=validate]")
        page.wait_for_selector(".gm-ed-validation", timeout=60_000)
        with page.expect_response(
            lambda r: r.url.endswith(f"/plans/{draft}/publish")
        ) as resp:
            page.click(".gm-edit button[data-act=publish]")
        assert resp.value.status == 200, resp.value.text()
        _wait_attr(page, "status", "published")
        assert _get(server, f"/plans/{draft}", planner)["status"] == "published"
        address = (
            support.county()
            .households.set_index("household_id")
            .loc[spots.click, "address"]
        )
        got = _get(server, "/lookup?" + urlencode({"address": address}), planner)
        assert got["result"]["grid"]["code"] == spots.b
        assert got["result"]["grid"]["plan_id"] == draft
    finally:
        page.screenshot(path="/tmp/viewer-edit-last.png")
        page.close()
    assert foreign == [], foreign
    unexpected = [
        (t, u) for t, u in errors if not (t.startswith(CONFLICT) and "/undo" in u)
    ]
    assert unexpected == [], errors
    print(f"edit-mode browser test: {time.monotonic() - t0:.1f} s")


def _lonlat(page, uid: str) -> tuple[float, float]:
    ll = page.evaluate(
        f"u => {{ const p = {ED}.units[u].ll; return [p.lng, p.lat]; }}", uid
    )
    return ll[0], ll[1]


def _view(page, centre: tuple[float, float], zoom: int) -> None:
    """Centre ``centre`` at SPOT on the page at ``zoom``; the buildings reloaded."""
    page.evaluate(
        f"""async ([x, y, z, sx, sy]) => {{
          const map = {MAP};
          map.setView([y, x], z, {{animate: false}});
          map.panBy([640 - sx, 430 - sy], {{animate: false}});
          await {ED}.reloadUnits();
        }}""",
        [*centre, zoom, *SPOT],
    )


def _shot(page, spots: Spots) -> None:
    """A selection and its target two zoom levels out (the selection stays while
    the buildings reload); then the view the test clicks in again."""
    _view(page, spots.centre, ZOOM - 2)
    page.mouse.move(5, 845)  # no hover tooltip
    page.screenshot(path="/tmp/edit-mode-move.png")
    _view(page, spots.centre, ZOOM)


def _doc_shot(page, ox: float, oy: float) -> None:
    """The edit mode as the docs show it: a grid just split (both halves out of
    band, blue, with their causes in the table) and a selection drawn by rectangle,
    two zoom levels out."""
    _view(page, _densest(), ZOOM - 2)
    page.check("input[name=gm-ed-tool][value=rect]")
    page.mouse.move(ox + SPOT[0] - 70, oy + SPOT[1] - 45)
    page.mouse.down()
    page.mouse.move(ox + SPOT[0] + 70, oy + SPOT[1] + 45, steps=6)
    page.mouse.up()
    _wait_attr(page, "last-select", "rect")
    page.mouse.move(5, 845)  # no hover tooltip
    page.screenshot(path="/tmp/edit-mode.png")
    if os.environ.get("GRIDMAP_DOC_SHOTS"):
        DOC_SHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOC_SHOT))
    page.click(".gm-edit button[data-act=clear]")


def _densest() -> tuple[float, float]:
    """The household (not in a building) with the most such households within 100 m."""
    hh = support.county().households
    loose = hh[hh["building_id"].isna()]
    m = loose.to_crs(metric_crs_for(loose))
    xy = shapely.get_coordinates(m.geometry.values)
    near = [int(np.sum(np.hypot(*(xy - p).T) < 100)) for p in xy]
    best = loose.geometry.iloc[int(np.argmax(near))]
    return best.x, best.y


def _edit(page, act: str, draft: int, path: str = "edits") -> dict[str, Any]:
    with page.expect_response(
        lambda r: r.url.endswith(f"/plans/{draft}/{path}")
    ) as resp:
        page.click(f".gm-edit button[data-act={act}]")
    assert resp.value.status == 200, resp.value.text()
    body = resp.value.json()
    _wait_attr(page, "version", body["version"])
    return body


def test_rectangle_brush_lock_split_merge(browser, server: str, api_data) -> None:
    t0 = time.monotonic()
    page, errors, foreign = _page(browser, server)
    try:
        _key(page, api_data.planner)
        page.wait_for_selector("[data-gm-edit-drafts]", timeout=10_000)
        with page.expect_response(lambda r: r.url.endswith("/draft")) as resp:
            page.click(".gm-edit button[data-act=new]")
        assert resp.value.status == 201, resp.value.text()
        draft = resp.value.json()["id"]
        _wait_attr(page, "draft", draft)
        _view(page, _densest(), ZOOM)
        # two units of one grid, apart, each alone under the pointer, clear of the panels
        u1, u2, p1, p2, grid = page.evaluate(
            f"""() => {{
              const ed = {ED}, map = {MAP};
              const pts = Object.keys(ed.units).map(id => ({{id,
                p: map.latLngToContainerPoint(ed.units[id].ll), g: ed.units[id].props.grid_code}}));
              const alone = q => pts.every(o => o === q ||
                Math.hypot(o.p.x - q.p.x, o.p.y - q.p.y) > 14);
              const ok = pts.filter(q => q.p.x > 150 && q.p.x < 850 && q.p.y > 150 &&
                q.p.y < 650 && alone(q));
              for (const a of ok) for (const b of ok) {{
                const d = Math.hypot(a.p.x - b.p.x, a.p.y - b.p.y);
                if (a.g === b.g && d > 60 && d < 250)
                  return [a.id, b.id, [a.p.x, a.p.y], [b.p.x, b.p.y], a.g];
              }}
              return [null, null, null, null, null];
            }}"""
        )
        assert u1, "no two units to brush over"
        box = page.query_selector(".folium-map").bounding_box()
        ox, oy = box["x"], box["y"]

        def sel() -> set[str]:
            return set(page.evaluate(f"() => Object.keys({ED}.sel)"))

        # ---- brush: a stroke from u1 to u2 paints both in; with alt, out again
        page.check("input[name=gm-ed-tool][value=brush]")
        for erase in (False, True):
            if erase:
                page.keyboard.down("Alt")
            page.mouse.move(ox + p1[0], oy + p1[1])
            page.mouse.down()
            page.mouse.move(ox + p2[0], oy + p2[1], steps=12)
            page.mouse.up()
            if erase:
                page.keyboard.up("Alt")
            page.wait_for_function(
                f"([a, b, e]) => e ? !({ED}.sel[a] || {ED}.sel[b]) : ({ED}.sel[a] && {ED}.sel[b])",
                arg=[u1, u2, erase],
            )
            assert _attr(page, "last-select") == "brush"

        # ---- rectangle: exactly the units inside the box dragged
        page.check("input[name=gm-ed-tool][value=rect]")
        x0, y0, x1, y1 = p1[0] - 45, p1[1] - 45, p1[0] + 45, p1[1] + 45
        page.mouse.move(ox + x0, oy + y0)
        page.mouse.down()
        page.mouse.move(ox + x1, oy + y1, steps=8)
        page.mouse.up()
        _wait_attr(page, "last-select", "rect")
        pts = page.evaluate(
            f"""() => Object.keys({ED}.units).map(id => {{
              const p = {MAP}.latLngToContainerPoint({ED}.units[id].ll); return [id, p.x, p.y]; }})"""
        )
        inner = {i for i, x, y in pts if x0 + 2 < x < x1 - 2 and y0 + 2 < y < y1 - 2}
        outer = {i for i, x, y in pts if x0 - 2 < x < x1 + 2 and y0 - 2 < y < y1 + 2}
        assert u1 in sel() and inner <= sel() <= outer, (sel(), inner, outer)

        # ---- lock u1's grid: its units can no longer be selected; then unlock
        page.click(".gm-edit button[data-act=clear]")
        page.select_option(".gm-edit select[name=target]", grid)
        _wait_attr(page, "target", grid)
        _edit(page, "lock", draft)
        assert "锁定" in page.inner_text(f".gm-ed-table tr[data-code='{grid}']")
        page.check("input[name=gm-ed-tool][value=select]")
        page.mouse.click(ox + p1[0], oy + p1[1])
        _wait_attr(page, "last-select", "click")
        assert sel() == set() and "锁定" in page.inner_text(".gm-ed-msg")
        _edit(page, "unlock", draft)

        # ---- split by the engine (out of band allowed), undo; merge, undo
        n = page.evaluate(f"() => Object.keys({ED}.grids).length")
        page.check(".gm-edit input[name=allow]")
        body = _edit(page, "split", draft)
        made = [g["code"] for g in body["grids"] if g["status"] == "created"]
        assert made and page.evaluate(f"() => Object.keys({ED}.grids).length") == n + 1
        row = page.query_selector(f".gm-ed-table tr[data-code='{made[0]}']")
        assert row and row.get_attribute("class") == "gm-band-under"
        assert row.query_selector(".gm-ed-cause").inner_text().strip()
        _doc_shot(page, ox, oy)
        # ---- rebalance the rest: the engine brings the split grids back into band
        page.uncheck(".gm-edit input[name=allow]")
        body = _edit(page, "rebalance", draft)
        for g in body["grids"]:
            if g["status"] != "retired":
                assert g["in_band"], g
                row = page.query_selector(f".gm-ed-table tr[data-code='{g['code']}']")
                assert row.get_attribute("class") == "gm-band-in"
                assert (
                    int(row.query_selector(".gm-ed-n").inner_text()) == g["households"]
                )
        _edit(page, "undo", draft, "undo")
        _edit(page, "undo", draft, "undo")
        assert page.evaluate(f"() => Object.keys({ED}.grids).length") == n
        assert page.query_selector(f".gm-ed-table tr[data-code='{made[0]}']") is None
        page.check(".gm-edit input[name=allow]")
        page.select_option(".gm-edit select[name=target]", grid)
        free = page.wait_for_function(  # an unlocked neighbour to merge with
            f"""() => Array.from(document.querySelectorAll('.gm-edit select[name=merge] option'))
              .map(o => o.value).find(c => !{ED}.grids[c].locked)"""
        ).json_value()
        page.select_option(".gm-edit select[name=merge]", free)
        body = _edit(page, "merge", draft)
        assert page.evaluate(f"() => Object.keys({ED}.grids).length") == n - 1
        kept = next(g for g in body["grids"] if g["status"] != "retired")
        assert page.get_attribute(
            f".gm-ed-table tr[data-code='{kept['code']}']", "class"
        ) == ("gm-band-over" if kept["households"] > 300 else "gm-band-in")
        _edit(page, "undo", draft, "undo")
        assert page.evaluate(f"() => Object.keys({ED}.grids).length") == n
        assert _counts(server, draft, api_data.planner) == {
            c: p["households"]
            for c, p in page.evaluate(
                f"() => Object.fromEntries(Object.entries({ED}.grids).map(([c, g]) => [c, {{households: g.households}}]))"
            ).items()
        }
        # ---- the difference to the published plan: nothing left after the undos
        page.click(".gm-edit button[data-act=diff]")
        page.wait_for_selector(".gm-ed-diff", timeout=30_000)
        assert "换网格的住户" in page.inner_text(".gm-ed-diff")

        # ---- a new page (the key kept for the tab) lists the draft: open it
        version = _attr(page, "version")
        page.reload()
        page.wait_for_selector("[data-gm-edit-drafts]", timeout=30_000)
        page.select_option(".gm-edit select[name=draft]", str(draft))
        page.click(".gm-edit button[data-act=open]")
        _wait_attr(page, "draft", draft)
        assert _attr(page, "version") == version
    finally:
        page.screenshot(path="/tmp/viewer-edit-tools-last.png")
        page.close()
    assert foreign == [], foreign
    assert errors == [], errors
    print(f"edit-mode tools browser test: {time.monotonic() - t0:.1f} s")


def test_split_along_a_drawn_line_and_assign_a_worker(
    browser, server: str, api_data
) -> None:
    """The line tool: two clicks draw a line across the target grid, 沿线拆分
    splits it there (households on either side, none lost); then a grid worker
    picked from the draft area's staff is made the new grid's worker."""
    page, errors, foreign = _page(browser, server)
    key = api_data.planner
    try:
        _key(page, key)
        page.wait_for_selector("[data-gm-edit-drafts]", timeout=10_000)
        with page.expect_response(lambda r: r.url.endswith("/draft")) as resp:
            page.click(".gm-edit button[data-act=new]")
        draft = resp.value.json()["id"]
        _wait_attr(page, "draft", draft)
        before = _counts(server, draft, key)
        grid = max(before, key=lambda c: (before[c], c))  # the fullest grid
        page.select_option(".gm-edit select[name=target]", grid)
        _wait_attr(page, "target", grid)
        # the grid in view, left of the panel; a line west to east across it at
        # the median latitude of its buildings (households on both sides)
        bb = page.evaluate(
            f"""code => {{
              const ed = {ED}, map = {MAP}, bb = ed.gridLayers[code].getBounds();
              map.fitBounds(bb, {{paddingTopLeft: [120, 120], paddingBottomRight: [520, 120],
                                  animate: false}});
              return [bb.getWest(), bb.getSouth(), bb.getEast(), bb.getNorth()];
            }}""",
            grid,
        )
        units = _get(
            server, f"/plans/{draft}/buildings?bbox={','.join(map(str, bb))}", key
        )["features"]
        mid = float(
            np.median(
                [
                    u["geometry"]["coordinates"][1]
                    for u in units
                    if u["properties"]["grid_code"] == grid
                ]
            )
        )
        a, b = page.evaluate(
            f"""([w, e, lat]) => {{
              const map = {MAP};
              const p = map.latLngToContainerPoint([lat, w - (e - w) * 0.1]);
              const q = map.latLngToContainerPoint([lat, e + (e - w) * 0.1]);
              return [[p.x, p.y], [q.x, q.y]];
            }}""",
            [bb[0], bb[2], mid],
        )
        box = page.query_selector(".folium-map").bounding_box()
        page.check("input[name=gm-ed-tool][value=line]")
        page.mouse.click(box["x"] + a[0], box["y"] + a[1])
        _wait_attr(page, "line", 1)
        page.mouse.dblclick(box["x"] + b[0], box["y"] + b[1])  # ends it: one point
        _wait_attr(page, "line", 2)
        line = page.evaluate(f"() => {ED}.linePts.map(p => [p.lng, p.lat])")
        page.check(".gm-edit input[name=allow]")
        body = _edit(page, "splitline", draft)
        assert _attr(page, "line") is None  # used: cleared
        made = [g for g in body["grids"] if g["status"] == "created"]
        kept = [g for g in body["grids"] if g["code"] == grid]
        assert len(made) == 1 and kept, body["grids"]
        after = _counts(server, draft, key)
        assert sum(after.values()) == sum(before.values())
        # one label per grid, each saying its grid's count (none left behind)
        labels = page.locator(".gm-ed-label span").all_inner_texts()
        labels = [t.removesuffix(" 🔒") for t in labels]  # locked grids say so
        assert sorted(labels) == sorted(f"{c[-4:]} · {n}" for c, n in after.items())
        assert after[grid] + after[made[0]["code"]] == before[grid]
        # the two parts lie on either side of the drawn line
        lat = line[0][1]
        sides = {
            g["code"]: shapely.geometry.shape(g["geometry"]).representative_point().y
            > lat
            for g in [*kept, *made]
        }
        assert len(set(sides.values())) == 2, sides
        # ---- assign a worker to the new grid: one from the area's staff
        code = made[0]["code"]
        page.select_option(".gm-edit select[name=target]", code)
        _wait_attr(page, "target", code)
        page.wait_for_selector("[data-gm-edit-staff]", timeout=10_000)
        staff = _get(server, f"/plans/{draft}/staff", key)["people"]
        person = next(p for p in staff if not p["grids"])
        page.select_option(".gm-edit select[name=worker]", person["id"])
        body = _edit(page, "assign", draft)
        grids = _get(server, f"/plans/{draft}/grids", key)["features"]
        mine = next(f["properties"] for f in grids if f["properties"]["code"] == code)
        assert mine["worker_id"] == person["id"]
        assert mine["worker_name"] == person["name"]
        page.wait_for_function(  # the list says so once reloaded
            """([id, code]) => Array.from(document.querySelectorAll(
                 '.gm-edit select[name=worker] option')).some(o => o.value === id &&
                 o.textContent.includes(code))""",
            arg=[person["id"], code],
            timeout=10_000,
        )
    finally:
        page.screenshot(path="/tmp/viewer-edit-line-last.png")
        page.close()
    assert foreign == [], foreign
    assert errors == [], errors


def test_a_township_key_drafts_its_part_of_the_county_plan(
    browser, server: str, api_data
) -> None:
    """A planner key limited to a township, on the map of the county's published
    plan: the edit panel lists and starts drafts of the township's part only
    (``POST /plans/{id}/draft?area=``), and the draft holds exactly the county
    plan's grids inside the township; no request fails on the way."""
    from geo.store.db import make_engine, session_scope
    from geo.store.keys import create_key

    areas = support.county().areas
    town = str(areas[areas["level"] == "township"].sort_values("code")["code"].iloc[0])
    villages = set(areas.loc[areas["parent_code"] == town, "code"].astype(str))
    engine = make_engine(api_data.url)
    try:
        with session_scope(engine) as s:
            key = create_key(s, "planner", name="township planner", area_code=town)
    finally:
        engine.dispose()
    page, errors, foreign = _page(browser, server)
    try:
        _key(page, key)
        page.wait_for_selector(".gm-edit", timeout=10_000)
        _wait_attr(page, "part", town)
        page.wait_for_selector("[data-gm-edit-drafts]", timeout=10_000)
        # the plan the map shows (the county's published plan, whichever
        # version the other tests left) and its grids inside the township
        plan = int(page.evaluate(f"() => {ED}.opts.planId"))
        county = _get(server, f"/plans/{plan}/grids", api_data.planner)["features"]
        mine = {
            f["properties"]["code"]
            for f in county
            if str(f["properties"]["area_code"]) in villages
        }
        assert mine and len(mine) < len(county), "the township holds part of it"
        with page.expect_response(lambda r: f"/plans/{plan}/draft" in r.url) as resp:
            page.click(".gm-edit button[data-act=new]")
        assert resp.value.status == 201, resp.value.text()
        assert resp.value.url.endswith(f"/plans/{plan}/draft?area={town}")
        draft = resp.value.json()["id"]
        _wait_attr(page, "draft", draft)
        body = _get(server, f"/plans/{draft}/grids", key)
        assert body["area_code"] == town and body["parent_id"] == plan
        assert {f["properties"]["code"] for f in body["features"]} == mine
        # 对比已发布: compared with the county's plan by its grids in the township
        with page.expect_response(
            lambda r: r.url.endswith(f"/plans/{plan}/diff/{draft}")
        ) as resp:
            page.click(".gm-edit button[data-act=diff]")
        assert resp.value.status == 200, resp.value.text()
        summary = resp.value.json()["summary"]
        assert summary["retired"] == [] and summary["unchanged"] == len(mine)
        page.wait_for_selector(".gm-ed-diff", timeout=10_000)
        # the panel lists the new draft among the township's drafts
        page.wait_for_function(
            "d => [...document.querySelectorAll('.gm-edit select[name=draft] option')]"
            ".some(o => o.value === String(d))",
            arg=draft,
        )
    finally:
        page.close()
    assert foreign == [] and errors == [], (foreign, errors)
