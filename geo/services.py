"""Each workflow written once: generate-and-save, rebalance-and-save, publish, staff.

The CLI, the API's background jobs and :class:`~geo.workspace.Workspace` all call
these. Each takes a session first and never commits: the caller owns the
transaction, so a failure leaves nothing half-written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import geopandas as gpd
from sqlalchemy.orm import Session

from geo.errors import EmptyInput
from geo.gridding.generate import generate_grids
from geo.gridding.rebalance import Rebalanced, rebalance
from geo.gridding.staffing import assign_members, assign_workers, generate_micro_grids
from geo.io import prepare
from geo.plan import GridPlan
from geo.sample import generate_county
from geo.store.loading import LoadReport, load
from geo.store.plans import area_frames, plan_frames, publish_plan, save_generated_plan
from geo.store.queries import people_table

__all__ = [
    "Progress",
    "SavedPlan",
    "SavedRebalance",
    "generate_and_save",
    "load_sample",
    "publish",
    "rebalance_and_save",
    "staff",
]

#: ``progress(stage, fraction)``: told what is happening (the API's jobs show it).
Progress = Callable[[str, float], None]


def _quiet(stage: str, fraction: float) -> None:
    """The default progress callback: says nothing."""


@dataclass(frozen=True)
class SavedPlan:
    """A plan drawn and stored as a draft."""

    plan_id: int
    plan: GridPlan


@dataclass(frozen=True)
class SavedRebalance:
    """A rebalanced plan stored as a new draft whose parent is the plan it came from."""

    plan_id: int
    parent_id: int
    result: Rebalanced


def load_sample(
    session: Session,
    households: int = 5_000,
    *,
    seed: int = 0,
    progress: Progress = _quiet,
) -> list[LoadReport]:
    """Generate the seeded sample county and load its areas, people and households.

    Idempotent like every load (upsert by id).

    Parameters
    ----------
    session
        The transaction to load in (the caller commits).
    households
        About how many households the county has.
    seed
        The same seed gives the same county.
    progress
        Told which table is being loaded.

    Returns
    -------
    list of LoadReport
        One report per table: areas, people, households.

    Examples
    --------
    ::

        with session_scope(engine) as s:
            reports = load_sample(s, 20_000, seed=0)
    """
    county = generate_county(households, seed=seed)
    reports = []
    frames = (
        ("areas", county.areas),
        ("people", county.people),
        ("households", county.households),
    )
    for i, (kind, frame) in enumerate(frames):
        progress(f"loading the sample county's {kind}", i / len(frames))
        reports.append(
            load(session, prepare(frame, kind, source=f"sample county ({kind})"))
        )
    return reports


def generate_and_save(
    session: Session,
    area_code: str,
    *,
    min_households: float = 200,
    max_households: float = 300,
    target: float | None = None,
    respect_level: str = "village",
    weight: str | None = None,
    barriers: gpd.GeoDataFrame | None = None,
    seed: int = 0,
    with_staff: bool = False,
    name: str | None = None,
    created_by: str | None = None,
    progress: Progress = _quiet,
) -> SavedPlan:
    """Draw grids for an area and everything below it; store them as a new draft.

    Parameters
    ----------
    session
        The caller's transaction (nothing is committed here).
    area_code
        The area to divide, with everything below it.
    min_households, max_households, target, respect_level, weight, barriers, seed
        As for :func:`geo.gridding.generate.generate_grids`.
    with_staff
        Also give the plan grid workers and covering party members
        (:func:`staff`).
    name, created_by
        Recorded with the plan.
    progress
        Told each stage as ``progress(stage, fraction)``.

    Returns
    -------
    SavedPlan
        The new draft's id and the plan.

    Raises
    ------
    geo.errors.NotFound
        There is no area ``area_code``.
    geo.errors.EmptyInput
        The area has no households.

    Examples
    --------
    ::

        with session_scope(engine) as s:
            saved = generate_and_save(s, "330803100000", created_by="me")
    """
    progress("reading households and areas", 0.1)
    areas, households = area_frames(session, area_code)
    if households.empty:
        raise EmptyInput(f"area {area_code} has no households loaded")
    progress(f"drawing grids for {len(households)} households", 0.3)
    plan = generate_grids(
        households,
        areas,
        min_households=min_households,
        max_households=max_households,
        target=target,
        respect_level=respect_level,
        weight=weight,
        barriers=barriers,
        seed=seed,
    )
    if with_staff:
        progress("assigning grid workers and party members", 0.6)
        plan = staff(session, plan, households)
    progress("saving the draft plan", 0.8)
    plan_id = save_generated_plan(
        session, area_code, plan, name=name, created_by=created_by
    )
    return SavedPlan(plan_id, plan)


def rebalance_and_save(
    session: Session,
    plan_id: int,
    *,
    min_households: float = 200,
    max_households: float = 300,
    locked: Sequence[str] = (),
    created_by: str | None = None,
    progress: Progress = _quiet,
) -> SavedRebalance:
    """Rebalance a stored plan against today's households into a new draft.

    Codes the plan's ancestors retired stay retired (read from the stored plan,
    and stored again with the new one).

    Parameters
    ----------
    session
        The caller's transaction (nothing is committed here).
    plan_id
        The plan to rebalance (usually the area's published plan); it becomes
        the new draft's parent.
    min_households, max_households
        The band.
    locked
        Grid codes that must not change.
    created_by
        Recorded with the new draft.
    progress
        Told each stage as ``progress(stage, fraction)``.

    Returns
    -------
    SavedRebalance
        The new draft's id, its parent's id and the
        :class:`~geo.gridding.rebalance.Rebalanced` result.

    Raises
    ------
    geo.errors.NotFound
        There is no plan ``plan_id``.
    ValueError
        A locked code is not in the plan.

    Examples
    --------
    ::

        with session_scope(engine) as s:
            saved = rebalance_and_save(s, published_id, locked=["33080310000101"])
            saved.result.report["moved_households"]
    """
    progress("reading the plan and today's households", 0.1)
    grids, assignments, info = plan_frames(session, plan_id)
    _, households = area_frames(session, info["area_code"])
    retired = list((info["metrics"] or {}).get("retired_codes", []))
    progress(f"rebalancing {len(grids)} grids", 0.3)
    result = rebalance(
        grids,
        assignments,
        households,
        min_households=min_households,
        max_households=max_households,
        locked=tuple(locked),
        retired_codes=retired,
    )
    progress("saving the draft plan", 0.8)
    new_id = save_generated_plan(
        session,
        info["area_code"],
        result.plan,
        created_by=created_by,
        parent_id=plan_id,
    )
    return SavedRebalance(new_id, plan_id, result)


def publish(session: Session, plan_id: int) -> None:
    """Publish a draft; the area's published plan is archived in the same step.

    Parameters
    ----------
    session
        The caller's transaction: the switch is visible to lookups when it
        commits, never half done.
    plan_id
        A draft plan.

    Raises
    ------
    geo.errors.NotFound
        There is no plan ``plan_id``.
    geo.errors.PlanConflictError
        The plan is not a draft, or another plan of the same area was published
        at the same time.

    Examples
    --------
    ::

        with session_scope(engine) as s:
            publish(s, saved.plan_id)
    """
    publish_plan(session, plan_id)


def staff(session: Session, plan: GridPlan, households: gpd.GeoDataFrame) -> GridPlan:
    """Give each grid a grid worker and each household a covering party member.

    Grids get workers of their own village; each grid is divided into
    micro-grids of 10–30 households (党员联户) and each micro-grid gets one
    party member of the village.

    Parameters
    ----------
    session
        Where the people (grid workers, party members) are read from.
    plan
        The plan to staff.
    households
        The plan's households (points with ``household_id``; optional
        ``building_id``, ``unit``).

    Returns
    -------
    GridPlan
        ``plan`` with ``grids.worker_id`` and ``assignments.member_id`` filled
        in where people are available (None elsewhere), and the micro-grid
        metrics in ``report["micro_grids"]``.

    Examples
    --------
    ::

        with session_scope(engine) as s:
            areas, households = area_frames(s, "330803100000")
            plan = staff(s, generate_grids(households, areas), households)
    """
    people = people_table(session)
    grids = assign_workers(plan.grids, people)
    micro = generate_micro_grids(plan, households)
    members = assign_members(
        micro.assignments,
        micro.grids,
        micro.grids.set_index("grid_code")["area_code"],
        plan.grids.set_index("grid_code")["area_code"],
        people,
    )
    assignments = plan.assignments[["household_id", "grid_code"]].merge(
        members, on="household_id", how="left"
    )
    report: dict[str, Any] = dict(plan.report)
    report["micro_grids"] = micro.report["metrics"]
    return replace(plan, grids=grids, assignments=assignments, report=report)
