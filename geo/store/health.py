"""Is the database ready to answer lookups? One cheap round trip.

Ready means: the server answers, the schema is at the newest migration
(Alembic head) and at least one plan is published (lookups have grids to
answer from). Used by the HTTP API's ``GET /readyz``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import psycopg.errors
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from geo.store.db import alembic_config
from geo.store.db_errors import unavailable_reason

__all__ = ["Readiness", "readiness", "schema_head"]


@dataclass(frozen=True)
class Readiness:
    """The outcome of :func:`readiness`; ``reasons`` say why it is not ready."""

    ready: bool
    schema: str | None = None
    head: str | None = None
    published_plans: bool = False
    reasons: list[str] = field(default_factory=list)


@functools.cache
def schema_head() -> str:
    """The newest migration of this code (read from the migration scripts once)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(
        alembic_config("postgresql://unused/unused")
    ).get_current_head()
    return str(head)


_READY_SQL = text(
    "SELECT (SELECT version_num FROM alembic_version LIMIT 1), "
    "EXISTS (SELECT 1 FROM plans WHERE status = 'published')"
)


def readiness(engine: Engine) -> Readiness:
    """Check the database behind ``engine``; never raises for database trouble."""
    head = schema_head()
    try:
        with engine.connect() as conn:
            row = conn.execute(_READY_SQL).one()
    except (DBAPIError, PoolTimeoutError) as exc:
        orig = getattr(exc, "orig", None)
        if isinstance(orig, psycopg.errors.UndefinedTable):
            return Readiness(
                False,
                head=head,
                reasons=[
                    "the database has no GridMap schema; run `gridmap db upgrade`"
                ],
            )
        reason = unavailable_reason(exc)
        if reason is None:
            raise
        return Readiness(False, head=head, reasons=[reason])
    schema, published = row[0], bool(row[1])
    reasons = []
    if schema != head:
        reasons.append(
            f"the database schema is at revision {schema}, this server needs {head}; "
            "run `gridmap db upgrade`"
        )
    if not published:
        reasons.append(
            "no plan is published yet, so lookups find no grid; publish one "
            "(gridmap publish --plan ID)"
        )
    return Readiness(not reasons, schema, head, published, reasons)
