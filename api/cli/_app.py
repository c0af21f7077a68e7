"""The ``gridmap`` command's Typer apps and what every command shares: consoles, errors, the engine."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console

from geo.errors import GridMapError
from geo.io import InputError
from geo.store.db import database_url, make_engine
from geo.store.embedded import EmbeddedError
from geo.store.settings import Settings

__all__ = ["app"]


app = typer.Typer(
    help="GridMap: grid-governance (网格化管理) maps in PostGIS.", no_args_is_help=True
)


db_app = typer.Typer(
    help="The database: embedded cluster and schema.", no_args_is_help=True
)


load_app = typer.Typer(
    help="Load areas, households or people from files.", no_args_is_help=True
)


app.add_typer(db_app, name="db")


app.add_typer(load_app, name="load")


console = Console()


err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


@contextmanager
def _errors():  # type: ignore[no-untyped-def]
    try:
        yield
    except InputError as exc:
        raise _fail(f"nothing was written.\n{exc}") from None
    except (EmbeddedError, GridMapError) as exc:
        raise _fail(str(exc)) from None


def _engine(settings: Settings):  # type: ignore[no-untyped-def]
    url = database_url(settings, start=True)
    return make_engine(url)


CrsOpt = Annotated[str | None, typer.Option(help="CRS of a file that declares none")]


keys_app = typer.Typer(
    help="API keys (viewer: read households; planner: change plans).",
    no_args_is_help=True,
)


app.add_typer(keys_app, name="keys")
