"""Rebalancing a plan as housing changes, moving as few households as possible."""

from __future__ import annotations

import math
import operator
import time
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

from geo.crs import STORAGE_CRS
from geo.gridding import _cpsat
from geo.gridding._adjacency import _stranded_reason
from geo.gridding._atoms import _Atom, _atoms, _load_sum
from geo.gridding._codes import _id_rows, _natural, _positions
from geo.gridding._fork import collector_paused
from geo.gridding._geometry import _repaired
from geo.gridding._moves import (
    _EDGE_TOL,
    _chain_flow,
    _flow,
    _Grid,
    _step_memos,
)
from geo.gridding._rebalance_steps import (
    _merge_grid,
    _recut_with_neighbour,
    _room,
    _split_first,
    _split_grid,
)
from geo.gridding._recut import _cap
from geo.gridding._windows import _broken, _load, _recut_windows
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


@collector_paused()
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
    # each household's row in the old assignments (and whether two households
    # share an identifier) in one hash pass, when both are Arrow strings
    try:
        rows, old_ids = _id_rows(
            households["household_id"], assignments["household_id"]
        )
    except (TypeError, KeyError):
        rows, old_ids = None, -1
    if rows is None and households["household_id"].duplicated().any():
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

    # each household's row in the old assignments, its old grid code (as a
    # position in ``old_codes``; -1: none, a new household) and grid position
    if rows is None:
        row = _positions(hh["household_id"], old.index)
        old_ids = int(old.index.nunique())
    else:
        row = rows
    known = row >= 0
    grid_of_row, old_codes = pd.factorize(old)
    prev = np.where(known, grid_of_row[np.maximum(row, 0)] if len(old) else -1, -1)
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
        with _cpsat._budget_of(_cpsat.CPSAT_REBALANCE_DET_TIME):
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
        cells,
        (atoms, run.atom_of),
        hh,
        (prev, list(old_codes)),
        (pos, codes),
        band,
        exceptions=exceptions,
        causes=causes,
    )
    retired = sorted(set(codes) - set(plan.grids["grid_code"]))
    report = {
        "moved_households": stats["moved"],
        "new_households": stats["new"],
        "removed_households": old_ids - int((prev >= 0).sum()),
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
        # change keep their accepted exception (rebalancing answers changes, it
        # does not redraw), as long as no grid of their area(s) changed: its cause
        # was one of the area's households, and a grid that changed beside it may
        # now need it (or make it fit)
        same = (count == before) & (kept == count)
        accepted = ~is_locked & ~in_band(before) & same
        if accepted.any() and not same.all():
            areas_of = _areas_of(g)
            changed = set().union(*(areas_of[i] for i in np.flatnonzero(~same)))
            for i in np.flatnonzero(accepted).tolist():
                if areas_of[i] & changed:
                    accepted[i] = False
        free = ~is_locked & ~accepted
        gap = np.maximum(load - band.max, 0.0) + np.maximum(band.min - load, 0.0)
        return cls(
            loads=load,
            locked=is_locked,
            accepted=accepted,
            dirty=free & ~in_band(load),
            lower_bound=float(gap[free].sum()),
        )


def _areas_of(g: gpd.GeoDataFrame) -> list[frozenset[str]]:
    """The leaf areas each grid covers (its ``areas``, else its ``area_code``)."""
    codes = g["area_code"].astype(str).tolist()
    covered = g["areas"].tolist() if "areas" in g.columns else [None] * len(g)
    return [
        frozenset(a.split(";")) if isinstance(a, str) else frozenset([codes[i]])
        for i, a in enumerate(covered)
    ]


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
    pts = np.asarray(hh.geometry.values, dtype=object)
    if "building_id" in hh.columns:
        b = pd.factorize(hh["building_id"])[0]
    else:
        b = np.full(len(hh), -1)
    # the coordinates of the households without a building (the others are
    # grouped by building); every household's where a point is missing or empty
    no_b = np.flatnonzero(b < 0)
    xy = np.zeros((len(hh), 2))
    at = shapely.get_coordinates(pts[no_b])
    if len(at) == len(no_b):
        xy[no_b] = at
    else:
        xy = shapely.get_coordinates(pts)
    sel = np.arange(len(hh))
    if len(hh) and len(xy) == len(hh) and bool((loads >= 0).all()):
        # a first sieve: households hashed by (building or point, grid) into
        # buckets; a building over the band is in a bucket over it (loads are not
        # negative), so only the households of such buckets are grouped exactly
        sel = _heavy_buckets(b, xy, pos, loads, band.max)
        if not len(sel):
            return []
    return _oversize_of(
        hh,
        sel,
        b_all=b,
        xy_all=xy,
        pos_all=pos,
        loads_all=loads,
        band=band,
        codes=codes,
    )


def _heavy_buckets(
    b: np.ndarray, xy: np.ndarray, pos: np.ndarray, loads: np.ndarray, cap: float
) -> np.ndarray:
    """Positions of the households whose bucket (a hash of their building, or of
    their point rounded as :func:`_atoms` rounds it, and of their grid) holds more
    than ``cap``: every building (or point) over ``cap`` in one grid is among them."""
    with np.errstate(over="ignore"):
        # the rounded coordinates' bits (+ 0.0: -0.0 and 0.0 are one point)
        kx = (xy[:, 0].round(7) + 0.0).view(np.uint64)
        ky = (xy[:, 1].round(7) + 0.0).view(np.uint64)
        key = np.where(
            b >= 0,
            b.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15),
            (kx * np.uint64(0xC2B2AE3D27D4EB4F)) ^ (ky * np.uint64(0x165667B19E3779F9)),
        )
        key = (
            key ^ (pos.astype(np.uint64) * np.uint64(0xD6E8FEB86659FD93))
        ) * np.uint64(0xFF51AFD7ED558CCD)
    bucket = (key >> np.uint64(48)).astype(np.int64)  # 2**16 buckets
    heavy = np.bincount(bucket, weights=loads, minlength=1 << 16) > cap
    return np.flatnonzero(heavy[bucket])


