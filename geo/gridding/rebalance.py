"""Rebalancing a plan as housing changes, moving as few households as possible."""

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

from geo.crs import STORAGE_CRS
from geo.gridding._atoms import _Atom, _atoms, _Unit
from geo.gridding._codes import _natural, _next_code, _positions
from geo.gridding._cuts import _partition
from geo.gridding._geometry import _ANGLES, _halfplane, _overlay, _poly_only
from geo.gridding._moves import (
    _EDGE_TOL,
    _MIN_EDGE,
    _chain_flow,
    _edge,
    _flow,
    _Grid,
    _join,
    _neighbours,
)
from geo.gridding._recut import _cap, _Clock, _recut, _steps, _window
from geo.gridding.metrics import plan_metrics
from geo.plan import UNRESOLVED, Band, GridPlan

__all__ = ["Rebalanced", "rebalance"]


@dataclass(frozen=True)
class Rebalanced:
    """Result of :func:`rebalance`.

    Attributes
    ----------
    plan
        The new plan (same columns as a generated one).
    changes
        ``household_id, old_grid_code, new_grid_code`` for every household whose
        grid changed; new households have an empty ``old_grid_code``.
    report
        Counts (moved, new, removed, lower bound, ratio), grids touched,
        created, split, merged and retired, and the new plan's metrics.
    """

    plan: GridPlan
    changes: pd.DataFrame
    report: dict[str, Any] = field(default_factory=dict)


