"""Forked workers: the same results as serial, failures recomputed in the caller."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import shapely

import geo.gridding.generate as gen
from geo.gridding._fork import fork_map, worker_count
from geo.sample import generate_county

PARENT = os.getpid()


def _square(i: int) -> tuple[int, bytes]:
    g = shapely.buffer(shapely.Point(i * 0.1, i / 3), 0.01 + i * 1e-3)
    return i * i, shapely.to_wkb(g)


def test_same_results_as_serial_in_item_order() -> None:
    serial = [_square(i) for i in range(40)]
    order = list(reversed(range(40)))
    assert fork_map(_square, 40, order=order, workers=2) == serial
    assert fork_map(_square, 40, workers=3) == serial
    assert fork_map(_square, 40, workers=1) == serial
    assert fork_map(_square, 0, workers=2) == []


def test_geometries_come_back_bit_for_bit() -> None:
    def poly(i: int) -> shapely.Geometry:
        return shapely.Polygon([(0, 0), (1 / 3, i / 7), (i / 11, 1)])

    out = fork_map(poly, 12, workers=2)
    assert [shapely.to_wkb(g) for g in out] == [
        shapely.to_wkb(poly(i)) for i in range(12)
    ]


def test_an_error_is_raised_in_the_caller() -> None:
    def bad(i: int) -> int:
        if i == 7:
            raise ValueError("item 7")
        return i

    with pytest.raises(ValueError, match="item 7"):
        fork_map(bad, 20, workers=2)


def test_a_killed_worker_is_made_up_for() -> None:
    def dies(i: int) -> int:
        if os.getpid() != PARENT:
            os.kill(os.getpid(), signal.SIGKILL)
        return i + 1

    assert fork_map(dies, 10, workers=2) == list(range(1, 11))


def test_worker_count_follows_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("GRIDMAP_WORKERS", "1")
    assert worker_count() == 1
    monkeypatch.setenv("GRIDMAP_WORKERS", "3")
    assert worker_count() in (1, 3)  # 1 when other threads run in this process


def test_generation_in_workers_draws_the_same_plan(monkeypatch) -> None:
    c = generate_county(4_000, seed=2)

    def plan() -> tuple[list, list, bytes]:
        p = gen.generate_grids(c.households, c.areas)
        g = p.grids.sort_values("grid_code")
        wkb = b"".join(shapely.to_wkb(np.asarray(g.geometry.values, dtype=object)))
        return p.assignments.values.tolist(), g["grid_code"].tolist(), wkb

    serial = plan()
    monkeypatch.setattr(gen, "PARALLEL_MIN_ATOMS", 0)
    monkeypatch.setattr(gen, "worker_count", lambda: 2)
    assert plan() == serial
