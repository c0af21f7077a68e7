"""Generation fanned out on a real Dask ``LocalCluster`` (issue 14).

Workers are other processes with their own connections, so these tests use a
database of their own whose data is committed (not the rolled-back session).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import shapely
from samples import sample_county
from sqlalchemy import Engine, text

from geo.errors import IncompletePlanError, InputError
from geo.gridding.generate import generate_grids
from geo.io import prepare
from geo.services import generate_and_save, publish, rebalance_and_save, retry_units
from geo.store.db import make_engine, session_scope, upgrade
from geo.store.fanout import DIE_HOOK_ENV, plan_info, plan_units
from geo.store.loading import load
from geo.store.plans import area_frames, plan_frames

distributed = pytest.importorskip("distributed")

HOUSEHOLDS = 4_000
SEED = 0


@pytest.fixture(scope="module")
def die_marker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The file that arms the dying-worker hook (set before the workers start)."""
    path = tmp_path_factory.mktemp("fanout") / "die"
    old = os.environ.get(DIE_HOOK_ENV)
    os.environ[DIE_HOOK_ENV] = str(path)
    yield path
    if old is None:
        os.environ.pop(DIE_HOOK_ENV, None)
    else:
        os.environ[DIE_HOOK_ENV] = old


@pytest.fixture(scope="module")
def cluster(die_marker: Path) -> Iterator[Any]:
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=40,
    ) as c:
        yield c


@pytest.fixture(scope="module")
def fan_engine(make_database) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    url = make_database("fanout")
    upgrade(url)
    engine = make_engine(url)
    county = sample_county(HOUSEHOLDS, SEED)
    with session_scope(engine) as s:
        for kind, frame in (
            ("areas", county.areas),
            ("people", county.people),
            ("households", county.households),
        ):
            load(s, prepare(frame, kind, source=f"sample ({kind})"))
    yield engine
    engine.dispose()


def _county_code(engine: Engine) -> str:
    with engine.connect() as c:
        return str(
            c.execute(
                text("SELECT code FROM admin_areas WHERE level = 'county'")
            ).scalar()
        )


def _frames(engine: Engine, plan_id: int) -> tuple[Any, pd.DataFrame]:
    with session_scope(engine) as s:
        grids, assignments, _ = plan_frames(s, plan_id)
    return grids.sort_values("grid_code").reset_index(drop=True), assignments


def _assert_same_plan(engine: Engine, a: int, b: int) -> None:
    ga, xa = _frames(engine, a)
    gb, xb = _frames(engine, b)
    assert len(ga) > 10
    assert ga["grid_code"].tolist() == gb["grid_code"].tolist()
    assert ga["area_code"].tolist() == gb["area_code"].tolist()
    assert ga["households"].tolist() == gb["households"].tolist()
    sets_a = xa.groupby("grid_code")["household_id"].apply(frozenset)
    sets_b = xb.groupby("grid_code")["household_id"].apply(frozenset)
    assert sets_a.to_dict() == sets_b.to_dict()
    same = shapely.equals_exact(
        np.asarray(ga.geometry.values), np.asarray(gb.geometry.values), tolerance=1e-9
    )
    assert same.all(), ga["grid_code"][~same].tolist()


def _units_state(engine: Engine, plan_id: int) -> dict[str, Any]:
    with engine.connect() as c:
        return dict(
            c.execute(
                text("SELECT metrics -> 'fanout' FROM plans WHERE id = :p"),
                {"p": plan_id},
            ).scalar_one()
        )


