"""Exact in-band cuts of random spanning trees: the complete method inside a unit.

A partition of a graph into connected parts is a spanning tree with some of its
edges removed (each part keeps a spanning tree of its own, joined by the removed
edges), so a unit's buildings can be cut into connected in-band grids if and only
if some spanning tree of their graph can. For one tree this is decided exactly by
a subset-sum dynamic programme over the tree (:func:`_cut_tree`): for each node,
the set of sizes the still-open part holding it can have, as a bitset (a Python
int, bit ``s`` set when size ``s`` is possible), where every part closed below it
is in band. The tree can be cut when the root's set meets the band; the cut is
then read back from the stored sets, closing each part near the target.

Trees are drawn at random (Kruskal on random weights, a fixed seed), weighted so
that they cross virtual edges (between separate pieces of a unit) and long edges
last, and, when rebalancing, the old grids' boundaries last, so the parts follow
them. :func:`_tree_search` draws up to a stated number of trees; a partition that
exists is found with a probability that grows with every tree, and a unit whose
buildings cannot be grouped into in-band sets at all is proven so beforehand by
:func:`_subset_sum_proof` (no tree needed).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from geo.gridding._adjacency import _Graph
from geo.plan import Band

__all__: list[str] = []

#: spanning trees drawn for one unit (or one rebalanced window) before the method
#: gives up and reports ``search_timed_out`` with this cap. Counted, not timed, so
#: a plan is the same on a busy machine as on an idle one.
TREE_TRIES = 400

#: successful trees compared (compactness) before the best cut is kept
_TREE_WANT = 3

#: after the first successful tree, at most this many more are drawn for the others
_TREE_MORE = 24


def _spanning_tree(
    nodes: np.ndarray, eu: np.ndarray, ev: np.ndarray, weights: np.ndarray
) -> np.ndarray | None:
    """The minimum spanning tree of ``nodes`` under ``weights`` (ties broken by
    position, as a stable sort would): positions of its edges, lightest first,
    or None when the edges do not connect the nodes.

    Borůvka's algorithm in numpy (every component takes its lightest edge out,
    a few rounds): the same tree as Kruskal's, the edges ranked so that no two
    weigh the same, without a Python loop over the edges.

    Examples
    --------
    >>> import numpy as np
    >>> nodes = np.arange(3)
    >>> eu, ev = np.array([0, 1, 0]), np.array([1, 2, 2])
    >>> _spanning_tree(nodes, eu, ev, np.array([0.1, 0.2, 0.3])).tolist()
    [0, 1]
    """
    m = len(nodes)
    if m <= 1:
        return np.zeros(0, dtype=np.int64)
    local = np.full(int(max(eu.max(initial=0), ev.max(initial=0), nodes.max())) + 1, -1)
    local[nodes] = np.arange(m)
    if len(weights) <= _KRUSKAL_MAX:
        return _kruskal(m, local[eu].tolist(), local[ev].tolist(), weights)
    u, v = local[eu], local[ev]
    rank = np.empty(len(weights), dtype=np.int64)
    rank[np.argsort(weights, kind="stable")] = np.arange(len(weights))
    comp = np.arange(m)
    taken = np.zeros(len(weights), dtype=bool)
    while True:
        cu, cv = comp[u], comp[v]
        out = np.flatnonzero(cu != cv)
        if not len(out):
            break
        ends = np.concatenate([cu[out], cv[out]])
        edge = np.concatenate([out, out])
        o = np.lexsort((rank[edge], ends))
        ends, edge = ends[o], edge[o]
        first = np.ones(len(ends), dtype=bool)
        first[1:] = ends[1:] != ends[:-1]
        comps, best = ends[first], edge[first]
        taken[best] = True
        # each component hooks onto the one across its lightest edge; two that
        # chose the same edge point at each other: the smaller becomes the root
        parent = np.arange(m)
        parent[comps] = np.where(cu[best] == comps, cv[best], cu[best])
        across = parent[comps]
        roots = comps[(parent[across] == comps) & (comps < across)]
        parent[roots] = roots
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
        comp = parent[comp]
    tree = np.flatnonzero(taken)
    if len(tree) != m - 1:
        return None
    return tree[np.argsort(rank[tree])]


#: edges up to which :func:`_spanning_tree` runs Kruskal's algorithm in Python
#: (it stops once the tree is complete, and costs no numpy call per round)
_KRUSKAL_MAX = 20_000


def _kruskal(
    m: int, u: list[int], v: list[int], weights: np.ndarray
) -> np.ndarray | None:
    """:func:`_spanning_tree` by Kruskal's algorithm: the edges by weight (ties by
    position: a stable sort), each taken when it joins two components (union-find
    with path halving), lightest first; None when they do not connect the ``m``
    nodes. The same tree as Borůvka's, whose edges are ranked the same way."""
    parent = list(range(m))
    tree: list[int] = []
    for e in np.argsort(weights, kind="stable").tolist():
        a, b = u[e], v[e]
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        while parent[b] != b:
            parent[b] = parent[parent[b]]
            b = parent[b]
        if a != b:
            parent[a] = b
            tree.append(e)
            if len(tree) == m - 1:
                break
    if len(tree) != m - 1:
        return None
    return np.asarray(tree, dtype=np.int64)


