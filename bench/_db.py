"""Shared bench helpers: a fresh, migrated benchmark database, or one to reuse."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from geo.store.db import database_url, recreate_database, upgrade
from geo.store.settings import Settings


def fresh_database(name: str = "gridmap_bench") -> str:
    """Drop and recreate ``name`` (UTF-8, C.UTF-8), migrate it, return its URL."""
    url = recreate_database(database_url(Settings(), start=True), name)
    upgrade(url)
    return url


def _counts(name: str) -> tuple[str, int, int]:
    """The URL of ``name`` on the embedded server, its households and published
    plans (raises when there is no such database or it has no such tables)."""
    url = make_url(database_url(Settings(), start=True)).set(database=name)
    url_s = url.render_as_string(hide_password=False)
    engine = create_engine(url_s)
    try:
        with engine.connect() as conn:
            have = conn.execute(text("SELECT count(*) FROM households")).scalar_one()
            plans = conn.execute(
                text("SELECT count(*) FROM plans WHERE status = 'published'")
            ).scalar_one()
    finally:
        engine.dispose()
    return url_s, int(have), int(plans)


def reusable_database(name: str, households: int) -> str | None:
    """The URL of ``name`` if it holds exactly ``households`` households and a
    published plan (migrated to the newest schema first), else None (saying why)."""
    try:
        url_s, have, plans = _counts(name)
    except Exception as exc:  # no such database yet, or an older schema
        print(f"not reusing {name}: {type(exc).__name__}")
        return None
    if have != households or not plans:
        return None
    upgrade(url_s)
    print(f"reusing {name} ({have} households, published grids)")
    return url_s


def existing_database(name: str) -> tuple[str, int]:
    """The URL of ``name`` and its households, as it is; exits the bench when it
    has no published plan."""
    url_s, have, plans = _counts(name)
    if not plans:
        raise SystemExit(f"{name} has no published plan")
    return url_s, have
