"""Background jobs kept in the database: create, update, read.

The HTTP API runs plan generation and rebalancing in worker threads; their state
lives in the ``jobs`` table so that any server process (``--workers N``) answers
a poll and a job outlives the process that ran it. A running job's process
touches ``heartbeat_at`` while it works; a queued or running job whose
heartbeat is older than :data:`STALE_AFTER` is reported as failed (its process
stopped). Every function opens its own short transaction on ``engine`` and
commits: job state must be visible at once, whatever the job itself is doing.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text

__all__ = [
    "STALE_AFTER",
    "JobState",
    "create_job",
    "fail_job",
    "finish_job",
    "get_job",
    "heartbeat",
    "start_job",
    "step_job",
]

#: A queued or running job without a heartbeat for this long counts as failed.
STALE_AFTER = dt.timedelta(seconds=90)


@dataclass(frozen=True)
class JobState:
    """A job as stored."""

    id: str
    kind: str
    params: dict[str, Any]
    status: str
    stage: str
    progress: float
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    plan_id: int | None
    error: dict[str, Any] | None
    created_by: str | None = None
    runner: str | None = None


_COLUMNS = (
    "id, kind, params, status, stage, progress, created_at, started_at, "
    "finished_at, plan_id, error, created_by, runner"
)


def create_job(
    engine: Engine,
    kind: str,
    params: dict[str, Any],
    *,
    created_by: str | None = None,
    runner: str | None = None,
) -> JobState:
    """Store a new queued job (heartbeat now) and return it."""
    with engine.begin() as conn:
        row = conn.execute(
            text(
                "INSERT INTO jobs (id, kind, params, created_by, runner, heartbeat_at) "
                "VALUES (:id, :kind, CAST(:params AS jsonb), :by, :runner, now()) "
                f"RETURNING {_COLUMNS}"
            ),
            {
                "id": uuid.uuid4().hex,
                "kind": kind,
                "params": json.dumps(params, ensure_ascii=False, default=str),
                "by": created_by,
                "runner": runner,
            },
        ).one()
    return JobState(**row._mapping)


def start_job(engine: Engine, job_id: str) -> None:
    """Mark a job running (on the runner that queued it)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE jobs SET status = 'running', stage = 'starting', "
                "started_at = now(), heartbeat_at = now() WHERE id = :id"
            ),
            {"id": job_id},
        )


def step_job(engine: Engine, job_id: str, stage: str, progress: float) -> None:
    """Record a running job's stage and progress (0-1); also a heartbeat."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE jobs SET stage = :stage, progress = :progress, "
                "heartbeat_at = now() WHERE id = :id"
            ),
            {"id": job_id, "stage": stage, "progress": min(1.0, max(0.0, progress))},
        )


def heartbeat(engine: Engine, job_ids: list[str]) -> None:
    """Tell pollers that these jobs' process is alive."""
    if not job_ids:
        return
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE jobs SET heartbeat_at = now() WHERE id = ANY(:ids)"),
            {"ids": job_ids},
        )


def finish_job(engine: Engine, job_id: str, plan_id: int | None) -> None:
    """Mark a job succeeded with the plan it made."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE jobs SET status = 'succeeded', stage = 'done', progress = 1, "
                "plan_id = :plan, finished_at = now(), heartbeat_at = now() "
                "WHERE id = :id"
            ),
            {"id": job_id, "plan": plan_id},
        )


def fail_job(engine: Engine, job_id: str, detail: str) -> None:
    """Mark a job failed with a message a person can act on."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE jobs SET status = 'failed', finished_at = now(), "
                "error = CAST(:error AS jsonb) WHERE id = :id"
            ),
            {
                "id": job_id,
                "error": json.dumps(
                    {"title": "Job failed", "detail": detail}, ensure_ascii=False
                ),
            },
        )


def get_job(engine: Engine, job_id: str) -> JobState | None:
    """A job by id (None if unknown); a stale queued or running job is failed first."""
    if len(job_id) > 64:
        return None
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE jobs SET status = 'failed', finished_at = now(), "
                "error = jsonb_build_object('title', 'Job failed', 'detail', "
                "'the server process running it (' || coalesce(runner, '?') || ') "
                "stopped; its last sign of life was ' || "
                "to_char(heartbeat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || "
                "' UTC. Start the job again.') "
                "WHERE id = :id AND status IN ('queued', 'running') "
                "AND heartbeat_at < now() - CAST(:stale AS interval)"
            ),
            {"id": job_id, "stale": f"{STALE_AFTER.total_seconds()} seconds"},
        )
        row = conn.execute(
            text(f"SELECT {_COLUMNS} FROM jobs WHERE id = :id"), {"id": job_id}
        ).first()
    return JobState(**row._mapping) if row is not None else None
