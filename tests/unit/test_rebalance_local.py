"""Rebalancing works in the region around what changed, and falls back to every grid."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from samples import sample_county

import geo.gridding.rebalance as rebalance_mod
from geo.crs import STORAGE_CRS
from geo.gridding._atoms import _atoms
from geo.gridding._codes import _natural
from geo.gridding.generate import generate_grids
from geo.gridding.rebalance import rebalance
from geo.plan import Band


@pytest.fixture(scope="module")
def county():
    return sample_county(8_000, seed=21)


@pytest.fixture(scope="module")
def plan(county):
    return generate_grids(county.households, county.areas)


def _estate(county, n: int) -> gpd.GeoDataFrame:
    leaf = county.areas[county.areas["level"] == "village"]
    v = leaf.iloc[len(leaf) // 3]
    p = v.geometry.representative_point()
    rng = np.random.default_rng(5)
    b = rng.integers(0, max(1, n // 40), n)
    return gpd.GeoDataFrame(
        {
            "household_id": [f"EST-{i:04d}" for i in range(n)],
            "building_id": [f"EB-{j}" for j in b],
            "area_code": v["code"],
        },
        geometry=shapely.points(
            np.full(n, p.x) + (b % 5) * 1e-4, np.full(n, p.y) + (b // 5) * 1e-4
        ),
        crs=4326,
    )


def _fingerprint(r) -> tuple:
    a = r.plan.assignments.sort_values("household_id").reset_index(drop=True)
    g = r.plan.grids.sort_values("grid_code")
    return (
        tuple(a["household_id"]),
        tuple(a["grid_code"]),
        tuple(g["grid_code"]),
        tuple(g.geometry.to_wkb()),
    )


def _demolished(county, plan) -> pd.DataFrame:
    victim = plan.grids.sort_values("households").iloc[0]["grid_code"]
    gone = plan.assignments.loc[plan.assignments["grid_code"] == victim, "household_id"]
    gone = set(gone.iloc[: int(len(gone) * 0.6)])
    return county.households[~county.households["household_id"].isin(gone)]


def test_the_region_gives_the_plan_every_grid_gives(county, plan, monkeypatch) -> None:
    grown = pd.concat([county.households, _estate(county, 500)], ignore_index=True)
    local = rebalance(plan.grids, plan.assignments, grown)
    assert local.report["grids_touched"]
    assert local.plan.report["metrics"]["in_band_share"] == 1.0
    monkeypatch.setattr(rebalance_mod, "_RINGS", 10_000)  # the region is every grid
    whole = rebalance(plan.grids, plan.assignments, grown)
    assert _fingerprint(local) == _fingerprint(whole)
    assert local.report["moved_households"] == whole.report["moved_households"]


def test_a_region_that_cannot_settle_falls_back_to_every_grid(
    county, plan, monkeypatch
) -> None:
    shrunk = _demolished(county, plan)
    monkeypatch.setattr(rebalance_mod, "_RINGS", 10_000)
    whole = rebalance(plan.grids, plan.assignments, shrunk)
    # no rings: the grid out of band alone can neither merge nor take households
    monkeypatch.setattr(rebalance_mod, "_RINGS", 0)
    calls: list[int] = []
    real_run = rebalance_mod._run

    def counting(*args, **kwargs):
        out = real_run(*args, **kwargs)
        calls.append(out.settled)
        return out

    monkeypatch.setattr(rebalance_mod, "_run", counting)
    alone = rebalance(plan.grids, plan.assignments, shrunk)
    assert calls == [False, True]  # the region failed, every grid settled it
    assert alone.plan.report["metrics"]["in_band_share"] == 1.0
    assert _fingerprint(alone) == _fingerprint(whole)


def test_grids_outside_the_region_are_kept_exactly(county, plan) -> None:
    grown = pd.concat([county.households, _estate(county, 500)], ignore_index=True)
    r = rebalance(plan.grids, plan.assignments, grown)
    touched = set(r.report["grids_touched"]) | set(r.report["retired_codes"])
    old = plan.grids.set_index("grid_code")
    new = r.plan.grids.set_index("grid_code")
    kept = [c for c in old.index if c not in touched]
    assert len(kept) > len(old) // 2
    for c in kept:
        assert new.geometry[c].equals_exact(old.geometry[c], 0)
        assert new.at[c, "households"] == old.at[c, "households"]


def test_oversize_buildings_are_reported_for_the_whole_plan(county, plan) -> None:
    # two buildings over the band: one in the region of the change, one far away
    leaf = county.areas[county.areas["level"] == "village"]
    big = []
    for k, v in enumerate([leaf.iloc[0], leaf.iloc[-1]]):
        p = v.geometry.representative_point()
        big.append(
            gpd.GeoDataFrame(
                {
                    "household_id": [f"TOWER{k}-{i:03d}" for i in range(340 + k)],
                    "building_id": f"塔楼{k}号",
                    "area_code": v["code"],
                },
                geometry=[p] * (340 + k),
                crs=4326,
            )
        )
    hh = pd.concat([county.households, *big], ignore_index=True)
    r = rebalance(plan.grids, plan.assignments, hh)
    split = [e for e in r.plan.report["exceptions"] if e["kind"] == "building_split"]
    band = Band(200, 300)
    g = plan.grids.to_crs(STORAGE_CRS).reset_index(drop=True)
    h = hh.to_crs(STORAGE_CRS).reset_index(drop=True)
    old = plan.assignments.set_index("household_id")["grid_code"]
    pos = _natural(g, h, old)
    _, want = _atoms(h, pos, np.ones(len(h)), band, g["grid_code"].tolist())
    assert split == want
    assert {e["households"] for e in split} == {340, 341}
    assert any("塔楼0号" in e["reason"] for e in split)
