"""The exact method of the re-cut: every split of a building graph into connected
in-band parts, searched exhaustively up to a counted cap.

Where the random spanning trees (:mod:`geo.gridding._trees`) find no cut, this
either finds a partition of the graph's nodes into connected parts whose loads
lie in the band, or proves, by trying every connected part that can hold the
first node still open, that none exists. Work is counted in the connected parts
visited, not timed, so a plan is the same on a busy machine as on an idle one.

Two searches:

- :func:`_split_exists`, whether whole buildings can be split into in-band groups
  at all, wherever they stand: no graph, so a "no" is a fact of the map (the
  cause ``no_in_band_split``).
- :func:`_exact_partition`, a partition of a graph into connected in-band parts.
  The nodes are ordered along the graph's longer axis; the first open building
  must lie in some part, so each connected set holding it (and only open nodes)
  with a load in band, and no more than leaves the rest a feasible total, is
  tried in turn (each enumerated once: a set grows by a neighbour, and a
  neighbour once tried is barred from its later siblings). A try is kept only if
  every connected piece of what is left has a total some whole number of in-band
  parts can hold; each piece is then solved on its own, and a piece found
  impossible is remembered. Empty nodes (a rim) are taken only on the way to a
  further building; those no part needs join a part beside them at the end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from geo.gridding._adjacency import _components, _Graph
from geo.gridding._trees import _int_band, _int_loads
from geo.plan import Band

#: connected parts the exact search may visit before it stops (then the re-cut
#: reports ``search_timed_out`` with this cap); about 1–2 s of work
EXACT_STEPS = 300_000


@dataclass
class ExactSearch:
    """What :func:`_exact_partition` found: ``parts`` (node arrays, or None),
    whether the search ran to its end (``exhausted``: with ``parts`` None, no
    partition exists) and the connected parts visited (``steps``)."""

    parts: list[np.ndarray] | None
    exhausted: bool
    steps: int


class _Capped(Exception):
    pass


def _exact_partition(
    g: _Graph,
    band: Band,
    *,
    kx: float = 1.0,
    steps: int = EXACT_STEPS,
    cap_s: float = 30.0,
    contract: bool = False,
) -> ExactSearch:
    """Split ``g``'s nodes into connected parts with loads in ``band``, exactly.

    Returns the first partition found, or, with ``exhausted`` and no parts, the
    proof that none exists; neither when the cap of ``steps`` connected parts (or
    the wall-clock safety net ``cap_s``) stopped it first, or the loads are not
    whole (weighted households).

    With ``contract``, each run of empty nodes (no households) joined to one
    another and bordering the same buildings is searched as one node (a rim of
    hundreds of empty nodes becomes a few dozen): a partition found is one of
    ``g``, but a search run to its end then proves nothing of ``g``, so
    ``exhausted`` is False unless a partition was found.
    """
    ib = _int_band(band)
    wi = _int_loads(g.w)
    n = len(g.w)
    if ib is None or wi is None or n == 0:
        return ExactSearch(None, False, 0)
    lo, hi = ib[0], ib[1]
    xy = np.asarray(g.keys, dtype=float).reshape(-1, 2) * np.array([kx, 1.0])
    eu, ev = np.asarray(g.eu, dtype=np.int64), np.asarray(g.ev, dtype=np.int64)
    sup = None
    if contract:
        sup, wi, xy, eu, ev = _contract_empty(wi, xy, eu, ev)
        n = len(wi)
    # the nodes along the longer axis: a part grown from one end tends to leave
    # the rest in one piece
    axis = int(np.ptp(xy[:, 1]) > np.ptp(xy[:, 0])) if n > 1 else 0
    order = np.lexsort((xy[:, 1 - axis], xy[:, axis]))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    w = wi[order].tolist()
    nbr = [0] * n
    for a, b in zip(rank[eu].tolist(), rank[ev].tolist(), strict=True):
        nbr[a] |= 1 << b
        nbr[b] |= 1 << a
    budget = [steps]
    deadline = time.perf_counter() + cap_s
    impossible: set[int] = set()

    def load_of(mask: int) -> int:
        return sum(w[j] for j in _bits(mask))

    loaded = sum(1 << j for j in range(n) if w[j] > 0)
    if not loaded:  # (no households at all: no part can be in band)
        return ExactSearch(None, sup is None, 0)

    def feasible(t: int) -> bool:
        # (a piece of empty nodes only is left free: it joins a part beside it)
        return t == 0 or -(-t // hi) <= t // max(lo, 1)

    def no_empty_leaf(s: int) -> bool:
        """No empty node of ``s`` hangs on by one edge (without it, ``s`` is as
        good; a part is searched for in that form only, its spare empty nodes
        left free)."""
        return all((nbr[j] & s).bit_count() >= 2 for j in _bits(s & ~loaded))

    def pieces(mask: int) -> list[int]:
        out = []
        while mask:
            seen = front = mask & -mask
            while front:
                front = _around(front, nbr) & mask & ~seen
                seen |= front
            out.append(seen)
            mask &= ~seen
        return out

    def leads_on(u: int, avail: int, room: int) -> bool:
        """Whether a building of at most ``room`` households among ``avail`` is
        reached from the empty node bit ``u`` through empty nodes of ``avail``.

        A part searched for in its least form (no empty node it could do without)
        takes an empty node only on the way to a building not yet in it: every
        such node separates the part, and beyond it lies a building. So a set
        grown by an empty node that leads to none is never one of those parts."""
        seen = front = u
        empty = avail & ~loaded
        while front:
            reach = _around(front, nbr)
            if any(w[j] <= room for j in _bits(reach & avail & loaded)):
                return True
            front = reach & empty & ~seen
            seen |= front
        return False

    def grown(v: int, load0: int, open_: int, top: int) -> Iterator[int]:
        """Every connected set of ``open_`` nodes holding node bit ``v`` whose load
        is in band and at most ``top``, each once (a depth-first walk with its own
        stack: a set grows by a neighbour; one tried is barred from the sets its
        siblings grow)."""
        # frames: [set, load, neighbours still to try, barred]
        i = v.bit_length() - 1
        stack = [[v, load0, nbr[i] & open_ & ~v, v]]
        if load0 >= lo:
            yield v
        while stack:
            fr = stack[-1]
            s, load, ext, barred = fr
            if not ext:
                stack.pop()
                continue
            u = ext & -ext
            fr[2] = ext ^ u
            fr[3] = barred | u
            j = u.bit_length() - 1
            if load + w[j] > top:
                continue
            budget[0] -= 1
            if budget[0] < 0 or (
                not budget[0] & 4095 and time.perf_counter() > deadline
            ):
                raise _Capped
            child = s | u
            if not w[j] and not leads_on(u, open_ & ~child & ~barred, top - load):
                continue  # an empty node leading to no further building
            more = nbr[j] & open_ & ~child & ~barred
            stack.append([child, load + w[j], (ext ^ u) | more, barred | u])
            if load + w[j] >= lo:
                yield child

    def solve(open_: int) -> list[int] | None:
        if not open_:
            return []
        if open_ in impossible:
            return None
        todo = open_ & loaded
        if not todo:
            return []  # empty nodes only: free
        v = todo & -todo
        i = v.bit_length() - 1
        # the most the part may hold: what is left must be nothing, or a total
        # some whole number of in-band parts holds (knife-edge: exactly 200)
        total = load_of(open_)
        top = next(
            (t for t in range(min(hi, total), lo - 1, -1) if feasible(total - t)),
            -1,
        )
        if w[i] <= top:
            for s in grown(v, w[i], open_, top):
                if not no_empty_leaf(s):
                    continue
                rest = pieces(open_ & ~s)
                if not all(feasible(load_of(r)) for r in rest):
                    continue
                out = [s]
                for r in sorted(rest, key=int.bit_count):
                    sub = solve(r)
                    if sub is None:
                        break
                    out += sub
                else:
                    return out
        impossible.add(open_)
        return None

    try:
        found = solve((1 << n) - 1)
    except _Capped:
        return ExactSearch(None, False, steps)
    used = steps - budget[0]
    if found is None:
        return ExactSearch(None, sup is None, used)
    # the free empty nodes join a part beside them, run by run
    free = ((1 << n) - 1) & ~sum(found)
    while free:
        before = free
        for q, part in enumerate(found):
            touch = _around(part, nbr)
            if touch & free:
                found[q] |= touch & free
                free &= ~touch
        if free == before:  # (a graph in pieces: cannot happen, joined by edges)
            return ExactSearch(None, False, used)
    parts = [np.sort(order[[j for j in range(n) if mask >> j & 1]]) for mask in found]
    if sup is not None:  # each contracted node back to the nodes it stands for
        parts = [np.flatnonzero(np.isin(sup, p)) for p in parts]
    return ExactSearch(parts, True, used)


def _bits(mask: int) -> Iterator[int]:
    """The positions of the set bits of ``mask``, lowest first."""
    while mask:
        low = mask & -mask
        mask ^= low
        yield low.bit_length() - 1


def _around(mask: int, nbr: list[int]) -> int:
    """Every neighbour of the nodes of ``mask`` (``nbr``: each node's, as bits)."""
    out = 0
    for j in _bits(mask):
        out |= nbr[j]
    return out


def _contract_empty(
    w: np.ndarray, xy: np.ndarray, eu: np.ndarray, ev: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Empty nodes (``w`` 0) joined by an edge and bordering the same loaded
    nodes, merged: each node's new node, and the new loads, points (the mean of
    the merged) and edges (each once, none from a node to itself)."""
    n = len(w)
    empty = w == 0
    loaded_of: list[set[int]] = [set() for _ in range(n)]
    for a, b in zip(eu.tolist(), ev.tolist(), strict=True):
        if empty[a] and not empty[b]:
            loaded_of[a].add(b)
        elif empty[b] and not empty[a]:
            loaded_of[b].add(a)
    same = [
        (a, b)
        for a, b in zip(eu.tolist(), ev.tolist(), strict=True)
        if empty[a] and empty[b] and loaded_of[a] == loaded_of[b]
    ]
    sup = _components(n, [a for a, _ in same], [b for _, b in same])
    m = int(sup.max(initial=-1)) + 1
    w2 = np.bincount(sup, weights=w, minlength=m).round().astype(np.int64)
    cnt = np.bincount(sup, minlength=m)
    xy2 = np.stack(
        [np.bincount(sup, weights=xy[:, k], minlength=m) / cnt for k in (0, 1)],
        axis=1,
    )
    a2, b2 = sup[eu], sup[ev]
    keep = a2 != b2
    pairs = np.unique(
        np.stack([np.minimum(a2, b2)[keep], np.maximum(a2, b2)[keep]], axis=1), axis=0
    ).reshape(-1, 2)
    return sup, w2, xy2, pairs[:, 0], pairs[:, 1]


def _split_exists(
    loads: np.ndarray, band: Band, *, steps: int = EXACT_STEPS
) -> tuple[bool | None, int]:
    """Whether whole items of ``loads`` (buildings) can be split into groups whose
    totals all lie in ``band``, wherever they stand: True, False (every grouping
    was tried: a proof) or None (the cap of ``steps`` groups stopped it first, or
    a load is not whole), and the groups tried.

    Equal loads are interchangeable, so the search runs over how many of each load
    are left: the group holding one of the largest left is each multiset of the
    rest in turn (largest loads first), and a count of loads left found impossible
    is remembered.

    Examples
    --------
    >>> _split_exists(np.array([211, 13, 14, 7, 35, 10, 11, 9, 28, 25, 6, 31]), Band())
    (False, 905)
    >>> _split_exists(np.array([120, 80, 150, 50]), Band())
    (True, 5)
    """
    ib = _int_band(band)
    wi = _int_loads(np.asarray(loads, dtype=float))
    if ib is None or wi is None:
        return None, 0
    lo, hi = ib[0], ib[1]
    vals, counts = np.unique(wi[wi > 0], return_counts=True)
    vals, counts = vals[::-1].tolist(), counts[::-1].tolist()  # largest first
    m = len(vals)
    budget = [steps]
    impossible: set[tuple[int, ...]] = set()

    def groups(
        left: list[int], reach: list[int], i: int, t: int
    ) -> Iterator[tuple[int, ...]]:
        """Multisets of ``left`` (counts of loads ``i`` on, most of each first)
        that, added to ``t``, total within the band (``reach``: what the loads
        left from each index on add up to)."""
        if i == m:
            if t >= lo:
                budget[0] -= 1
                if budget[0] < 0:
                    raise _Capped
                yield ()
            return
        if t + reach[i] < lo:  # (even all of the rest would not reach the band)
            return
        for c in range(min(left[i], (hi - t) // vals[i]), -1, -1):
            for more in groups(left, reach, i + 1, t + c * vals[i]):
                yield (c, *more)

    def solve(left: tuple[int, ...]) -> bool:
        first = next((i for i in range(m) if left[i]), None)
        if first is None:
            return True
        if left in impossible:
            return False
        rest = list(left)
        rest[first] -= 1
        reach = [*np.cumsum((np.array(rest) * np.array(vals))[::-1])[::-1].tolist(), 0]
        for g in groups(rest, reach, first, vals[first]):
            after = tuple(a - b for a, b in zip(rest, (0,) * first + g, strict=True))
            if solve(after):
                return True
        impossible.add(left)
        return False

    try:
        ok = solve(tuple(counts))
    except _Capped:
        return None, steps
    return ok, steps - budget[0]
