"""Atoms (buildings or points that stay together), units (areas cut together) and the cells they own."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field, replace
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from geo.gridding._geometry import _parts_with_atoms, _poly_only
from geo.plan import Band


@dataclass(slots=True)
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


_LOAD = operator.attrgetter("load")


def _load_sum(atoms: list[_Atom], members: Any) -> float:
    """``sum(atoms[a].load for a in members)``, the same additions in the same
    order, without a generator frame per call."""
    return sum(map(_LOAD, map(atoms.__getitem__, members)))


def _locate(hh: gpd.GeoDataFrame, leaf: gpd.GeoDataFrame) -> np.ndarray:
    """Leaf-area position of each household: its area_code, else containment."""
    pos = np.full(len(hh), -1, dtype=np.int64)
    if "area_code" in hh.columns:
        leaf_codes = pd.Index(leaf["code"].astype(str).to_numpy())
        codes = hh["area_code"]
        if isinstance(codes.dtype, pd.StringDtype) and leaf_codes.is_unique:
            # strings already: look them up as they are (missing ones match nothing)
            pos[:] = leaf_codes.get_indexer(codes)
        else:
            by_code = pd.Series(np.arange(len(leaf)), index=leaf_codes)
            codes = codes.astype(object)
            mapped = by_code.reindex(
                codes.where(codes.notna(), "").astype(str).to_numpy()
            )
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
    band: Band,
    codes: list[str],
    *,
    rows: np.ndarray | None = None,
) -> tuple[list[_Atom], list[dict[str, Any]]]:
    """Group households into indivisible atoms; split buildings larger than ``band.max``.

    ``rows``: the atoms' members as ``rows[i]`` for household ``i`` of ``hh`` (the
    positions of ``hh`` in a larger table), instead of ``i``."""
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
        # points without a building: one group per (area, x, y) at 1e-7°, numbered
        # in sorted order of those keys (as a sorted groupby numbers them)
        gx = xy[~has_b, 0].round(7)
        gy = xy[~has_b, 1].round(7)
        ga = area_pos[~has_b]
        o = np.lexsort((gy, gx, ga))
        new_key = np.ones(len(o), dtype=bool)
        new_key[1:] = (
            (ga[o][1:] != ga[o][:-1])
            | (gx[o][1:] != gx[o][:-1])
            | (gy[o][1:] != gy[o][:-1])
        )
        ids = np.empty(len(o), dtype=np.int64)
        ids[o] = np.cumsum(new_key) - 1
        inverse[~has_b] = nb + ids
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
    # each group's households: views into ``order`` (np.split makes the same views,
    # but at a cost per piece that dominates with 100,000 buildings)
    ends = np.cumsum(counts).tolist()
    starts = [0, *ends[:-1]]
    members = order if rows is None else rows[order]
    groups = [members[a:b] for a, b in zip(starts, ends, strict=True)] if n else []
    units = hh["unit"].astype(str).to_numpy() if "unit" in hh.columns else None
    atoms: list[_Atom] = []
    exceptions: list[dict[str, Any]] = []
    stack_id = 0
    # Python floats and ints once for all groups (indexing numpy per group costs
    # more than building the atom)
    mx_l, my_l, sums_l, counts_l = (
        mx.tolist(),
        my.tolist(),
        sums.tolist(),
        counts.tolist(),
    )
    # the groups that fit a grid become one atom each, built by ``map`` a run of
    # them at a time (the same atoms, in the same order, as one by one)
    big = np.flatnonzero(sums > band.max).tolist()
    done = 0
    for gi in [*big, len(groups)]:
        atoms.extend(
            map(
                _Atom,
                mx_l[done:gi],
                my_l[done:gi],
                sums_l[done:gi],
                counts_l[done:gi],
                groups[done:gi],
            )
        )
        done = gi + 1
        if gi == len(groups):
            break
        g = order[starts[gi] : ends[gi]]
        x, y, load = mx_l[gi], my_l[gi], sums_l[gi]
        # a building larger than a grid: split by unit/floor into chunks
        if units is not None:
            g = g[np.argsort(units[g], kind="stable")]
        k = math.ceil(load / band.max)
        for c in np.array_split(g, k):
            m = c if rows is None else rows[c]
            atoms.append(_Atom(x, y, float(loads[c].sum()), len(c), m, stack=stack_id))
        name = bld.iloc[int(g[0])] if has_b[g[0]] else f"at ({x:.6f}, {y:.6f})"
        exceptions.append(
            {
                "area_code": codes[int(area_pos[g[0]])],
                "grid_code": None,
                "kind": "building_split",
                "reason": (
                    f"building {name} has {len(g)} households (> {band.max:g}); split by unit "
                    f"into {k} parts in different grids"
                ),
                "households": len(g),
            }
        )
        stack_id += 1
    if nb and len(big) < nb:
        # a building larger than a grid whose households lie in several grids (a
        # rebalance: one group per building and grid) is split already: each of
        # its groups is a part, so that a re-cut may keep them in different grids
        # (at one point they would make one node too heavy for any grid)
        bcode, _ = pd.factorize(bld[has_b].astype(str))
        of_group = np.empty(nb, dtype=np.int64)
        of_group[codes_b] = bcode
        total = np.bincount(bcode, weights=loads[has_b])
        split = (total[of_group] > band.max) & (sums[:nb] <= band.max)
        if split.any():
            parts = {id(groups[gi]) for gi in np.flatnonzero(split).tolist()}
            for i, at in enumerate(atoms):
                if at.stack < 0 and id(at.members) in parts:
                    atoms[i] = replace(at, stack=stack_id)
                    stack_id += 1
    return atoms, exceptions


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
    return _clip_cells(_raw_cells(geom, keys), geom, near)


def _raw_cells(geom: BaseGeometry, keys: list[tuple[float, float]]) -> np.ndarray:
    """Unclipped Voronoi cells of ``keys`` (two or more), extended to ``geom``."""
    pts = shapely.points(np.array(keys))
    vor = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=geom)
    )
    tree = shapely.STRtree(vor)
    p_idx, v_idx = tree.query(pts, predicate="intersects")
    cell_of = dict(zip(p_idx.tolist(), v_idx.tolist(), strict=False))
    return vor[[cell_of[i] for i in range(len(keys))]]


def _clip_cells(
    raw: np.ndarray, geom: BaseGeometry, near: BaseGeometry | None = None
) -> list[BaseGeometry]:
    """:func:`_cells` from cells :func:`_raw_cells` made (reusable across ``near``)."""
    want = np.ones(len(raw), dtype=bool)
    if near is not None:
        shapely.prepare(near)
        want = shapely.intersects(near, raw)
    out = np.full(len(raw), shapely.Polygon(), dtype=object)
    if want.any():
        clipped, _ = _clipped(raw[want], geom)
        out[want] = [_poly_only(c) for c in clipped]
    return list(out)


def _cells_inner(
    geom: BaseGeometry, keys: list[tuple[float, float]]
) -> tuple[list[BaseGeometry], np.ndarray]:
    """:func:`_cells`, and which cells lie well inside ``geom`` (Voronoi cells as
    drawn: neighbours among them share their edges vertex for vertex)."""
    if len(keys) == 1:
        return [geom], np.zeros(1, dtype=bool)
    clipped, inner = _clipped(_raw_cells(geom, keys), geom)
    return [_poly_only(c) for c in clipped], inner


def _clipped(cells: np.ndarray, geom: BaseGeometry) -> tuple[np.ndarray, np.ndarray]:
    """``shapely.intersection(cells, geom)`` for Voronoi cells, and which of them
    lie well inside ``geom``.

    A cell well inside ``geom`` comes out of the overlay as itself, its ring
    started one vertex on; such cells are built so directly (the overlay of the
    first of them checks that this GEOS still does so, else all are overlaid),
    and only the cells crossing ``geom``'s boundary are overlaid."""
    out = np.empty(len(cells), dtype=object)
    shapely.prepare(geom)
    inner = shapely.contains_properly(geom, cells) & (
        shapely.get_num_interior_rings(cells) == 0
    )
    inner &= shapely.get_type_id(cells) == 3  # polygons
    at = np.flatnonzero(inner)
    if len(at):
        turned = _started_on(cells[at])
        probe = shapely.intersection(cells[at[0]], geom)
        if shapely.to_wkb(probe) == shapely.to_wkb(turned[0]):
            out[at] = turned
        else:
            inner[:] = False
    rest = np.flatnonzero(~inner)
    if len(rest):
        out[rest] = shapely.intersection(cells[rest], geom)
    return out, inner