def rebalance(
    grids: gpd.GeoDataFrame,
    assignments: pd.DataFrame,
    households: gpd.GeoDataFrame,
    *,
    min_households: float = 200,
    max_households: float = 300,
    locked: tuple[str, ...] | list[str] | set[str] = (),
    weight: str | None = None,
    retired_codes: tuple[str, ...] | list[str] = (),
    seed: int = 0,
    redraw_accepted: bool = False,
) -> Rebalanced:
    """Bring every grid back into the band after households changed, moving few.

    Each household first keeps its grid (or, if new or moved, takes the grid
    containing it). Then only out-of-band grids and as few neighbours as needed
    change: surplus households move across shared edges to neighbours with
    room (whole buildings with their Voronoi cell, so the tiling stays exact);
    a grid too full for its neighbours is split (the part holding most of its
    existing households keeps the code, the others get the next free codes); a
    grid too small to be topped up from its neighbours merges into the adjacent
    grid that keeps the merged load in band. Locked grids never change; grids
    not involved keep their code and polygon exactly; retired codes are never
    reused.

    Parameters
    ----------
    grids
        The current plan's grids: ``grid_code``, ``area_code``, polygons.
    assignments
        The current plan's ``household_id, grid_code``.
    households
        The new state of the households (``household_id``, points; optional
        ``building_id``, ``unit``, the ``weight`` column).
    locked
        Grid codes that must not change.
    retired_codes
        Codes retired by earlier versions (never reused).
    redraw_accepted
        Also bring into band the grids that were already out of band in
        ``grids`` and did not change (kept as accepted exceptions by default):
        for a draft whose hand edits left grids out of band.

    Returns
    -------
    Rebalanced

    Examples
    --------
    >>> import geopandas as gpd, numpy as np, pandas as pd, shapely
    >>> from geo.gridding.generate import generate_grids
    >>> rng = np.random.default_rng(0)
    >>> hh = gpd.GeoDataFrame({"household_id": [f"h{i}" for i in range(1000)]},
    ...     geometry=shapely.points(rng.uniform(0, 0.01, 1000), rng.uniform(0, 0.01, 1000)),
    ...     crs=4326)
    >>> village = gpd.GeoDataFrame({"code": ["V1"]}, geometry=[shapely.box(0, 0, 0.01, 0.01)],
    ...     crs=4326)
    >>> plan = generate_grids(hh, village)
    >>> estate = gpd.GeoDataFrame({"household_id": [f"n{i}" for i in range(120)]},
    ...     geometry=shapely.points(rng.uniform(0, 0.002, 120), rng.uniform(0, 0.002, 120)),
    ...     crs=4326)
    >>> r = rebalance(plan.grids, plan.assignments, pd.concat([hh, estate]))
    >>> r.plan.report["metrics"]["in_band_share"]
    1.0
    >>> r.report["new_households"], r.report["moved_households"] <= 2 * r.report["lower_bound"]
    (120, True)
    """
    t0 = time.perf_counter()
    band = Band(min_households, max_households)
    if band.min <= 0:
        raise ValueError(
            f"need 0 < min_households <= max_households, got {min_households}"
        )
    for col in ("grid_code", "area_code"):
        if col not in grids.columns:
            raise ValueError(f"grids need a '{col}' column")
    if households["household_id"].duplicated().any():
        dup = households["household_id"][households["household_id"].duplicated()].iloc[
            0
        ]
        raise ValueError(f"duplicate household_id {dup!r}")
    unknown = sorted(set(locked) - set(grids["grid_code"].astype(str)))
    if unknown:
        raise ValueError(f"locked grid(s) not in the plan: {', '.join(unknown)}")
    g = grids.to_crs(STORAGE_CRS).reset_index(drop=True)
    hh = households.to_crs(STORAGE_CRS).reset_index(drop=True)
    old = assignments.astype({"household_id": str, "grid_code": str}).set_index(
        "household_id"
    )["grid_code"]
    hh["household_id"] = hh["household_id"].astype(str)

    # each household's row in the old assignments, its old grid code and position
    row = _positions(hh["household_id"], old.index)
    known = row >= 0
    prev = np.full(len(hh), None, dtype=object)
    prev[known] = old.to_numpy(dtype=object)[row[known]]
    grid_of_row, old_codes = pd.factorize(old)
    at = pd.Index(g["grid_code"].astype(str)).get_indexer(old_codes)[grid_of_row]
    prev_pos = np.where(known, at[np.maximum(row, 0)] if len(at) else -1, -1)
    pos = _natural(g, hh, old, prev_pos=prev_pos)
    outside = np.flatnonzero(pos < 0)
    if len(outside):
        ids = hh["household_id"].iloc[outside[:10]].tolist()
        raise ValueError(
            f"{len(outside)} household(s) lie outside every grid of the plan: {ids}; "
            "extend the areas and generate, or fix their coordinates"
        )
    codes = g["grid_code"].astype(str).tolist()
    loads = (
        pd.to_numeric(hh[weight], errors="coerce").fillna(1.0).to_numpy(dtype=float)
        if weight
        else np.ones(len(hh))
    )
    natural_code = np.array(codes, dtype=object)[pos]
    was_here = prev_pos == pos
    locked_set = set(locked)
    before = np.bincount(at[at >= 0], minlength=len(g)).astype(float)
    if redraw_accepted:  # no grid counts as an exception accepted earlier
        before = np.full(len(g), np.nan)
    state = _State.of(g, pos, loads, was_here, before, band, locked=locked_set)
    # buildings over the band, split by unit: reported for the whole plan
    exceptions = _oversize(hh, pos, loads, band, codes)
    # only the grids out of band, and a few rings of grids around them, take part;
    # when they cannot settle it there, every grid does (the causes reported for
    # what is left out of band are then those of the whole plan)
    region = _region(g, state.dirty, _RINGS)
    for scope in (region, None):
        if scope is not None and len(scope) == len(g):
            continue
        run = _run(
            g,
            hh,
            pos,
            loads,
            band,
            state,
            scope=scope,
            was_here=was_here,
            retired_codes=retired_codes,
        )
        if scope is None or run.settled:
            break
    cells, atoms, causes = run.cells, run.atoms, run.causes
    split_log, merge_log, recut_log = run.split_log, run.merge_log, run.recut_log
    lower_bound = state.lower_bound

    plan, changes, stats = _assemble(
        cells, atoms, hh, prev, natural_code, band, exceptions=exceptions, causes=causes
    )
    retired = sorted(set(codes) - set(plan.grids["grid_code"]))
    report = {
        "moved_households": stats["moved"],
        "new_households": stats["new"],
        "removed_households": _removed(old, prev),
        "lower_bound": lower_bound,
        "moved_to_lower_bound": (
            round(stats["moved"] / lower_bound, 3) if lower_bound > 0 else None
        ),
        "grids_touched": sorted(c.code for c in cells if c.touched),
        "grids_created": sorted(c.code for c in cells if c.origin),
        "splits": split_log,
        "merges": merge_log,
        "recuts": recut_log,
        "retired_codes": sorted(set(retired) | {str(c) for c in retired_codes}),
        "locked": sorted(set(locked)),
        "metrics": plan.report["metrics"],
        "seconds": round(time.perf_counter() - t0, 3),
    }
    # the plan carries its retired codes, so whoever saves it keeps them retired
    plan.report["metrics"]["retired_codes"] = report["retired_codes"]
    plan.report.update(
        {
            "params": {
                "min_households": band.min,
                "max_households": band.max,
                "locked": sorted(set(locked)),
                "weight": weight,
                "seed": seed,
            },
            "rebalance": {k: v for k, v in report.items() if k != "metrics"},
            "seconds": report["seconds"],
        }
    )
    return Rebalanced(plan=plan, changes=changes, report=report)


