"""Folium maps (pure, no database): structure, colouring, popups, offline HTML, GCJ-02."""

from __future__ import annotations

import json
import re
from pathlib import Path

import folium
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
from samples import sample_county

import maps
from geo.gridding.diff import diff_plans
from geo.gridding.generate import generate_grids
from geo.sample import generate_county
from maps.colouring import adjacency
from maps.layers import (
    GridLayer,
    HouseholdLayer,
    Labels,
    Legend,
    Setup,
    encode_households,
)

GEOD = pyproj.Geod(ellps="WGS84")
TILES = "https://tiles.example.org/{z}/{x}/{y}.png"


@pytest.fixture(scope="module")
def county():
    return sample_county(2_500, seed=3)


@pytest.fixture(scope="module")
def plan(county):
    raw = generate_grids(county.households, county.areas, barriers=county.barriers)
    return maps.sample_coverage(raw, county.households, county.people)


@pytest.fixture(scope="module")
def cov_map(county, plan):
    return maps.coverage_map(
        plan,
        county.households,
        people=county.people,
        areas=county.areas,
        barriers=county.barriers,
    )


def _groups(m: folium.Map) -> dict[str, folium.FeatureGroup]:
    return {
        c.layer_name: c
        for c in m._children.values()
        if isinstance(c, folium.FeatureGroup)
    }


def _children(el, kind):
    return [c for c in el._children.values() if isinstance(c, kind)]


def _setup(m) -> dict:
    (s,) = _children(m, Setup)
    return s.config


def _decode(data: dict) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """Python twin of HouseLayer._decode in gridmap.js: per-household lon, lat,
    address and grid index."""

    def unrle(r):
        return np.repeat(np.asarray(r[0::2]), np.asarray(r[1::2]))

    lon = np.cumsum(data["x"]) / 1e6
    lat = np.cumsum(data["y"]) / 1e6
    counts = unrle(data["n"])
    addr, prev = [], ""
    for p, s in zip(data["p"], data["s"], strict=True):
        prev = prev[:p] + s
        addr.append(prev)
    return np.repeat(lon, counts), np.repeat(lat, counts), addr, unrle(data["g"])


# --------------------------------------------------------------------------- structure


def test_one_layer_group_per_village_with_its_grids(cov_map, county, plan):
    groups = _groups(cov_map)
    names = dict(zip(county.areas["code"], county.areas["name"], strict=True))
    for area, grids in plan.grids.groupby("area_code"):
        (name,) = [n for n in groups if n.endswith(f"({area})")]
        assert names[area] in name
        (layer,) = _children(groups[name], GridLayer)
        codes = sorted(f["properties"]["grid_code"] for f in layer.data["features"])
        assert codes == sorted(grids["grid_code"])
        (labels,) = _children(groups[name], Labels)
        # short labels: the village's name and the grid's number in it
        assert sorted(r[2] for r in labels.rows) == sorted(
            f"{names[area]} {int(c[-2:])}" for c in codes
        )
    assert "河流与主要道路" in groups
    assert any(isinstance(c, folium.LayerControl) for c in cov_map._children.values())


def test_every_household_drawn_once_in_its_grids_village(cov_map, county, plan):
    cfg = _setup(cov_map)
    grid_area = dict(zip(plan.grids["grid_code"], plan.grids["area_code"], strict=True))
    seen = []
    for name, fg in _groups(cov_map).items():
        for layer in _children(fg, HouseholdLayer):
            _, _, addr, g = _decode(layer.data)
            assert layer.households == len(addr)
            areas = {grid_area[cfg["grids"][i][0]] for i in g}
            assert len(areas) == 1 and name.endswith(f"({areas.pop()})")
            seen += addr
    assert sorted(seen) == sorted(county.households["address"])


def test_neighbouring_grids_have_different_colours(cov_map, plan):
    fill = {
        f["properties"]["grid_code"]: f["properties"]["fill"]
        for fg in _groups(cov_map).values()
        for layer in _children(fg, GridLayer)
        for f in layer.data["features"]
    }
    codes = plan.grids["grid_code"].tolist()
    nbrs = adjacency(plan.grids.geometry.values)
    pairs = [(i, j) for i, ns in enumerate(nbrs) for j in ns if i < j]
    assert len(pairs) >= len(codes) - 1  # the county's grids do touch
    assert all(fill[codes[i]] != fill[codes[j]] for i, j in pairs)
    # the grid table used by households agrees with the polygons
    assert {t[0]: t[1] for t in _setup(cov_map)["grids"]} == fill