def _oversize_of(
    hh: gpd.GeoDataFrame,
    sel: np.ndarray,
    *,
    b_all: np.ndarray,
    xy_all: np.ndarray,
    pos_all: np.ndarray,
    loads_all: np.ndarray,
    band: Band,
    codes: list[str],
) -> list[dict[str, Any]]:
    """:func:`_oversize` on the households at ``sel`` (whole buildings and points)."""
    b, xy, pos, loads = b_all[sel].copy(), xy_all[sel], pos_all[sel], loads_all[sel]
    # households without a building stay together by point (rounded as _atoms does)
    no_b = np.flatnonzero(b < 0)
    if len(no_b):
        at = xy[no_b, 0].round(7) + 1j * xy[no_b, 1].round(7)
        b[no_b] = int(b.max(initial=-1)) + 1 + pd.factorize(at)[0]
    group = pd.factorize(b.astype(np.int64) * (int(pos.max(initial=0)) + 1) + pos)[0]
    over = np.bincount(group, weights=loads)[group] > band.max
    if not over.any():
        return []
    sel = sel[np.flatnonzero(over)]
    _, exceptions = _atoms(hh.iloc[sel], pos_all[sel], loads_all[sel], band, codes)
    return exceptions


_MEMBERS = operator.attrgetter("members")
_COUNT = operator.attrgetter("count")
_FIRST = operator.itemgetter(0)


