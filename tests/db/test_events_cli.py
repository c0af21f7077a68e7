"""``gridmap events``: import (all or nothing, file/row/field errors), escalate,
catalogue and routing rules, against a database of its own."""

from __future__ import annotations

from pathlib import Path

import events_support as ev
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from api.cli import app
from geo.store.db import make_engine, upgrade

HEADER = "event_id,reported_at,category,description,address,lon,lat,status,settled_at\n"


@pytest.fixture(scope="module")
def cli_env(make_database) -> dict[str, str]:  # type: ignore[no-untyped-def]
    url = make_database("events_cli")
    upgrade(url)
    engine = make_engine(url)
    try:
        ev.load_world(engine)
    finally:
        engine.dispose()
    return {"GRIDMAP_DATABASE_URL": url}


class _Res:
    def __init__(self, result) -> None:  # type: ignore[no-untyped-def]
        self.exit_code = result.exit_code
        self.stdout = result.stdout
        # the console wraps long lines: compare with whitespace folded
        self.output = " ".join(result.output.split())


def _run(env: dict[str, str], *args: str) -> _Res:
    return _Res(CliRunner().invoke(app, list(args), env=env, catch_exceptions=False))


def _events(env: dict[str, str]) -> int:
    engine = make_engine(env["GRIDMAP_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM events")).scalar_one())
    finally:
        engine.dispose()


def test_import_a_gb18030_file(cli_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "历史事件.csv"
    path.write_bytes(
        (
            HEADER
            + f"H-1,2025-02-01 08:00,010101,噪音扰民,{ev.east_address(1)},,,reported,\n"
            + "H-2,2025-02-02 09:00,030102,电动车充电,,120.25,30.1,settled,2025-02-03\n"
        ).encode("gb18030")
    )
    res = _run(cli_env, "events", "import", str(path), "--timezone", "Asia/Shanghai")
    assert res.exit_code == 0, res.output
    assert "2 of 2 rows imported" in res.output
    assert _events(cli_env) == 2


def test_a_bad_file_names_row_and_field_and_writes_nothing(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    before = _events(cli_env)
    path = tmp_path / "坏.csv"
    path.write_bytes(
        (
            HEADER
            + f"X-1,2025-02-01,010101,,{ev.east_address(2)},,,reported,\n"
            + f"X-2,2025-02-31,010101,,{ev.east_address(3)},,,reported,\n"
            + f"X-3,2025-02-01,777777,,{ev.east_address(4)},,,reported,\n"
        ).encode("gb18030")
    )
    res = _run(cli_env, "events", "import", str(path))
    assert res.exit_code == 2
    assert "nothing was written" in res.output
    assert "坏.csv row 2, field 'reported_at'" in res.output
    assert _events(cli_env) == before
    # the file fixed but for an unknown category: the database names it
    path.write_bytes(
        (
            HEADER
            + f"X-1,2025-02-01,010101,,{ev.east_address(2)},,,reported,\n"
            + f"X-3,2025-02-01,777777,,{ev.east_address(4)},,,reported,\n"
        ).encode("gb18030")
    )
    res = _run(cli_env, "events", "import", str(path))
    assert res.exit_code == 2
    assert "坏.csv row 2, field 'category': unknown category '777777'" in res.output
    assert _events(cli_env) == before
    res = _run(cli_env, "events", "import", str(tmp_path / "missing.csv"))
    assert res.exit_code == 2 and "file not found" in res.output
    res = _run(cli_env, "events", "import", str(path), "--timezone", "Mars/Olympus")
    assert res.exit_code == 2 and "time zone" in res.output


def test_escalate_rules_and_catalogue(cli_env: dict[str, str]) -> None:
    res = _run(cli_env, "events", "escalate", "--now", "2025-02-01T00:00:00")
    assert res.exit_code == 0 and "0 event(s) escalated" in res.output
    res = _run(cli_env, "events", "escalate")
    assert res.exit_code == 0, res.output
    assert "event 1: grid → village, assigned to VC-E" in res.output
    assert "1 event(s) escalated" in res.output  # H-2 is settled
    res = _run(
        cli_env,
        "events",
        "set-rule",
        "--tier",
        "grid",
        "--handler-role",
        "grid_worker",
        "--deadline-hours",
        "24",
        "--area",
        ev.EAST,
    )
    assert res.exit_code == 0, res.output
    res = _run(cli_env, "events", "rules")
    assert res.exit_code == 0 and ev.EAST in res.output and "(default)" in res.output
    res = _run(
        cli_env,
        "events",
        "set-rule",
        "--tier",
        "grid",
        "--handler-role",
        "mayor",
        "--deadline-hours",
        "24",
    )
    assert res.exit_code == 2 and "unknown role 'mayor'" in res.output
    res = _run(cli_env, "events", "catalogue")
    assert res.exit_code == 0 and "94 categories loaded" in res.output
    res = _run(cli_env, "keys", "create", "--role", "worker", "--name", "王网格")
    assert res.exit_code == 0 and res.stdout.startswith("gm_")
