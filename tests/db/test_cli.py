"""The ``gridmap`` command line against a real PostGIS database of its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from api.cli import app
from geo.sample import generate_county, write_county
from geo.store.db import make_engine


@pytest.fixture(scope="module")
def cli_env(make_database) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"GRIDMAP_DATABASE_URL": make_database("cli")}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("county")
    return write_county(generate_county(2_000, seed=11), out, fmt="gpkg")


def _run(env: dict[str, str], *args: str):
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def test_cli_end_to_end(
    cli_env: dict[str, str], files: dict[str, Path], tmp_path: Path
) -> None:
    res = _run(cli_env, "db", "status", "--json")
    assert res.exit_code == 0
    assert json.loads(res.stdout)["mode"] == "external"

    res = _run(cli_env, "db", "upgrade")
    assert res.exit_code == 0, res.output
    from alembic.script import ScriptDirectory

    from geo.store.db import MIGRATIONS_DIR, alembic_config

    head = ScriptDirectory.from_config(
        alembic_config("postgresql://x/y")
    ).get_current_head()
    assert MIGRATIONS_DIR.exists()
    assert f"schema at revision {head}" in res.stdout

    res = _run(cli_env, "load", "areas", str(files["areas"]))
    assert res.exit_code == 0, res.output
    assert "new" in res.stdout

    res = _run(cli_env, "load", "people", str(files["people"]))
    assert res.exit_code == 0, res.output

    res = _run(cli_env, "load", "households", str(files["households"]))
    assert res.exit_code == 0, res.output
    n = int(res.stdout.split(":")[1].split("rows")[0])
    assert n == 2_000

    # loading again changes nothing
    res = _run(cli_env, "load", "households", str(files["households"]))
    assert "0 new, 0 updated, 2000 unchanged" in res.stdout

    # a bad file: clear message naming file, row and field; exit code 2; nothing written
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "household_id,address,lon,lat,colour\nx1,高家镇湖仁村3组12号,118.9,28.9,red\n",
        encoding="utf-8",
    )
    res = _run(cli_env, "load", "households", str(bad))
    assert res.exit_code == 2
    assert "nothing was written" in res.stderr
    assert "bad.csv: unknown column(s) 'colour'" in res.stderr

    res = _run(
        cli_env,
        "load",
        "households",
        str(bad),
        "--extra",
        "ignore",
        "--set",
        "area_code=nope",
    )
    assert res.exit_code == 2
    assert "bad.csv row 1, field 'area_code': unknown area_code 'nope'" in res.stderr

    res = _run(cli_env, "summary")
    assert res.exit_code == 0
    assert "2000 households" in res.stdout.replace("\n", " ")

    engine = make_engine(cli_env["GRIDMAP_DATABASE_URL"])
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM households")).scalar() == 2_000
        assert (
            conn.execute(
                text("SELECT count(*) FROM households WHERE external_id = 'x1'")
            ).scalar()
            == 0
        )
    engine.dispose()


def test_cli_run_main_job(cli_env: dict[str, str]) -> None:
    res = _run(cli_env, "run", "--households", "2000", "--reload", "--no-serve")
    assert res.exit_code == 0, res.output
    assert "schema at revision" in res.stdout
    assert "Households per township" in res.stdout
    assert "cannot split into 200–300 grids" in res.stdout