def test_popups_name_grid_worker_member_and_work_phones(cov_map, county, plan):
    cfg = _setup(cov_map)
    people = county.people.set_index("person_id")
    for code, wid, info in zip(
        plan.grids.sort_values("grid_code")["grid_code"],
        plan.grids.sort_values("grid_code")["worker_id"],
        [t[2] for t in cfg["grids"]],
        strict=True,
    ):
        assert code in info
        assert people.loc[wid, "work_phone"] in info
        assert people.loc[wid, "name"] in info
    member_rows = " ".join(m[1] for m in cfg["members"])
    used = plan.assignments["member_id"].dropna().unique()
    assert len(cfg["members"]) == len(used)
    for mid in used:
        assert people.loc[mid, "work_phone"] in member_rows
    # residents' personal data never reaches the page: only addresses
    html = cov_map.get_root().render()
    assert "household_id" not in html and "H330803" not in html


def test_legend_and_controls_present(cov_map):
    (legend,) = _children(cov_map, Legend)
    assert "网格" in legend.html and "联户党员" in legend.html
    assert 'name="gm-mode"' in legend.html
    html = cov_map.get_root().render()
    for needle in (
        "GridMap.legend(",
        "L.control.fullscreen(",
        "GridMap.measure(",
        "GridMap.search(",
        "L.control.layers(",
    ):
        assert needle in html, needle


def test_grids_without_recorded_workers_show_the_villages_workers(county, plan):
    grids = plan.grids.drop(columns=["worker_id"])
    m = maps.coverage_map(
        grids, county.households, people=county.people, areas=county.areas
    )
    workers = county.people[county.people["role"] == "grid_worker"]
    info = {t[0]: t[2] for t in _setup(m)["grids"]}
    for code, area in zip(grids["grid_code"], grids["area_code"], strict=True):
        for phone in workers.loc[workers["area_code"] == area, "work_phone"]:
            assert phone in info[code]


# --------------------------------------------------------------------------- offline


_EXTERNAL = re.compile(
    r"""<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)\s*=\s*["']?((?:https?:)?//[^"'\s>]+)""",
    re.IGNORECASE,
)
_CSS_EXTERNAL = re.compile(r"""url\(\s*["']?(?:https?:)?//""", re.IGNORECASE)


def _external_refs(html: str) -> list[str]:
    refs = _EXTERNAL.findall(html)
    refs += _CSS_EXTERNAL.findall(html)
    refs += re.findall(
        r"""@import\s+["']?(?:url\()?["']?(?:https?:)?//[^"')\s]+""", html
    )
    return refs


def test_saved_html_is_self_contained(cov_map, tmp_path):
    out = maps.save_html(cov_map, tmp_path / "coverage.html")
    html = out.read_text(encoding="utf-8")
    assert _external_refs(html) == []
    assert "<script src" not in html and "<link rel" not in html
    for cdn in ("cdn.jsdelivr", "cdnjs", "code.jquery", "bootstrapcdn", "unpkg"):
        assert cdn not in html
    # the vendored libraries are inlined, with their images as data: URIs
    assert "Leaflet" in html and "L.Control.Search" in html
    assert 'url("data:image/png;base64,' in html
    # and the notebook view is the same self-contained page
    nb = cov_map._repr_html_()
    assert "cdn.jsdelivr" not in nb and "&lt;script src" not in nb


def test_only_the_configured_tile_server_is_external(county, plan, tmp_path):
    m = maps.coverage_map(
        plan, county.households, basemap={"url": TILES, "attribution": "test"}
    )
    html = maps.save_html(m, tmp_path / "tiles.html").read_text(encoding="utf-8")
    assert _external_refs(html) == []
    assert TILES in html
    urls = set(re.findall(r"""["'](https?://[^"']+\{z\}[^"']*)["']""", html))
    assert urls == {TILES}


def test_every_vendored_asset_has_its_licence():
    vendor = Path(maps.assets.STATIC_DIR) / "vendor"
    for pkg in ("leaflet", "leaflet.fullscreen", "leaflet-search", "swagger-ui"):
        files = {p.name.lower() for p in (vendor / pkg).iterdir()}
        assert files & {"license", "license.txt", "license.md"}, pkg


def test_folium_defaults_stay_untouched():
    """Overriding happens in subclasses: plain folium maps elsewhere keep working."""
    assert any("cdn.jsdelivr" in url for _, url in folium.Map.default_js)
    assert all(not url.startswith("http") for _, url in maps.OfflineMap.default_js)


# --------------------------------------------------------------------------- basemaps


def _first_vertex_shift_m(m, plan) -> list[float]:
    truth = dict(zip(plan.grids["grid_code"], plan.grids.geometry.values, strict=True))
    out = []
    for fg in _groups(m).values():
        for layer in _children(fg, GridLayer):
            for f in layer.data["features"]:
                drawn = shapely.geometry.shape(f["geometry"])
                x0, y0 = shapely.get_coordinates(truth[f["properties"]["grid_code"]])[0]
                x1, y1 = shapely.get_coordinates(drawn)[0]
                out.append(GEOD.inv(x0, y0, x1, y1)[2])
    return out


