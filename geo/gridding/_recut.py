"""Re-cutting a window of grids (or a whole unit) into in-band grids on the building graph.

The fallback behind straight cuts, building moves and ordered sequences. The
window's buildings become the nodes of a graph (one node per building point,
its region the point's Voronoi cell clipped to the window; two nodes are
adjacent when their regions share an edge), and the graph is cut into ``k``
connected parts of whole buildings, each within the band, by recursive
spanning-tree bipartition (as GerryChain's ``recursive_tree_part``): draw a
random spanning tree of the nodes (Kruskal on random weights, fixed seed), and
remove a tree edge whose subtree holds a load that ``a`` grids can take while
the rest is feasible for ``k - a`` grids; both sides are connected subtrees, so
every part stays contiguous. Trees are drawn again until several partitions
succeed or the time cap is hit; the most compact (mean Polsby-Popper, computed
exactly from the regions' areas and shared edge lengths) wins, or, when
rebalancing, the one that keeps most households in their grid.

Each grid's polygon is the coverage union of its nodes' regions, so the grids
tile the window exactly and are one piece wherever the window is.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo.gridding import _cpsat
from geo.gridding._adjacency import _Graph, _graph, _stranded_proof
from geo.gridding._atoms import _Atom, _load_sum
from geo.gridding._exact import EXACT_STEPS, _exact_partition, _split_exists
from geo.gridding._geometry import _SLIVER, _clean, _cover_union, _poly_only, _repaired
from geo.gridding._moves import _EDGE_TOL, _MIN_EDGE, _edge, _join
from geo.gridding._trees import (
    TREE_TRIES,
    _spanning_tree,
    _subset_sum_proof,
    _tree_search,
)
from geo.plan import Band

#: work a unit's (or a rebalanced window's) search may do before it gives up and
#: reports ``search_timed_out`` with this cap: node visits of its random spanning-tree
#: cuts (about 1.5 s on an idle machine). Counted, not timed, so a plan is the same on
#: a busy machine as on an idle one.
RECUT_STEPS = 200_000

#: wall-clock safety net for the same search (reported the same way): only a far
#: slower machine than the step budget assumes ever reaches it
RECUT_CAP_S = 30.0

#: successful partitions compared before the best is kept
_WANT = 6

#: the same when rebalancing: each partition is first improved towards keeping
#: households in their grid, so few are needed (bench/rebalance.py at 200k: 24 moved
#: 1.19x the lower bound, 4 to 8 1.22x at a sixth to a third of the search, as did 10
#: other counties; 2 moved 1.58x, not 1.34x, in one of 6k and left a grid in 3 parts)
_WANT_KEPT = 4

#: spanning trees drawn for a window smaller than the whole unit (the whole unit,
#: tried last, gets ``TREE_TRIES``)
_WINDOW_TREES = 24

#: the exact method's cap for such a window (the whole unit gets ``EXACT_STEPS``)
_WINDOW_EXACT = EXACT_STEPS // 10


def _cap() -> float:
    """The wall-clock cap in force (read when a search starts)."""
    return RECUT_CAP_S


def _steps() -> int:
    """The step budget in force (read when a search starts)."""
    return RECUT_STEPS


class _Timeout(Exception):
    pass


class _Clock:
    """A search's allowance: ``steps`` of work (deterministic) and a wall-clock
    safety cap; a share of it for a sub-search spends from both."""

    __slots__ = ("deadline", "left", "parent")

    deadline: float
    left: int
    parent: _Clock | None

    def __init__(
        self, steps: int, seconds: float, parent: _Clock | None = None
    ) -> None:
        self.left = steps
        self.deadline = (
            parent.deadline if parent is not None else time.perf_counter() + seconds
        )
        self.parent = parent

    def spend(self, n: int) -> None:
        """Take ``n`` steps; raise ``_Timeout`` when the allowance is used up."""
        c: _Clock | None = self
        while c is not None:
            c.left -= n
            if c.left < 0:
                raise _Timeout
            c = c.parent
        if time.perf_counter() > self.deadline:
            raise _Timeout

    def expired(self) -> bool:
        return self.left <= 0 or time.perf_counter() > self.deadline

    def share(self, fraction: float) -> _Clock:
        """A sub-allowance: ``fraction`` of the steps left, the same deadline."""
        return _Clock(int(self.left * fraction), 0.0, parent=self)


class _Search:
    """Recursive spanning-tree bipartition of a graph into ``k`` in-band parts."""

    def __init__(
        self,
        g: _Graph,
        band: Band,
        clock: _Clock,
        rng: np.random.Generator,
        label: np.ndarray | None,
    ) -> None:
        self.g, self.band, self.clock, self.rng = g, band, clock, rng
        self.label = label
        n = len(g.w)
        self.n = n
        # edge bias: virtual edges last in every tree (cross between pieces only
        # where needed); with old grid labels, edges inside a grid first, so the
        # tree follows the old grids and cutting between them keeps households
        self.bias = np.where(g.virtual, 4.0, 0.0)
        self.cross = (
            np.asarray(label[g.eu] != label[g.ev]) if label is not None else None
        )
        self.seeded = False

    def partition(self, k: int) -> list[np.ndarray] | None:
        return self._part(np.arange(self.n), k, 0)

    def _part(self, nodes: np.ndarray, k: int, depth: int) -> list[np.ndarray] | None:
        total = float(self.g.w[nodes].sum())
        if k == 1:
            ok = self.band.contains(total)
            return [nodes] if ok else None
        tries = 12 if depth else 1
        for _ in range(tries):
            self.clock.spend(len(nodes))
            cut = self._cut(nodes, k, total)
            if cut is None:
                continue
            a_nodes, a, b_nodes = cut
            left = self._part(a_nodes, a, depth + 1)
            if left is None:
                continue
            right = self._part(b_nodes, k - a, depth + 1)
            if right is None:
                continue
            return left + right
        return None

    def _cut(
        self, nodes: np.ndarray, k: int, total: float
    ) -> tuple[np.ndarray, int, np.ndarray] | None:
        g = self.g
        inside = np.zeros(self.n, dtype=bool)
        inside[nodes] = True
        sel = np.flatnonzero(inside[g.eu] & inside[g.ev])
        weights = self.rng.random(len(sel)) + self.bias[sel]
        if self.seeded and self.cross is not None:
            weights = weights + 2.0 * self.cross[sel]
        tree = _spanning_tree(nodes, g.eu[sel], g.ev[sel], weights)
        if tree is None:
            return None  # not connected (cannot happen once virtual edges join pieces)
        # adjacency in the order Kruskal would take the edges (lightest first)
        adj: dict[int, list[tuple[int, int]]] = {v: [] for v in nodes.tolist()}
        t_e = sel[tree]
        for e, a, b in zip(
            t_e.tolist(), g.eu[t_e].tolist(), g.ev[t_e].tolist(), strict=True
        ):
            adj[a].append((b, e))
            adj[b].append((a, e))
        root = int(nodes[int(self.rng.integers(len(nodes)))])
        seq = [root]
        up = {root: -1}
        up_edge = {root: -1}
        for v in seq:
            for c, e in adj[v]:
                if c not in up:
                    up[c] = v
                    up_edge[c] = e
                    seq.append(c)
        sub = dict(zip(seq, g.w[seq].astype(float).tolist(), strict=True))
        for v in reversed(seq[1:]):
            sub[up[v]] += sub[v]
        cand = np.array(seq[1:], dtype=np.int64)
        if not len(cand):
            return None
        s = np.array([sub[v] for v in seq[1:]])
        rest = total - s
        band = self.band
        a_vals = np.arange(1, k)
        ok = (
            (s[:, None] >= band.min * a_vals - 1e-9)
            & (s[:, None] <= band.max * a_vals + 1e-9)
            & (rest[:, None] >= band.min * (k - a_vals) - 1e-9)
            & (rest[:, None] <= band.max * (k - a_vals) + 1e-9)
        )
        any_ok = ok.any(axis=1)
        if not any_ok.any():
            return None
        # per candidate edge: the most even count of grids it allows
        off = np.where(ok, np.abs(a_vals - k / 2), np.inf)
        best_a = a_vals[np.argmin(off, axis=1)]
        share = total / k
        dev = np.abs(s - best_a * share) / share
        edges = np.array([up_edge[v] for v in seq[1:]], dtype=np.int64)
        virt = g.virtual[edges]
        score = (
            (~virt).astype(float) * 100.0
            + np.abs(best_a - k / 2) * 10.0
            + np.minimum(dev, 9.0)
        )
        if self.cross is not None and self.seeded:
            score = score - 5.0 * self.cross[edges]
        score = np.where(any_ok, score, np.inf)
        i = int(np.argmin(score))
        v, a = int(cand[i]), int(best_a[i])
        # the subtree below v
        below = [v]
        for x in below:
            for c, _ in adj[x]:
                if c != up[x]:
                    below.append(c)
        a_nodes = np.array(sorted(below), dtype=np.int64)
        mask = np.zeros(self.n, dtype=bool)
        mask[a_nodes] = True
        b_nodes = nodes[~mask[nodes]]
        return a_nodes, a, b_nodes


def _score(
    g: _Graph, parts: list[np.ndarray]
) -> tuple[int, float, np.ndarray, list[float]]:
    """(parts joined by a virtual edge, mean Polsby-Popper, node labels, pp list)."""
    lab = np.empty(len(g.w), dtype=np.int64)
    for i, p in enumerate(parts):
        lab[p] = i
    k = len(parts)
    area = np.bincount(lab, weights=g.area, minlength=k)
    perim = np.bincount(lab, weights=g.perim, minlength=k)
    same = lab[g.eu] == lab[g.ev]
    perim -= 2 * np.bincount(lab[g.eu][same], weights=g.elen[same], minlength=k)
    pp = np.divide(
        4 * math.pi * area,
        perim**2,
        out=np.zeros(k),
        where=perim > 0,
    )
    broken = len(set(lab[g.eu][same & g.virtual].tolist()))
    return broken, float(pp.mean()), lab, pp.tolist()


def _labels(
    g: _Graph, members: list[int], atoms: list[_Atom], old: dict[int, str] | None
) -> np.ndarray | None:
    """Each node's old grid (by position among the old codes; -1: none), the grid
    of most of its households; None when not rebalancing."""
    if old is None:
        return None
    names = sorted({old.get(a, "") for a in members})
    pos = {c: i for i, c in enumerate(names)}
    label = np.full(len(g.groups), -1, dtype=np.int64)
    for i, grp in enumerate(g.groups):
        votes: dict[str, int] = {}
        for a in grp:
            c = old.get(a, "")
            votes[c] = votes.get(c, 0) + len(atoms[a].members)
        if votes:
            label[i] = pos[min(votes, key=lambda c: (-votes[c], c))]
    return label


def _tree_found(
    g: _Graph,
    members: list[int],
    atoms: list[_Atom],
    band: Band,
    kx: float,
    *,
    old: dict[int, str] | None,
    seed: int,
    tries: int,
    stats: dict[str, Any] | None,
) -> list[tuple[tuple[float, ...], list[np.ndarray]]]:
    """Partitions of ``g`` from exact cuts of random spanning trees
    (:func:`geo.gridding._trees._tree_search`), scored as :func:`_search` scores
    its own; ``stats["trees"]`` counts the trees drawn."""
    label = _labels(g, members, atoms, old)
    res = _tree_search(
        g, band, kx=kx, seed=seed, tries=tries, label=label, cap_s=_cap()
    )
    if stats is not None:
        stats["trees"] = stats.get("trees", 0) + res.trees
        stats["tree_cap"] = max(stats.get("tree_cap", 0), tries)
        stats["tree_timed_out"] = stats.get("tree_timed_out", False) or res.timed_out
    return _scored(g, res.parts, atoms, band, old=old, label=label)


def _no_split(
    members: list[int],
    atoms: list[_Atom],
    band: Band,
    steps: int,
    stats: dict[str, Any] | None,
) -> bool:
    """Whether the exact method proves that the whole buildings of ``members``
    cannot be split into in-band groups at all, wherever they stand
    (:func:`geo.gridding._exact._split_exists`, up to ``steps`` groups);
    ``stats["split_groups"]`` records the groups it tried."""
    loads = np.array([atoms[a].load for a in members], dtype=float)
    can, used = _split_exists(loads, band, steps=steps)
    if stats is not None:
        stats["split_groups"] = used
    return can is False


def _exact_found(
    graphs: tuple[_Graph, _Graph | None],
    members: list[int],
    atoms: list[_Atom],
    band: Band,
    kx: float,
    *,
    old: dict[int, str] | None,
    steps: int,
    stats: dict[str, Any] | None,
) -> tuple[_Graph, list[tuple[tuple[float, ...], list[np.ndarray]]]]:
    """Every connected split of the buildings' graph, then of the rim graph with
    its runs of empty nodes contracted (:func:`geo.gridding._exact._exact_partition`,
    up to ``steps`` connected groups each): the graph of the first partition found
    and the partition scored, else the first graph and nothing."""
    g, g_rim = graphs
    for graph, contract in ((g, False), (g_rim, True)):
        if graph is None:
            continue
        ex = _exact_partition(
            graph, band, kx=kx, steps=steps, cap_s=_cap(), contract=contract
        )
        if stats is not None:
            stats["exact_steps"] = stats.get("exact_steps", 0) + ex.steps
        if ex.parts is not None:
            label = _labels(graph, members, atoms, old)
            found = _scored(graph, [ex.parts], atoms, band, old=old, label=label)
            if found:
                return graph, found
    return g, []


def _cpsat_found(
    graphs: tuple[_Graph, _Graph | None],
    members: list[int],
    atoms: list[_Atom],
    band: Band,
    k: int,
    *,
    old: dict[int, str] | None,
    cap: float,
    stats: dict[str, Any] | None,
) -> tuple[_Graph, list[tuple[tuple[float, ...], list[np.ndarray]]], bool]:
    """The integer model on each graph (:func:`geo.gridding._cpsat._each_graph`,
    each count the total allows, ``k`` first, in ``cap``): the graph and scored
    partition found, else the first graph, nothing, and whether both graphs were
    proven to have none (``stats["cpsat"]``: each graph's answer)."""
    st: dict[str, Any] = {} if stats is None else stats
    st["cpsat_counts"] = counts = band.counts(_load_sum(atoms, members), k)
    st["cpsat_nodes"], st["cpsat_cap"] = [len(x.w) for x in graphs if x], cap
    each = _cpsat._each_graph(
        graphs, band, counts=counts, det_time=cap, memo=st.setdefault("cpsat_memo", {})
    )
    answers: list[str] = []
    for graph, res in zip(graphs, each, strict=True):
        found = []
        if graph is not None and res.parts is not None:
            label = _labels(graph, members, atoms, old)
            found = _scored(graph, [res.parts], atoms, band, old=old, label=label)
        # (a partition with a grid of no territory is unusable, and proves nothing)
        answers.append("unknown" if res.parts is not None and not found else res.status)
        st["cpsat"] = dict(zip(("graph", "rim"), answers, strict=False))
        if graph is not None and found:
            return graph, found, False
    return graphs[0], [], answers == ["infeasible", "infeasible"]


def _scored(
    g: _Graph,
    partitions: list[list[np.ndarray]],
    atoms: list[_Atom],
    band: Band,
    *,
    old: dict[int, str] | None,
    label: np.ndarray | None,
) -> list[tuple[tuple[float, ...], list[np.ndarray]]]:
    """Partitions of ``g`` scored as :func:`_search` scores its own (each first
    improved towards keeping households in their grid when rebalancing); those
    with a part of empty slices only (a grid without territory) are left out."""
    found: list[tuple[tuple[float, ...], list[np.ndarray]]] = []
    for parts in partitions:
        if old is not None and label is not None:
            parts = _improve_kept(g, parts, label, band)
        broken, pp_mean, lab, _ = _score(g, parts)
        if (np.bincount(lab, weights=g.area, minlength=len(parts)) <= 0).any():
            continue
        kept = _kept(g, parts, atoms, old) if old is not None else 0.0
        found.append(((broken, -kept, -pp_mean), parts))
    return found


def _search(
    g: _Graph,
    members: list[int],
    atoms: list[_Atom],
    band: Band,
    k: int,
    *,
    clock: _Clock,
    old: dict[int, str] | None,
    seed: int,
    persist: bool,
) -> tuple[list[tuple[tuple[float, ...], list[np.ndarray]]], str]:
    """Partitions of ``g`` found until enough, or the clock runs out (``"timeout"``);
    unless ``persist``, also until 400 tries found none (``"none"``)."""
    label = _labels(g, members, atoms, old)
    search = _Search(g, band, clock, np.random.default_rng(seed), label)
    found: list[tuple[tuple[float, ...], list[np.ndarray]]] = []
    seen: set[tuple[int, ...]] = set()
    why = "none"
    tries = 0
    try:
        want = _WANT if old is None else _WANT_KEPT
        while len(found) < want and (tries < 400 or (persist and not found)):
            tries += 1
            search.seeded = old is not None and tries % 2 == 1
            parts = search.partition(k)
            if parts is None:
                continue
            broken, pp_mean, lab, _ = _score(g, parts)
            sig = tuple(lab.tolist())
            if sig in seen:
                continue
            seen.add(sig)
            if old is not None and label is not None:
                parts = _improve_kept(g, parts, label, band)
                broken, pp_mean, lab, _ = _score(g, parts)
                sig = tuple(lab.tolist())
                seen.add(sig)
            if (np.bincount(lab, weights=g.area, minlength=k) <= 0).any():
                continue  # a part of empty slices only: a grid without territory
            kept = _kept(g, parts, atoms, old) if old is not None else 0.0
            found.append(((broken, -kept, -pp_mean), parts))
    except _Timeout:
        why = "timeout"
    return found, why


def _recut(
    geom: BaseGeometry,
    members: list[int],
    atoms: list[_Atom],
    band: Band,
    k: int,
    kx: float,
    *,
    clock: _Clock,
    old: dict[int, str] | None = None,
    seed: int = 0,
    trees: int = TREE_TRIES,
    exact: int = EXACT_STEPS,
    cpsat: float = 0.0,
    stats: dict[str, Any] | None = None,
) -> tuple[list[tuple[BaseGeometry, list[int]]] | None, str | None]:
    """Cut ``geom`` (holding ``members``) into contiguous in-band grids: ``k`` of
    them by the bipartition search, else as many as exact cuts of up to ``trees``
    random spanning trees give (on each of the two graphs: the buildings' cells,
    then with empty nodes on the boundary), else the exact method's first
    partition (:func:`geo.gridding._exact._exact_partition`, up to ``exact``
    connected parts on each graph), else, with ``cpsat`` (CP-SAT's deterministic
    time; 0: not tried), the integer model's partition on each graph
    (:func:`_cpsat_found`).

    ``old`` maps atoms to their grid code before (rebalancing): among the
    partitions found, the one that keeps most households in their grid wins.
    Returns (pieces or None, why not: ``"timeout"`` (the step clock ran out),
    ``"trees"`` (no tree of the cap could be cut, nor the exact method finish),
    ``"proven"`` (no split of the whole buildings into in-band groups exists,
    wherever they stand), ``"connected"`` (neither graph has a split into
    connected in-band parts: a stranded building, ``stats["stranded"]``, or the
    integer model, for any count the total allows), ``"graph"`` (too large or a
    building point over the band) or ``"none"`` (``k`` grids cannot hold the
    total)). ``stats["trees"]`` adds up the trees drawn, ``stats["exact_steps"]``
    the exact method's connected parts.
    """
    total = _load_sum(atoms, members)
    if not band.min * k - 1e-9 <= total <= band.max * k + 1e-9:
        return None, "none"
    g = _graph(geom, members, atoms, kx)
    if g is None or (g.w > band.max + 1e-9).any():
        return None, "graph"
    # a building no connected in-band grid can hold: a proof, found at once
    if (stuck := _stranded_proof(g, geom, members, atoms, kx, band)) is not None:
        (stats if stats is not None else {})["stranded"] = stuck
        return None, "connected"
    found, why = _search(
        g, members, atoms, band, k, clock=clock, old=old, seed=seed, persist=False
    )
    if not found:
        # the complete method: exact cuts of random spanning trees (any count of
        # grids the total allows), on the buildings' cells, then with empty nodes
        # on the window's boundary (grids may then reach past one another)
        found = _tree_found(
            g, members, atoms, band, kx, old=old, seed=seed, tries=trees, stats=stats
        )
        g_rim = None if found else _graph(geom, members, atoms, kx, rim=True)
        if g_rim is not None:
            found = _tree_found(
                g_rim,
                members,
                atoms,
                band,
                kx,
                old=old,
                seed=seed,
                tries=trees,
                stats=stats,
            )
            if found:
                g = g_rim
        if not found and _no_split(members, atoms, band, exact, stats):
            return None, "proven"  # no grouping of the buildings is in band
        if not found and g_rim is not None and why == "none":
            # the randomised bipartition on the rim graph, until the clock is out
            found, why = _search(
                g_rim,
                members,
                atoms,
                band,
                k,
                clock=clock,
                old=old,
                seed=seed,
                persist=True,
            )
            if found:
                g = g_rim
        if not found:
            # then every connected split of each graph, up to its cap
            g, found = _exact_found(
                (g, g_rim), members, atoms, band, kx, old=old, steps=exact, stats=stats
            )
        if not found and cpsat > 0:
            # last, the integer model on each graph: a partition, or a proof
            g, found, proven = _cpsat_found(
                (g, g_rim), members, atoms, band, k, old=old, cap=cpsat, stats=stats
            )
            if proven:
                return None, "connected"
    if not found:
        return None, why if why == "timeout" else "trees"
    found.sort(key=lambda t: t[0])
    best = found[0][1]
    pieces = []
    for p in best:
        polys = [poly for i in p.tolist() for poly in g.regions[i]]
        geom_p = _cover_union(polys) if polys else shapely.Polygon()
        geom_p = _repaired(geom_p)
        pieces.append(
            (_poly_only(geom_p), [a for i in p.tolist() for a in g.groups[i]])
        )
    return pieces, None


def _improve_kept(
    g: _Graph, parts: list[np.ndarray], label: np.ndarray, band: Band
) -> list[np.ndarray]:
    """Move buildings on the edge of a part back to the part that holds most of
    their old grid, wherever both stay in band and the giver stays connected."""
    n = len(g.w)
    lab = np.empty(n, dtype=np.int64)
    for i, p in enumerate(parts):
        lab[p] = i
    k = len(parts)
    # each old grid's part: the one holding most of its load (greedy matching);
    # the loads of each (part, old grid) added in node order, as one by one
    n_old = int(label.max(initial=-1)) + 2
    pair, at = np.unique(lab * n_old + (label + 1), return_inverse=True)
    sums = np.bincount(at.ravel(), weights=g.w, minlength=len(pair)).tolist()
    keys = [(int(x) // n_old, int(x) % n_old - 1) for x in pair.tolist()]
    part_of: dict[int, int] = {}
    used: set[int] = set()
    for (pi, li), _ in sorted(
        zip(keys, sums, strict=True), key=lambda t: (-t[1], t[0])
    ):
        if pi not in used and li not in part_of:
            part_of[li] = pi
            used.add(pi)
    to = np.full(n_old, -1, dtype=np.int64)
    for li, pi in part_of.items():
        to[li + 1] = pi
    target = to[label + 1]
    adj = g.adjacency()
    loads = np.bincount(lab, weights=g.w, minlength=k).tolist()
    w_l = g.w.tolist()
    target_l = target.tolist()
    lo, hi = band.min - 1e-9, band.max + 1e-9
    # the same labels as a list, and each part's nodes: a connectivity check then
    # walks the part only, not the whole graph
    labl = lab.tolist()
    nodes_of: list[set[int]] = [set() for _ in range(k)]
    for v, part in enumerate(labl):
        nodes_of[part].add(v)

    def locally_joined(part: int, without: int) -> bool:
        """Whether ``without``'s neighbours in its (connected) part stay joined
        through their own neighbours: then removing it cannot split the part."""
        near = [u for u in adj[without] if labl[u] == part]
        if len(near) <= 1:
            return True
        ring = set(near)
        seen = {near[0]}
        stack = [near[0]]
        while stack:
            v = stack.pop()
            for u in adj[v]:
                if u != without and labl[u] == part and u not in seen:
                    if u in ring or not ring.isdisjoint(adj[u]):
                        seen.add(u)
                        stack.append(u)
        return ring <= seen

    def still_connected(part: int, without: int) -> bool:
        members = nodes_of[part]
        size = len(members) - (without in members)
        if size <= 0:
            return False
        if locally_joined(part, without):
            return True
        # (whether the part stays joined does not depend on where the walk starts)
        start = next((u for u in adj[without] if labl[u] == part), None)
        if start is None:  # (a part already in pieces: any node of the rest)
            start = min(members - {without})
        seen = {start}
        stack = [start]
        while stack:
            v = stack.pop()
            for u in adj[v]:
                if u != without and u not in seen and labl[u] == part:
                    seen.add(u)
                    stack.append(u)
        return len(seen) == size

    for _ in range(20):
        moved = False
        for v in np.flatnonzero((target >= 0) & (target != lab)).tolist():
            t, s = target_l[v], labl[v]
            if t == s or t not in [labl[u] for u in adj[v]]:
                continue
            w = w_l[v]
            if loads[s] - w < lo or loads[t] + w > hi:
                continue
            if not still_connected(s, v):
                continue
            lab[v] = t
            labl[v] = t
            nodes_of[s].discard(v)
            nodes_of[t].add(v)
            loads[s] -= w
            loads[t] += w
            moved = True
        if not moved:
            break
    return [np.flatnonzero(lab == i) for i in range(k)]


def _kept(
    g: _Graph, parts: list[np.ndarray], atoms: list[_Atom], old: dict[int, str]
) -> float:
    """Households that keep their old grid under the best code matching."""
    return float(sum(n for _, _, n in _match(g, parts, atoms, old)))


def _match(
    g: _Graph, parts: list[np.ndarray], atoms: list[_Atom], old: dict[int, str]
) -> list[tuple[int, str, int]]:
    """Greedy matching of parts to old codes by households in common."""
    common: dict[tuple[int, str], int] = {}
    for i, p in enumerate(parts):
        for node in p.tolist():
            for a in g.groups[node]:
                c = old.get(a)
                if c is not None:
                    common[(i, c)] = common.get((i, c), 0) + len(atoms[a].members)
    out = []
    used_p: set[int] = set()
    used_c: set[str] = set()
    for (i, c), n in sorted(common.items(), key=lambda t: (-t[1], t[0][0], t[0][1])):
        if i in used_p or c in used_c:
            continue
        used_p.add(i)
        used_c.add(c)
        out.append((i, c, n))
    return out


def assign_codes(
    pieces: list[tuple[BaseGeometry, list[int]]],
    atoms: list[_Atom],
    old: dict[int, str],
) -> list[str | None]:
    """The old code each piece keeps (most households in common), None for new ones."""
    common: dict[tuple[int, str], int] = {}
    for i, (_, m) in enumerate(pieces):
        for a in m:
            c = old.get(a)
            if c is not None:
                common[(i, c)] = common.get((i, c), 0) + len(atoms[a].members)
    codes: list[str | None] = [None] * len(pieces)
    used: set[str] = set()
    for (i, c), _ in sorted(common.items(), key=lambda t: (-t[1], t[0][0], t[0][1])):
        if codes[i] is not None or c in used:
            continue
        codes[i] = c
        used.add(c)
    return codes


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
    pieces: list[tuple[BaseGeometry, list[int]]],
    atoms: list[_Atom],
    band: Band,
    kx: float,
    *,
    cap_s: float | None = None,
    notes: dict[str, Any] | None = None,
) -> list[tuple[BaseGeometry, list[int]]]:
    """Re-cut growing windows around each out-of-band piece of a feasible unit.

    A window is the out-of-band piece and its neighbours, then theirs, up to the
    whole unit; the first window whose load can be cut in band is re-cut by the
    graph search, then by exact cuts of random spanning trees (a few for a
    window, up to ``TREE_TRIES`` on each graph for the whole unit, which is
    always tried before the method gives up). Pieces outside the window keep
    their polygon.

    With a piece still out of band, ``notes["_cause"]`` is ``("search_timed_out",
    {"cap_steps": …, "cap_s": …, "cap_trees": …, "trees": …})`` once the whole
    unit's trees were drawn up to their cap (the caps, and the trees drawn), and
    ``notes["_proof"]`` holds a subset-sum certificate when one proves that no
    in-band partition of the unit's buildings exists
    (:func:`geo.gridding._trees._subset_sum_proof`).
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

    def bad_pieces() -> list[int]:
        return [
            i
            for i, (g, m) in enumerate(pieces)
            if i not in failed
            and (not band.contains(_load(m, atoms)) or (one_piece and _parts(g) > 1))
        ]

    def fits(res: list[tuple[BaseGeometry, list[int]]], geom: BaseGeometry) -> bool:
        """No more pieces than the window has (a hole-free window stays whole)."""
        extra = sum(int(shapely.get_num_geometries(g)) - 1 for g, _ in res)
        return extra <= int(shapely.get_num_geometries(geom)) - 1

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
            if ks:
                geom = (
                    unit_geom
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
                        stats=stats if whole else None,
                    )
                    whole_trees = whole_trees or (whole and why in ("trees", "timeout"))
                    if whole and why == "proven":
                        no_split = True
                    no_connected = no_connected or (whole and why == "connected")
                    if res is not None and not fits(res, geom):
                        res, why = None, "none"  # a hole-free window came out in pieces
                    if res is not None:
                        rest = [p for i, p in enumerate(pieces) if i not in window]
                        pieces = rest + res
                        done = True
                        break
                    if whole and why in (
                        "graph",
                        "trees",
                        "timeout",
                        "proven",
                        "connected",
                    ):
                        break  # (another count: the same trees, the same clock)
                    if why == "graph":
                        break
            if whole and not done:
                failed.add(start)
                break
    if (
        proof is None
        and bad_pieces()
        and not whole_trees
        and not no_connected
        and band.feasible(_load(everyone, atoms))
    ):
        # the step clock ran out before the whole unit was tried: its trees still
        # are (they have their own cap), so the method never stops at a window
        ks = band.counts(_load(everyone, atoms), len(pieces))
        res, why = _recut(
            unit_geom,
            everyone,
            atoms,
            band,
            ks[0],
            kx,
            clock=_Clock(0, cap_s),
            trees=TREE_TRIES,
            exact=EXACT_STEPS,
            cpsat=_cpsat._budget(),
            stats=stats,
        )
        whole_trees = why in ("trees", "timeout")
        no_split = why == "proven"
        no_connected = why == "connected"
        if res is not None and fits(res, unit_geom):
            pieces = res
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
            notes["_cause"] = (
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
    return pieces


def _rejoin_detached(
    pieces: list[tuple[BaseGeometry, list[int]]], atoms: list[_Atom]
) -> list[tuple[BaseGeometry, list[int]]]:
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
