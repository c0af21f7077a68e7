"""The ``gridmap`` command: database, loading, plans, the API server and the main job.

One module per command group: :mod:`api.cli.db`, :mod:`api.cli.load`,
:mod:`api.cli.plans`, :mod:`api.cli.fanout` (Dask), :mod:`api.cli.serve`,
:mod:`api.cli.events`, :mod:`api.cli.audit`; they register on the Typer apps of :mod:`api.cli._app`.
"""

from __future__ import annotations

from api.cli import (  # noqa: F401  (they register commands)
    audit,
    db,
    events,
    fanout,
    load,
    plans,
    serve,
)
from api.cli._app import app, console

__all__ = ["app", "console", "main"]


def main() -> None:
    """Entry point of the ``gridmap`` command."""
    app()
