"""Grid generation: contiguous, compact grids of 200–300 households that tile each area."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from geo.crs import STORAGE_CRS, metric_crs_for

__all__ = [
    "GridPlan",
    "generate_grids",
    "generate_micro_grids",
    "plan_metrics",
]

_ANGLES = np.deg2rad(np.arange(0.0, 180.0, 22.5))
#: precision (degrees, ~0.01 mm) for overlay operations that move cells between grids
_GRID = 1e-10
#: parts smaller than this (degrees², ~0.01 m²) are overlay slivers, not territory
_SLIVER = 1e-12


def _poly_only(g: BaseGeometry) -> BaseGeometry:
    """The polygonal part of an overlay result (drops touching lines and points)."""
    if g.geom_type in {"Polygon", "MultiPolygon"} or g.is_empty:
        return g
    polys = [p for p in shapely.get_parts(g) if p.geom_type == "Polygon"]
    if not polys:
        return shapely.Polygon()
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


def _union(geoms: Any) -> BaseGeometry:
    """Union that falls back to a 1e-11° precision grid when GEOS hits a robustness error."""
    arr = np.asarray(list(geoms), dtype=object)
    try:
        return _clean(shapely.union_all(arr))
    except shapely.errors.GEOSException:
        fixed = shapely.make_valid(arr)
        return _clean(_poly_only(shapely.union_all(fixed, grid_size=1e-11)))


def _overlay(op: Any, a: Any, b: Any) -> Any:
    """``op(a, b)`` for a shapely overlay (intersection, difference); when GEOS hits
    a robustness error (a side location conflict on near-degenerate edges), again
    on made-valid inputs snapped to a 1e-11° grid; None if that fails too."""
    try:
        return op(a, b)
    except shapely.errors.GEOSException:
        try:
            return op(shapely.make_valid(a), shapely.make_valid(b), grid_size=1e-11)
        except shapely.errors.GEOSException:
            return None


def _clean(g: BaseGeometry) -> BaseGeometry:
    """Drop sliver parts an overlay can leave behind."""
    parts = shapely.get_parts(g)
    if len(parts) <= 1:
        return g
    keep = [p for p in parts if p.area > _SLIVER]
    if len(keep) == len(parts) or not keep:
        return g
    return keep[0] if len(keep) == 1 else shapely.MultiPolygon(keep)


_VILLAGE_LEVELS = ("village", "community")


@dataclass(frozen=True)
class GridPlan:
    """A generated plan.

    Attributes
    ----------
    grids
        One row per grid: ``grid_code``, ``area_code`` (the village/community it
        belongs to), ``households``, ``load`` (weighted households), ``areas``
        (every area code it covers, ``;``-separated), ``exception`` (reason when
        out of band or otherwise special, else None), polygon in EPSG:4326.
    assignments
        ``household_id``, ``grid_code`` — every household exactly once.
    report
        ``params``, ``metrics``, ``exceptions`` (list of dicts with ``area_code``,
        ``grid_code``, ``kind``, ``reason``) and ``seconds``.
    """

    grids: gpd.GeoDataFrame
    assignments: pd.DataFrame
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Atom:
    """Households that must stay together (one building, or one point)."""

    x: float
    y: float
    load: float
    count: int
    members: np.ndarray  # household row positions
    stack: int = -1  # >= 0: a chunk of a building split by unit (same point as others)


@dataclass
class _Unit:
    """Villages (or a merged group in one township) cut into grids together."""

    codes: list[str]
    parent: str | None
    geom: BaseGeometry
    load: float = 0.0
    count: int = 0
    atoms: list[int] = field(default_factory=list)
    barrier: str | None = None  # set on the parts of an area cut by barriers


def _feasible(load: float, lo: float, hi: float) -> bool:
    if load <= 0:
        return False
    return math.ceil(load / hi - 1e-9) <= math.floor(load / lo + 1e-9)


def _grid_count(load: float, lo: float, hi: float, target: float) -> int:
    """Number of grids for ``load``: in band when possible, else nearest to target."""
    if load <= 0:
        return 1
    k_min = max(1, math.ceil(load / hi - 1e-9))
    k_max = max(1, math.floor(load / lo + 1e-9))
    k = max(1, round(load / target))
    if k_min <= k_max:
        return min(max(k, k_min), k_max)
    return max(1, k)


def generate_grids(
    households: gpd.GeoDataFrame,
    areas: gpd.GeoDataFrame,
    *,
    min_households: float = 200,
    max_households: float = 300,
    target: float | None = None,
    respect_level: str = "village",
    barriers: gpd.GeoDataFrame | None = None,
    weight: str | None = None,
    seed: int = 0,
    code_digits: int = 2,
) -> GridPlan:
    """Draw grids of ``min_households``–``max_households`` that tile every area.

    Each village/community (``respect_level="village"``) or township
    (``"township"``) is cut into the number of grids its load allows by
    recursive straight cuts: every cut splits the households at a weighted
    quantile so both sides can still be divided in band, and among several
    directions the most compact pair of pieces wins. Grids therefore tile the
    area exactly (each cut splits a polygon in two), hold whole buildings, and
    are compact. Villages whose load cannot be cut into in-band grids (fewer
    than ``min_households``, or e.g. 301–399) are merged with an adjacent village
    of the same township when that makes the band reachable; otherwise they
    keep one out-of-band grid. Every such case is listed in the report.

    Parameters
    ----------
    households
        Points (any CRS) with ``household_id``; optional ``building_id`` (households
        sharing it stay in one grid), ``unit`` (orders the households of a building
        too large for one grid), ``area_code`` and the ``weight`` column.
    areas
        Polygons with ``code``, optional ``level`` and ``parent_code``.
    min_households, max_households, target
        The band and the preferred size (default: the middle of the band).
    respect_level
        ``"village"`` (villages and communities) or ``"township"``.
    barriers
        Lines or polygons (rivers, main roads, railways; optional ``name``) that
        grids should not cross: each area is first cut along them, and a part
        is joined across a barrier only when it cannot form in-band grids alone
        (reported as ``crosses_barrier``).
    weight
        Column giving each household's workload (default 1 each).
    seed
        Only breaks exact ties; the same input and seed give the same plan.
    code_digits
        Digits of the sequence appended to the area code (``01``…).

    Returns
    -------
    GridPlan

    Examples
    --------
    >>> import geopandas as gpd, numpy as np, shapely
    >>> rng = np.random.default_rng(0)
    >>> hh = gpd.GeoDataFrame({"household_id": [f"h{i}" for i in range(1000)]},
    ...     geometry=shapely.points(rng.uniform(0, 0.01, 1000), rng.uniform(0, 0.01, 1000)),
    ...     crs=4326)
    >>> village = gpd.GeoDataFrame({"code": ["V1"], "level": ["village"]},
    ...     geometry=[shapely.box(0, 0, 0.01, 0.01)], crs=4326)
    >>> plan = generate_grids(hh, village)
    >>> len(plan.grids), plan.report["metrics"]["in_band_share"]
    (4, 1.0)
    >>> plan.grids["grid_code"].tolist()
    ['V101', 'V102', 'V103', 'V104']
    """
    t0 = time.perf_counter()
    lo, hi = float(min_households), float(max_households)
    if not 0 < lo <= hi:
        raise ValueError(f"need 0 < min_households <= max_households, got {lo}, {hi}")
    tgt = float(target) if target is not None else (lo + hi) / 2
    if not lo <= tgt <= hi:
        raise ValueError(f"target {tgt} is outside the band {lo}–{hi}")
    if "household_id" not in households.columns:
        raise ValueError("households need a 'household_id' column")
    if "code" not in areas.columns:
        raise ValueError("areas need a 'code' column")
    if households["household_id"].duplicated().any():
        dup = households["household_id"][households["household_id"].duplicated()].iloc[
            0
        ]
        raise ValueError(f"duplicate household_id {dup!r}")
    if weight is not None and weight not in households.columns:
        raise ValueError(f"weight column {weight!r} not in households")

    hh = households.to_crs(STORAGE_CRS) if households.crs != areas.crs else households
    ar = areas.to_crs(STORAGE_CRS)
    hh = hh.to_crs(STORAGE_CRS)
    levels = _VILLAGE_LEVELS if respect_level == "village" else (respect_level,)
    if "level" in ar.columns:
        leaf = ar[ar["level"].isin(levels)]
        if leaf.empty:
            raise ValueError(f"no areas at level {respect_level!r}")
    else:
        leaf = ar
    leaf = leaf.reset_index(drop=True)
    parent = (
        leaf["parent_code"]
        .astype(object)
        .where(leaf["parent_code"].notna(), None)
        .tolist()
        if "parent_code" in leaf.columns
        else [None] * len(leaf)
    )
    lat0 = float(np.mean(shapely.bounds(leaf.geometry.values)[:, [1, 3]]))
    kx = math.cos(math.radians(lat0))

    # households -> leaf area
    area_pos = _locate(hh, leaf)
    outside = np.flatnonzero(area_pos < 0)
    if len(outside):
        ids = hh["household_id"].iloc[outside[:10]].tolist()
        raise ValueError(
            f"{len(outside)} household(s) lie outside every {respect_level}: {ids}"
        )
    loads = (
        pd.to_numeric(hh[weight], errors="coerce").fillna(1.0).to_numpy(dtype=float)
        if weight
        else np.ones(len(hh))
    )
    atoms, exceptions = _atoms(hh, area_pos, loads, hi, leaf["code"].tolist())

    # units: one per leaf area, merged where the band is unreachable
    units = [
        _Unit(codes=[c], parent=p, geom=g)
        for c, p, g in zip(leaf["code"], parent, leaf.geometry.values, strict=True)
    ]
    for i, a in enumerate(atoms):
        u = units[int(area_pos[a.members[0]])]
        u.atoms.append(i)
        u.load += a.load
        u.count += a.count
    if barriers is not None and len(barriers):
        units = _cut_by_barriers(units, atoms, barriers.to_crs(STORAGE_CRS))
        cut = [u for u in units if u.barrier is not None]
        whole = [u for u in units if u.barrier is None]
        units = whole + _merge_units(cut, lo, hi, exceptions, kind="crosses_barrier")
        area_parent = dict(zip(leaf["code"], parent, strict=True))
        for u in units:
            u.parent = area_parent[u.codes[0]]
    units = _merge_units(units, lo, hi, exceptions)

    rows: list[dict[str, Any]] = []
    for u in units:
        pieces = _partition(u, atoms, lo, hi, tgt, kx)
        rows.extend(_unit_grids(u, pieces, atoms, area_pos, leaf, lo, hi, exceptions))

    grids, assignments = _finish(rows, hh, leaf, kx, code_digits, exceptions)
    if barriers is not None and len(barriers):
        _report_barrier_crossings(
            grids, assignments, hh, barriers.to_crs(STORAGE_CRS), exceptions
        )
    metrics = plan_metrics(grids, min_households=lo, max_households=hi)
    report = {
        "params": {
            "min_households": lo,
            "max_households": hi,
            "target": tgt,
            "respect_level": respect_level,
            "weight": weight,
            "seed": seed,
        },
        "metrics": metrics,
        "exceptions": exceptions,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return GridPlan(grids=grids, assignments=assignments, report=report)


def _locate(hh: gpd.GeoDataFrame, leaf: gpd.GeoDataFrame) -> np.ndarray:
    """Leaf-area position of each household: its area_code, else containment."""
    pos = np.full(len(hh), -1, dtype=np.int64)
    if "area_code" in hh.columns:
        by_code = pd.Series(
            np.arange(len(leaf)), index=leaf["code"].astype(str).to_numpy()
        )
        codes = hh["area_code"].astype(object)
        mapped = by_code.reindex(codes.where(codes.notna(), "").astype(str).to_numpy())
        ok = mapped.notna().to_numpy()
        pos[ok] = mapped.to_numpy()[ok].astype(np.int64)
    todo = np.flatnonzero(pos < 0)
    if len(todo):
        pts = np.asarray(hh.geometry.values, dtype=object)[todo]
        p_idx, a_idx = leaf.sindex.query(pts, predicate="intersects")
        order = np.lexsort((a_idx, p_idx))
        p_idx, a_idx = p_idx[order], a_idx[order]
        first = np.ones(len(p_idx), dtype=bool)
        first[1:] = p_idx[1:] != p_idx[:-1]
        pos[todo[p_idx[first]]] = a_idx[first]
    return pos


def _atoms(
    hh: gpd.GeoDataFrame,
    area_pos: np.ndarray,
    loads: np.ndarray,
    hi: float,
    codes: list[str],
) -> tuple[list[_Atom], list[dict[str, Any]]]:
    """Group households into indivisible atoms; split buildings larger than ``hi``."""
    xy = shapely.get_coordinates(np.asarray(hh.geometry.values, dtype=object))
    n = len(hh)
    if "building_id" in hh.columns:
        bld = hh["building_id"].astype(object)
        has_b = bld.notna().to_numpy()
    else:
        bld = pd.Series([None] * n, index=hh.index, dtype=object)
        has_b = np.zeros(n, dtype=bool)
    inverse = np.empty(n, dtype=np.int64)
    nb = 0
    if has_b.any():
        keys_b = (
            bld[has_b].astype(str)
            + "@"
            + pd.Series(area_pos[has_b], index=bld[has_b].index).astype(str)
        )
        codes_b, uniq_b = pd.factorize(keys_b, sort=True)
        inverse[has_b] = codes_b
        nb = len(uniq_b)
    if (~has_b).any():
        pts = pd.DataFrame(
            {
                "x": xy[~has_b, 0].round(7),
                "y": xy[~has_b, 1].round(7),
                "a": area_pos[~has_b],
            }
        )
        inverse[~has_b] = (
            nb + pts.groupby(["a", "x", "y"], sort=True).ngroup().to_numpy()
        )
    n_groups = int(inverse.max()) + 1 if n else 0
    counts = np.bincount(inverse, minlength=n_groups)
    sums = np.bincount(inverse, weights=loads, minlength=n_groups)
    mx = np.bincount(inverse, weights=xy[:, 0], minlength=n_groups) / np.maximum(
        counts, 1
    )
    my = np.bincount(inverse, weights=xy[:, 1], minlength=n_groups) / np.maximum(
        counts, 1
    )
    order = np.argsort(inverse, kind="stable")
    groups = np.split(order, np.cumsum(counts)[:-1]) if n else []
    units = hh["unit"].astype(str).to_numpy() if "unit" in hh.columns else None
    atoms: list[_Atom] = []
    exceptions: list[dict[str, Any]] = []
    stack_id = 0
    for gi, g in enumerate(groups):
        x, y, load = float(mx[gi]), float(my[gi]), float(sums[gi])
        if load <= hi:
            atoms.append(_Atom(x, y, load, int(counts[gi]), g))
            continue
        # a building larger than a grid: split by unit/floor into chunks
        if units is not None:
            g = g[np.argsort(units[g], kind="stable")]
        k = math.ceil(load / hi)
        for c in np.array_split(g, k):
            atoms.append(_Atom(x, y, float(loads[c].sum()), len(c), c, stack=stack_id))
        name = bld.iloc[int(g[0])] if has_b[g[0]] else f"at ({x:.6f}, {y:.6f})"
        exceptions.append(
            {
                "area_code": codes[int(area_pos[g[0]])],
                "grid_code": None,
                "kind": "building_split",
                "reason": (
                    f"building {name} has {len(g)} households (> {hi:g}); split by unit "
                    f"into {k} parts in different grids"
                ),
                "households": len(g),
            }
        )
        stack_id += 1
    return atoms, exceptions


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


def _merge_units(
    units: list[_Unit],
    lo: float,
    hi: float,
    exceptions: list[dict[str, Any]],
    *,
    max_merge: int = 3,
    kind: str = "merged_areas",
) -> list[_Unit]:
    """Merge units whose load cannot be cut in band with an adjacent unit of the same parent."""
    alive = list(units)
    tree_geoms = None
    changed = True
    while changed:
        changed = False
        bad = [u for u in alive if not _feasible(u.load, lo, hi)]
        if not bad:
            break
        tree_geoms = np.asarray([u.geom for u in alive], dtype=object)
        tree = shapely.STRtree(tree_geoms)
        index = {id(u): i for i, u in enumerate(alive)}
        for u in sorted(bad, key=lambda u: (u.load, u.codes[0])):
            if id(u) not in index:
                continue
            i = index[id(u)]
            cand = [
                int(j)
                for j in tree.query(u.geom, predicate="intersects")
                if int(j) != i
                and alive[int(j)].parent == u.parent
                and id(alive[int(j)]) in index
            ]
            cand = [
                j
                for j in cand
                if shapely.length(
                    shapely.intersection(u.geom.boundary, tree_geoms[j].boundary)
                )
                > 0
            ]
            if not cand:
                continue

            def rank(
                j: int, u: _Unit = u, alive: list[_Unit] = alive
            ) -> tuple[int, int, float, str]:
                other = alive[j]
                merged = u.load + other.load
                return (
                    0 if _feasible(merged, lo, hi) else 1,
                    0 if not _feasible(other.load, lo, hi) else 1,
                    merged,
                    other.codes[0],
                )

            best = min(cand, key=rank)
            other = alive[best]
            if not _feasible(u.load + other.load, lo, hi) and (
                len(u.codes) + len(other.codes) > max_merge
            ):
                continue  # would grow a merged unit past the cap
            merged = _Unit(
                barrier=u.barrier or other.barrier,
                codes=sorted(
                    set(u.codes + other.codes),
                    key=lambda c: (
                        c not in (u.codes if u.load >= other.load else other.codes),
                        c,
                    ),
                ),
                parent=u.parent,
                geom=_union([u.geom, other.geom]),
                load=u.load + other.load,
                count=u.count + other.count,
                atoms=u.atoms + other.atoms,
            )
            exceptions.append(
                {
                    "area_code": merged.codes[0],
                    "grid_code": None,
                    "kind": kind,
                    "reason": (
                        f"{'+'.join(u.codes)} ({u.count} households) cannot form grids of "
                        f"{lo:g}–{hi:g} alone; merged with adjacent {'+'.join(other.codes)} "
                        f"({other.count}) in the same parent {u.parent}"
                        if kind == "merged_areas"
                        else f"the part of {u.codes[0]} cut off by "
                        f"{u.barrier or 'a barrier'} ({u.count} households) cannot form "
                        f"grids of {lo:g}–{hi:g} alone; joined across it with the adjacent "
                        f"part ({other.count} households)"
                    ),
                    "households": merged.count,
                }
            )
            del index[id(u)], index[id(other)]
            alive = [w for w in alive if w is not u and w is not other] + [merged]
            changed = True
            break
    return alive


def _halfplane(
    geom: BaseGeometry, cx: float, cy: float, dx: float, dy: float, kx: float
) -> BaseGeometry:
    """Polygon of points p with ((p.x - cx)·kx, p.y - cy) · (dx, dy) <= 0, covering ``geom``."""
    minx, miny, maxx, maxy = geom.bounds
    r = 4 * max(maxx - minx, maxy - miny, 1e-9) + abs(cx - minx) + abs(cy - miny)
    # direction along the cut, and the normal, back in degree space
    ux, uy = -dy / kx, dx
    nx, ny = dx / kx, dy
    norm_u = math.hypot(ux, uy)
    norm_n = math.hypot(nx, ny)
    ux, uy, nx, ny = ux / norm_u * r, uy / norm_u * r, nx / norm_n * r, ny / norm_n * r
    return shapely.Polygon(
        [
            (cx + ux, cy + uy),
            (cx + ux - nx, cy + uy - ny),
            (cx - ux - nx, cy - uy - ny),
            (cx - ux, cy - uy),
        ]
    )


def _pp(g: BaseGeometry, kx: float = 1.0) -> float:
    """Polsby-Popper of ``g`` (already in locally isotropic coordinates)."""
    a, p = g.area, g.length
    return 0.0 if p == 0 else 4 * math.pi * a / (p * p)


def _parts_with_atoms(g: BaseGeometry, xs: np.ndarray, ys: np.ndarray) -> int:
    parts = shapely.get_parts(g)
    if len(parts) <= 1:
        return len(parts)
    pts = shapely.points(xs, ys)
    return sum(bool(shapely.intersects(p, pts).any()) for p in parts)


def _partition(
    u: _Unit, atoms: list[_Atom], lo: float, hi: float, tgt: float, kx: float
) -> list[tuple[BaseGeometry, list[int]]]:
    """Cut the unit's polygon into grids by recursive weighted straight cuts."""
    k = _grid_count(u.load, lo, hi, tgt)
    idx = np.asarray(u.atoms, dtype=np.int64)
    if k <= 1:
        return [(u.geom, idx.tolist())]
    xs = np.array([atoms[i].x for i in idx]) * kx
    ys = np.array([atoms[i].y for i in idx])
    ws = np.array([atoms[i].load for i in idx])
    stacks = np.array([atoms[i].stack for i in idx])
    out: list[tuple[BaseGeometry, list[int]]] = []
    # cut in locally isotropic coordinates (x scaled by cos(lat)), then scale back
    scaled = shapely.transform(u.geom, lambda c: c * np.array([kx, 1.0]))
    _split(scaled, np.arange(len(idx)), k, xs, ys, ws, stacks, lo, hi, 1.0, out)
    unscale = np.array([1.0 / kx, 1.0])
    pieces = [
        (
            _poly_only(shapely.transform(g, lambda c: c * unscale)),
            [int(idx[j]) for j in m],
        )
        for g, m in out
    ]
    if len(pieces) > 1:
        pieces = _move_into_band(pieces, atoms, lo, hi)
        if _out_of_band(pieces, atoms, lo, hi):
            better = _sequence_partition(u, atoms, lo, hi, tgt, kx, pieces)
            if better is not None:
                pieces = better
    return pieces


