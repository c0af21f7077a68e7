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
from geo.gridding._atoms import _Atom, _atoms, _grid_count, _Unit
from geo.gridding._codes import _natural, _next_code
from geo.gridding._cuts import _partition
from geo.gridding._geometry import _ANGLES, _halfplane, _overlay, _poly_only, _union
from geo.gridding._moves import _chain_flow, _flow, _Grid, _neighbours
from geo.gridding.metrics import plan_metrics
from geo.plan import GridPlan

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
    lo, hi = float(min_households), float(max_households)
    tgt = (lo + hi) / 2
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

    pos = _natural(g, hh, old)
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
    atoms, exceptions = _atoms(hh, pos, loads, hi, codes)
    locked_set = set(locked)
    area_codes = g["area_code"].astype(str).tolist()
    covered = g["areas"].tolist() if "areas" in g.columns else [None] * len(g)
    geoms = list(g.geometry.values)
    cells = [
        _Grid(
            code=codes[i],
            area_code=area_codes[i],
            geom=geoms[i],
            atoms=[],
            locked=codes[i] in locked_set,
            areas=frozenset(
                str(covered[i]).split(";")
                if isinstance(covered[i], str)
                else [area_codes[i]]
            ),
        )
        for i in range(len(g))
    ]
    for a_i, a in enumerate(atoms):
        cells[int(pos[a.members[0]])].atoms.append(a_i)
    natural_code = np.array(codes, dtype=object)[pos]
    was_here = hh["household_id"].map(old).to_numpy() == natural_code
    # households of each atom that were already in its grid (one bincount)
    sizes = np.fromiter(
        (len(a.members) for a in atoms), dtype=np.int64, count=len(atoms)
    )
    atom_of = np.repeat(np.arange(len(atoms)), sizes)
    members = np.concatenate([a.members for a in atoms]) if atoms else np.array([], int)
    stay = np.bincount(
        atom_of, weights=was_here[members].astype(float), minlength=len(atoms)
    )
    used = set(codes) | {str(c) for c in retired_codes}
    split_log: list[dict[str, Any]] = []
    merge_log: list[dict[str, Any]] = []

    def load(c: _Grid) -> float:
        return float(sum(atoms[a].load for a in c.atoms))

    # grids already out of band in the previous plan whose households did not change
    # keep their accepted exception: rebalancing answers changes, it does not redraw
    prev_members = old.value_counts()
    for c in cells:
        n_now = sum(len(atoms[a].members) for a in c.atoms)
        n_before = int(prev_members.get(c.code, 0))
        kept = sum(stay[a] for a in c.atoms)
        if (
            not c.locked
            and not lo - 1e-9 <= n_before <= hi + 1e-9
            and n_now == n_before == kept
        ):
            c.locked = c.accepted = True

    lower_bound = float(
        sum(
            max(0.0, load(c) - hi) + max(0.0, lo - load(c))
            for c in cells
            if not c.locked
        )
    )

    # 1. flows: surplus and deficits move across shared edges within an area,
    #    to a neighbour with room or along a short chain of neighbours
    _flow(cells, atoms, lo, hi)
    _chain_flow(cells, atoms, lo, hi)
    # 2. grids still too full: split, or re-cut with a neighbour into one more grid
    for c in list(cells):
        if c.locked or load(c) <= hi + 1e-9:
            continue
        _split_grid(c, cells, atoms, lo, hi, tgt, stay, used, split_log)
        if load(c) > hi + 1e-9:
            _recut_with_neighbour(c, cells, atoms, lo, hi, tgt, used, split_log)
    # 3. grids still too small: merge with a neighbour
    for c in sorted(cells, key=load):
        if c.locked or c not in cells or load(c) >= lo - 1e-9:
            continue
        _merge_grid(c, cells, atoms, lo, hi, merge_log)
    _flow(cells, atoms, lo, hi)

    plan, changes, stats = _assemble(
        cells, atoms, hh, old, natural_code, lo, hi, exceptions
    )
    retired = sorted(set(codes) - set(plan.grids["grid_code"]))
    report = {
        "moved_households": stats["moved"],
        "new_households": stats["new"],
        "removed_households": len(set(old.index) - set(hh["household_id"])),
        "lower_bound": lower_bound,
        "moved_to_lower_bound": (
            round(stats["moved"] / lower_bound, 3) if lower_bound > 0 else None
        ),
        "grids_touched": sorted(c.code for c in cells if c.touched),
        "grids_created": sorted(c.code for c in cells if c.origin),
        "splits": split_log,
        "merges": merge_log,
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
                "min_households": lo,
                "max_households": hi,
                "locked": sorted(set(locked)),
                "weight": weight,
                "seed": seed,
            },
            "rebalance": {k: v for k, v in report.items() if k != "metrics"},
            "seconds": report["seconds"],
        }
    )
    return Rebalanced(plan=plan, changes=changes, report=report)


