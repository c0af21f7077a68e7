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


#: The library's parameters (named in its messages) and the options that set them
#: on the command line.
OPTION_OF_PARAM = {
    "crs": "--crs",
    "sheet": "--sheet",
    "columns": "--map NAME=FILE_COLUMN",
    "defaults": "--set NAME=VALUE",
    "extra": "--extra attrs|ignore",
    "from_gcj02": "--from-gcj02",
    "from_bd09": "--from-bd09",
    "make_valid": "--make-valid",
    "clip": "--clip",
}


def input_error_text(exc: InputError) -> str:
    """The error as the CLI shows it: the library's message, then which option
    sets each parameter it names."""
    options = [
        f"{p} is {OPTION_OF_PARAM[p]}" for p in exc.params if p in OPTION_OF_PARAM
    ]
    text = f"nothing was written.\n{exc}"
    if options:
        text += f"\n(on the command line: {'; '.join(options)})"
    return text


@contextmanager
def _errors():  # type: ignore[no-untyped-def]
    try:
        yield
    except InputError as exc:
        raise _fail(input_error_text(exc)) from None
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