#: rings of neighbouring grids around the grids out of band that a rebalance
#: works in first (every grid only when these cannot settle it)
_RINGS = 2


@dataclass(frozen=True)
class _State:
    """Each grid of the old plan under the new households (arrays by grid position)."""

    loads: np.ndarray  # load of the households now inside each grid
    locked: np.ndarray  # locked by the planner
    accepted: np.ndarray  # out of band in the old plan and unchanged: kept as it was
    dirty: np.ndarray  # out of band now (and neither locked nor accepted)
    lower_bound: float  # households that must move at least

    @classmethod
    def of(
        cls,
        g: gpd.GeoDataFrame,
        pos: np.ndarray,
        loads: np.ndarray,
        was_here: np.ndarray,
        before: np.ndarray,
        band: Band,
        *,
        locked: set[str],
    ) -> _State:
        """``before``: households of each grid in the old plan."""
        codes = g["grid_code"].astype(str).to_numpy(dtype=object)
        n = len(codes)
        count = np.bincount(pos, minlength=n)
        load = np.bincount(pos, weights=loads, minlength=n)
        kept = np.bincount(pos, weights=was_here.astype(float), minlength=n)
        is_locked = np.fromiter((c in locked for c in codes), dtype=bool, count=n)

        def in_band(v: np.ndarray) -> np.ndarray:
            return (v >= band.min - 1e-9) & (v <= band.max + 1e-9)

        # grids already out of band in the previous plan whose households did not
        # change keep their accepted exception: rebalancing answers changes, it
        # does not redraw
        accepted = ~is_locked & ~in_band(before) & (count == before) & (kept == count)
        free = ~is_locked & ~accepted
        gap = np.maximum(load - band.max, 0.0) + np.maximum(band.min - load, 0.0)
        return cls(
            loads=load,
            locked=is_locked,
            accepted=accepted,
            dirty=free & ~in_band(load),
            lower_bound=float(gap[free].sum()),
        )


def _region(g: gpd.GeoDataFrame, dirty: np.ndarray, rings: int) -> np.ndarray:
    """Positions of the grids out of band and of ``rings`` rings of grids around them."""
    taken = dirty.copy()
    frontier = np.flatnonzero(dirty)
    geoms = np.asarray(g.geometry.values, dtype=object)
    for _ in range(rings):
        if not len(frontier):
            break
        _, near = g.sindex.query(
            geoms[frontier], predicate="dwithin", distance=_EDGE_TOL
        )
        near = np.unique(near)
        frontier = near[~taken[near]]
        taken[frontier] = True
    return np.flatnonzero(taken)


def _oversize(
    hh: gpd.GeoDataFrame,
    pos: np.ndarray,
    loads: np.ndarray,
    band: Band,
    codes: list[str],
) -> list[dict[str, Any]]:
    """The ``building_split`` exceptions of the whole plan (buildings, or points,
    holding more than ``band.max`` in one grid), as :func:`_atoms` reports them."""
    xy = shapely.get_coordinates(np.asarray(hh.geometry.values, dtype=object))
    if "building_id" in hh.columns:
        b = pd.factorize(hh["building_id"])[0]
    else:
        b = np.full(len(hh), -1)
    # households without a building stay together by point (rounded as _atoms does)
    no_b = np.flatnonzero(b < 0)
    if len(no_b):
        at = xy[no_b, 0].round(7) + 1j * xy[no_b, 1].round(7)
        b[no_b] = int(b.max(initial=-1)) + 1 + pd.factorize(at)[0]
    group = pd.factorize(b.astype(np.int64) * (int(pos.max(initial=0)) + 1) + pos)[0]
    over = np.bincount(group, weights=loads)[group] > band.max
    if not over.any():
        return []
    sel = np.flatnonzero(over)
    _, exceptions = _atoms(hh.iloc[sel], pos[sel], loads[sel], band, codes)
    return exceptions


