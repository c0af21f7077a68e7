"""Inputs of the map functions: plans or grids, who covers whom, display coordinates."""

from __future__ import annotations

import dataclasses
from html import escape
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.crs import STORAGE_CRS
from geo.gridding.assign import assign_households
from geo.plan import GridPlan

__all__ = ["person_html", "plan_parts", "sample_coverage"]


def plan_parts(
    plan_or_grids: GridPlan | gpd.GeoDataFrame,
    *,
    assignments: pd.DataFrame | None = None,
    households: gpd.GeoDataFrame | None = None,
) -> tuple[gpd.GeoDataFrame, pd.DataFrame | None, dict[str, Any]]:
    """``(grids, assignments, report)`` of a :class:`~geo.gridding.generate.GridPlan` or of a
    grids frame (assignments then given, or computed by containment).

    Grids come back in EPSG:4326, sorted by ``grid_code``, with a fresh index.
    """
    if isinstance(plan_or_grids, GridPlan):
        grids, report = plan_or_grids.grids, dict(plan_or_grids.report)
        assignments = plan_or_grids.assignments if assignments is None else assignments
    elif isinstance(plan_or_grids, gpd.GeoDataFrame):
        grids, report = plan_or_grids, {}
    else:
        raise TypeError(
            f"expected a GridPlan or a GeoDataFrame of grids, got {type(plan_or_grids)!r}"
        )
    if "grid_code" not in grids.columns:
        raise ValueError("grids need a 'grid_code' column")
    if grids.crs is None:
        raise ValueError("grids have no CRS")
    grids = grids.to_crs(STORAGE_CRS).sort_values("grid_code").reset_index(drop=True)
    grids["grid_code"] = grids["grid_code"].astype(str)
    if assignments is None and households is not None:
        assignments = assign_households(
            households.to_crs(STORAGE_CRS), grids
        ).assignments
    if assignments is not None:
        assignments = assignments.copy()
        assignments["grid_code"] = assignments["grid_code"].astype(str)
    return grids, assignments, report


def person_html(role: str, name: Any, phone: Any) -> str:
    """One popup row: role, name and work phone (a ``tel:`` link)."""
    if name is None or (isinstance(name, float) and np.isnan(name)):
        return ""
    tel = ""
    if isinstance(phone, str) and phone:
        digits = "".join(c for c in phone if c.isdigit() or c == "+")
        tel = f' <a href="tel:{escape(digits)}">{escape(phone)}</a>'
    return f"<tr><th>{escape(role)}</th><td>{escape(str(name))}{tel}</td></tr>"


def sample_coverage(
    plan: GridPlan, households: gpd.GeoDataFrame, people: pd.DataFrame
) -> GridPlan:
    """A stand-in for who covers whom, for demos and tests of the maps.

    Real plans record each grid's responsible worker and each household's
    covering party member (``assignments`` in the database). Until a pure
    function for that exists, this deals them out: the grid workers of a
    village to its grids in code order (``grids.worker_id``), and the party
    members of a village to its households in contiguous blocks ordered by grid,
    building and address (``assignments.member_id``; about 15–25 households each
    in the sample county).

    Parameters
    ----------
    plan
        A plan of the households (grids with ``grid_code`` and ``area_code``).
    households
        ``household_id``, ``area_code`` and ``address``; optional
        ``building_id``.
    people
        ``person_id``, ``role`` (``grid_worker``, ``party_member``) and
        ``area_code``.

    Returns
    -------
    GridPlan
        ``plan`` with ``grids.worker_id`` and ``assignments.member_id`` (missing
        where the village has no such people).

    Examples
    --------
    >>> from geo.sample import generate_county
    >>> from geo.gridding.generate import generate_grids
    >>> c = generate_county(2_000, seed=1)
    >>> plan = sample_coverage(generate_grids(c.households, c.areas), c.households, c.people)
    >>> bool(plan.grids["worker_id"].notna().all())
    True
    >>> bool(plan.assignments["member_id"].notna().mean() > 0.9)
    True
    """
    grids = plan.grids.copy()
    ppl = people.sort_values("person_id")
    workers = ppl[ppl["role"] == "grid_worker"].groupby("area_code")["person_id"]
    by_area = {code: list(ids) for code, ids in workers}
    grids["worker_id"] = None
    for area, idx in grids.sort_values("grid_code").groupby("area_code").groups.items():
        ids = by_area.get(area, [])
        if ids:
            grids.loc[idx, "worker_id"] = [ids[i % len(ids)] for i in range(len(idx))]

    hh = households[["household_id", "area_code", "address"]].copy()
    if "building_id" in households.columns:
        hh["building_id"] = households["building_id"].astype(str)
    else:
        hh["building_id"] = ""
    asg = plan.assignments[["household_id", "grid_code"]].merge(
        hh, on="household_id", how="left"
    )
    asg = asg.sort_values(["area_code", "grid_code", "building_id", "address"])
    members = ppl[ppl["role"] == "party_member"].groupby("area_code")["person_id"]
    m_by_area = {code: list(ids) for code, ids in members}
    member = pd.Series(pd.NA, index=asg.index, dtype=object)
    for area, idx in asg.groupby("area_code", sort=False).groups.items():
        ids = m_by_area.get(area, [])
        if not ids:
            continue
        blocks = np.array_split(np.asarray(idx), len(ids))
        for pid, block in zip(ids, blocks, strict=True):
            member.loc[block] = pid
    asg["member_id"] = member
    assignments = plan.assignments.merge(
        asg[["household_id", "member_id"]], on="household_id", how="left"
    )
    return dataclasses.replace(plan, grids=grids, assignments=assignments)


def rep_points(geoms: Any) -> np.ndarray:
    """A point inside each polygon (for labels and search)."""
    return np.asarray(shapely.point_on_surface(np.asarray(geoms, dtype=object)))
