"""Computing independent items in forked workers on one machine (POSIX ``fork``).

:func:`fork_map` runs ``func(i)`` for every item ``i`` and returns the results in
item order, exactly as ``[func(i) for i in range(n)]`` would: the items must be
independent (no item reads what another one changes), and each result is
pickled back from the worker that computed it (shapely pickles geometries as
WKB, so coordinates come back bit for bit).

The calling process and ``workers - 1`` forked children share the items
dynamically: the item numbers, most expensive first, lie in a pipe written
before the fork, and each process reads the next four bytes when it is free
(reads of a few bytes from a pipe are atomic), so no lock is shared and none
can be left held. A child sends all its results when the pipe is empty and
exits with ``os._exit`` (no ``atexit`` handlers, no inherited buffers
flushed); it dies with its parent (``PR_SET_PDEATHSIG``). Whatever a child
does not deliver (it raised, was killed, or sent something unreadable) is
computed again in the calling process, in item order, so an error is raised
there with its own traceback, and a result never depends on a worker.

Workers are used only where they are safe and can help: POSIX ``fork``
available, two or more CPUs in the process's affinity set, a single-threaded
caller (forking a process that runs other threads could copy a lock one of
them holds; a Dask worker or a web server therefore stays serial), and not
inside such a worker. ``GRIDMAP_WORKERS`` sets the number of processes
(``1``: always serial).

:func:`collector_paused` keeps Python's cyclic garbage collector off while a
run makes and frees its per-building objects.
"""

from __future__ import annotations

import ctypes
import gc
import os
import pickle
import signal
import struct
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = ["collector_paused", "fork_map", "worker_count"]

R = TypeVar("R")

#: the most processes (the caller included) :func:`worker_count` suggests
MAX_WORKERS = 8

_IN_WORKER = False
_TOKEN = struct.Struct("<i")
_F_SETPIPE_SZ = 1031  # Linux fcntl: resize a pipe's buffer


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the duration (back on after, if
    it was on); also a decorator.

    Generation and rebalancing make a few hundred thousand small objects (one
    per building) and free them at the end; meanwhile each full collection
    walks every object in the process again, a tenth of a run at 200,000
    households. Nothing is collected differently: reference counting still
    frees what is not in a cycle, and the collector runs as usual once it is
    back on.

    Yields
    ------
    None

    Examples
    --------
    >>> import gc
    >>> with collector_paused():
    ...     gc.isenabled()
    False
    >>> gc.isenabled()
    True
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def worker_count() -> int:
    """Processes (the caller included) :func:`fork_map` may use here: 1 for serial.

    Returns
    -------
    int
        ``GRIDMAP_WORKERS`` when set, else the CPUs in the affinity set (at most
        :data:`MAX_WORKERS`); 1 when forking is unsafe or unavailable here.

    Examples
    --------
    >>> worker_count() >= 1
    True
    """
    if _IN_WORKER or not hasattr(os, "fork") or threading.active_count() > 1:
        return 1
    env = os.environ.get("GRIDMAP_WORKERS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_WORKERS))


def fork_map(
    func: Callable[[int], R],
    n: int,
    *,
    order: Sequence[int] | None = None,
    workers: int | None = None,
) -> list[R]:
    """``[func(i) for i in range(n)]``, computed by up to ``workers`` processes.

    Parameters
    ----------
    func
        Computes item ``i``; its result must pickle. Items must be independent.
    n
        Number of items.
    order
        The order in which free processes take items (most expensive first
        balances the load best); default ``range(n)``.
    workers
        Processes, the caller included (default :func:`worker_count`); 1 or a
        single item computes everything in the caller, in item order.

    Returns
    -------
    list
        The results, in item order.

    Examples
    --------
    >>> fork_map(lambda i: i * i, 5, workers=2)
    [0, 1, 4, 9, 16]
    """
    w = worker_count() if workers is None else workers
    w = min(w, n)
    if w <= 1 or _IN_WORKER or not hasattr(os, "fork"):
        return [func(i) for i in range(n)]
    seq = list(range(n)) if order is None else [int(i) for i in order]
    tokens = b"".join(_TOKEN.pack(i) for i in seq)
    tok_r, tok_w = os.pipe()
    try:
        if not _fill(tok_w, tokens):
            return [func(i) for i in range(n)]
    finally:
        os.close(tok_w)
    children: list[tuple[int, int]] = []
    got: dict[int, R] = {}
    try:
        for _ in range(w - 1):
            res_r, res_w = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                _child(func, tok_r, res_w, [r for _, r in children] + [res_r])
            os.close(res_w)
            children.append((pid, res_r))
        for i in _claims(tok_r):
            got[i] = func(i)
        for pid, res_r in children:
            got.update(_collect(pid, res_r))
        children = []
    finally:
        os.close(tok_r)
        for pid, res_r in children:  # the caller raised: stop the others
            _stop(pid, res_r)
    # what no child delivered, in item order (raises here if an item raises)
    return [got[i] if i in got else func(i) for i in range(n)]


def _fill(fd: int, data: bytes) -> bool:
    """Write all of ``data`` into the pipe ``fd`` without blocking; False if it
    does not fit (the pipe is then left unused)."""
    if len(data) > 65536:
        try:
            import fcntl

            fcntl.fcntl(fd, _F_SETPIPE_SZ, len(data))
        except (OSError, ImportError):
            return False
    os.set_blocking(fd, False)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BlockingIOError:
        return False
    return True


def _claims(fd: int) -> Any:
    """The item numbers this process takes from the shared pipe, until it is empty."""
    while True:
        b = os.read(fd, _TOKEN.size)
        if len(b) < _TOKEN.size:
            return
        yield _TOKEN.unpack(b)[0]


def _child(
    func: Callable[[int], Any], tok_r: int, res_w: int, others: list[int]
) -> None:  # pragma: no cover - runs in the child
    global _IN_WORKER
    code = 1
    try:
        _IN_WORKER = True
        _die_with_parent()
        for fd in others:
            os.close(fd)
        out: dict[int, Any] = {}
        error = None
        try:
            for i in _claims(tok_r):
                out[i] = func(i)
        except BaseException:  # the parent computes the rest again and raises
            error = traceback.format_exc()
        data = pickle.dumps((out, error), protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(data)
        while view:
            view = view[os.write(res_w, view) :]
        code = 0
    finally:
        os._exit(code)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Ask Linux to kill this child when its parent dies (a killed bench run)."""
    ppid = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != ppid:  # the parent died before that took effect
        os._exit(1)


def _collect(pid: int, fd: int) -> dict[int, Any]:
    """A child's results (empty if it failed), once it has sent them and exited."""
    chunks = []
    try:
        while b := os.read(fd, 1 << 20):
            chunks.append(b)
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    if status != 0 or not chunks:
        return {}
    try:
        out, error = pickle.loads(b"".join(chunks))
    except Exception:
        return {}
    return {} if error is not None else dict(out)


def _stop(pid: int, fd: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.close(fd)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