def _move_into_band(
    pieces: list[tuple[BaseGeometry, list[int]]],
    atoms: list[_Atom],
    lo: float,
    hi: float,
) -> list[tuple[BaseGeometry, list[int]]]:
    """Building moves across shared edges, then along chains of neighbours."""
    pieces = _repair(pieces, atoms, lo, hi)
    if _out_of_band(pieces, atoms, lo, hi):
        pieces = _chain_repair(pieces, atoms, lo, hi)
    return pieces


def _fragmented(
    pieces: list[tuple[BaseGeometry, list[int]]], atoms: list[_Atom]
) -> int:
    """How many pieces hold their buildings in more than one part."""
    return sum(_atom_parts(p, m, atoms) > 1 for p, m in pieces)


def _out_of_band(
    pieces: list[tuple[BaseGeometry, list[int]]],
    atoms: list[_Atom],
    lo: float,
    hi: float,
) -> int:
    return sum(
        not lo - 1e-9 <= sum(atoms[a].load for a in m) <= hi + 1e-9 for _, m in pieces
    )


def _band_segments(w: np.ndarray, lo: float, hi: float, tgt: float) -> list[int] | None:
    """Cut a sequence of loads into consecutive runs that are all in band, with the
    least squared distance from the target; the run ends, or None if impossible."""
    n = len(w)
    pre = np.concatenate([[0.0], np.cumsum(w)])
    inf = math.inf
    cost = [inf] * (n + 1)
    back = [-1] * (n + 1)
    cost[0] = 0.0
    for i in range(1, n + 1):
        # runs (j, i] with lo <= pre[i] - pre[j] <= hi: j in a window (pre rises)
        j_lo = int(np.searchsorted(pre, pre[i] - hi - 1e-9, side="left"))
        j_hi = int(np.searchsorted(pre, pre[i] - lo + 1e-9, side="right")) - 1
        best, arg = inf, -1
        for j in range(max(j_lo, 0), min(j_hi, i - 1) + 1):
            if cost[j] == inf:
                continue
            c = cost[j] + (pre[i] - pre[j] - tgt) ** 2
            if c < best:
                best, arg = c, j
        cost[i], back[i] = best, arg
    if cost[n] == inf:
        return None
    ends, i = [], n
    while i > 0:
        ends.append(i)
        i = back[i]
    return ends[::-1]


