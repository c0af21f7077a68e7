"""Cutting ordered sequences of buildings into in-band runs (geo.gridding._sequences)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.gridding._sequences import _band_segments
from geo.plan import Band


def _one_end_at_a_time(w: np.ndarray, band: Band) -> list[int] | None:
    """The dynamic programme as it was written first, one run end at a time."""
    n = len(w)
    lo, hi, tgt = band.min, band.max, band.target
    pre = np.concatenate([[0.0], np.cumsum(w)])
    inf = math.inf
    cost = [inf] * (n + 1)
    back = [-1] * (n + 1)
    cost[0] = 0.0
    for i in range(1, n + 1):
        j_lo = int(np.searchsorted(pre, pre[i] - hi - 1e-9, side="left"))
        j_hi = int(np.searchsorted(pre, pre[i] - lo + 1e-9, side="right")) - 1
        best, arg = inf, -1
        for j in range(max(j_lo, 0), min(j_hi, i - 1) + 1):
            if cost[j] == inf:
                continue
            c = cost[j] + (pre[i] - pre[j] - tgt) ** 2
            if c < best:
                best, arg = c, j
        cost[i], back[i] = best, arg
    if cost[n] == inf:
        return None
    ends, i = [], n
    while i > 0:
        ends.append(i)
        i = back[i]
    return ends[::-1]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 120), max_size=60),
    st.integers(1, 300),
    st.integers(0, 150),
    st.booleans(),
)
def test_the_blocked_programme_gives_the_runs_of_the_one_at_a_time_one(
    loads, lo, width, fractional
) -> None:
    w = np.array(loads, dtype=float)
    if fractional:
        w = w + np.linspace(0.0, 0.9, len(w))
    band = Band(lo, lo + width)
    assert _band_segments(w, band) == _one_end_at_a_time(w, band)
