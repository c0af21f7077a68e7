"""Escalating overdue events now and then, on a thread of the server process.

Every ``every_s`` seconds :func:`geo.store.events.escalate_overdue` runs in its
own transaction. Several server processes may run it at once: the statement
skips rows another one has locked and only picks events still past their
deadline, so an event is never escalated twice for one deadline.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from api.periodic import Periodic
from geo.store.db import session_scope
from geo.store.events import Escalation, escalate_overdue

__all__ = ["Escalator"]

log = logging.getLogger("gridmap.api.escalation")


class Escalator(Periodic):
    """A daemon thread escalating overdue events every ``every_s`` seconds."""

    thread_name = "gridmap-escalation"

    def __init__(self, engine: Engine, every_s: float) -> None:
        super().__init__(every_s)
        self.engine = engine
        self.runs = 0

    def run_once(self) -> list[Escalation]:
        with session_scope(self.engine) as session:
            done = escalate_overdue(session, actor="escalation (server)")
        self.runs += 1
        if done:
            log.info("escalated %d overdue event(s)", len(done))
        return done

    def tick(self) -> None:
        try:
            self.run_once()
        except Exception:  # the database may be down: try again next time
            log.exception("escalating overdue events failed")