def _bits(x: int) -> list[int]:
    """Positions of the set bits of ``x``, lowest first."""
    out = []
    while x:
        low = x & -x
        out.append(low.bit_length() - 1)
        x ^= low
    return out


def _sumset(a: int, b: int, mask: int) -> int:
    """``{s + t : s in a, t in b}`` as a bitset, sizes above the mask dropped."""
    if a.bit_count() < b.bit_count():
        a, b = b, a
    out = 0
    for t in _bits(b):
        out |= a << t
    return out & mask


def _int_loads(w: np.ndarray) -> np.ndarray | None:
    """``w`` as whole numbers, or None when some load is not whole (weighted)."""
    r = np.round(w)
    if not np.allclose(w, r, atol=1e-9) or (r < 0).any():
        return None
    return r.astype(np.int64)


def _int_band(band: Band) -> tuple[int, int, int] | None:
    """The band as whole sizes ``(lo, hi, target)``, or None when it holds none."""
    lo, hi = math.ceil(band.min - 1e-9), math.floor(band.max + 1e-9)
    if lo > hi or hi < 0:
        return None
    return max(lo, 0), hi, round(band.target)


def _cut_tree(
    parent: np.ndarray, order: np.ndarray, w: np.ndarray, band: tuple[int, int, int]
) -> np.ndarray | None:
    """Cut a rooted tree into connected parts of sizes within ``band``, exactly.

    ``order`` lists the nodes root first, each after its parent (``parent[root]``
    is -1); ``w`` are whole sizes. Returns each node's part (0, 1, …) or None when
    no set of tree edges can be removed so that every part is in band.

    Examples
    --------
    A path of six nodes of 100: three parts of 200 (or two of 300).

    >>> import numpy as np
    >>> parent = np.array([-1, 0, 1, 2, 3, 4])
    >>> lab = _cut_tree(parent, np.arange(6), np.full(6, 100), (200, 300, 250))
    >>> sorted(np.bincount(lab).tolist())
    [2, 2, 2]
    >>> _cut_tree(parent[:5], np.arange(5), np.full(5, 100), (210, 290, 250)) is None
    True
    """
    lo, hi, target = band
    mask = (1 << (hi + 1)) - 1
    n = len(order)
    children: list[list[int]] = [[] for _ in range(len(parent))]
    for v in order[1:].tolist():
        children[int(parent[v])].append(v)
    sets: list[int] = [0] * len(parent)
    prefix: list[list[int]] = [[] for _ in range(len(parent))]
    band_bits = mask >> lo << lo
    wl = w.tolist()
    for v in reversed(order.tolist()):
        s = (1 << wl[v]) & mask
        if not s:
            return None  # a node over the band
        steps = [s]
        for c in children[v]:
            sc = sets[c]
            opts = sc | (1 if sc & band_bits else 0)  # keep the edge, or cut it
            s = _sumset(s, opts, mask)
            if not s:
                return None
            steps.append(s)
        sets[v] = s
        prefix[v] = steps
    root = int(order[0])
    if not sets[root] & band_bits:
        return None
    lab = np.full(len(parent), -1, dtype=np.int64)
    count = 0

    def close_at(s: int) -> int:
        """The in-band size of ``s`` nearest the target."""
        sizes = _bits(s & band_bits)
        return min(sizes, key=lambda t: (abs(t - target), t))

    stack = [(root, close_at(sets[root]), count)]
    count += 1
    while stack:
        v, size, part = stack.pop()  # v's open part must hold ``size``
        lab[v] = part
        steps = prefix[v]
        kids = children[v]
        # undo the children last to first: child i took y of the size, the
        # children before it (and v) the rest, which steps[i] must allow
        for i in range(len(kids) - 1, -1, -1):
            c = kids[i]
            before = steps[i]
            sc = sets[c]
            if sc & band_bits and (before >> size) & 1:
                stack.append((c, close_at(sc), count))  # cut: c opens a new part
                count += 1
                continue
            # keep: the largest size of c's open part the rest can complement
            y = next(
                y
                for y in reversed(_bits(sc))
                if y <= size and (before >> (size - y)) & 1
            )
            stack.append((c, y, part))
            size -= y
    if n and (lab < 0).any():
        return None  # (cannot happen: every node is reached from the root)
    return lab


