"""The seeded sample counties the tests use, each generated once per test session."""

from __future__ import annotations

import functools
from functools import lru_cache

from geo.sample import SampleCounty, generate_county


@functools.cache
def sample_county(households: int, seed: int) -> SampleCounty:
    """``generate_county(households, seed=seed)``, cached: treat it as read-only."""
    return generate_county(households, seed=seed)


def joined(nodes: list[int], edges: set | frozenset) -> bool:
    """Whether ``nodes`` are connected by ``edges`` (pairs, smaller first): the
    brute-force checks of the exact searches (tests/unit/test_exact.py,
    test_cpsat.py)."""
    seen, todo = {nodes[0]}, [nodes[0]]
    while todo:
        v = todo.pop()
        for u in nodes:
            if u not in seen and (min(u, v), max(u, v)) in edges:
                seen.add(u)
                todo.append(u)
    return len(seen) == len(nodes)


def connected_split_counts(
    loads: tuple[int, ...],
    edges: frozenset[tuple[int, int]],
    lo: int = 200,
    hi: int = 300,
) -> set[int]:
    """The part counts for which some partition of every node into connected parts,
    each of ``lo``–``hi``, exists (every set partition, by brute force over subsets;
    a part of empty nodes only is never in band): the brute force of
    tests/unit/test_cpsat.py and test_stranded.py."""
    n = len(loads)

    @lru_cache(None)
    def counts(mask: int) -> frozenset[int]:
        if mask == 0:
            return frozenset({0})
        low = mask & -mask
        out: set[int] = set()
        sub = mask
        while sub:
            if sub & low:
                nodes = [i for i in range(n) if sub >> i & 1]
                total = sum(loads[i] for i in nodes)
                if lo <= total <= hi and joined(nodes, edges):
                    out |= {c + 1 for c in counts(mask & ~sub)}
            sub = (sub - 1) & mask
        return frozenset(out)

    return set(counts((1 << n) - 1))
