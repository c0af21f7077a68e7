"""Shared bench helper: a fresh, migrated benchmark database on the configured server."""

from __future__ import annotations

from geo.store.db import database_url, recreate_database, upgrade
from geo.store.settings import Settings


def fresh_database(name: str = "gridmap_bench") -> str:
    """Drop and recreate ``name`` (UTF-8, C.UTF-8), migrate it, return its URL."""
    url = recreate_database(database_url(Settings(), start=True), name)
    upgrade(url)
    return url
