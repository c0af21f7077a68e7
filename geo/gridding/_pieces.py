"""Repairing a unit's grids: growing windows around each out-of-band grid, re-cut.

The last step of generation (:func:`geo.gridding._cuts._partition`): each grid
that straight cuts, building moves and ordered sequences left out of band is
re-cut (:func:`geo.gridding._recut._recut`) with its neighbours, then theirs, up
to the whole unit. A unit proven to hold a stranded building (one no connected
in-band grid can hold: :func:`geo.gridding._adjacency._stranded_proof`) costs
that building's grid only: the grid is set aside, cut down to the building, and
the windows of every other grid grow over the rest of the unit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo.gridding import _cpsat
from geo.gridding._adjacency import _graph
from geo.gridding._atoms import _Atom, _load_sum
from geo.gridding._exact import EXACT_STEPS
from geo.gridding._geometry import _SLIVER, _clean, _cover_union, _poly_only
from geo.gridding._moves import _EDGE_TOL, _MIN_EDGE, _edge, _join
from geo.gridding._recut import (
    _WINDOW_EXACT,
    _WINDOW_TREES,
    _cap,
    _Clock,
    _grids_of,
    _recut,
    _steps,
)
from geo.gridding._trees import TREE_TRIES, _subset_sum_proof
from geo.plan import Band

_Piece = tuple[BaseGeometry, list[int]]


def _load(members: list[int], atoms: list[_Atom]) -> float:
    return float(_load_sum(atoms, members))


def _window(geoms: list[BaseGeometry]) -> BaseGeometry:
    """The union of adjacent grids, closing the hair gaps overlays leave between
    their common edges (vertices snapped to a 1e-11° grid, ~1 µm)."""
    arr = np.asarray(geoms, dtype=object)
    try:
        out = shapely.union_all(arr, grid_size=1e-11)
    except shapely.errors.GEOSException:
        out = shapely.union_all(shapely.make_valid(arr), grid_size=1e-11)
    return _clean(_poly_only(out))


def _touching(geoms: list[BaseGeometry]) -> list[set[int]]:
    arr = np.asarray(geoms, dtype=object)
    tree = shapely.STRtree(arr)
    qa, qb = tree.query(arr, predicate="dwithin", distance=_EDGE_TOL)
    nb: list[set[int]] = [set() for _ in geoms]
    for a, b in zip(qa.tolist(), qb.tolist(), strict=True):
        if a < b and shapely.length(_edge(arr[a], arr[b])) > _MIN_EDGE:
            nb[a].add(b)
            nb[b].add(a)
    return nb


def _recut_pieces(
    unit_geom: BaseGeometry,
    pieces: list[_Piece],
    atoms: list[_Atom],
    band: Band,
    kx: float,
    *,
    cap_s: float | None = None,
    notes: dict[str, Any] | None = None,
) -> list[_Piece]:
    """Re-cut growing windows around each out-of-band piece of a feasible unit.

    A window is the out-of-band piece and its neighbours, then theirs, up to the
    whole unit; the first window whose load can be cut in band is re-cut by the
    graph search, then by exact cuts of random spanning trees (a few for a
    window, up to ``TREE_TRIES`` on each graph for the whole unit, which is
    always tried before the method gives up). Pieces outside the window keep
    their polygon.

    When the whole unit holds stranded buildings (no connected in-band grid can
    hold one: :func:`geo.gridding._adjacency._stranded_proof`), the pieces holding
    them are set aside: one out of band is cut down to its stranded buildings,
    each alone (:func:`_split_off`), one in band kept as it is. Windows then grow
    over the other pieces only, up to the unit without the pieces set aside (the
    union of the rest, perhaps in several parts), proven again in turn.

    With a piece still out of band, ``notes["_cause"]`` is ``("search_timed_out",
    {"cap_steps": …, "cap_s": …, "cap_trees": …, "trees": …})`` once the whole
    unit's trees were drawn up to their cap (the caps, and the trees drawn), and
    ``notes["_proof"]`` holds a subset-sum certificate when one proves that no
    in-band partition of the unit's buildings exists
    (:func:`geo.gridding._trees._subset_sum_proof`). With pieces set aside,
    ``notes["_causes"]`` gives each piece's own cause where it differs from the
    unit's (None where it does not): ``search_timed_out`` for the other pieces
    when the rest of the unit's trees were drawn up to their cap.
    """
    cap_s = _cap() if cap_s is None else cap_s
    clock = _Clock(_steps(), cap_s)
    pieces = list(pieces)
    everyone = [a for _, m in pieces for a in m]
    proof = _subset_sum_proof(np.array([atoms[a].load for a in everyone]), band)
    stats: dict[str, Any] = {}
    whole_trees = False  # the whole unit's trees were drawn (up to their cap)
    no_split = False  # the exact method proved the whole unit has no in-band split
    no_connected = False  # the integer model proved it has no connected one
    # in a unit of one piece every grid must be one piece too
    one_piece = int(shapely.get_num_geometries(unit_geom)) == 1
    failed: set[int] = set()
    # the pieces holding stranded buildings, set aside (``pieces`` is the rest),
    # and the search of the rest of the unit
    aside: list[_Piece] = []
    rest: dict[str, Any] = {}
    rest_trees = False  # the rest's trees were drawn (up to their cap)
    rest_done = False  # ... or it was proven to have no (connected) split

    def out_of_band(g: BaseGeometry, m: list[int]) -> bool:
        return not band.contains(_load(m, atoms)) or (one_piece and _parts(g) > 1)

    def bad_pieces() -> list[int]:
        return [
            i
            for i, (g, m) in enumerate(pieces)
            if i not in failed and out_of_band(g, m)
        ]

    def fits(res: list[_Piece], geom: BaseGeometry) -> bool:
        """No more pieces than the window has (a hole-free window stays whole)."""
        extra = sum(int(shapely.get_num_geometries(g)) - 1 for g, _ in res)
        return extra <= int(shapely.get_num_geometries(geom)) - 1

    def whole_geom() -> BaseGeometry:
        """The unit, or, with pieces set aside, the union of the rest."""
        return _window([g for g, _ in pieces]) if aside else unit_geom

    def set_aside(st: dict[str, Any] | None) -> bool:
        """Set aside the pieces holding the stranded buildings a whole re-cut
        just found (``st["stranded_atoms"]``); False when it found none."""
        nonlocal pieces, failed, clock, rest, rest_trees, rest_done
        stuck = set(st.pop("stranded_atoms", ())) if st is not None else set()
        holding = {i for i, (_, m) in enumerate(pieces) if stuck.intersection(m)}
        if not holding:
            return False
        kept = [p for i, p in enumerate(pieces) if i not in holding]
        for i in sorted(holding):
            alone, left = [pieces[i]], None
            if out_of_band(*pieces[i]):
                # cut down to its stranded buildings where what is left of it is
                # in band (a grid fewer to repair, not one more)
                cut, left = _split_off(pieces[i], stuck, atoms, kx)
                if left is None or out_of_band(*left):
                    left = None
                else:
                    alone = cut
            aside.extend(alone)
            if left is not None:
                kept.append(left)
        pieces, failed = kept, set()
        # the rest is a unit of its own: its own search, on a clock of its own
        clock = _Clock(_steps(), cap_s)
        rest, rest_trees, rest_done = {}, False, False
        return True

    while True:
        bad = bad_pieces()
        if not bad or clock.expired():
            break
        start = bad[0]
        nb = _touching([g for g, _ in pieces])
        window = {start}
        done = False
        why: str | None = None
        while not done:
            grown = window | {j for i in window for j in nb[i]}
            if grown == window:
                grown = set(range(len(pieces)))  # pieces apart (exclaves): all
            window = grown
            whole = len(window) == len(pieces)
            if whole and proof is not None:
                failed.add(start)  # no in-band partition of the unit exists
                break
            members = [a for i in sorted(window) for a in pieces[i][1]]
            total = _load(members, atoms)
            ks = band.counts(total, len(window))
            st = (rest if aside else stats) if whole else None
            if ks:
                geom = (
                    whole_geom()
                    if whole
                    else _window([pieces[i][0] for i in sorted(window)])
                )
                for k in ks[:2]:
                    res, why = _recut(
                        geom,
                        members,
                        atoms,
                        band,
                        k,
                        kx,
                        clock=clock if whole else clock.share(0.5),
                        trees=TREE_TRIES if whole else _WINDOW_TREES,
                        exact=EXACT_STEPS if whole else _WINDOW_EXACT,
                        cpsat=_cpsat._budget() if whole else 0.0,
                        stats=st,
                    )
                    if whole and aside:
                        rest_trees = rest_trees or why in ("trees", "timeout")
                        rest_done = rest_done or why in _SETTLED
                    else:
                        whole_trees = whole_trees or (
                            whole and why in ("trees", "timeout")
                        )
                        if whole and why == "proven":
                            no_split = True
                        no_connected = no_connected or (whole and why == "connected")
                    if res is not None and not fits(res, geom):
                        res, why = None, "none"  # a hole-free window came out in pieces
                    if res is not None:
                        rest_p = [p for i, p in enumerate(pieces) if i not in window]
                        pieces = rest_p + res
                        done = True
                        break
                    if why == "graph" or (whole and why in _SETTLED):
                        break  # (another count: the same trees, the same clock)
            if whole and not done:
                # stranded buildings: their pieces set aside, the windows start
                # again over the others; otherwise this piece stays as it is
                if why != "connected" or not set_aside(st):
                    failed.add(start)
                break
    while (
        proof is None
        and bad_pieces()
        and not (rest_done if aside else (whole_trees or no_connected))
        and band.feasible(_load([a for _, m in pieces for a in m], atoms))
    ):
        # the step clock ran out before the whole unit (or the rest) was tried:
        # its trees still are (they have their own cap), so the method never
        # stops at a window
        members = [a for _, m in pieces for a in m]
        geom = whole_geom()
        ks = band.counts(_load(members, atoms), len(pieces))
        res, why = _recut(
            geom,
            members,
            atoms,
            band,
            ks[0],
            kx,
            clock=_Clock(0, cap_s),
            trees=TREE_TRIES,
            exact=EXACT_STEPS,
            cpsat=_cpsat._budget(),
            stats=rest if aside else stats,
        )
        if aside:
            rest_trees, rest_done = why in ("trees", "timeout"), why in _SETTLED
        else:
            whole_trees = why in ("trees", "timeout")
            no_split = why == "proven"
            no_connected = why == "connected"
        if res is not None and fits(res, geom):
            pieces = res
        elif why == "connected" and set_aside(rest if aside else stats):
            continue  # the rest of the unit, in turn
        break
    n_aside = len(aside)
    pieces = aside + pieces
    if one_piece:
        # a grid still in pieces (the search was capped): its detached parts join
        # the grids beside them, so every grid is one piece; the band then gives
        # way, with the cap as the cause
        pieces = _rejoin_detached(pieces, atoms)
    if notes is not None and any(not band.contains(_load(m, atoms)) for _, m in pieces):
        if proof is not None:
            notes["_proof"] = proof
        if no_split:
            notes["_cause"] = (
                "no_in_band_split",
                {
                    "buildings": len(everyone),
                    "building_loads": sorted(
                        (atoms[a].load for a in everyone), reverse=True
                    ),
                    "groups_tried": int(stats.get("split_groups", 0)),
                    "cap_exact_steps": EXACT_STEPS,
                },
            )
        elif no_connected:
            loads = [atoms[a].load for a in everyone]
            notes["_cause"] = ("no_connected_split", _cpsat._proof_check(loads, stats))
        elif whole_trees:
            notes["_cause"] = _timed_out(stats, cap_s)
        if n_aside and rest_trees:
            # the rest was searched up to its caps: its grids say so, not the
            # stranded buildings' proof
            timed = _timed_out(rest, cap_s)
            timed[1]["grids_set_aside"] = n_aside
            notes["_causes"] = [None] * n_aside + [timed] * (len(pieces) - n_aside)
    return pieces


#: a whole re-cut's answers that end the search: capped, or proven impossible
_SETTLED = ("trees", "timeout", "proven", "connected")


def _timed_out(stats: dict[str, Any], cap_s: float) -> tuple[str, dict[str, Any]]:
    """``search_timed_out`` with the caps of a whole re-cut and what it spent."""
    return (
        "search_timed_out",
        {
            "cap_steps": _steps(),
            "cap_s": cap_s,
            "cap_trees": TREE_TRIES,
            "trees": int(stats.get("trees", 0)),
            "cap_exact_steps": EXACT_STEPS,
            "exact_steps": int(stats.get("exact_steps", 0)),
            **_cpsat._cap_check(stats),
        },
    )


def _split_off(
    piece: _Piece, stuck: set[int], atoms: list[_Atom], kx: float
) -> tuple[list[_Piece], _Piece | None]:
    """The stranded buildings of ``piece`` (atoms in ``stuck``) as grids, each
    alone or with those it borders (the parts of a split building stay together:
    one grid out of band, not two), and the rest of the piece (None when nothing
    is left). The grids are parts of the piece's building graph, so they tile it
    exactly; the piece as it is when its graph cannot be drawn."""
    geom, members = piece
    g = _graph(geom, members, atoms, kx)
    if g is None:
        return [piece], None
    alone = {v for v, grp in enumerate(g.groups) if stuck.intersection(grp)}
    others = np.setdiff1d(np.arange(len(g.groups)), sorted(alone))
    if not alone or not len(others):
        return [piece], None
    adj = g.adjacency()
    parts: list[np.ndarray] = []
    for v in sorted(alone):
        if any(v in p for p in parts):
            continue
        near = [v]
        for x in near:
            near += [y for y in adj[x] if y in alone and y not in near]
        parts.append(np.array(sorted(near), dtype=np.int64))
    grids = _grids_of(g, [*parts, others])
    return grids[:-1], grids[-1]


def _rejoin_detached(pieces: list[_Piece], atoms: list[_Atom]) -> list[_Piece]:
    """Each grid in several parts keeps the part holding most of its households;
    every other part (with its buildings) joins the grid it shares the longest
    edge with. The tiling stays exact."""
    out = [(g, list(m)) for g, m in pieces]
    for i in range(len(out)):
        geom, members = out[i]
        parts = list(shapely.get_parts(geom))
        if len(parts) <= 1:
            continue
        arr = np.asarray(parts, dtype=object)
        owner = [
            int(np.argmin(shapely.distance(arr, shapely.Point(atoms[a].x, atoms[a].y))))
            for a in members
        ]
        held = np.zeros(len(parts))
        for a, o in zip(members, owner, strict=True):
            held[o] += atoms[a].load
        keep = int(np.lexsort((-shapely.area(arr), -held))[0])
        stay_geom: list[BaseGeometry] = [parts[keep]]
        stay_members = [a for a, o in zip(members, owner, strict=True) if o == keep]
        for j, part in enumerate(parts):
            if j == keep:
                continue
            moving = [a for a, o in zip(members, owner, strict=True) if o == j]
            shared = [
                shapely.length(_edge(part, out[q][0])) if q != i else 0.0
                for q in range(len(out))
            ]
            q = int(np.argmax(shared)) if shared else -1
            if q < 0 or shared[q] <= _MIN_EDGE:
                stay_geom.append(part)  # nothing beside it: it stays
                stay_members += moving
                continue
            out[q] = (_join(out[q][0], part), out[q][1] + moving)
        out[i] = (_poly_only(_cover_union(stay_geom)), stay_members)
    return out


def _parts(g: BaseGeometry) -> int:
    """Parts of ``g`` that are territory, not overlay slivers."""
    return int((shapely.area(shapely.get_parts(g)) > _SLIVER).sum())