@dataclass
class _Run:
    """What one pass of the rebalancing steps left: the grids (those of the scope,
    changed, then the others as they were), atoms, causes and logs."""

    cells: list[_Grid]
    atoms: list[_Atom]
    atom_of: np.ndarray  # each household's atom
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
    whole = len(sel) == len(hh)
    sub = hh if whole else hh.iloc[sel]
    # members as positions in ``hh``
    atoms, _ = _atoms(
        sub, pos[sel], loads[sel], band, codes, rows=None if whole else sel
    )
    n_scope = len(atoms)
    area_codes = g["area_code"].astype(str).tolist()
    covered = _areas_of(g)
    kept_causes = [
        c if isinstance(c, str) and c and c != "locked" else None
        for c in (g["cause"] if "cause" in g.columns else [None] * n)
    ]
    geoms = list(g.geometry.values)
    cells = [
        _Grid(
            code=codes[i],
            area_code=area_codes[i],
            geom=geoms[i],
            atoms=[],
            locked=bool(state.locked[i] or state.accepted[i]),
            accepted=bool(state.accepted[i]),
            kept_cause=kept_causes[i] if state.accepted[i] else None,
            areas=covered[i],
        )
        for i in range(n)
    ]
    # each atom in the grid of its first household, in the order of the atoms
    held = list(map(_MEMBERS, atoms))
    first = np.fromiter(map(_FIRST, held), np.int64, n_scope)
    cell_of = pos[first]
    by_cell = np.argsort(cell_of, kind="stable")
    ends = np.searchsorted(cell_of[by_cell], np.arange(n + 1))
    for i in np.unique(cell_of).tolist():
        cells[i].atoms = by_cell[ends[i] : ends[i + 1]].tolist()
    # households of each atom that were already in its grid (one bincount)
    sizes = np.fromiter(map(len, held), dtype=np.int64, count=n_scope)
    atom_of = np.repeat(np.arange(n_scope), sizes)
    members = np.concatenate(held) if atoms else np.array([], int)
    stay = np.bincount(
        atom_of, weights=was_here[members].astype(float), minlength=len(atoms)
    )
    # the grids outside the scope: one block of households each, never changed
    order = np.argsort(pos, kind="stable")
    bounds = np.searchsorted(pos[order], np.arange(n + 1))
    # each household's atom (for the plan's assignments)
    atom_of_hh = np.full(len(hh), -1, dtype=np.int64)
    atom_of_hh[members] = atom_of
    block_of = np.full(n, -1, dtype=np.int64)
    for i in np.flatnonzero(~inside).tolist():
        block = order[bounds[i] : bounds[i + 1]]
        if len(block):
            atoms.append(_Atom(0.0, 0.0, float(state.loads[i]), len(block), block))
            cells[i].atoms.append(len(atoms) - 1)
            block_of[i] = len(atoms) - 1
        cells[i].locked = True
    outside = np.flatnonzero(~inside[pos])
    atom_of_hh[outside] = block_of[pos[outside]]
    work = [cells[i] for i in np.flatnonzero(inside).tolist()]
    used = set(codes) | {str(c) for c in retired_codes}
    split_log: list[dict[str, Any]] = []
    merge_log: list[dict[str, Any]] = []
    recut_log: list[dict[str, Any]] = []
    # each atom of the scope (they come first) and the grid it was in
    origin_of = dict(
        zip(
            range(n_scope),
            np.asarray(codes, dtype=object)[cell_of].tolist(),
            strict=True,
        )
    )
    n_parts = shapely.get_num_geometries(np.asarray(geoms, dtype=object)).tolist()
    parts0 = dict(zip(codes, n_parts, strict=True))
    with _step_memos():
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
        atom_of=atom_of_hh,
        causes=causes,
        split_log=split_log,
        merge_log=merge_log,
        recut_log=recut_log,
        settled=settled,
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
    _chain_flow(cells, atoms, band)
    # 4. still out of band, newly in pieces or invalid: re-cut growing windows of
    #    adjacent unlocked grids on the building graph, keeping households in place
    return _recut_windows(
        cells, atoms, band, origin_of, parts0, used=used, log=recut_log, cap_s=_cap()
    )


