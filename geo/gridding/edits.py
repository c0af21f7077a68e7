"""A planner's manual edits to a plan: move households or a building, split, merge, validate."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.crs import STORAGE_CRS
from geo.errors import EditError
from geo.gridding._atoms import _atoms, _cells, _Unit
from geo.gridding._codes import _next_code
from geo.gridding._cuts import _partition
from geo.gridding._geometry import _clean, _repaired, _union
from geo.gridding.metrics import plan_metrics
from geo.plan import Band, GridPlan

__all__ = [
    "EditError",
    "border_units",
    "merge_grids",
    "move_building",
    "move_households",
    "split_along",
    "split_grid",
    "validate_plan",
]


def _frames(plan: GridPlan) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    grids = plan.grids.to_crs(STORAGE_CRS).reset_index(drop=True).copy()
    return grids, plan.assignments.copy()


def _rebuild(
    plan: GridPlan,
    grids: gpd.GeoDataFrame,
    assignments: pd.DataFrame,
    band: Band,
    note: str,
) -> GridPlan:
    counts = assignments.groupby("grid_code").size()
    grids["households"] = grids["grid_code"].map(counts).fillna(0).astype(int)
    grids["load"] = grids["households"].astype(float)
    grids["parts"] = [len(shapely.get_parts(g)) for g in grids.geometry.values]
    geoms = np.array(list(grids.geometry.values), dtype=object)
    bad = ~shapely.is_valid(geoms)
    if bad.any():  # an overlay left a self-touching ring: repair without moving area
        geoms[bad] = [_repaired(g) for g in geoms[bad]]
    grids["geometry"] = [
        shapely.MultiPolygon([g]) if g.geom_type == "Polygon" else g for g in geoms
    ]
    report = dict(plan.report)
    report["metrics"] = plan_metrics(
        grids, min_households=band.min, max_households=band.max
    )
    report["edits"] = [*report.get("edits", []), note]
    return replace(
        plan,
        grids=grids.sort_values("grid_code").reset_index(drop=True),
        assignments=assignments.reset_index(drop=True),
        report=report,
    )


def _band(code: str, n: int, band: Band, allow: bool) -> None:
    if not allow and not band.min <= n <= band.max:
        raise EditError(
            f"grid {code} would hold {n} households, outside {band.min:g}–{band.max:g}; pass "
            "allow_out_of_band=True to accept and report it"
        )


def move_households(
    plan: GridPlan,
    households: gpd.GeoDataFrame,
    household_ids: list[str] | tuple[str, ...],
    to_grid: str,
    *,
    min_households: float = 200,
    max_households: float = 300,
    allow_out_of_band: bool = False,
) -> GridPlan:
    """Move households (with the territory around them) into an adjacent grid.

    The moved households' Voronoi cells inside their grid go to ``to_grid``, so
    the tiling stays exact. Refused with :class:`EditError` when a household is
    unknown or already there, when its grid does not border ``to_grid``, when
    the move would split the giving grid, or would take a grid out of band.

    Parameters
    ----------
    plan
        The plan to edit (not changed: a new plan is returned).
    households
        The plan's households: ``household_id`` and points (any CRS).
    household_ids
        The households to move; households at one building point must move
        together (see :func:`move_building`).
    to_grid
        The code of the grid that receives them; it must border their grid.
    min_households, max_households
        The band both grids must stay in.
    allow_out_of_band
        Accept a grid leaving the band (the plan's metrics report it).

    Returns
    -------
    GridPlan
        The edited plan; its report lists the edit under ``edits``.

    Raises
    ------
    geo.errors.EditError
        Saying which rule the move breaks; the plan is unchanged.

    Examples
    --------
    >>> import geopandas as gpd, numpy as np, shapely
    >>> from geo.gridding.generate import generate_grids
    >>> rng = np.random.default_rng(0)
    >>> hh = gpd.GeoDataFrame({"household_id": [f"h{i}" for i in range(1000)]},
    ...     geometry=shapely.points(rng.uniform(0, 0.01, 1000), rng.uniform(0, 0.01, 1000)),
    ...     crs=4326)
    >>> v = gpd.GeoDataFrame({"code": ["V"]}, geometry=[shapely.box(0, 0, 0.01, 0.01)], crs=4326)
    >>> plan = generate_grids(hh, v)
    >>> move_households(plan, hh, ["nope"], "V01")
    Traceback (most recent call last):
    ...
    geo.errors.EditError: unknown household(s): nope
    """
    band = Band(min_households, max_households)
    grids, assignments = _frames(plan)
    ids = [str(h) for h in household_ids]
    of = assignments.set_index("household_id")["grid_code"]
    unknown = [h for h in ids if h not in of.index]
    if unknown:
        raise EditError(f"unknown household(s): {', '.join(unknown[:10])}")
    if to_grid not in set(grids["grid_code"]):
        raise EditError(f"unknown grid {to_grid!r}")
    already = [h for h in ids if of[h] == to_grid]
    if already:
        raise EditError(f"household(s) already in {to_grid}: {', '.join(already[:10])}")
    pts = (
        households.to_crs(STORAGE_CRS)
        .set_index(households["household_id"].astype(str))
        .geometry
    )
    gi = {c: i for i, c in enumerate(grids["grid_code"])}
    geoms = list(grids.geometry.values)
    for src, group in pd.Series(ids).groupby(of.reindex(ids).to_numpy()):
        members = of.index[of == src].tolist()
        xy = dict(
            zip(
                members,
                map(tuple, shapely.get_coordinates(pts.reindex(members).values)),
                strict=True,
            )
        )
        keys = sorted(set(xy.values()))
        moving = {xy[h] for h in group}
        in_group = set(group)
        staying = [h for h in members if xy[h] in moving and h not in in_group]
        if staying:
            raise EditError(
                f"{', '.join(staying[:5])} share a building point with the moved households "
                f"in {src}; move the whole building (move_building)"
            )
        cells = dict(zip(keys, _cells(geoms[gi[src]], keys), strict=True))
        region = shapely.union_all([cells[k] for k in moving])
        if (
            shapely.length(
                shapely.intersection(region.boundary, geoms[gi[to_grid]].boundary)
            )
            <= 0
        ):
            raise EditError(
                f"grid {src} and grid {to_grid} share no boundary next to the moved "
                "households; move them to a neighbouring grid"
            )
        rest = _clean(shapely.difference(geoms[gi[src]], region))
        rest_pts = [shapely.Point(xy[h]) for h in members if h not in in_group]
        if (
            rest_pts
            and sum(
                bool(shapely.intersects(p, shapely.multipoints(rest_pts)))
                for p in shapely.get_parts(rest)
            )
            > 1
        ):
            raise EditError(f"moving these households would split grid {src} in two")
        geoms[gi[src]] = rest
        geoms[gi[to_grid]] = _union([geoms[gi[to_grid]], region])
        _band(src, len(members) - len(group), band, allow_out_of_band)
    _band(to_grid, int((of == to_grid).sum()) + len(ids), band, allow_out_of_band)
    grids["geometry"] = geoms
    assignments.loc[assignments["household_id"].isin(ids), "grid_code"] = to_grid
    return _rebuild(
        plan, grids, assignments, band, f"moved {len(ids)} household(s) to {to_grid}"
    )


def border_units(
    grid_geom: Any, to_geom: Any, households: gpd.GeoDataFrame
) -> list[tuple[str, int]]:
    """The units of a grid that :func:`move_households` can move into the grid
    ``to_geom``: those whose Voronoi cell in the grid (the rule a move is checked
    by) shares a boundary with it, nearest first, as ``(unit, households)``.

    Parameters
    ----------
    grid_geom : Polygon or MultiPolygon
        The grid the units would leave.
    to_geom : Polygon or MultiPolygon
        The grid they would join.
    households : GeoDataFrame
        The grid's households: ``household_id``, ``building_id``, point geometry
        in :data:`~geo.crs.STORAGE_CRS`.

    Returns
    -------
    list of (str, int)
        Each unit (a building, or ``h:<household id>`` for a household without
        one) and its household count, nearest ``to_geom`` first.

    Examples
    --------
    >>> import geopandas as gpd
    >>> from shapely import Point, box
    >>> hh = gpd.GeoDataFrame(
    ...     {"household_id": ["a", "b"], "building_id": [None, "B1"]},
    ...     geometry=[Point(0.5, 0.5), Point(1.5, 0.5)], crs=4326)
    >>> border_units(box(0, 0, 2, 1), box(2, 0, 3, 1), hh)
    [('B1', 1)]
    """
    if households.empty:
        return []
    xy = [tuple(c) for c in shapely.get_coordinates(households.geometry.values)]
    keys = sorted(set(xy))
    cells = _cells(grid_geom, keys, near=to_geom)
    edge = to_geom.boundary
    touching = {
        k
        for k, c in zip(keys, cells, strict=True)
        if not c.is_empty and shapely.length(shapely.intersection(c.boundary, edge)) > 0
    }
    bid = households["building_id"]
    unit = np.where(
        bid.notna(), bid.astype(str), "h:" + households["household_id"].astype(str)
    )
    frame = pd.DataFrame({"unit": unit, "ok": [p in touching for p in xy]})
    frame["d"] = shapely.distance(households.geometry.values, to_geom)
    g = frame.groupby("unit").agg(n=("ok", "size"), ok=("ok", "all"), d=("d", "min"))
    g = g[g["ok"]].sort_values(["d"], kind="stable")
    return [(str(u), int(n)) for u, n in zip(g.index, g["n"], strict=True)]


def move_building(
    plan: GridPlan,
    households: gpd.GeoDataFrame,
    building_id: str,
    to_grid: str,
    *,
    min_households: float = 200,
    max_households: float = 300,
    allow_out_of_band: bool = False,
) -> GridPlan:
    """Move every household of a building to an adjacent grid.

    The same rules as :func:`move_households` apply to the building's
    households together.

    Parameters
    ----------
    plan
        The plan to edit (not changed: a new plan is returned).
    households
        The plan's households: ``household_id``, ``building_id`` and points.
    building_id
        The building to move.
    to_grid
        The code of the grid that receives it; it must border the building's grid.
    min_households, max_households
        The band both grids must stay in.
    allow_out_of_band
        Accept a grid leaving the band (the plan's metrics report it).

    Returns
    -------
    GridPlan
        The edited plan; its report lists the edit under ``edits``.

    Raises
    ------
    geo.errors.EditError
        The building is unknown, or the move breaks a rule of
        :func:`move_households`.

    Examples
    --------
    >>> import geopandas as gpd, numpy as np, shapely
    >>> from geo.gridding.generate import generate_grids
    >>> rng = np.random.default_rng(0)
    >>> hh = gpd.GeoDataFrame({"household_id": [f"h{i}" for i in range(1000)],
    ...                        "building_id": [f"b{i}" for i in range(1000)]},
    ...     geometry=shapely.points(rng.uniform(0, 0.01, 1000), rng.uniform(0, 0.01, 1000)),
    ...     crs=4326)
    >>> v = gpd.GeoDataFrame({"code": ["V"]}, geometry=[shapely.box(0, 0, 0.01, 0.01)], crs=4326)
    >>> plan = generate_grids(hh, v)

    V01 lies above V03; move V01's lowest building down into V03:

    >>> in_v01 = hh[hh["household_id"].isin(
    ...     plan.assignments.loc[plan.assignments["grid_code"] == "V01", "household_id"])]
    >>> lowest = in_v01.loc[in_v01.geometry.y.idxmin(), "building_id"]
    >>> moved = move_building(plan, hh, lowest, "V03")
    >>> before = plan.grids.set_index("grid_code")["households"]
    >>> (moved.grids.set_index("grid_code")["households"] - before).to_dict()
    {'V01': -1, 'V02': 0, 'V03': 1, 'V04': 0}
    >>> validate_plan(moved, hh, areas=v)
    []
    >>> move_building(plan, hh, "b-none", "V03")
    Traceback (most recent call last):
    ...
    geo.errors.EditError: unknown building 'b-none'
    """
    ids = households.loc[
        households["building_id"].astype(str) == str(building_id), "household_id"
    ]
    if ids.empty:
        raise EditError(f"unknown building {building_id!r}")
    return move_households(
        plan,
        households,
        ids.astype(str).tolist(),
        to_grid,
        min_households=min_households,
        max_households=max_households,
        allow_out_of_band=allow_out_of_band,
    )


def split_grid(
    plan: GridPlan,
    households: gpd.GeoDataFrame,
    grid_code: str,
    *,
    parts: int = 2,
    min_households: float = 200,
    max_households: float = 300,
    allow_out_of_band: bool = False,
    retired_codes: tuple[str, ...] = (),
) -> GridPlan:
    """Split a grid into ``parts`` compact pieces; the largest keeps the code.

    The pieces hold about equal numbers of households, keep buildings whole and
    tile the grid exactly; the others get the next free codes of the area.

    Parameters
    ----------
    plan
        The plan to edit (not changed: a new plan is returned).
    households
        The plan's households: ``household_id``, points; optional
        ``building_id``, ``unit``.
    grid_code
        The grid to split.
    parts
        How many pieces.
    min_households, max_households
        The band every piece must be in.
    allow_out_of_band
        Accept pieces outside the band (the plan's metrics report them).
    retired_codes
        Codes retired by earlier versions of the plan (never given again).

    Returns
    -------
    GridPlan
        The edited plan; its report lists the edit under ``edits``.

    Raises
    ------
    geo.errors.EditError
        The grid is unknown, cannot be cut into ``parts``, or a piece would be
        out of band.

    Examples
    --------
    >>> import geopandas as gpd, numpy as np, shapely
    >>> from geo.gridding.generate import generate_grids
    >>> rng = np.random.default_rng(0)
    >>> hh = gpd.GeoDataFrame({"household_id": [f"h{i}" for i in range(1000)]},
    ...     geometry=shapely.points(rng.uniform(0, 0.01, 1000), rng.uniform(0, 0.01, 1000)),
    ...     crs=4326)
    >>> v = gpd.GeoDataFrame({"code": ["V"]}, geometry=[shapely.box(0, 0, 0.01, 0.01)], crs=4326)
    >>> plan = generate_grids(hh, v)
    >>> split_grid(plan, hh, "V01")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    geo.errors.EditError: grid V0... would hold 11... households, outside 200–300; pass allow_out_of_band=True to accept and report it
    >>> two = split_grid(plan, hh, "V01", allow_out_of_band=True)
    >>> two.grids["grid_code"].tolist()
    ['V01', 'V02', 'V03', 'V04', 'V05']
    >>> before = plan.grids.set_index("grid_code")["households"]
    >>> after = two.grids.set_index("grid_code")["households"]
    >>> bool(after["V01"] + after["V05"] == before["V01"]), bool(abs(after["V01"] - after["V05"]) <= 2)
    (True, True)
    >>> split_grid(plan, hh, "V01", allow_out_of_band=True, retired_codes=("V05",)).grids[
    ...     "grid_code"].tolist()
    ['V01', 'V02', 'V03', 'V04', 'V06']
    """
    band = Band(min_households, max_households)
    grids, assignments = _frames(plan)
    if grid_code not in set(grids["grid_code"]):
        raise EditError(f"unknown grid {grid_code!r}")
    row = grids[grids["grid_code"] == grid_code].iloc[0]
    ids = assignments.loc[assignments["grid_code"] == grid_code, "household_id"].astype(
        str
    )
    hh = households[households["household_id"].astype(str).isin(set(ids))].reset_index(
        drop=True
    )
    atoms, _ = _atoms(
        hh, np.zeros(len(hh), dtype=np.int64), np.ones(len(hh)), band, [grid_code]
    )
    unit = _Unit(
        codes=[row["area_code"]],
        parent=None,
        geom=row.geometry,
        atoms=list(range(len(atoms))),
        load=float(len(hh)),
        count=len(hh),
    )
    n = len(hh)
    band_lo, band_hi = n / parts * 0.999, n / parts * 1.001 + 1
    pieces = _partition(
        unit,
        atoms,
        Band(min(band.min, band_lo), max(band.max, band_hi), n / parts),
        math.cos(math.radians(row.geometry.centroid.y)),
    )
    if len(pieces) != parts:
        pieces = _partition(
            unit,
            atoms,
            Band(band_lo * 0.8, band_hi * 1.2, n / parts),
            math.cos(math.radians(row.geometry.centroid.y)),
        )
    if len(pieces) < 2:
        raise EditError(f"grid {grid_code} cannot be split into {parts} parts")
    used = set(grids["grid_code"]) | set(retired_codes)
    sizes = [sum(len(atoms[a].members) for a in m) for _, m in pieces]
    keep = int(np.argmax(sizes))
    new_rows, ids_arr = [], hh["household_id"].astype(str).to_numpy()
    for i, (geom, members) in enumerate(pieces):
        code = grid_code if i == keep else _next_code(row["area_code"], used)
        _band(code, sizes[i], band, allow_out_of_band)
        idx: Any = (
            np.concatenate([atoms[a].members for a in members]) if members else []
        )
        assignments.loc[assignments["household_id"].isin(ids_arr[idx]), "grid_code"] = (
            code
        )
        new_rows.append({**row.to_dict(), "grid_code": code, "geometry": geom})
    grids = pd.concat(
        [
            grids[grids["grid_code"] != grid_code],
            gpd.GeoDataFrame(new_rows, crs=grids.crs),
        ],
        ignore_index=True,
    )
    grids = gpd.GeoDataFrame(grids, geometry="geometry", crs=STORAGE_CRS)
    return _rebuild(
        plan, grids, assignments, band, f"split {grid_code} into {len(pieces)}"
    )


def split_along(
    plan: GridPlan,
    households: gpd.GeoDataFrame,
    grid_code: str,
    line: Any,
    *,
    min_households: float = 200,
    max_households: float = 300,
    allow_out_of_band: bool = False,
    retired_codes: tuple[str, ...] = (),
) -> GridPlan:
    """Split a grid along a line the planner drew; the largest piece keeps the code.

    The line must cross the grid so that at least two pieces hold households;
    each building goes with the piece its point lies in (buildings stay
    whole), pieces holding no household join the neighbouring piece they share
    the longest edge with, so the pieces still tile the grid exactly.

    Parameters
    ----------
    plan
        The plan to edit (not changed: a new plan is returned).
    households
        The plan's households: ``household_id`` and points.
    grid_code
        The grid to split.
    line
        A LineString (or lon/lat pairs) in EPSG:4326 crossing the grid.
    min_households, max_households, allow_out_of_band, retired_codes
        As for :func:`split_grid`.

    Returns
    -------
    GridPlan
        The edited plan; its report lists the edit under ``edits``.

    Raises
    ------
    geo.errors.EditError
        The grid is unknown, the line does not cut it into pieces holding
        households, or a piece would be out of band.

    Examples
    --------
    >>> import geopandas as gpd, numpy as np, shapely
    >>> from geo.gridding.generate import generate_grids
    >>> rng = np.random.default_rng(0)
    >>> hh = gpd.GeoDataFrame({"household_id": [f"h{i}" for i in range(1000)]},
    ...     geometry=shapely.points(rng.uniform(0, 0.01, 1000), rng.uniform(0, 0.01, 1000)),
    ...     crs=4326)
    >>> v = gpd.GeoDataFrame({"code": ["V"]}, geometry=[shapely.box(0, 0, 0.01, 0.01)], crs=4326)
    >>> plan = generate_grids(hh, v)
    >>> g = plan.grids.set_index("grid_code").geometry["V01"]
    >>> x = g.centroid.x
    >>> cut = [(x, -1.0), (x, 1.0)]
    >>> two = split_along(plan, hh, "V01", cut, allow_out_of_band=True)
    >>> sorted(two.grids["grid_code"])
    ['V01', 'V02', 'V03', 'V04', 'V05']
    >>> int(two.grids["households"].sum())
    1000
    >>> split_along(plan, hh, "V01", [(5, 5), (6, 6)])
    Traceback (most recent call last):
    ...
    geo.errors.EditError: the line does not cut grid V01 into pieces that hold households
    """
    import shapely.ops

    band = Band(min_households, max_households)
    grids, assignments = _frames(plan)
    if grid_code not in set(grids["grid_code"]):
        raise EditError(f"unknown grid {grid_code!r}")
    row = grids[grids["grid_code"] == grid_code].iloc[0]
    cut = line if hasattr(line, "geom_type") else shapely.LineString(list(line))
    pieces = [
        p
        for p in shapely.get_parts(shapely.ops.split(row.geometry, cut).geoms)
        if p.area > 0
    ]
    ids = assignments.loc[assignments["grid_code"] == grid_code, "household_id"].astype(
        str
    )
    pts = (
        households.to_crs(STORAGE_CRS)
        .set_index(households["household_id"].astype(str))
        .geometry.reindex(ids)
    )
    if len(pieces) < 2:
        raise EditError(
            f"the line does not cut grid {grid_code} into pieces that hold households"
        )
    tree = shapely.STRtree(pieces)
    where = np.full(len(ids), -1)
    pi, hi = tree.query(np.asarray(pts.values, dtype=object), predicate="intersects")
    where[pi] = hi  # a point on the line goes to one of its pieces
    held = sorted(set(where[where >= 0].tolist()))
    if len(held) < 2 or (where < 0).any():
        raise EditError(
            f"the line does not cut grid {grid_code} into pieces that hold households"
        )
    geoms = {k: pieces[k] for k in held}
    for k, p in enumerate(
        pieces
    ):  # empty pieces join the piece they share most edge with
        if k in geoms:
            continue
        best = max(
            held, key=lambda j: shapely.length(shapely.intersection(p, pieces[j]))
        )
        geoms[best] = _union([geoms[best], p])
    sizes = {k: int((where == k).sum()) for k in held}
    keep = max(held, key=lambda k: (sizes[k], -k))
    used = set(grids["grid_code"]) | set(retired_codes)
    new_rows = []
    for k in sorted(held, key=lambda k: (k != keep, k)):
        code = grid_code if k == keep else _next_code(row["area_code"], used)
        _band(code, sizes[k], band, allow_out_of_band)
        assignments.loc[
            assignments["household_id"].astype(str).isin(ids[where == k]), "grid_code"
        ] = code
        new_rows.append(
            {**row.to_dict(), "grid_code": code, "geometry": _clean(geoms[k])}
        )
    grids = gpd.GeoDataFrame(
        pd.concat(
            [
                grids[grids["grid_code"] != grid_code],
                gpd.GeoDataFrame(new_rows, crs=grids.crs),
            ],
            ignore_index=True,
        ),
        geometry="geometry",
        crs=STORAGE_CRS,
    )
    return _rebuild(
        plan,
        grids,
        assignments,
        band,
        f"split {grid_code} along a line into {len(held)}",
    )


def merge_grids(
    plan: GridPlan,
    codes: list[str] | tuple[str, ...],
    *,
    min_households: float = 200,
    max_households: float = 300,
    allow_out_of_band: bool = False,
) -> GridPlan:
    """Merge adjacent grids into the one with most households (the others retire).

    Parameters
    ----------
    plan
        The plan to edit (not changed: a new plan is returned).
    codes
        Two or more grid codes whose union is contiguous.
    min_households, max_households
        The band the merged grid must be in.
    allow_out_of_band
        Accept a merged grid outside the band (the plan's metrics report it).

    Returns
    -------
    GridPlan
        The edited plan; its report lists the edit under ``edits``.

    Raises
    ------
    geo.errors.EditError
        Fewer than two known codes, grids that are not adjacent, or a merged
        grid out of band.

    Examples
    --------
    >>> import geopandas as gpd, numpy as np, shapely
    >>> from geo.gridding.generate import generate_grids
    >>> rng = np.random.default_rng(0)
    >>> hh = gpd.GeoDataFrame({"household_id": [f"h{i}" for i in range(1000)]},
    ...     geometry=shapely.points(rng.uniform(0, 0.01, 1000), rng.uniform(0, 0.01, 1000)),
    ...     crs=4326)
    >>> v = gpd.GeoDataFrame({"code": ["V"]}, geometry=[shapely.box(0, 0, 0.01, 0.01)], crs=4326)
    >>> plan = generate_grids(hh, v)
    >>> merge_grids(plan, ["V01", "V02"])
    Traceback (most recent call last):
    ...
    geo.errors.EditError: grid V02 would hold 487 households, outside 200–300; pass allow_out_of_band=True to accept and report it
    >>> merged = merge_grids(plan, ["V01", "V02"], max_households=500)
    >>> merged.grids[["grid_code", "households"]].values.tolist()
    [['V02', 487], ['V03', 225], ['V04', 288]]
    >>> merged.report["edits"]
    ['merged V01, V02 into V02']
    """
    band = Band(min_households, max_households)
    grids, assignments = _frames(plan)
    unknown = [c for c in codes if c not in set(grids["grid_code"])]
    if unknown or len(codes) < 2:
        raise EditError(f"need two or more known grids; unknown: {', '.join(unknown)}")
    sel = grids[grids["grid_code"].isin(codes)]
    union = _union(sel.geometry.values)
    if len(shapely.get_parts(union)) > 1:
        raise EditError(
            f"grids {', '.join(codes)} are not adjacent; merging them would not be contiguous"
        )
    counts = assignments["grid_code"].value_counts()
    keep = max(codes, key=lambda c: (counts.get(c, 0), c))
    total = int(sum(counts.get(c, 0) for c in codes))
    _band(keep, total, band, allow_out_of_band)
    assignments.loc[assignments["grid_code"].isin(codes), "grid_code"] = keep
    grids = grids[~grids["grid_code"].isin([c for c in codes if c != keep])].copy()
    grids.loc[grids["grid_code"] == keep, "geometry"] = union
    return _rebuild(
        plan, grids, assignments, band, f"merged {', '.join(codes)} into {keep}"
    )


def validate_plan(
    plan: GridPlan,
    households: gpd.GeoDataFrame,
    *,
    min_households: float = 200,
    max_households: float = 300,
    areas: gpd.GeoDataFrame | None = None,
) -> list[str]:
    """Every rule the plan breaks, as messages (an empty list means valid).

    Checks: each household assigned once and inside (or on the edge of) its
    grid; grid sizes in band unless listed as exceptions; grids contiguous;
    no overlaps; with ``areas``, the grids cover them with no gap.

    Parameters
    ----------
    plan
        The plan to check.
    households
        Every household the plan should assign: ``household_id`` and points.
    min_households, max_households
        The band (grids the plan's report lists as out-of-band exceptions
        are allowed outside it).
    areas
        The areas the grids must cover (optional).

    Returns
    -------
    list of str
        One message per broken rule, naming the grid or household.

    Examples
    --------
    >>> import dataclasses, geopandas as gpd, numpy as np, shapely
    >>> from geo.gridding.generate import generate_grids
    >>> rng = np.random.default_rng(0)
    >>> hh = gpd.GeoDataFrame({"household_id": [f"h{i}" for i in range(1000)]},
    ...     geometry=shapely.points(rng.uniform(0, 0.01, 1000), rng.uniform(0, 0.01, 1000)),
    ...     crs=4326)
    >>> v = gpd.GeoDataFrame({"code": ["V"]}, geometry=[shapely.box(0, 0, 0.01, 0.01)], crs=4326)
    >>> plan = generate_grids(hh, v)
    >>> validate_plan(plan, hh, areas=v)
    []
    >>> validate_plan(plan, hh, min_households=260)
    ['grid V01 holds 225 households, outside 260–300', 'grid V03 holds 225 households, outside 260–300']
    >>> lost = dataclasses.replace(plan, assignments=plan.assignments.iloc[1:])
    >>> validate_plan(lost, hh)
    ['1 household(s) have no grid, e.g. h367']
    """
    band = Band(min_households, max_households)
    problems: list[str] = []
    a = plan.assignments
    dup = a["household_id"][a["household_id"].duplicated()]
    if len(dup):
        problems.append(f"household {dup.iloc[0]} is assigned more than once")
    missing = set(households["household_id"].astype(str)) - set(
        a["household_id"].astype(str)
    )
    if missing:
        problems.append(
            f"{len(missing)} household(s) have no grid, e.g. {sorted(missing)[0]}"
        )
    g = plan.grids.to_crs(STORAGE_CRS)
    explained = {
        e.get("grid_code")
        for e in plan.report.get("exceptions", [])
        if e.get("kind") == "out_of_band"
    }
    counts = a["grid_code"].value_counts()
    for code in g["grid_code"]:
        n = int(counts.get(code, 0))
        if not band.min <= n <= band.max and code not in explained:
            problems.append(
                f"grid {code} holds {n} households, outside {band.min:g}–{band.max:g}"
            )
    split_ok = {
        e.get("grid_code")
        for e in plan.report.get("exceptions", [])
        if e.get("kind") == "not_contiguous"
    }
    for code, geom in zip(g["grid_code"], g.geometry.values, strict=True):
        if len(shapely.get_parts(geom)) > 1 and code not in split_ok:
            problems.append(
                f"grid {code} is in {len(shapely.get_parts(geom))} separate parts"
            )
    geoms = np.asarray(g.geometry.values, dtype=object)
    i, j = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = i < j
    over = shapely.area(shapely.intersection(geoms[i[keep]], geoms[j[keep]]))
    for x, y, ov in zip(i[keep], j[keep], over, strict=True):
        if ov > 1e-10:
            problems.append(
                f"grids {g['grid_code'].iloc[x]} and {g['grid_code'].iloc[y]} overlap"
            )
    pts = (
        households.to_crs(STORAGE_CRS)
        .set_index(households["household_id"].astype(str))
        .geometry
    )
    by_code = dict(zip(g["grid_code"], geoms, strict=True))
    joined = a[a["household_id"].astype(str).isin(pts.index)]
    poly = np.asarray([by_code.get(c) for c in joined["grid_code"]], dtype=object)
    p = np.asarray(pts.loc[joined["household_id"].astype(str)].values, dtype=object)
    ok = shapely.distance(poly, p) < 1e-9
    if not ok.all():
        problems.append(
            f"{int((~ok).sum())} household(s) lie outside their grid, e.g. "
            f"{joined['household_id'].iloc[int(np.flatnonzero(~ok)[0])]}"
        )
    if areas is not None:
        cover = shapely.union_all(geoms)
        target = shapely.union_all(areas.to_crs(STORAGE_CRS).geometry.values)
        gap = shapely.area(shapely.difference(target, cover))
        if gap > 1e-10:
            problems.append(
                f"the grids leave a gap of {gap * 1.2e10:.0f} m² (approx.) in the areas"
            )
    return problems
