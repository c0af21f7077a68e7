"""Legible maps (issue 26): the diff legend counts what its layers draw, the band
palette tells sizes apart, short collision-checked labels."""

from __future__ import annotations

import re
from html import escape

import folium
import pytest
from samples import sample_county

import maps
from geo.gridding.diff import diff_plans
from geo.gridding.generate import generate_grids
from maps.layers import HouseholdLayer, Legend


@pytest.fixture(scope="module")
def county():
    return sample_county(2_500, seed=3)


def _groups(m: folium.Map) -> dict[str, folium.FeatureGroup]:
    return {
        c.layer_name: c
        for c in m._children.values()
        if isinstance(c, folium.FeatureGroup)
    }


def _children(el, kind):
    return [c for c in el._children.values() if isinstance(c, kind)]


def test_diff_legend_counts_equal_the_households_its_layers_draw(county):
    hh = county.households
    # households 0–49 leave (removed), the last 30 are new (added)
    a = generate_grids(hh.iloc[:-30], county.areas)
    b = generate_grids(hh.iloc[50:], county.areas)
    d = diff_plans(a.grids, a.assignments, b.grids, b.assignments)
    want = d.households["change"].value_counts().to_dict()
    assert want.get("added") == 30 and want.get("removed") == 50 and want["moved"]
    m = maps.diff_map(a, None, b, None, hh)
    (legend,) = _children(m, Legend)
    seen = {}
    for name, fg in _groups(m).items():
        hit = re.fullmatch(r"(变更网格的住户|新增住户|移除住户)（([\d,]+) 户）", name)
        if not hit:
            continue
        label, n = hit.group(1), int(hit.group(2).replace(",", ""))
        drawn = sum(layer.households for layer in _children(fg, HouseholdLayer))
        assert drawn == n, (name, drawn)
        assert f"{label} {n:,} 户" in legend.html, label
        seen[label] = n
    assert seen == {
        "变更网格的住户": want["moved"],
        "新增住户": 30,
        "移除住户": 50,
    }


def _shade(m, code):
    from maps.layers import GridLayer

    for fg in _groups(m).values():
        for layer in _children(fg, GridLayer):
            for f in layer.data["features"]:
                if f["properties"]["grid_code"] == code:
                    return f["properties"]["fill"]
    raise KeyError(code)


def test_band_palette_tells_200_from_300(county):
    import geopandas as gpd
    import shapely

    from maps.balance import balance_bins

    sizes = [120, 180, 200, 210, 233, 250, 267, 290, 300, 320, 400]
    grids = gpd.GeoDataFrame(
        {
            "grid_code": [
                f"3308031002010{i}" if i < 10 else "33080310020110"
                for i in range(len(sizes))
            ],
            "area_code": "330803100201",
            "households": sizes,
        },
        geometry=[shapely.box(i, 0, i + 1, 1) for i in range(len(sizes))],
        crs=4326,
    )
    m = maps.balance_map(grids, min_households=200, max_households=300)
    fill = dict(zip(sizes, (_shade(m, c) for c in grids["grid_code"]), strict=True))
    # the two ends of the band, and its two outer thirds, no longer share a colour
    assert fill[200] != fill[300] and fill[210] != fill[290] and fill[233] != fill[267]
    assert len({fill[s] for s in (200, 250, 300, 180, 320)}) == 5
    # light at the target, blues under, reds over
    assert fill[250] == "#f7f7f7"
    assert fill[120] == "#2166ac" and fill[180] == "#92c5de"
    assert fill[320] == "#f4a582" and fill[400] == "#b2182b"
    (legend,) = _children(m, Legend)
    for _, _, colour, label in balance_bins(200, 300):
        assert colour in legend.html and escape(f"{label} 户") in legend.html


def test_short_labels_with_households_and_worker(county):
    from maps.layers import GridLayer, Labels

    plan = maps.sample_coverage(
        generate_grids(county.households, county.areas),
        county.households,
        county.people,
    )
    m = maps.coverage_map(
        plan, county.households, people=county.people, areas=county.areas
    )
    names = dict(zip(county.areas["code"], county.areas["name"], strict=True))
    people = county.people.set_index("person_id")["name"]
    grids = plan.grids.set_index("grid_code")
    counts = plan.assignments["grid_code"].value_counts()
    rows = [
        r for fg in _groups(m).values() for lb in _children(fg, Labels) for r in lb.rows
    ]
    assert len(rows) == len(grids)
    pops = {
        f["properties"]["grid_code"]: f["properties"]["pop"]
        for fg in _groups(m).values()
        for layer in _children(fg, GridLayer)
        for f in layer.data["features"]
    }
    by_text = {r[2]: r for r in rows}
    for code, g in grids.iterrows():
        text = f"{names[g['area_code']]} {int(code[-2:])}"
        *_, detail, priority = by_text[text]
        assert detail == f"{counts[code]} 户 · {people[g['worker_id']]}"
        assert priority > 0 and code in pops[code]  # the full code in the popup
    assert all(len(r[2]) <= 12 for r in rows)


def test_band_legend_marks_only_the_in_band_steps():
    import geopandas as gpd
    import shapely

    grids = gpd.GeoDataFrame(
        {"grid_code": ["A01"], "households": [250]},
        geometry=[shapely.box(0, 0, 1, 1)],
        crs=4326,
    )
    (legend,) = _children(maps.balance_map(grids), Legend)
    marked = re.findall(r"</span>([^<]*) · 标准内</div>", legend.html)
    assert marked == [
        "200–219 户",
        "220–239 户",
        "240–259 户",
        "260–279 户",
        "280–300 户",
    ]
