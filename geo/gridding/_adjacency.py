"""The building graph of a window: one node per building point, adjacent when cells share an edge.

Each node's region is its point's Voronoi cell clipped to the window (a split
building's cell is sliced, one slice per part); separate pieces of the window
are joined by virtual edges, so the graph is connected. Used by the re-cut
(:mod:`geo.gridding._recut`) and the spanning-tree method (:mod:`geo.gridding._trees`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo.gridding._atoms import (
    _Atom,
    _cells_inner,
    _load_sum,
    _point_groups,
    _slice_cell,
    _stack_nodes,
)
from geo.plan import Band

#: windows with more building points than this are not re-cut (the graph search
#: would not converge within the cap)
_MAX_NODES = 20_000


@dataclass
class _Graph:
    keys: list[tuple[float, float]]
    groups: list[list[int]]  # atoms at each node
    w: np.ndarray  # load per node
    regions: list[list[BaseGeometry]]  # polygons of each node's region
    area: np.ndarray  # region area per node (locally isotropic units)
    perim: np.ndarray  # region perimeter per node
    eu: np.ndarray  # edge endpoints (u < v)
    ev: np.ndarray
    elen: np.ndarray  # shared boundary length; 0 for a virtual edge
    virtual: np.ndarray  # edges joining separate pieces (no shared boundary)
    _adj: list[list[int]] | None = field(default=None, repr=False, compare=False)

    def adjacency(self) -> list[list[int]]:
        """Each node's neighbours, in the order of the edges (drawn once)."""
        if self._adj is None:
            adj: list[list[int]] = [[] for _ in range(len(self.w))]
            for a, b in zip(self.eu.tolist(), self.ev.tolist(), strict=True):
                adj[a].append(b)
                adj[b].append(a)
            self._adj = adj
        return self._adj


