"""Moving whole buildings between adjacent grids: flows along chains of grids and local repairs."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo.gridding._atoms import (
    _Atom,
    _atom_parts,
    _cells,
    _clip_cells,
    _load_sum,
    _point_groups,
    _raw_cells,
)
from geo.gridding._geometry import _clean, _overlay, _poly_only, _union
from geo.plan import Band

#: edges of two grids closer than this (degrees, ~0.1 mm) are shared: overlays
#: leave the common edge of two grids a hair apart (new vertices computed twice)
_EDGE_TOL = 1e-9

#: a shared edge at least this long (degrees, ~1 cm): grids meeting at a corner
#: share a few tolerance-widths of boundary, which is not an edge
_MIN_EDGE = 1e-7


def _near(g: BaseGeometry) -> BaseGeometry:
    """``g``'s boundary widened by the edge tolerance (to intersect boundaries with)."""
    return shapely.buffer(g.boundary, _EDGE_TOL, quad_segs=1)


#: margin (degrees) around a box within which :func:`_near_in` widens a boundary
_NEAR_PAD = 16 * _EDGE_TOL


def _near_in(
    g: BaseGeometry,
    x0: float,
    y0: float,
    x1: float,
    y1: float,
    *,
    rim: BaseGeometry | None = None,
) -> BaseGeometry:
    """:func:`_near` of ``g`` inside the box ``(x0, y0, x1, y1)``: only the part of
    the boundary near the box is widened (a point of the box within the tolerance
    of the boundary is so of that part), the same polygon there at a fraction of
    the cost for a box much smaller than ``g``. ``rim``: ``g.boundary``, when the
    caller has it."""
    p = _NEAR_PAD
    line = g.boundary if rim is None else rim
    piece = shapely.clip_by_rect(line, x0 - p, y0 - p, x1 + p, y1 + p)
    return shapely.buffer(piece, _EDGE_TOL, quad_segs=1)


def _edge(a: BaseGeometry, b: BaseGeometry) -> BaseGeometry:
    """The part of ``a``'s boundary that runs along ``b``'s (within the tolerance).

    Only ``b``'s boundary where the two boxes meet is widened (``a``'s boundary
    within the tolerance of ``b``'s lies there)."""
    ax0, ay0, ax1, ay1 = a.bounds
    bx0, by0, bx1, by1 = b.bounds
    t = 2 * _EDGE_TOL
    x0, y0 = max(ax0, bx0) - t, max(ay0, by0) - t
    x1, y1 = min(ax1, bx1) + t, min(ay1, by1) + t
    if not (x0 <= x1 and y0 <= y1):  # apart (or empty)
        if a.is_empty or b.is_empty:
            return shapely.intersection(a.boundary, _near(b))
        return shapely.LineString()
    return shapely.intersection(a.boundary, _near_in(b, x0, y0, x1, y1))


def _join(a: BaseGeometry, b: BaseGeometry) -> BaseGeometry:
    """Union of two adjacent pieces; where the union leaves them apart (their
    common edge a hair apart), again on a 1e-11° grid (~1 µm), which closes it."""
    u = _union([a, b])
    if int(shapely.get_num_geometries(u)) < int(shapely.get_num_geometries(a)) + len(
        shapely.get_parts(b)
    ):
        return u
    try:
        snapped = shapely.union(a, b, grid_size=1e-11)
    except shapely.errors.GEOSException:
        return u
    return _clean(_poly_only(snapped))


def _joined(a: BaseGeometry, b: BaseGeometry) -> tuple[BaseGeometry, bool]:
    """:func:`_join` of ``a`` and ``b``, and whether it is their plain union (no
    vertex snapped to a grid, no sliver dropped): then its boundary runs along
    theirs only."""
    try:
        raw = shapely.union_all(np.asarray([a, b], dtype=object))
    except shapely.errors.GEOSException:
        return _join(a, b), False
    u = _clean(raw)
    if int(shapely.get_num_geometries(u)) < int(shapely.get_num_geometries(a)) + len(
        shapely.get_parts(b)
    ):
        return u, u is raw
    try:
        snapped = shapely.union(a, b, grid_size=1e-11)
    except shapely.errors.GEOSException:
        return u, False
    return _clean(_poly_only(snapped)), False


