"""Benchmark: the re-cut on knife-edge units, where every grid must hold exactly 200.

Random villages (a box or an L) of 12–30 buildings of 1–35 households each, the
first building topped up so that the total is exactly k·200 (the cases of
``tests/unit/test_recut.py::test_knife_edge_totals_are_in_band_or_honestly_capped``,
drawn here from seeds ``0 .. --cases - 1`` in both shapes). For each: whether
generation puts every grid in band, or which cause it reports for those it leaves
out (``no_in_band_split``: proven, no grouping of the whole buildings is in band;
``no_connected_split``: proven, no split into connected in-band grids on the
unit's graphs; ``search_timed_out``: a cap was reached, one may exist), and the
seconds it took (per outcome, and over all cases).

Run: ``python bench/knife_edge.py --cases 100`` (about 1.5 minutes).
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time

import geopandas as gpd
import numpy as np
import shapely

from geo.gridding.generate import generate_grids

LO, HI = 200, 300


def case(seed: int, shape: str) -> tuple[shapely.Geometry, gpd.GeoDataFrame]:
    """One knife-edge village and its households (a building's at one point)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(12, 31))
    unit = (
        shapely.box(0, 0, 0.01, 0.006)
        if shape == "box"
        else shapely.union_all(
            [shapely.box(0, 0, 0.01, 0.003), shapely.box(0, 0, 0.003, 0.01)]
        )
    )
    xy: list[tuple[float, float]] = []
    while len(xy) < n:
        x, y = rng.uniform(0, 0.01), rng.uniform(0, 0.01)
        if unit.contains(shapely.Point(x, y)):
            xy.append((x, y))
    sizes = rng.integers(1, 36, n).tolist()
    total = sum(sizes)
    sizes[0] += -(-total // LO) * LO - total
    rows = [
        (f"b{b}-{m}", f"b{b}", x, y)
        for b, ((x, y), k) in enumerate(zip(xy, sizes, strict=True))
        for m in range(k)
    ]
    hh = gpd.GeoDataFrame(
        {"household_id": [r[0] for r in rows], "building_id": [r[1] for r in rows]},
        geometry=shapely.points([r[2] for r in rows], [r[3] for r in rows]),
        crs=4326,
    )
    return unit, hh


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", type=int, default=100, help="seeds per shape")
    args = ap.parse_args()
    outcome: collections.Counter[str] = collections.Counter()
    seconds: dict[str, list[float]] = collections.defaultdict(list)
    for seed in range(args.cases):
        for shape in ("box", "L"):
            unit, hh = case(seed, shape)
            villages = gpd.GeoDataFrame({"code": ["V1"]}, geometry=[unit], crs=4326)
            t = time.perf_counter()
            plan = generate_grids(hh, villages)
            dt = time.perf_counter() - t
            g = plan.grids
            if g["load"].between(LO, HI).all():
                key = "in band"
            else:
                causes = {
                    str(e.get("cause"))
                    for e in plan.report["exceptions"]
                    if e.get("kind") == "out_of_band"
                }
                key = "out of band: " + ", ".join(sorted(causes))
            outcome[key] += 1
            seconds[key].append(dt)
    total = sum(outcome.values())
    print(f"knife-edge villages: {total} ({args.cases} seeds x box, L)")
    for key, n in outcome.most_common():
        s = seconds[key]
        print(
            f"  {key}: {n} ({n / total:.1%}); seconds median {statistics.median(s):.2f},"
            f" max {max(s):.2f}"
        )
    every = [t for s in seconds.values() for t in s]
    print(
        f"  all cases: seconds median {statistics.median(every):.2f},"
        f" max {max(every):.2f}"
    )


if __name__ == "__main__":
    main()
