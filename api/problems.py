"""RFC 9457 problem details (``application/problem+json``) for every error."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geo.errors import (
    EditError,
    EmptyInput,
    EventConflict,
    GridMapError,
    IllegalTransition,
    IncompletePlanError,
    InputError,
    NotFound,
    OutOfScope,
    PlanConflictError,
    ServiceUnavailable,
    StaleDraft,
    UnstaffedPlanError,
)
from geo.store.db_errors import unavailable_reason

__all__ = [
    "PROBLEM_JSON",
    "RETRY_AFTER_S",
    "BodyLimit",
    "Problem",
    "ProblemError",
    "install_problem_handlers",
    "problem_response",
    "problem_responses",
]

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("gridmap.api")

_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Too many requests",
    431: "Request header fields too large",
    500: "Internal server error",
    503: "Service unavailable",
}

#: Seconds a client is asked to wait (``Retry-After``) when the database is down.
RETRY_AFTER_S = 2


#: Exceptions that may mean the database is unavailable (see ``_unavailable``).
_DATABASE_ERRORS: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)


class Problem(BaseModel):
    """RFC 9457 problem details; extra members carry what the problem is about."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None


class ProblemError(StarletteHTTPException):
    """Raise to answer with a problem document (``type`` is a relative URI)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        type: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status_code=status, detail=detail, headers=headers)
        self.type = type or "about:blank"
        self.title = title or _TITLES.get(status, "Error")
        self.extra = extra


def problem_response(
    status: int,
    detail: str,
    *,
    type: str = "about:blank",
    title: str | None = None,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": type,
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(
        body, status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)] or [str(loc[0])]
    if parts and parts[0] in {"query", "path", "header"} and len(parts) > 1:
        return f"{parts[0]} parameter '{'.'.join(parts[1:])}'"
    return "'" + ".".join(parts) + "'" if parts else "the request"


def _validation_detail(
    errors: list[dict[str, Any]],
) -> tuple[str, list[dict[str, Any]]]:
    items = []
    for e in errors:
        msg = str(e.get("msg", "invalid"))
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        items.append({"location": _loc(tuple(e.get("loc", ()))), "message": msg})
    shown = "; ".join(f"{i['location']}: {i['message']}" for i in items[:5])
    more = f" (and {len(items) - 5} more)" if len(items) > 5 else ""
    return shown + more, items


#: The one table from GridMap's errors to HTTP: status and problem type. Routes
#: raise (or let through) :mod:`geo.errors`; nothing translates them by hand.
ERROR_STATUS: dict[type[GridMapError], tuple[int, str]] = {
    NotFound: (404, "/problems/not-found"),
    InputError: (422, "/problems/invalid-input"),
    OutOfScope: (403, "/problems/outside-scope"),
    EmptyInput: (422, "/problems/empty-input"),
    EditError: (422, "/problems/edit-refused"),
    PlanConflictError: (409, "/problems/plan-conflict"),
    StaleDraft: (409, "/problems/stale-version"),
    EventConflict: (409, "/problems/event-conflict"),
    IllegalTransition: (409, "/problems/illegal-transition"),
    IncompletePlanError: (409, "/problems/incomplete-plan"),
    UnstaffedPlanError: (422, "/problems/unstaffed-grids"),
    ServiceUnavailable: (503, "/problems/database-unavailable"),
}


def error_status(exc: GridMapError) -> tuple[int, str]:
    """Status and problem type of a GridMap error (its most specific table entry)."""
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUS:
            status, kind = ERROR_STATUS[cls]  # type: ignore[index]
            if isinstance(exc, NotFound) and exc.what:
                kind = f"/problems/unknown-{exc.what}"
            return status, kind
    return 500, "about:blank"


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error, including validation errors and 500s, as problem+json."""

    @app.exception_handler(GridMapError)
    async def _domain(request: Request, exc: GridMapError) -> JSONResponse:
        status, kind = error_status(exc)
        if status >= 500:
            log.warning(
                "%s on %s %s: %s",
                type(exc).__name__,
                request.method,
                request.url.path,
                exc,
            )
        extra: dict[str, Any] = {}
        if isinstance(exc, InputError):
            extra["errors"] = [
                {
                    "source": p.source,
                    "row": p.row,
                    "field": p.field,
                    "message": p.message,
                }
                for p in exc.problems
            ]
        elif isinstance(exc, StaleDraft):
            extra.update(plan_id=exc.plan_id, current_version=exc.current)
        elif isinstance(exc, UnstaffedPlanError):
            extra.update(
                plan_id=exc.plan_id,
                unstaffed=len(exc.codes),
                unstaffed_grids=exc.codes[:100],
            )
        elif isinstance(exc, EventConflict):
            extra.update(event_id=exc.event_id, current_version=exc.current)
        elif isinstance(exc, IllegalTransition):
            extra.update(
                event_id=exc.event_id,
                event_status=exc.status,
                action=exc.action,
                allowed=list(exc.allowed),
            )
        headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
        return problem_response(
            status,
            str(exc),
            type=kind,
            instance=request.url.path,
            headers=headers,
            **extra,
        )

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(
            exc.status_code,
            str(exc.detail),
            type=exc.type,
            title=exc.title,
            instance=request.url.path,
            headers=exc.headers,
            **exc.extra,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = (
                f"There is no resource at {request.url.path}. "
                "See /docs for the endpoints of this API."
            )
        elif exc.status_code == 405:
            detail = (
                f"{request.method} is not allowed on {request.url.path}; "
                f"allowed: {(exc.headers or {}).get('Allow', 'see /docs')}."
            )
        return problem_response(
            exc.status_code, detail, instance=request.url.path, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, items = _validation_detail(list(exc.errors()))
        return problem_response(
            422,
            detail,
            type="/problems/invalid-request",
            instance=request.url.path,
            errors=items,
        )

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            500,
            "The server failed to answer this request; it has been logged. "
            "Try again, and report it if it persists.",
            instance=request.url.path,
        )

    # the database down, restarting or overloaded: 503 with Retry-After, not 500
    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        reason = unavailable_reason(exc)
        if reason is None:
            return await _crash(request, exc)
        # the driver's own words, for the operator (never in the response)
        said = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        log.warning(
            "database unavailable on %s %s: %s (%s: %s)",
            request.method,
            request.url.path,
            reason,
            type(exc).__name__,
            said[0] if said else "",
        )
        return problem_response(
            503,
            f"The database is not available right now ({reason}). "
            f"Try again in {RETRY_AFTER_S} seconds.",
            type="/problems/database-unavailable",
            instance=request.url.path,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    for cls in _DATABASE_ERRORS:
        app.add_exception_handler(cls, _unavailable)

    # a write the row-level security of a key's area refuses (a matter, plan
    # or assignment outside it): 404, as if the place did not exist
    async def _outside(request: Request, exc: Exception) -> JSONResponse:
        orig = getattr(exc, "orig", exc)
        if getattr(orig, "sqlstate", None) != "42501":
            return await _crash(request, exc)
        return problem_response(
            404,
            "Nothing of that exists inside the area of your API key.",
            type="/problems/outside-scope",
            instance=request.url.path,
        )

    app.add_exception_handler(sa_exc.ProgrammingError, _outside)
    app.add_exception_handler(psycopg.errors.InsufficientPrivilege, _outside)


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting problem+json for ``codes``."""
    examples = {
        400: "bbox must be 'minlon,minlat,maxlon,maxlat' with 4 numbers",
        401: "This endpoint needs an API key: send 'Authorization: Bearer gm_…'.",
        403: "This endpoint needs a planner key; yours is a viewer key.",
        404: "No household matches '高家镇湖仁村3组99号'.",
        409: "plan 3 is published; only a draft can be published",
        413: "The request body is 5242880 bytes; the limit is 4194304 bytes.",
        422: "query parameter 'lat': Input should be less than or equal to 90",
        503: "The database is not available right now; try again in 2 seconds.",
    }
    return {
        c: {
            "model": Problem,
            "description": _TITLES.get(c, "Error"),
            "content": {
                PROBLEM_JSON: {
                    "example": {
                        "type": "about:blank",
                        "title": _TITLES.get(c, "Error"),
                        "status": c,
                        "detail": examples.get(c, ""),
                    }
                }
            },
        }
        for c in codes
    }


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with a 413 problem."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
        if declared is not None and (declared < 0 or declared > self.max_bytes):
            status = 400 if declared < 0 else 413
            detail = (
                "The Content-Length header is not a number."
                if declared < 0
                else f"The request body is {declared} bytes; the limit is "
                f"{self.max_bytes} bytes. Split the batch into smaller requests."
            )
            await send_problem(send, status, detail, scope.get("path", ""), close=True)
            return
        total = 0
        limit = self.max_bytes

        async def limited() -> Message:
            nonlocal total
            message = await receive()
            if message["type"] == "http.request":
                total += len(message.get("body", b""))
                if total > limit:
                    raise ProblemError(
                        413,
                        f"The request body exceeds the limit of {limit} bytes. "
                        "Split the batch into smaller requests.",
                    )
            return message

        await self.app(scope, limited, send)


def problem_bytes(
    status: int, detail: str, path: str, *, title: str | None = None, **extra: Any
) -> bytes:
    """A problem document as bytes, for code below FastAPI (ASGI, the protocol)."""
    body = {
        "type": extra.pop("type", "about:blank"),
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": path,
        **extra,
    }
    return json.dumps(body, ensure_ascii=False).encode()


async def send_problem(
    send: Send,
    status: int,
    detail: str,
    path: str,
    *,
    title: str | None = None,
    close: bool = False,
    **extra: Any,
) -> None:
    """Answer an ASGI request with a problem document (middleware refusals)."""
    body = problem_bytes(status, detail, path, title=title, **extra)
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
