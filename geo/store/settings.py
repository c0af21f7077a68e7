"""Settings read from the environment (prefix ``GRIDMAP_``), built by entry points only."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "nearest_data_dir"]


def nearest_data_dir(start: Path) -> Path:
    """The nearest existing ``.gridmap`` folder at ``start`` or above, else
    ``start/.gridmap``.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / ".gridmap").mkdir(); (root / "notebooks").mkdir()
    >>> nearest_data_dir(root / "notebooks") == root / ".gridmap"
    True
    >>> nearest_data_dir(Path("/")) == Path("/.gridmap")
    True
    """
    here = start.absolute()
    for d in (here, *here.parents):
        if (d / ".gridmap").is_dir():
            return d / ".gridmap"
    return here / ".gridmap"


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
        Where the embedded cluster and other local state live: by default the
        nearest ``.gridmap`` folder in the current directory or a parent (so a
        notebook kernel started in ``notebooks/`` finds the database that
        ``gridmap run`` left in the project), else ``./.gridmap``.
    pg_bindir
        Directory holding ``initdb``/``pg_ctl``/``postgres``; found
        automatically under ``/usr/lib/postgresql/*/bin`` when unset.
    escalate_every_s
        How often ``gridmap serve`` escalates overdue events (seconds; 0: never).
    audit
        Record reads of personal data, refusals, keys and publishes in the
        audit (``audit_log``); off only to measure what it costs.
    audit_retention_days
        ``gridmap audit prune`` deletes lines older than this by default.
    cap_households_per_key, cap_households_per_client, cap_window_s
        Collection caps: the most distinct households one key, and all keys
        from one client address, are shown within ``cap_window_s`` seconds
        (429 with ``Retry-After`` beyond, recorded in the audit).
    trusted_proxies
        Addresses or networks of reverse proxies whose ``X-Forwarded-For``
        is believed (JSON list, e.g. ``GRIDMAP_TRUSTED_PROXIES='["10.0.0.1"]'``);
        from anyone else the header is ignored.
    dask_scheduler
        Address of a Dask scheduler (``tcp://host:8786``,
        ``GRIDMAP_DASK_SCHEDULER``): generation then runs one task per township
        or county on its workers (:mod:`geo.fanout`). Unset: one process.
    viewer_tiles
        An XYZ tile URL template in WGS84 (``http://10.0.0.5/tiles/{z}/{x}/{y}.png``,
        ``GRIDMAP_VIEWER_TILES``) drawn under the web viewer's grids. Unset: no
        tile request at all (the viewer draws the admin area outlines instead).
    """

    model_config = SettingsConfigDict(env_prefix="GRIDMAP_", extra="ignore")

    database_url: str | None = None
    data_dir: Path = Field(default_factory=lambda: nearest_data_dir(Path.cwd()))
    pg_bindir: Path | None = None
    pg_port: int | None = None
    db_name: str = "gridmap"
    escalate_every_s: float = Field(default=600.0, ge=0)
    dask_scheduler: str | None = None
    audit: bool = True
    audit_retention_days: int = Field(default=180, ge=1)
    cap_households_per_key: int = Field(default=5000, ge=1)
    cap_households_per_client: int = Field(default=10_000, ge=1)
    cap_window_s: float = Field(default=3600.0, gt=0)
    trusted_proxies: list[str] = Field(default_factory=list)
    viewer_tiles: str | None = None

    @field_validator("viewer_tiles")
    @classmethod
    def _xyz(cls, v: str | None) -> str | None:
        if v and not all(k in v for k in ("{x}", "{y}", "{z}")):
            raise ValueError(
                "viewer_tiles must be an XYZ URL template with {x}, {y} and {z}"
            )
        return v or None