def _serpentine(
    xs: np.ndarray, ys: np.ndarray, ws: np.ndarray, theta: float, strips: int
) -> np.ndarray:
    """Atoms ordered strip by strip (equal loads across ``theta``), alternating
    direction along it, so that consecutive runs make compact blocks."""
    dx, dy = math.cos(theta), math.sin(theta)
    along = xs * dx + ys * dy
    across = -xs * dy + ys * dx
    order = np.argsort(across, kind="stable")
    cum = np.cumsum(ws[order])
    strip = np.empty(len(xs), dtype=np.int64)
    strip[order] = np.minimum(
        (cum - ws[order] / 2) * strips // max(cum[-1], 1e-9), strips - 1
    ).astype(np.int64)
    key = np.where(strip % 2 == 0, along, -along)
    return np.lexsort((key, strip))


def _defragment(
    pieces: list[tuple[BaseGeometry, list[int]]], atoms: list[_Atom]
) -> list[tuple[BaseGeometry, list[int]]]:
    """Give each detached part of a grid (with its buildings) to the neighbour
    sharing most of its edge, so that every grid is one piece (loads change)."""
    geoms = [g for g, _ in pieces]
    mem = [list(m) for _, m in pieces]
    for i in range(len(geoms)):
        parts = list(shapely.get_parts(geoms[i]))
        if len(parts) <= 1:
            continue
        pts = shapely.points([(atoms[a].x, atoms[a].y) for a in mem[i]])
        where = [int(np.argmin([shapely.distance(p, pt) for p in parts])) for pt in pts]
        loads = [0.0] * len(parts)
        for a, w in zip(mem[i], where, strict=True):
            loads[w] += atoms[a].load
        main = int(np.argmax(loads))
        orig = list(mem[i])
        for w, part in enumerate(parts):
            if w == main:
                continue
            shared = [
                (
                    float(
                        shapely.length(
                            shapely.intersection(part.boundary, geoms[j].boundary)
                        )
                    )
                    if j != i
                    else 0.0,
                    -j,
                )
                for j in range(len(geoms))
            ]
            best, neg_j = max(shared)
            if best <= 0:
                continue  # an exclave: nothing to join it to
            j = -neg_j
            moving = [a for a, pw in zip(orig, where, strict=True) if pw == w]
            geoms[j] = _union([geoms[j], part])
            mem[j] = mem[j] + moving
            mem[i] = [a for a in mem[i] if a not in set(moving)]
        geoms[i] = parts[main]
    return [(g, m) for g, m in zip(geoms, mem, strict=True)]