def _split_grid(
    c: _Grid,
    cells: list[_Grid],
    atoms: list[_Atom],
    lo: float,
    hi: float,
    tgt: float,
    stay: np.ndarray,
    used: set[str],
    log: list[dict[str, Any]],
) -> None:
    total = float(sum(atoms[a].load for a in c.atoms))
    k = _grid_count(total, lo, hi, tgt)
    if k <= 1:
        return
    kx = math.cos(math.radians(c.geom.centroid.y))
    # peel new grids off where the newcomers are, so the grid's residents stay
    pieces = _peel(c.geom, list(c.atoms), k, atoms, stay, lo, hi, kx)
    if pieces is None:
        unit = _Unit(codes=[c.area_code], parent=None, geom=c.geom)
        unit.atoms = list(c.atoms)
        unit.load = total
        pieces = _partition(unit, atoms, lo, hi, tgt, kx)
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
    lo: float,
    hi: float,
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
            peel_ok = (cum_w >= lo - 1e-9) & (cum_w <= hi + 1e-9)
            rest_w = total - cum_w
            rest_ok = (rest_w >= left_k * lo - 1e-9) & (rest_w <= left_k * hi + 1e-9)
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
    lo: float,
    hi: float,
    tgt: float,
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
        if 3 * lo - 1e-9 <= total <= 3 * hi + 1e-9:
            shared = shapely.length(
                shapely.intersection(c.geom.boundary, n.geom.boundary)
            )
            options.append((-shared, n.code, n))
    if not options:
        return
    n = min(options, key=lambda o: (o[0], o[1]))[2]
    unit = _Unit(codes=[c.area_code], parent=None, geom=_union([c.geom, n.geom]))
    unit.atoms = c.atoms + n.atoms
    unit.load = load(c) + load(n)
    kx = math.cos(math.radians(c.geom.centroid.y))
    pieces = _partition(unit, atoms, lo, hi, tgt, kx)
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
    lo: float,
    hi: float,
    log: list[dict[str, Any]],
) -> None:
    def load(x: _Grid) -> float:
        return float(sum(atoms[a].load for a in x.atoms))

    options = [o for o in _neighbours(c, cells) if load(o) + load(c) <= hi + 1e-9]
    if not options:
        return
    # the smaller side moves: it gives up its code when it is the smaller one
    target = min(options, key=lambda o: (load(o) + load(c), o.code))
    big, small = (target, c) if load(target) >= load(c) else (c, target)
    big.geom = _union([big.geom, small.geom])
    big.atoms = big.atoms + small.atoms
    big.touched = True
    cells.remove(small)
    log.append({"retired": small.code, "into": big.code})


def _assemble(
    cells: list[_Grid],
    atoms: list[_Atom],
    hh: gpd.GeoDataFrame,
    old: pd.Series,
    natural_code: np.ndarray,
    lo: float,
    hi: float,
    exceptions: list[dict[str, Any]],
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
        if not lo - 1e-9 <= ld <= hi + 1e-9:
            reason = (
                f"{ld:g} households, already out of band in the previous plan and "
                "unchanged (kept as it was)"
                if c.accepted
                else "locked by the planner"
                if c.locked
                else f"{ld:g} households: no neighbour in {c.area_code} could give or take "
                f"enough to reach {lo:g}–{hi:g}"
            )
            exceptions.append(
                {
                    "area_code": c.area_code,
                    "grid_code": c.code,
                    "kind": "out_of_band",
                    "reason": reason,
                    "households": len(members),
                }
            )
        geom = c.geom
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
    prev = pd.Series(ids).map(old)
    changed = prev.isna().to_numpy() | (prev.to_numpy() != grid_of)
    changes = pd.DataFrame(
        {
            "household_id": ids[changed],
            "old_grid_code": prev[changed].fillna("").to_numpy(),
            "new_grid_code": grid_of[changed],
        }
    )
    moved = int((natural_code != grid_of).sum())
    stats = {"moved": moved, "new": int(prev.isna().sum())}
    metrics = plan_metrics(grids, min_households=lo, max_households=hi)
    plan = GridPlan(
        grids=grids,
        assignments=assignments,
        report={"metrics": metrics, "exceptions": exceptions},
    )
    return plan, changes, stats