def _graph(
    geom: BaseGeometry,
    members: list[int],
    atoms: list[_Atom],
    kx: float,
    *,
    rim: bool = False,
) -> _Graph | None:
    """The building graph of ``members`` in ``geom``.

    With ``rim``, empty nodes (no households) are added on the window's boundary,
    close enough together that their cells form a ring of territory around the
    buildings: a grid can then reach a building past others (along a narrow
    street block where the buildings stand in one row).
    """
    groups_d = _point_groups(members, atoms)
    points = sorted(groups_d)
    if not points or len(points) > _MAX_NODES:
        return None
    extra = _rim_points(geom, points, kx) if rim else []
    all_cells, inner_cell = _cells_inner(geom, points + extra)
    point_cells = all_cells[: len(points)]
    # one node per building point, but one per part of a split building: the
    # parts share a point, so they share its cell, cut into slices at the point
    keys: list[tuple[float, float]] = []
    groups: list[list[int]] = []
    cells: list[BaseGeometry] = []
    drawn: list[bool] = []  # the node's region is a Voronoi cell as drawn
    for i, (pt, cell) in enumerate(zip(points, point_cells, strict=True)):
        nodes = _stack_nodes(groups_d[pt], atoms)
        slices = (
            [cell]
            if len(nodes) == 1
            else _slice_cell(cell, pt[0], pt[1], len(nodes), kx)
        )
        for grp, piece in zip(nodes, slices, strict=True):
            keys.append(pt)
            groups.append(grp)
            cells.append(piece)
            drawn.append(len(nodes) == 1 and bool(inner_cell[i]))
    for j, (pt, cell) in enumerate(zip(extra, all_cells[len(points) :], strict=True)):
        keys.append(pt)
        groups.append([])
        cells.append(cell)
        drawn.append(bool(inner_cell[len(points) + j]))
    w = np.array([_load_sum(atoms, g) for g in groups], dtype=float)
    n = len(keys)
    pts = shapely.points(np.array(keys))
    # every node keeps the part of its cell holding its point; a cell's detached
    # parts (the window is not convex) go to the neighbour sharing most edge
    part_geoms, owner, home = _parts_of(cells, pts)
    if part_geoms:
        arr = np.asarray(part_geoms, dtype=object)
        tree = shapely.STRtree(arr)
        qa, qb = tree.query(arr, predicate="intersects")
        keep = qa < qb
        qa, qb = qa[keep], qb[keep]
        shared, s_shared = _shared_lengths(
            arr, np.asarray(drawn, dtype=bool)[owner], qa, qb, kx
        )
        touch = shared > 1e-12
        qa, qb, shared = qa[touch], qb[touch], shared[touch]
        s_shared = s_shared[touch]
        nbrs: list[list[tuple[int, float]]] = [[] for _ in part_geoms]
        for a_, b_, s_ in zip(qa.tolist(), qb.tolist(), shared.tolist(), strict=True):
            nbrs[a_].append((b_, s_))
            nbrs[b_].append((a_, s_))
        rooted = list(home)
        changed = True
        while changed:
            changed = False
            for p in range(len(part_geoms)):
                if rooted[p]:
                    continue
                best = max(
                    ((s_, -q) for q, s_ in nbrs[p] if rooted[q]),
                    default=None,
                )
                if best is None:
                    continue
                owner[p] = owner[-best[1]]
                rooted[p] = True
                changed = True
        # territory no building's cell can reach through the window (an exclave
        # without buildings): each such piece goes whole to one node, the one
        # whose cell covered most of it, so it makes at most one grid multi-part
        loose = [p for p in range(len(part_geoms)) if not rooted[p]]
        if loose:
            root_of = {p: p for p in loose}

            def top(p: int) -> int:
                while root_of[p] != p:
                    root_of[p] = root_of[root_of[p]]
                    p = root_of[p]
                return p

            for p in loose:
                for q, _ in nbrs[p]:
                    if q in root_of:
                        root_of[top(p)] = top(q)
            share: dict[int, dict[int, float]] = {}
            for p in loose:
                votes = share.setdefault(top(p), {})
                votes[owner[p]] = votes.get(owner[p], 0.0) + float(part_geoms[p].area)
            for p in loose:
                votes = share[top(p)]
                owner[p] = sorted(votes.items(), key=lambda t: (-t[1], t[0]))[0][0]
    regions: list[list[BaseGeometry]] = [[] for _ in range(n)]
    for p, o in zip(part_geoms, owner, strict=True):
        regions[o].append(p)
    # measures in locally isotropic coordinates (x scaled by cos(lat))
    scale = np.array([kx, 1.0])
    area = np.zeros(n)
    perim = np.zeros(n)
    pair_len: dict[tuple[int, int], float] = {}
    if part_geoms:
        scaled = shapely.transform(arr, lambda c: c * scale)
        s_area = shapely.area(scaled)
        s_len = shapely.length(scaled)
        for p, o in enumerate(owner):
            area[o] += s_area[p]
            perim[o] += s_len[p]
        # the shared boundaries, scaled (not intersected again)
        for a_, b_, s_ in zip(qa.tolist(), qb.tolist(), s_shared.tolist(), strict=True):
            oa, ob = owner[a_], owner[b_]
            if oa == ob:
                perim[oa] -= 2 * s_
                continue
            key = (oa, ob) if oa < ob else (ob, oa)
            pair_len[key] = pair_len.get(key, 0.0) + s_
    eu = [k[0] for k in pair_len]
    ev = [k[1] for k in pair_len]
    el = list(pair_len.values())
    virt = [False] * len(el)
    # separate pieces (exclaves, buildings without territory): join each piece to
    # its nearest other piece by a virtual edge, so the graph is connected
    comp = (
        np.zeros(n, dtype=np.int64)
        if _connected(n, np.asarray(eu, dtype=np.int64), np.asarray(ev, dtype=np.int64))
        else _components(n, eu, ev)
    )
    if comp.max() > 0:
        xy = np.array(keys) * scale
        while True:
            labels = np.unique(comp)
            if len(labels) <= 1:
                break
            c0 = comp == labels[0]
            a_idx = np.flatnonzero(c0)
            b_idx = np.flatnonzero(~c0)
            if len(a_idx) * len(b_idx) > 4_000_000:
                return None
            d = (xy[a_idx, None, 0] - xy[None, b_idx, 0]) ** 2 + (
                xy[a_idx, None, 1] - xy[None, b_idx, 1]
            ) ** 2
            ia, ib = np.unravel_index(int(np.argmin(d)), d.shape)
            u_, v_ = int(a_idx[ia]), int(b_idx[ib])
            eu.append(min(u_, v_))
            ev.append(max(u_, v_))
            el.append(0.0)
            virt.append(True)
            comp[comp == comp[v_]] = labels[0]
    return _Graph(
        keys=keys,
        groups=groups,
        w=w,
        regions=regions,
        area=area,
        perim=perim,
        eu=np.asarray(eu, dtype=np.int64),
        ev=np.asarray(ev, dtype=np.int64),
        elen=np.asarray(el, dtype=float),
        virtual=np.asarray(virt, dtype=bool),
    )


