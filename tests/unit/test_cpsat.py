"""The re-cut's integer model (geo.gridding._cpsat), checked against brute force over
every set partition of small graphs, empty nodes (a rim) included."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from samples import connected_split_counts, joined

from geo.gridding._cpsat import _cpsat_partition, _reduce
from geo.gridding._exact import _exact_partition
from geo.plan import Band

BAND = Band(200, 300)


def _in_band(t: int) -> bool:
    return 200 <= t <= 300


@st.composite
def small_graphs(draw):
    """Connected graphs of 2–9 nodes (a random spanning path plus random edges);
    loads 0–220, a third of them 0 (empty nodes of a rim)."""
    n = draw(st.integers(2, 9))
    loads = draw(
        st.lists(st.one_of(st.just(0), st.integers(1, 220)), min_size=n, max_size=n)
    )
    perm = draw(st.permutations(list(range(n))))
    edges = {(min(a, b), max(a, b)) for a, b in itertools.pairwise(perm)}
    extra = draw(
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=8)
    )
    edges |= {(min(a, b), max(a, b)) for a, b in extra if a != b}
    return loads, sorted(edges)


@st.composite
def rim_graphs(draw):
    """2–4 buildings (each beside the next) and a ring of 3–5 empty nodes around
    them, each empty node beside one or two buildings: the shapes the reduction
    works on (runs along one building, corners between two)."""
    nb = draw(st.integers(2, 4))
    ne = draw(st.integers(3, 9 - nb))
    loads = draw(st.lists(st.integers(40, 220), min_size=nb, max_size=nb)) + [0] * ne
    edges = {(i, i + 1) for i in range(nb - 1)}
    ring = list(range(nb, nb + ne))
    edges |= {(min(a, b), max(a, b)) for a, b in itertools.pairwise([*ring, ring[0]])}
    for e in ring:
        for b in draw(st.sets(st.integers(0, nb - 1), min_size=1, max_size=2)):
            edges.add((b, e))
    return loads, sorted(edges)


def _graph(loads: list[int], edges: list[tuple[int, int]]) -> SimpleNamespace:
    return SimpleNamespace(
        w=np.array(loads, dtype=float),
        eu=np.array([a for a, _ in edges], dtype=np.int64),
        ev=np.array([b for _, b in edges], dtype=np.int64),
    )


def _check(loads: list[int], edges: list[tuple[int, int]]) -> None:
    res = _cpsat_partition(_graph(loads, edges), BAND)
    possible = connected_split_counts(tuple(loads), frozenset(edges))
    assert res.status != "unknown"  # (small graphs: never capped)
    assert (res.status == "found") is bool(possible), (res, possible)
    if res.status == "found":
        assert res.parts is not None and len(res.parts) in possible
        cover = sorted(int(v) for p in res.parts for v in p)
        assert cover == list(range(len(loads)))
        for p in res.parts:
            nodes = [int(v) for v in p]
            assert joined(nodes, set(edges))
            assert _in_band(sum(loads[v] for v in nodes))
    else:  # the proof covers every count the total allows
        total = sum(loads)
        assert res.counts == [k for k in range(1, 10) if 200 * k <= total <= 300 * k]


@settings(max_examples=300, deadline=None)
@given(small_graphs())
def test_cpsat_agrees_with_brute_force(graph) -> None:
    _check(*graph)


@settings(max_examples=300, deadline=None)
@given(rim_graphs())
def test_cpsat_agrees_with_brute_force_on_rims(graph) -> None:
    _check(*graph)


@settings(max_examples=200, deadline=None)
@given(st.one_of(small_graphs(), rim_graphs()))
def test_the_reduction_keeps_every_building_and_shrinks_only_empty_nodes(
    graph,
) -> None:
    loads, edges = graph
    keep, small, expand = _reduce(loads, edges)
    assert {v for v in range(len(loads)) if loads[v]} <= set(keep)
    assert all(0 <= a < b < len(keep) for a, b in small)
    labels = expand(list(range(len(keep))))
    assert sorted(set(labels.tolist())) == list(range(len(keep)))


@st.composite
def larger_rims(draw):
    """4–11 buildings (a random tree plus chords) inside a ring of 4–13 empty
    nodes, each beside one or two buildings; the total often exactly k·200."""
    nb = draw(st.integers(4, 11))
    ne = draw(st.integers(4, 13))
    loads = draw(st.lists(st.integers(20, 119), min_size=nb, max_size=nb))
    if draw(st.booleans()):
        loads[0] += -(-sum(loads) // 200) * 200 - sum(loads)
    edges = {(draw(st.integers(0, i - 1)), i) for i in range(1, nb)}
    for a, b in draw(
        st.lists(st.tuples(st.integers(0, nb - 1), st.integers(0, nb - 1)), max_size=nb)
    ):
        if a != b:
            edges.add((min(a, b), max(a, b)))
    ring = list(range(nb, nb + ne))
    edges |= {(min(a, b), max(a, b)) for a, b in itertools.pairwise([*ring, ring[0]])}
    for e in ring:
        for b in draw(st.sets(st.integers(0, nb - 1), min_size=1, max_size=2)):
            edges.add((b, e))
    return loads + [0] * ne, sorted(edges)


@settings(max_examples=60, deadline=None)
@given(larger_rims())
def test_cpsat_agrees_with_the_exact_search_on_larger_rims(graph) -> None:
    """Graphs of 8–24 nodes, past brute force: the exact search
    (geo.gridding._exact, itself checked against brute force), run to its end on
    every node, gives the same answer."""
    loads, edges = graph
    g = _graph(loads, edges)
    g.keys = [(float(i % 5), float(i // 5)) for i in range(len(loads))]
    ex = _exact_partition(g, BAND, steps=10**7)
    res = _cpsat_partition(g, BAND)
    assert ex.exhausted and res.status != "unknown"
    assert (res.status == "found") is (ex.parts is not None)


def test_a_row_is_proven_impossible_and_its_rim_is_not() -> None:
    """120, 100, 80, 100 in a row: 120+80 | 100+100 only, not connected on the
    row; through empty nodes past each pair, connected."""
    row = [(0, 1), (1, 2), (2, 3)]
    assert _cpsat_partition(_graph([120, 100, 80, 100], row), BAND).status == (
        "infeasible"
    )
    rim = [*row, (0, 4), (2, 4), (1, 5), (3, 5)]
    res = _cpsat_partition(_graph([120, 100, 80, 100, 0, 0], rim), BAND)
    assert res.status == "found" and res.parts is not None
    assert sorted(p.tolist() for p in res.parts) == [[0, 2, 4], [1, 3, 5]]


def test_a_run_along_one_building_is_one_node() -> None:
    """A ring of empty nodes along building 0 (each beside it and its two ring
    neighbours) shrinks to one node; the answer is the same."""
    loads = [200, 200, 0, 0, 0, 0, 0]
    edges = [(0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (1, 6), (2, 3), (3, 4), (4, 5)]
    edges += [(2, 6), (5, 6)]
    keep, _, _ = _reduce(loads, sorted(edges))
    assert len(keep) < len(loads)
    _check(loads, sorted(edges))


def test_what_the_model_cannot_answer_is_unknown() -> None:
    # weighted (fractional) loads, a band without a whole size, a zero minimum
    g = _graph([100.5, 100.5], [(0, 1)])  # type: ignore[list-item]
    assert _cpsat_partition(g, BAND).status == "unknown"
    assert _cpsat_partition(_graph([1, 1], [(0, 1)]), Band(0.2, 0.8)).status == (
        "unknown"
    )
    assert _cpsat_partition(_graph([1, 1], [(0, 1)]), Band(0, 3)).status == "unknown"
    # a limit too small to decide: never a proof
    big = _graph([7] * 60, [(i, i + 1) for i in range(59)])
    res = _cpsat_partition(big, Band(20, 21), det_time=0.0)
    assert res.status == "unknown" and res.parts is None