def _hilbert_order(xs: np.ndarray, ys: np.ndarray, turn: int) -> np.ndarray:
    """Points in Hilbert-curve order on a 1024 x 1024 grid over their extent, the
    curve turned by ``turn`` quarter turns (runs along it stay close together)."""
    n = 1024
    x = xs - xs.min()
    y = ys - ys.min()
    span = max(float(x.max()), float(y.max()), 1e-12)
    xi = np.minimum((x / span * (n - 1)).astype(np.int64), n - 1)
    yi = np.minimum((y / span * (n - 1)).astype(np.int64), n - 1)
    for _ in range(turn % 4):
        xi, yi = yi, n - 1 - xi
    d = np.zeros(len(xs), dtype=np.int64)
    s = n // 2
    while s > 0:
        rx = ((xi & s) > 0).astype(np.int64)
        ry = ((yi & s) > 0).astype(np.int64)
        d += s * s * ((3 * rx) ^ ry)
        flip = ry == 0
        swap_x = np.where(flip & (rx == 1), s - 1 - xi, xi)
        swap_y = np.where(flip & (rx == 1), s - 1 - yi, yi)
        xi = np.where(flip, swap_y, xi)
        yi = np.where(flip, swap_x, yi)
        s //= 2
    return np.argsort(d, kind="stable")


