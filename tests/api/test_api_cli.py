"""``gridmap`` with the API commands (api.cli) against a database of its own."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

import api.cli
from api.cli import app
from geo.store.db import make_engine
from geo.store.keys import verify_key

TOKEN_RE = re.compile(r"gm_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")


@pytest.fixture(scope="module")
def cli_env(make_database) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"GRIDMAP_DATABASE_URL": make_database("apicli")}


def _run(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(app, list(args), env=env)


def test_run_no_serve_then_keys_publish_serve(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    r = _run(cli_env, "run", "--households", "600", "--no-serve", "--port", "8123")
    assert r.exit_code == 0, r.output
    from alembic.script import ScriptDirectory

    from geo.store.db import alembic_config

    head = ScriptDirectory.from_config(
        alembic_config("postgresql://x/y")
    ).get_current_head()
    assert f"schema at revision {head}" in r.output
    assert "API: http://127.0.0.1:8123" in r.output
    assert "curl -G http://127.0.0.1:8123/lookup --data-urlencode" in r.output
    assert "--no-serve" in r.output

    # keys: created (token printed once), listed by prefix, verified, revoked
    r = _run(cli_env, "keys", "create", "--role", "viewer", "--name", "hotline")
    assert r.exit_code == 0, r.output
    token = TOKEN_RE.search(r.output)
    assert token is not None
    engine = make_engine(cli_env["GRIDMAP_DATABASE_URL"])
    with Session(engine) as s:
        key = verify_key(s, token.group(0))
        assert key is not None and key.role == "viewer" and key.name == "hotline"
        stored = s.execute(text("SELECT key_hash FROM api_keys")).scalars().all()
        assert token.group(0) not in stored  # only the hash is kept
    listed = _run(cli_env, "keys", "list")
    assert key.prefix in listed.output and token.group(0) not in listed.output
    assert _run(cli_env, "keys", "create", "--role", "root").exit_code == 2
    # an area that does not exist, a date that is not one
    assert (
        _run(cli_env, "keys", "create", "--role", "viewer", "--area", "X").exit_code
        == 2
    )
    bad_date = _run(cli_env, "keys", "create", "--role", "viewer", "--expires", "soon")
    assert bad_date.exit_code == 2
    assert _run(cli_env, "keys", "revoke", key.prefix).exit_code == 0
    # both are in the audit; pruning keeps what is younger than the retention
    audit = _run(cli_env, "audit", "list")
    assert "key_created" in audit.output and "key_revoked" in audit.output
    assert _run(cli_env, "audit", "prune", "--older-than", "1d").exit_code == 0
    assert "key_created" in _run(cli_env, "audit", "list").output
    assert _run(cli_env, "audit", "prune", "--older-than", "soon").exit_code == 2
    with Session(engine) as s:
        assert verify_key(s, token.group(0)) is None
    assert _run(cli_env, "keys", "revoke", key.prefix).exit_code == 2

    # the main job staffed what it published: every grid has its grid worker
    with engine.connect() as conn:
        no_worker = conn.execute(
            text(
                "SELECT count(*) FROM grids g JOIN plans p ON p.id = g.plan_id "
                "WHERE p.status = 'published' AND g.worker_id IS NULL"
            )
        ).scalar_one()
    assert no_worker == 0

    # publish: a new draft via geo's generate (still part of the command), unstaffed
    r = _run(cli_env, "generate", "--area", "330803000000")
    assert r.exit_code == 0, r.output
    plan = int(re.search(r"stored as draft plan (\d+)", r.output).group(1))  # type: ignore[union-attr]
    with engine.connect() as conn:
        unstaffed = (
            conn.execute(
                text("SELECT code FROM grids WHERE plan_id = :p ORDER BY code"),
                {"p": plan},
            )
            .scalars()
            .all()
        )
    r = _run(cli_env, "publish", "--plan", str(plan))
    assert r.exit_code == 2, r.output
    out = " ".join(r.output.split())
    assert f"{len(unstaffed)} grid(s) with no grid worker" in out
    assert unstaffed[0] in out and "--allow-unstaffed" in out
    with engine.connect() as conn:
        status = conn.execute(
            text("SELECT status FROM plans WHERE id = :p"), {"p": plan}
        ).scalar_one()
    assert status == "draft"  # nothing was written
    r = _run(cli_env, "publish", "--plan", str(plan), "--allow-unstaffed")
    assert r.exit_code == 0 and f"plan {plan} published" in r.output
    # a staffed draft publishes without being told
    r = _run(cli_env, "generate", "--area", "330803000000", "--with-staff")
    assert r.exit_code == 0, r.output
    staffed = int(re.search(r"stored as draft plan (\d+)", r.output).group(1))  # type: ignore[union-attr]
    r = _run(cli_env, "publish", "--plan", str(staffed))
    assert r.exit_code == 0, r.output
    r = _run(cli_env, "publish", "--plan", str(plan), "--allow-unstaffed")
    assert "only a draft" in r.output
    plan = staffed
    with engine.connect() as conn:
        statuses = dict(conn.execute(text("SELECT id, status FROM plans")).all())
    assert statuses[plan] == "published"
    assert sorted(statuses.values()).count("published") == 1
    r = _run(cli_env, "publish", "--plan", str(plan))
    assert r.exit_code == 2 and "only a draft" in r.output
    assert _run(cli_env, "publish", "--plan", "9999").exit_code == 2
    engine.dispose()

    # serve: uvicorn gets the app on the loopback address
    seen: dict[str, Any] = {}

    def fake_run(app_: Any, **kw: Any) -> None:
        seen.update(kw, app=app_)

    monkeypatch.setattr("uvicorn.run", fake_run)
    r = _run(cli_env, "serve", "--port", "8124", "--workers", "1")
    assert r.exit_code == 0, r.output
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8124
    assert seen["app"].title == "GridMap API"
    assert seen["access_log"] is False
    # several processes: uvicorn builds the app in each from the environment
    seen.clear()
    r = _run(cli_env, "serve", "--port", "8125", "--workers", "3")
    assert r.exit_code == 0, r.output
    assert seen["app"] == "api.app:create_app" and seen["factory"] is True
    assert seen["workers"] == 3 and seen["port"] == 8125
    # workers get time to import and open their pools before health checks
    assert seen["timeout_worker_healthcheck"] >= 30
    assert _run(cli_env, "serve", "--workers", "0").exit_code == 2


def test_commands_live_in_api_cli_one_module_per_group() -> None:
    """One ``run`` (set-up, then serve); each group in its own module of api.cli."""
    ours = {c.name: c.callback.__module__ for c in api.cli.app.registered_commands}
    assert ours["run"] == "api.cli.serve" and ours["serve"] == "api.cli.serve"
    assert ours["generate"] == ours["rebalance"] == "api.cli.plans"
    assert [c.name for c in api.cli.app.registered_commands].count("run") == 1
    groups = {g.name: g.typer_instance for g in api.cli.app.registered_groups}
    assert set(groups) == {"db", "load", "keys", "events", "audit"}
    modules = {
        name: {c.callback.__module__ for c in app_.registered_commands}
        for name, app_ in groups.items()
    }
    assert modules == {
        "db": {"api.cli.db"},
        "load": {"api.cli.load"},
        "keys": {"api.cli.serve"},
        "events": {"api.cli.events"},
        "audit": {"api.cli.audit"},
    }
