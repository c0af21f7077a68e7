"""Assignment of households to grids: pure function and PostGIS agree, edges and outsiders."""

from __future__ import annotations

import geopandas as gpd
import pytest
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import PlanConflictError
from geo.gridding.assign import assign_households
from geo.io import InputError, prepare
from geo.sample import generate_county
from geo.store.assign import assign_plan
from geo.store.loading import load
from geo.store.plans import plan_grids, publish_plan, save_plan

# a village of 0.02° x 0.01° cut into two grids along lon = 118.91
VILLAGE = shapely.box(118.90, 28.90, 118.92, 28.91)
WEST = shapely.box(118.90, 28.90, 118.91, 28.91)
EAST = shapely.box(118.91, 28.90, 118.92, 28.91)


def _setup(session: Session) -> gpd.GeoDataFrame:
    areas = gpd.GeoDataFrame(
        {
            "code": ["330803000000", "330803100000", "330803100201"],
            "name": ["衢江区", "高家镇", "湖仁村"],
            "level": ["county", "township", "village"],
            "parent_code": [None, "330803000000", "330803100000"],
        },
        geometry=[VILLAGE.buffer(0.01), VILLAGE.buffer(0.005), VILLAGE],
        crs=4326,
    )
    load(session, prepare(areas, "areas", source="areas"))
    hh = gpd.GeoDataFrame(
        {
            "household_id": ["w1", "w2", "e1", "edge", "corner", "nogrid"],
            "address": [
                "高家镇湖仁村1组1号",
                "高家镇湖仁村1组2号",
                "高家镇湖仁村2组1号",
                "高家镇湖仁村2组2号",
                "高家镇湖仁村3组1号",
                "高家镇湖仁村3组9号",
            ],
        },
        geometry=shapely.points(
            [118.905, 118.906, 118.915, 118.91, 118.90, 118.925],
            [28.905, 28.906, 28.905, 28.905, 28.90, 28.905],
        ),
        crs=4326,
    )
    hh["area_code"] = None
    load(session, prepare(hh, "households", source="hh"))
    return hh


def _grids(codes=("33080310020101", "33080310020102")) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "grid_code": list(codes),
            "area_code": ["330803100201"] * 2,
            "name": ["一网格", "二网格"],
        },
        geometry=[WEST, EAST],
        crs=4326,
    )


def test_pure_assignment_edges_and_outside() -> None:
    hh = gpd.GeoDataFrame(
        {"household_id": ["in", "edge", "out"]},
        geometry=shapely.points([118.905, 118.91, 119.5], [28.905, 28.905, 28.905]),
        crs=4326,
    )
    res = assign_households(hh, _grids())
    rows = res.assignments.set_index("household_id")
    assert rows.loc["in", "grid_code"] == "33080310020101"
    assert not rows.loc["in", "on_boundary"]
    assert rows.loc["edge", "grid_code"] == "33080310020101"  # smaller code wins
    assert rows.loc["edge", "candidates"] == 2 and rows.loc["edge", "on_boundary"]
    assert res.outside["household_id"].tolist() == ["out"]
    with pytest.raises(ValueError, match="different CRS"):
        assign_households(hh.to_crs(3857), _grids())


def test_postgis_assignment_matches_pure(session: Session) -> None:
    hh = _setup(session)
    plan = save_plan(session, "330803100000", _grids(), name="湖仁村 v1")
    rep = assign_plan(session, plan)
    assert rep.assigned == 5
    assert rep.outside == ["nogrid"]
    assert rep.on_boundary == 2  # the shared edge and the village corner
    db = dict(
        session.execute(
            text(
                "SELECT h.external_id, g.code FROM assignments a JOIN households h ON h.id = a.household_id "
                "JOIN grids g ON g.id = a.grid_id WHERE a.plan_id = :p"
            ),
            {"p": plan},
        ).all()
    )
    pure = assign_households(hh, _grids())
    assert db == dict(
        zip(
            pure.assignments["household_id"], pure.assignments["grid_code"], strict=True
        )
    )
    # tie broken by code, deterministically: flip the codes and the edge house follows
    plan2 = save_plan(session, "330803100000", _grids(("Z2", "A1")))
    assign_plan(session, plan2)
    edge = session.execute(
        text(
            "SELECT g.code FROM assignments a JOIN households h ON h.id = a.household_id "
            "JOIN grids g ON g.id = a.grid_id WHERE a.plan_id = :p AND h.external_id = 'edge'"
        ),
        {"p": plan2},
    ).scalar_one()
    assert edge == "A1"
    counts = plan_grids(session, plan).set_index("grid_code")["households"].to_dict()
    assert counts == {"33080310020101": 4, "33080310020102": 1}


