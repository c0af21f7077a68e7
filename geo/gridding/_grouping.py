"""Grouping units (villages, or the parts of an area cut by barriers) inside a parent.

A unit whose load ``n`` admits no whole ``k`` with ``band.min·k ≤ n ≤ band.max·k`` cannot be
cut into in-band grids alone. :func:`group_units` partitions the adjacency graph
of a parent's units (adjacent: boundaries share a line of positive length) into
connected groups that are each feasible, and picks, lexicographically,

0. the fewest infeasible groups — which is 0 when the connected component's total
   is feasible and 1 otherwise: feasible totals add up to a feasible total
   (``[a·lo, a·hi] + [b·lo, b·hi] = [(a+b)·lo, (a+b)·hi]``), so one group of the
   whole component is always feasible when its total is, and a component whose
   total is infeasible must leave at least one group out of band;
1. the most units standing alone in band (fewest units in merged groups);
2. the fewest merges (``units − groups``: smaller groups);
3. the fewest households in merged groups (fewest whose grid may cross an area
   line; this is also what the earlier pairwise merge preferred, so plans that it
   already drew optimally on 0–2 keep their groups);
4. the most compact merged groups: the smallest sum over merged groups of
   ``perimeter² / (4π·area)`` (1 for a disc), with the group's perimeter taken as
   the members' perimeters minus twice their shared boundaries (exact for units
   that tile).

The search is an exact depth-first branch and bound per connected component: the
first unassigned infeasible unit (smallest load first) branches over the connected
sets of unassigned units that contain it (enumerated once each by ordered
extension, smallest first), feasible units left over stand alone, and a node is
cut off when its lower bound — groups so far, every unassigned infeasible unit
merged, each unassigned component of infeasible total costing one out-of-band
group — is no better than the best grouping found. The incumbent starts as the
whole component (optimal on criterion 0), so a time cap only ever costs
optimality on criteria 1–4, never feasibility; it is reported.

Why not an integer program (OR-Tools CP-SAT, HiGHS)? Connected partitions need
flow or cut constraints per group, the compactness term is not linear in the
membership variables, and it would add a large dependency; a township has a few
dozen villages of which most are feasible alone, so the search touches only the
few infeasible ones and their surroundings and finishes in milliseconds, exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo.plan import Band

#: Default time cap of the grouping search, per parent (township), in seconds: a
#: safety net only; the step budget below stops a long search first, so results
#: do not depend on the machine's speed.
CAP_SECONDS = 10.0
#: Default budget of search steps per parent (about 1–2 s of work here).
STEP_BUDGET = 400_000

Cost = tuple[int, int, int, float, float]


@dataclass
class UnitGraph:
    """Adjacency of a parent's units, with what compactness needs."""

    adj: list[set[int]]
    perimeter: np.ndarray
    area: np.ndarray
    shared: dict[tuple[int, int], float]


@dataclass
class Grouping:
    """A partition of a parent's units into connected groups (indices)."""

    groups: list[list[int]]
    cost: Cost
    optimal: bool
    timed_out: bool
    cap_seconds: float
    seconds: float
    nodes: int
    step_budget: int = STEP_BUDGET
    components: list[list[int]] = field(default_factory=list)

    def objective(self) -> dict[str, float | int | bool]:
        """The objective values, for reports."""
        n = sum(len(g) for g in self.groups)
        return {
            "units": n,
            "infeasible_groups": self.cost[0],
            "standing_alone": n - self.cost[1],
            "merged_units": self.cost[1],
            "merges": self.cost[2],
            "merged_groups": sum(1 for g in self.groups if len(g) > 1),
            "merged_load": round(self.cost[3], 4),
            "compactness_penalty": round(self.cost[4], 4),
            "optimal": self.optimal,
            "timed_out": self.timed_out,
            "cap_seconds": self.cap_seconds,
            "step_budget": self.step_budget,
            "seconds": round(self.seconds, 4),
            "nodes": self.nodes,
        }


