"""Settings read from the environment (prefix ``GRIDMAP_``), built by entry points only."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """GridMap settings.

    Nothing is read at import time: entry points (the CLI, ``create_app``, a
    notebook cell) call ``Settings()`` and pass the object down.

    Attributes
    ----------
    database_url
        SQLAlchemy URL of an existing PostgreSQL + PostGIS server. When unset,
        GridMap runs its own embedded cluster under ``data_dir``.
    data_dir
        Where the embedded cluster and other local state live
        (default ``./.gridmap``).
    pg_bindir
        Directory holding ``initdb``/``pg_ctl``/``postgres``; found
        automatically under ``/usr/lib/postgresql/*/bin`` when unset.
    escalate_every_s
        How often ``gridmap serve`` escalates overdue events (seconds; 0: never).
    dask_scheduler
        Address of a Dask scheduler (``tcp://host:8786``,
        ``GRIDMAP_DASK_SCHEDULER``): generation then runs one task per township
        or county on its workers (:mod:`geo.fanout`). Unset: one process.
    """

    model_config = SettingsConfigDict(env_prefix="GRIDMAP_", extra="ignore")

    database_url: str | None = None
    data_dir: Path = Field(default_factory=lambda: Path.cwd() / ".gridmap")
    pg_bindir: Path | None = None
    pg_port: int | None = None
    db_name: str = "gridmap"
    escalate_every_s: float = Field(default=600.0, ge=0)
    dask_scheduler: str | None = None
