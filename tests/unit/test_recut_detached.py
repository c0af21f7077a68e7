"""A grid the capped re-cut leaves in two parts, in a unit of one piece, is rejoined."""

from __future__ import annotations

import geopandas as gpd
import shapely

from geo.gridding.generate import generate_grids

# found by hypothesis (test_knife_edge_totals_are_in_band_or_honestly_capped): an L of
# 18 small buildings totalling exactly 400; the search found no contiguous 200 + 200
# within its cap and one grid of 200 came out in two parts
L_UNIT = shapely.union_all(
    [shapely.box(0, 0, 0.01, 0.003), shapely.box(0, 0, 0.003, 0.01)]
)
XY = [
    (0.006637, 0.001355), (0.006059, 0.002982), (0.000654, 0.003477),
    (0.001132, 0.005835), (0.001877, 0.006109), (0.000771, 0.006413),
    (0.001971, 0.005375), (0.000656, 0.004389), (0.006034, 0.000154),
    (0.001494, 0.008035), (0.001727, 0.009130), (0.002326, 0.009449),
    (0.000909, 0.005383), (0.004584, 0.001487), (0.003257, 0.000090),
    (0.007047, 0.002401), (0.002390, 0.002261), (0.002647, 0.002194),
]  # fmt: skip
SIZES = [72, 19, 31, 13, 34, 14, 17, 14, 11, 27, 1, 23, 17, 12, 31, 21, 28, 15]


def _households() -> gpd.GeoDataFrame:
    rows = [
        (f"b{b}-{m}", f"楼{b}", x, y)
        for b, ((x, y), n) in enumerate(zip(XY, SIZES, strict=True))
        for m in range(n)
    ]
    return gpd.GeoDataFrame(
        {"household_id": [r[0] for r in rows], "building_id": [r[1] for r in rows]},
        geometry=shapely.points([r[2] for r in rows], [r[3] for r in rows]),
        crs=4326,
    )


def test_every_grid_is_one_piece_and_the_cap_is_the_cause() -> None:
    hh = _households()
    assert len(hh) == 400
    plan = generate_grids(
        hh, gpd.GeoDataFrame({"code": ["V1"]}, geometry=[L_UNIT], crs=4326)
    )
    g = plan.grids
    assert (g["parts"] == 1).all(), g[["grid_code", "load", "parts"]]
    # the spanning trees of the re-cut find the contiguous 200 + 200 (issue 24)
    assert g["load"].between(200, 300).all(), g[["grid_code", "load"]]
    geoms = list(g.geometry)
    union = shapely.union_all(geoms)
    assert shapely.symmetric_difference(union, L_UNIT).area < 1e-10
    assert abs(sum(x.area for x in geoms) - union.area) < 1e-10
    assert not [e for e in plan.report["exceptions"] if e["kind"] == "not_contiguous"]
    causes = {
        e["grid_code"]: e.get("cause")
        for e in plan.report["exceptions"]
        if e["kind"] == "out_of_band"
    }
    out = set(g.loc[~g["load"].between(200, 300), "grid_code"])
    assert set(causes) == out
    assert all(c == "search_timed_out" for c in causes.values())
    # every household once, in the grid that holds it
    a = plan.assignments
    assert sorted(a["household_id"]) == sorted(hh["household_id"])
