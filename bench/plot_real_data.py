"""Draw grids for the Liechtenstein OSM extract and render them to a PNG.

    .venv/bin/python bench/plot_real_data.py [--out liechtenstein_grids.png]

Municipalities are the areas (under the two districts), addressed buildings the
households, one per building. Data © OpenStreetMap contributors, ODbL 1.0.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import geopandas as gpd
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from real_sets import REAL_DATA_DIR, liechtenstein_areas  # noqa: E402

from geo.gridding.generate import generate_grids  # noqa: E402
from geo.io import read_table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="liechtenstein_grids.png")
    args = ap.parse_args()
    areas = liechtenstein_areas(REAL_DATA_DIR)
    b = read_table(REAL_DATA_DIR / "buildings.parquet")
    b = b[b["addr:housenumber"].notna()]
    hh = gpd.GeoDataFrame(
        {"household_id": b["osm_type"] + "/" + b["id"].astype(str)},
        geometry=b.geometry.representative_point(),
        crs=b.crs,
    )
    plan = generate_grids(hh, areas)
    print(json.dumps(plan.report["metrics"], indent=1))
    grids = plan.grids.to_crs(2056)
    munis = areas[areas["level"] == "village"].to_crs(2056)
    fig, ax = plt.subplots(figsize=(8, 12), dpi=110)
    palette = plt.get_cmap("tab20").colors
    order = np.random.default_rng(3).permutation(len(grids))
    colours = [palette[int(i) % len(palette)] for i in order]
    grids.plot(ax=ax, color=colours, edgecolor="white", linewidth=0.6)
    munis.boundary.plot(ax=ax, color="black", linewidth=1.2)
    hh.to_crs(2056).plot(ax=ax, markersize=0.3, color="#333333")
    for g in grids.itertuples():
        p = g.geometry.representative_point()
        ax.annotate(g.grid_code[-2:], (p.x, p.y), fontsize=6, ha="center")
    m = plan.report["metrics"]
    ax.set_title(
        f"Liechtenstein: {m['grids']} grids, {m['households']} addressed buildings\n"
        f"{m['in_band_share']:.0%} in 200–300, size {m['min_load']:g}–{m['max_load']:g}, "
        f"PP mean {m['pp_mean']:.2f}"
    )
    ax.set_axis_off()
    ax.text(
        0.01,
        0.005,
        "© OpenStreetMap contributors (ODbL)",
        transform=ax.transAxes,
        fontsize=7,
    )
    fig.savefig(args.out, bbox_inches="tight")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
