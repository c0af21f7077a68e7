"""``/healthz`` (the process answers) and ``/readyz`` (it can answer lookups)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.problems import RETRY_AFTER_S, problem_response, problem_responses
from geo.store.health import readiness

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    summary="Liveness: the server process answers (no database access)",
    description=(
        "Always 200 while the process runs and serves requests. It does not touch "
        "the database: use it to decide whether to restart the process, and "
        "`/readyz` to decide whether to send it traffic."
    ),
)
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


@router.get(
    "/readyz",
    summary="Readiness: database reachable, schema current, a plan published",
    description=(
        "200 when the database answers (within about 2 s), its schema is at this "
        "server's newest migration and at least one plan is published; otherwise "
        "503 problem+json whose `reasons` say what is missing, with `Retry-After`. "
        "One short query."
    ),
    responses=problem_responses(503),
)
async def readyz(request: Request) -> JSONResponse:
    r = await run_in_threadpool(readiness, request.app.state.engine)
    if not r.ready:
        return problem_response(
            503,
            "; ".join(r.reasons),
            type="/problems/not-ready",
            title="Not ready",
            instance=request.url.path,
            headers={"Retry-After": str(RETRY_AFTER_S), "Cache-Control": "no-store"},
            reasons=r.reasons,
            schema=r.schema,
            head=r.head,
        )
    return JSONResponse(
        {"status": "ready", "schema": r.schema, "published_plans": True},
        headers={"Cache-Control": "no-store"},
    )


__all__ = ["router"]