def _started_on(polys: np.ndarray) -> np.ndarray:
    """Polygons without holes with their ring started one vertex on (the first
    vertex dropped, the closing one now the second)."""
    xy, ring = shapely.get_coordinates(polys, return_index=True)
    n = np.bincount(ring, minlength=len(polys))  # closed: first == last
    start = np.concatenate([[0], np.cumsum(n)[:-1]])
    # per ring: vertices 1 .. n-1, then vertex 1 again
    pos = np.arange(len(xy)) - start[ring]  # 0 .. n-1 within the ring
    take = np.where(pos < n[ring] - 1, start[ring] + pos + 1, start[ring] + 1)
    rings = shapely.linearrings(xy[take], indices=ring)
    return np.asarray(shapely.polygons(rings), dtype=object)


def _atom_parts(geom: BaseGeometry, members: list[int], atoms: list[_Atom]) -> int:
    if not members:
        return 0
    n_parts = int(shapely.get_num_geometries(geom))
    if n_parts <= 1:  # one part (or none): no points needed to count them
        return n_parts
    return _parts_with_atoms(
        geom,
        np.array([atoms[a].x for a in members]),
        np.array([atoms[a].y for a in members]),
    )


def _stack_nodes(group: list[int], atoms: list[_Atom]) -> list[list[int]]:
    """The atoms at one building point, one list per part of a split building.

    Parts of a split building (``stack >= 0``) share a point; each becomes its own
    list, so that a partition can put them in different grids. Other atoms at the
    same point (unsplit ones) join the first list.
    """
    parts: dict[tuple[int, int], list[int]] = {}
    for a in group:
        s = atoms[a].stack
        parts.setdefault((s, a) if s >= 0 else (-1, -1), []).append(a)
    if len(parts) <= 1:
        return [list(group)]
    out = [parts[k] for k in sorted(parts)]
    if out[0] and atoms[out[0][0]].stack < 0:
        rest = out.pop(0)
        out[0] = rest + out[0]
    return out