#: most empty nodes put on a window's boundary (see :func:`_graph`)
_RIM_MAX = 1500


def _rim_points(
    geom: BaseGeometry, points: list[tuple[float, float]], kx: float
) -> list[tuple[float, float]]:
    """Points along the boundary of ``geom``, spaced so that no building's cell
    reaches the boundary between them (closer than twice the nearest building's
    distance to it), at most about ``_RIM_MAX`` of them."""
    scale = np.array([kx, 1.0])
    g = shapely.transform(geom, lambda c: c * scale)
    rings = [
        r
        for p in shapely.get_parts(g)
        for r in [p.exterior, *p.interiors]
        if r.length > 0
    ]
    if not rings:
        return []
    total = float(sum(r.length for r in rings))
    bpts = shapely.points(np.array(points) * scale)
    h = float(shapely.distance(shapely.boundary(g), bpts).min())
    step = max(1.8 * h, total / _RIM_MAX, 1e-12)
    taken = set(points)
    out: list[tuple[float, float]] = []
    for r in rings:
        at = np.arange(0.0, r.length, step)
        for x, y in shapely.get_coordinates(shapely.line_interpolate_point(r, at)):
            key = (float(x) / kx, float(y))
            if key not in taken:
                taken.add(key)
                out.append(key)
    return out


