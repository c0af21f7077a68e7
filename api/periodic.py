"""A daemon thread of the server process doing one thing every few seconds.

The audit's writer, the collection caps' sync and the escalation of overdue
matters each subclass :class:`Periodic`: ``tick`` every ``every_s`` seconds,
``on_start`` once when the thread starts, ``on_stop`` once when the app stops
(after the thread has ended), so what is queued is not lost on a clean stop.
"""

from __future__ import annotations

import threading

__all__ = ["Periodic"]


class Periodic:
    """Calls :meth:`tick` every ``every_s`` seconds on a daemon thread
    (``every_s <= 0``: never); subclasses say what a tick does."""

    #: the thread's name (``ps``, ``py-spy``)
    thread_name = "gridmap-periodic"

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        """One run; raising ends nothing (subclasses log and try again)."""
        raise NotImplementedError

    def on_start(self) -> None:
        """Run once on the thread before the first tick."""

    def on_stop(self) -> None:
        """Run once in :meth:`stop`, after the thread has ended."""

    def start(self) -> None:
        if self.every_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._loop, name=self.thread_name, daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        self.on_start()
        while not self._stop.wait(self.every_s):
            self.tick()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.on_stop()
