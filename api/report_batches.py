"""``POST /events``'s hot path in batches: the reports waiting at a moment go to
the database as one statement (:data:`geo.store.event_hotpath.REPORT_SQL`).

No report waits for a batch to fill: a report that finds a lane free is sent at
once (a batch of one); reports that arrive while every lane is busy queue and
go together when a lane frees. Under load a batch therefore holds the reports
of about one statement's time, and the work done once per statement — the
plan, the statistics rollup's trigger, the commit, the round trip — is shared
by all of them.

A batch is one statement and so all or nothing. When the database refuses it
(a value of one report, say), each of its reports is sent again on its own, so
that one report's error is that report's alone. When the database is out of
reach — no connection within the pool's timeout, a lost connection (the batch
may have been committed: never sent again), a cancelled statement — every
report of the batch fails at once, as each would alone (503), instead of
waiting its turn for the same answer.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from api.dbpool import write_all
from geo.store import event_hotpath

__all__ = ["ReportBatcher"]

#: Statements in flight per server process, and reports per statement at most.
LANES = 1
MAX_BATCH = 64


class ReportBatcher:
    """Sends hot-path reports in batches on the lookups' pool."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        lanes: int = LANES,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._pool = pool
        self._lanes = lanes
        self._max = max_batch
        self._busy = 0
        self._waiting: list[tuple[dict[str, Any], asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        #: sizes of the batches sent (for tests and benchmarks)
        self.sizes: list[int] = []

    async def report(self, params: dict[str, Any]) -> Any:
        """The answer row of one report (:func:`~geo.store.event_hotpath.report_params`),
        or None when the reference path must decide it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting.append((params, future))
        if self._busy < self._lanes:
            self._busy += 1
            task = loop.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max]
                del self._waiting[: self._max]
                await self._send(batch)
        finally:
            self._busy -= 1

    async def _send(
        self, batch: list[tuple[dict[str, Any], asyncio.Future[Any]]]
    ) -> None:
        self.sizes.append(len(batch))
        try:
            rows = await write_all(
                self._pool,
                event_hotpath.REPORT_SQL_NATIVE,
                event_hotpath.report_batch([params for params, _ in batch]),
            )
        except psycopg.Error as exc:
            unavailable = isinstance(
                exc, psycopg.OperationalError | psycopg.InterfaceError
            )
            if len(batch) > 1 and not unavailable:
                for item in batch:  # each alone: one report's error is its own
                    await self._send([item])
                return
            _fail(batch, exc)
            return
        except BaseException as exc:  # cancelled, or a bug: nobody waits forever
            _fail(batch, exc)
            raise
        by_index = {row.i: row for row in rows}
        for i, (_, future) in enumerate(batch):
            if not future.done():
                future.set_result(by_index.get(i))


def _fail(
    batch: list[tuple[dict[str, Any], asyncio.Future[Any]]], exc: BaseException
) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