def test_units_are_the_townships_and_latitude_matches_generation(
    fan_engine: Engine,
) -> None:
    county = _county_code(fan_engine)
    with session_scope(fan_engine) as s:
        units, lat = plan_units(s, county)
        areas, households = area_frames(s, county)
    townships = areas[areas["level"] == "township"]["code"].tolist()
    assert [u.code for u in units] == sorted(townships)
    assert len(units) >= 3
    assert sum(u.households for u in units) == len(households)
    leaf = areas[areas["level"].isin(["village", "community"])].reset_index(drop=True)
    assert lat == float(np.mean(shapely.bounds(leaf.geometry.values)[:, [1, 3]]))
    # a township is its own single unit
    with session_scope(fan_engine) as s:
        one, _ = plan_units(s, townships[0])
    assert [u.code for u in one] == [townships[0]]


def test_fanout_gives_the_single_process_plan(fan_engine: Engine, cluster: Any) -> None:
    county = _county_code(fan_engine)
    with session_scope(fan_engine) as s:
        single = generate_and_save(s, county, created_by="test single")
    stages: list[tuple[str, float]] = []
    with session_scope(fan_engine) as s:
        saved = generate_and_save(
            s,
            county,
            created_by="test fanout",
            scheduler=cluster.scheduler_address,
            progress=lambda st, f: stages.append((st, f)),
        )
    assert saved.fanout is not None and saved.fanout.failed == {}
    assert stages[0][0].startswith("Dask dashboard: http")
    assert [f for _, f in stages][-1] == pytest.approx(1.0)
    assert sum("done" in st for st, _ in stages) == len(saved.fanout.units)
    _assert_same_plan(fan_engine, single.plan_id, saved.plan_id)
    m = saved.plan.report["metrics"]
    assert m["grids"] == single.plan.report["metrics"]["grids"]
    assert m["households"] == HOUSEHOLDS
    # re-running a finished unit replaces its rows (deletes its own first)
    with session_scope(fan_engine) as s:
        run = retry_units(
            s,
            saved.plan_id,
            scheduler=cluster.scheduler_address,
            units=[saved.fanout.units[0]],
        )
    assert run.failed == {}
    _assert_same_plan(fan_engine, single.plan_id, saved.plan_id)
    with session_scope(fan_engine) as s:
        publish(s, saved.plan_id, allow_unstaffed=True)


def test_a_worker_dying_mid_write_is_retried_without_partial_rows(
    fan_engine: Engine, cluster: Any, die_marker: Path
) -> None:
    county = _county_code(fan_engine)
    with session_scope(fan_engine) as s:
        single = generate_and_save(s, county, created_by="test single")
        units, _ = plan_units(s, county)
    victim = units[1].code
    die_marker.write_text(victim, encoding="utf-8")
    with session_scope(fan_engine) as s:
        saved = generate_and_save(s, county, scheduler=cluster.scheduler_address)
    assert not die_marker.exists()  # the worker took the hook and died mid-write
    assert saved.fanout is not None and saved.fanout.failed == {}
    assert _units_state(fan_engine, saved.plan_id)["units"][victim]["status"] == "done"
    _assert_same_plan(fan_engine, single.plan_id, saved.plan_id)
    cluster.wait_for_workers(2, timeout=60)