def unit_graph(geoms: Sequence[BaseGeometry], kx: float = 1.0) -> UnitGraph:
    """Units adjacent where their boundaries share a line of positive length.

    Lengths and areas are measured with x scaled by ``kx`` (cos of the latitude),
    i.e. locally isotropic.
    """
    arr = np.asarray(list(geoms), dtype=object)
    n = len(arr)
    scale = np.array([kx, 1.0])
    scaled = shapely.transform(arr, lambda c: c * scale) if n else arr
    adj: list[set[int]] = [set() for _ in range(n)]
    shared: dict[tuple[int, int], float] = {}
    if n > 1:
        tree = shapely.STRtree(arr)
        left, right = tree.query(arr, predicate="intersects")
        bounds = shapely.boundary(scaled)
        for i, j in zip(left.tolist(), right.tolist(), strict=True):
            if i >= j:
                continue
            length = float(shapely.length(shapely.intersection(bounds[i], bounds[j])))
            if length > 0:
                adj[i].add(j)
                adj[j].add(i)
                shared[(i, j)] = length
    return UnitGraph(
        adj=adj,
        perimeter=np.asarray(shapely.length(scaled), dtype=float) if n else np.zeros(0),
        area=np.asarray(shapely.area(scaled), dtype=float) if n else np.zeros(0),
        shared=shared,
    )


def _attach_empty(
    groups: list[list[int]], empty: list[int], graph: UnitGraph, keys: list[str]
) -> None:
    """Put each unit without households into the adjacent group it shares the
    longest border with (chains of empty units follow); one touching no group
    stands alone."""
    group_of = {i: g for g in groups for i in g}
    left = list(empty)
    while left:
        placed = []
        for e in left:
            options = [
                (graph.shared.get((min(e, w), max(e, w)), 0.0), keys[w], w)
                for w in graph.adj[e]
                if w in group_of
            ]
            if options:
                _, _, w = max(options, key=lambda o: (o[0], [-ord(c) for c in o[1]]))
                group_of[w].append(e)
                group_of[e] = group_of[w]
                placed.append(e)
        if not placed:
            break
        left = [e for e in left if e not in placed]
    groups.extend([e] for e in left)


def components(
    adj: list[set[int]], members: Sequence[int] | None = None
) -> list[list[int]]:
    """Connected components (sorted lists) of the graph restricted to ``members``."""
    inside = set(range(len(adj)) if members is None else members)
    seen: set[int] = set()
    out: list[list[int]] = []
    for s in sorted(inside):
        if s in seen:
            continue
        comp, stack = [s], [s]
        seen.add(s)
        while stack:
            v = stack.pop()
            for w in adj[v]:
                if w in inside and w not in seen:
                    seen.add(w)
                    comp.append(w)
                    stack.append(w)
        out.append(sorted(comp))
    return out


def group_units(
    loads: Sequence[float],
    graph: UnitGraph,
    band: Band,
    *,
    cap_seconds: float = CAP_SECONDS,
    step_budget: int = STEP_BUDGET,
    order_keys: Sequence[str] | None = None,
) -> Grouping:
    """Partition units into connected, feasible groups (see the module docstring).

    ``order_keys`` (e.g. area codes) break ties between units of equal load, so
    the answer does not depend on the input order. A search that uses up its
    ``step_budget`` (deterministic) or its time cap (a safety net) stops with the
    best grouping found and sets ``timed_out``.
    """
    t0 = time.perf_counter()
    deadline = t0 + cap_seconds
    n = len(loads)
    keys = (
        list(order_keys) if order_keys is not None else [f"{i:09d}" for i in range(n)]
    )
    groups: list[list[int]] = []
    cost: list[float] = [0, 0, 0, 0.0, 0.0]
    optimal, timed_out, nodes = True, False, 0
    # units without households change no group's feasibility: they are left out
    # of the search and then join the group they share the longest border with
    empty = {i for i in range(n) if loads[i] <= 0}
    full = graph
    if empty and len(empty) < n:
        graph = UnitGraph(
            adj=[set() if i in empty else graph.adj[i] - empty for i in range(n)],
            perimeter=graph.perimeter,
            area=graph.area,
            shared=graph.shared,
        )
    comps = components(graph.adj)
    for comp in comps:
        if len(empty) < n and all(i in empty for i in comp):
            continue  # placed after the search
        if all(band.feasible(loads[i]) for i in comp):
            groups.extend([i] for i in comp)
            continue
        s = _Search(
            comp, loads, graph, band, keys, deadline=deadline, step_budget=step_budget
        )
        s.run()
        nodes += s.nodes
        if s.timed_out:
            optimal, timed_out = False, True
        groups.extend(sorted(g) for g in s.best_groups)
        for k in range(5):
            cost[k] += s.best[k]
        for i in comp:  # feasible units left over stand alone
            if not any(i in g for g in s.best_groups):
                groups.append([i])
    if empty and len(empty) < n:
        _attach_empty(groups, sorted(empty, key=lambda i: keys[i]), full, keys)
        comps = components(full.adj)
    groups.sort(key=lambda g: min(g))
    return Grouping(
        groups=groups,
        cost=(int(cost[0]), int(cost[1]), int(cost[2]), cost[3], cost[4]),
        optimal=optimal,
        timed_out=timed_out,
        cap_seconds=cap_seconds,
        seconds=time.perf_counter() - t0,
        nodes=nodes,
        step_budget=step_budget,
        components=comps,
    )


