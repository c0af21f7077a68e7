"""Statements on the lookups' psycopg pool that survive a database restart.

After the database restarts every pooled connection is dead, but the pool only
finds out one connection at a time. A statement whose connection turns out to
be broken therefore checks the whole pool (dropping every dead connection and
starting fresh ones) and runs once more on a new connection. While the database
is down both attempts together wait at most the pool's timeout and the error
goes up to the 503 handler (:mod:`api.problems`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import psycopg
import psycopg.errors
from psycopg import AsyncRawCursor
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from geo.store.db_errors import unavailable_reason

__all__ = ["fetch_all", "fetch_all_after", "fetch_one", "write_all"]


def _connection_lost(exc: psycopg.Error) -> bool:
    if isinstance(exc, PoolTimeout | psycopg.errors.QueryCanceled):
        return False  # waiting longer or again does not help
    return unavailable_reason(exc) is not None


async def _fetch(
    pool: AsyncConnectionPool,
    sql: Any,
    params: dict[str, Any],
    one: bool,
    before: tuple[Any, dict[str, Any]] | None = None,
) -> Any:
    deadline = time.monotonic() + pool.timeout  # one budget for both attempts
    for attempt in range(2):
        try:
            wait = max(0.1, deadline - time.monotonic())
            async with pool.connection(timeout=wait) as conn:
                if before is None:
                    cur = await conn.execute(sql, params)
                    return await (cur.fetchone() if one else cur.fetchall())
                # one transaction (what ``before`` sets ends with it); a
                # pipeline was measured slower here than four round trips
                async with conn.transaction():
                    await conn.execute(*before)
                    cur = await conn.execute(sql, params)
                    return await (cur.fetchone() if one else cur.fetchall())
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            if attempt or not _connection_lost(exc):
                raise
            await pool.check()  # drop the other dead connections too
    raise AssertionError("unreachable")


async def fetch_all(
    pool: AsyncConnectionPool, sql: Any, params: dict[str, Any]
) -> list[Any]:
    """All rows of one statement (retried once on a lost connection)."""
    return list(await _fetch(pool, sql, params, one=False))


async def fetch_one(pool: AsyncConnectionPool, sql: Any, params: dict[str, Any]) -> Any:
    """The first row of one statement, or None (retried once on a lost connection)."""
    return await _fetch(pool, sql, params, one=True)


async def fetch_all_after(
    pool: AsyncConnectionPool,
    before: tuple[Any, dict[str, Any]],
    sql: Any,
    params: dict[str, Any],
) -> list[Any]:
    """All rows of ``sql`` run right after ``before`` (statement, parameters) in
    one transaction, so that what ``before`` sets locally (a key's scope: its
    areas and role) holds for ``sql`` and ends with the transaction (retried
    once on a lost connection)."""
    return list(await _fetch(pool, sql, params, one=False, before=before))


async def write_all(
    pool: AsyncConnectionPool, sql: Any, params: Sequence[Any]
) -> list[Any]:
    """Every row (named attributes) of one statement that writes.

    ``sql`` has PostgreSQL's ``$1``… placeholders (a raw cursor: psycopg does
    not parse it), ``params`` their values in order.

    Never retried: a statement whose connection broke might have been committed.
    A lost connection purges the pool (the next request gets a fresh one) and
    goes up to the 503 handler.
    """
    try:
        async with pool.connection(timeout=pool.timeout) as conn:
            cur = AsyncRawCursor(conn, row_factory=dict_row)
            await cur.execute(sql, params)
            return [SimpleNamespace(**row) for row in await cur.fetchall()]
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        if _connection_lost(exc):
            await pool.check()
        raise