def _slice_cell(
    cell: BaseGeometry, x0: float, y0: float, k: int, kx: float
) -> list[BaseGeometry]:
    """``cell`` cut into ``k`` wedges meeting at the building point ``(x0, y0)``.

    Split buildings cut through their point: each part of a building split by
    unit gets one slice of the building's cell, so the slices tile the cell
    exactly, each touches the point and the next slice. The wedges share out
    equally (in locally isotropic coordinates) the angles under which the cell
    is seen from the point: all around (from north, clockwise) when the point is
    inside the cell; when it lies on the cell's edge (an earlier cut went through
    the building), all but the widest angle between the cell's vertices, which
    lies outside the cell. Each slice after the first is cut from what the
    earlier ones left (the same overlay noding), the last takes the rest.
    """
    if k <= 1 or cell.is_empty:
        return [cell] + [shapely.Polygon()] * max(0, k - 1)
    minx, miny, maxx, maxy = cell.bounds
    r = 4 * max(maxx - minx, maxy - miny, 1e-9) + abs(x0 - minx) + abs(y0 - miny)
    xy = shapely.get_coordinates(cell)
    d = (xy - np.array([x0, y0])) * np.array([kx, 1.0])
    ang = np.sort(np.arctan2(d[:, 1], d[:, 0])[np.hypot(d[:, 0], d[:, 1]) > 1e-15])
    size = max(maxx - minx, maxy - miny)
    pt = shapely.Point(x0, y0)
    inside = bool(cell.contains(pt)) and cell.boundary.distance(pt) > 1e-6 * size
    if not inside and len(ang) >= 2:
        gaps = np.diff(np.concatenate([ang, [ang[0] + 2 * math.pi]]))
        g = int(np.argmax(gaps))
        start = float(ang[(g + 1) % len(ang)])
        span = 2 * math.pi - float(gaps[g])
    else:
        start, span = math.pi / 2, -2 * math.pi  # all around, from north clockwise
    out: list[BaseGeometry] = []
    rest = cell
    for j in range(k - 1):
        a0 = start + span * j / k
        a1 = start + span * (j + 1) / k
        steps = max(2, math.ceil(abs(a1 - a0) / (math.pi / 8)))
        arc = [
            (x0 + r * math.cos(t) / kx, y0 + r * math.sin(t))
            for t in np.linspace(a0, a1, steps + 1)
        ]
        wedge = shapely.Polygon([(x0, y0), *arc])
        try:
            part = _poly_only(shapely.intersection(rest, wedge))
            left = _poly_only(shapely.difference(rest, part))
        except shapely.errors.GEOSException:
            part, left = shapely.Polygon(), rest
        out.append(part)
        rest = left
    out.append(rest)
    return out
