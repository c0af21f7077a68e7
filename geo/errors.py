"""GridMap's errors: one base class; the API maps each kind to one HTTP status.

Messages name the parameter or the file/row/field that is wrong, never a CLI flag
or an HTTP detail: the CLI and the API add those.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "EditError",
    "EmptyInput",
    "EventConflict",
    "GridMapError",
    "IllegalTransition",
    "IncompletePlanError",
    "InputError",
    "NotFound",
    "OutOfScope",
    "PlanConflictError",
    "Problem",
    "ServiceUnavailable",
    "StaleDraft",
    "UnstaffedPlanError",
]

_MAX_LISTED = 20


class GridMapError(Exception):
    """Base of every error GridMap raises on purpose (anything else is a bug)."""


class NotFound(GridMapError, LookupError):
    """Something named by the caller does not exist (an area code, a plan id, …).

    ``what`` names the kind of thing (``"plan"``, ``"area"``, ``"collection"``), so
    that the API can answer with a precise problem type.
    """

    def __init__(self, message: str, *, what: str | None = None) -> None:
        super().__init__(message)
        self.what = what


class OutOfScope(GridMapError, PermissionError):
    """The caller's key may not do this there (e.g. an area-limited admin key
    issuing a key for an area outside its own); the message names both."""


class EmptyInput(GridMapError, ValueError):
    """Valid input that leaves nothing to compute (an area with no households)."""


class EditError(GridMapError, ValueError):
    """An edit breaks a rule (band, contiguity, adjacency); the message says which."""


class PlanConflictError(GridMapError, RuntimeError):
    """A plan changed state under the caller (published twice, edited concurrently)."""


class StaleDraft(PlanConflictError):
    """A draft was edited since the version the caller holds; nothing was written."""

    def __init__(self, plan_id: int, expected: int, current: int) -> None:
        super().__init__(
            f"plan {plan_id} is at version {current}, not {expected}: someone edited "
            "it meanwhile; reload it (its history says what changed) and try again"
        )
        self.plan_id = plan_id
        self.expected = expected
        self.current = current


class EventConflict(GridMapError, RuntimeError):
    """An event changed under the caller: its version is not the one expected.

    Nothing was written; reload the event (its log says what changed) and retry.
    """

    def __init__(self, event_id: int, expected: int, current: int) -> None:
        super().__init__(
            f"event {event_id} is at version {current}, not {expected}: someone "
            "changed it meanwhile; reload it and try again"
        )
        self.event_id = event_id
        self.expected = expected
        self.current = current


class IllegalTransition(GridMapError, ValueError):
    """A transition the event's current status does not allow (names both)."""

    def __init__(
        self, event_id: int, status: str, action: str, allowed: Sequence[str] = ()
    ) -> None:
        hint = (
            f"; from {status!r} it can: {', '.join(allowed)}"
            if allowed
            else f"; {status!r} is final"
        )
        super().__init__(f"event {event_id} is {status!r}: cannot {action!r} it{hint}")
        self.event_id = event_id
        self.status = status
        self.action = action
        self.allowed = tuple(allowed)


class IncompletePlanError(PlanConflictError):
    """A plan drawn unit by unit (:mod:`geo.fanout`) has units that did not finish.

    ``units`` maps each such unit's area code to its error (or its state); the
    plan cannot be published until they are re-run or excluded explicitly.
    """

    def __init__(self, message: str, *, units: dict[str, str]) -> None:
        super().__init__(message)
        self.units = units


class UnstaffedPlanError(GridMapError, ValueError):
    """A plan to publish has grids with no grid worker (and the caller did not
    accept it with ``allow_unstaffed``).

    ``codes`` lists every such grid, in code order; the message names the first
    few and the count. Nothing was written.
    """

    #: How many codes the message names.
    SHOWN = 5

    def __init__(self, plan_id: int, codes: Sequence[str]) -> None:
        self.plan_id = plan_id
        self.codes = list(codes)
        first = ", ".join(self.codes[: self.SHOWN])
        more = (
            f" and {len(self.codes) - self.SHOWN} more"
            if len(self.codes) > self.SHOWN
            else ""
        )
        super().__init__(
            f"plan {plan_id} has {len(self.codes)} grid(s) with no grid worker: "
            f"{first}{more}. Assign their workers (assign_worker) or staff the plan "
            "before publishing, or publish it anyway with allow_unstaffed"
        )


class ServiceUnavailable(GridMapError, RuntimeError):
    """A service GridMap needs (the database) cannot be reached right now."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where (source, row, field) and what.

    ``params`` names the library parameters the message refers to (``crs``,
    ``sheet``, ``columns`` …); a front end that exposes them under other names
    (the CLI's ``--crs``, ``--map``) says so next to the message.
    """

    source: str
    message: str
    row: int | None = None
    field: str | None = None
    params: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = self.source
        if self.row is not None:
            where += f" row {self.row}"
        if self.field is not None:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"


class InputError(GridMapError, ValueError):
    """Bad input: lists every problem found (rows numbered from 1, header excluded)."""

    def __init__(
        self, problems: Sequence[Problem], *, total: int | None = None
    ) -> None:
        self.problems = list(problems)
        self.total = total if total is not None else len(self.problems)
        lines = [str(p) for p in self.problems[:_MAX_LISTED]]
        more = self.total - len(lines)
        if more > 0:
            lines.append(f"... and {more} more problem(s)")
        super().__init__("\n".join(lines))

    @property
    def params(self) -> list[str]:
        """Every parameter the problems name, in order of first mention."""
        return list(dict.fromkeys(p for pr in self.problems for p in pr.params))

    @classmethod
    def one(cls, source: str, message: str, **where: object) -> InputError:
        """An error with a single problem (``row=``, ``field=`` optional)."""
        return cls([Problem(source, message, **where)])  # type: ignore[arg-type]
