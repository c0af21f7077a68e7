"""Workspace's explicit keyword arguments reach what they stand for (no **options)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo.errors import InputError
from geo.gridding.generate import generate_grids
from geo.workspace import AreaData, Workspace


@pytest.fixture(scope="module")
def ws(make_database):  # type: ignore[no-untyped-def]
    w = Workspace.connect(make_database("wsapi"))
    yield w
    w.engine.dispose()


def _towns() -> gpd.GeoDataFrame:
    """Two townships (no parent) overlapping by a strip 0.002° wide."""
    return gpd.GeoDataFrame(
        {"area_code": ["T1", "T2"], "name": ["东镇", "西镇"]},
        geometry=[shapely.box(0, 0, 0.012, 0.01), shapely.box(0.01, 0, 0.02, 0.01)],
        crs=4326,
    )


def test_load_forwards_columns_defaults_and_clip(ws: Workspace) -> None:
    towns = _towns()
    with pytest.raises(InputError, match="overlap"):
        ws.load(
            "areas",
            towns,
            source="towns.gpkg",
            columns={"code": "area_code"},
            defaults={"level": "township"},
        )
    assert ws.areas().empty, "a refused file loads nothing"
    report = ws.load(
        "areas",
        towns,
        source="towns.gpkg",
        columns={"code": "area_code"},
        defaults={"level": "township"},
        clip=True,
    )
    assert (report.inserted, report.source) == (2, "towns.gpkg")
    assert report.notes, "clip says what it cut"
    areas = ws.areas(level="township")
    assert areas["code"].tolist() == ["T1", "T2"]
    assert areas["name"].tolist() == ["东镇", "西镇"]


def test_load_refuses_clip_for_households_and_unknown_keywords(ws: Workspace) -> None:
    hh = gpd.GeoDataFrame(
        {"household_id": ["a"]}, geometry=[shapely.Point(0.005, 0.005)], crs=4326
    )
    with pytest.raises(ValueError, match="clip applies to areas only"):
        ws.load("households", hh, clip=True)
    with pytest.raises(TypeError, match="colums"):
        ws.load("households", hh, colums={"household_id": "id"})  # type: ignore[call-arg]
    with ws.engine.connect() as conn:
        assert (
            pd.read_sql_query("SELECT count(*) AS n FROM households", conn)["n"].iloc[0]
            == 0
        )


def _village() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    rng = np.random.default_rng(0)
    hh = gpd.GeoDataFrame(
        {"household_id": [f"h{i}" for i in range(1000)]},
        geometry=shapely.points(rng.uniform(0, 0.01, 1000), rng.uniform(0, 0.01, 1000)),
        crs=4326,
    )
    village = gpd.GeoDataFrame(
        {"code": ["V"], "level": ["village"]},
        geometry=[shapely.box(0, 0, 0.01, 0.01)],
        crs=4326,
    )
    return hh, village


def test_generate_forwards_every_keyword(ws: Workspace) -> None:
    hh, village = _village()
    hh["w"] = 1.0
    town = village.assign(level="township")
    area = AreaData("V", town, hh, None, None, None)
    river = gpd.GeoDataFrame(
        {"name": ["河"]},
        geometry=[shapely.LineString([(0.005, -1), (0.005, 1)])],
        crs=4326,
    )
    kw = {
        "min_households": 150,
        "max_households": 250,
        "target": 180,
        "respect_level": "township",
        "barriers": river,
        "weight": "w",
        "seed": 3,
        "code_digits": 3,
    }
    plan = ws.generate(area, **kw)  # type: ignore[arg-type]
    direct = generate_grids(hh, town, **kw)  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(plan.assignments, direct.assignments)
    params = plan.report["params"]
    assert (params["min_households"], params["max_households"], params["target"]) == (
        150,
        250,
        180,
    )
    assert (params["respect_level"], params["weight"], params["seed"]) == (
        "township",
        "w",
        3,
    )
    assert all(len(c) == len("V") + 3 for c in plan.grids["grid_code"])
    # no grid crosses the river: every grid lies on one side of x = 0.005
    bounds = plan.grids.bounds
    assert ((bounds["maxx"] <= 0.005 + 1e-9) | (bounds["minx"] >= 0.005 - 1e-9)).all()
    unbarred = ws.generate(area, **{**kw, "barriers": None})  # type: ignore[arg-type]
    ub = unbarred.grids.bounds
    assert not ((ub["maxx"] <= 0.005 + 1e-9) | (ub["minx"] >= 0.005 - 1e-9)).all()
    with pytest.raises(ValueError, match="target 400"):
        ws.generate(area, target=400)


def test_rebalance_forwards_band_locked_weight_and_seed(ws: Workspace) -> None:
    hh, village = _village()
    plan = generate_grids(hh, village)
    info = {"metrics": {"retired_codes": ["V09"]}}
    area = AreaData("V", village, hh, plan, 1, info)
    locked = plan.grids["grid_code"].iloc[:1].tolist()
    hh2 = hh.assign(w=1.0)
    area2 = AreaData("V", village, hh2, plan, 1, info)
    r = ws.rebalance(
        area2, min_households=150, max_households=350, locked=locked, weight="w", seed=2
    )
    assert r.plan.report["params"] == {
        "min_households": 150,
        "max_households": 350,
        "locked": locked,
        "weight": "w",
        "seed": 2,
    }
    assert "V09" in r.report["retired_codes"], "the plan's retired codes stay retired"
    with pytest.raises(ValueError, match="locked grid.*nope"):
        ws.rebalance(area, locked={"nope"})
