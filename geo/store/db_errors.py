"""What a database error means for the person who sees it.

Two questions, asked by the HTTP API and the job runner alike:

* :func:`unavailable_reason`: does this error mean the database cannot be
  reached or is too busy right now (try again later), rather than a bug or bad
  input? Then a request gets 503 with ``Retry-After`` and a job says so.
* :func:`describe_db_error`: a one-line account of any database error (the
  server's message, the constraint or table involved, and what to do), for
  job failures instead of "unexpected error (IntegrityError)".
"""

from __future__ import annotations

import psycopg
import psycopg.errors
from sqlalchemy import exc as sa_exc

__all__ = ["describe_db_error", "unavailable_reason"]

#: What a constraint violation means, by constraint name.
_CONSTRAINTS = {
    "uq_plans_area_version": (
        "two plans of the same area were given the same version number; "
        "another plan of this area was saved at the same moment. Start the job again"
    ),
    "uq_plans_one_published_per_area": (
        "another plan of this area was published at the same moment; "
        "reload the plans and try again"
    ),
}


def _driver_error(exc: BaseException) -> BaseException:
    """The psycopg exception behind a SQLAlchemy one (or ``exc`` itself)."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        return exc.orig
    return exc


def unavailable_reason(exc: BaseException) -> str | None:
    """Why the database is unavailable, if ``exc`` says so; None otherwise.

    Connection failures (refused, reset, closed by a server shutting down,
    connect timeouts), a connection pool that could not hand out a connection
    in time, and a statement cancelled by ``statement_timeout`` count;
    constraint violations, syntax errors and the like do not.
    """
    if isinstance(exc, sa_exc.TimeoutError):  # QueuePool: no connection in time
        return "no database connection became free in time (the server is busy)"
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return "the connection to the database was lost"
    orig = _driver_error(exc)
    if isinstance(orig, psycopg.errors.QueryCanceled):
        return "the database took too long to answer (statement timeout)"
    if type(orig).__name__ == "PoolTimeout":  # psycopg_pool, imported lazily
        return "no database connection could be made in time (is the server down?)"
    if isinstance(orig, psycopg.errors.AdminShutdown | psycopg.errors.CannotConnectNow):
        return "the database server is shutting down or starting up"
    if isinstance(orig, psycopg.OperationalError | psycopg.InterfaceError) and (
        getattr(orig, "sqlstate", None) is None
        # 08: connection exceptions, 57P: shutdown, 53: too many connections
        or str(getattr(orig, "sqlstate", "")).startswith(("08", "57P", "53"))
    ):
        return "the database cannot be reached"
    return None


def describe_db_error(exc: BaseException) -> str:
    """One line saying what the database refused or why it could not answer."""
    reason = unavailable_reason(exc)
    if reason is not None:
        return f"{reason}; start the job again when the database is back"
    orig = _driver_error(exc)
    diag = getattr(orig, "diag", None)
    primary = getattr(diag, "message_primary", None) or str(orig).splitlines()[0]
    constraint = getattr(diag, "constraint_name", None)
    table = getattr(diag, "table_name", None)
    detail = getattr(diag, "message_detail", None)
    parts = [f"the database refused the change: {primary}"]
    if detail:
        parts.append(f"({detail})")
    elif table:
        parts.append(f"(table {table})")
    if constraint in _CONSTRAINTS:
        parts.append(f"— {_CONSTRAINTS[constraint]}")
    elif constraint and constraint not in primary:
        parts.append(f"(constraint {constraint})")
    return " ".join(parts)[:1000]
