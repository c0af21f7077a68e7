"""Each workflow written once: generate-and-save, rebalance-and-save, publish, staff.

The CLI, the API's background jobs and :class:`~geo.workspace.Workspace` all call
these. Each takes a session first and never commits: the caller owns the
transaction, so a failure leaves nothing half-written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
from sqlalchemy.orm import Session

from geo.errors import EmptyInput
from geo.gridding.generate import generate_grids
from geo.gridding.rebalance import Rebalanced, rebalance
from geo.gridding.staffing import assign_members, assign_workers, generate_micro_grids
from geo.io import prepare
from geo.plan import GridPlan
from geo.sample import (
    CountySpec,
    SampleProvince,
    generate_county,
    generate_province,
)
from geo.store.loading import LoadReport, load
from geo.store.plans import area_frames, plan_frames, publish_plan, save_generated_plan
from geo.store.queries import people_table

if TYPE_CHECKING:
    from geo.fanout import FanOutRun

__all__ = [
    "Progress",
    "SavedPlan",
    "SavedRebalance",
    "generate_and_save",
    "load_sample",
    "publish",
    "rebalance_and_save",
    "retry_units",
    "staff",
]

#: ``progress(stage, fraction)``: told what is happening (the API's jobs show it).
Progress = Callable[[str, float], None]


def _quiet(stage: str, fraction: float) -> None:
    """The default progress callback: says nothing."""


@dataclass(frozen=True)
class SavedPlan:
    """A plan drawn and stored as a draft.

    With a scheduler the grids stay in the database (read them with
    :func:`geo.store.plans.plan_frames`): ``plan`` then has empty ``grids`` and
    ``assignments`` and the combined ``report``, and ``fanout`` says which
    units finished and which failed (with their errors).
    """

    plan_id: int
    plan: GridPlan
    fanout: FanOutRun | None = None


@dataclass(frozen=True)
class SavedRebalance:
    """A rebalanced plan stored as a new draft whose parent is the plan it came from."""

    plan_id: int
    parent_id: int
    result: Rebalanced
    fanout: FanOutRun | None = None


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


def load_sample_province(
    session: Session,
    households: int,
    *,
    counties: int = 20,
    seed: int = 0,
    parquet: str | Path | None = None,
    progress: Progress = _quiet,
) -> list[LoadReport]:
    """Generate the seeded sample province county by county and load it with COPY.

    Only one county's frames are in memory at a time: the province and city
    rows are loaded first, then each county's areas, people and households
    (see :func:`load_province_part`, which a caller can use to commit county by
    county). With ``parquet`` every county is also written as GeoParquet
    partitions (``<layer>/county=<code>/part-0.parquet``, see
    :func:`geo.sample.province.write_partition`) plus ``province.parquet``.

    Parameters
    ----------
    session
        The transaction to load in (the caller commits).
    households, counties, seed
        As for :func:`geo.sample.generate_province`.
    parquet
        Directory for the partitioned GeoParquet copy, or None.
    progress
        Told which county is being loaded.

    Returns
    -------
    list of LoadReport
        The report of the province/city areas, then three per county.
    """
    province = generate_province(households, counties=counties, seed=seed)
    reports = load_province_part(session, province, None, parquet=parquet)
    n = len(province.counties)
    for i, spec in enumerate(province.counties):
        progress(f"sample county {spec.code} {spec.name}", i / n)
        reports += load_province_part(session, province, spec, parquet=parquet)
    progress("sample province loaded", 1.0)
    return reports


def load_province_part(
    session: Session,
    province: SampleProvince,
    spec: CountySpec | None,
    *,
    parquet: str | Path | None = None,
) -> list[LoadReport]:
    """Load the province and city rows (``spec`` None) or generate and load one county.

    A county's areas, people and households are loaded with COPY (and written
    as GeoParquet partitions under ``parquet`` when given); its frames are
    dropped when this returns.
    """
    from geo.sample.province import write_partition, write_top

    if spec is None:
        if parquet is not None:
            write_top(province, parquet)
        return [load(session, prepare(province.top, "areas", source="sample province"))]
    county = province.county(spec)
    if parquet is not None:
        write_partition(county, spec, parquet)
    reports = []
    for kind, frame in (
        ("areas", county.areas),
        ("people", county.people),
        ("households", county.households),
    ):
        source = f"sample county {spec.code} ({kind})"
        reports.append(load(session, prepare(frame, kind, source=source)))
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
    scheduler: str | None = None,
    workers: int | None = None,
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
        Told each stage as ``progress(stage, fraction)`` (with a scheduler:
        once per unit, and first the Dask dashboard link).
    scheduler, workers
        Run on Dask (:mod:`geo.fanout`): a scheduler address
        (``tcp://host:8786``), or the number of worker processes of a local
        cluster. Each township (each county of a province or city) is then one
        task that reads and writes its own part of the database; the grids are
        the same as without. The draft is then committed step by step (the
        caller's transaction only supplies the database: commit plans of the
        same area saved in it first, or the new draft waits for its version
        number). Staffing (``with_staff``) runs on the workers: grids and
        grid workers are the same, but micro-grids are drawn with each
        township's reference latitude, so a few households may get a
        different party member than without Dask. A unit that
        fails is recorded in it (``saved.fanout.failed``): it cannot be
        published until :func:`retry_units` re-runs the unit or
        :func:`publish` excludes it. Without either, nothing changes.

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
    if scheduler is not None or workers is not None:
        return _generate_on_dask(
            session,
            area_code,
            scheduler=scheduler,
            workers=workers,
            barriers=barriers,
            with_staff=with_staff,
            name=name,
            created_by=created_by,
            progress=progress,
            min_households=min_households,
            max_households=max_households,
            target=target,
            respect_level=respect_level,
            weight=weight,
            seed=seed,
        )
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


def _generate_on_dask(
    session: Session,
    area_code: str,
    *,
    scheduler: str | None,
    workers: int | None,
    barriers: gpd.GeoDataFrame | None,
    with_staff: bool,
    name: str | None,
    created_by: str | None,
    progress: Progress,
    **options: Any,
) -> SavedPlan:
    """:func:`generate_and_save` on Dask: one task per unit (:func:`geo.fanout.generate`)."""
    from geo import fanout

    engine = session.get_bind().engine
    run = fanout.generate(
        engine,
        area_code,
        scheduler=scheduler,
        workers=workers,
        barriers=barriers,
        finish=staff if with_staff else None,
        name=name,
        created_by=created_by,
        progress=progress,
        **options,
    )
    return SavedPlan(run.plan_id, _empty_plan(run.report), run)


def _empty_plan(report: dict[str, Any]) -> GridPlan:
    """A plan whose rows stay in the database: no grids here, only the report."""
    import pandas as pd

    return GridPlan(
        grids=gpd.GeoDataFrame(
            {"grid_code": [], "area_code": []}, geometry=[], crs="EPSG:4326"
        ),
        assignments=pd.DataFrame({"household_id": [], "grid_code": []}),
        report=report,
    )


def _no_changes() -> Any:
    import pandas as pd

    return pd.DataFrame({"household_id": [], "old_grid_code": [], "new_grid_code": []})


def retry_units(
    session: Session,
    plan_id: int,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    units: Sequence[str] | None = None,
    barriers: gpd.GeoDataFrame | None = None,
    with_staff: bool = False,
    progress: Progress = _quiet,
) -> FanOutRun:
    """Re-run the units of a draft drawn on Dask that failed (or ``units``).

    Each unit replaces whatever it left before, in one transaction; the
    options are the plan's stored ones. Give the same ``barriers`` and
    ``with_staff`` as the first run. Without ``scheduler`` a local cluster of
    ``workers`` (default 1) runs them.

    Parameters
    ----------
    session
        Supplies the database (each unit commits on its own).
    plan_id
        A draft drawn on Dask.
    scheduler, workers
        A Dask scheduler address, or the number of local worker processes.
    units
        The units (area codes) to re-run; default those that did not finish.
    barriers, with_staff
        As given to :func:`generate_and_save` the first time.
    progress
        Told after each unit as ``progress(stage, fraction)``.

    Returns
    -------
    geo.fanout.FanOutRun
        ``failed`` is empty when the draft is now complete.

    Examples
    --------
    ::

        run = retry_units(s, saved.plan_id, scheduler="tcp://10.0.0.5:8786")
        if not run.failed:
            publish(s, saved.plan_id)
    """
    from geo import fanout

    return fanout.retry(
        session.get_bind().engine,
        plan_id,
        scheduler=scheduler,
        workers=workers if scheduler is not None or workers is not None else 1,
        units=units,
        barriers=barriers,
        finish=staff if with_staff else None,
        progress=progress,
    )


def rebalance_and_save(
    session: Session,
    plan_id: int,
    *,
    min_households: float = 200,
    max_households: float = 300,
    locked: Sequence[str] = (),
    created_by: str | None = None,
    progress: Progress = _quiet,
    scheduler: str | None = None,
    workers: int | None = None,
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
    scheduler, workers
        Run on Dask (:func:`geo.fanout.rebalance`), one task per township: a
        scheduler address, or the number of local worker processes. The draft
        is then committed unit by unit and ``fanout`` lists failed units, as
        for :func:`generate_and_save`; households never move between
        townships (they do not without Dask either). Without either, nothing
        changes.

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
    if scheduler is not None or workers is not None:
        from geo import fanout

        run = fanout.rebalance(
            session.get_bind().engine,
            plan_id,
            scheduler=scheduler,
            workers=workers,
            min_households=min_households,
            max_households=max_households,
            locked=locked,
            created_by=created_by,
            progress=progress,
        )
        empty = _empty_plan(run.report)
        report = {**run.report.get("rebalance", {}), **run.report}
        result = Rebalanced(plan=empty, changes=_no_changes(), report=report)
        return SavedRebalance(run.plan_id, plan_id, result, run)
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


def publish(session: Session, plan_id: int, *, exclude: Sequence[str] = ()) -> None:
    """Publish a draft; the area's published plan is archived in the same step.

    A draft drawn on Dask publishes only when all its units finished, or when
    those that did not are named in ``exclude`` (recorded in the plan; they get
    no grids).

    Parameters
    ----------
    session
        The caller's transaction: the switch is visible to lookups when it
        commits, never half done.
    plan_id
        A draft plan.
    exclude
        Units (area codes) of a draft drawn on Dask to leave out explicitly.

    Raises
    ------
    geo.errors.NotFound
        There is no plan ``plan_id``.
    geo.errors.PlanConflictError
        The plan is not a draft, or another plan of the same area was published
        at the same time.
    geo.errors.IncompletePlanError
        Units of a draft drawn on Dask did not finish and are not excluded.

    Examples
    --------
    ::

        with session_scope(engine) as s:
            publish(s, saved.plan_id)
    """
    if exclude:
        from geo.store.fanout import exclude_units

        exclude_units(session, plan_id, exclude)
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
