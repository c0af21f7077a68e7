"""``gridmap events sample``: a seeded year of matters loaded once, with a summary
(the step ``gridmap run`` takes after publishing its grids), on a database of its own."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from api.cli import app
from geo.services import generate_and_save, load_sample, publish
from geo.store.db import make_engine, session_scope, upgrade


@pytest.fixture(scope="module")
def env(make_database) -> dict[str, str]:  # type: ignore[no-untyped-def]
    url = make_database("events_sample_cli")
    upgrade(url)
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            load_sample(s, 800, seed=5)
        with session_scope(engine) as s:
            saved = generate_and_save(s, "330803000000", with_staff=True)
            publish(s, saved.plan_id)
    finally:
        engine.dispose()
    return {"GRIDMAP_DATABASE_URL": url}


def _run(env: dict[str, str], *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    return r.exit_code, " ".join(r.output.split())


def _events(env: dict[str, str]) -> int:
    engine = make_engine(env["GRIDMAP_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM events")).scalar_one())
    finally:
        engine.dispose()


def test_sample_matters_are_loaded_once_with_a_summary(env: dict[str, str]) -> None:
    code, out = _run(env, "events", "sample", "--seed", "3")
    assert code == 0, out
    assert "160 of 160 rows imported" in out and "escalated at load" in out
    assert "Matters (三事分流) per township" in out
    assert "小事不出格" in out and "大事不出村" in out and "mean satisfaction" in out
    assert _events(env) == 160
    # a second run (as every `gridmap run` after the first) loads nothing more
    code, out = _run(env, "events", "sample")
    assert code == 0, out
    assert "events exist already" in out and "Matters" in out
    assert _events(env) == 160