@dataclass
class _Run:
    """What one pass of the rebalancing steps left: the grids (those of the scope,
    changed, then the others as they were), atoms, causes and logs."""

    cells: list[_Grid]
    atoms: list[_Atom]
    causes: dict[str, tuple[str, dict[str, Any]]]
    split_log: list[dict[str, Any]]
    merge_log: list[dict[str, Any]]
    recut_log: list[dict[str, Any]]
    settled: bool


def _run(
    g: gpd.GeoDataFrame,
    hh: gpd.GeoDataFrame,
    pos: np.ndarray,
    loads: np.ndarray,
    band: Band,
    state: _State,
    *,
    scope: np.ndarray | None,
    was_here: np.ndarray,
    retired_codes: tuple[str, ...] | list[str],
) -> _Run:
    """The rebalancing steps on the grids at ``scope`` (every grid when None); the
    other grids keep their polygon and households, each as one block."""
    codes = g["grid_code"].astype(str).tolist()
    n = len(codes)
    inside = np.ones(n, dtype=bool)
    if scope is not None:
        inside[:] = False
        inside[scope] = True
    sel = np.flatnonzero(inside[pos])
    sub = hh if len(sel) == len(hh) else hh.iloc[sel]
    atoms, _ = _atoms(sub, pos[sel], loads[sel], band, codes)
    n_scope = len(atoms)
    if len(sel) != len(hh):
        for a in atoms:  # members as positions in ``hh``
            a.members = sel[a.members]
    area_codes = g["area_code"].astype(str).tolist()
    covered = g["areas"].tolist() if "areas" in g.columns else [None] * n
    geoms = list(g.geometry.values)
    cells = [
        _Grid(
            code=codes[i],
            area_code=area_codes[i],
            geom=geoms[i],
            atoms=[],
            locked=bool(state.locked[i] or state.accepted[i]),
            accepted=bool(state.accepted[i]),
            areas=frozenset(
                str(covered[i]).split(";")
                if isinstance(covered[i], str)
                else [area_codes[i]]
            ),
        )
        for i in range(n)
    ]
    for a_i, a in enumerate(atoms):
        cells[int(pos[a.members[0]])].atoms.append(a_i)
    # households of each atom that were already in its grid (one bincount)
    sizes = np.fromiter(
        (len(a.members) for a in atoms), dtype=np.int64, count=len(atoms)
    )
    atom_of = np.repeat(np.arange(len(atoms)), sizes)
    members = np.concatenate([a.members for a in atoms]) if atoms else np.array([], int)
    stay = np.bincount(
        atom_of, weights=was_here[members].astype(float), minlength=len(atoms)
    )
    # the grids outside the scope: one block of households each, never changed
    order = np.argsort(pos, kind="stable")
    bounds = np.searchsorted(pos[order], np.arange(n + 1))
    for i in np.flatnonzero(~inside).tolist():
        block = order[bounds[i] : bounds[i + 1]]
        if len(block):
            atoms.append(_Atom(0.0, 0.0, float(state.loads[i]), len(block), block))
            cells[i].atoms.append(len(atoms) - 1)
        cells[i].locked = True
    work = [cells[i] for i in np.flatnonzero(inside).tolist()]
    used = set(codes) | {str(c) for c in retired_codes}
    split_log: list[dict[str, Any]] = []
    merge_log: list[dict[str, Any]] = []
    recut_log: list[dict[str, Any]] = []
    # each atom of the scope (they come first) and the grid it was in
    first = np.fromiter((a.members[0] for a in atoms[:n_scope]), np.int64, n_scope)
    origin_of = dict(
        zip(
            range(n_scope),
            np.asarray(codes, dtype=object)[pos[first]].tolist(),
            strict=True,
        )
    )
    parts0 = {c: len(shapely.get_parts(gm)) for c, gm in zip(codes, geoms, strict=True)}
    causes = _steps_on(
        work,
        atoms,
        band,
        stay,
        used=used,
        logs=(split_log, merge_log, recut_log),
        origin_of=origin_of,
        parts0=parts0,
    )
    settled = not causes and not any(
        not c.locked and (not band.contains(_load(c, atoms)) or _broken(c, parts0))
        for c in work
    )
    # the grids in their first order (those of the scope that are left, and the
    # others), then the new ones: as a run over every grid would list them
    live = {id(c) for c in work}
    final = [c for i, c in enumerate(cells) if id(c) in live or not inside[i]]
    final += [c for c in work if c.origin is not None]
    return _Run(
        cells=final,
        atoms=atoms,
        causes=causes,
        split_log=split_log,
        merge_log=merge_log,
        recut_log=recut_log,
        settled=settled,
    )


