"""Engines, sessions and schema migrations; the caller owns every transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from geo.store.settings import Settings

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "database_url",
    "make_engine",
    "recreate_database",
    "session_scope",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def database_url(settings: Settings, *, start: bool = True) -> str:
    """The URL GridMap talks to.

    ``GRIDMAP_DATABASE_URL`` when set (the local embedded cluster is then never
    touched); otherwise the embedded cluster, started first when ``start``.
    """
    if settings.database_url:
        url = make_url(settings.database_url)
        if url.drivername in {"postgresql", "postgres"}:
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)
    from geo.store.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(settings)
    if start:
        pg.start()
    return pg.url()


#: Seconds to wait for a connection to the server before giving up.
CONNECT_TIMEOUT_S = 10


def make_engine(url: str, **kwargs: object) -> Engine:
    """Create an engine for ``url`` (psycopg 3 driver, UTF-8 client encoding).

    Pooled connections are checked before use (``pool_pre_ping``) and a
    connection attempt gives up after :data:`CONNECT_TIMEOUT_S` seconds;
    ``connect_args`` in ``kwargs`` are added to (and override) these.
    """
    kwargs.setdefault("pool_pre_ping", True)
    connect_args = {
        "client_encoding": "utf8",
        "connect_timeout": CONNECT_TIMEOUT_S,
        **dict(kwargs.pop("connect_args", None) or {}),  # type: ignore[call-overload]
    }
    return create_engine(
        url,
        connect_args=connect_args,
        **kwargs,  # type: ignore[arg-type]
    )


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    with factory() as session, session.begin():
        yield session


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    """An Alembic ``Config`` pointing at GridMap's migrations and ``url``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> str:
    """Migrate the database at ``url`` to ``revision``; returns the new revision."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)
    engine = make_engine(url, poolclass=None)
    try:
        with engine.connect() as conn:
            return str(
                conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            )
    finally:
        engine.dispose()


def recreate_database(url: str, name: str) -> str:
    """Drop database ``name`` on the server of ``url`` and create it empty (UTF-8).

    For tests, benchmarks and notebooks that need a database of their own.
    Returns the URL of the new database (same server and credentials).
    """
    import psycopg

    from geo.store.embedded import create_database

    u = make_url(url)
    with psycopg.connect(
        host=u.host,
        port=u.port,
        user=u.username,
        password=u.password,
        dbname=u.database,
        autocommit=True,
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        create_database(conn, name)
    return u.set(database=name).render_as_string(hide_password=False)
