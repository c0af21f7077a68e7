"""What changed between two plans."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from geo.crs import STORAGE_CRS
from geo.plan import PlanDiff

__all__ = ["diff_plans"]

#: Metres per degree of latitude: boundary tolerances are given in metres.
_METRES_PER_DEGREE = 111_320.0


def diff_plans(
    old_grids: gpd.GeoDataFrame,
    old_assignments: pd.DataFrame,
    new_grids: gpd.GeoDataFrame,
    new_assignments: pd.DataFrame,
    *,
    tol_m: float = 1.0,
) -> PlanDiff:
    """Which households changed grid, which grids were created, retired or reshaped.

    Parameters
    ----------
    old_grids, new_grids
        The two plans' grids: ``grid_code`` and polygons (any CRS).
    old_assignments, new_assignments
        The two plans' ``household_id, grid_code``.
    tol_m
        Boundary lines closer than this many metres count as the same line
        (``added_boundaries`` / ``removed_boundaries``, ``changed_grids``).

    Returns
    -------
    PlanDiff
        ``households``: ``household_id, old_grid_code, new_grid_code, change`` for
        every household whose grid differs (empty code when absent from one plan);
        ``grids``: one row per grid code in either plan with ``change``
        (``created``, ``retired``, ``reshaped`` or ``unchanged``) and, for
        reshaped grids, the area that moved (symmetric difference) as geometry;
        ``summary``: counts.

    Examples
    --------
    >>> import geopandas as gpd, pandas as pd, shapely
    >>> a = gpd.GeoDataFrame({"grid_code": ["G1"]}, geometry=[shapely.box(0, 0, 1, 1)], crs=4326)
    >>> b = gpd.GeoDataFrame({"grid_code": ["G1", "G2"]},
    ...     geometry=[shapely.box(0, 0, 0.5, 1), shapely.box(0.5, 0, 1, 1)], crs=4326)
    >>> d = diff_plans(a, pd.DataFrame({"household_id": ["h"], "grid_code": ["G1"]}),
    ...                b, pd.DataFrame({"household_id": ["h"], "grid_code": ["G2"]}))
    >>> d.summary["households_changed"], d.summary["created"], d.summary["reshaped"]
    (1, ['G2'], ['G1'])
    """
    o = old_assignments.astype(str).set_index("household_id")["grid_code"]
    n = new_assignments.astype(str).set_index("household_id")["grid_code"]
    both = pd.concat([o.rename("old_grid_code"), n.rename("new_grid_code")], axis=1)
    both = both.fillna("")
    changed = (
        both[both["old_grid_code"] != both["new_grid_code"]]
        .reset_index(names="household_id")
        .sort_values("household_id", ignore_index=True)
    )
    changed["change"] = np.select(
        [changed["old_grid_code"] == "", changed["new_grid_code"] == ""],
        ["added", "removed"],
        default="moved",
    )
    og = old_grids.to_crs(STORAGE_CRS).set_index(old_grids["grid_code"].astype(str))
    ng = new_grids.to_crs(STORAGE_CRS).set_index(new_grids["grid_code"].astype(str))
    rows = []
    for code in sorted(set(og.index) | set(ng.index)):
        if code not in og.index:
            rows.append(
                {"grid_code": code, "change": "created", "geometry": ng.geometry[code]}
            )
        elif code not in ng.index:
            rows.append(
                {"grid_code": code, "change": "retired", "geometry": og.geometry[code]}
            )
        else:
            a, b = og.geometry[code], ng.geometry[code]
            if a.equals_exact(b, 0) or a.equals(b):
                rows.append(
                    {"grid_code": code, "change": "unchanged", "geometry": None}
                )
            else:
                rows.append(
                    {
                        "grid_code": code,
                        "change": "reshaped",
                        "geometry": shapely.symmetric_difference(a, b),
                    }
                )
    grids = gpd.GeoDataFrame(rows, geometry="geometry", crs=STORAGE_CRS)
    summary = {
        "households_changed": len(changed),
        "households_added": int((changed["old_grid_code"] == "").sum()),
        "households_removed": int((changed["new_grid_code"] == "").sum()),
        "created": grids.loc[grids["change"] == "created", "grid_code"].tolist(),
        "retired": grids.loc[grids["change"] == "retired", "grid_code"].tolist(),
        "reshaped": grids.loc[grids["change"] == "reshaped", "grid_code"].tolist(),
        "unchanged": int((grids["change"] == "unchanged").sum()),
    }
    tol = tol_m / _METRES_PER_DEGREE
    old_lines = _lines(np.asarray(og.geometry.values, dtype=object))
    new_lines = _lines(np.asarray(ng.geometry.values, dtype=object))
    changed_grids = sorted(
        code
        for code, g in zip(ng.index, ng.geometry.values, strict=True)
        if code not in og.index
        or og.geometry[code].symmetric_difference(g).area > tol * tol * 100
    )
    return PlanDiff(
        households=changed,
        grids=grids,
        summary=summary,
        added_boundaries=_minus(new_lines, old_lines, tol),
        removed_boundaries=_minus(old_lines, new_lines, tol),
        changed_grids=changed_grids,
        unchanged_households=int(len(both) - len(changed)),
    )


def _lines(geoms: np.ndarray) -> BaseGeometry:
    if len(geoms) == 0:
        return shapely.MultiLineString()
    return shapely.line_merge(shapely.union_all(shapely.boundary(geoms)))


def _minus(a: BaseGeometry, b: BaseGeometry, tol: float) -> BaseGeometry:
    if a.is_empty:
        return a
    if b.is_empty:
        return a
    rest = a.difference(b.buffer(tol, cap_style="flat"))
    parts = [p for p in shapely.get_parts(rest) if p.length > 2 * tol]
    return (
        shapely.MultiLineString(
            [q for p in parts for q in shapely.get_parts(shapely.line_merge(p))]
        )
        if parts
        else shapely.MultiLineString()
    )
