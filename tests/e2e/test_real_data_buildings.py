"""Liechtenstein with households estimated from its buildings (not address points)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from geo.gridding.checks import check_plan
from geo.gridding.generate import generate_grids


@pytest.mark.slow
def test_liechtenstein_households_from_buildings(liechtenstein_buildings: Any) -> None:
    hh, areas = liechtenstein_buildings.households, liechtenstein_buildings.areas
    assert len(liechtenstein_buildings.buildings) == 17_677
    sizes = hh.groupby("building_id").size()
    assert (len(sizes), len(hh), int(sizes.max())) == (11_507, 26_216, 193)
    # country, Oberland and Unterland, 11 municipalities (the Swiss Fläsch that the
    # extract catches is in no district and is left out)
    assert areas["level"].value_counts().to_dict() == {
        "village": 11,
        "township": 2,
        "county": 1,
    }
    assert "Fläsch" not in set(areas["name"])


@pytest.mark.slow
def test_liechtenstein_building_grids_keep_every_rule(
    liechtenstein_buildings: Any,
) -> None:
    hh, areas = liechtenstein_buildings.households, liechtenstein_buildings.areas
    plan = generate_grids(hh, areas)
    assert plan.report["metrics"]["in_band_share"] == 1.0
    assert check_plan(plan, hh, areas) == []


@pytest.fixture(scope="module")
def drifted(liechtenstein_buildings: Any) -> tuple[Any, Any]:
    """Grids drawn without a random 10 % of buildings, then rebalanced with them."""
    from geo.gridding.rebalance import rebalance

    hh, areas = liechtenstein_buildings.households, liechtenstein_buildings.areas
    ids = hh["building_id"].unique()
    later_ids = ids[np.random.default_rng(2024).random(len(ids)) < 0.10]
    later = hh["building_id"].isin(later_ids).to_numpy()
    plan = generate_grids(hh[~later], areas)
    return plan, rebalance(plan.grids, plan.assignments, hh), later


@pytest.mark.slow
def test_liechtenstein_drift_before_rebalancing(
    liechtenstein_buildings: Any, drifted: Any
) -> None:
    plan, _, later = drifted
    hh, areas = liechtenstein_buildings.households, liechtenstein_buildings.areas
    assert check_plan(plan, hh[~later], areas) == []


@pytest.mark.slow
def test_liechtenstein_drift_rebalances_keeping_every_rule(
    liechtenstein_buildings: Any, drifted: Any
) -> None:
    _, r, _ = drifted
    hh, areas = liechtenstein_buildings.households, liechtenstein_buildings.areas
    assert check_plan(r.plan, hh, areas) == []
