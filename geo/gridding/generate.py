"""Generating grids of 200–300 households that tile every area."""

from __future__ import annotations

import math
import operator
import time
from collections.abc import Callable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from geo.crs import STORAGE_CRS
from geo.gridding._adjacency import _stranded_reason
from geo.gridding._atoms import _Atom, _atoms, _load_sum, _locate, _Unit
from geo.gridding._barriers import _cut_by_barriers, _report_barrier_crossings
from geo.gridding._cuts import _partition
from geo.gridding._fork import collector_paused, fork_map, worker_count
from geo.gridding._fragments import settle_fragments
from geo.gridding._geometry import _SLIVER, _clean, _repaired, _union
from geo.gridding._grouping import (
    CAP_SECONDS,
    Grouping,
    UnitGraph,
    group_units,
    unit_graph,
)
from geo.gridding.metrics import plan_metrics
from geo.plan import UNRESOLVED, Band, GridPlan
from geo.vocabulary import VILLAGE_LEVELS

__all__ = ["generate_grids"]

#: atoms (buildings) from which a run shares its units out over forked workers
#: (:func:`geo.gridding._fork.fork_map`); smaller runs cut them one by one
PARALLEL_MIN_ATOMS = 20_000

_LOAD = operator.attrgetter("load")
_COUNT = operator.attrgetter("count")
_MEMBERS = operator.attrgetter("members")
_FIRST = operator.itemgetter(0)