def _load(c: _Grid, atoms: list[_Atom]) -> float:
    return float(sum(atoms[a].load for a in c.atoms))


def _broken(x: _Grid, parts0: dict[str, int]) -> bool:
    """A grid this run changed that is now invalid or in more pieces than before."""
    return x.touched and (
        not x.geom.is_valid
        or len(shapely.get_parts(x.geom)) > max(1, parts0.get(x.code, 1))
    )


def _steps_on(
    cells: list[_Grid],
    atoms: list[_Atom],
    band: Band,
    stay: np.ndarray,
    *,
    used: set[str],
    logs: tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]],
    origin_of: dict[int, str],
    parts0: dict[str, int],
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Flows, splits, merges and window re-cuts on ``cells`` (in place); the cause
    of each grid still out of band."""
    split_log, merge_log, recut_log = logs

    def load(c: _Grid) -> float:
        return _load(c, atoms)

    # 0. grids whose surplus no flow can place, or only along chains that would
    #    move more households than a split, are split first (flows that spread
    #    their surplus into full neighbours would only be undone by the split)
    for c, alone in _split_first(cells, atoms, band):
        if alone:
            _split_grid(c, cells, atoms, band, stay, used=used, log=split_log)
        else:
            _recut_with_neighbour(c, cells, atoms, band, used, split_log)
    # 1. flows: surplus and deficits move across shared edges within an area,
    #    to a neighbour with room or along a short chain of neighbours
    _flow(cells, atoms, band)
    _chain_flow(cells, atoms, band)
    # 2. grids still too full: split, or re-cut with a neighbour into one more grid
    for c in list(cells):
        if c.locked or load(c) <= band.max + 1e-9:
            continue
        _split_grid(c, cells, atoms, band, stay, used=used, log=split_log)
        # a surplus its neighbours have room for (but no whole building on the
        # edge fits) is left to the window re-cut of step 4, which keeps most
        # households in place; re-cutting two grids into three would move more
        loads = {id(x): load(x) for x in cells}
        if load(c) > band.max + 1e-9 and _room(c, cells, loads, band)[0] == math.inf:
            _recut_with_neighbour(c, cells, atoms, band, used, split_log)
    # 3. grids still too small: merge with a neighbour
    for c in sorted(cells, key=load):
        if c.locked or c not in cells or load(c) >= band.min - 1e-9:
            continue
        _merge_grid(c, cells, atoms, band, merge_log)
    _flow(cells, atoms, band)
    # 4. still out of band, newly in pieces or invalid: re-cut growing windows of
    #    adjacent unlocked grids on the building graph, keeping households in place
    return _recut_windows(
        cells, atoms, band, origin_of, parts0, used=used, log=recut_log, cap_s=_cap()
    )


def _removed(old: pd.Series, prev: np.ndarray) -> int:
    """Households of the old plan that are no longer there (``prev``: the old grid
    of each household now, missing for new ones)."""
    return int(old.index.nunique() - (~pd.isna(prev)).sum())


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
    loads = {id(c): float(sum(atoms[a].load for a in c.atoms)) for c in cells}
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
    total = float(sum(atoms[a].load for a in c.atoms))
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
        return float(sum(atoms[a].load for a in x.atoms))

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
        return float(sum(atoms[a].load for a in x.atoms))

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


def _assemble(
    cells: list[_Grid],
    atoms: list[_Atom],
    hh: gpd.GeoDataFrame,
    prev: np.ndarray,
    natural_code: np.ndarray,
    band: Band,
    *,
    exceptions: list[dict[str, Any]],
    causes: dict[str, tuple[str, dict[str, Any]]] | None = None,
) -> tuple[GridPlan, pd.DataFrame, dict[str, int]]:
    ids = hh["household_id"].to_numpy()
    rows = []
    grid_of = np.empty(len(hh), dtype=object)
    for c in cells:
        members = (
            np.concatenate([atoms[a].members for a in c.atoms])
            if c.atoms
            else np.array([], dtype=np.int64)
        )
        grid_of[members] = c.code
        ld = float(sum(atoms[a].load for a in c.atoms))
        reason = None
        if not band.min - 1e-9 <= ld <= band.max + 1e-9:
            reason = (
                f"{ld:g} households, already out of band in the previous plan and "
                "unchanged (kept as it was)"
                if c.accepted
                else "locked by the planner"
                if c.locked
                else f"{ld:g} households: no neighbour in {c.area_code} could give or take "
                f"enough to reach {band.min:g}–{band.max:g}"
            )
            exc: dict[str, Any] = {
                "area_code": c.area_code,
                "grid_code": c.code,
                "kind": "out_of_band",
                "reason": reason,
                "households": len(members),
            }
            cause = _cause(c, ld, causes or {})
            if cause is not None:
                exc["cause"], exc["check"] = cause
                if cause[0] == "search_timed_out":
                    exc["reason"] = (
                        f"{ld:g} households: the search for an in-band re-cut of this "
                        f"grid and its neighbours hit its cap of {cause[1]['cap_steps']:,} "
                        f"steps (or {cause[1]['cap_s']:g} s)"
                    )
            exceptions.append(exc)
        geom = c.geom
        if not geom.is_valid:  # never hand on an invalid polygon
            geom = _poly_only(shapely.make_valid(geom))
        geom = shapely.MultiPolygon([geom]) if geom.geom_type == "Polygon" else geom
        n_parts = len(shapely.get_parts(geom))
        if n_parts > 1:
            exceptions.append(
                {
                    "area_code": c.area_code,
                    "grid_code": c.code,
                    "kind": "not_contiguous",
                    "reason": f"grid has {n_parts} separate parts"
                    + (" (unchanged from the previous plan)" if not c.touched else ""),
                    "households": len(members),
                }
            )
        rows.append(
            {
                "grid_code": c.code,
                "area_code": c.area_code,
                "households": len(members),
                "load": ld,
                "areas": c.area_code,
                "exception": reason,
                "parts": len(shapely.get_parts(geom)),
                "geometry": geom,
            }
        )
    grids = gpd.GeoDataFrame(rows, geometry="geometry", crs=STORAGE_CRS)
    grids = grids.sort_values("grid_code", kind="stable").reset_index(drop=True)
    assignments = pd.DataFrame({"household_id": ids, "grid_code": grid_of})
    new = pd.isna(prev)
    changed = new | (prev != grid_of)
    changes = pd.DataFrame(
        {
            "household_id": ids[changed],
            "old_grid_code": np.where(new, "", prev)[changed],
            "new_grid_code": grid_of[changed],
        }
    )
    moved = int((natural_code != grid_of).sum())
    stats = {"moved": moved, "new": int(new.sum())}
    metrics = plan_metrics(grids, min_households=band.min, max_households=band.max)
    plan = GridPlan(
        grids=grids,
        assignments=assignments,
        report={"metrics": metrics, "exceptions": exceptions},
    )
    return plan, changes, stats


def _cause(
    c: _Grid, load: float, causes: dict[str, tuple[str, dict[str, Any]]]
) -> tuple[str, dict[str, Any]] | None:
    """The proven cause of an out-of-band grid (``cause``, ``check``), or None for a
    grid kept out of band from the previous plan (its cause is that plan's)."""
    if c.accepted:
        return None
    if c.locked:
        return "locked", {"grid_code": c.code, "households": load}
    return causes.get(c.code, (UNRESOLVED, {"households": load}))


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
