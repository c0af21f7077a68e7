"""Who may see a plan's grids: drafts only with a planner key.

A draft is a planner's work in progress: its grids (features, tiles, the viewer's
layers) are served to planner keys only. Anyone else asking for a draft's grids
gets the same 404 as for a plan that does not exist; published and archived plans
(history) stay public.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.problems import ProblemError
from geo.store.keys import ApiKeyInfo
from geo.store.queries import plan_status

__all__ = ["PUBLIC_STATUSES", "check_plan_visible", "no_such_plan", "sees_drafts"]

#: Plan statuses whose grids anyone may read.
PUBLIC_STATUSES = frozenset({"published", "archived"})


def sees_drafts(key: ApiKeyInfo | None) -> bool:
    """Whether ``key`` may read the grids of draft plans (planner keys)."""
    return key is not None and key.role == "planner"


def no_such_plan(plan_id: int) -> ProblemError:
    """The 404 of a plan that does not exist (or is a draft the caller may not see)."""
    return ProblemError(
        404,
        f"There is no plan {plan_id}. GET /plans?status=published lists the "
        "published plans (drafts need a planner key).",
        type="/problems/unknown-plan",
    )


def check_plan_visible(
    session: Session, key: ApiKeyInfo | None, plan_id: int | None
) -> None:
    """404 when there is no plan ``plan_id``, or it is a draft and ``key`` is not a
    planner's; nothing to check without a plan id (the published grids)."""
    if plan_id is None:
        return
    status = plan_status(session, plan_id)
    if status is None or (status not in PUBLIC_STATUSES and not sees_drafts(key)):
        raise no_such_plan(plan_id)