def _sequence_partition(
    u: _Unit,
    atoms: list[_Atom],
    lo: float,
    hi: float,
    tgt: float,
    kx: float,
    current: list[tuple[BaseGeometry, list[int]]],
) -> list[tuple[BaseGeometry, list[int]]] | None:
    """Fallback when straight cuts and building moves leave grids out of band.

    Orders the unit's buildings in serpentine strips (8 directions, a few strip
    counts), cuts each order into runs that are all in band by dynamic
    programming (whole buildings; a split building's parts may go apart), and
    draws each grid as the union of its buildings' Voronoi cells in the unit, so
    the grids still tile it exactly. The most compact contiguous answer wins;
    None when no order can be cut in band or the answer is no better.
    """
    idx = np.asarray(u.atoms, dtype=np.int64)
    if len(idx) < 2 or len(idx) > 5000:
        return None
    xs = np.array([atoms[i].x for i in idx]) * kx
    ys = np.array([atoms[i].y for i in idx])
    ws = np.array([atoms[i].load for i in idx], dtype=float)
    k = _grid_count(float(ws.sum()), lo, hi, tgt)
    strip_counts = range(1, min(k, 6) + 1)
    runs: dict[tuple[tuple[int, ...], ...], None] = {}
    orders = [
        *(_serpentine(xs, ys, ws, t, c) for t in _ANGLES for c in strip_counts),
        *(_hilbert_order(xs, ys, turn) for turn in range(4)),
    ]
    for order in orders:
        ends = _band_segments(ws[order], lo, hi, tgt)
        if ends is None:
            continue
        starts = [0, *ends[:-1]]
        groups = tuple(
            tuple(sorted(order[a:b].tolist()))
            for a, b in zip(starts, ends, strict=True)
        )
        runs[tuple(sorted(groups))] = None
    if not runs:
        return None
    # one Voronoi cell per building point (split buildings share a point)
    keys = sorted({(atoms[i].x, atoms[i].y) for i in idx})
    key_pos = {key: j for j, key in enumerate(keys)}
    cells = _cells(u.geom, keys)
    tried: list[tuple[tuple[float, float], list[tuple[BaseGeometry, list[int]]]]] = []
    unions: dict[tuple[int, ...], BaseGeometry] = {}
    for groups in list(runs)[:80]:
        # the load each group holds at each building point
        share: dict[int, dict[int, float]] = {}
        for g, members in enumerate(groups):
            for j in members:
                a = atoms[int(idx[j])]
                d = share.setdefault(key_pos[(a.x, a.y)], {})
                d[g] = d.get(g, 0.0) + a.load
        whole: dict[int, list[int]] = {g: [] for g in range(len(groups))}
        parts: dict[int, list[BaseGeometry]] = {g: [] for g in range(len(groups))}
        usable = True
        for kp, d in share.items():
            if len(d) == 1:
                whole[next(iter(d))].append(kp)
                continue
            if len(d) > 2:
                usable = False  # a building split three ways: leave to straight cuts
                break
            # a building split between two grids: its cell is cut through the
            # building's point, across the line between the two grids' centres,
            # so the point lies on the edge the two grids share
            g1, g2 = sorted(d, key=lambda g: (-d[g], g))
            c1 = np.array([xs[list(groups[g1])].mean(), ys[list(groups[g1])].mean()])
            c2 = np.array([xs[list(groups[g2])].mean(), ys[list(groups[g2])].mean()])
            v = c2 - c1
            if float(np.hypot(*v)) < 1e-12:
                usable = False
                break
            v = v / np.hypot(*v)
            x0, y0 = keys[kp]
            near = _overlay(
                shapely.intersection,
                cells[kp],
                _halfplane(cells[kp], x0, y0, float(v[0]), float(v[1]), kx),
            )
            far = (
                None if near is None else _overlay(shapely.difference, cells[kp], near)
            )
            if near is None or far is None:
                usable = False
                break
            parts[g1].append(_poly_only(near))
            parts[g2].append(_poly_only(far))
        if not usable:
            continue
        pieces = []
        for g, members in enumerate(groups):
            # the same group of whole cells recurs across orders: union it once
            cell_key = tuple(sorted(whole[g]))
            if cell_key not in unions:
                unions[cell_key] = (
                    _cover_union([cells[kp] for kp in cell_key])
                    if cell_key
                    else shapely.Polygon()
                )
            geom = unions[cell_key]
            if parts[g]:
                geom = _union([geom, *parts[g]]) if cell_key else _union(parts[g])
            pieces.append((geom, [int(idx[j]) for j in members]))
        pieces = [
            (g if g.is_valid else _poly_only(shapely.make_valid(g)), m)
            for g, m in pieces
        ]
        if any(p.is_empty for p, _ in pieces):
            continue
        tried.append(_ranked(pieces, atoms, kx))
    tried.sort(key=lambda t: t[0])
    if tried and tried[0][0][0] > 0:
        # every order left a grid in parts: join the detached parts to their
        # neighbours and move buildings back into band, for the best few orders
        fixed = []
        for _, pieces in tried[:4]:
            pieces = _move_into_band(_defragment(pieces, atoms), atoms, lo, hi)
            if not _out_of_band(pieces, atoms, lo, hi):
                fixed.append(_ranked(pieces, atoms, kx))
        tried = sorted(fixed + tried, key=lambda t: t[0])
    if not tried:
        return None
    if tried[0][0][0] > _fragmented(current, atoms):
        return None  # in band but broken into parts: keep the reported exceptions
    return tried[0][1]


