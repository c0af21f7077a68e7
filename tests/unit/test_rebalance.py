"""Rebalancing: few households move, identities stable, locks hold, properties kept; diffs."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from samples import sample_county
from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from api.cli import app
from geo.gridding.diff import diff_plans
from geo.gridding.generate import generate_grids
from geo.gridding.rebalance import rebalance
from geo.io import prepare, read_plan_files, write_plan_files
from geo.sample import SampleCounty
from geo.store.loading import load
from geo.store.plans import plan_frames, publish_plan, save_generated_plan


@pytest.fixture(scope="module")
def county() -> SampleCounty:
    return sample_county(8_000, seed=21)


@pytest.fixture(scope="module")
def plan(county):
    return generate_grids(county.households, county.areas)


def _estate(
    county, n: int, seed: int = 0, village: str | None = None
) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    leaf = county.areas[county.areas["level"] == "village"]
    v = leaf[leaf["code"] == village].iloc[0] if village else leaf.iloc[len(leaf) // 2]
    p = v.geometry.representative_point()
    n_b = max(1, n // 40)
    bx = p.x + rng.normal(0, 0.0008, n_b)
    by = p.y + rng.normal(0, 0.0008, n_b)
    ok = shapely.contains(v.geometry, shapely.points(bx, by))
    bx, by = np.where(ok, bx, p.x), np.where(ok, by, p.y)
    b = rng.integers(0, n_b, n)
    return gpd.GeoDataFrame(
        {
            "household_id": [f"NEW{seed}-{i:04d}" for i in range(n)],
            "building_id": [f"NB{seed}-{j}" for j in b],
            "area_code": v["code"],
        },
        geometry=shapely.points(bx[b], by[b]),
        crs=4326,
    )


def test_nothing_changed_nothing_moves(county, plan) -> None:
    r = rebalance(plan.grids, plan.assignments, county.households)
    assert r.report["moved_households"] == 0
    assert r.changes.empty
    assert r.report["grids_touched"] == []
    same = r.plan.grids.set_index("grid_code").geometry
    old = plan.grids.set_index("grid_code").geometry
    assert set(same.index) == set(old.index)
    assert all(same[c].equals_exact(old[c], 0) for c in old.index)


def test_new_estate_moves_few_and_keeps_identities(county, plan) -> None:
    estate = _estate(county, 600, seed=1)
    grown = pd.concat([county.households, estate], ignore_index=True)
    r = rebalance(plan.grids, plan.assignments, grown)
    rep = r.report
    assert rep["new_households"] == 600
    assert rep["lower_bound"] > 0
    assert rep["moved_households"] <= 2 * rep["lower_bound"]
    # grids not involved keep code and polygon exactly
    old = plan.grids.set_index("grid_code").geometry
    new = r.plan.grids.set_index("grid_code").geometry
    untouched = set(old.index) - set(rep["grids_touched"])
    assert len(untouched) > len(old) * 0.8
    assert all(new[c].equals_exact(old[c], 0) for c in untouched)
    # split grids: the old code stays, new codes are fresh and follow the hierarchy
    for c in rep["grids_created"]:
        assert c not in old.index
        assert any(c.startswith(a) for a in plan.grids["area_code"])
    # everything a generated plan promises still holds
    g = r.plan.grids
    out = set(g.loc[(g["load"] < 200) | (g["load"] > 300), "grid_code"])
    explained = {
        e["grid_code"]
        for e in r.plan.report["exceptions"]
        if e["kind"] == "out_of_band"
    }
    assert out <= explained
    a = r.plan.assignments
    assert a["household_id"].is_unique and len(a) == len(grown)
    bld = grown.set_index("household_id")["building_id"]
    per_b = (
        a.assign(b=a["household_id"].map(bld))
        .dropna(subset=["b"])
        .groupby("b")["grid_code"]
    )
    sizes = grown.groupby("building_id").size()
    assert all(sizes[b] > 300 for b, n in per_b.nunique().items() if n > 1)
    union_old = shapely.union_all(plan.grids.geometry.values)
    union_new = shapely.union_all(g.geometry.values)
    assert shapely.symmetric_difference(union_old, union_new).area < 1e-10
    assert shapely.area(g.geometry.values).sum() == pytest.approx(
        union_new.area, rel=1e-9
    )
    # changes.csv content: new households carry an empty old code
    ch = r.changes
    assert set(ch.columns) == {"household_id", "old_grid_code", "new_grid_code"}
    assert (
        ch.loc[ch["household_id"].str.startswith("NEW"), "old_grid_code"] == ""
    ).all()


def test_locked_grids_never_change(county, plan) -> None:
    estate = _estate(county, 600, seed=2)
    grown = pd.concat([county.households, estate], ignore_index=True)
    free = rebalance(plan.grids, plan.assignments, grown)
    # grids of the plan the free rebalance changes (touched lists created ones too)
    existing = set(plan.grids["grid_code"])
    lock = tuple([c for c in free.report["grids_touched"] if c in existing][:2])
    assert lock
    r = rebalance(plan.grids, plan.assignments, grown, locked=lock)
    old = plan.grids.set_index("grid_code").geometry
    new = r.plan.grids.set_index("grid_code").geometry
    for c in lock:
        assert new[c].equals_exact(old[c], 0)
        kept = set(
            plan.assignments.loc[plan.assignments["grid_code"] == c, "household_id"]
        )
        now = set(
            r.plan.assignments.loc[r.plan.assignments["grid_code"] == c, "household_id"]
        )
        assert kept <= now
        assert c not in r.report["grids_touched"]
    with pytest.raises(ValueError, match="locked grid\\(s\\) not in the plan: NOPE"):
        rebalance(plan.grids, plan.assignments, grown, locked=("NOPE",))


def test_demolition_merges_and_retired_code_is_never_reused(county, plan) -> None:
    victim = plan.grids.sort_values("households").iloc[0]["grid_code"]
    gone = set(
        plan.assignments.loc[plan.assignments["grid_code"] == victim, "household_id"]
    )
    gone = set(list(gone)[: int(len(gone) * 0.7)])
    shrunk = county.households[~county.households["household_id"].isin(gone)]
    r = rebalance(plan.grids, plan.assignments, shrunk)
    assert r.report["removed_households"] == len(gone)
    retired = set(r.report["retired_codes"])
    if r.report["merges"]:
        assert retired
        for m in r.report["merges"]:
            assert m["retired"] not in set(r.plan.grids["grid_code"])
    # a later split in the same area never hands out a retired code
    r2 = rebalance(
        r.plan.grids,
        r.plan.assignments,
        shrunk,
        retired_codes=r.report["retired_codes"],
    )
    assert not (
        set(r2.plan.grids["grid_code"]) & (retired - set(r.plan.grids["grid_code"]))
    )


def test_diff_between_plans(county, plan) -> None:
    estate = _estate(county, 600, seed=3)
    grown = pd.concat([county.households, estate], ignore_index=True)
    r = rebalance(plan.grids, plan.assignments, grown)
    d = diff_plans(plan.grids, plan.assignments, r.plan.grids, r.plan.assignments)
    assert d.summary["households_added"] == 600
    assert d.summary["households_changed"] == len(r.changes)
    assert set(d.summary["created"]) == set(r.report["grids_created"])
    assert set(d.summary["reshaped"]) <= set(r.report["grids_touched"])
    assert d.summary["unchanged"] == len(plan.grids) - len(d.summary["reshaped"]) - len(
        d.summary["retired"]
    )
    moved = d.grids[d.grids["change"] == "reshaped"]
    assert moved.geometry.notna().all()
    assert (shapely.area(np.asarray(moved.geometry.values, dtype=object)) > 0).all()


def test_rebalance_file_mode(tmp_path: Path, county, plan) -> None:
    src = tmp_path / "plan"
    write_plan_files(plan.grids, plan.assignments, plan.report, src)
    grown = pd.concat(
        [county.households, _estate(county, 400, seed=4)], ignore_index=True
    )
    hh_path = tmp_path / "households.gpkg"
    grown.to_file(hh_path, engine="pyogrio")
    areas_path = tmp_path / "areas.geojson"
    county.areas.to_file(areas_path, engine="pyogrio")
    out = tmp_path / "plan2"
    res = CliRunner().invoke(
        app,
        [
            "rebalance",
            "--plan",
            str(src),
            "--households",
            str(hh_path),
            "--areas",
            str(areas_path),
            "--out",
            str(out),
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    grids, assignments = read_plan_files(out)
    assert len(assignments) == len(grown)
    assert grids["grid_code"].is_unique
    changes = pd.read_csv(out / "changes.csv", dtype=str, keep_default_na=False)
    assert list(changes.columns) == ["household_id", "old_grid_code", "new_grid_code"]
    assert (
        changes.loc[changes["household_id"].str.startswith("NEW"), "old_grid_code"]
        == ""
    ).all()
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert "rebalance" in report and "moved_households" in report["rebalance"]
    # a household outside every area is refused with its row
    bad = grown.copy()
    bad.loc[5, "geometry"] = shapely.Point(100, 10)
    bad.to_file(hh_path, engine="pyogrio")
    res = CliRunner().invoke(
        app,
        [
            "rebalance",
            "--plan",
            str(src),
            "--households",
            str(hh_path),
            "--areas",
            str(areas_path),
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert res.exit_code == 2
    assert (
        "households.gpkg row 6, field 'geometry': household lies outside every area"
        in res.stderr
    )


def test_rebalance_stored_plan_and_lifecycle(session: Session, county, plan) -> None:
    load(session, prepare(county.areas, "areas", source="areas"))
    load(session, prepare(county.households, "households", source="hh"))
    root = county.areas.loc[county.areas["level"] == "county", "code"].iloc[0]
    p1 = save_generated_plan(session, root, plan)
    publish_plan(session, p1)
    estate = _estate(county, 500, seed=5)
    load(session, prepare(estate, "households", source="estate"))
    grids, assignments, info = plan_frames(session, p1)
    assert info["status"] == "published" and len(assignments) == len(county.households)
    from geo.store.plans import area_frames

    _, hh = area_frames(session, root)
    r = rebalance(grids, assignments, hh)
    p2 = save_generated_plan(session, root, r.plan, parent_id=p1)
    publish_plan(session, p2)
    rows = session.execute(
        text(
            "SELECT id, status, parent_id, valid_from IS NOT NULL, valid_to IS NOT NULL "
            "FROM plans WHERE id IN (:a, :b) ORDER BY id"
        ),
        {"a": p1, "b": p2},
    ).all()
    assert [tuple(r) for r in rows] == [
        (p1, "archived", None, True, True),
        (p2, "published", p1, True, False),
    ]
    n = session.execute(
        text("SELECT count(*) FROM assignments WHERE plan_id = :p"), {"p": p2}
    ).scalar_one()
    assert n == len(county.households) + 500


def test_a_grids_proven_cause_is_stored_with_the_plan_and_read_back(
    session: Session, county, plan, tmp_path: Path
) -> None:
    """The cause of an out-of-band grid travels with the grid: into the database
    and back (``plan_frames``, what a stored rebalance starts from) and into
    ``grids.geojson`` and back, so a rebalance that keeps the grid can name it."""
    load(session, prepare(county.areas, "areas", source="areas"))
    load(session, prepare(county.households, "households", source="hh"))
    root = county.areas.loc[county.areas["level"] == "county", "code"].iloc[0]
    grids = plan.grids.copy()
    assert "cause" in grids.columns and grids["cause"].isna().all()  # all in band
    code = str(grids["grid_code"].iloc[0])
    grids.loc[0, "exception"] = "180 households, for the test"
    grids.loc[0, "cause"] = "no_in_band_split"
    marked = type(plan)(grids, plan.assignments, plan.report)
    stored, _, _ = plan_frames(session, save_generated_plan(session, root, marked))
    assert stored.set_index("grid_code")["cause"].dropna().to_dict() == {
        code: "no_in_band_split"
    }
    write_plan_files(grids, plan.assignments, plan.report, tmp_path)
    back, _ = read_plan_files(tmp_path)
    assert back.set_index("grid_code")["cause"].dropna().to_dict() == {
        code: "no_in_band_split"
    }
