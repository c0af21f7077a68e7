"""What changed between two plans."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import shapely

from geo.crs import STORAGE_CRS
from geo.plan import PlanDiff

__all__ = ["diff_plans"]


def diff_plans(
    old_grids: gpd.GeoDataFrame,
    old_assignments: pd.DataFrame,
    new_grids: gpd.GeoDataFrame,
    new_assignments: pd.DataFrame,
) -> PlanDiff:
    """Which households changed grid, which grids were created, retired or reshaped.

    Returns
    -------
    PlanDiff
        ``households``: ``household_id, old_grid_code, new_grid_code`` for every
        household whose grid differs (empty code when absent from one plan);
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
    changed = both[both["old_grid_code"] != both["new_grid_code"]].reset_index(
        names="household_id"
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
    return PlanDiff(households=changed, grids=grids, summary=summary)
