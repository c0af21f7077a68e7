"""Legible maps (issue 26): the diff legend counts what its layers draw, the band
palette tells sizes apart, short collision-checked labels."""

from __future__ import annotations

import re

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