def group_cost(
    group: Sequence[int], loads: Sequence[float], graph: UnitGraph, band: Band
) -> Cost:
    """Cost of one group: (infeasible?, units not alone in band, merges, load of a
    merged group, compactness penalty of a merged group)."""
    load = float(sum(loads[i] for i in group))
    feasible = band.feasible(load)
    bad = 0 if feasible else 1
    if len(group) == 1:
        return (bad, bad, 0, 0.0, 0.0)
    return (bad, len(group), len(group) - 1, round(load, 6), _penalty(group, graph))


def _penalty(group: Sequence[int], graph: UnitGraph) -> float:
    g = sorted(group)
    per = float(sum(graph.perimeter[i] for i in g))
    for a in range(len(g)):
        for b in range(a + 1, len(g)):
            per -= 2 * graph.shared.get((g[a], g[b]), 0.0)
    area = float(sum(graph.area[i] for i in g))
    if area <= 0:
        return 0.0
    return per * per / (4 * math.pi * area)


def _add(a: Cost, b: Cost) -> Cost:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4])


_ZERO: Cost = (0, 0, 0, 0.0, 0.0)


class _Search:
    """Depth-first branch and bound over the connected groups of one component.

    The first free infeasible unit branches over the connected sets of free units
    containing it (smallest first); the bound of a node adds, over the parts the
    free units fall into, :meth:`lower`; the best grouping found so far (at first
    the whole component) prunes.
    """

    def __init__(
        self,
        comp: list[int],
        loads: Sequence[float],
        graph: UnitGraph,
        band: Band,
        keys: list[str],
        *,
        deadline: float,
        step_budget: int = STEP_BUDGET,
    ) -> None:
        self.comp = comp
        self.loads = loads
        self.g = graph
        self.band = band
        self.deadline = deadline
        self.step_budget = step_budget
        self.steps = 0
        self.nodes = 0
        self.timed_out = False
        self.keys = keys
        self.is_bad = {i: not band.feasible(loads[i]) for i in comp}
        self.bad = sorted(
            (i for i in comp if self.is_bad[i]), key=lambda i: (loads[i], keys[i])
        )
        self.c0_star = 0 if self._feasible_set(comp) else 1
        self.best: Cost = group_cost(comp, loads, graph, band)
        self.best_groups: list[list[int]] = [list(comp)]

    def run(self) -> None:
        self._dfs(frozenset(self.comp), [], _ZERO)

    def _out_of_budget(self) -> bool:
        """Count a step; stop once the step budget (or the time cap) is used up."""
        self.steps += 1
        if not self.timed_out and (
            self.steps > self.step_budget
            or (self.steps % 1024 == 0 and time.perf_counter() > self.deadline)
        ):
            self.timed_out = True
        return self.timed_out

    def _feasible_set(self, units: frozenset[int] | list[int]) -> bool:
        return self.band.feasible(sum(self.loads[i] for i in units))

    def lower(self, part: frozenset[int]) -> Cost:
        """A lower bound on the cost of a connected free set ``part``.

        Every infeasible unit is merged (or is the one out-of-band group); a set of
        adjacent infeasible units whose total is infeasible cannot be grouped among
        itself, so some group takes a feasible unit next to it, and one feasible
        unit serves at most as many such sets as it touches.
        """
        c0 = 0 if self._feasible_set(part) else 1
        bad = [i for i in part if self.is_bad[i]]
        if not bad:
            return _ZERO
        needy = [k for k in components(self.g.adj, bad) if not self._feasible_set(k)]
        ok_needed = 0
        if len(needy) > c0:
            cover: dict[int, int] = {}
            for k in needy:
                for w in {w for i in k for w in self.g.adj[i] if w in part}:
                    if not self.is_bad[w]:
                        cover[w] = cover.get(w, 0) + 1
            most = max(cover.values(), default=0)
            if most:
                ok_needed = -(-(len(needy) - c0) // most)
        return (c0, len(bad) + ok_needed, (len(bad) + 1) // 2 - c0, 0.0, 0.0)

    def _dfs(self, free: frozenset[int], chosen: list[list[int]], c: Cost) -> None:
        self.nodes += 1
        if self._out_of_budget():
            return
        v = next((i for i in self.bad if i in free), None)
        if v is None:  # every infeasible unit placed; the rest stand alone in band
            if c < self.best:
                self.best, self.best_groups = c, [list(g) for g in chosen]
            return
        lb = c
        for q in components(self.g.adj, sorted(free)):
            lb = _add(lb, self.lower(frozenset(q)))
        if lb[0] > self.c0_star or lb >= self.best:
            return
        for size in range(1, len(free) + 1):
            if (self.c0_star, lb[1], max(lb[2], c[2] + size - 1)) > self.best[:3]:
                break  # larger groups only cost more merges
            cands = []
            for grp in self._connected(v, free, lb[1] - c[1], size, self._rel(c)):
                gc = group_cost(grp, self.loads, self.g, self.band)
                if c[0] + gc[0] > self.c0_star:
                    continue
                n_ok = sum(1 for i in grp if not self.is_bad[i])
                keys = sorted(self.keys[i] for i in grp)
                cands.append((n_ok, gc[3], gc[4], keys, grp, gc))
            cands.sort(key=lambda t: t[:4])
            for *_, grp, gc in cands:
                chosen.append(grp)
                self._dfs(free - set(grp), chosen, _add(c, gc))
                chosen.pop()
                if self.timed_out:
                    return

    def _rel(self, c: Cost) -> tuple[float, ...]:
        """The best grouping's criteria 0–2 left for the free units after ``c``."""
        return (self.best[0] - c[0], self.best[1] - c[1], self.best[2] - c[2])

    def _connected(
        self,
        v: int,
        free: frozenset[int],
        lb1: int,
        size: int,
        best: tuple[float, ...],
    ) -> Iterator[list[int]]:
        """Connected sets of ``size`` free units containing ``v``, each once.

        Ordered extension: a branch that adds ``w`` excludes the candidates tried
        before it. A set is not extended once its bound on criteria 0–2 is worse
        than ``best`` (extending only raises it).
        """
        adj = self.g.adj
        n_bad = sum(1 for i in free if self.is_bad[i])
        c0s = best[0]

        def order(x: int) -> tuple[float, str]:
            return (self.loads[x], self.keys[x])

        def rec(
            s: list[int], n_ok: int, ext: list[int], excl: set[int]
        ) -> Iterator[list[int]]:
            if len(s) == size:
                yield list(s)
                return
            if self._out_of_budget():
                return
            excl = set(excl)
            for w in ext:
                if w in excl:
                    continue
                w_ok = 0 if self.is_bad[w] else 1
                if (c0s, max(lb1, n_bad + n_ok + w_ok), size - 1) > best:
                    excl.add(w)
                    continue
                s.append(w)
                inside = set(s)
                nxt = [x for x in ext if x not in excl and x not in inside]
                seen = set(nxt)
                for x in sorted(adj[w], key=order):
                    if (
                        x in free
                        and x not in inside
                        and x not in excl
                        and x not in seen
                    ):
                        nxt.append(x)
                        seen.add(x)
                yield from rec(s, n_ok + w_ok, nxt, excl)
                s.pop()
                excl.add(w)
                if self.timed_out:
                    return

        start = sorted((x for x in adj[v] if x in free), key=order)
        yield from rec([v], 0, start, set())