def _shared_lengths(
    arr: np.ndarray, drawn: np.ndarray, qa: np.ndarray, qb: np.ndarray, kx: float
) -> tuple[np.ndarray, np.ndarray]:
    """Length of the boundary each pair of parts ``(qa, qb)`` shares, as is and
    with x scaled by ``kx``: the lengths of the intersection of their boundaries.

    Two Voronoi cells as drawn (``drawn``: not clipped or sliced) that are
    neighbours share one edge, vertex for vertex, and the intersection of their
    boundaries is that segment: its length is computed from the two vertices, as
    GEOS computes a segment's (checked on the first such pair, else every pair
    is intersected). Other pairs are intersected."""
    shared = np.zeros(len(qa))
    scaled = np.zeros(len(qa))
    fast = np.zeros(len(qa), dtype=bool)
    on = np.flatnonzero(drawn)
    if len(on) and len(qa):
        xy, ring = shapely.get_coordinates(arr[on], return_index=True)
        ring = on[ring]
        seg = np.flatnonzero(ring[1:] == ring[:-1])  # vertex i -> i + 1, one ring
        p, q = xy[seg], xy[seg + 1]
        flip = (p[:, 0] > q[:, 0]) | ((p[:, 0] == q[:, 0]) & (p[:, 1] > q[:, 1]))
        a0 = np.where(flip[:, None], q, p)
        a1 = np.where(flip[:, None], p, q)
        key = np.ascontiguousarray(np.concatenate([a0, a1], axis=1))
        _, inv, count = np.unique(
            key.view(np.dtype((np.void, 32))).ravel(),
            return_inverse=True,
            return_counts=True,
        )
        inv = inv.ravel()
        # segments in exactly two parts: the edge those two share
        two = np.flatnonzero(count[inv] == 2)
        two = two[np.argsort(inv[two], kind="stable")]
        s1, s2 = two[0::2], two[1::2]
        u, v = ring[seg[s1]], ring[seg[s2]]
        lo, hi = np.minimum(u, v), np.maximum(u, v)
        code = lo * len(arr) + hi
        # pairs sharing two such segments (not Voronoi neighbours) are intersected
        codes, n_seg = np.unique(code, return_counts=True)
        single = codes[n_seg == 1]
        want = qa * len(arr) + qb
        hit = np.isin(want, single) & drawn[qa] & drawn[qb]
        if hit.any():
            order = np.argsort(code, kind="stable")
            at = order[np.searchsorted(code[order], want[hit])]
            d = a1[s1[at]] - a0[s1[at]]
            shared[hit] = np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])
            sx = a1[s1[at], 0] * kx - a0[s1[at], 0] * kx
            sy = a1[s1[at], 1] * 1.0 - a0[s1[at], 1] * 1.0
            scaled[hit] = np.sqrt(sx * sx + sy * sy)
            fast = hit
            first = int(np.flatnonzero(hit)[0])
            check = shapely.intersection(
                shapely.boundary(arr[qa[first]]), shapely.boundary(arr[qb[first]])
            )
            s_check = shapely.transform(check, lambda c: c * np.array([kx, 1.0]))
            if not (
                shapely.length(check) == shared[first]
                and shapely.length(s_check) == scaled[first]
            ):
                fast = np.zeros(len(qa), dtype=bool)
    rest = np.flatnonzero(~fast)
    if len(rest):
        rims = shapely.boundary(arr)
        common = shapely.intersection(rims[qa[rest]], rims[qb[rest]])
        shared[rest] = shapely.length(common)
        scaled[rest] = shapely.length(
            shapely.transform(common, lambda c: c * np.array([kx, 1.0]))
        )
    return shared, scaled


def _parts_of(
    cells: list[BaseGeometry], pts: np.ndarray
) -> tuple[list[BaseGeometry], list[int], list[bool]]:
    """The non-empty parts of every node's region, the node of each, and whether
    it is the node's home part (the first of those nearest to its point)."""
    arr = np.empty(len(cells), dtype=object)
    arr[:] = cells
    parts, of = shapely.get_parts(arr, return_index=True)
    keep = ~shapely.is_empty(parts)
    parts, of = parts[keep], of[keep]
    home = np.ones(len(parts), dtype=bool)
    multi = np.flatnonzero(np.bincount(of, minlength=len(cells))[of] > 1)
    if len(multi):
        d = shapely.distance(parts[multi], pts[of[multi]])
        o = np.lexsort((multi, d, of[multi]))
        first = np.ones(len(o), dtype=bool)
        first[1:] = of[multi][o][1:] != of[multi][o][:-1]
        home[multi] = False
        home[multi[o[first]]] = True
    return list(parts), of.tolist(), home.tolist()


def _connected(n: int, eu: np.ndarray, ev: np.ndarray) -> bool:
    """Whether the edges join all ``n`` nodes (labels spread to the lowest, with
    pointer jumping, until they settle)."""
    if n <= 1:
        return True
    lab = np.arange(n)
    while True:
        low = np.minimum(lab[eu], lab[ev])
        new = lab.copy()
        np.minimum.at(new, eu, low)
        np.minimum.at(new, ev, low)
        new = new[new]
        if np.array_equal(new, lab):
            return bool((lab == 0).all())
        lab = new


def _components(n: int, eu: list[int], ev: list[int]) -> np.ndarray:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(eu, ev, strict=True):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
    roots = np.array([find(i) for i in range(n)], dtype=np.int64)
    _, comp = np.unique(roots, return_inverse=True)
    return np.asarray(comp, dtype=np.int64)


