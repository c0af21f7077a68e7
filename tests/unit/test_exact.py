"""The re-cut's exact method (geo.gridding._exact), checked against brute force:
whether whole buildings can be split in band at all, and every connected split of
a small graph (issue 24, item 1)."""

from __future__ import annotations

import itertools
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from samples import joined

from geo.gridding._exact import _contract_empty, _exact_partition, _split_exists
from geo.plan import Band

BAND = Band(200, 300)


def _in_band(t: float) -> bool:
    return 200 <= t <= 300


def _brute_split(loads: tuple[int, ...], edges: frozenset | None = None) -> bool:
    """Every set partition of the nodes, by brute force over subsets (connected in
    ``edges`` when given): whether one has all parts in band."""
    n = len(loads)

    def connected(mask: int) -> bool:
        nodes = [i for i in range(n) if mask >> i & 1]
        return edges is None or joined(nodes, edges)

    @lru_cache(None)
    def f(mask: int) -> bool:
        if mask == 0:
            return True
        low = mask & -mask
        sub = mask
        while sub:
            if sub & low:
                t = sum(loads[i] for i in range(n) if sub >> i & 1)
                if _in_band(t) and connected(sub) and f(mask & ~sub):
                    return True
            sub = (sub - 1) & mask
        return False

    return f((1 << n) - 1)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 300), min_size=1, max_size=10))
def test_split_exists_agrees_with_brute_force(loads: list[int]) -> None:
    found, tried = _split_exists(np.array(loads), BAND)
    assert found is _brute_split(tuple(loads))
    assert tried >= 0


def test_split_exists_proves_the_known_cases() -> None:
    assert _split_exists(np.array([150, 150, 100]), BAND)[0] is False
    assert _split_exists(np.array([150, 150, 150]), BAND)[0] is False
    assert _split_exists(np.array([120, 100, 80, 100]), BAND)[0] is True
    # a cap too small to finish proves nothing
    assert _split_exists(np.array([60] * 20), BAND, steps=1)[0] is None
    # weighted (fractional) loads are not searched
    assert _split_exists(np.array([100.5, 100.5]), BAND)[0] is None


@st.composite
def small_graphs(draw):
    """Connected graphs of 2–9 nodes (a random spanning path plus random edges),
    loads 0–220 (0: an empty node of a rim)."""
    n = draw(st.integers(2, 9))
    loads = draw(st.lists(st.integers(0, 220), min_size=n, max_size=n))
    perm = draw(st.permutations(list(range(n))))
    edges = {(min(a, b), max(a, b)) for a, b in itertools.pairwise(perm)}
    extra = draw(
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=8)
    )
    edges |= {(min(a, b), max(a, b)) for a, b in extra if a != b}
    return loads, sorted(edges)


def _graph(loads: list[int], edges: list[tuple[int, int]]) -> SimpleNamespace:
    n = len(loads)
    return SimpleNamespace(
        w=np.array(loads, dtype=float),
        keys=[(float(i % 3), float(i // 3)) for i in range(n)],
        eu=np.array([a for a, _ in edges], dtype=np.int64),
        ev=np.array([b for _, b in edges], dtype=np.int64),
    )


def _valid(parts, loads, edges) -> bool:
    """Parts cover every node once, each connected with its load in band."""
    es = set(edges)
    cover = sorted(int(v) for p in parts for v in p)
    if cover != list(range(len(loads))):
        return False
    for p in parts:
        nodes = [int(v) for v in p]
        if not joined(nodes, es) or not _in_band(sum(loads[v] for v in nodes)):
            return False
    return True


@settings(max_examples=300, deadline=None)
@given(small_graphs())
def test_exact_partition_agrees_with_brute_force(graph) -> None:
    loads, edges = graph
    res = _exact_partition(_graph(loads, edges), BAND)
    assert res.exhausted  # (small graphs: never capped)
    exists = _brute_split(tuple(loads), frozenset(edges))
    assert (res.parts is not None) is exists
    if res.parts is not None:
        assert _valid(res.parts, loads, edges)


@settings(max_examples=200, deadline=None)
@given(small_graphs())
def test_a_contracted_search_finds_only_partitions_of_the_graph(graph) -> None:
    """Runs of empty nodes searched as one: what it finds is a partition of the
    graph itself, and a search that found nothing proves nothing."""
    loads, edges = graph
    res = _exact_partition(_graph(loads, edges), BAND, contract=True)
    if res.parts is not None:
        assert _valid(res.parts, loads, edges)
    else:
        assert not res.exhausted or not any(v == 0 for v in loads)


def test_a_rim_of_empty_nodes_contracts_to_its_runs() -> None:
    # buildings 0 and 1, and a rim 2-3-4-5 where 2, 3 border building 0 only and
    # 4, 5 building 1 only: two runs
    w = np.array([150, 150, 0, 0, 0, 0])
    eu = np.array([0, 0, 0, 2, 3, 4, 1, 1])
    ev = np.array([1, 2, 3, 3, 4, 5, 4, 5])
    xy = np.zeros((6, 2))
    sup, w2, _, a, b = _contract_empty(w, xy, eu, ev)
    assert len(w2) == 4 and sup[2] == sup[3] and sup[4] == sup[5]
    assert sup[3] != sup[4] and w2.tolist().count(0) == 2
    assert len(a) == len(set(zip(a.tolist(), b.tolist(), strict=True)))


def test_a_row_reached_round_its_rim() -> None:
    """120, 100, 80, 100 in a row (only 120+80 | 100+100 is in band): not on the
    row itself; through empty rim nodes (one past each pair), yes."""
    row = [(0, 1), (1, 2), (2, 3)]
    res = _exact_partition(_graph([120, 100, 80, 100], row), BAND)
    assert res.parts is None and res.exhausted
    rim = [*row, (0, 4), (2, 4), (1, 5), (3, 5)]
    loads = [120, 100, 80, 100, 0, 0]
    for contract in (False, True):
        res = _exact_partition(_graph(loads, rim), BAND, contract=contract)
        assert res.parts is not None
        assert _valid(res.parts, loads, rim)
