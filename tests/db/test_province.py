"""The sample province in PostGIS, and a fan-out over a province or city (issue 14).

Counties are the units when the area is a province or a city. Workers are other
processes with their own connections, so the data is committed in a database of
this module's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import shapely
from sqlalchemy import Engine, text

from geo.sample import PROVINCE_CODE, generate_province
from geo.services import generate_and_save, load_sample_province, publish
from geo.store.db import make_engine, session_scope, upgrade
from geo.store.fanout import plan_units
from geo.store.plans import plan_frames

distributed = pytest.importorskip("distributed")

HOUSEHOLDS = 6_000
COUNTIES = 3
SEED = 0


@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("province") / "parquet"


@pytest.fixture(scope="module")
def prov_engine(make_database, parquet_dir: Path) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    url = make_database("province")
    upgrade(url)
    engine = make_engine(url)
    stages: list[str] = []
    with session_scope(engine) as s:
        reports = load_sample_province(
            s,
            HOUSEHOLDS,
            counties=COUNTIES,
            seed=SEED,
            parquet=parquet_dir,
            progress=lambda st, f: stages.append(st),
        )
    assert len(reports) == 1 + 3 * COUNTIES
    assert sum(st.startswith("sample county") for st in stages) == COUNTIES
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=40,
    ) as c:
        yield c


def test_the_province_loads_into_postgis(
    prov_engine: Engine, parquet_dir: Path
) -> None:
    p = generate_province(HOUSEHOLDS, counties=COUNTIES, seed=SEED)
    with prov_engine.connect() as c:
        levels = dict(
            c.execute(
                text("SELECT level, count(*) FROM admin_areas GROUP BY level")
            ).all()
        )
        n_hh = c.execute(text("SELECT count(*) FROM households")).scalar_one()
        per_county = dict(
            c.execute(
                text(
                    "SELECT substr(a.code, 1, 6) || '000000', count(*) FROM households h "
                    "JOIN admin_areas a ON a.id = h.area_id GROUP BY 1"
                )
            ).all()
        )
        broken = c.execute(
            text(
                "SELECT count(*) FROM admin_areas a LEFT JOIN admin_areas p "
                "ON p.id = a.parent_id WHERE a.level <> 'province' AND p.id IS NULL"
            )
        ).scalar_one()
    assert levels["province"] == 1 and levels["city"] == 1
    assert levels["county"] == COUNTIES
    assert n_hh == HOUSEHOLDS
    assert per_county == {s.code: s.households for s in p.counties}
    assert broken == 0
    # the GeoParquet copy: one partition per county and layer
    for layer in ("areas", "households", "people", "barriers"):
        parts = sorted(d.name for d in (parquet_dir / layer).iterdir())
        assert parts == [f"county={s.code}" for s in p.counties]
    assert (parquet_dir / "province.parquet").is_file()


def test_a_province_and_a_city_split_into_their_counties(prov_engine: Engine) -> None:
    p = generate_province(HOUSEHOLDS, counties=COUNTIES, seed=SEED)
    city = p.counties[0].city_code
    with session_scope(prov_engine) as s:
        by_province, _ = plan_units(s, PROVINCE_CODE)
        by_city, _ = plan_units(s, city)
        by_county, _ = plan_units(s, p.counties[0].code)
    want = [(sp.code, sp.households) for sp in p.counties]
    assert [(u.code, u.households) for u in by_province] == want
    assert {u.level for u in by_province} == {"county"}
    assert [(u.code, u.households) for u in by_city] == want
    assert {u.level for u in by_county} == {"township"}


def _frames(engine: Engine, plan_id: int) -> tuple[Any, pd.DataFrame]:
    with session_scope(engine) as s:
        grids, assignments, _ = plan_frames(s, plan_id)
    return grids.sort_values("grid_code").reset_index(drop=True), assignments


@pytest.mark.parametrize("level", ["city", "province"])
def test_fanout_over_counties_gives_the_single_process_plan(
    prov_engine: Engine, cluster: Any, level: str
) -> None:
    p = generate_province(HOUSEHOLDS, counties=COUNTIES, seed=SEED)
    area = PROVINCE_CODE if level == "province" else p.counties[0].city_code
    with session_scope(prov_engine) as s:
        single = generate_and_save(s, area, created_by="test single")
    with session_scope(prov_engine) as s:
        saved = generate_and_save(
            s, area, created_by="test fanout", scheduler=cluster.scheduler_address
        )
    assert saved.fanout is not None and saved.fanout.failed == {}
    assert sorted(saved.fanout.units) == [sp.code for sp in p.counties]
    ga, xa = _frames(prov_engine, single.plan_id)
    gb, xb = _frames(prov_engine, saved.plan_id)
    assert len(ga) > 20
    # every county has grids of its own
    assert {c[:6] for c in ga["area_code"]} == {sp.code[:6] for sp in p.counties}
    assert ga["grid_code"].tolist() == gb["grid_code"].tolist()
    assert ga["area_code"].tolist() == gb["area_code"].tolist()
    assert ga["households"].tolist() == gb["households"].tolist()
    assert sum(ga["households"]) == HOUSEHOLDS
    sets_a = xa.groupby("grid_code")["household_id"].apply(frozenset)
    sets_b = xb.groupby("grid_code")["household_id"].apply(frozenset)
    assert sets_a.to_dict() == sets_b.to_dict()
    same = shapely.equals_exact(
        np.asarray(ga.geometry.values), np.asarray(gb.geometry.values), tolerance=1e-9
    )
    assert same.all(), ga["grid_code"][~same].tolist()
    with session_scope(prov_engine) as s:
        publish(s, saved.plan_id, allow_unstaffed=True)


def test_cli_loads_a_province_county_by_county(
    make_database,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from typer.testing import CliRunner

    from api.cli import app

    url = make_database("province_cli")
    env = {"GRIDMAP_DATABASE_URL": url}
    run = CliRunner().invoke
    args = ["load", "sample", "--households", "600", "--counties", "2", "--seed", "3"]
    res = run(app, [*args, "--parquet", str(tmp_path)], env=env, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    p = generate_province(600, counties=2, seed=3)
    engine = make_engine(url)
    try:
        with engine.connect() as c:
            n = c.execute(text("SELECT count(*) FROM households")).scalar_one()
            counties = (
                c.execute(
                    text(
                        "SELECT code FROM admin_areas WHERE level = 'county' ORDER BY code"
                    )
                )
                .scalars()
                .all()
            )
    finally:
        engine.dispose()
    assert n == 600
    assert counties == [s.code for s in p.counties]
    assert len(list((tmp_path / "households").iterdir())) == 2
    # without --counties, --parquet is refused; bad sizes name the parameter
    res = run(app, ["load", "sample", "--parquet", str(tmp_path)], env=env)
    assert res.exit_code != 0 and "--counties" in res.output
    res = run(
        app, ["load", "sample", "--households", "150", "--counties", "2"], env=env
    )
    assert res.exit_code != 0 and "n_households" in res.output