def test_a_failing_unit_is_reported_and_blocks_publishing_until_fixed(
    fan_engine: Engine, cluster: Any
) -> None:
    county = _county_code(fan_engine)
    with session_scope(fan_engine) as s:
        units, _ = plan_units(s, county)
        bad_unit = units[0].code
        # a household of the township itself, far outside every village of it
        s.execute(
            text(
                "INSERT INTO households (external_id, area_id, geom) SELECT 'stray-1', id, "
                "ST_SetSRID(ST_MakePoint(100.0, 10.0), 4326) FROM admin_areas WHERE code = :c"
            ),
            {"c": bad_unit},
        )
    try:
        with session_scope(fan_engine) as s:
            saved = generate_and_save(s, county, scheduler=cluster.scheduler_address)
        assert saved.fanout is not None
        assert list(saved.fanout.failed) == [bad_unit]
        assert "outside every village" in saved.fanout.failed[bad_unit]
        assert "stray-1" in saved.fanout.failed[bad_unit]
        state = _units_state(fan_engine, saved.plan_id)
        assert state["units"][bad_unit]["status"] == "failed"
        assert all(state["units"][u.code]["status"] == "done" for u in units[1:])
        grids, _ = _frames(fan_engine, saved.plan_id)
        assert len(grids) > 0
        assert not grids["grid_code"].str.startswith(bad_unit).any()
        with session_scope(fan_engine) as s, pytest.raises(IncompletePlanError) as err:
            publish(s, saved.plan_id, allow_unstaffed=True)
        assert bad_unit in str(err.value) and bad_unit in err.value.units
        # excluding a code that is not a unit is refused, naming it
        with session_scope(fan_engine) as s, pytest.raises(InputError, match="X-1"):
            publish(s, saved.plan_id, exclude=["X-1"], allow_unstaffed=True)
        # the other draft: the same failure, then excluded explicitly
        with session_scope(fan_engine) as s:
            other = generate_and_save(s, county, scheduler=cluster.scheduler_address)
        with session_scope(fan_engine) as s:
            publish(s, other.plan_id, exclude=[bad_unit], allow_unstaffed=True)
        assert _units_state(fan_engine, other.plan_id)["excluded"] == [bad_unit]
    finally:
        with session_scope(fan_engine) as s:
            s.execute(text("DELETE FROM households WHERE external_id = 'stray-1'"))
    # fixed: re-run the failed unit, then the first draft publishes complete
    with session_scope(fan_engine) as s:
        run = retry_units(s, saved.plan_id, scheduler=cluster.scheduler_address)
    assert run.failed == {}
    with session_scope(fan_engine) as s:
        single = generate_and_save(s, county)
    _assert_same_plan(fan_engine, single.plan_id, saved.plan_id)
    with session_scope(fan_engine) as s:
        publish(s, saved.plan_id, allow_unstaffed=True)


def test_townships_drawn_alone_with_the_reference_latitude_match_the_whole() -> None:
    """generate_grids(ref_latitude=...) on each township gives the whole run's grids."""
    county = sample_county(HOUSEHOLDS, SEED)
    areas, hh = county.areas, county.households
    whole = generate_grids(hh, areas)
    leaf = areas[areas["level"].isin(["village", "community"])].reset_index(drop=True)
    lat = float(np.mean(shapely.bounds(leaf.geometry.values)[:, [1, 3]]))
    parts = []
    for t in areas[areas["level"] == "township"]["code"]:
        sub = areas[(areas["code"] == t) | (areas["parent_code"] == t)]
        mine = hh[hh["area_code"].isin(set(sub["code"]) - {t})]
        if len(mine):
            parts.append(generate_grids(mine, sub, ref_latitude=lat).grids)
    joined = pd.concat(parts).sort_values("grid_code").reset_index(drop=True)
    ref = whole.grids.sort_values("grid_code").reset_index(drop=True)
    assert joined["grid_code"].tolist() == ref["grid_code"].tolist()
    assert shapely.equals_exact(
        np.asarray(joined.geometry.values), np.asarray(ref.geometry.values), 1e-9
    ).all()


