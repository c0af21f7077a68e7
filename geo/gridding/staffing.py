"""Staffing a plan: grid workers for grids, micro-grids and their covering party members."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd

from geo.gridding.generate import generate_grids
from geo.plan import GridPlan

__all__ = ["assign_members", "assign_workers", "generate_micro_grids"]


def generate_micro_grids(
    plan: GridPlan,
    households: gpd.GeoDataFrame,
    *,
    min_households: float = 10,
    max_households: float = 30,
    weight: str | None = None,
) -> GridPlan:
    """Divide every grid of ``plan`` into micro-grids (党员联户) of a smaller band.

    The same engine as :func:`generate_grids`, run inside each grid: micro-grids
    are contiguous, lie inside their grid, tile it, and keep buildings whole
    unless a building alone exceeds ``max_households`` (then it is split by
    unit and reported). Codes are the grid code plus a two-digit sequence.

    Parameters
    ----------
    plan
        The plan whose grids are divided.
    households
        The plan's households: ``household_id``, points; optional
        ``building_id``, ``unit`` and the ``weight`` column.
    min_households, max_households
        The micro-grid band (default 10–30 households).
    weight
        Column giving each household's workload (default 1 each).

    Returns
    -------
    GridPlan
        The micro-grids: ``grids`` (``grid_code``, ``area_code`` = the grid
        they divide) and ``assignments`` of every household to one.

    Raises
    ------
    ValueError
        A household of ``households`` is not in the plan.

    Examples
    --------
    >>> import geopandas as gpd, numpy as np, shapely
    >>> rng = np.random.default_rng(0)
    >>> hh = gpd.GeoDataFrame({"household_id": [f"h{i}" for i in range(500)]},
    ...     geometry=shapely.points(rng.uniform(0, 0.01, 500), rng.uniform(0, 0.01, 500)),
    ...     crs=4326)
    >>> village = gpd.GeoDataFrame({"code": ["V1"]}, geometry=[shapely.box(0, 0, 0.01, 0.01)],
    ...     crs=4326)
    >>> micro = generate_micro_grids(generate_grids(hh, village), hh)
    >>> micro.report["metrics"]["in_band_share"], micro.grids["grid_code"].iloc[0]
    (1.0, 'V10101')
    """
    grids = plan.grids
    areas = gpd.GeoDataFrame(
        {
            "code": grids["grid_code"].to_numpy(),
            # each grid is its own parent: micro-grids never merge across grids
            "parent_code": grids["grid_code"].to_numpy(),
        },
        geometry=list(grids.geometry.values),
        crs=grids.crs,
    )
    of = plan.assignments.set_index("household_id")["grid_code"]
    hh = households.copy()
    hh["area_code"] = hh["household_id"].map(of)
    if hh["area_code"].isna().any():
        missing = hh.loc[hh["area_code"].isna(), "household_id"].head(5).tolist()
        raise ValueError(f"households not in the plan: {missing}")
    micro = generate_grids(
        hh,
        areas,
        min_households=min_households,
        max_households=max_households,
        weight=weight,
    )
    return micro


def assign_workers(grids: gpd.GeoDataFrame, people: pd.DataFrame) -> gpd.GeoDataFrame:
    """Give each grid a grid worker (网格员) from its own area, spreading the load.

    Workers of the grid's area (``people.area_code``) are used in turn, the one
    with the fewest grids first; a grid whose area has none gets no worker
    (``worker_id`` None) — the coverage audit lists it.

    Parameters
    ----------
    grids
        ``grid_code`` and ``area_code`` (the village/community).
    people
        ``person_id``, ``role`` and ``area_code``; only ``grid_worker`` rows
        are used.

    Returns
    -------
    geopandas.GeoDataFrame
        ``grids`` with a ``worker_id`` column.

    Examples
    --------
    >>> import geopandas as gpd, pandas as pd, shapely
    >>> g = gpd.GeoDataFrame({"grid_code": ["V01", "V02", "V03"], "area_code": "V"},
    ...     geometry=[shapely.box(0, 0, 1, 1)] * 3, crs=4326)
    >>> p = pd.DataFrame({"person_id": ["a", "b"], "role": "grid_worker", "area_code": "V"})
    >>> assign_workers(g, p)["worker_id"].tolist()
    ['a', 'b', 'a']
    """
    out = grids.copy()
    workers = people[people["role"] == "grid_worker"]
    by_area = {a: list(g["person_id"]) for a, g in workers.groupby("area_code")}
    load: dict[str, int] = {}
    chosen: list[str | None] = []
    for code, area in zip(out["grid_code"], out["area_code"], strict=True):
        pool = by_area.get(area, [])
        if not pool:
            chosen.append(None)
            continue
        pick = min(pool, key=lambda p: (load.get(p, 0), pool.index(p)))
        load[pick] = load.get(pick, 0) + 1
        chosen.append(pick)
        del code
    out["worker_id"] = chosen
    return out


def assign_members(
    micro_assignments: pd.DataFrame,
    micro_grids: gpd.GeoDataFrame,
    grid_of_micro: pd.Series,
    area_of_grid: pd.Series,
    people: pd.DataFrame,
) -> pd.DataFrame:
    """Each household's covering party member: one member per micro-grid.

    Parameters
    ----------
    micro_assignments
        ``household_id, grid_code`` (micro-grid codes).
    micro_grids
        The micro-grids (``grid_code``).
    grid_of_micro
        Micro-grid code → grid code.
    area_of_grid
        Grid code → area code (members are chosen from the grid's area).
    people
        ``person_id, role, area_code``.

    Returns
    -------
    pandas.DataFrame
        ``household_id, member_id`` (missing, NaN, where the area has too few
        members).

    Examples
    --------
    Three micro-grids of two grids in village V, two party members: the
    micro-grids in code order get one member each until none is left.

    >>> import geopandas as gpd, pandas as pd, shapely
    >>> micro = gpd.GeoDataFrame({"grid_code": ["V0101", "V0102", "V0201"]},
    ...     geometry=[shapely.box(0, 0, 1, 1)] * 3, crs=4326)
    >>> asg = pd.DataFrame({"household_id": ["h1", "h2", "h3", "h4"],
    ...                     "grid_code": ["V0101", "V0101", "V0102", "V0201"]})
    >>> grid_of_micro = pd.Series({"V0101": "V01", "V0102": "V01", "V0201": "V02"})
    >>> area_of_grid = pd.Series({"V01": "V", "V02": "V"})
    >>> people = pd.DataFrame({"person_id": ["m1", "m2", "w1"],
    ...     "role": ["party_member", "party_member", "grid_worker"], "area_code": "V"})
    >>> covered = assign_members(asg, micro, grid_of_micro, area_of_grid, people)
    >>> covered.values.tolist()
    [['h1', 'm1'], ['h2', 'm1'], ['h3', 'm2'], ['h4', nan]]
    >>> covered["member_id"].isna().tolist()
    [False, False, False, True]
    """
    members = people[people["role"] == "party_member"]
    pool = {a: list(g["person_id"]) for a, g in members.groupby("area_code")}
    used: dict[str, int] = {}
    member_of_micro: dict[str, str | None] = {}
    for micro in sorted(micro_grids["grid_code"]):
        area = area_of_grid.get(grid_of_micro.get(micro))
        cands = pool.get(area, [])
        free = [p for p in cands if used.get(p, 0) == 0]
        pick = free[0] if free else None
        if pick is not None:
            used[pick] = 1
        member_of_micro[micro] = pick
    return pd.DataFrame(
        {
            "household_id": micro_assignments["household_id"].to_numpy(),
            "member_id": micro_assignments["grid_code"].map(member_of_micro).to_numpy(),
        }
    )
