"""The rebalancing steps on single grids: split, peel, merge, re-cut with a neighbour."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo.gridding._atoms import _Atom, _Unit
from geo.gridding._codes import _next_code
from geo.gridding._cuts import _partition
from geo.gridding._geometry import _ANGLES, _halfplane, _overlay, _poly_only
from geo.gridding._moves import _edge, _Grid, _grid_load, _join, _neighbours
from geo.plan import Band


def _split_first(
    cells: list[_Grid], atoms: list[_Atom], band: Band
) -> list[tuple[_Grid, bool]]:
    """Over-full grids better split than relieved by flows: (grid, split alone).

    A grid's surplus can flow to grids with room up to four hops away (the
    chains :func:`_chain_flow` follows), each hop moving the households again;
    room taken by a grid handled before (the fullest first) is not offered
    twice. A grid that can be cut into in-band grids on its own is split when
    that room cannot take its surplus, or only at a cost above the split's
    (the households of the grids it peels off, at least ``band.min`` each); one that
    cannot, when that room cannot take its surplus (it is re-cut with a
    neighbour into three grids).
    """
    loads = {id(c): _grid_load(c, atoms) for c in cells}
    out = []
    over = [c for c in cells if not c.locked and loads[id(c)] > band.max + 1e-9]
    for c in sorted(over, key=lambda x: (-loads[id(x)], x.code)):
        total = loads[id(c)]
        k = band.grid_count(total)
        split_cost = max(band.min * (k - 1), total * (k - 1) / k) if k > 1 else math.inf
        cost, takes = _room(c, cells, loads, band)
        if cost == math.inf or cost > split_cost:
            out.append((c, k > 1))
            continue
        for i, take in takes:  # the flow will fill this room
            loads[i] += take
        loads[id(c)] = band.max
    return out


def _room(
    c: _Grid, cells: list[_Grid], loads: dict[int, float], band: Band
) -> tuple[float, list[tuple[int, float]]]:
    """Households moved to pass ``c``'s surplus over ``band.max`` to grids with room up to
    four hops away, nearest first (each hop moves them again; ``inf`` when that
    room is too small), and the room taken (``id`` of the grid, households)."""
    need, cost = loads[id(c)] - band.max, 0.0
    takes: list[tuple[int, float]] = []
    seen, frontier = {id(c)}, [c]
    for depth in range(1, 5):
        nxt = []
        for x in frontier:
            for n in _neighbours(x, cells):
                if id(n) in seen:
                    continue
                seen.add(id(n))
                nxt.append(n)
                take = min(max(0.0, band.max - loads[id(n)]), need)
                if take > 0:
                    takes.append((id(n), take))
                    cost += take * depth
                    need -= take
                if need <= 1e-9:
                    return cost, takes
        frontier = nxt
    return math.inf, takes


def _split_grid(
    c: _Grid,
    cells: list[_Grid],
    atoms: list[_Atom],
    band: Band,
    stay: np.ndarray,
    *,
    used: set[str],
    log: list[dict[str, Any]],
) -> None:
    total = _grid_load(c, atoms)
    k = band.grid_count(total)
    if k <= 1:
        return
    kx = math.cos(math.radians(c.geom.centroid.y))
    # peel new grids off where the newcomers are, so the grid's residents stay
    pieces = _peel(c.geom, list(c.atoms), k, atoms, stay, band, kx=kx)
    if pieces is None:
        unit = _Unit(codes=[c.area_code], parent=None, geom=c.geom)
        unit.atoms = list(c.atoms)
        unit.load = total
        pieces = _partition(unit, atoms, band, kx)
    if len(pieces) <= 1:
        return

    # the part holding most of the grid's existing households keeps the code
    def existing(members: list[int]) -> float:
        return float(sum(stay[a] for a in members))

    keep = max(range(len(pieces)), key=lambda i: (existing(pieces[i][1]), -i))
    new_codes = []
    for i, (geom, members) in enumerate(pieces):
        if i == keep:
            c.geom, c.atoms, c.touched = _poly_only(geom), list(members), True
            continue
        code = _next_code(c.area_code, used)
        new_codes.append(code)
        cells.append(
            _Grid(
                code=code,
                area_code=c.area_code,
                geom=_poly_only(geom),
                atoms=list(members),
                locked=False,
                touched=True,
                origin=c.code,
            )
        )
    log.append({"grid_code": c.code, "into": [c.code, *new_codes]})


def _peel(
    geom: BaseGeometry,
    members: list[int],
    k: int,
    atoms: list[_Atom],
    stay: np.ndarray,
    band: Band,
    *,
    kx: float,
) -> list[tuple[BaseGeometry, list[int]]] | None:
    """Cut ``k - 1`` in-band grids off a grid by straight cuts, each taking as few of
    its existing households as possible; the rest is the last piece."""

    pieces: list[tuple[BaseGeometry, list[int]]] = []
    rest_geom, rest = geom, list(members)
    for left_k in range(k - 1, 0, -1):
        xs = np.array([atoms[a].x for a in rest]) * kx
        ys = np.array([atoms[a].y for a in rest])
        w = np.array([atoms[a].load for a in rest])
        st = np.array([stay[a] for a in rest])
        total = float(w.sum())
        best = None
        for theta in _ANGLES:
            dx, dy = math.cos(theta), math.sin(theta)
            proj = (xs - xs.mean()) * dx + (ys - ys.mean()) * dy
            order = np.argsort(proj, kind="stable")
            sp = proj[order]
            cum_w = np.cumsum(w[order])[:-1]
            cum_s = np.cumsum(st[order])[:-1]
            cuttable = sp[1:] - sp[:-1] > 1e-12
            peel_ok = (cum_w >= band.min - 1e-9) & (cum_w <= band.max + 1e-9)
            rest_w = total - cum_w
            rest_ok = (rest_w >= left_k * band.min - 1e-9) & (
                rest_w <= left_k * band.max + 1e-9
            )
            cand = np.flatnonzero(cuttable & peel_ok & rest_ok)
            if len(cand) == 0:
                continue
            i = int(cand[np.argmin(cum_s[cand])])
            cost = float(cum_s[i])
            if best is None or cost < best[0]:
                best = (cost, theta, i, order, sp)
        if best is None:
            return None
        _, theta, i, order, sp = best
        dx, dy = math.cos(theta), math.sin(theta)
        cpos = (sp[i] + sp[i + 1]) / 2
        cx0 = float(np.mean([atoms[a].x for a in rest]))
        cy0 = float(np.mean([atoms[a].y for a in rest]))
        hp = _halfplane(rest_geom, cx0 + cpos * dx / kx, cy0 + cpos * dy, dx, dy, kx)
        cut = _overlay(shapely.intersection, rest_geom, hp)
        if cut is None or (peel_geom := _poly_only(cut)).is_empty:
            return None
        left_over = _overlay(shapely.difference, rest_geom, peel_geom)
        if left_over is None or (new_rest_geom := _poly_only(left_over)).is_empty:
            return None
        peel = [rest[j] for j in order[: i + 1]]
        pieces.append((peel_geom, peel))
        rest_geom, rest = new_rest_geom, [rest[j] for j in order[i + 1 :]]
    pieces.append((rest_geom, rest))
    return pieces


def _recut_with_neighbour(
    c: _Grid,
    cells: list[_Grid],
    atoms: list[_Atom],
    band: Band,
    used: set[str],
    log: list[dict[str, Any]],
) -> None:
    """An over-full grid whose area has no room left: re-cut it with one neighbour into
    three grids (both keep their codes on the pieces holding most of their households)."""

    def load(x: _Grid) -> float:
        return _grid_load(x, atoms)

    options = []
    for n in _neighbours(c, cells):
        total = load(c) + load(n)
        if 3 * band.min - 1e-9 <= total <= 3 * band.max + 1e-9:
            shared = shapely.length(_edge(c.geom, n.geom))
            options.append((-shared, n.code, n))
    if not options:
        return
    n = min(options, key=lambda o: (o[0], o[1]))[2]
    unit = _Unit(codes=[c.area_code], parent=None, geom=_join(c.geom, n.geom))
    unit.atoms = c.atoms + n.atoms
    unit.load = load(c) + load(n)
    kx = math.cos(math.radians(c.geom.centroid.y))
    pieces = _partition(unit, atoms, band, kx)
    if len(pieces) != 3:
        return
    mine, theirs = set(c.atoms), set(n.atoms)

    def overlap(members: list[int], own: set[int]) -> int:
        return int(sum(len(atoms[a].members) for a in members if a in own))

    i_c = max(range(3), key=lambda i: overlap(pieces[i][1], mine))
    i_n = max(
        (i for i in range(3) if i != i_c), key=lambda i: overlap(pieces[i][1], theirs)
    )
    i_new = ({0, 1, 2} - {i_c, i_n}).pop()
    c.geom, c.atoms, c.touched = _poly_only(pieces[i_c][0]), list(pieces[i_c][1]), True
    n.geom, n.atoms, n.touched = _poly_only(pieces[i_n][0]), list(pieces[i_n][1]), True
    code = _next_code(c.area_code, used)
    cells.append(
        _Grid(
            code=code,
            area_code=c.area_code,
            geom=_poly_only(pieces[i_new][0]),
            atoms=list(pieces[i_new][1]),
            locked=False,
            touched=True,
            origin=c.code,
            areas=c.areas | n.areas,
        )
    )
    log.append({"grid_code": c.code, "with": n.code, "into": [c.code, n.code, code]})


def _merge_grid(
    c: _Grid,
    cells: list[_Grid],
    atoms: list[_Atom],
    band: Band,
    log: list[dict[str, Any]],
) -> None:
    def load(x: _Grid) -> float:
        return _grid_load(x, atoms)

    options = [o for o in _neighbours(c, cells) if load(o) + load(c) <= band.max + 1e-9]
    if not options:
        return
    # the smaller side moves: it gives up its code when it is the smaller one
    target = min(options, key=lambda o: (load(o) + load(c), o.code))
    big, small = (target, c) if load(target) >= load(c) else (c, target)
    big.geom = _join(big.geom, small.geom)
    big.atoms = big.atoms + small.atoms
    big.touched = True
    cells.remove(small)
    log.append({"retired": small.code, "into": big.code})
