"""An event's life: statuses, the legal transitions between them, and the tiers.

提、分、议、办、督、评 (raise, sort, discuss, handle, supervise, evaluate)::

    reported → sorted → in_hand → settled → evaluated → closed
                  ↘        ↘         ↘
                   returned (back one level, or to the reporter) → sorted …

A tier (三事分流) says who settles a matter: ``grid`` (民事, inside the grid),
``village`` (村事, the village committee) or ``township`` (政事, the township
government). Escalation moves an overdue event one tier up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from geo.errors import IllegalTransition
from geo.vocabulary import (
    EVENT_STATUSES,
    FINAL_STATUSES,
    OPEN_STATUSES,
    REPORTER_KINDS,
    SETTLED_STATUSES,
    TIER_NAMES,
    TIERS,
)

__all__ = [
    "ACTIONS",
    "FINAL_STATUSES",
    "OPEN_STATUSES",
    "REPORTER_KINDS",
    "SETTLED_STATUSES",
    "STATUSES",
    "TIERS",
    "TIER_NAMES",
    "TRANSITIONS",
    "allowed_actions",
    "check_transition",
    "lower_tier",
    "next_status",
    "upper_tier",
]

#: Every status, in the order of an event's life (``returned`` last); the statuses,
#: tiers and reporter kinds are the domain's words, kept in :mod:`geo.vocabulary`.
STATUSES: Final = EVENT_STATUSES

#: action → (statuses it is allowed from, status it leads to).
TRANSITIONS: Final[Mapping[str, tuple[tuple[str, ...], str]]] = {
    "sort": (("reported", "returned"), "sorted"),
    "accept": (("sorted",), "in_hand"),
    "settle": (("in_hand",), "settled"),
    "evaluate": (("settled",), "evaluated"),
    "close": (("settled", "evaluated"), "closed"),
    "return": (("sorted", "in_hand", "settled"), "returned"),
}
#: Every action a caller can take (escalation is the system's, not an action).
ACTIONS: Final = tuple(TRANSITIONS)


def allowed_actions(status: str) -> tuple[str, ...]:
    """The actions legal from ``status``.

    Examples
    --------
    >>> allowed_actions("sorted")
    ('accept', 'return')
    >>> allowed_actions("closed")
    ()
    """
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
    return tuple(a for a, (froms, _) in TRANSITIONS.items() if status in froms)


def next_status(status: str, action: str) -> str | None:
    """The status ``action`` leads to from ``status``, or None when it is illegal.

    Examples
    --------
    >>> next_status("reported", "sort")
    'sorted'
    >>> next_status("reported", "settle") is None
    True
    """
    if action not in TRANSITIONS:
        raise ValueError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    froms, to = TRANSITIONS[action]
    return to if status in froms else None


def check_transition(event_id: int, status: str, action: str) -> str:
    """The status ``action`` leads to; :class:`~geo.errors.IllegalTransition` if illegal.

    Examples
    --------
    >>> check_transition(7, "in_hand", "settle")
    'settled'
    >>> check_transition(7, "closed", "sort")
    Traceback (most recent call last):
    ...
    geo.errors.IllegalTransition: event 7 is 'closed': cannot 'sort' it; 'closed' is final
    """
    to = next_status(status, action)
    if to is None:
        raise IllegalTransition(event_id, status, action, allowed_actions(status))
    return to


def upper_tier(tier: str) -> str | None:
    """The tier an overdue event escalates to (None at the top).

    Examples
    --------
    >>> upper_tier("grid"), upper_tier("township")
    ('village', None)
    """
    i = TIERS.index(tier)
    return TIERS[i + 1] if i + 1 < len(TIERS) else None


def lower_tier(tier: str) -> str | None:
    """The tier a returned event goes back to (None at the bottom: the reporter).

    Examples
    --------
    >>> lower_tier("township"), lower_tier("grid")
    ('village', None)
    """
    i = TIERS.index(tier)
    return TIERS[i - 1] if i > 0 else None