def test_cli_generate_on_the_scheduler_from_the_environment_then_retry_and_publish(
    fan_engine: Engine, cluster: Any
) -> None:
    from typer.testing import CliRunner

    from api.cli import app

    env = {
        "GRIDMAP_DATABASE_URL": fan_engine.url.render_as_string(hide_password=False),
        "GRIDMAP_DASK_SCHEDULER": cluster.scheduler_address,
    }

    def run(*args: str) -> Any:
        return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)

    county = _county_code(fan_engine)
    with session_scope(fan_engine) as s:
        units, _ = plan_units(s, county)
        bad_unit = units[-1].code
        s.execute(
            text(
                "INSERT INTO households (external_id, area_id, geom) SELECT 'stray-2', id, "
                "ST_SetSRID(ST_MakePoint(100.0, 10.0), 4326) FROM admin_areas WHERE code = :c"
            ),
            {"c": bad_unit},
        )
    try:
        res = run("generate", "--area", county)
        assert res.exit_code == 0, res.output
        assert "Dask dashboard: http" in res.output
        assert "1 unit(s) failed" in res.output
        assert f"{bad_unit}: ValueError" in res.output and "stray-2" in res.output
        plan_id = int(res.output.split("stored as draft plan ")[1].split()[0])
        res = run("publish", "--plan", str(plan_id))
        assert res.exit_code == 2
        assert bad_unit in res.output and "cannot be published" in res.output
        res = run("generate", "--area", county, "--workers", "1", "--scheduler", "x")
        assert res.exit_code == 2 and "not both" in res.output
    finally:
        with session_scope(fan_engine) as s:
            s.execute(text("DELETE FROM households WHERE external_id = 'stray-2'"))
    res = run("retry", "--plan", str(plan_id))
    assert res.exit_code == 0, res.output
    assert "is complete" in res.output
    res = run("publish", "--plan", str(plan_id), "--allow-unstaffed")
    assert res.exit_code == 0, res.output
    res = run("rebalance", "--plan", str(plan_id))
    assert res.exit_code == 0, res.output
    assert "Dask dashboard: http" in res.output
    assert f"(parent {plan_id})" in res.output and "failed" not in res.output


def test_api_generation_job_fans_out_when_the_runner_has_a_scheduler(
    fan_engine: Engine, cluster: Any
) -> None:
    import time

    from api.jobs import JobRunner, generate_plan_job
    from geo.store.jobs import get_job

    county = _county_code(fan_engine)
    params = {
        "area_code": county,
        "min_households": 200,
        "max_households": 300,
        "respect_level": "village",
        "seed": 0,
    }
    runner = JobRunner(fan_engine, scheduler=cluster.scheduler_address)
    try:
        state = runner.submit(
            "generate", params, generate_plan_job(params, "test"), created_by="test"
        )
        for _ in range(600):  # polls until the job ends (no timing asserted)
            job = get_job(fan_engine, state.id)
            assert job is not None
            if job.status in ("succeeded", "failed"):
                break
            time.sleep(0.1)
    finally:
        runner.shutdown()
    assert job.error is None, job.error
    assert job.plan_id is not None
    fan = _units_state(fan_engine, job.plan_id)
    assert fan["kind"] == "generate"
    assert {u["status"] for u in fan["units"].values()} == {"done"}


def test_rebalance_on_dask_matches_the_single_process_rebalance(
    fan_engine: Engine, cluster: Any
) -> None:
    county = _county_code(fan_engine)
    with session_scope(fan_engine) as s:
        base = generate_and_save(s, county)
    grids, assignments = _frames(fan_engine, base.plan_id)
    # 150 new households in one grid of each of two townships: over the band
    towns = grids.groupby(grids["area_code"].str[:9])["grid_code"].first()
    copied = []
    for code in towns.iloc[:2]:
        members = assignments[assignments["grid_code"] == code]["household_id"]
        copied += members.iloc[:150].tolist()
    with session_scope(fan_engine) as s:
        s.execute(
            text(
                "INSERT INTO households (external_id, area_id, geom) "
                "SELECT external_id || '-new', area_id, geom FROM households "
                "WHERE external_id = ANY(:h)"
            ),
            {"h": copied},
        )
    try:
        with session_scope(fan_engine) as s:
            single = rebalance_and_save(s, base.plan_id)
        with session_scope(fan_engine) as s:
            fanned = rebalance_and_save(
                s, base.plan_id, scheduler=cluster.scheduler_address
            )
        assert fanned.fanout is not None and fanned.fanout.failed == {}
        assert fanned.parent_id == base.plan_id
        rep = {k: v for k, v in single.result.report.items() if k != "metrics"}
        assert single.result.report["grids_touched"], rep
        r = fanned.result.report
        assert r["moved_households"] == single.result.report["moved_households"]
        assert r["new_households"] == single.result.report["new_households"] == 300
        _assert_same_plan(fan_engine, single.plan_id, fanned.plan_id)
        with session_scope(fan_engine) as s:
            m_single = plan_info(s, single.plan_id)["metrics"]  # type: ignore[index]
            m_fanned = plan_info(s, fanned.plan_id)["metrics"]  # type: ignore[index]
        assert m_fanned["retired_codes"] == m_single["retired_codes"]
        assert m_fanned["grids"] == m_single["grids"]
        assert m_fanned["in_band"] == m_single["in_band"]
        with session_scope(fan_engine) as s, pytest.raises(ValueError, match="NOPE"):
            rebalance_and_save(
                s, base.plan_id, locked=["NOPE"], scheduler=cluster.scheduler_address
            )
    finally:
        with session_scope(fan_engine) as s:
            s.execute(text("DELETE FROM households WHERE external_id LIKE '%-new'"))