def _subset_sum_proof(w: np.ndarray, band: Band) -> dict[str, Any] | None:
    """A certificate that no partition of buildings ``w`` into in-band groups
    exists (connected or not), or None when this check cannot prove it.

    The check: some building belongs to no set of whole buildings whose total is
    in band (a subset-sum over the others, exact for whole loads), so whatever
    grid holds it is out of band. Returns ``{"building_load": …, "min": …, "max":
    …, "buildings": …, "total": …}`` for the first such building load.

    Examples
    --------
    >>> import numpy as np
    >>> _subset_sum_proof(np.array([170, 170, 170]), Band(200, 300))["building_load"]
    170.0
    >>> _subset_sum_proof(np.array([170, 100, 170]), Band(200, 300)) is None
    True
    """
    wi = _int_loads(np.asarray(w, dtype=float))
    ib = _int_band(band)
    if wi is None or ib is None or not len(wi):
        return None
    lo, hi, _ = ib
    mask = (1 << (hi + 1)) - 1
    band_bits = mask >> lo << lo
    values, counts = np.unique(wi, return_counts=True)

    def sums(skip: int) -> int:
        """Subset sums (up to ``hi``) of the buildings, one of load ``skip`` left out."""
        s = 1
        for v, c in zip(values.tolist(), counts.tolist(), strict=True):
            c -= v == skip
            if v == 0 or c <= 0:
                continue
            c = min(c, hi // v)  # more copies cannot fit under hi anyway
            part = 1
            while c > 0:  # bounded knapsack by binary splitting
                take = min(part, c)
                s |= s << (v * take)
                s &= mask
                c -= take
                part *= 2
        return s

    lonely = [
        float(v)
        for v in values.tolist()
        # (a building over the band has its own cause, building_over_max)
        if v <= hi and not (sums(v) << v) & band_bits
    ]
    if not lonely:
        return None
    return {
        "building_load": lonely[0],
        "building_loads": lonely,
        "min": band.min,
        "max": band.max,
        "buildings": len(wi),
        "total": float(wi.sum()),
    }


@dataclass(frozen=True)
class TreeSearch:
    """What :func:`_tree_search` did: the partitions found and the trees drawn."""

    parts: list[list[np.ndarray]]
    trees: int
    timed_out: bool


def _tree_search(
    g: _Graph,
    band: Band,
    *,
    kx: float,
    seed: int,
    tries: int | None = None,
    label: np.ndarray | None = None,
    cap_s: float = 30.0,
) -> TreeSearch:
    """Draw up to ``tries`` random spanning trees of ``g`` and cut each exactly.

    Returns the distinct partitions found (node arrays per part), at most
    ``_TREE_WANT``, and how many trees were drawn; ``timed_out`` when the
    wall-clock safety net ``cap_s`` stopped it first.
    """
    tries = TREE_TRIES if tries is None else tries
    ib = _int_band(band)
    wi = _int_loads(g.w)
    n = len(g.w)
    if ib is None or wi is None or n == 0:
        return TreeSearch([], 0, False)
    if n == 1:
        ok = ib[0] <= int(wi[0]) <= ib[1]
        return TreeSearch([[np.arange(1)]] if ok else [], 1, False)
    rng = np.random.default_rng(seed)
    xy = np.asarray(g.keys, dtype=float) * np.array([kx, 1.0])
    d = np.hypot(*(xy[g.eu] - xy[g.ev]).T)
    med = float(np.median(d[~g.virtual])) if (~g.virtual).any() else 1.0
    longness = np.minimum(d / max(med, 1e-12), 6.0) * 0.25
    bias = np.where(g.virtual, 8.0, 0.0) + longness
    cross = (
        np.asarray(label[g.eu] != label[g.ev], dtype=float)
        if label is not None
        else None
    )
    nodes = np.arange(n)
    deadline = time.perf_counter() + cap_s
    found: list[list[np.ndarray]] = []
    seen: set[bytes] = set()
    first_at = -1
    drawn = 0
    for t in range(tries):
        if time.perf_counter() > deadline:
            return TreeSearch(found, drawn, not found)
        if found and (len(found) >= _TREE_WANT or t - first_at > _TREE_MORE):
            break
        drawn += 1
        weights = rng.random(len(g.eu)) + bias
        if cross is not None and t % 2 == 0:
            weights = weights + 3.0 * cross
        tree = _spanning_tree(nodes, g.eu, g.ev, weights)
        if tree is None:
            return TreeSearch([], drawn, False)  # not connected: no tree at all
        parent, order = _root(n, g.eu[tree], g.ev[tree], int(rng.integers(n)))
        lab = _cut_tree(parent, order, wi, ib)
        if lab is None:
            continue
        key = lab.tobytes()
        if key in seen:
            continue
        seen.add(key)
        k = int(lab.max()) + 1
        found.append([np.flatnonzero(lab == i) for i in range(k)])
        if first_at < 0:
            first_at = t
    return TreeSearch(found, drawn, False)


def _root(
    n: int, eu: np.ndarray, ev: np.ndarray, root: int
) -> tuple[np.ndarray, np.ndarray]:
    """Parent of each node and the nodes in breadth-first order from ``root``, for
    the tree of edges ``eu``–``ev`` on nodes ``0..n-1``."""
    adj: list[list[int]] = [[] for _ in range(n)]
    for a, b in zip(eu.tolist(), ev.tolist(), strict=True):
        adj[a].append(b)
        adj[b].append(a)
    parent = np.full(n, -1, dtype=np.int64)
    seen = [False] * n
    seen[root] = True
    order = [root]
    par = [-1] * n
    for v in order:
        for c in adj[v]:
            if not seen[c]:
                seen[c] = True
                par[c] = v
                order.append(c)
    parent[:] = par
    return parent, np.asarray(order, dtype=np.int64)