def _cover_union(geoms: list[BaseGeometry]) -> BaseGeometry:
    """Union of Voronoi cells (edge-matched, no overlaps) by coverage union, which is
    several times faster than a general union; the general one when GEOS objects."""
    try:
        out = shapely.coverage_union_all(np.asarray(geoms, dtype=object))
    except shapely.errors.GEOSException:
        return _union(geoms)
    return _clean(out) if out.is_valid else _union(geoms)


def _ranked(
    pieces: list[tuple[BaseGeometry, list[int]]], atoms: list[_Atom], kx: float
) -> tuple[tuple[float, float], list[tuple[BaseGeometry, list[int]]]]:
    """(fewest broken pieces, then the highest least Polsby-Popper, in locally
    isotropic coordinates) as a sort key, with the pieces."""
    scale = np.array([kx, 1.0])
    pp = min(_pp(shapely.transform(p, lambda c: c * scale)) for p, _ in pieces)
    return (float(_fragmented(pieces, atoms)), -round(pp, 3)), pieces


def _chain_repair(
    pieces: list[tuple[BaseGeometry, list[int]]],
    atoms: list[_Atom],
    lo: float,
    hi: float,
) -> list[tuple[BaseGeometry, list[int]]]:
    """Pass buildings along chains of neighbouring pieces (the rebalancer's step)."""
    from geo.rebalance import _chain_flow, _Grid

    cells = [
        _Grid(code=str(i), area_code="u", geom=g, atoms=list(m), locked=False)
        for i, (g, m) in enumerate(pieces)
    ]
    _chain_flow(cells, atoms, lo, hi, max_steps=400)
    return [(c.geom, c.atoms) for c in cells]


def _point_groups(
    members: list[int], atoms: list[_Atom]
) -> dict[tuple[float, float], list[int]]:
    groups: dict[tuple[float, float], list[int]] = {}
    for a in members:
        groups.setdefault((atoms[a].x, atoms[a].y), []).append(a)
    return groups


def _cells(
    geom: BaseGeometry,
    keys: list[tuple[float, float]],
    near: BaseGeometry | None = None,
) -> list[BaseGeometry]:
    """Voronoi cells of ``keys`` clipped to ``geom`` (a single key gets all of it).

    With ``near``, only cells that can touch it are clipped; the others come back
    empty (a cheap filter for moves across one shared edge).
    """
    if len(keys) == 1:
        return [geom]
    pts = shapely.points(np.array(keys))
    vor = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=geom)
    )
    tree = shapely.STRtree(vor)
    p_idx, v_idx = tree.query(pts, predicate="intersects")
    cell_of = dict(zip(p_idx.tolist(), v_idx.tolist(), strict=False))
    raw = vor[[cell_of[i] for i in range(len(keys))]]
    want = np.ones(len(keys), dtype=bool)
    if near is not None:
        shapely.prepare(near)
        want = shapely.intersects(near, raw)
    out = np.full(len(keys), shapely.Polygon(), dtype=object)
    if want.any():
        clipped = shapely.intersection(raw[want], geom)
        out[want] = [_poly_only(c) for c in clipped]
    return list(out)


def _atom_parts(geom: BaseGeometry, members: list[int], atoms: list[_Atom]) -> int:
    if not members:
        return 0
    return _parts_with_atoms(
        geom,
        np.array([atoms[a].x for a in members]),
        np.array([atoms[a].y for a in members]),
    )


def _repair(
    pieces: list[tuple[BaseGeometry, list[int]]],
    atoms: list[_Atom],
    lo: float,
    hi: float,
    *,
    max_moves: int = 200,
    frozen: frozenset[int] = frozenset(),
) -> list[tuple[BaseGeometry, list[int]]]:
    """Move whole buildings (with their Voronoi cell) across shared edges to fix the band.

    Pieces whose index is in ``frozen`` (locked grids) neither give nor take.

    Only grids out of band, and the neighbours that trade with them, change.
    A move never splits the giving grid and keeps the tiling exact (the cell is
    cut from one grid and added to the other).
    """
    geoms = [g for g, _ in pieces]
    mem = [list(m) for _, m in pieces]

    def load(i: int) -> float:
        return float(sum(atoms[a].load for a in mem[i]))

    def dist(v: float) -> float:
        return max(lo - v, 0.0, v - hi)

    # the buildings of ``src`` whose Voronoi cell touches ``dst``: cached until
    # either grid changes (a move changes two grids; the other pairs stay valid)
    version = [0] * len(geoms)
    edge_cache: dict[tuple[int, int, int, int], list[Any]] = {}

    def _edge_cells(src: int, dst: int) -> list[Any]:
        ck = (src, version[src], dst, version[dst])
        hit = edge_cache.get(ck)
        if hit is not None:
            return hit
        groups = _point_groups(mem[src], atoms)
        keys = list(groups)
        found: list[Any] = []
        # only cells reaching the edge the two grids share can move across it
        edge = shapely.intersection(geoms[src].boundary, geoms[dst].boundary)
        if len(keys) > 1 and shapely.length(edge) > 0:
            cells = _cells(geoms[src], keys, near=edge)
            for key, cell in zip(keys, cells, strict=True):
                if cell.is_empty:
                    continue
                shared = float(
                    shapely.length(
                        shapely.intersection(cell.boundary, geoms[dst].boundary)
                    )
                )
                if shared > 0:
                    w = sum(atoms[a].load for a in groups[key])
                    found.append((groups[key], cell, shared, w))
        edge_cache[ck] = found
        return found

    banned: set[tuple[int, int]] = set()
    for _ in range(max_moves):
        loads = [load(i) for i in range(len(mem))]
        bad = [i for i in range(len(mem)) if dist(loads[i]) > 1e-9 and i not in frozen]
        if not bad:
            break
        best: tuple[float, int, int, BaseGeometry, list[int]] | None = None
        tree = shapely.STRtree(np.asarray(geoms, dtype=object))
        for i in bad:
            for j in tree.query(geoms[i], predicate="intersects"):
                j = int(j)
                if j == i or j in frozen:
                    continue
                # over: i gives to j; under: i takes from j
                src, dst = (i, j) if loads[i] > hi else (j, i)
                for group, cell, shared, w in _edge_cells(src, dst):
                    if (src, group[0]) in banned:
                        continue
                    before = dist(loads[src]) + dist(loads[dst])
                    after = dist(loads[src] - w) + dist(loads[dst] + w)
                    gain = before - after
                    if gain <= 1e-9:
                        continue
                    score = gain + 1e-6 * shared
                    if best is None or score > best[0]:
                        best = (score, src, dst, cell, group)
        if best is None:
            break
        _, src, dst, cell, moved = best
        diff = _overlay(shapely.difference, geoms[src], cell)
        if diff is None:
            banned.add((src, moved[0]))
            continue
        new_src = _clean(_poly_only(diff))
        rest = [a for a in mem[src] if a not in set(moved)]
        if _atom_parts(new_src, rest, atoms) > max(
            1, _atom_parts(geoms[src], mem[src], atoms)
        ):
            banned.add((src, moved[0]))  # would split the giver: try another building
            continue
        geoms[src] = new_src
        geoms[dst] = _union([geoms[dst], cell])
        mem[src] = rest
        mem[dst] = mem[dst] + moved
        version[src] += 1
        version[dst] += 1
    return list(zip(geoms, mem, strict=True))


