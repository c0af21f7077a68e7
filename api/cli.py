"""The ``gridmap`` command: geo's CLI plus ``serve``, ``publish``, ``keys`` and ``run``.

``run`` replaces geo's main job with one that does the same setup (it calls
:func:`geo.cli.run_cmd`) and then serves the API; ``geo.cli`` keeps working alone.
"""

from __future__ import annotations

import os
import shlex
from typing import Annotated

import typer
from sqlalchemy import text

from geo.cli import app as geo_app
from geo.cli import console, run_cmd
from geo.store.db import database_url, make_engine, session_scope, upgrade
from geo.store.embedded import EmbeddedError
from geo.store.settings import Settings

__all__ = ["app", "main"]

# geo's commands and groups, in a new app so that ``geo.cli.app`` stays as it is;
# geo's ``run`` is replaced by the one below (the same setup, then the API).
app = typer.Typer(help=geo_app.info.help, no_args_is_help=True)
app.registered_commands = [c for c in geo_app.registered_commands if c.name != "run"]
app.registered_groups = list(geo_app.registered_groups)

keys_app = typer.Typer(
    help="API keys (viewer: read households; planner: change plans).",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")

HostOpt = Annotated[
    str, typer.Option(help="address to listen on (loopback by default)")
]
PortOpt = Annotated[int, typer.Option(help="TCP port")]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg="red")
    return typer.Exit(code)


def _engine(settings: Settings):  # type: ignore[no-untyped-def]
    try:
        url = database_url(settings, start=True)
    except EmbeddedError as exc:
        raise _fail(str(exc)) from None
    return make_engine(url)


WorkersOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        max=32,
        help="server processes (default: one per CPU, at most 4); jobs and polls "
        "work across them",
    ),
]


def default_workers() -> int:
    """One server process per CPU, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def _serve(settings: Settings, host: str, port: int, workers: int | None) -> None:
    import uvicorn

    from api.app import create_app
    from api.limits import server_options

    n = workers or default_workers()
    # no per-request access log: it costs more than a point lookup itself
    if n == 1:
        uvicorn.run(
            create_app(settings),
            host=host,
            port=port,
            log_level="info",
            access_log=False,
            **server_options(),
        )
        return
    # several processes: each builds the app from the environment (the database
    # URL is already settled, and the embedded server started, by the caller)
    os.environ["GRIDMAP_DATABASE_URL"] = database_url(settings, start=True)
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        workers=n,
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        **server_options(),
    )


@app.command("serve")
def serve_cmd(
    host: HostOpt = "127.0.0.1", port: PortOpt = 8000, workers: WorkersOpt = None
) -> None:
    """Serve the HTTP API (embedded PostGIS unless GRIDMAP_DATABASE_URL is set)."""
    settings = Settings()
    try:
        url = database_url(settings, start=True)
        console.print(f"schema at revision {upgrade(url)}")
    except EmbeddedError as exc:
        raise _fail(str(exc)) from None
    console.print(
        f"GridMap API on http://{host}:{port}  (docs: http://{host}:{port}/docs)"
    )
    _serve(settings, host, port, workers)


@app.command("publish")
def publish_cmd(plan: Annotated[int, typer.Option(help="id of a draft plan")]) -> None:
    """Publish a draft plan; the area's published plan is archived in the same step."""
    from geo.errors import PlanConflictError
    from geo.store.plans import publish_plan

    engine = _engine(Settings())
    try:
        with session_scope(engine) as session:
            publish_plan(session, plan)
    except (LookupError, PlanConflictError) as exc:
        raise _fail(str(exc)) from None
    finally:
        engine.dispose()
    console.print(f"plan {plan} published")


@keys_app.command("create")
def keys_create_cmd(
    role: Annotated[str, typer.Option(help="viewer or planner")],
    name: Annotated[str | None, typer.Option(help="who or what the key is for")] = None,
) -> None:
    """Create an API key and print its token (shown this once only)."""
    from geo.store.keys import create_key

    if role not in {"viewer", "planner"}:
        raise _fail("--role must be viewer or planner")
    settings = Settings()
    engine = _engine(settings)
    try:
        upgrade(engine.url.render_as_string(hide_password=False))
        with session_scope(engine) as session:
            token = create_key(session, role, name=name)
    finally:
        engine.dispose()
    typer.echo(token)
    typer.secho(
        f"{role} key created; the token above is shown only once (only its hash is kept).",
        err=True,
    )


@keys_app.command("list")
def keys_list_cmd() -> None:
    """Active keys: prefix, role, name (never the tokens)."""
    from geo.store.keys import list_keys

    engine = _engine(Settings())
    try:
        with session_scope(engine) as session:
            for k in list_keys(session):
                console.print(f"{k.prefix}  {k.role:8} {k.name or ''}", highlight=False)
    finally:
        engine.dispose()


@keys_app.command("revoke")
def keys_revoke_cmd(
    prefix: Annotated[str, typer.Argument(help="the key's prefix")],
) -> None:
    """Revoke a key by its prefix (the 8 hex digits after ``gm_``)."""
    from geo.store.keys import revoke_key

    engine = _engine(Settings())
    try:
        with session_scope(engine) as session:
            done = revoke_key(session, prefix)
    finally:
        engine.dispose()
    if not done:
        raise _fail(f"no active key with prefix {prefix!r}")
    console.print(f"key {prefix} revoked")


@app.command("run")
def run_api_cmd(
    households: Annotated[int, typer.Option(help="size of the sample county")] = 20_000,
    seed: int = 0,
    reload: Annotated[
        bool, typer.Option(help="load the sample even if data exists")
    ] = False,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="stop after the setup, do not serve")
    ] = False,
    workers: WorkersOpt = None,
) -> None:
    """The main job (database, schema, sample county, published grids, report), then
    the HTTP API on HOST:PORT; --no-serve stops after the setup.

    The setup is geo's ``run`` (:func:`geo.cli.run_cmd`).
    """
    run_cmd(households=households, seed=seed, reload=reload)
    settings = Settings()
    base = f"http://{host}:{port}"
    example = _example_address(settings)
    console.print(f"\nAPI: {base}  (docs: {base}/docs)", highlight=False)
    console.print(f"map viewer: {base}/map", highlight=False)
    if example:
        curl = f"curl -G {base}/lookup --data-urlencode {shlex.quote('address=' + example)}"
        console.print(f"try:  {curl}", highlight=False, markup=False, soft_wrap=True)
    if no_serve:
        console.print(
            "not serving (--no-serve); start the API with: .venv/bin/gridmap serve"
        )
        return
    _serve(settings, host, port, workers)


def _example_address(settings: Settings) -> str | None:
    engine = _engine(settings)
    try:
        with engine.connect() as conn:
            return conn.execute(
                text(
                    "SELECT h.address FROM households h JOIN assignments a "
                    "ON a.household_id = h.id JOIN plans p ON p.id = a.plan_id "
                    "WHERE p.status = 'published' AND h.address IS NOT NULL "
                    "ORDER BY h.id LIMIT 1"
                )
            ).scalar()
    finally:
        engine.dispose()


def main() -> None:
    """Entry point of the ``gridmap`` command."""
    app()


if __name__ == "__main__":
    main()
