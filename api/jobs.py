"""Background jobs (plan generation, rebalancing) on worker threads.

Their state lives in the database (:mod:`geo.store.jobs`), so any server process
answers ``GET /jobs/{id}``, whichever one runs the job.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from geo.errors import PlanConflictError
from geo.io import InputError
from geo.services import generate_and_save, rebalance_and_save
from geo.store.db import session_scope
from geo.store.db_errors import describe_db_error
from geo.store.jobs import (
    STALE_AFTER,
    JobState,
    create_job,
    fail_job,
    finish_job,
    get_job,
    heartbeat,
    start_job,
    step_job,
)

__all__ = ["Job", "JobRunner", "generate_plan_job", "rebalance_plan_job"]

log = logging.getLogger("gridmap.api.jobs")


class Job:
    """What a job function sees: report progress with ``step``, set ``plan_id``;
    ``scheduler`` is the Dask scheduler generation runs on (None: this process)."""

    def __init__(
        self, engine: Engine, job_id: str, *, scheduler: str | None = None
    ) -> None:
        self.id = job_id
        self.plan_id: int | None = None
        self.scheduler = scheduler
        self._engine = engine

    def step(self, stage: str, progress: float) -> None:
        step_job(self._engine, self.id, stage, progress)


class JobRunner:
    """Runs jobs on ``workers`` threads of this process and keeps them alive in the
    database (a heartbeat every ``beat_s`` seconds for its queued and running jobs).
    With ``scheduler`` (``GRIDMAP_DASK_SCHEDULER``) generation jobs fan out on Dask."""

    def __init__(
        self,
        engine: Engine,
        *,
        workers: int = 1,
        beat_s: float | None = None,
        scheduler: str | None = None,
    ) -> None:
        self.engine = engine
        self.scheduler = scheduler
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="gridmap-job"
        )
        self._mine: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat_s = beat_s or STALE_AFTER.total_seconds() / 4
        self._beat = threading.Thread(
            target=self._heartbeat, name="gridmap-job-heartbeat", daemon=True
        )
        self._beat.start()

    def submit(
        self,
        kind: str,
        params: dict[str, Any],
        fn: Callable[[Job, Engine], None],
        *,
        created_by: str | None = None,
    ) -> JobState:
        state = create_job(
            self.engine, kind, params, created_by=created_by, runner=self.name
        )
        with self._lock:
            self._mine.add(state.id)
        self._pool.submit(self._run, state.id, fn)
        return state

    def _run(self, job_id: str, fn: Callable[[Job, Engine], None]) -> None:
        job = Job(self.engine, job_id, scheduler=self.scheduler)
        try:
            start_job(self.engine, job_id)
            fn(job, self.engine)
        except (InputError, ValueError, LookupError, PlanConflictError) as exc:
            self._fail(job_id, str(exc))
        except DBAPIError as exc:
            log.exception("job %s failed in the database", job_id)
            self._fail(job_id, describe_db_error(exc))
        except Exception as exc:
            log.exception("job %s failed", job_id)
            first = (str(exc).splitlines() or [""])[0][:300]
            self._fail(
                job_id,
                f"unexpected error ({type(exc).__name__}"
                + (f": {first}" if first else "")
                + "); see the server log",
            )
        else:
            finish_job(self.engine, job_id, job.plan_id)
        finally:
            with self._lock:
                self._mine.discard(job_id)

    def _fail(self, job_id: str, detail: str) -> None:
        try:
            fail_job(self.engine, job_id, detail)
        except Exception:  # the database is gone too: pollers see a stale job
            log.exception("could not record that job %s failed", job_id)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self._beat_s):
            with self._lock:
                ids = sorted(self._mine)
            try:
                heartbeat(self.engine, ids)
            except Exception:
                log.exception("job heartbeat failed")

    def get(self, job_id: str) -> JobState | None:
        return get_job(self.engine, job_id)

    def shutdown(self) -> None:
        """Finish the running jobs; the queued ones are failed (never started)."""
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            left = sorted(self._mine)
            self._mine.clear()
        for job_id in left:
            self._fail(
                job_id, "the server stopped before the job started; start it again"
            )


def generate_plan_job(
    params: dict[str, Any], created_by: str
) -> Callable[[Job, Engine], None]:
    """A job that draws grids for an area and stores them as a new draft plan."""

    def run(job: Job, engine: Engine) -> None:
        with session_scope(engine) as session:
            saved = generate_and_save(
                session,
                params["area_code"],
                min_households=params["min_households"],
                max_households=params["max_households"],
                target=params.get("target"),
                respect_level=params["respect_level"],
                seed=params["seed"],
                name=params.get("name"),
                created_by=created_by,
                progress=job.step,
                with_staff=True,  # a draft from the API has workers and members
                scheduler=job.scheduler,
            )
            job.plan_id = saved.plan_id
        if saved.fanout is not None and saved.fanout.failed:
            failed = saved.fanout.failed
            job.step(
                f"draft {saved.plan_id} is incomplete: {len(failed)} unit(s) failed ("
                + "; ".join(f"{c}: {m}" for c, m in list(failed.items())[:5])
                + "); re-run or exclude them before publishing",
                1.0,
            )

    return run


def rebalance_plan_job(
    plan_id: int, params: dict[str, Any], created_by: str
) -> Callable[[Job, Engine], None]:
    """A job that rebalances a plan against today's households into a new draft."""

    def run(job: Job, engine: Engine) -> None:
        with session_scope(engine) as session:
            job.plan_id = rebalance_and_save(
                session,
                plan_id,
                min_households=params["min_households"],
                max_households=params["max_households"],
                locked=tuple(params.get("locked") or ()),
                created_by=created_by,
                progress=job.step,
                scheduler=job.scheduler,
            ).plan_id

    return run
