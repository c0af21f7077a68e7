"""Rebalancing's last step: re-cutting growing windows of grids on the building graph."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo.gridding._atoms import _Atom
from geo.gridding._codes import _next_code
from geo.gridding._cpsat import _budget, _cap_check, _proof_check
from geo.gridding._exact import EXACT_STEPS
from geo.gridding._moves import _MIN_EDGE, _edge, _Grid, _grid_load, _neighbours
from geo.gridding._recut import (
    _WINDOW_EXACT,
    _WINDOW_TREES,
    _Clock,
    _recut,
    _steps,
    _window,
)
from geo.gridding._trees import TREE_TRIES, _subset_sum_proof
from geo.plan import UNRESOLVED, Band


def _load(c: _Grid, atoms: list[_Atom]) -> float:
    return _grid_load(c, atoms)


def _broken(x: _Grid, parts0: dict[str, int]) -> bool:
    """A grid this run changed that is now invalid or in more pieces than before."""
    return x.touched and (
        not x.geom.is_valid
        or int(shapely.get_num_geometries(x.geom)) > max(1, parts0.get(x.code, 1))
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
        return _grid_load(x, atoms)

    causes: dict[str, tuple[str, dict[str, Any]]] = {}
    tried: dict[frozenset[str], dict[str, Any]] = {}
    for c in sorted(cells, key=lambda x: x.code):
        if c not in cells or c.locked:
            continue
        if band.min - 1e-9 <= load(c) <= band.max + 1e-9 and not _broken(c, parts0):
            continue
        clock = _Clock(_steps(), cap_s)
        # first windows of one-piece grids (a re-cut then never leaves a grid in
        # pieces); windows that take in grids spanning exclaves only after that
        done = False
        for whole_only in (True, False):
            done = _grow_and_recut(
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
            if done:
                break
        if done:
            continue
        # every window failed (or the clock ran out): the grids that can exchange
        # households with c at all, the whole connected part of its area(s), are
        # cut by spanning trees up to their cap; the causes are checked on them
        comp = _component(c, cells)
        key = frozenset(x.code for x in comp)
        stats = tried.get(key)
        if stats is None:  # (the same grids as another's: the same trees)
            stats = tried[key] = {}
            if _recut_component(
                comp, cells, atoms, band, origin, used=used, log=log, stats=stats
            ):
                continue
        cause = _window_cause(comp, cells, atoms, band, stats, cap_s=cap_s)
        for x in comp:
            if x in cells and not band.contains(load(x)):
                causes[x.code] = cause(x)
    return causes


def _component(c: _Grid, cells: list[_Grid]) -> list[_Grid]:
    """``c`` and every unlocked grid reachable from it through neighbours (the same
    area, a shared edge): the grids a re-cut may exchange households with."""
    comp = [c]
    seen = {id(c)}
    for x in comp:
        for n in _neighbours(x, cells):
            if id(n) not in seen:
                seen.add(id(n))
                comp.append(n)
    return comp


def _recut_component(
    comp: list[_Grid],
    cells: list[_Grid],
    atoms: list[_Atom],
    band: Band,
    origin: dict[int, str],
    *,
    used: set[str],
    log: list[dict[str, Any]],
    stats: dict[str, Any],
) -> bool:
    """Cut the whole component by exact cuts of random spanning trees (the step
    clock is not used: the trees have their own cap); True when it was re-cut."""
    total = float(sum(atoms[a].load for x in comp for a in x.atoms))
    ks = band.counts(total, len(comp))
    if not ks:
        return False
    geom = _window([x.geom for x in comp])
    kx = math.cos(math.radians(geom.centroid.y))
    members = [a for x in comp for a in x.atoms]
    old = {a: origin.get(a, "") for a in members}
    res, why = _recut(
        geom,
        members,
        atoms,
        band,
        ks[0],
        kx,
        clock=_Clock(0, 0.0),
        old=old,
        trees=TREE_TRIES,
        cpsat=_budget(),
        stats=stats,
    )
    stats["why"] = why
    if res is None:
        return False
    if sum(int(shapely.get_num_geometries(g)) - 1 for g, _ in res) > (
        int(shapely.get_num_geometries(geom)) - 1
    ):
        stats["why"] = "pieces"
        return False
    _apply_recut(comp, res, cells, atoms, old, used=used, log=log)
    return True


def _window_cause(
    comp: list[_Grid],
    cells: list[_Grid],
    atoms: list[_Atom],
    band: Band,
    stats: dict[str, Any],
    *,
    cap_s: float,
) -> Callable[[_Grid], tuple[str, dict[str, Any]]]:
    """The cause of each grid of ``comp`` left out of band, each checked against its
    definition (:data:`geo.plan.EXCEPTION_CAUSES`):

    - ``infeasible_total`` only when the component's total (every grid it can
      exchange households with) fits no whole number of grids, and no locked
      grid borders it; ``locked`` when one does;
    - ``no_in_band_grouping`` for a grid holding a building that no in-band set of
      the component's whole buildings holds (an exact subset-sum);
    - ``no_in_band_split`` when the exact method showed that the component's whole
      buildings cannot be split into in-band groups at all (``locked`` when a
      locked grid borders it);
    - ``no_connected_split`` when the integer model proved that no split of the
      component's buildings into connected in-band grids exists on either graph
      (``locked`` when a locked grid borders it);
    - ``search_timed_out`` when the component's trees were drawn up to their cap;
    - otherwise unresolved.
    """

    def load(x: _Grid) -> float:
        return _grid_load(x, atoms)

    codes = sorted(x.code for x in comp)
    total = float(sum(load(x) for x in comp))
    locked = sorted(
        {
            o.code
            for x in comp
            for o in cells
            if o.locked
            and not o.accepted
            and (o.area_code == x.area_code or bool(o.areas & x.areas))
            and shapely.length(_edge(o.geom, x.geom)) > _MIN_EDGE
        }
    )
    if not band.feasible(total):
        check = {
            "window": codes,
            "load": total,
            "min": band.min,
            "max": band.max,
            "grids_possible": band.k_range(total),
        }
        if locked:
            fixed = ("locked", {**check, "locked": locked})
            return lambda x: fixed
        proven = ("infeasible_total", check)
        return lambda x: proven
    loads = [atoms[a].load for y in comp for a in y.atoms]
    proof = _subset_sum_proof(np.asarray(loads, dtype=float), band)
    if proof is None and stats.get("why") == "proven":
        # the exact method: the component's whole buildings cannot be split in
        # band, however grouped (locked grids beside it could have helped)
        check = {
            "window": codes,
            "load": total,
            "min": band.min,
            "max": band.max,
            "buildings": len(loads),
            "building_loads": sorted(loads, reverse=True),
            "groups_tried": int(stats.get("split_groups", 0)),
            "cap_exact_steps": EXACT_STEPS,
        }
        split = (
            ("locked", {**check, "locked": locked})
            if locked
            else (
                "no_in_band_split",
                check,
            )
        )
        return lambda x: split
    if proof is None and stats.get("why") == "connected":
        # the integer model: no split into connected in-band grids on either graph
        check = {
            "window": codes,
            "load": total,
            "min": band.min,
            "max": band.max,
            **_proof_check(loads, stats),
        }
        joined = (
            ("locked", {**check, "locked": locked})
            if locked
            else (
                "no_connected_split",
                check,
            )
        )
        return lambda x: joined
    capped = stats.get("why") in ("trees", "timeout")
    timed = (
        "search_timed_out",
        {
            "window": codes,
            "cap_steps": _steps(),
            "cap_s": cap_s,
            "cap_trees": TREE_TRIES,
            "trees": int(stats.get("trees", 0)),
            "cap_exact_steps": EXACT_STEPS,
            "exact_steps": int(stats.get("exact_steps", 0)),
            **_cap_check(stats),
        },
    )

    def cause(x: _Grid) -> tuple[str, dict[str, Any]]:
        if proof is not None and any(
            abs(atoms[a].load - v) < 1e-9
            for a in x.atoms
            for v in proof["building_loads"]
        ):
            return "no_in_band_grouping", {"window": codes, **proof}
        if capped:
            return timed
        return UNRESOLVED, {"households": load(x), "window": codes}

    return cause


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
) -> bool:
    """Grow a window ring by ring around ``c`` until a re-cut of it succeeds (the
    bipartition search on the step clock, then ``_WINDOW_TREES`` spanning trees);
    True when one did. Stops when the clock is out."""

    def load(x: _Grid) -> float:
        return _grid_load(x, atoms)

    def pieces_of(g: BaseGeometry) -> int:
        return int(shapely.get_num_geometries(g))

    window = [c]
    for ring in range(40):
        grown = list(window)
        for x in window:
            for n in _neighbours(x, cells):
                if n not in grown and (not whole_only or pieces_of(n.geom) == 1):
                    grown.append(n)
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
        res, why = _recut(
            geom,
            members,
            atoms,
            band,
            ks[0],
            kx,
            clock=clock,
            old=old,
            trees=_WINDOW_TREES,
            exact=_WINDOW_EXACT,
        )
        if res is None:
            if why == "timeout":
                return False
            continue
        # a grid is in pieces only where the window is: never more extra parts
        if sum(pieces_of(g) - 1 for g, _ in res) > pieces_of(geom) - 1:
            continue
        _apply_recut(window, res, cells, atoms, old, used=used, log=log)
        return True
    return False


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