def test_workspace_draws_on_its_scheduler(fan_engine: Engine, cluster: Any) -> None:
    from geo.workspace import Workspace

    county = _county_code(fan_engine)
    ws = Workspace(fan_engine, scheduler=cluster.scheduler_address)
    saved = ws.generate_on_dask(county)
    assert saved.fanout is not None and saved.fanout.failed == {}
    assert saved.plan.report["metrics"]["households"] == HOUSEHOLDS
    assert ws.retry(saved.plan_id).failed == {}  # nothing left to re-run
    with session_scope(fan_engine) as s:
        single = generate_and_save(s, county)
    _assert_same_plan(fan_engine, single.plan_id, saved.plan_id)
    with pytest.raises(ValueError, match="scheduler= or workers="):
        Workspace(fan_engine).generate_on_dask(county)


def test_staffing_runs_on_the_workers_with_the_single_process_result(
    fan_engine: Engine, cluster: Any
) -> None:
    county = _county_code(fan_engine)
    with session_scope(fan_engine) as s:
        single = generate_and_save(s, county, with_staff=True)
    with session_scope(fan_engine) as s:
        fanned = generate_and_save(
            s, county, with_staff=True, scheduler=cluster.scheduler_address
        )
    assert fanned.fanout is not None and fanned.fanout.failed == {}
    _assert_same_plan(fan_engine, single.plan_id, fanned.plan_id)
    sql = (
        "SELECT g.code, w.external_id AS worker, h.external_id AS household, "
        "m.external_id AS member FROM grids g LEFT JOIN people w ON w.id = g.worker_id "
        "JOIN assignments x ON x.grid_id = g.id "
        "JOIN households h ON h.id = x.household_id "
        "LEFT JOIN people m ON m.id = x.member_id WHERE g.plan_id = :p "
        "ORDER BY h.external_id"
    )
    with fan_engine.connect() as c:
        a = pd.read_sql_query(text(sql), c, params={"p": single.plan_id})
        b = pd.read_sql_query(text(sql), c, params={"p": fanned.plan_id})
    assert a["worker"].notna().any() and a["member"].notna().any()
    # grids and their workers are identical; micro-grids (党员联户) are drawn per
    # grid with each township's own reference latitude, so which member covers a
    # household may differ from the single-process run, never the coverage rules
    pd.testing.assert_frame_equal(
        a[["code", "worker", "household"]], b[["code", "worker", "household"]]
    )
    with fan_engine.connect() as c:
        foreign = c.execute(
            text(
                "SELECT count(*) FROM assignments x JOIN grids g ON g.id = x.grid_id "
                "JOIN people m ON m.id = x.member_id "
                "WHERE x.plan_id = :p AND m.area_id IS DISTINCT FROM g.area_id"
            ),
            {"p": fanned.plan_id},
        ).scalar_one()
    assert foreign == 0  # members always of the grid's own village
    assert abs(a["member"].notna().mean() - b["member"].notna().mean()) < 0.02
