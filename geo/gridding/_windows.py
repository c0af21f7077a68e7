"""Rebalancing's last step: re-cutting growing windows of grids on the building graph."""

from __future__ import annotations

import math
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from geo.gridding._atoms import _Atom
from geo.gridding._codes import _next_code
from geo.gridding._moves import _MIN_EDGE, _edge, _Grid, _neighbours
from geo.gridding._recut import _Clock, _recut, _steps, _window
from geo.plan import UNRESOLVED, Band


def _load(c: _Grid, atoms: list[_Atom]) -> float:
    return float(sum(atoms[a].load for a in c.atoms))


def _broken(x: _Grid, parts0: dict[str, int]) -> bool:
    """A grid this run changed that is now invalid or in more pieces than before."""
    return x.touched and (
        not x.geom.is_valid
        or len(shapely.get_parts(x.geom)) > max(1, parts0.get(x.code, 1))
    )


def _recut_windows(
    cells: list[_Grid],
    atoms: list[_Atom],
    band: Band,
    origin: dict[int, str],
    parts0: dict[str, int],
    *,
    used: set[str],
    log: list[dict[str, Any]],
    cap_s: float,
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Re-cut a growing window around every grid that flows, splits and merges left
    out of band, newly in pieces or invalid: the grid and its unlocked neighbours,
    then theirs, until the window's load can be cut in band and the graph search
    finds a partition (:func:`geo.gridding._recut._recut`) that keeps most
    households in their grid. Pieces keep the codes of the grids whose households
    they mostly hold; extra pieces get new codes, grids left without a piece are
    retired. Returns the cause (``cause``, ``check``) of each grid still out of
    band."""

    def load(x: _Grid) -> float:
        return float(sum(atoms[a].load for a in x.atoms))

    causes: dict[str, tuple[str, dict[str, Any]]] = {}
    for c in sorted(cells, key=lambda x: x.code):
        if c not in cells or c.locked:
            continue
        if band.min - 1e-9 <= load(c) <= band.max + 1e-9 and not _broken(c, parts0):
            continue
        clock = _Clock(_steps(), cap_s)
        timed_out = False
        # first windows of one-piece grids (a re-cut then never leaves a grid in
        # pieces); windows that take in grids spanning exclaves only after that
        for whole_only in (True, False):
            window, total, blocked, done, timed_out = _grow_and_recut(
                c,
                cells,
                atoms,
                band,
                origin,
                clock,
                used=used,
                log=log,
                whole_only=whole_only,
            )
            if done or timed_out:
                break
        for x in cells:
            if x.locked or band.min - 1e-9 <= load(x) <= band.max + 1e-9:
                continue
            if x in window or x is c:
                causes[x.code] = (
                    ("search_timed_out", {"cap_steps": _steps(), "cap_s": cap_s})
                    if timed_out
                    else (
                        "locked",
                        {"window": sorted(w.code for w in window), "load": total},
                    )
                    if blocked
                    else (
                        "infeasible_total",
                        {
                            "window": sorted(w.code for w in window),
                            "load": total,
                            "min": band.min,
                            "max": band.max,
                        },
                    )
                    if not band.counts(total, 1)
                    else (UNRESOLVED, {"households": load(x)})
                )
    return causes


def _grow_and_recut(
    c: _Grid,
    cells: list[_Grid],
    atoms: list[_Atom],
    band: Band,
    origin: dict[int, str],
    clock: _Clock,
    *,
    used: set[str],
    log: list[dict[str, Any]],
    whole_only: bool,
) -> tuple[list[_Grid], float, bool, bool, bool]:
    """Grow a window ring by ring around ``c`` until a re-cut of it succeeds.

    Returns (window, its load, a locked grid borders it, done, timed out)."""

    def load(x: _Grid) -> float:
        return float(sum(atoms[a].load for a in x.atoms))

    def pieces_of(g: BaseGeometry) -> int:
        return len(shapely.get_parts(g))

    window = [c]
    total = load(c)
    blocked = False
    for ring in range(40):
        grown = list(window)
        for x in window:
            for n in _neighbours(x, cells):
                if n not in grown and (not whole_only or pieces_of(n.geom) == 1):
                    grown.append(n)
        blocked = blocked or any(
            o.locked
            and not o.accepted
            and (o.area_code == x.area_code or bool(o.areas & x.areas))
            and shapely.length(_edge(o.geom, x.geom)) > _MIN_EDGE
            for x in window
            for o in cells
        )
        if len(grown) == len(window) and ring > 0:
            break
        window = grown
        total = float(sum(load(x) for x in window))
        ks = band.counts(total, len(window))
        if not ks:
            continue
        geom = _window([x.geom for x in window])
        kx = math.cos(math.radians(geom.centroid.y))
        members = [a for x in window for a in x.atoms]
        old = {a: origin.get(a, "") for a in members}
        res, why = _recut(geom, members, atoms, band, ks[0], kx, clock=clock, old=old)
        if why == "timeout":
            return window, total, blocked, False, True
        if res is None:
            continue
        # a grid is in pieces only where the window is: never more extra parts
        if sum(pieces_of(g) - 1 for g, _ in res) > pieces_of(geom) - 1:
            continue
        _apply_recut(window, res, cells, atoms, old, used=used, log=log)
        return window, total, blocked, True, False
    return window, total, blocked, False, False


def _apply_recut(
    window: list[_Grid],
    pieces: list[tuple[BaseGeometry, list[int]]],
    cells: list[_Grid],
    atoms: list[_Atom],
    old: dict[int, str],
    *,
    used: set[str],
    log: list[dict[str, Any]],
) -> None:
    """Put a window's new pieces in place: each keeps the code of the window grid
    whose households it mostly holds; others get new codes; the rest retire."""
    by_code = {x.code: x for x in window}
    common: dict[tuple[int, str], int] = {}
    for i, (_, m) in enumerate(pieces):
        for a in m:
            code = old.get(a)
            if code in by_code:
                common[(i, code)] = common.get((i, code), 0) + len(atoms[a].members)
    match: dict[int, str] = {}
    taken: set[str] = set()
    for (i, code), _ in sorted(common.items(), key=lambda t: (-t[1], t[0])):
        if i not in match and code not in taken:
            match[i] = code
            taken.add(code)
    # pieces holding none of a window grid's own households take the codes of the
    # window grids left over (grids created earlier in this run first)
    spare = sorted(
        (x for x in window if x.code not in taken),
        key=lambda x: (x.origin is None, x.code),
    )
    for i in range(len(pieces)):
        if i not in match and spare:
            x = spare.pop(0)
            match[i] = x.code
            taken.add(x.code)
    into = []
    for i, (geom, members) in enumerate(pieces):
        if i in match:
            x = by_code[match[i]]
            if sorted(x.atoms) != sorted(members) or x.geom is not geom:
                x.geom, x.atoms, x.touched = geom, list(members), True
            into.append(x.code)
            continue
        # a new grid: named in the area of the window grid it takes most from
        src = max(
            window,
            key=lambda x: (
                sum(len(atoms[a].members) for a in members if old.get(a) == x.code),
                x.code,
            ),
        )
        code = _next_code(src.area_code, used)
        cells.append(
            _Grid(
                code=code,
                area_code=src.area_code,
                geom=geom,
                atoms=list(members),
                locked=False,
                touched=True,
                origin=src.code,
                areas=src.areas,
            )
        )
        into.append(code)
    retired = [x.code for x in window if x.code not in taken]
    for x in window:
        if x.code not in taken:
            cells.remove(x)
    log.append(
        {
            "grids": sorted(x.code for x in window),
            "into": sorted(into),
            "retired": retired,
        }
    )
