"""Cutting ordered sequences of buildings (serpentine, Hilbert) into in-band runs by dynamic programming."""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo.gridding._atoms import _Atom, _cells, _Unit
from geo.gridding._geometry import (
    _ANGLES,
    _cover_union,
    _halfplane,
    _overlay,
    _poly_only,
    _repaired,
    _union,
)
from geo.gridding._moves import _fragmented, _move_into_band, _out_of_band, _ranked
from geo.plan import Band


def _band_segments(w: np.ndarray, band: Band) -> list[int] | None:
    """Cut a sequence of loads into consecutive runs that are all in band, with the
    least squared distance from the target; the run ends, or None if impossible.

    Dynamic programming over the run ends, a block at a time: a run holds at least
    ``band.min``, so the ends whose prefix load lies within ``band.min`` of the
    block's first depend only on ends before the block, and the whole block is
    computed at once in numpy (the same sums, ties to the earliest start).

    Examples
    --------
    >>> _band_segments(np.full(10, 50.0), Band(200, 300))
    [5, 10]
    >>> _band_segments(np.array([150.0, 150.0, 150.0]), Band(200, 250)) is None
    True
    """
    n = len(w)
    lo, hi, tgt = band.min, band.max, band.target
    pre = np.concatenate([[0.0], np.cumsum(w)])
    cost = np.full(n + 1, np.inf)
    back = np.full(n + 1, -1, dtype=np.int64)
    cost[0] = 0.0
    # runs (j, i] with lo <= pre[i] - pre[j] <= hi: j in a window (pre rises)
    j_lo = np.maximum(np.searchsorted(pre, pre - hi - 1e-9, side="left"), 0)
    j_hi = np.searchsorted(pre, pre - lo + 1e-9, side="right") - 1
    j_hi = np.minimum(j_hi, np.arange(n + 1) - 1)
    # loads are not negative, so the windows only move on: each block's last end
    # is then found by one search (else one end at a time, as before)
    rising = bool((np.diff(j_hi) >= 0).all())
    i = 1
    while i <= n:
        # the block: every end whose window ends before the block starts
        if rising:
            stop = min(int(np.searchsorted(j_hi, i, side="left")) - 1, n)
        else:
            stop = i
            while stop + 1 <= n and j_hi[stop + 1] < i:
                stop += 1
        ends = np.arange(i, stop + 1)
        width = int((j_hi[ends] - j_lo[ends]).max(initial=-1)) + 1
        if width > 0:
            js = j_lo[ends][:, None] + np.arange(width)[None, :]
            valid = js <= j_hi[ends][:, None]
            jc = np.where(valid, js, 0)
            c = np.where(
                valid, cost[jc] + (pre[ends][:, None] - pre[jc] - tgt) ** 2, np.inf
            )
            arg = np.argmin(c, axis=1)
            best = c[np.arange(len(ends)), arg]
            cost[ends] = best
            back[ends] = np.where(np.isfinite(best), jc[np.arange(len(ends)), arg], -1)
        i = stop + 1
    if not np.isfinite(cost[n]):
        return None
    out, i = [], n
    while i > 0:
        out.append(i)
        i = int(back[i])
    return out[::-1]


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
    band: Band,
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
    k = band.grid_count(float(ws.sum()))
    strip_counts = range(1, min(k, 6) + 1)
    runs: dict[tuple[tuple[int, ...], ...], None] = {}
    orders = [
        *(_serpentine(xs, ys, ws, t, c) for t in _ANGLES for c in strip_counts),
        *(_hilbert_order(xs, ys, turn) for turn in range(4)),
    ]
    for order in orders:
        ends = _band_segments(ws[order], band)
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
    # each atom's building point and load, read once for every order below
    idx_l = idx.tolist()
    kp_of = [key_pos[(atoms[i].x, atoms[i].y)] for i in idx_l]
    load_of = [atoms[i].load for i in idx_l]
    tried: list[tuple[tuple[float, float], list[tuple[BaseGeometry, list[int]]]]] = []
    unions: dict[tuple[int, ...], BaseGeometry] = {}
    for groups in list(runs)[:80]:
        # the load each group holds at each building point
        share: dict[int, dict[int, float]] = {}
        for g, members in enumerate(groups):
            for j in members:
                d = share.setdefault(kp_of[j], {})
                d[g] = d.get(g, 0.0) + load_of[j]
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
            pieces.append((geom, [idx_l[j] for j in members]))
        pieces = [(_repaired(g), m) for g, m in pieces]
        if any(p.is_empty for p, _ in pieces):
            continue
        tried.append(_ranked(pieces, atoms, kx))
    tried.sort(key=lambda t: t[0])
    if tried and tried[0][0][0] > 0:
        # every order left a grid in parts: join the detached parts to their
        # neighbours and move buildings back into band, for the best few orders
        fixed = []
        for _, pieces in tried[:4]:
            pieces = _move_into_band(_defragment(pieces, atoms), atoms, band)
            if not _out_of_band(pieces, atoms, band):
                fixed.append(_ranked(pieces, atoms, kx))
        tried = sorted(fixed + tried, key=lambda t: t[0])
    if not tried:
        return None
    if tried[0][0][0] > _fragmented(current, atoms):
        return None  # in band but broken into parts: keep the reported exceptions
    return tried[0][1]