def test_gcj02_basemap_shifts_layers_at_render_time(county, plan):
    before = plan.grids.geometry.copy()
    m = maps.coverage_map(
        plan,
        county.households,
        people=county.people,
        basemap={
            "url": "https://webrd01.is.autonavi.com/appmaptile?x={x}&y={y}&z={z}",
            "crs": "gcj02",
            "attribution": "高德",
        },
    )
    shifts = _first_vertex_shift_m(m, plan)
    assert shifts and all(350 < s < 700 for s in shifts), (min(shifts), max(shifts))
    # households too: the drawn points sit ~500 m from the stored ones
    truth = county.households.set_index("address").geometry
    for fg in _groups(m).values():
        for layer in _children(fg, HouseholdLayer):
            lon, lat, addr, _ = _decode(layer.data)
            p = truth[addr[0]]
            p = p.iloc[0] if hasattr(p, "iloc") else p
            assert 350 < GEOD.inv(p.x, p.y, lon[0], lat[0])[2] < 700
    # the stored plan is never shifted
    assert plan.grids.geometry.geom_equals_exact(before, 0).all()


def test_plain_and_wgs84_basemaps_do_not_shift(county, plan):
    for basemap in (None, "osm", TILES):
        m = maps.coverage_map(plan, county.households, basemap=basemap)
        assert max(_first_vertex_shift_m(m, plan)) < 0.2  # 6-decimal rounding only


def test_basemap_presets_and_errors():
    assert maps.resolve_basemap("gaode").gcj02
    assert not maps.resolve_basemap("osm").gcj02
    assert maps.resolve_basemap({"url": TILES, "crs": "EPSG:4326"}).crs == "wgs84"
    with pytest.raises(ValueError, match="crs"):
        maps.resolve_basemap({"url": TILES, "crs": "bd09"})
    with pytest.raises(ValueError, match="preset"):
        maps.resolve_basemap("nowhere")
    with pytest.raises(ValueError, match="unknown"):
        maps.resolve_basemap({"url": TILES, "tiles": 1})


# --------------------------------------------------------------------------- balance


def test_balance_map_flags_out_of_band_and_exception_grids(county):
    plan = generate_grids(county.households, county.areas, barriers=county.barriers)
    grids = plan.grids.copy()
    grids.loc[0, "exception"] = "人工标注：含学校"
    report = dict(plan.report)
    m = maps.balance_map(grids, report=report, min_households=200, max_households=300)
    feats = {
        f["properties"]["grid_code"]: f["properties"]
        for fg in _groups(m).values()
        for layer in _children(fg, GridLayer)
        for f in layer.data["features"]
    }
    assert len(feats) == len(grids)
    for code, n in zip(grids["grid_code"], grids["households"], strict=True):
        p = feats[code]
        assert p["in_band"] == (200 <= n <= 300)
        if not p["in_band"]:
            assert p["flagged"] and p["dash"] and "标准 200–300" in p["reasons"][0]
            assert p["fill"] != feats[code]["line"]
    assert "人工标注：含学校" in feats[grids.loc[0, "grid_code"]]["reasons"]
    assert "人工标注：含学校" in feats[grids.loc[0, "grid_code"]]["pop"]
    # report exceptions naming a grid flag it; those about an area annotate its grids
    for ex in report["exceptions"]:
        if ex["grid_code"] is not None:
            p = feats[ex["grid_code"]]
            assert (
                p["flagged"]
                and ex["reason"] in p["reasons"]
                and ex["reason"] in p["pop"]
            )
        else:
            hits = [c for c, p in feats.items() if ex["reason"] in p["notes"]]
            assert hits, ex
            assert all(
                ex["area_code"] in grids.set_index("grid_code").loc[c, "areas"]
                for c in hits
            )
    unflagged = [p for p in feats.values() if not p["flagged"]]
    assert all(p["in_band"] and not p["reasons"] for p in unflagged)
    (legend,) = _children(m, Legend)
    assert "例外" in legend.html


def test_balance_band_comes_from_the_plan(county):
    plan = generate_grids(
        county.households, county.areas, min_households=150, max_households=250
    )
    m = maps.balance_map(plan)
    (legend,) = _children(m, Legend)
    assert "标准 150–250" in legend.html


# --------------------------------------------------------------------------- diff


