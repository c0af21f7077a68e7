"""Plan metrics: band share, contiguity, compactness."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from geo.crs import metric_crs_for

__all__ = ["plan_metrics"]


def plan_metrics(
    grids: gpd.GeoDataFrame, *, min_households: float = 200, max_households: float = 300
) -> dict[str, Any]:
    """Size band, contiguity and compactness (Polsby-Popper, metric CRS) of a plan.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoDataFrame({"load": [250.0], "households": [250], "areas": ["V"]},
    ...     geometry=[shapely.box(0, 0, 0.01, 0.01)], crs=4326)
    >>> m = plan_metrics(g)
    >>> m["in_band_share"], round(m["pp_mean"], 3)
    (1.0, 0.785)
    """
    if grids.empty:
        return {"grids": 0}
    metric = grids.to_crs(metric_crs_for(grids))
    area = metric.geometry.area.to_numpy()
    perim = metric.geometry.length.to_numpy()
    pp = np.where(perim > 0, 4 * np.pi * area / np.maximum(perim, 1e-12) ** 2, 0.0)
    load = (
        grids["load"].to_numpy(dtype=float)
        if "load" in grids
        else grids["households"].to_numpy(dtype=float)
    )
    in_band = (load >= min_households - 1e-9) & (load <= max_households + 1e-9)
    parts = np.array(
        [int(shapely.get_num_geometries(g)) for g in grids.geometry.values]
    )
    crossings = int(grids["areas"].str.contains(";").sum()) if "areas" in grids else 0
    counts = grids["households"].to_numpy()
    return {
        "grids": len(grids),
        "households": int(counts.sum()),
        "load": float(load.sum()),
        "in_band": int(in_band.sum()),
        "in_band_share": round(float(in_band.mean()), 4),
        "min_load": float(load.min()),
        "max_load": float(load.max()),
        "mean_load": round(float(load.mean()), 2),
        "min_households": int(counts.min()),
        "max_households": int(counts.max()),
        "contiguous_share": round(float((parts == 1).mean()), 4),
        "area_line_crossings": crossings,
        "pp_mean": round(float(pp.mean()), 4),
        "pp_min": round(float(pp.min()), 4),
        "area_m2": round(float(area.sum()), 1),
    }
