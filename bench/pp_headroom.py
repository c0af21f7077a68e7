"""How compact the real sets' grids could be: where their perimeter lies, how
straight their inner boundaries are, and the Polsby-Popper of their convex hulls.

For Liechtenstein and Helsinki (``bench/_real.py``), generate the plan and print,
in metres: the Polsby-Popper mean of the grids' own polygons; the share of their
perimeter lying on area lines (which no plan can move); the vertices per km of
the rest (the boundaries the engine draws); the mean after simplifying each grid
by 50 m; and the mean of the grids' convex hulls (what grids of the same extent
would score if they were convex).

Run: ``PYTHONPATH=. python bench/pp_headroom.py`` (about 10 s).
"""

from __future__ import annotations

import numpy as np
import shapely
from _real import REAL_SETS, load_real

from geo.crs import metric_crs_for
from geo.gridding.generate import generate_grids


def _pp(geoms: np.ndarray) -> np.ndarray:
    return 4 * np.pi * shapely.area(geoms) / shapely.length(geoms) ** 2


def main() -> None:
    for name in REAL_SETS:
        hh, areas, _ = load_real(name)
        plan = generate_grids(hh, areas)
        crs = metric_crs_for(plan.grids)
        geoms = np.asarray(plan.grids.to_crs(crs).geometry.values, dtype=object)
        lines = shapely.union_all(shapely.boundary(areas.to_crs(crs).geometry.values))
        near_lines = shapely.buffer(lines, 1.0)
        rims = shapely.boundary(geoms)
        perimeter = shapely.length(geoms)
        on_lines = shapely.length(shapely.intersection(rims, near_lines))
        inner = shapely.difference(rims, near_lines)
        inner_km = float(shapely.length(inner).sum()) / 1000
        vertices = int(shapely.get_num_coordinates(inner).sum())
        simplified = shapely.simplify(geoms, 50)
        print(
            f"{name}: {len(geoms)} grids; PP mean {_pp(geoms).mean():.3f} (own "
            f"polygons), {_pp(simplified).mean():.3f} simplified by 50 m, "
            f"{_pp(shapely.convex_hull(geoms)).mean():.3f} of their convex hulls; "
            f"{on_lines.sum() / perimeter.sum():.0%} of the perimeter on area lines; "
            f"inner boundaries {inner_km:.1f} km, {vertices / inner_km:.0f} vertices "
            "per km"
        )


if __name__ == "__main__":
    main()
