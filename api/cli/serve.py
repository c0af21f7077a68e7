"""Serving: the HTTP API, the main job (set-up, then serve) and API keys."""

from __future__ import annotations

import os
import shlex
import time
from typing import Annotated

import typer

from api.cli._app import _engine, _errors, _fail, app, console, keys_app
from api.cli.events import _events_summary, _load_sample_events
from api.cli.load import _load_sample
from api.cli.plans import _generate_and_publish_roots, _summary
from geo.store.db import database_url, make_engine, session_scope, upgrade
from geo.store.embedded import EmbeddedError, EmbeddedPostgres
from geo.store.queries import count_rows, example_address
from geo.store.settings import Settings


def setup_main_job(
    *, households: int = 20_000, seed: int = 0, reload: bool = False
) -> None:
    """The main job's set-up: start the database, migrate, load the sample county,
    draw, staff and publish its grids, load a year of its matters (once), report."""
    settings = Settings()
    t0 = time.perf_counter()
    with _errors():
        url = database_url(settings, start=True)
        console.print(
            "database: "
            + (
                "external (GRIDMAP_DATABASE_URL)"
                if settings.database_url
                else "embedded PostGIS"
            )
        )
        rev = upgrade(url)
        console.print(f"schema at revision {rev}")
        engine = make_engine(url)
        with engine.connect() as conn:
            have = count_rows(conn, "households")
        if have == 0 or reload:
            console.print(
                f"loading the sample county ({households} households, seed {seed}) …"
            )
            for report in _load_sample(engine, households, seed):
                console.print("  " + str(report))
        else:
            console.print(
                f"{have} households already loaded (use --reload to load the sample again)"
            )
        with engine.connect() as conn:
            plans = count_rows(conn, "plans")
        if plans == 0 or reload:
            _generate_and_publish_roots(engine)
        _summary(engine)
        t_events = time.perf_counter()
        sample = _load_sample_events(engine, seed)
        if sample is not None:
            console.print(
                f"sample matters: {sample} ({time.perf_counter() - t_events:.1f} s)",
                highlight=False,
            )
        _events_summary(engine)
    if not settings.database_url:
        st = EmbeddedPostgres(settings).status()
        console.print(f"\ndata lives in {st.data_dir} (log {st.log_file})")
        console.print(
            f"database: {st.url}\n"
            'connect:  psql "$(.venv/bin/gridmap db url)"  '
            "(status: .venv/bin/gridmap db status)",
            markup=False,
            highlight=False,
        )
    console.print(f"done in {time.perf_counter() - t0:.1f} s")


HostOpt = Annotated[
    str, typer.Option(help="address to listen on (loopback by default)")
]


PortOpt = Annotated[int, typer.Option(help="TCP port")]


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


@keys_app.command("create")
def keys_create_cmd(
    role: Annotated[
        str,
        typer.Option(
            help="viewer, worker (matters), planner, auditor (the audit only) "
            "or admin (keys)"
        ),
    ],
    name: Annotated[str | None, typer.Option(help="who or what the key is for")] = None,
    area: Annotated[
        str | None,
        typer.Option(
            help="limit the key to this county, township, village/community or "
            "grid code (default: the whole register)"
        ),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(help="last day the key works, YYYY-MM-DD (UTC; default: never)"),
    ] = None,
    person: Annotated[
        int | None, typer.Option(help="the person (people.id) the key belongs to")
    ] = None,
) -> None:
    """Create an API key and print its token (shown this once only)."""
    import datetime as dt

    from geo.access import issue_key
    from geo.errors import InputError

    day = None
    if expires is not None:
        try:
            day = dt.date.fromisoformat(expires)
        except ValueError:
            raise _fail(
                f"--expires must be a date YYYY-MM-DD, not {expires!r}"
            ) from None
    settings = Settings()
    engine = _engine(settings)
    try:
        upgrade(engine.url.render_as_string(hide_password=False))
        with session_scope(engine) as session:
            try:
                issued = issue_key(
                    session,
                    role,
                    name=name,
                    area_code=area,
                    expires_on=day,
                    person_id=person,
                )
            except InputError as exc:
                field = exc.problems[0].field
                raise _fail(f"--{field}: {exc.problems[0].message}") from None
            token = issued.token
    finally:
        engine.dispose()
    typer.echo(token)
    where = f" for area {area}" if area else " for the whole register"
    typer.secho(
        f"{role} key created{where}; the token above is shown only once (only its "
        "hash is kept).",
        err=True,
    )


@keys_app.command("list")
def keys_list_cmd() -> None:
    """Active keys: prefix, role, area, expiry, person, name (never the tokens)."""
    from geo.access import keys_visible

    engine = _engine(Settings())
    try:
        with session_scope(engine) as session:
            for k in keys_visible(session):
                until = k.expires_at.date().isoformat() if k.expires_at else "-"
                console.print(
                    f"{k.prefix}  {k.role:8} {k.area_code or '(all)':16} "
                    f"{until:10} {k.person_id or '-':>6}  {k.name or ''}",
                    highlight=False,
                )
    finally:
        engine.dispose()


@keys_app.command("revoke")
def keys_revoke_cmd(
    prefix: Annotated[str, typer.Argument(help="the key's prefix")],
) -> None:
    """Revoke a key by its prefix (the 8 hex digits after ``gm_``)."""
    from geo.access import withdraw_key
    from geo.errors import NotFound

    engine = _engine(Settings())
    try:
        with session_scope(engine) as session:
            withdraw_key(session, prefix)
    except NotFound:
        raise _fail(f"no active key with prefix {prefix!r}") from None
    finally:
        engine.dispose()
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

    The setup is :func:`setup_main_job`.
    """
    setup_main_job(households=households, seed=seed, reload=reload)
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
            return example_address(conn)
    finally:
        engine.dispose()
