"""The re-cut's integer model: a split of a graph into connected in-band parts, by CP-SAT.

Where the exact search (:mod:`geo.gridding._exact`) reaches its cap, OR-Tools'
CP-SAT decides the same question exactly: a partition of every node into ``k``
connected parts with loads in the band, or a proof that none exists, for each
``k`` the total allows. Work is limited in CP-SAT's deterministic time (one
worker, a fixed seed), so an answer is the same on a busy machine as on an idle
one; a wall-clock limit is only a safety net.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any, Literal, Protocol

import numpy as np

from geo.gridding._adjacency import _components
from geo.gridding._trees import _int_band, _int_loads
from geo.plan import Band

#: CP-SAT's deterministic time for a unit, every graph and count in all (about
#: 15 s of work here; counted, not timed); then the answer is "unknown"
CPSAT_DET_TIME = 10.0

#: wall-clock safety net for the same (only a far slower machine reaches it)
CPSAT_CAP_S = 60.0

#: graphs with more nodes than this are not modelled (the answer is "unknown")
CPSAT_MAX_NODES = 4000

#: CP-SAT's deterministic time for a unit while rebalancing (all its graphs and
#: counts): an answer a planner waits for, so less than generation's
CPSAT_REBALANCE_DET_TIME = 2.0

_BUDGET: ContextVar[float | None] = ContextVar("_BUDGET", default=None)


def _budget() -> float:
    """The deterministic time a unit's model gets here (:data:`CPSAT_DET_TIME`,
    or what :func:`_budget_of` set for the block)."""
    v = _BUDGET.get()
    return CPSAT_DET_TIME if v is None else v


@contextmanager
def _budget_of(seconds: float) -> Iterator[None]:
    """Within the block, each unit's model gets ``seconds`` of deterministic time
    (a rebalance: :data:`CPSAT_REBALANCE_DET_TIME`)."""
    token = _BUDGET.set(seconds)
    try:
        yield
    finally:
        _BUDGET.reset(token)


#: answers already computed in this process, by graph, counts, band and allowance
#: (the oldest dropped past ``_SOLVED_MAX``)
_SOLVED: dict[tuple[Any, ...], CpsatSplit] = {}
_SOLVED_MAX = 256


class _Loads(Protocol):
    w: np.ndarray
    eu: np.ndarray
    ev: np.ndarray


@dataclass
class CpsatSplit:
    """What :func:`_cpsat_partition` decided.

    ``status`` is ``"found"`` (``parts``: node arrays, one per part),
    ``"infeasible"`` (CP-SAT proved, for every count in ``counts``, that no
    partition exists) or ``"unknown"`` (a limit was reached first, the loads or
    band are not whole, or the graph is too large); ``det_time`` is the
    deterministic time spent, summed over the counts tried.
    """

    status: Literal["found", "infeasible", "unknown"]
    parts: list[np.ndarray] | None = None
    counts: list[int] = field(default_factory=list)
    det_time: float = 0.0


def _cpsat_partition(
    g: _Loads,
    band: Band,
    *,
    counts: list[int] | None = None,
    det_time: float = CPSAT_DET_TIME,
    cap_s: float = CPSAT_CAP_S,
) -> CpsatSplit:
    """Split ``g``'s nodes into connected parts with loads in ``band``, exactly.

    Every node lies in exactly one part; a node of load 0 (an empty node of a
    rim) may go to any part, but each part is connected in ``g`` through its own
    nodes and holds a node with households (its root), as
    :func:`geo.gridding._exact._exact_partition` demands.

    Parameters
    ----------
    g
        The graph: node loads ``w`` (whole numbers) and edges ``eu``–``ev``.
    band
        The band each part's load must lie in (``min`` at least 1).
    counts
        The part counts to try, in order; every count the total allows when
        omitted. A proof covers the counts tried only.
    det_time, cap_s
        CP-SAT's deterministic time and its wall-clock safety net, for all the
        counts together (each solve gets what is left).

    Returns
    -------
    CpsatSplit
        The first partition found, or the proof that none exists for any count,
        or "unknown".

    Notes
    -----
    Parts are labelled by their lowest building (a node with households): the
    first building is in part 0, and a building opens part ``p`` only once
    part ``p - 1`` is open, so each partition has exactly one labelling, and the
    building that opens a part is its root. Connectivity is a single-commodity
    flow: each root sends one unit to every other node of its part, and flow
    runs only along edges whose ends lie in the same part; every node then has
    a path to a root within its part, and each part has one root.

    Examples
    --------
    A row of 120, 100, 80, 100: only 120+80 and 100+100 are in band, and these
    are not connected on the row; empty nodes beside 120 and 80 and beside the
    two 100s join them.

    >>> from types import SimpleNamespace
    >>> row = SimpleNamespace(
    ...     w=np.array([120, 100, 80, 100]), eu=np.array([0, 1, 2]), ev=np.array([1, 2, 3])
    ... )
    >>> _cpsat_partition(row, Band(200, 300)).status
    'infeasible'
    >>> rim = SimpleNamespace(
    ...     w=np.array([120, 100, 80, 100, 0, 0]),
    ...     eu=np.array([0, 1, 2, 0, 2, 1, 3]),
    ...     ev=np.array([1, 2, 3, 4, 4, 5, 5]),
    ... )
    >>> [p.tolist() for p in _cpsat_partition(rim, Band(200, 300)).parts]
    [[0, 2, 4], [1, 3, 5]]
    """
    ib = _int_band(band)
    wi = _int_loads(np.asarray(g.w, dtype=float))
    n = len(g.w)
    if ib is None or wi is None or ib[0] < 1 or not 0 < n <= CPSAT_MAX_NODES:
        return CpsatSplit("unknown")
    lo, hi = ib[0], ib[1]
    total = int(wi.sum())
    every = range(max(-(-total // hi), 1), total // lo + 1)
    ks = list(every if counts is None else counts)
    eu, ev = np.asarray(g.eu, dtype=np.int64), np.asarray(g.ev, dtype=np.int64)
    edges = sorted(
        {
            (min(a, b), max(a, b))
            for a, b in zip(eu.tolist(), ev.tolist(), strict=True)
            if a != b
        }
    )
    keep, small, expand = _reduce(wi.tolist(), edges)
    spent, deadline = 0.0, time.perf_counter() + cap_s
    for k in ks:
        left = (det_time - spent, deadline - time.perf_counter())
        status, labels, used = _solve(wi[keep].tolist(), small, k, lo, hi, left)
        spent += used
        if status == "unknown":
            return CpsatSplit("unknown", None, ks, spent)
        if status == "found" and labels is not None:
            full = expand(labels)
            parts = [np.flatnonzero(full == p) for p in range(k)]
            if not _valid(parts, wi, edges, lo, hi):
                return CpsatSplit("unknown", None, ks, spent)  # (cannot happen)
            return CpsatSplit("found", parts, ks, spent)
    return CpsatSplit("infeasible", None, ks, spent)


def _reduce(
    w: list[int], edges: list[tuple[int, int]]
) -> tuple[list[int], list[tuple[int, int]], Callable[[list[int]], np.ndarray]]:
    """The graph with empty nodes taken out where that changes no answer: the
    nodes kept, the edges among them (renumbered), and how a labelling of the
    kept nodes gives every node its part.

    Each rule keeps the answer exact, both ways (a part holds a building, so an
    empty node is in a part only beside another node of it):

    - an empty node with one neighbour goes (it joins that neighbour's part);
    - an empty node with two neighbours ``u``, ``v`` goes and ``u``–``v`` becomes
      an edge (it joins ``u``'s part: the part joined by ``u``–``v`` holds both);
    - a path of empty nodes each with three neighbours, one of them the same
      building ``b``, becomes one node: a part other than ``b``'s holding some of
      the path, but not all, holds pieces each hanging on by one end, which can
      all go to ``b``'s part (beside ``b``) and leave every part connected.
    """
    n = len(w)
    adj: list[set[int]] = [set() for _ in range(n)]
    for a, b in edges:
        adj[a].add(b)
        adj[b].add(a)
    alive = set(range(n))
    ops: list[tuple[int, list[int]]] = []  # (the node standing in, nodes it takes)
    changed = True
    while changed:
        changed = False
        for e in sorted(alive):
            if w[e] or len(adj[e]) not in (1, 2):
                continue
            near = sorted(adj[e])
            for u in near:
                adj[u].discard(e)
            if len(near) == 2:
                adj[near[0]].add(near[1])
                adj[near[1]].add(near[0])
            alive.discard(e)
            ops.append((near[0], [e]))
            changed = True
        for b in sorted(v for v in alive if w[v]):
            run = {e for e in adj[b] if not w[e] and len(adj[e]) == 3}
            while run:
                comp, todo = set(), [min(run)]
                while todo:
                    e = todo.pop()
                    if e in run:
                        run.discard(e)
                        comp.add(e)
                        todo += adj[e] & run
                if len(comp) < 2:
                    continue
                rep = min(comp)
                outer = set().union(*(adj[e] for e in comp)) - comp
                for e in comp - {rep}:
                    alive.discard(e)
                    for u in adj[e]:
                        adj[u].discard(e)
                for u in outer:
                    adj[u].add(rep)
                adj[rep] = outer
                ops.append((rep, sorted(comp - {rep})))
                changed = True
    keep = sorted(alive)
    at = {v: i for i, v in enumerate(keep)}
    small = sorted({(at[a], at[b]) for a in keep for b in adj[a] if a < b})

    def expand(labels: list[int]) -> np.ndarray:
        out = np.full(n, -1, dtype=np.int64)
        out[keep] = labels
        for rep, taken in reversed(ops):
            out[taken] = out[rep]
        return out

    return keep, small, expand


def _solve(
    w: list[int],
    edges: list[tuple[int, int]],
    k: int,
    lo: int,
    hi: int,
    left: tuple[float, float],
) -> tuple[str, list[int] | None, float]:
    """One CP-SAT model for ``k`` parts, in ``left`` (deterministic and wall-clock
    seconds): (``"found"``, ``"infeasible"`` or ``"unknown"``; each node's part
    when found; the deterministic time used)."""
    from ortools.sat.python import cp_model  # (heavy: only where it is needed)

    n = len(w)
    loaded = [v for v in range(n) if w[v] > 0]
    if not loaded or k < 1 or k > len(loaded):
        return "infeasible", None, 0.0
    m = cp_model.CpModel()
    x = [[m.new_bool_var(f"x{v}_{p}") for p in range(k)] for v in range(n)]
    for v in range(n):
        m.add_exactly_one(x[v])
    for p in range(k):
        m.add_linear_constraint(sum(w[v] * x[v][p] for v in loaded), lo, hi)
    # parts opened in order of their lowest building (seen: the parts opened so
    # far); the building that opens one is its root
    seen: list[Any] = [0] * k
    root: list[Any] = [0] * n
    for v in loaded:
        now = [m.new_bool_var(f"s{v}_{p}") for p in range(k)]
        for p in range(k):
            m.add(now[p] >= seen[p])
            m.add(now[p] >= x[v][p])
            m.add(now[p] <= seen[p] + x[v][p])
            if p:  # part p opens only after part p - 1
                m.add(now[p] <= seen[p - 1])
        root[v] = m.new_bool_var(f"r{v}")
        m.add(root[v] == sum(now) - sum(seen))
        seen = now
    for p in range(k):
        m.add(seen[p] == 1)  # every part holds a building
    # connectivity: one unit from each root to every other node of its part,
    # along edges inside a part only
    inflow: list[list[cp_model.IntVar]] = [[] for _ in range(n)]
    outflow: list[list[cp_model.IntVar]] = [[] for _ in range(n)]
    for i, (a, b) in enumerate(edges):
        inside = m.new_bool_var(f"e{i}")
        for p in range(k):
            m.add(x[a][p] == x[b][p]).only_enforce_if(inside)
        for s, t in ((a, b), (b, a)):
            f = m.new_int_var(0, n - 1, f"f{s}_{t}")
            m.add(f <= (n - 1) * inside)
            outflow[s].append(f)
            inflow[t].append(f)
    for v in range(n):
        sent = m.new_int_var(0, n, f"g{v}")
        m.add(sent <= n * root[v])
        m.add(sum(outflow[v]) - sum(inflow[v]) == sent - 1)
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    solver.parameters.max_deterministic_time = max(left[0], 0.0)
    solver.parameters.max_time_in_seconds = max(left[1], 0.0)
    status = solver.solve(m)
    used = float(solver.deterministic_time)
    if status == cp_model.INFEASIBLE:
        return "infeasible", None, used
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        labels = [next(p for p in range(k) if solver.value(x[v][p])) for v in range(n)]
        return "found", labels, used
    return "unknown", None, used


def _each_graph(
    graphs: Sequence[_Loads | None],
    band: Band,
    *,
    counts: list[int],
    det_time: float,
    memo: dict[Any, CpsatSplit],
) -> Iterator[CpsatSplit]:
    """:func:`_cpsat_partition` on each graph in turn ("unknown" for a missing
    one), in ``det_time`` for all of them; each answer is kept in ``memo`` under
    the graph's loads, edges and the counts (the same graph gives the same one)."""
    left = det_time
    for g in graphs:
        if g is None:
            yield CpsatSplit("unknown")
            continue
        key = (g.w.tobytes(), g.eu.tobytes(), g.ev.tobytes(), tuple(counts))
        if key not in memo:
            # the same graph, counts, band and allowance give the same answer
            # (deterministic time, one worker): solved once per process
            again = (*key, band.min, band.max, round(left, 6))
            hit = _SOLVED.get(again)
            if hit is None:
                hit = _cpsat_partition(g, band, counts=counts, det_time=left)
                if len(_SOLVED) >= _SOLVED_MAX:
                    _SOLVED.pop(next(iter(_SOLVED)))
                _SOLVED[again] = hit
            memo[key] = hit
        left = max(left - memo[key].det_time, 0.0)
        yield memo[key]


def _cap_check(stats: dict[str, Any]) -> dict[str, Any]:
    """The model's cap, what it spent and what it answered on each graph (for a
    check; nothing where it did not run)."""
    if "cpsat" not in stats:
        return {}
    return {
        "cap_cpsat_det_time": stats.get("cpsat_cap", CPSAT_DET_TIME),
        "cpsat_det_time": round(
            sum(r.det_time for r in stats.get("cpsat_memo", {}).values()), 3
        ),
        "cpsat": dict(stats["cpsat"]),
    }


def _proof_check(loads: list[float], stats: dict[str, Any]) -> dict[str, Any]:
    """The check of ``no_connected_split``: the buildings' loads, the graphs'
    sizes, the counts proven impossible and the solver, with its version; or,
    proven by a stranded building (``stats["stranded"]``), the buildings no
    connected in-band grid can hold on each graph, with the loads each could
    join."""
    if "stranded" in stats:
        return {
            "buildings": len(loads),
            "building_loads": sorted(loads, reverse=True),
            "proof": "stranded_building",
            **stats["stranded"],
        }
    return {
        "buildings": len(loads),
        "building_loads": sorted(loads, reverse=True),
        "graph_nodes": list(stats.get("cpsat_nodes", [])),
        "grid_counts": list(stats.get("cpsat_counts", [])),
        "solver": f"OR-Tools CP-SAT {version('ortools')}",
        **_cap_check(stats),
    }


def _valid(
    parts: list[np.ndarray],
    w: np.ndarray,
    edges: list[tuple[int, int]],
    lo: int,
    hi: int,
) -> bool:
    """Every node in one part, each part connected and in band (the model's answer
    checked on its own terms)."""
    if sorted(np.concatenate(parts).tolist()) != list(range(len(w))):
        return False
    for p in parts:
        at = {v: i for i, v in enumerate(p.tolist())}
        inner = [(at[a], at[b]) for a, b in edges if a in at and b in at]
        comp = _components(len(p), [a for a, _ in inner], [b for _, b in inner])
        if not lo <= int(w[p].sum()) <= hi or comp.max(initial=0) > 0:
            return False
    return True
