"""Background jobs (plan generation) run in a worker thread; status is polled."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from geo.db import session_scope
from geo.io import InputError

__all__ = ["Job", "JobRunner", "generate_plan_job", "rebalance_plan_job"]

log = logging.getLogger("gridmap.api.jobs")


@dataclass
class Job:
    """A background job's state (kept in memory; lost when the server restarts)."""

    id: str
    kind: str
    params: dict[str, Any]
    status: str = "queued"
    stage: str = "queued"
    progress: float = 0.0
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    plan_id: int | None = None
    error: dict[str, Any] | None = None

    def step(self, stage: str, progress: float) -> None:
        self.stage, self.progress = stage, progress


class JobRunner:
    """A small queue of jobs on ``workers`` threads; remembers the last ``keep`` jobs."""

    def __init__(self, engine: Engine, *, workers: int = 1, keep: int = 200) -> None:
        self.engine = engine
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="gridmap-job"
        )
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._keep = keep

    def submit(
        self, kind: str, params: dict[str, Any], fn: Callable[[Job, Engine], None]
    ) -> Job:
        job = Job(id=uuid.uuid4().hex, kind=kind, params=params)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > self._keep:
                self._jobs.popitem(last=False)
        self._pool.submit(self._run, job, fn)
        return job

    def _run(self, job: Job, fn: Callable[[Job, Engine], None]) -> None:
        job.status, job.started_at = "running", dt.datetime.now(dt.UTC)
        try:
            fn(job, self.engine)
        except (InputError, ValueError, LookupError) as exc:
            job.status = "failed"
            job.error = {"title": "Job failed", "detail": str(exc)}
        except Exception as exc:
            log.exception("job %s failed", job.id)
            job.status = "failed"
            job.error = {
                "title": "Job failed",
                "detail": f"unexpected error ({type(exc).__name__}); see the server log",
            }
        else:
            job.status = "succeeded"
            job.step("done", 1.0)
        job.finished_at = dt.datetime.now(dt.UTC)

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def generate_plan_job(
    params: dict[str, Any], created_by: str
) -> Callable[[Job, Engine], None]:
    """A job that draws grids for an area and stores them as a new draft plan."""

    def run(job: Job, engine: Engine) -> None:
        from geo.generate import generate_grids
        from geo.plans import area_frames, save_generated_plan

        code = params["area_code"]
        with session_scope(engine) as session:
            job.step("reading households and areas", 0.1)
            areas, households = area_frames(session, code)
            if households.empty:
                raise ValueError(f"area {code} has no households loaded")
            job.step(f"drawing grids for {len(households)} households", 0.3)
            plan = generate_grids(
                households,
                areas,
                min_households=params["min_households"],
                max_households=params["max_households"],
                target=params.get("target"),
                respect_level=params["respect_level"],
                seed=params["seed"],
            )
            job.step("saving the draft plan", 0.8)
            job.plan_id = save_generated_plan(
                session, code, plan, name=params.get("name"), created_by=created_by
            )

    return run


def rebalance_plan_job(
    plan_id: int, params: dict[str, Any], created_by: str
) -> Callable[[Job, Engine], None]:
    """A job that rebalances a plan against today's households into a new draft."""

    def run(job: Job, engine: Engine) -> None:
        from geo.plans import area_frames, plan_frames, save_generated_plan
        from geo.rebalance import rebalance

        with session_scope(engine) as session:
            job.step("reading the plan and today's households", 0.1)
            grids, assignments, info = plan_frames(session, plan_id)
            _, households = area_frames(session, info["area_code"])
            retired = list((info["metrics"] or {}).get("retired_codes", []))
            job.step(f"rebalancing {len(grids)} grids", 0.3)
            result = rebalance(
                grids,
                assignments,
                households,
                min_households=params["min_households"],
                max_households=params["max_households"],
                locked=tuple(params.get("locked") or ()),
                retired_codes=retired,
            )
            result.plan.report["metrics"]["retired_codes"] = result.report[
                "retired_codes"
            ]
            result.plan.report["metrics"]["rebalance"] = {
                k: v for k, v in result.report.items() if k != "metrics"
            }
            job.step("saving the draft plan", 0.8)
            job.plan_id = save_generated_plan(
                session,
                info["area_code"],
                result.plan,
                created_by=created_by,
                parent_id=plan_id,
            )

    return run
