"""Plans: list, inspect, generate (a background job), publish; and job status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import Engine

from api.audit import record
from api.deps import KeyDep, PlannerDep, SessionDep
from api.jobs import Job, generate_plan_job, rebalance_plan_job
from api.plan_access import PUBLIC_STATUSES, sees_drafts
from api.problems import ProblemError, problem_responses
from api.schemas import (
    GenerateIn,
    JobOut,
    PlanDetailOut,
    PlanDiffOut,
    PlanOut,
    PublishIn,
    RebalanceIn,
    plan_out,
)
from geo import services
from geo.store.jobs import JobState
from geo.store.keys import area_in_scope, plan_in_scope
from geo.store.lookup import get_plan, list_plans
from geo.store.queries import area_exists

router = APIRouter(tags=["plans"])


def _job_out(job: JobState) -> JobOut:
    links = [{"rel": "self", "href": f"/jobs/{job.id}"}]
    if job.plan_id is not None:
        links.append({"rel": "plan", "href": f"/plans/{job.plan_id}"})
    return JobOut(
        id=job.id,
        kind=job.kind,
        status=job.status,  # type: ignore[arg-type]
        stage=job.stage,
        progress=job.progress,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        params=job.params,
        plan_id=job.plan_id,
        error=job.error,
        links=links,
    )


def _start(
    request: Request,
    response: Response,
    kind: str,
    params: dict[str, Any],
    fn: Callable[[Job, Engine], None],
    created_by: str,
) -> JobOut:
    """Queue a job on this process's runner; 202 with its Location."""
    job = request.app.state.jobs.submit(kind, params, fn, created_by=created_by)
    response.headers["Location"] = f"/jobs/{job.id}"
    return _job_out(job)


def _unknown_plan(plan_id: int) -> ProblemError:
    return ProblemError(
        404,
        f"There is no plan {plan_id}. GET /plans lists the plans.",
        type="/problems/unknown-plan",
    )


@router.get(
    "/plans",
    response_model=list[PlanOut],
    summary="All plans, newest first",
    description=(
        "Published and archived plans are public; drafts are listed for planner "
        "keys only (a planner key limited to an area: the drafts inside it)."
    ),
)
def plans(
    session: SessionDep,
    key: KeyDep,
    status: Annotated[Literal["draft", "published", "archived"] | None, Query()] = None,
    area: Annotated[str | None, Query(max_length=32, description="area code")] = None,
) -> list[PlanOut]:
    found = list_plans(session, status=status, area_code=area)
    return [
        plan_out(p)
        for p in found
        if p.status in PUBLIC_STATUSES
        or (
            sees_drafts(key)
            and (key is None or not key.scoped or plan_in_scope(session, p.id))
        )
    ]


@router.get(
    "/plans/{plan_id}",
    response_model=PlanDetailOut,
    summary="One plan with its parameters and metrics (incl. exceptions)",
    responses=problem_responses(404, 422),
)
def plan(session: SessionDep, key: KeyDep, plan_id: int) -> PlanOut:
    if not 0 < plan_id < 2**31:
        raise _unknown_plan(plan_id)
    p = get_plan(session, plan_id)
    if p is None or (p.status not in PUBLIC_STATUSES and not sees_drafts(key)):
        raise _unknown_plan(plan_id)  # a draft: planner keys only
    return plan_out(p, detail=True)


@router.post(
    "/plans",
    status_code=202,
    response_model=JobOut,
    summary="Generate a draft plan for an area (background job; poll /jobs/{id})",
    responses=problem_responses(401, 403, 404, 422),
)
def generate(
    request: Request,
    response: Response,
    session: SessionDep,
    key: PlannerDep,
    body: GenerateIn,
) -> JobOut:
    if not area_exists(session, body.area_code) or not area_in_scope(
        session, body.area_code
    ):
        raise ProblemError(
            404,
            f"There is no admin area {body.area_code!r}; "
            "GET /collections/areas/items lists them.",
            type="/problems/unknown-area",
        )
    params = body.model_dump()
    by = f"api key {key.prefix}"
    return _start(
        request, response, "generate", params, generate_plan_job(params, by), by
    )


@router.post(
    "/plans/{plan_id}/publish",
    response_model=PlanDetailOut,
    summary="Publish a draft (the area's published plan is archived in the same step)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def publish(
    request: Request,
    session: SessionDep,
    key: PlannerDep,
    plan_id: int,
    allow_unstaffed: Annotated[
        bool,
        Query(description="publish even when some grids have no grid worker"),
    ] = False,
    body: PublishIn | None = None,
) -> PlanOut:
    """A draft with grids that have no grid worker is refused (422, naming them)
    unless ``allow_unstaffed`` is true, in the query or the body."""
    if not 0 < plan_id < 2**31:
        raise _unknown_plan(plan_id)
    allow = allow_unstaffed or (body is not None and body.allow_unstaffed)
    # NotFound → 404, PlanConflictError → 409, UnstaffedPlanError → 422
    actor = f"api key {key.prefix}" + (f" ({key.name})" if key.name else "")
    services.publish(session, plan_id, allow_unstaffed=allow, actor=actor)
    record(request, "publish", {"plan_id": plan_id})
    p = get_plan(session, plan_id)
    assert p is not None
    return plan_out(p, detail=True)


@router.post(
    "/plans/{plan_id}/rebalance",
    status_code=202,
    response_model=JobOut,
    summary="Rebalance a plan against today's households into a new draft (background job)",
    responses=problem_responses(401, 403, 404, 422),
)
def rebalance(
    request: Request,
    response: Response,
    session: SessionDep,
    key: PlannerDep,
    plan_id: int,
    body: RebalanceIn,
) -> JobOut:
    if not 0 < plan_id < 2**31 or get_plan(session, plan_id) is None:
        raise _unknown_plan(plan_id)
    if body.min_households > body.max_households:
        raise ProblemError(
            422,
            "min_households must not exceed max_households.",
            type="/problems/invalid-band",
        )
    params = body.model_dump()
    by = f"api key {key.prefix}"
    return _start(
        request,
        response,
        "rebalance",
        {"plan_id": plan_id, **params},
        rebalance_plan_job(plan_id, params, by),
        by,
    )


@router.get(
    "/plans/{plan_id}/diff/{other_id}",
    response_model=PlanDiffOut,
    summary="Households that change grid and grids created, retired or reshaped",
    responses=problem_responses(401, 403, 404, 422),
)
def diff(
    session: SessionDep, key: PlannerDep, plan_id: int, other_id: int
) -> PlanDiffOut:
    from geo.services import diff_stored

    for pid in (plan_id, other_id):
        if not 0 < pid < 2**31:
            raise _unknown_plan(pid)
    d = diff_stored(session, plan_id, other_id)  # NotFound → 404
    return PlanDiffOut(
        old_plan=plan_id,
        new_plan=other_id,
        summary=d.summary,
        households=d.households.astype(str).to_dict("records")[:10_000],
    )


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    summary="A background job's status and progress",
    responses=problem_responses(401, 403, 404),
    tags=["jobs"],
)
def job_status(request: Request, key: PlannerDep, job_id: str) -> JobOut:
    job = request.app.state.jobs.get(job_id)
    if job is None:
        raise ProblemError(
            404,
            f"There is no job {job_id!r}. POST /plans/generate or "
            "/plans/{id}/rebalance returns a job's id and Location.",
            type="/problems/unknown-job",
        )
    return _job_out(job)