def _own(cell: BaseGeometry, key: tuple[float, float]) -> BaseGeometry:
    """The part of a building's cell that holds its point (a cell clipped to a
    grid in pieces can reach into another piece, which must stay behind)."""
    if shapely.get_num_geometries(cell) <= 1:
        return cell
    parts = shapely.get_parts(cell)
    pt = shapely.Point(key)
    return parts[int(np.argmin(shapely.distance(parts, pt)))]


def _move_into_band(
    pieces: list[tuple[BaseGeometry, list[int]]],
    atoms: list[_Atom],
    band: Band,
) -> list[tuple[BaseGeometry, list[int]]]:
    """Building moves across shared edges, then along chains of neighbours."""
    pieces = _repair(pieces, atoms, band)
    if _out_of_band(pieces, atoms, band):
        pieces = _chain_repair(pieces, atoms, band)
    return pieces


def _fragmented(
    pieces: list[tuple[BaseGeometry, list[int]]], atoms: list[_Atom]
) -> int:
    """How many pieces hold their buildings in more than one part."""
    return sum(_atom_parts(p, m, atoms) > 1 for p, m in pieces)


def _out_of_band(
    pieces: list[tuple[BaseGeometry, list[int]]],
    atoms: list[_Atom],
    band: Band,
) -> int:
    return sum(
        not band.min - 1e-9 <= _load_sum(atoms, m) <= band.max + 1e-9 for _, m in pieces
    )


def _ranked(
    pieces: list[tuple[BaseGeometry, list[int]]], atoms: list[_Atom], kx: float
) -> tuple[tuple[float, float], list[tuple[BaseGeometry, list[int]]]]:
    """(fewest broken pieces, then the highest least Polsby-Popper, in locally
    isotropic coordinates) as a sort key, with the pieces."""
    scale = np.array([kx, 1.0])
    # all pieces scaled in one call (the same products, coordinate by coordinate)
    scaled = shapely.transform(
        np.array([p for p, _ in pieces], dtype=object), lambda c: c * scale
    )
    pp = min(
        0.0 if per == 0 else 4 * math.pi * area / (per * per)
        for area, per in zip(
            shapely.area(scaled).tolist(), shapely.length(scaled).tolist(), strict=True
        )
    )
    return (float(_fragmented(pieces, atoms)), -round(pp, 3)), pieces


def _chain_repair(
    pieces: list[tuple[BaseGeometry, list[int]]],
    atoms: list[_Atom],
    band: Band,
) -> list[tuple[BaseGeometry, list[int]]]:
    """Pass buildings along chains of neighbouring pieces (the rebalancer's step)."""

    cells = [
        _Grid(code=str(i), area_code="u", geom=g, atoms=list(m), locked=False)
        for i, (g, m) in enumerate(pieces)
    ]
    _chain_flow(cells, atoms, band, max_steps=400)
    return [(c.geom, c.atoms) for c in cells]


