"""Shared bench helper: a fresh, migrated benchmark database on the configured server."""

from __future__ import annotations

import psycopg
from sqlalchemy.engine import make_url

from geo.db import database_url, upgrade
from geo.embedded import create_database
from geo.settings import Settings


def fresh_database(name: str = "gridmap_bench") -> str:
    """Drop and recreate ``name`` (UTF-8, C.UTF-8), migrate it, return its URL."""
    url = make_url(database_url(Settings(), start=True))
    with psycopg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        dbname=url.database,
        autocommit=True,
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        create_database(conn, name)
    out = url.set(database=name).render_as_string(hide_password=False)
    upgrade(out)
    return out