def _stranded(g: _Graph, lo: float, hi: float) -> list[dict[str, Any]]:
    """Buildings of ``g`` no connected grid of ``lo``–``hi`` can hold: a node under
    ``lo`` whose every reachable neighbour is too heavy to join it.

    A connected grid holding node ``a`` with ``w[a] < lo`` must hold another node
    with households, and the first one on a path out of ``a`` is reached across
    empty nodes only (cells without households, as on a rim); when each node so
    reachable (none, for a node alone) weighs more than ``hi - w[a]``, every
    connected grid holding ``a`` lies under ``lo`` or over ``hi``: no split of
    ``g`` into connected in-band grids exists. Each such node is given as its
    point, load and the loads it could join (the check of the proof).

    Examples
    --------
    >>> import numpy as np
    >>> g = _Graph(keys=[(0, 0), (1, 0), (2, 0)], groups=[[0], [1], [2]],
    ...     w=np.array([28.0, 0.0, 40.0]), regions=[[], [], []], area=np.ones(3),
    ...     perim=np.ones(3), eu=np.array([0, 1]), ev=np.array([1, 2]),
    ...     elen=np.ones(2), virtual=np.zeros(2, bool))
    >>> [(s["load"], s["joins"]) for s in _stranded(g, 30, 50)]
    [(28.0, [40.0])]
    >>> _stranded(g, 30, 70)
    []
    """
    w = g.w
    empty = w <= 1e-12
    light = np.flatnonzero(~empty & (w < lo - 1e-9))
    if not len(light):
        return []
    adj = g.adjacency()
    out = []
    for a in light.tolist():
        # the nodes with households reachable from a across empty nodes only
        seen, stack, reach = {a}, [a], set()
        while stack:
            for b in adj[stack.pop()]:
                if b in seen:
                    continue
                seen.add(b)
                if empty[b]:
                    stack.append(b)
                else:
                    reach.add(b)
        if all(w[a] + w[b] > hi + 1e-9 for b in reach):
            out.append(
                {
                    "at": [
                        round(float(g.keys[a][0]), 7),
                        round(float(g.keys[a][1]), 7),
                    ],
                    "load": float(w[a]),
                    "joins": sorted({float(w[b]) for b in reach}),
                }
            )
    return out


def _stranded_proof(
    g: _Graph,
    geom: BaseGeometry,
    members: list[int],
    atoms: list[_Atom],
    kx: float,
    band: Band,
) -> dict[str, Any] | None:
    """The buildings no connected in-band grid can hold (:func:`_stranded`) on
    both graphs of a window, ``g`` (the buildings' cells) and the one with empty
    cells along its rim to reach round by: a proof that neither has a split into
    connected in-band grids (its check), or None unless both have one."""
    on_cells = _stranded(g, band.min, band.max)
    if not on_cells:
        return None
    g_rim = _graph(geom, members, atoms, kx, rim=True)
    on_rim = _stranded(g_rim, band.min, band.max) if g_rim is not None else []
    if not on_rim:
        return None
    return {
        "cells": on_cells[:5],
        "rim": on_rim[:5],
        "graph_nodes": [len(g.w), len(g_rim.w)] if g_rim is not None else [len(g.w)],
        "stranded": [len(on_cells), len(on_rim)],
    }


def _stranded_reason(
    load: float, where: str, check: dict[str, Any], band: Band
) -> str | None:
    """The text of ``no_connected_split`` proven by a stranded building (None for
    the integer model's proof)."""
    if check.get("proof") != "stranded_building":
        return None
    first = check["cells"][0]
    joins = "/".join(f"{v:g}" for v in first["joins"]) or "none"
    return (
        f"{load:g} households: in {where}, a building (or part of one split by "
        f"unit) of {first['load']:g} households at ({first['at'][0]:.6f}, "
        f"{first['at'][1]:.6f}) borders only buildings of {joins} households "
        "(their cells touch its cell, or empty cells along the boundary between "
        "them), so on the adjacency graph of the buildings' cells every connected "
        f"grid holding it has under {band.min:g} or over {band.max:g}: no split "
        f"into connected grids of {band.min:g}–{band.max:g} exists on that graph "
        f"({check['stranded'][0]} such building(s), {check['stranded'][1]} with "
        "empty cells along the boundary to reach round by)"
    )
