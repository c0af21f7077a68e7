"""The seeded sample counties the tests use, each generated once per test session."""

from __future__ import annotations

import functools

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