def _assemble(
    cells: list[_Grid],
    held: tuple[list[_Atom], np.ndarray],
    hh: gpd.GeoDataFrame,
    before: tuple[np.ndarray, list[str]],
    natural: tuple[np.ndarray, list[str]],
    band: Band,
    *,
    exceptions: list[dict[str, Any]],
    causes: dict[str, tuple[str, dict[str, Any]]] | None = None,
) -> tuple[GridPlan, pd.DataFrame, dict[str, int]]:
    """The new plan, its changes and counts. ``before``: each household's old grid
    code as a position in the old codes (-1: new); ``natural``: its natural grid
    as a position in the plan's grids, and their codes. Codes are compared as
    numbers (one number per code, old or new), not as strings; ``held``: the
    atoms and each household's atom."""
    atoms, atom_of = held
    prev, old_codes = before
    pos, codes = natural
    uid = {c: i for i, c in enumerate(old_codes)}
    for name in [c.code for c in cells] + list(codes):
        uid.setdefault(name, len(uid))
    names = list(uid)
    rows = []
    # each household's grid: that of its atom
    atom_grid = np.full(len(atoms) + 1, -1, dtype=np.int64)  # (the last: no atom)
    for c in cells:
        atom_grid[c.atoms] = uid[c.code]
    grid_of = atom_grid[atom_of]
    for c in cells:
        n_members = sum(map(_COUNT, map(atoms.__getitem__, c.atoms)))
        ld = float(_load_sum(atoms, c.atoms))
        reason = None
        named: str | None = None
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
                "households": n_members,
            }
            cause = _cause(c, ld, causes or {})
            if cause is not None:
                exc["cause"], exc["check"] = cause
                named = cause[0]
                exc["reason"] = reason = _reason(c, ld, cause, band) or reason
            exceptions.append(exc)
        geom = c.geom
        if not geom.is_valid:  # never hand on an invalid polygon
            geom = _repaired(geom)
        geom = shapely.MultiPolygon([geom]) if geom.geom_type == "Polygon" else geom
        n_parts = int(shapely.get_num_geometries(geom))
        if n_parts > 1:
            exceptions.append(
                {
                    "area_code": c.area_code,
                    "grid_code": c.code,
                    "kind": "not_contiguous",
                    "reason": f"grid has {n_parts} separate parts"
                    + (" (unchanged from the previous plan)" if not c.touched else ""),
                    "households": n_members,
                }
            )
        rows.append(
            {
                "grid_code": c.code,
                "area_code": c.area_code,
                "households": n_members,
                "load": ld,
                "areas": c.area_code,
                "exception": reason,
                "cause": named,
                "parts": n_parts,
                "geometry": geom,
            }
        )
    grids = gpd.GeoDataFrame(rows, geometry="geometry", crs=STORAGE_CRS)
    grids = grids.sort_values("grid_code", kind="stable").reset_index(drop=True)
    # (an object array of None for a household in no grid, which cannot happen)
    label = np.asarray([*names, None], dtype=object)
    ids = hh["household_id"]
    grid_col: Any = label[grid_of]
    if (grid_of >= 0).all() and isinstance(ids.dtype, pd.StringDtype):
        grid_col = pd.array(
            pa.array(names, type=pa.large_string()).take(pa.array(grid_of)),
            dtype=ids.dtype,
        )
    assignments = pd.DataFrame({"household_id": ids.array, "grid_code": grid_col})
    new = prev < 0
    changed = np.flatnonzero(new | (prev != grid_of))
    was = np.asarray([*old_codes, ""], dtype=object)
    changes = pd.DataFrame(
        {
            "household_id": ids.iloc[changed].to_numpy(),
            "old_grid_code": was[prev[changed]],
            "new_grid_code": label[grid_of[changed]],
        }
    )
    natural_id = np.asarray([uid[c] for c in codes], dtype=np.int64)
    moved = int((natural_id[pos] != grid_of).sum())
    stats = {"moved": moved, "new": int(new.sum())}
    metrics = plan_metrics(grids, min_households=band.min, max_households=band.max)
    plan = GridPlan(
        grids=grids,
        assignments=assignments,
        report={"metrics": metrics, "exceptions": exceptions},
    )
    return plan, changes, stats


