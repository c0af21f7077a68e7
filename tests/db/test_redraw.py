"""A planner redraws one township of the sample by hand (geo.editing through Workspace.draft):
moves, a split that leaves two grids out of band, a lock, a merge, rebalance of the
draft, undo/redo; staff stay where their households stay."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
from sqlalchemy import text

from geo.editing import Draft
from geo.errors import EditError, StaleDraft
from geo.workspace import Workspace


@pytest.fixture(scope="module")
def world(make_database):  # type: ignore[no-untyped-def]
    ws = Workspace.connect(make_database("redraw"))
    ws.load_sample(households=3_000, seed=3)
    county = ws.areas(level="county")["code"].iloc[0]
    area = ws.area(county)
    plan = ws.staff(ws.generate(area), area)
    pid = ws.save_draft(area, plan)
    ws.publish(pid)
    yield ws, pid
    ws.engine.dispose()


def _state(ws: Workspace, plan_id: int) -> pd.DataFrame:
    with ws.engine.connect() as conn:
        return (
            pd.read_sql_query(
                text(
                    "SELECT h.external_id AS hid, g.code AS grid, m.external_id AS member, "
                    "w.external_id AS worker, t.code AS township FROM assignments x "
                    "JOIN households h ON h.id = x.household_id JOIN grids g ON g.id = x.grid_id "
                    "LEFT JOIN people m ON m.id = x.member_id "
                    "LEFT JOIN people w ON w.id = g.worker_id "
                    "JOIN admin_areas v ON v.id = g.area_id JOIN admin_areas t ON t.id = v.parent_id "
                    "WHERE x.plan_id = :p"
                ),
                conn,
                params={"p": plan_id},
            )
            .set_index("hid")
            .sort_index()
        )


def _grid_table(ws: Workspace, plan_id: int) -> gpd.GeoDataFrame:
    with ws.engine.connect() as conn:
        return gpd.read_postgis(
            text(
                "SELECT g.code, count(x.*) AS n, g.geom, t.code AS township "
                "FROM grids g LEFT JOIN assignments x ON x.grid_id = g.id "
                "JOIN admin_areas v ON v.id = g.area_id JOIN admin_areas t ON t.id = v.parent_id "
                "WHERE g.plan_id = :p GROUP BY g.id, t.code"
            ),
            conn,
            params={"p": plan_id},
        ).set_index("code")


def _one_move(d: Draft, ws: Workspace, township: str) -> str:
    """Move one household across a grid boundary inside ``township``: the first the
    rules accept, households nearest the boundary first."""
    grids = _grid_table(ws, d.plan_id)
    state = _state(ws, d.plan_id)
    with ws.engine.connect() as conn:
        pts = (
            gpd.read_postgis(
                text("SELECT external_id AS hid, building_id, geom FROM households"),
                conn,
            )
            .set_index("hid")
            .sort_index()
        )
    for a in grids.index[(grids["township"] == township) & (grids["n"] > 205)]:
        for b in d.neighbours(a):
            if grids.loc[b, "n"] > 295 or grids.loc[b, "township"] != township:
                continue
            mine = pts.loc[state.index[state["grid"] == a]]
            mine = mine[mine["building_id"].isna()]
            near = mine.geometry.distance(grids.loc[b, "geom"]).sort_values().index[:4]
            for hid in near:
                try:
                    d.move(households=[hid], to_grid=b)
                    return hid
                except EditError:
                    continue
    raise AssertionError("no household could move")


def test_redraw_a_township_keeps_staff(world) -> None:  # type: ignore[no-untyped-def]
    ws, pid = world
    before = _state(ws, pid)
    township = before["township"].value_counts().index[0]
    d = ws.draft(pid)
    assert _state(ws, d.plan_id).equals(before), "the draft is an exact copy"

    moved = [_one_move(d, ws, township) for _ in range(3)]
    grids = _grid_table(ws, d.plan_id)
    mine = grids[grids["township"] == township].sort_values("n", ascending=False)
    # split the largest grid in two halves: both out of band (allowed, with a cause)
    big = mine.index[0]
    r = d.split(big, allow_out_of_band=True)
    halves = [g for g in r.grids if g.status != "retired"]
    assert len(halves) == 2 and not any(g.in_band for g in halves)
    assert all(g.cause and "allow_out_of_band" in g.cause for g in halves)
    assert any("outside" in p for p in r.problems)
    # a locked grid is never taken from and never rebalanced
    other = next(c for c in mine.index[1:] if c not in {g.code for g in halves})
    d.lock([other])
    with pytest.raises(EditError, match="locked"):
        d.merge([other, next(iter(d.neighbours(other)))])
    locked_before = _state(ws, d.plan_id).query("grid == @other").index
    v = d.validate()
    assert any(g.code in " ".join(v.problems) for g in halves if g.code) or v.exceptions

    r = d.rebalance()
    assert r.version == d.version
    after = _state(ws, d.plan_id)
    counts = after["grid"].value_counts()
    new_grids = _grid_table(ws, d.plan_id)
    in_town = new_grids[new_grids["township"] == township]
    assert ((in_town["n"] >= 200) & (in_town["n"] <= 300)).all(), in_town["n"].tolist()
    assert set(after.query("grid == @other").index) == set(locked_before)
    assert counts.sum() == len(before), "every household exactly once"

    # party members changed only for households whose grid changed; none outside
    same = before.index[before["grid"] == after.loc[before.index, "grid"]]
    diff = before.loc[same, "member"].fillna("") != after.loc[same, "member"].fillna("")
    assert not diff.any(), pd.concat(
        [before.loc[same][diff], after.loc[same][diff]], axis=1
    )
    outside = before.index[before["township"] != township]
    assert (
        (
            before.loc[outside, ["grid", "member"]].fillna("")
            == after.loc[outside, ["grid", "member"]].fillna("")
        )
        .all()
        .all()
    )
    # workers: one per grid at most, every surviving grid keeps its worker
    workers = after.groupby("grid")["worker"].first()
    b_workers = before.groupby("grid")["worker"].first()
    doubled = set(workers.dropna()[workers.dropna().duplicated()])
    assert doubled <= set(b_workers.dropna()[b_workers.dropna().duplicated()]), (
        "the redraw put no worker on two grids"
    )
    kept = set(before["grid"]) & set(after["grid"])
    assert all(workers[c] == b_workers[c] for c in kept if c != big)
    assert set(moved) <= set(after.index)

    # undo the rebalance, redo it; a stale Draft is refused, reload takes the version
    d.undo()
    assert _state(ws, d.plan_id)["grid"].value_counts().to_dict() != counts.to_dict()
    d.redo()
    assert _state(ws, d.plan_id)["grid"].value_counts().to_dict() == counts.to_dict()
    stale = Draft(ws.engine, d.plan_id, d.version - 1, "someone")
    with pytest.raises(StaleDraft):
        stale.unlock([other])
    stale.reload()
    stale.unlock([other])
    kinds = d.history()["kind"].tolist()
    assert kinds[0] == "draft" and kinds[-3:] == ["undo", "redo", "edit"]


def test_rebalance_and_save_carries_the_staff(world) -> None:  # type: ignore[no-untyped-def]
    """A rebalanced draft (CLI, API job, Workspace all save through
    services.rebalance_and_save) keeps workers on surviving grids and members of
    households that stay; it is not left unstaffed."""
    from geo import services
    from geo.store.db import session_scope

    ws, pid = world
    d = ws.draft(pid)  # a draft whose hand edit left two grids out of band
    big = _grid_table(ws, d.plan_id).sort_values("n").index[-1]
    d.split(big, allow_out_of_band=True)
    before = _state(ws, d.plan_id)
    with session_scope(ws.engine) as s:
        saved = services.rebalance_and_save(s, d.plan_id)
    after = _state(ws, saved.plan_id)
    churn = saved.result.plan.report["staff"]
    same = before.index[before["grid"] == after.loc[before.index, "grid"]]
    assert len(same) < len(before), "the rebalance fixed the split's halves"
    n = after["grid"].value_counts()
    assert ((n >= 200) & (n <= 300)).sum() > (
        (before["grid"].value_counts() >= 200) & (before["grid"].value_counts() <= 300)
    ).sum()
    assert (
        before.loc[same, "member"].fillna("") == after.loc[same, "member"].fillna("")
    ).all()
    kept = set(before["grid"]) & set(after["grid"])
    bw = before.groupby("grid")["worker"].first()
    aw = after.groupby("grid")["worker"].first()
    lost = {c: (bw[c], aw[c]) for c in kept if pd.notna(bw[c]) and aw[c] != bw[c]}
    assert lost == {}, "surviving grids keep their workers"
    assert aw.notna().sum() >= bw.notna().sum() - len(churn["workers_freed"])
    assert churn["members_kept"] + churn["members_changed"] + churn["members_lost"] > 0
