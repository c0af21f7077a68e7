"""The seeded sample counties the tests use, each generated once per test session."""

from __future__ import annotations

import functools

from geo.sample import SampleCounty, generate_county


@functools.cache
def sample_county(households: int, seed: int) -> SampleCounty:
    """``generate_county(households, seed=seed)``, cached: treat it as read-only."""
    return generate_county(households, seed=seed)
