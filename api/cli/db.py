"""``gridmap db``: the embedded PostgreSQL cluster and the schema."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from api.cli._app import _errors, console, db_app
from geo.store.db import database_url, upgrade
from geo.store.embedded import EmbeddedPostgres
from geo.store.settings import Settings

# -- db ----------------------------------------------------------------------


@db_app.command("start")
def db_start() -> None:
    """Start the embedded PostGIS (idempotent; recovers from a stale pid file)."""
    settings = Settings()
    if settings.database_url:
        console.print(
            "GRIDMAP_DATABASE_URL is set: GridMap uses that server, no local cluster."
        )
        return
    with _errors():
        st = EmbeddedPostgres(settings).start()
    console.print(f"embedded PostGIS running on port {st.port} (pid {st.pid})")
    console.print(f"  data: {st.data_dir}\n  url:  {st.url}\n  log:  {st.log_file}")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostGIS."""
    settings = Settings()
    if settings.database_url:
        console.print("GRIDMAP_DATABASE_URL is set: there is no local cluster to stop.")
        return
    with _errors():
        stopped = EmbeddedPostgres(settings).stop()
    console.print("stopped" if stopped else "was not running")


@db_app.command("status")
def db_status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Where the database is and whether it runs."""
    settings = Settings()
    if settings.database_url:
        info: dict[str, Any] = {"mode": "external", "url": _hide(settings.database_url)}
    else:
        st = EmbeddedPostgres(settings).status()
        info = {"mode": "embedded", **st.__dict__}
    if as_json:
        console.print_json(json.dumps(info))
    else:
        for k, v in info.items():
            console.print(f"{k:12} {v}")


def _hide(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply the schema migrations (starts the embedded database if needed)."""
    with _errors():
        url = database_url(Settings(), start=True)
        rev = upgrade(url, revision)
    console.print(f"schema at revision {rev}")


@db_app.command("url")
def db_url_cmd() -> None:
    """Print the libpq URL of the database (with its password) for psql."""
    with _errors():
        url = database_url(Settings(), start=False)
    console.print(
        url.replace("postgresql+psycopg://", "postgresql://"),
        highlight=False,
        soft_wrap=True,
    )