def _repair(
    pieces: list[tuple[BaseGeometry, list[int]]],
    atoms: list[_Atom],
    band: Band,
    *,
    max_moves: int = 200,
    frozen: frozenset[int] = frozenset(),
    batch: bool = False,
) -> list[tuple[BaseGeometry, list[int]]]:
    """Move whole buildings (with their Voronoi cell) across shared edges to fix the band.

    Pieces whose index is in ``frozen`` (locked grids) neither give nor take.
    With ``batch``, the best move takes along the other cells on the same edge
    (the longest shared edge first) while each adds to the gain, in one cut
    (when the giver stays in as many pieces; else the first half of them, and
    so on down to the best cell alone).

    Only grids out of band, and the neighbours that trade with them, change.
    A move never splits the giving grid and keeps the tiling exact (the cell is
    cut from one grid and added to the other).
    """
    geoms = [g for g, _ in pieces]
    mem = [list(m) for _, m in pieces]

    def load(i: int) -> float:
        return float(_load_sum(atoms, mem[i]))

    def dist(v: float) -> float:
        return max(band.min - v, 0.0, v - band.max)

    # each grid's buildings with their Voronoi cells, computed once and kept while
    # the grid gives cells away (the others stay inside it) or takes some in (the
    # new ones move on only after a refresh): moves then cost no new Voronoi
    version = [0] * len(geoms)
    fam: dict[int, _Family] = {}
    # the buildings of ``src`` whose cell touches ``dst``: cached until the
    # family of ``src`` or the polygon of ``dst`` changes
    edge_cache: dict[tuple[int, int, int, int], np.ndarray] = {}

    rim_cache: dict[tuple[int, int], BaseGeometry] = {}

    def rim(i: int) -> BaseGeometry:
        """Grid ``i``'s boundary as it is now (drawn once per version)."""
        nk = (i, version[i])
        hit = rim_cache.get(nk)
        if hit is None:
            hit = rim_cache[nk] = geoms[i].boundary
        return hit

    def family(i: int) -> _Family:
        f = fam.get(i)
        if f is None:
            f = fam[i] = _Family.of(geoms[i], mem[i], atoms, stamp=version[i])
        return f

    near_cache: dict[tuple[int, int], BaseGeometry] = {}

    def near(i: int) -> BaseGeometry:
        nk = (i, version[i])
        hit = near_cache.get(nk)
        if hit is None:
            hit = near_cache[nk] = _near(geoms[i])
            shapely.prepare(hit)
        return hit

    # which cells of ``src``'s family may touch ``dst``, kept as ``dst`` changes
    # without widening its whole boundary again: a grid grows by the cells it
    # takes (a cell touching it then touched it before, or touches the cell
    # taken) or shrinks (a cell touching it then touched it before). The mask is
    # a superset of the cells touching ``dst``: one that no longer does shares
    # no edge with it (its length was measured again when the cell between them
    # moved), so no move takes it. A grid whose polygon changed otherwise (a
    # union snapped to a grid, slivers dropped) is measured whole again.
    touch: dict[tuple[int, int, int], tuple[int, np.ndarray]] = {}
    taken: list[list[BaseGeometry]] = [[] for _ in geoms]  # cells taken, widened

    def touching(f: _Family, src: int, dst: int, live: np.ndarray) -> np.ndarray:
        tk = (src, f.stamp, dst)
        hit = touch.get(tk)
        if hit is None:
            mask = np.zeros(len(f.cells), dtype=bool)
            mask[live] = shapely.intersects(near(dst), f.cells[live])
            hit = touch[tk] = (len(taken[dst]), mask)
        elif hit[0] < len(taken[dst]):
            mask = hit[1].copy()
            for around in taken[dst][hit[0] :]:
                mask[live] |= shapely.intersects(around, f.cells[live])
            hit = touch[tk] = (len(taken[dst]), mask)
        return hit[1]

    def remeasure(grid: int) -> None:
        """Forget which cells touch ``grid`` (its polygon changed otherwise)."""
        for k in [k for k in touch if k[2] == grid]:
            del touch[k]

    def edge_cells(src: int, dst: int) -> np.ndarray:
        """The cells of ``src``'s family (still in it) that touch ``dst``."""
        f = family(src)
        ck = (src, f.stamp, dst, version[dst])
        hit = edge_cache.get(ck)
        if hit is None:
            live = np.flatnonzero(f.alive)
            hit = live[:0]
            if len(live) > 1:
                hit = live[touching(f, src, dst, live)[live]]
            edge_cache[ck] = hit
        return hit

    # shared edge lengths by the grid they are shared with: a move changes the
    # boundary of its two grids only around the cell it moves, so only lengths of
    # cells near that cell are measured again
    shared_cache: dict[int, dict[tuple[int, int, int], tuple[float, tuple[float, ...]]]]
    shared_cache = {}

    def shared_edge(src: int, dst: int, c: int) -> float:
        """Length of the boundary cell ``c`` of ``src`` shares with ``dst``."""
        sk = (src, fam[src].stamp, c)
        per = shared_cache.setdefault(dst, {})
        hit = per.get(sk)
        if hit is None:
            cell = fam[src].cells[c]
            # the other grid's boundary widened around the cell only
            x0, y0, x1, y1 = cell.bounds
            pad = 4 * _EDGE_TOL
            around = _near_in(geoms[dst], x0, y0, x1, y1, rim=rim(dst))
            length = float(shapely.length(shapely.intersection(cell.boundary, around)))
            hit = per[sk] = (length, (x0 - pad, y0 - pad, x1 + pad, y1 + pad))
        return hit[0]

    def moved_near(grid: int, cell: BaseGeometry) -> None:
        """Forget the lengths shared with ``grid`` by cells near ``cell``."""
        x0, y0, x1, y1 = cell.bounds
        per = shared_cache.get(grid, {})
        for k in [
            k
            for k, (_, (a0, b0, a1, b1)) in per.items()
            if a0 <= x1 and x0 <= a1 and b0 <= y1 and y0 <= b1
        ]:
            del per[k]

    banned: set[tuple[int, int]] = set()

    def _along(src: int, dst: int, c: int, loads: list[float]) -> list[int]:
        """The other cells of ``src`` on its edge with ``dst`` that the move of
        cell ``c`` takes along: the longest shared edge first, while each adds to
        the gain."""
        f = fam[src]
        moved = f.loads[c]
        gain = -dist(loads[src] - moved) - dist(loads[dst] + moved)
        cands = [
            (shared_edge(src, dst, x), x)
            for x in edge_cells(src, dst).tolist()
            if x != c and f.alive[x] and (src, f.groups[x][0]) not in banned
        ]
        out = []
        for shared, x in sorted(cands, key=lambda o: (-o[0], o[1])):
            if shared <= _MIN_EDGE:
                break
            w = f.loads[x]
            g = -dist(loads[src] - moved - w) - dist(loads[dst] + moved + w)
            if g > gain + 1e-9:
                out.append(x)
                moved, gain = moved + w, g
        return out

    refreshed = True
    # each grid's load, added again only when its buildings changed
    load_at: list[tuple[int, float]] = [(-1, 0.0)] * len(mem)
    for _ in range(max_moves):
        for i, (at, _) in enumerate(load_at):
            if at != version[i]:
                load_at[i] = (version[i], load(i))
        loads = [v for _, v in load_at]
        bad = [i for i in range(len(mem)) if dist(loads[i]) > 1e-9 and i not in frozen]
        if not bad:
            break
        # every move that would bring the grids closer to the band, best gain
        # first; the length of edge a cell shares with the other grid breaks ties
        # (measured only for moves that can still win: it adds at most 1e-6 per
        # unit of the cell's perimeter)
        options: list[tuple[float, int, int, int]] = []
        tree = shapely.STRtree(np.asarray(geoms, dtype=object))
        for i in bad:
            for j in tree.query(geoms[i], predicate="dwithin", distance=_EDGE_TOL):
                j = int(j)
                if j == i or j in frozen:
                    continue
                # over: i gives to j; under: i takes from j
                src, dst = (i, j) if loads[i] > band.max else (j, i)
                f = family(src)
                before = dist(loads[src]) + dist(loads[dst])
                for c in edge_cells(src, dst).tolist():
                    if not f.alive[c] or (src, f.groups[c][0]) in banned:
                        continue
                    w = f.loads[c]
                    gain = before - dist(loads[src] - w) - dist(loads[dst] + w)
                    if gain > 1e-9:
                        options.append((gain, src, dst, c))
        options.sort(key=lambda o: -o[0])
        best: tuple[float, int, int, int] | None = None
        for gain, src, dst, c in options:
            if best is not None and gain + 1e-6 * fam[src].perimeter[c] <= best[0]:
                continue
            shared = shared_edge(src, dst, c)
            if shared <= _MIN_EDGE:
                continue
            score = gain + 1e-6 * shared
            if best is None or score > best[0]:
                best = (score, src, dst, c)
        if best is None:
            if refreshed:
                break
            # the families are out of date (cells taken in cannot move on yet):
            # draw them again from the grids as they are now, once
            stale = [i for i, f in fam.items() if f.stamp != version[i]]
            for i in stale:
                del fam[i]
            refreshed = True
            continue
        _, src, dst, c = best
        f = family(src)
        group = [c] + (_along(src, dst, c, loads) if batch else [])
        parts_before = max(1, _atom_parts(geoms[src], mem[src], atoms))
        n_src = int(shapely.get_num_geometries(geoms[src]))
        n_dst = int(shapely.get_num_geometries(geoms[dst]))
        while True:
            cell = f.cells[c] if len(group) == 1 else _union(list(f.cells[group]))
            moved = [a for x in group for a in f.groups[x]]
            try:
                diff, plain = shapely.difference(geoms[src], cell), True
            except shapely.errors.GEOSException:
                diff, plain = _overlay(shapely.difference, geoms[src], cell), False
            new_src = None if diff is None else _clean(_poly_only(diff))
            gone = set(moved)
            rest = [a for a in mem[src] if a not in gone]
            whole = new_src is not None and _atom_parts(new_src, rest, atoms) <= (
                parts_before
            )
            if whole and new_src is not None:
                new_src, cell = _shed(new_src, cell, n_src, rest, atoms)
                joined, plain_join = _joined(geoms[dst], cell)
            if len(group) == 1:
                break
            # several cells at once only where neither grid comes out in more
            # pieces than it was (a single cell: as the moves always did)
            if (
                whole
                and new_src is not None
                and int(shapely.get_num_geometries(new_src)) <= n_src
                and int(shapely.get_num_geometries(joined)) <= n_dst
            ):
                break
            # else half as many (the best first)
            group = group[: len(group) // 2]
        if new_src is None or not whole:
            # no cut, or it would split the giver: try another building
            banned.add((src, f.groups[c][0]))
            continue
        geoms[src] = new_src
        if not plain:
            remeasure(src)
        geoms[dst], plain = joined, plain_join
        if plain:
            around = _near(cell)  # (the cell's boundary widened, once)
            shapely.prepare(around)
            taken[dst].append(around)
        else:
            remeasure(dst)
        mem[src] = rest
        mem[dst] = mem[dst] + list(moved)
        f.alive[group] = False
        moved_near(src, cell)
        moved_near(dst, cell)
        version[src] += 1
        version[dst] += 1
        refreshed = False
    return list(zip(geoms, mem, strict=True))


def _shed(
    new_src: BaseGeometry,
    cell: BaseGeometry,
    parts_before: int,
    rest: list[int],
    atoms: list[_Atom],
) -> tuple[BaseGeometry, BaseGeometry]:
    """The giver without the land that moving ``cell`` cut off from it, and the
    cell with that land: parts of ``new_src`` beyond its ``parts_before`` that hold
    none of its buildings (``rest``) and touch the cell go with the cell, so that
    a move leaves no empty piece of one grid behind, cut off inside others (the
    tiling stays exact: the land changes grid, no household does)."""
    n = int(shapely.get_num_geometries(new_src))
    if n <= max(1, parts_before) or not rest:
        return new_src, cell
    parts = shapely.get_parts(new_src)
    pts = shapely.points(
        np.fromiter((atoms[a].x for a in rest), float, len(rest)),
        np.fromiter((atoms[a].y for a in rest), float, len(rest)),
    )
    # (a building's point can lie on a part's edge, a hair outside it: a piece
    # cut exactly through a split building)
    empty = [
        bool(
            not shapely.dwithin(p, pts, _EDGE_TOL).any()
            and shapely.dwithin(p, cell, _EDGE_TOL)
        )
        for p in parts
    ]
    if not any(empty) or all(empty):
        return new_src, cell
    keep = [p for p, e in zip(parts, empty, strict=True) if not e]
    gone = [p for p, e in zip(parts, empty, strict=True) if e]
    kept = keep[0] if len(keep) == 1 else shapely.MultiPolygon(keep)
    return kept, _union([cell, *gone])


@dataclass
class _Family:
    """A grid's buildings (atoms at one point) and their Voronoi cells in it."""

    groups: list[list[int]]
    cells: np.ndarray  # the part of each building's cell that holds its point
    loads: list[float]
    perimeter: np.ndarray  # of each cell
    alive: np.ndarray  # still in the grid
    stamp: int  # the grid's version when drawn
    bounds: np.ndarray  # of each cell (n, 4)

    @classmethod
    def of(
        cls, geom: BaseGeometry, members: list[int], atoms: list[_Atom], *, stamp: int
    ) -> _Family:
        by_point = _point_groups(members, atoms)
        keys = list(by_point)
        groups = [by_point[k] for k in keys]
        cells = np.empty(len(keys), dtype=object)
        if len(keys) > 1:
            clipped = _clip_cells(_raw_cells(geom, keys), geom)
            cells[:] = [
                c if c.is_empty else _own(c, k)
                for c, k in zip(clipped, keys, strict=True)
            ]
        else:
            cells[:] = [geom] * len(keys)
        return cls(
            groups=groups,
            cells=cells,
            loads=[float(_load_sum(atoms, g)) for g in groups],
            perimeter=shapely.length(cells),
            alive=~shapely.is_empty(cells)
            if len(keys) > 1
            else np.zeros(len(keys), bool),
            stamp=stamp,
            bounds=shapely.bounds(cells),
        )


@dataclass(eq=False)
class _Grid:
    code: str
    area_code: str
    geom: BaseGeometry
    atoms: list[int]
    locked: bool
    touched: bool = False
    origin: str | None = None  # for new grids: the code they were split from
    areas: frozenset[str] = frozenset()  # every area the grid covers (merged areas)
    accepted: bool = False  # out of band already in the previous plan, unchanged
    kept_cause: str | None = None  # an accepted grid's proven cause in that plan


#: whether two polygons share an edge, by the pair, and each grid's load, by its
#: list of atoms, within one run of the rebalancing steps (:func:`_step_memos`;
#: polygons are immutable and the steps replace a grid's list rather than change
#: it, and an entry keeps what it answers for alive, so an answer holds while
#: the run lasts)
_SHARES: ContextVar[dict[tuple[int, int], tuple[Any, Any, bool]] | None] = ContextVar(
    "_SHARES", default=None
)
_LOADS: ContextVar[dict[int, tuple[Any, Any, float]] | None] = ContextVar(
    "_LOADS", default=None
)


@contextmanager
def _step_memos() -> Iterator[None]:
    """Within the block, whether two polygons share an edge and a grid's load are
    worked out once (dropped when the block ends)."""
    shares = _SHARES.set({})
    loads = _LOADS.set({})
    try:
        yield
    finally:
        _SHARES.reset(shares)
        _LOADS.reset(loads)


def _grid_load(x: _Grid, atoms: list[_Atom]) -> float:
    """``float(_load_sum(atoms, x.atoms))``, once per list of atoms in a run."""
    memo = _LOADS.get()
    if memo is None:
        return float(_load_sum(atoms, x.atoms))
    held = x.atoms
    hit = memo.get(id(held))
    if hit is not None and hit[0] is held and hit[1] is atoms:
        return hit[2]
    value = float(_load_sum(atoms, held))
    memo[id(held)] = (held, atoms, value)
    return value


def _shares_edge(a: BaseGeometry, b: BaseGeometry) -> bool:
    """Whether ``a`` and ``b`` are within the tolerance and ``a``'s boundary runs
    along ``b``'s for more than ``_MIN_EDGE``."""
    memo = _SHARES.get()
    key = (id(a), id(b))
    hit = memo.get(key) if memo is not None else None
    if hit is not None and hit[0] is a and hit[1] is b:
        return hit[2]
    yes = bool(
        shapely.dwithin(a, b, _EDGE_TOL) and shapely.length(_edge(a, b)) > _MIN_EDGE
    )
    if memo is not None:
        memo[key] = (a, b, yes)
    return yes


def _neighbours(c: _Grid, cells: list[_Grid]) -> list[_Grid]:
    return [
        o
        for o in cells
        if o is not c
        and not o.locked
        and (o.area_code == c.area_code or (o.areas & c.areas))
        and _shares_edge(o.geom, c.geom)
    ]


def _flow(cells: list[_Grid], atoms: list[_Atom], band: Band) -> None:
    """Single-hop moves of whole buildings from over- to under-loaded neighbours."""

    def load(c: _Grid) -> float:
        return _grid_load(c, atoms)

    for c in list(cells):
        if c.locked or band.min - 1e-9 <= load(c) <= band.max + 1e-9:
            continue
        group = [c, *_neighbours(c, cells)]
        if len(group) < 2:
            continue
        before = [list(x.atoms) for x in group]
        pieces = _repair(
            [(x.geom, list(x.atoms)) for x in group], atoms, band, batch=True
        )
        for x, (geom, members), prev in zip(group, pieces, before, strict=True):
            if sorted(members) != sorted(prev):
                x.geom, x.atoms, x.touched = geom, members, True


def _chain_flow(
    cells: list[_Grid],
    atoms: list[_Atom],
    band: Band,
    *,
    max_steps: int = 2000,
) -> None:
    """Pass buildings along a chain of neighbours to the nearest grid with room.

    For a grid over the band whose neighbours are full (or under it, whose
    neighbours have nothing to spare), each step moves one building across each
    shared edge of the shortest path to a grid that can absorb (or give) it, so
    intermediate grids keep their size.
    """

    def load(c: _Grid) -> float:
        return _grid_load(c, atoms)

    steps = 0
    for c in list(cells):
        # hops no building could take (none small enough borders the other
        # grid): the next path goes around them
        blocked: set[tuple[int, int]] = set()
        while steps < max_steps and not c.locked and c in cells:
            over = load(c) > band.max + 1e-9
            under = load(c) < band.min - 1e-9
            if not (over or under):
                break
            path = _path_to_slack(c, cells, atoms, band, over, blocked=blocked)
            if path is None:
                break
            # over: move along c -> ... -> t, starting at the far end
            hops = list(itertools.pairwise(path))
            if not over:
                hops = [(b, a) for a, b in hops]  # under: pull from t towards c
            for src, dst in reversed(hops) if over else hops:
                # every grid but c stays in band: what dst takes fits under the
                # band's top, what a grid other than c gives leaves it in band
                limit = band.max - load(dst)
                if src is not c:
                    limit = min(limit, load(src) - band.min)
                want = load(c) - band.max if over else band.min - load(c)
                if not _move_one(src, dst, atoms, limit=limit, want=want):
                    blocked.add((id(src), id(dst)) if over else (id(dst), id(src)))
                    break
            steps += 1


def _path_to_slack(
    c: _Grid,
    cells: list[_Grid],
    atoms: list[_Atom],
    band: Band,
    over: bool,
    *,
    blocked: set[tuple[int, int]] | None = None,
) -> list[_Grid] | None:
    """The shortest chain of neighbours from ``c`` to a grid with room (``over``)
    or with households to spare, avoiding the ``blocked`` hops (ids of the two
    grids, in the chain's order)."""

    def load(x: _Grid) -> float:
        return _grid_load(x, atoms)

    blocked = blocked or set()
    seen = {id(c)}
    frontier: list[list[_Grid]] = [[c]]
    while frontier:
        nxt: list[list[_Grid]] = []
        for path in frontier:
            for n in _neighbours(path[-1], cells):
                if id(n) in seen or (id(path[-1]), id(n)) in blocked:
                    continue
                seen.add(id(n))
                if (over and load(n) <= band.max - 1) or (
                    not over and load(n) >= band.min + 1
                ):
                    return [*path, n]
                if len(path) < 4:
                    nxt.append([*path, n])
        frontier = nxt
    return None


def _move_one(
    src: _Grid,
    dst: _Grid,
    atoms: list[_Atom],
    *,
    limit: float = math.inf,
    want: float = 0.0,
) -> bool:
    """Move the lightest building of ``src`` bordering ``dst`` (with its cell),
    of at most ``limit`` households; or, when ``want`` is more than it holds,
    the lightest buildings along the edge up to ``want`` households (at most
    ``limit``) at once, if taking them leaves ``src`` in as many pieces."""
    groups = _point_groups(src.atoms, atoms)
    keys = list(groups)
    if len(keys) <= 1:
        return False
    # only cells reaching the edge the two grids share can move across it
    edge = _edge(src.geom, dst.geom)
    if shapely.length(edge) <= _MIN_EDGE:
        return False
    cells = _cells(src.geom, keys, near=edge)
    # the cells' boundaries near dst's lie within the tolerance of the edge
    ex0, ey0, ex1, ey1 = edge.bounds
    t = 2 * _EDGE_TOL
    dst_near = _near_in(dst.geom, ex0 - t, ey0 - t, ex1 + t, ey1 + t)
    options = []
    for key, cell in zip(keys, cells, strict=True):
        if cell.is_empty:
            continue
        cell = _own(cell, key)
        shared = shapely.length(shapely.intersection(cell.boundary, dst_near))
        if shared > _MIN_EDGE:
            w = _load_sum(atoms, groups[key])
            if w <= limit + 1e-9:
                options.append((w, -shared, key, cell))
    options.sort(key=lambda o: (o[0], o[1]))
    tries = [([key], cell) for _, _, key, cell in options[:5]]
    # several buildings along the edge at once, up to ``want`` households (the
    # lightest first, then the longest shared edge), when they come off together
    batch, total = [], 0.0
    for w, _, key, cell in options:
        if total + w > min(want, limit) + 1e-9:
            break
        batch.append((key, cell))
        total += w
    if len(batch) > 1:
        tries.insert(0, ([k for k, _ in batch], _union([c for _, c in batch])))
    for keys_moved, cell in tries:
        moved = {a for key in keys_moved for a in groups[key]}
        rest = [a for a in src.atoms if a not in moved]
        diff = _overlay(shapely.difference, src.geom, cell)
        if diff is None:
            continue
        new_src = _clean(_poly_only(diff))
        if _atom_parts(new_src, rest, atoms) > max(
            1, _atom_parts(src.geom, src.atoms, atoms)
        ):
            continue
        n_src = int(shapely.get_num_geometries(src.geom))
        new_src, cell = _shed(new_src, cell, n_src, rest, atoms)
        joined = _join(dst.geom, cell)
        if len(keys_moved) > 1 and (
            int(shapely.get_num_geometries(new_src)) > n_src
            or shapely.get_num_geometries(joined) > shapely.get_num_geometries(dst.geom)
        ):
            continue  # several at once only where no grid comes out in more pieces
        src.geom, src.atoms, src.touched = new_src, rest, True
        dst.geom = joined
        dst.atoms = dst.atoms + [a for key in keys_moved for a in groups[key]]
        dst.touched = True
        return True
    return False
