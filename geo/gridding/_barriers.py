"""Barriers (rivers, main roads, railways) in generation: cutting units along them
and reporting the grids that still cross one."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.gridding._atoms import _Atom, _Unit
from geo.gridding._geometry import _union


def _report_barrier_crossings(
    grids: gpd.GeoDataFrame,
    assignments: pd.DataFrame,
    hh: gpd.GeoDataFrame,
    barriers: gpd.GeoDataFrame,
    exceptions: list[dict[str, Any]],
) -> None:
    """List every grid whose households sit on both sides of a barrier inside it."""
    lines = np.asarray(
        barriers.geometry.boundary.where(
            ~barriers.geometry.geom_type.isin(["LineString", "MultiLineString"]),
            barriers.geometry,
        ).values,
        dtype=object,
    )
    tree = shapely.STRtree(lines)
    pts = pd.Series(
        np.asarray(hh.geometry.values, dtype=object),
        index=hh["household_id"].to_numpy(),
    )
    members = assignments.groupby("grid_code")["household_id"]
    for g in grids.itertuples():
        hit = tree.query(g.geometry, predicate="intersects")
        if len(hit) == 0:
            continue
        cut = shapely.intersection(shapely.union_all(lines[hit]), g.geometry)
        pieces = shapely.get_parts(
            shapely.polygonize(
                shapely.get_parts(shapely.union(g.geometry.boundary, cut))
            )
        )
        if len(pieces) <= 1:
            continue
        mine = np.asarray(pts.loc[members.get_group(g.grid_code)].values, dtype=object)
        sides = sum(bool(shapely.intersects(p, mine).any()) for p in pieces)
        if sides > 1:
            exceptions.append(
                {
                    "area_code": g.area_code,
                    "grid_code": g.grid_code,
                    "kind": "crosses_barrier",
                    "reason": (
                        f"grid has households on {sides} sides of a barrier it contains "
                        "(joined because a side could not form an in-band grid alone, or "
                        "the barrier does not separate them within the area)"
                    ),
                    "households": int(g.households),
                }
            )


def _cut_by_barriers(
    units: list[_Unit], atoms: list[_Atom], barriers: gpd.GeoDataFrame
) -> list[_Unit]:
    """Cut each unit along the barriers; parts without households join a neighbour part."""
    lines = np.asarray(shapely.boundary(barriers.geometry.values), dtype=object)
    lines = np.where(
        np.isin(
            shapely.get_type_id(np.asarray(barriers.geometry.values, dtype=object)),
            (1, 5),
        ),
        np.asarray(barriers.geometry.values, dtype=object),
        lines,
    )
    names = (
        barriers["name"].astype(str).to_numpy()
        if "name" in barriers.columns
        else np.array([f"barrier {i + 1}" for i in range(len(barriers))])
    )
    tree = shapely.STRtree(lines)
    out: list[_Unit] = []
    for u in units:
        hit = tree.query(u.geom, predicate="intersects")
        if len(hit) == 0:
            out.append(u)
            continue
        cut = shapely.intersection(shapely.union_all(lines[hit]), u.geom)
        pieces = shapely.get_parts(
            shapely.polygonize(shapely.get_parts(shapely.union(u.geom.boundary, cut)))
        )
        pieces = [
            p
            for p in pieces
            if shapely.area(shapely.intersection(p, u.geom)) > p.area * 0.5
        ]
        if len(pieces) <= 1:
            out.append(u)
            continue
        label = ", ".join(sorted(set(names[hit])))
        parts = [
            _Unit(codes=list(u.codes), parent=u.codes[0], geom=p, barrier=label)
            for p in pieces
        ]
        ptree = shapely.STRtree(np.asarray(pieces, dtype=object))
        pts = shapely.points(
            [atoms[a].x for a in u.atoms], [atoms[a].y for a in u.atoms]
        )
        a_idx, p_idx = ptree.query(pts, predicate="intersects")
        owner = np.full(len(u.atoms), -1)
        for ai, pi in zip(a_idx, p_idx, strict=True):
            if owner[ai] < 0:
                owner[ai] = pi
        owner[owner < 0] = 0  # a point exactly on a barrier: first part
        for a, pi in zip(u.atoms, owner, strict=True):
            parts[pi].atoms.append(a)
            parts[pi].load += atoms[a].load
            parts[pi].count += atoms[a].count
        full = [p for p in parts if p.atoms]
        if not full:
            out.append(u)
            continue
        for p in (p for p in parts if not p.atoms):  # territory only: no one crosses

            def shared(q: _Unit, p: _Unit = p) -> float:
                return float(
                    shapely.length(
                        shapely.intersection(q.geom.boundary, p.geom.boundary)
                    )
                )

            best = max(
                full,
                key=shared,
            )
            best.geom = _union([best.geom, p.geom])
        out.extend(full)
    return out
