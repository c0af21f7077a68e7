"""Escalating overdue events now and then, on a thread of the server process.

Every ``every_s`` seconds :func:`geo.store.events.escalate_overdue` runs in its
own transaction. Several server processes may run it at once: the statement
skips rows another one has locked and only picks events still past their
deadline, so an event is never escalated twice for one deadline.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine

from geo.store.db import session_scope
from geo.store.events import Escalation, escalate_overdue

__all__ = ["Escalator"]

log = logging.getLogger("gridmap.api.escalation")


class Escalator:
    """A daemon thread escalating overdue events every ``every_s`` seconds."""

    def __init__(self, engine: Engine, every_s: float) -> None:
        self.engine = engine
        self.every_s = every_s
        self.runs = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.every_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._loop, name="gridmap-escalation", daemon=True
        )
        self._thread.start()

    def run_once(self) -> list[Escalation]:
        with session_scope(self.engine) as session:
            done = escalate_overdue(session, actor="escalation (server)")
        self.runs += 1
        if done:
            log.info("escalated %d overdue event(s)", len(done))
        return done

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.run_once()
            except Exception:  # the database may be down: try again next time
                log.exception("escalating overdue events failed")

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