def _split(
    geom: BaseGeometry,
    members: np.ndarray,
    k: int,
    xs: np.ndarray,
    ys: np.ndarray,
    ws: np.ndarray,
    stacks: np.ndarray,
    lo: float,
    hi: float,
    kx: float,
    out: list[tuple[BaseGeometry, list[int]]],
) -> None:
    if k <= 1 or len(members) <= 1:
        out.append((geom, members.tolist()))
        return
    w = ws[members]
    total = float(w.sum())
    cx0 = float(np.mean(xs[members]))
    cy0 = float(np.mean(ys[members]))
    px = (xs[members] - cx0) * kx
    py = ys[members] - cy0
    st = stacks[members]
    best: tuple[Any, ...] | None = None
    # the even split first; uneven splits only if no straight cut keeps the band
    k1_options = [k // 2] + [j for j in range(1, k) if j != k // 2]
    for k1 in k1_options:
        k2 = k - k1
        ideal = total * k1 / k
        for theta in _ANGLES:
            dx, dy = math.cos(theta), math.sin(theta)
            proj = px * dx + py * dy
            order = np.argsort(proj, kind="stable")
            sp = proj[order]
            left_w = np.cumsum(w[order])[:-1]
            right_w = total - left_w
            so = st[order]
            cuttable = (sp[1:] - sp[:-1] > 1e-12) | (
                (so[1:] == so[:-1]) & (so[1:] >= 0)
            )
            in_band = (
                (left_w >= k1 * lo - 1e-9)
                & (left_w <= k1 * hi + 1e-9)
                & (right_w >= k2 * lo - 1e-9)
                & (right_w <= k2 * hi + 1e-9)
            )
            ok = np.flatnonzero(cuttable & in_band)
            band_ok = len(ok) > 0
            cand = ok if band_ok else np.flatnonzero(cuttable)
            if len(cand) == 0:
                continue
            near = int(cand[np.argmin(np.abs(left_w[cand] - ideal))])
            picks = {near}
            if band_ok and len(cand) > 2:
                picks |= {int(cand[len(cand) // 4]), int(cand[(3 * len(cand)) // 4])}
            for i in sorted(picks):
                c = (sp[i] + sp[i + 1]) / 2
                hp = _halfplane(geom, cx0 + c * dx / kx, cy0 + c * dy, dx, dy, kx)
                cut = _overlay(shapely.intersection, geom, hp)
                if cut is None or (left := _poly_only(cut)).is_empty:
                    continue
                rest = _overlay(shapely.difference, geom, left)
                if rest is None or (right := _poly_only(rest)).is_empty:
                    continue
                lm = members[order[: i + 1]]
                rm = members[order[i + 1 :]]
                frag = int(_parts_with_atoms(left, xs[lm], ys[lm]) > 1) + int(
                    _parts_with_atoms(right, xs[rm], ys[rm]) > 1
                )
                pp = min(_pp(left, kx), _pp(right, kx))
                score = (
                    0 if band_ok else 1,
                    frag,
                    -round(pp, 3),
                    abs(float(left_w[i]) - ideal),
                )
                if best is None or score < best[0]:
                    best = (score, left, right, lm, rm, k1)
        if best is not None and best[0][0] == 0:
            break
    if best is None:
        out.append((geom, members.tolist()))
        return
    _, left, right, lm, rm, k1 = best
    _split(left, lm, k1, xs, ys, ws, stacks, lo, hi, kx, out)
    _split(right, rm, k - k1, xs, ys, ws, stacks, lo, hi, kx, out)


def _unit_grids(
    u: _Unit,
    pieces: list[tuple[BaseGeometry, list[int]]],
    atoms: list[_Atom],
    area_pos: np.ndarray,
    leaf: gpd.GeoDataFrame,
    lo: float,
    hi: float,
    exceptions: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    codes = leaf["code"].to_numpy()
    rows = []
    for geom, members in pieces:
        hh_rows = (
            np.concatenate([atoms[i].members for i in members])
            if members
            else np.array([], dtype=np.int64)
        )
        load = float(sum(atoms[i].load for i in members))
        by_area = (
            pd.Series(codes[area_pos[hh_rows]]).value_counts()
            if len(hh_rows)
            else pd.Series(dtype=int)
        )
        home = by_area.index[0] if len(by_area) else u.codes[0]
        touched = sorted(set(by_area.index) | ({home}))
        reason = None
        if not lo - 1e-9 <= load <= hi + 1e-9:
            if _feasible(u.load, lo, hi):
                biggest = max((atoms[i].load for i in members), default=0)
                reason = (
                    f"{load:g} households: no straight cut of {'+'.join(u.codes)} keeps "
                    f"whole buildings (largest {biggest:g}) within {lo:g}–{hi:g}"
                )
            elif len(u.codes) > 1:
                reason = (
                    f"{load:g} households: merged {'+'.join(u.codes)} still cannot be "
                    f"cut into {lo:g}–{hi:g}"
                )
            elif u.load < lo:
                reason = (
                    f"{'+'.join(u.codes)} has only {u.load:g} households and no adjacent "
                    f"area in {u.parent} to merge with that keeps the band"
                )
            else:
                reason = (
                    f"{'+'.join(u.codes)} has {u.load:g} households: one grid exceeds "
                    f"{hi:g}, two would fall below {lo:g}, and no adjacent area in "
                    f"{u.parent} could take the surplus"
                )
        rows.append(
            {
                "area_code": home,
                "areas": ";".join(touched),
                "load": load,
                "households": len(hh_rows),
                "exception": reason,
                "geometry": geom,
                "_members": hh_rows,
                "_unit": "+".join(u.codes),
            }
        )
    return rows


def _finish(
    rows: list[dict[str, Any]],
    hh: gpd.GeoDataFrame,
    leaf: gpd.GeoDataFrame,
    kx: float,
    digits: int,
    exceptions: list[dict[str, Any]],
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Absorb empty fragments, order grids NW→SE, give codes, build outputs."""
    _absorb_empty_fragments(rows, hh)
    df = pd.DataFrame(rows)
    geoms0 = np.asarray(df["geometry"].values, dtype=object)
    empty = shapely.is_empty(geoms0)
    # a piece cut exactly through a split building can be left without territory:
    # it lives at the building point (reported), and sorts by that point
    safe = np.where(empty, shapely.points(0.0, 0.0), geoms0)
    cent = shapely.centroid(safe)
    cx, cy = shapely.get_x(cent), shapely.get_y(cent)
    xy = shapely.get_coordinates(np.asarray(hh.geometry.values, dtype=object))
    for i in np.flatnonzero(empty):
        m = df["_members"].iloc[i]
        if len(m):
            cx[i], cy[i] = xy[m, 0].mean(), xy[m, 1].mean()
            exceptions.append(
                {
                    "area_code": df["area_code"].iloc[i],
                    "grid_code": None,
                    "kind": "no_territory",
                    "reason": (
                        f"{len(m)} households of a building split by unit share its "
                        "point with a neighbouring grid; this part has no territory"
                    ),
                    "households": len(m),
                }
            )
    df["_key"] = cx * kx - cy
    df = df.sort_values(["area_code", "_key"], kind="stable").reset_index(drop=True)
    df["grid_code"] = df["area_code"] + (df.groupby("area_code").cumcount() + 1).map(
        lambda n: str(n).zfill(digits)
    )
    geoms = np.array(df["geometry"].tolist(), dtype=object)
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():  # a cut vertex landing on an edge; repair without moving area
        geoms[invalid] = [_poly_only(shapely.make_valid(g)) for g in geoms[invalid]]
    df["geometry"] = [
        shapely.MultiPolygon([g]) if g.geom_type == "Polygon" else g for g in geoms
    ]
    df["parts"] = [len(shapely.get_parts(g)) for g in df["geometry"]]
    # the areas a grid covers, by territory (not only by its households)
    leaf_geoms = np.asarray(leaf.geometry.values, dtype=object)
    leaf_codes = leaf["code"].astype(str).to_numpy()
    g_idx, l_idx = leaf.sindex.query(
        np.asarray(df["geometry"].values, dtype=object), predicate="intersects"
    )
    overlap = shapely.area(
        shapely.intersection(
            np.asarray(df["geometry"].values, dtype=object)[g_idx], leaf_geoms[l_idx]
        )
    )
    covered: dict[int, set[str]] = {}
    for gi, li, a in zip(g_idx, l_idx, overlap, strict=True):
        if a > _SLIVER * 100:
            covered.setdefault(int(gi), set()).add(str(leaf_codes[li]))
    df["areas"] = [
        ";".join(sorted(covered.get(i, set()) | set(str(a).split(";"))))
        for i, a in enumerate(df["areas"])
    ]
    for r in df.itertuples():
        if isinstance(r.exception, str):
            kind = "out_of_band"
            exceptions.append(
                {
                    "area_code": r.area_code,
                    "grid_code": r.grid_code,
                    "kind": kind,
                    "reason": r.exception,
                    "households": int(r.households),
                }
            )
        if ";" in r.areas:
            exceptions.append(
                {
                    "area_code": r.area_code,
                    "grid_code": r.grid_code,
                    "kind": "crosses_area_line",
                    "reason": f"grid covers households of {r.areas.replace(';', ', ')} (merged areas)",
                    "households": int(r.households),
                }
            )
        if r.parts > 1:
            exceptions.append(
                {
                    "area_code": r.area_code,
                    "grid_code": r.grid_code,
                    "kind": "not_contiguous",
                    "reason": _split_reason(r.parts, r.areas, leaf),
                    "households": int(r.households),
                }
            )
    ids = hh["household_id"].to_numpy()
    assignments = pd.DataFrame(
        {
            "household_id": np.concatenate([ids[m] for m in df["_members"]])
            if len(df)
            else [],
            "grid_code": np.repeat(
                df["grid_code"].to_numpy(), [len(m) for m in df["_members"]]
            ),
        }
    )
    grids = gpd.GeoDataFrame(
        df[
            [
                "grid_code",
                "area_code",
                "households",
                "load",
                "areas",
                "exception",
                "parts",
            ]
        ],
        geometry=list(df["geometry"]),
        crs=STORAGE_CRS,
    )
    return grids, assignments


def _split_reason(parts: int, areas: str, leaf: gpd.GeoDataFrame) -> str:
    codes = areas.split(";")
    geoms = leaf.loc[leaf["code"].astype(str).isin(codes), leaf.geometry.name]
    pieces = sum(len(shapely.get_parts(g)) for g in geoms)
    names = ", ".join(codes)
    if pieces > len(codes):
        return (
            f"grid has {parts} separate parts: {names} itself lies in {pieces} pieces "
            "(exclaves), which no grid can join"
        )
    return f"grid has {parts} separate parts inside {names}"


def _absorb_empty_fragments(rows: list[dict[str, Any]], hh: gpd.GeoDataFrame) -> None:
    """Give household-less parts of a multi-part grid to the neighbour sharing most border."""
    pts = np.asarray(hh.geometry.values, dtype=object)
    for _ in range(3):
        geoms = np.asarray([r["geometry"] for r in rows], dtype=object)
        tree = shapely.STRtree(geoms)
        moved = False
        for i, r in enumerate(rows):
            parts = shapely.get_parts(r["geometry"])
            if len(parts) <= 1:
                continue
            mine = (
                pts[r["_members"]] if len(r["_members"]) else np.array([], dtype=object)
            )
            keep: list[Any] = []
            give: list[Any] = []
            for p in parts:
                has = len(mine) and bool(shapely.intersects(p, mine).any())
                (keep if has else give).append(p)
            if not keep:
                keep, give = (
                    [max(parts, key=lambda p: p.area)],
                    [p for p in parts if p is not max(parts, key=lambda q: q.area)],
                )
            for p in give:
                best_j, best_len = -1, 0.0
                for j in tree.query(p, predicate="intersects"):
                    j = int(j)
                    if j == i or rows[j]["_unit"] != r["_unit"]:
                        continue
                    shared = shapely.length(
                        shapely.intersection(p.boundary, geoms[j].boundary)
                    )
                    if shared > best_len:
                        best_j, best_len = j, shared
                if best_j < 0:
                    keep.append(p)
                    continue
                rows[best_j]["geometry"] = _union([rows[best_j]["geometry"], p])
                geoms[best_j] = rows[best_j]["geometry"]
                moved = True
            r["geometry"] = (
                _clean(shapely.union_all(keep)) if len(keep) > 1 else keep[0]
            )
            geoms[i] = r["geometry"]
        if not moved:
            break


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
    parts = np.array([len(shapely.get_parts(g)) for g in grids.geometry.values])
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