def test_diff_highlights_moved_households_and_boundaries(county):
    a = generate_grids(county.households, county.areas)
    b = generate_grids(
        county.households, county.areas, min_households=150, max_households=250
    )
    d = diff_plans(a.grids, a.assignments, b.grids, b.assignments)
    both = a.assignments.merge(b.assignments, on="household_id")
    expected = set(both.loc[both["grid_code_x"] != both["grid_code_y"], "household_id"])
    assert set(d.households["household_id"]) == expected and expected
    assert d.unchanged_households == len(both) - len(expected)
    assert d.added_boundaries.length > 0 and d.removed_boundaries.length > 0
    # an added boundary is not on an old one (beyond the tolerance)
    old_lines = shapely.union_all(shapely.boundary(a.grids.geometry.values))
    mid = shapely.line_interpolate_point(
        shapely.get_parts(d.added_boundaries), 0.5, normalized=True
    )
    assert (shapely.distance(mid, old_lines) > 1e-6).all()

    m = maps.diff_map(a.grids, a.assignments, b.grids, b.assignments, county.households)
    cfg = _setup(m)
    drawn: dict[str, tuple[str, str]] = {}
    addr_id = dict(
        zip(
            county.households["address"], county.households["household_id"], strict=True
        )
    )
    for fg in _groups(m).values():
        for layer in _children(fg, HouseholdLayer):
            _, _, addr, g = _decode(layer.data)
            o = np.repeat(
                np.asarray(layer.data["o"][0::2]), np.asarray(layer.data["o"][1::2])
            )
            for s, gi, oi in zip(addr, g, o, strict=True):
                drawn[addr_id[s]] = (cfg["grids"][gi][0], cfg["grids"][oi][0])
    assert set(drawn) == expected
    new = dict(
        zip(b.assignments["household_id"], b.assignments["grid_code"], strict=True)
    )
    old = dict(
        zip(a.assignments["household_id"], a.assignments["grid_code"], strict=True)
    )
    assert all(drawn[h] == (new[h], old[h]) for h in expected)
    names = list(_groups(m))
    assert any(n.startswith("新划的边界") for n in names)
    assert any(n.startswith("取消的原边界") for n in names)


def test_diff_of_a_plan_with_itself_is_empty(county):
    a = generate_grids(county.households, county.areas)
    d = diff_plans(a.grids, a.assignments, a.grids, a.assignments)
    assert d.households.empty and d.changed_grids == []
    assert d.added_boundaries.is_empty and d.removed_boundaries.is_empty


# --------------------------------------------------------------------------- scale


def test_household_encoding_round_trips():
    rng = np.random.default_rng(0)
    n = 500
    lon = np.round(118.9 + rng.uniform(0, 0.01, n), 6)
    lat = np.round(29.0 + rng.uniform(0, 0.01, n), 6)
    lon[:40], lat[:40] = lon[0], lat[0]  # a building
    addr = np.array([f"衢江区某街{i % 7}号{i}室" for i in range(n)], dtype=object)
    grid = rng.integers(0, 5, n)
    d = encode_households(lon, lat, addr, grid)
    x, y, a, g = _decode(d)
    got = pd.DataFrame({"a": a, "x": x, "y": y, "g": g}).set_index("a").sort_index()
    want = pd.DataFrame({"a": addr, "x": lon, "y": lat, "g": grid}).set_index("a")
    pd.testing.assert_frame_equal(got, want.sort_index(), check_dtype=False, atol=1e-9)
    assert len(d["x"]) == n - 39  # one marker for the building


def test_html_size_stays_small_for_a_mid_size_county(tmp_path):
    c = generate_county(20_000, seed=0)
    p = maps.sample_coverage(
        generate_grids(c.households, c.areas), c.households, c.people
    )
    m = maps.coverage_map(p, c.households, people=c.people, areas=c.areas)
    size = maps.save_html(m, tmp_path / "mid.html").stat().st_size
    # ~0.95 MB measured: ~0.25 MB of inlined libraries + ~35 bytes a household
    assert size < 1_500_000, size
    (s,) = _children(m, Setup)
    assert s.config["houseZoom"] == 0  # small enough to draw every household


def test_large_counties_draw_households_only_when_zoomed_in():
    assert maps.coverage.household_zoom(200_000) >= 14
    assert json.loads(json.dumps(maps.coverage.household_zoom(20_000))) == 0


@pytest.mark.parametrize(
    "module",
    ["assets", "balance", "basemap", "colouring", "coverage", "data", "diff", "layers"],
)
def test_docstring_examples(module):
    """maps/ is outside the doctest paths of pytest's config: run its examples here."""
    import doctest
    import importlib

    result = doctest.testmod(
        importlib.import_module(f"maps.{module}"), optionflags=doctest.ELLIPSIS
    )
    assert result.failed == 0