@collector_paused()
def generate_grids(
    households: gpd.GeoDataFrame,
    areas: gpd.GeoDataFrame,
    *,
    min_households: float = 200,
    max_households: float = 300,
    target: float | None = None,
    respect_level: str = "village",
    barriers: gpd.GeoDataFrame | None = None,
    weight: str | None = None,
    seed: int = 0,
    code_digits: int = 2,
    ref_latitude: float | None = None,
) -> GridPlan:
    """Draw grids of ``min_households``–``max_households`` that tile every area.

    Each village/community (``respect_level="village"``) or township
    (``"township"``) is cut into the number of grids its load allows by
    recursive straight cuts: every cut splits the households at a weighted
    quantile so both sides can still be divided in band, and among several
    directions the most compact pair of pieces wins. Grids therefore tile the
    area exactly (each cut splits a polygon in two), hold whole buildings, and
    are compact. Villages whose load cannot be cut into in-band grids (fewer
    than ``min_households``, or e.g. 301–399) are grouped with adjacent villages
    of the same township by an exact search over the township
    (:mod:`geo.gridding._grouping`): connected groups, each feasible wherever the
    township part's total allows it, most villages alone, fewest merges. Every
    merge is listed in the report, and every out-of-band grid carries a
    ``cause`` (:data:`geo.plan.EXCEPTION_CAUSES`, or ``"unresolved"`` when the
    unit is feasible but the cutting found no in-band partition) and a ``check``.

    Parameters
    ----------
    households
        Points (any CRS) with ``household_id``; optional ``building_id`` (households
        sharing it stay in one grid), ``unit`` (orders the households of a building
        too large for one grid), ``area_code`` and the ``weight`` column.
    areas
        Polygons with ``code``, optional ``level`` and ``parent_code``.
    min_households, max_households, target
        The band and the preferred size (default: the middle of the band).
    respect_level
        ``"village"`` (villages and communities) or ``"township"``.
    barriers
        Lines or polygons (rivers, main roads, railways; optional ``name``) that
        grids should not cross: each area is first cut along them, and a part
        is joined across a barrier only when it cannot form in-band grids alone
        (reported as ``crosses_barrier``).
    weight
        Column giving each household's workload (default 1 each).
    seed
        Only breaks exact ties; the same input and seed give the same plan.
    code_digits
        Digits of the sequence appended to the area code (``01``…).
    ref_latitude
        Latitude (degrees) whose east-west scale measures compactness and
        orders grid codes; default the mean of the leaf areas' north and south
        bounds. A part of a larger area drawn alone (one township of a
        province, :mod:`geo.fanout`) passes the whole area's value so that it
        gets exactly the grids the whole run would give it.

    Returns
    -------
    GridPlan

    Examples
    --------
    >>> import geopandas as gpd, numpy as np, shapely
    >>> rng = np.random.default_rng(0)
    >>> hh = gpd.GeoDataFrame({"household_id": [f"h{i}" for i in range(1000)]},
    ...     geometry=shapely.points(rng.uniform(0, 0.01, 1000), rng.uniform(0, 0.01, 1000)),
    ...     crs=4326)
    >>> village = gpd.GeoDataFrame({"code": ["V1"], "level": ["village"]},
    ...     geometry=[shapely.box(0, 0, 0.01, 0.01)], crs=4326)
    >>> plan = generate_grids(hh, village)
    >>> len(plan.grids), plan.report["metrics"]["in_band_share"]
    (4, 1.0)
    >>> plan.grids["grid_code"].tolist()
    ['V101', 'V102', 'V103', 'V104']
    """
    t0 = time.perf_counter()
    band = Band(min_households, max_households, target)
    if band.min <= 0:
        raise ValueError(
            f"need 0 < min_households <= max_households, got {min_households}"
        )
    if "household_id" not in households.columns:
        raise ValueError("households need a 'household_id' column")
    if "code" not in areas.columns:
        raise ValueError("areas need a 'code' column")
    # an Index's hash table answers this faster than the column's own unique()
    if not pd.Index(households["household_id"].array).is_unique:
        dup = households["household_id"][households["household_id"].duplicated()].iloc[
            0
        ]
        raise ValueError(f"duplicate household_id {dup!r}")
    if weight is not None and weight not in households.columns:
        raise ValueError(f"weight column {weight!r} not in households")

    hh = households.to_crs(STORAGE_CRS) if households.crs != areas.crs else households
    ar = areas.to_crs(STORAGE_CRS)
    hh = hh.to_crs(STORAGE_CRS)
    levels = VILLAGE_LEVELS if respect_level == "village" else (respect_level,)
    if "level" in ar.columns:
        leaf = ar[ar["level"].isin(levels)]
        if leaf.empty:
            raise ValueError(f"no areas at level {respect_level!r}")
    else:
        leaf = ar
    leaf = leaf.reset_index(drop=True)
    parent = (
        leaf["parent_code"]
        .astype(object)
        .where(leaf["parent_code"].notna(), None)
        .tolist()
        if "parent_code" in leaf.columns
        else [None] * len(leaf)
    )
    lat0 = (
        float(ref_latitude)
        if ref_latitude is not None
        else float(np.mean(shapely.bounds(leaf.geometry.values)[:, [1, 3]]))
    )
    kx = math.cos(math.radians(lat0))

    # households -> leaf area
    area_pos = _locate(hh, leaf)
    outside = np.flatnonzero(area_pos < 0)
    if len(outside):
        ids = hh["household_id"].iloc[outside[:10]].tolist()
        raise ValueError(
            f"{len(outside)} household(s) lie outside every {respect_level}: {ids}"
        )
    loads = (
        pd.to_numeric(hh[weight], errors="coerce").fillna(1.0).to_numpy(dtype=float)
        if weight
        else np.ones(len(hh))
    )
    atoms, exceptions = _atoms(hh, area_pos, loads, band, leaf["code"].tolist())

    # units: one per leaf area, merged where the band is unreachable
    units = [
        _Unit(codes=[c], parent=p, geom=g)
        for c, p, g in zip(leaf["code"], parent, leaf.geometry.values, strict=True)
    ]
    # each atom's area (all its households share it), read in one numpy call;
    # each unit's atoms in order, and its load and count summed in that order
    # (``bincount`` adds up one weight after the other, as a loop would)
    first = np.fromiter(
        map(_FIRST, map(_MEMBERS, atoms)), dtype=np.int64, count=len(atoms)
    )
    atom_area = area_pos[first]
    by_area = np.argsort(atom_area, kind="stable")
    bounds = np.searchsorted(atom_area[by_area], np.arange(len(units) + 1)).tolist()
    a_loads = np.bincount(
        atom_area,
        weights=np.fromiter(map(_LOAD, atoms), dtype=float, count=len(atoms)),
        minlength=len(units),
    ).tolist()
    a_counts = np.bincount(
        atom_area,
        weights=np.fromiter(map(_COUNT, atoms), dtype=float, count=len(atoms)),
        minlength=len(units),
    ).tolist()
    for j, u in enumerate(units):
        u.atoms = by_area[bounds[j] : bounds[j + 1]].tolist()
        u.load = float(a_loads[j])
        u.count = int(a_counts[j])
    if barriers is not None and len(barriers):
        units = _cut_by_barriers(units, atoms, barriers.to_crs(STORAGE_CRS))
        cut = [u for u in units if u.barrier is not None]
        whole = [u for u in units if u.barrier is None]
        units = whole + _merge_units(
            cut, band, exceptions, kind="crosses_barrier", kx=kx
        )
        area_parent = dict(zip(leaf["code"], parent, strict=True))
        for u in units:
            u.parent = area_parent[u.codes[0]]
    proofs: dict[int, dict[str, Any]] = {}
    units = _merge_units(units, band, exceptions, kx=kx, proofs=proofs)

    leaf_codes = leaf["code"].to_numpy()

    def unit_rows(u: _Unit) -> list[dict[str, Any]]:
        notes: dict[str, Any] = {}
        pieces = _partition(u, atoms, band, kx, notes=notes)
        return _unit_grids(
            u,
            pieces,
            atoms,
            area_pos,
            leaf_codes,
            band,
            exceptions=exceptions,
            proof=proofs.get(id(u)),
            stopped=notes.get("_cause"),
            subset_proof=notes.get("_proof"),
        )

    rows = [r for rs in _per_unit(units, atoms, band, unit_rows) for r in rs]

    grids, assignments = _finish(rows, hh, leaf, kx, code_digits, exceptions)
    if barriers is not None and len(barriers):
        _report_barrier_crossings(
            grids, assignments, hh, barriers.to_crs(STORAGE_CRS), exceptions
        )
    metrics = plan_metrics(grids, min_households=band.min, max_households=band.max)
    report = {
        "params": {
            "min_households": band.min,
            "max_households": band.max,
            "target": band.target,
            "respect_level": respect_level,
            "weight": weight,
            "seed": seed,
        },
        "metrics": metrics,
        "exceptions": exceptions,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return GridPlan(grids=grids, assignments=assignments, report=report)


def _per_unit(
    units: list[_Unit],
    atoms: list[_Atom],
    band: Band,
    unit_rows: Callable[[_Unit], list[dict[str, Any]]],
) -> list[list[dict[str, Any]]]:
    """``unit_rows(u)`` (its cut into grids, as rows) of each unit, in unit order.

    Units are independent, so in a large run (:data:`PARALLEL_MIN_ATOMS`) the
    units that need cutting are shared out over forked workers
    (:func:`geo.gridding._fork.fork_map`, largest first); the rows are the
    same as computed one after another.
    """
    cut = [j for j, u in enumerate(units) if band.grid_count(u.load) > 1]
    workers = worker_count() if len(atoms) >= PARALLEL_MIN_ATOMS else 1
    done = dict(
        zip(
            cut,
            fork_map(
                lambda q: unit_rows(units[cut[q]]),
                len(cut),
                order=sorted(range(len(cut)), key=lambda q: -len(units[cut[q]].atoms)),
                workers=workers,
            ),
            strict=True,
        )
    )
    return [done[j] if j in done else unit_rows(u) for j, u in enumerate(units)]


def _merge_units(
    units: list[_Unit],
    band: Band,
    exceptions: list[dict[str, Any]],
    *,
    kind: str = "merged_areas",
    kx: float = 1.0,
    cap_seconds: float = CAP_SECONDS,
    proofs: dict[int, dict[str, Any]] | None = None,
) -> list[_Unit]:
    """Group units whose load cannot be cut in band with adjacent units of the same parent.

    Each parent's units are partitioned by :func:`geo.gridding._grouping.group_units`
    (connected groups, each feasible where the parent allows it; most units alone,
    then fewest merges, then compact groups). Every merged group is reported
    (``kind``) with the grouping's objective values; for every group left
    infeasible, ``proofs[id(unit)]`` receives its ``cause`` and ``check``.
    """
    by_parent: dict[str | None, list[int]] = {}
    for i, u in enumerate(units):
        by_parent.setdefault(u.parent, []).append(i)
    out: list[tuple[int, _Unit]] = []
    for parent, idx in by_parent.items():
        members = [units[i] for i in idx]
        if all(band.feasible(u.load) for u in members):
            out.extend(zip(idx, members, strict=True))
            continue
        graph = unit_graph([u.geom for u in members], kx)
        loads = [u.load for u in members]
        keys = ["+".join(u.codes) + f"#{j:06d}" for j, u in enumerate(members)]
        res = group_units(loads, graph, band, cap_seconds=cap_seconds, order_keys=keys)
        comp_of = {i: comp for comp in res.components for i in comp}
        objective = res.objective()
        for grp in res.groups:
            parts = [members[j] for j in grp]
            if len(grp) == 1:
                merged = parts[0]
            else:
                merged = _merged_unit(parts)
                exceptions.append(
                    _merge_entry(merged, parts, parent, band, kind, objective)
                )
            out.append((min(idx[j] for j in grp), merged))
            if proofs is not None and not band.feasible(merged.load):
                proofs[id(merged)] = _group_proof(
                    merged,
                    grp,
                    members,
                    graph,
                    comp_of[grp[0]],
                    parent,
                    band=band,
                    res=res,
                )
    out.sort(key=lambda t: t[0])
    return [u for _, u in out]


def _merged_unit(parts: list[_Unit]) -> _Unit:
    head = min(parts, key=lambda u: (-u.load, u.codes[0]))
    codes = list(head.codes)
    for c in sorted({c for u in parts for c in u.codes}):
        if c not in codes:
            codes.append(c)
    return _Unit(
        barrier=next((u.barrier for u in parts if u.barrier), None),
        codes=codes,
        parent=head.parent,
        geom=_union([u.geom for u in parts]),
        load=float(sum(u.load for u in parts)),
        count=int(sum(u.count for u in parts)),
        atoms=[a for u in parts for a in u.atoms],
    )


def _merge_entry(
    merged: _Unit,
    parts: list[_Unit],
    parent: str | None,
    band: Band,
    kind: str,
    objective: dict[str, Any],
) -> dict[str, Any]:
    alone = [u for u in parts if not band.feasible(u.load)]
    hosts = [u for u in parts if band.feasible(u.load)]
    desc = ", ".join(f"{'+'.join(u.codes)} ({u.count})" for u in alone)
    if kind == "merged_areas":
        reason = (
            f"{desc} cannot form grids of {band.min:g}–{band.max:g} alone; grouped as "
            f"{'+'.join(merged.codes)} ({merged.count} households) in the same parent "
            f"{parent}"
        )
    else:
        reason = (
            f"the part(s) of {merged.codes[0]} cut off by {merged.barrier or 'a barrier'}"
            f" ({', '.join(str(u.count) for u in alone)} households) cannot form grids "
            f"of {band.min:g}–{band.max:g} alone; joined across it with the adjacent part(s) "
            f"({merged.count} households together)"
        )
    if hosts:
        reason += "; with " + ", ".join(
            f"{'+'.join(u.codes)} ({u.count})" for u in hosts
        )
    if not band.feasible(merged.load):
        reason += (
            f" (still outside {band.min:g}–{band.max:g}: see its out_of_band grid)"
        )
    return {
        "area_code": merged.codes[0],
        "grid_code": None,
        "kind": kind,
        "reason": reason,
        "households": merged.count,
        "units": ["+".join(u.codes) for u in parts],
        "load": merged.load,
        "feasible": band.feasible(merged.load),
        "objective": objective,
    }


def _group_proof(
    u: _Unit,
    grp: list[int],
    members: list[_Unit],
    graph: UnitGraph,
    comp: list[int],
    parent: str | None,
    *,
    band: Band,
    res: Grouping,
) -> dict[str, Any]:
    """Why a group is left infeasible: the cause and the check behind it."""
    inside = set(grp)
    nbrs = sorted({w for j in grp for w in graph.adj[j]} - inside)
    comp_load = float(sum(members[j].load for j in comp))
    parent_load = float(sum(m.load for m in members))
    name = "+".join(u.codes)
    check: dict[str, Any] = {
        "n": u.load,
        "households": u.count,
        "min": band.min,
        "max": band.max,
        "grids_possible": band.k_range(u.load),
        "units": ["+".join(members[j].codes) for j in grp],
        "parent": parent,
        "parent_load": parent_load,
        "parent_feasible": band.feasible(parent_load),
        "neighbours": ["+".join(members[j].codes) for j in nbrs],
        "component_units": ["+".join(members[j].codes) for j in comp],
        "component_load": comp_load,
        "component_feasible": band.feasible(comp_load),
        "grouping_optimal": res.optimal,
    }
    fits = f"no whole number of grids of {band.min:g}–{band.max:g} holds {u.load:g}"
    if res.timed_out:
        check["cap_seconds"] = res.cap_seconds
        check["step_budget"] = res.step_budget
        cause = "search_timed_out"
        reason = (
            f"{name} has {u.load:g} households ({fits}); the grouping search of "
            f"{parent} used up its budget ({res.step_budget} steps, at most "
            f"{res.cap_seconds:g} s) before it proved this grouping best"
        )
    elif not nbrs:
        cause = "no_merge_partner" if len(grp) == 1 else "infeasible_total"
        check["why"] = (
            f"{name} touches no other area of {parent} along a line"
            if len(grp) == 1
            else f"{name} is all of a connected part of {parent}, and its total fits "
            "no whole number of grids"
        )
        reason = (
            f"{name} has only {u.load:g} households and no adjacent area in {parent} "
            f"to merge with (neighbours found: none); {fits}"
            if u.load < band.min and len(grp) == 1
            else f"{name} has {u.load:g} households and no adjacent area in {parent} "
            f"to merge with (neighbours found: none); {fits}"
        )
    elif band.feasible(comp_load):
        # the connected part's total fits: some grouping may put every group in
        # band, so this one is no proof (the definition of infeasible_total fails)
        cause = UNRESOLVED
        check["why"] = (
            f"the connected part of {parent} holding {name} totals {comp_load:g}, "
            "which fits a whole number of grids; the grouping left this group out"
        )
        reason = (
            f"{name} has {u.load:g} households ({fits}); the grouping of {parent} "
            f"found no way to put it in a group that fits, though the connected part "
            f"holding it ({comp_load:g}) fits (one may exist)"
        )
    else:
        cause = "infeasible_total"
        check["why"] = (
            f"the connected part of {parent} holding {name} totals {comp_load:g}, which "
            "no whole number of grids holds; totals that fit add up to a total that "
            "fits, so at least one group of it must stay out of band, and this grouping "
            "keeps the most areas alone"
        )
        reason = (
            f"{name} has {u.load:g} households ({fits}); the connected part of "
            f"{parent} holding it totals {comp_load:g}, which no whole number of grids "
            "holds either, so one group of it must stay out of band"
        )
    return {"cause": cause, "check": check, "reason": reason}


def _unit_grids(
    u: _Unit,
    pieces: list[tuple[BaseGeometry, list[int]]],
    atoms: list[_Atom],
    area_pos: np.ndarray,
    codes: np.ndarray,
    band: Band,
    *,
    exceptions: list[dict[str, Any]],
    proof: dict[str, Any] | None = None,
    stopped: tuple[str, dict[str, Any]] | None = None,
    subset_proof: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    rows = []
    for geom, members in pieces:
        hh_rows = (
            np.concatenate(list(map(_MEMBERS, map(atoms.__getitem__, members))))
            if members
            else np.array([], dtype=np.int64)
        )
        load = float(_load_sum(atoms, members))
        # the areas of its households, most households first (ties: the first
        # seen), as pandas' value_counts orders them, without a Series per grid
        at = area_pos[hh_rows]
        if len(at):
            seen, first, n_of = np.unique(at, return_index=True, return_counts=True)
            rank = np.lexsort((first, -n_of))
            by_area = codes[seen[rank]].tolist()
        else:
            by_area = []
        home = by_area[0] if by_area else u.codes[0]
        touched = sorted(set(by_area) | ({home}))
        reason, cause, check = None, None, None
        if not band.min - 1e-9 <= load <= band.max + 1e-9:
            cause, check, reason = _grid_cause(u, members, load, atoms, band, proof)
            proven = subset_proof is not None and any(
                abs(atoms[i].load - v) < 1e-9
                for i in members
                for v in subset_proof["building_loads"]
            )
            if cause == UNRESOLVED and proven and subset_proof is not None:
                # the grid holds a building no in-band set of buildings can hold
                cause = "no_in_band_grouping"
                check = {**check, **subset_proof}
                reason = (
                    f"{load:g} households: no set of whole buildings of "
                    f"{'+'.join(u.codes)} that includes one of its buildings (of "
                    f"{'/'.join(f'{v:g}' for v in subset_proof['building_loads'])} "
                    "households) totals "
                    f"{band.min:g}–{band.max:g}, so no grid holding it is in band"
                )
            elif cause == UNRESOLVED and stopped and stopped[0] == "no_connected_split":
                # no split into connected in-band grids: a stranded building, or
                # the integer model
                cause, extra = stopped
                check = {**check, **extra}
                reason = _stranded_reason(load, "+".join(u.codes), extra, band) or (
                    f"{load:g} households: the {extra['buildings']:,} buildings of "
                    f"{'+'.join(u.codes)} cannot be split into connected grids of "
                    f"{band.min:g}–{band.max:g} households on their adjacency graph, "
                    "nor with empty cells along the boundary to reach round by: "
                    f"{extra['solver']} proved it for every count of grids the total "
                    f"allows ({', '.join(map(str, extra['grid_counts']))})"
                )
            elif cause == UNRESOLVED and stopped and stopped[0] != "search_timed_out":
                # the exact method tried every grouping of the whole buildings
                cause, extra = stopped
                check = {**check, **extra}
                reason = (
                    f"{load:g} households: the {extra['buildings']:,} buildings of "
                    f"{'+'.join(u.codes)} cannot be split into groups of "
                    f"{band.min:g}–{band.max:g} households, however they are "
                    "grouped: an exhaustive search tried every grouping "
                    f"({extra['groups_tried']:,} groups)"
                )
            elif cause == UNRESOLVED and stopped is not None:
                # the complete re-cut ran out of time: say so, with its cap
                cause, extra = stopped
                check = {**check, **extra}
                reason = (
                    f"{load:g} households: the re-cut of {'+'.join(u.codes)} "
                    f"stopped at its cap of {extra.get('cap_steps', 0):,} steps (or "
                    f"{extra.get('cap_s', '?')} s) and "
                    f"{extra.get('cap_trees', 0):,} random spanning trees per graph, "
                    f"none of which could be cut in band ({extra.get('trees', 0):,} "
                    "drawn in all), and its exact search at its cap of "
                    f"{extra.get('cap_exact_steps', 0):,} connected groups per "
                    "graph"
                    + (
                        ", and its integer model (CP-SAT) at its cap of "
                        f"{extra['cap_cpsat_det_time']:g} deterministic seconds"
                        if "cap_cpsat_det_time" in extra
                        else ""
                    )
                    + ", before it found an in-band partition (one may exist)"
                )
        rows.append(
            {
                "area_code": home,
                "areas": ";".join(touched),
                "load": load,
                "households": len(hh_rows),
                "exception": reason,
                "geometry": geom,
                "_members": hh_rows,
                "_unit": "+".join(u.codes),
                "_cause": cause,
                "_check": check,
            }
        )
    return rows


def _grid_cause(
    u: _Unit,
    members: list[int],
    load: float,
    atoms: list[_Atom],
    band: Band,
    proof: dict[str, Any] | None,
) -> tuple[str, dict[str, Any], str]:
    """Cause (from ``EXCEPTION_CAUSES``, or ``UNRESOLVED``), check and reason of an
    out-of-band grid of unit ``u``."""
    name = "+".join(u.codes)
    if not band.feasible(u.load):
        if proof is None:  # every unit passes through _merge_units; kept for safety
            proof = {
                "cause": "infeasible_total",
                "check": {"n": u.load, "min": band.min, "max": band.max},
                "reason": f"{name} has {u.load:g} households, which no whole number "
                f"of grids of {band.min:g}–{band.max:g} holds",
            }
        check = dict(proof["check"], grid_load=load)
        return proof["cause"], check, f"{load:g} households: {proof['reason']}"
    stacks = {atoms[i].stack for i in members}
    if members and -1 not in stacks and len(stacks) == 1:
        s = stacks.pop()
        chunks = [a.load for a in atoms if a.stack == s]
        total = float(sum(chunks))
        # a true cause only when one part alone is over the band: the unit is
        # feasible, so it holds at least ceil(building / max) grids in band and
        # the parts could be spread over them; a grid holding two parts (321 of a
        # 321-household building) is a cutting failure, unresolved (below)
        held = [atoms[i].load for i in members]
        over_max = max(held) > band.max + 1e-9
    else:
        over_max = False
    if over_max:
        check = {
            "building_load": total,
            "max": band.max,
            "min": band.min,
            "parts": len(chunks),
            "part_loads": chunks,
            "grid_load": load,
            "grid_part_loads": held,
            "unit_load": u.load,
        }
        return (
            "building_over_max",
            check,
            f"{load:g} households: part of one building of {total:g} households "
            f"(> {band.max:g}) split by unit into {len(chunks)} parts; a part of "
            f"{max(held):g} households is itself over {band.max:g}",
        )
    biggest = max((atoms[i].load for i in members), default=0.0)
    largest = max((atoms[i].load for i in u.atoms), default=0.0)
    check = {
        "unit_load": u.load,
        "min": band.min,
        "max": band.max,
        "grids_possible": band.k_range(u.load),
        "largest_building": largest,
        "largest_building_in_grid": biggest,
        "grid_load": load,
    }
    return (
        UNRESOLVED,
        check,
        f"{load:g} households: the cutting methods found no in-band partition of "
        f"{name} ({u.load:g} households, feasible as {band.k_range(u.load)[0]}–"
        f"{band.k_range(u.load)[1]} grids; largest building {largest:g}); one may "
        "exist",
    )


def _finish(
    rows: list[dict[str, Any]],
    hh: gpd.GeoDataFrame,
    leaf: gpd.GeoDataFrame,
    kx: float,
    digits: int,
    exceptions: list[dict[str, Any]],
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Absorb empty fragments, order grids NW→SE, give codes, build outputs."""
    settle_fragments(rows, hh)
    df = pd.DataFrame(rows)
    geoms0 = np.asarray(df["geometry"].values, dtype=object)
    empty = shapely.is_empty(geoms0)
    # a piece cut exactly through a split building can be left without territory:
    # it lives at the building point (reported), and sorts by that point
    safe = np.where(empty, shapely.points(0.0, 0.0), geoms0)
    cent = shapely.centroid(safe)
    cx, cy = shapely.get_x(cent), shapely.get_y(cent)
    xy = (
        shapely.get_coordinates(np.asarray(hh.geometry.values, dtype=object))
        if empty.any()
        else np.zeros((0, 2))
    )
    for i in np.flatnonzero(empty):
        m = df["_members"].iloc[i]
        if len(m):
            cx[i], cy[i] = xy[m, 0].mean(), xy[m, 1].mean()
            exceptions.append(
                {
                    "area_code": df["area_code"].iloc[i],
                    "grid_code": None,
                    "kind": "no_territory",
                    "reason": (
                        f"{len(m)} households of a building split by unit share its "
                        "point with a neighbouring grid; this part has no territory"
                    ),
                    "households": len(m),
                }
            )
    df["_key"] = cx * kx - cy
    df = df.sort_values(["area_code", "_key"], kind="stable").reset_index(drop=True)
    df["grid_code"] = df["area_code"] + (df.groupby("area_code").cumcount() + 1).map(
        lambda n: str(n).zfill(digits)
    )
    geoms = np.array(df["geometry"].tolist(), dtype=object)
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():  # a cut vertex landing on an edge; repair without moving area
        geoms[invalid] = [_repaired(g) for g in geoms[invalid]]
    # a part under the sliver size is left over by an overlay, not territory
    # (a zero-area triangle at a cut's end that no neighbour shares an edge with)
    multi = np.flatnonzero(shapely.get_num_geometries(geoms) > 1)
    if len(multi):
        geoms[multi] = [_clean(g) for g in geoms[multi]]
    # polygons as one-part multipolygons, in one call (the same coordinates)
    single = np.flatnonzero(
        (shapely.get_type_id(geoms) == 3) & ~shapely.is_empty(geoms)
    )
    for i in np.flatnonzero(
        shapely.is_empty(geoms) & (shapely.get_type_id(geoms) == 3)
    ):
        geoms[i] = shapely.MultiPolygon([geoms[i]])
    if len(single):
        geoms[single] = shapely.multipolygons(
            geoms[single], indices=np.arange(len(single))
        )
    df["geometry"] = list(geoms)
    df["parts"] = shapely.get_num_geometries(geoms).tolist()
    # the areas a grid covers, by territory (not only by its households)
    leaf_geoms = np.asarray(leaf.geometry.values, dtype=object)
    leaf_codes = leaf["code"].astype(str).to_numpy()
    g_idx, l_idx = leaf.sindex.query(
        np.asarray(df["geometry"].values, dtype=object), predicate="intersects"
    )
    overlap = shapely.area(
        shapely.intersection(
            np.asarray(df["geometry"].values, dtype=object)[g_idx], leaf_geoms[l_idx]
        )
    )
    covered: dict[int, set[str]] = {}
    for gi, li, a in zip(g_idx, l_idx, overlap, strict=True):
        if a > _SLIVER * 100:
            covered.setdefault(int(gi), set()).add(str(leaf_codes[li]))
    df["areas"] = [
        ";".join(sorted(covered.get(i, set()) | set(str(a).split(";"))))
        for i, a in enumerate(df["areas"])
    ]
    causes = df["_cause"].tolist() if "_cause" in df.columns else [None] * len(df)
    checks = df["_check"].tolist() if "_check" in df.columns else [None] * len(df)
    for r, cause, check in zip(df.itertuples(), causes, checks, strict=True):
        if isinstance(r.exception, str):
            kind = "out_of_band"
            entry = {
                "area_code": r.area_code,
                "grid_code": r.grid_code,
                "kind": kind,
                "reason": r.exception,
                "households": int(r.households),
            }
            if isinstance(cause, str):
                entry["cause"] = cause
                entry["check"] = check
            exceptions.append(entry)
        if ";" in r.areas:
            exceptions.append(
                {
                    "area_code": r.area_code,
                    "grid_code": r.grid_code,
                    "kind": "crosses_area_line",
                    "reason": f"grid covers households of {r.areas.replace(';', ', ')} (merged areas)",
                    "households": int(r.households),
                }
            )
        if r.parts > 1:
            exceptions.append(
                {
                    "area_code": r.area_code,
                    "grid_code": r.grid_code,
                    "kind": "not_contiguous",
                    "reason": _split_reason(r.parts, r.areas, leaf),
                    "households": int(r.households),
                }
            )
    assignments = pd.DataFrame(
        {
            "household_id": _take(hh["household_id"], df["_members"].tolist()),
            "grid_code": np.repeat(
                df["grid_code"].to_numpy(), [len(m) for m in df["_members"]]
            ),
        }
    )
    # the proven cause of an out-of-band grid, kept with the grid (stored with the
    # plan) so that a rebalance which keeps the grid as it was can still name it
    df["cause"] = [
        c if isinstance(c, str) and isinstance(e, str) else None
        for c, e in zip(causes, df["exception"], strict=True)
    ]
    grids = gpd.GeoDataFrame(
        df[
            [
                "grid_code",
                "area_code",
                "households",
                "load",
                "areas",
                "exception",
                "cause",
                "parts",
            ]
        ],
        geometry=list(df["geometry"]),
        crs=STORAGE_CRS,
    )
    return grids, assignments


def _take(col: pd.Series, members: list[np.ndarray]) -> Any:
    """``col``'s values at the rows ``members`` (one array per grid), in order: a
    string column by a take on its array (no conversion through Python
    objects), any other as a NumPy array of its values, as the frame infers."""
    if not members:
        return []
    rows = np.concatenate(members)
    if isinstance(col.dtype, pd.StringDtype):
        return pd.Series(col.array.take(rows))
    return col.to_numpy()[rows]


def _split_reason(parts: int, areas: str, leaf: gpd.GeoDataFrame) -> str:
    codes = areas.split(";")
    geoms = leaf.loc[leaf["code"].astype(str).isin(codes), leaf.geometry.name]
    pieces = sum(int(shapely.get_num_geometries(g)) for g in geoms)
    names = ", ".join(codes)
    if pieces > len(codes):
        return (
            f"grid has {parts} separate parts: {names} itself lies in {pieces} pieces "
            "(exclaves), which no grid can join"
        )
    return f"grid has {parts} separate parts inside {names}"