def test_reassignment_after_redraw_and_unknown_plan(session: Session) -> None:
    _setup(session)
    plan = save_plan(session, "330803100000", _grids())
    assign_plan(session, plan)
    session.execute(
        text(
            "UPDATE grids SET geom = ST_Multi(ST_MakeEnvelope(118.90, 28.90, 118.912, 28.91, 4326)) WHERE plan_id = :p AND code LIKE '%01'"
        ),
        {"p": plan},
    )
    session.execute(
        text(
            "UPDATE grids SET geom = ST_Multi(ST_MakeEnvelope(118.912, 28.90, 118.93, 28.91, 4326)) WHERE plan_id = :p AND code LIKE '%02'"
        ),
        {"p": plan},
    )
    rep = assign_plan(session, plan)
    assert rep.outside == []
    assert rep.per_grid == {"33080310020101": 4, "33080310020102": 2}
    with pytest.raises(LookupError, match="There is no plan 987654"):
        assign_plan(session, 987654)


def test_publish_is_atomic_and_archives_the_previous(session: Session) -> None:
    _setup(session)
    p1 = save_plan(session, "330803100000", _grids())
    p2 = save_plan(session, "330803100000", _grids())
    publish_plan(session, p1)
    publish_plan(session, p2)
    rows = dict(
        session.execute(
            text("SELECT id, status FROM plans WHERE id IN (:a, :b)"),
            {"a": p1, "b": p2},
        ).all()
    )
    assert rows == {p1: "archived", p2: "published"}
    versions = (
        session.execute(text("SELECT version FROM plans ORDER BY id")).scalars().all()
    )
    assert versions == [1, 2]
    with pytest.raises(PlanConflictError, match="only a draft can be published"):
        publish_plan(session, p1)


def test_save_plan_rejects_bad_grids(session: Session) -> None:
    _setup(session)
    bad = _grids()
    bad.loc[1, "grid_code"] = bad.loc[0, "grid_code"]
    with pytest.raises(InputError, match="duplicate grid codes"):
        save_plan(session, "330803100201", bad)
    with pytest.raises(InputError, match="unknown area 'nope'"):
        save_plan(session, "nope", _grids())
    with pytest.raises(InputError, match="EPSG:4326"):
        save_plan(session, "330803100000", _grids().to_crs(3857))


def test_sample_county_one_grid_per_village(session: Session) -> None:
    county = generate_county(3_000, seed=3)
    load(session, prepare(county.areas, "areas", source="areas"))
    load(session, prepare(county.households, "households", source="hh"))
    villages = county.areas[county.areas["level"].isin(["village", "community"])]
    grids = gpd.GeoDataFrame(
        {"grid_code": villages["code"] + "01", "area_code": villages["code"]},
        geometry=villages.geometry.values,
        crs=4326,
    )
    root = county.areas.loc[county.areas["level"] == "county", "code"].iloc[0]
    plan = save_plan(session, root, grids)
    rep = assign_plan(session, plan)
    assert rep.outside == []
    assert rep.assigned == len(county.households)
    expected = county.households.groupby("area_code").size()
    got = {k[:-2]: v for k, v in rep.per_grid.items() if v}
    assert got == expected.to_dict()