def _reason(
    c: _Grid, load: float, cause: tuple[str, dict[str, Any]], band: Band
) -> str | None:
    """The exception text of an out-of-band grid, saying what its cause's check
    shows (None: keep the generic text)."""
    name, check = cause
    if check.get("kept_from_previous_plan"):
        return (
            f"{load:g} households, already out of band in the previous plan and "
            f"unchanged (kept as it was; its cause there, {name}, still holds)"
        )
    grids = len(check.get("window", [])) or 1
    if name == "search_timed_out":
        return (
            f"{load:g} households: the search for an in-band re-cut of this grid "
            f"and the {grids} grid(s) of {c.area_code} it can exchange households "
            f"with hit its cap of {check['cap_steps']:,} steps (or "
            f"{check['cap_s']:g} s) and {check.get('cap_trees', 0):,} random spanning "
            f"trees per graph ({check.get('trees', 0):,} drawn), none of which could "
            "be cut in band, and its exact search at its cap of "
            f"{check.get('cap_exact_steps', 0):,} connected groups per graph"
            + (
                ", and its integer model (CP-SAT) at its cap of "
                f"{check['cap_cpsat_det_time']:g} deterministic seconds"
                if "cap_cpsat_det_time" in check
                else ""
            )
            + " (one may exist)"
        )
    if name == "no_in_band_split" or (name == "locked" and "groups_tried" in check):
        return (
            f"{load:g} households: the {check['buildings']:,} buildings of the "
            f"{grids} grid(s) of {c.area_code} it can exchange households with "
            f"cannot be split into groups of {band.min:g}–{band.max:g} households, "
            "however they are grouped: an exhaustive search tried every grouping "
            f"({check['groups_tried']:,} groups)"
            + (
                f"; locked grids beside them: {', '.join(check['locked'])}"
                if name == "locked"
                else ""
            )
        )
    if name in ("no_connected_split", "locked") and "stranded" in check:
        text = _stranded_reason(
            load,
            f"the {grids} grid(s) of {c.area_code} it can exchange households with",
            check,
            band,
        )
        return (
            text
            if name != "locked"
            else (f"{text}; locked grids beside them: {', '.join(check['locked'])}")
        )
    if name == "no_connected_split" or (name == "locked" and "grid_counts" in check):
        return (
            f"{load:g} households: the {check['buildings']:,} buildings of the "
            f"{grids} grid(s) of {c.area_code} it can exchange households with "
            f"cannot be split into connected grids of {band.min:g}–{band.max:g} "
            "households on their adjacency graph, nor with empty cells along the "
            f"boundary to reach round by: {check['solver']} proved it for every "
            "count of grids their total allows "
            f"({', '.join(map(str, check['grid_counts']))})"
            + (
                f"; locked grids beside them: {', '.join(check['locked'])}"
                if name == "locked"
                else ""
            )
        )
    if name == "infeasible_total":
        return (
            f"{load:g} households: the {grids} grid(s) of {c.area_code} it can "
            f"exchange households with hold {check['load']:g} together, which no "
            f"whole number of grids of {band.min:g}–{band.max:g} holds"
        )
    if name == "locked" and "locked" in check:
        return (
            f"{load:g} households: the {grids} unlocked grid(s) of {c.area_code} "
            f"it can exchange households with hold {check['load']:g} together, "
            f"which no whole number of grids of {band.min:g}–{band.max:g} holds; "
            f"locked grids beside them: {', '.join(check['locked'])}"
        )
    if name == "no_in_band_grouping":
        return (
            f"{load:g} households: it holds a building (of "
            f"{'/'.join(f'{v:g}' for v in check['building_loads'])} households) that "
            f"no set of whole buildings of the {grids} grid(s) it can exchange "
            f"households with totals {band.min:g}–{band.max:g} with"
        )
    if name == UNRESOLVED:
        return (
            f"{load:g} households: the rebalancing methods found no in-band re-cut "
            f"of this grid and its neighbours in {c.area_code} (one may exist)"
        )
    return None


def _cause(
    c: _Grid, load: float, causes: dict[str, tuple[str, dict[str, Any]]]
) -> tuple[str, dict[str, Any]] | None:
    """The proven cause of an out-of-band grid (``cause``, ``check``). A grid kept
    out of band from the previous plan keeps that plan's cause (its area and its
    households are as they were, so what was proven of them still holds), or has
    none if that plan named none."""
    if c.accepted:
        if c.kept_cause is None:
            return None
        return c.kept_cause, {"households": load, "kept_from_previous_plan": True}
    if c.locked:
        return "locked", {"grid_code": c.code, "households": load}
    return causes.get(c.code, (UNRESOLVED, {"households": load}))
