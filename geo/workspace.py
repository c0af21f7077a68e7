"""The planner's Python API for notebooks: connect, load, generate, rebalance, save, publish."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from geo import editing, services
from geo.editing import Draft
from geo.gridding.diff import diff_plans
from geo.gridding.generate import generate_grids
from geo.gridding.rebalance import Rebalanced, rebalance
from geo.io import prepare
from geo.io.tables import ExtraPolicy
from geo.plan import GridPlan, PlanDiff
from geo.store.db import database_url, make_engine, session_scope, upgrade
from geo.store.loading import LoadReport, load
from geo.store.plans import area_frames, plan_row, save_generated_plan, update_draft
from geo.store.queries import (
    area_table,
    building_footprints,
    coverage_table,
    load_plan,
    people_table,
    plan_in_force,
    plans_table,
)
from geo.store.settings import Settings

__all__ = ["AreaData", "Workspace"]


@dataclass(frozen=True)
class AreaData:
    """An area as a planner works on it: its areas, households and current plan."""

    code: str
    areas: gpd.GeoDataFrame
    households: gpd.GeoDataFrame
    plan: GridPlan | None
    plan_id: int | None
    plan_info: dict[str, Any] | None


def _progress(total: int, desc: str) -> Any:
    try:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, leave=False)
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None


class Workspace:
    """One database, the operations a planner needs, each a short call.

    Examples
    --------
    In a notebook (starts the embedded PostGIS unless ``GRIDMAP_DATABASE_URL``
    is set)::

        ws = Workspace.connect()
        ws.load_sample(households=5_000)
        area = ws.area("330803100000")          # a township
        plan = ws.generate(area)                # pure, nothing stored yet
        plan = ws.staff(plan, area)             # a grid worker for each grid
        plan_id = ws.save_draft(area, plan)
        ws.publish(plan_id)
    """

    def __init__(self, engine: Engine, *, scheduler: str | None = None) -> None:
        self.engine = engine
        #: Dask scheduler of :meth:`generate_on_dask` (``GRIDMAP_DASK_SCHEDULER``).
        self.scheduler = scheduler

    @classmethod
    def connect(
        cls, url: str | None = None, *, settings: Settings | None = None
    ) -> Workspace:
        """Connect (starting the embedded database if needed) and migrate the schema.

        Parameters
        ----------
        url
            A SQLAlchemy database URL. Default: ``GRIDMAP_DATABASE_URL`` from
            ``settings``, else the embedded PostGIS (started on first use).
        settings
            Where the URL and data directory come from (default: the
            environment, see :class:`~geo.store.settings.Settings`).

        Returns
        -------
        Workspace
            Connected to a database whose schema is at the latest migration.

        Examples
        --------
        ::

            ws = Workspace.connect()                      # embedded PostGIS
            ws = Workspace.connect("postgresql+psycopg://me@db/gridmap")
        """
        settings = settings or Settings()
        if url is None:
            url = database_url(settings, start=True)
        upgrade(url)
        return cls(make_engine(url), scheduler=settings.dask_scheduler)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on error.

        Yields
        ------
        sqlalchemy.orm.Session
            For the functions of :mod:`geo.services` and :mod:`geo.store`.

        Examples
        --------
        ::

            from geo import services
            with ws.session() as s:
                saved = services.generate_and_save(s, "330803100000")
        """
        with session_scope(self.engine) as s:
            yield s

    # -- data ------------------------------------------------------------------

    def load(
        self,
        kind: str,
        frame: pd.DataFrame,
        *,
        source: str = "<input>",
        columns: Mapping[str, str] | None = None,
        defaults: Mapping[str, Any] | None = None,
        extra: ExtraPolicy = "error",
        from_gcj02: bool = False,
        from_bd09: bool = False,
        make_valid: bool = False,
        expected_bounds: tuple[float, float, float, float] | None = None,
        clip: bool = False,
    ) -> LoadReport:
        """Validate and load areas, households or people from a (Geo)DataFrame.

        The frame is checked by :func:`geo.io.prepare` and stored by
        :func:`geo.store.loading.load` in one transaction: a file with any
        problem loads nothing.

        Parameters
        ----------
        kind
            ``"areas"``, ``"households"`` or ``"people"``.
        frame
            The rows to load (a GeoDataFrame for areas and households).
        source
            Named in error messages (e.g. the file name).
        columns
            Renames from the frame's names to GridMap's, e.g.
            ``{"household_id": "osm_id"}``.
        defaults
            Values for missing columns, e.g. ``{"level": "village"}``.
        extra
            Unknown columns: ``"error"`` (default), keep them in ``attrs``
            (``"attrs"``) or drop them (``"ignore"``).
        from_gcj02, from_bd09
            The coordinates are GCJ-02 (Chinese map apps) or BD-09 (Baidu);
            convert them to WGS84.
        make_valid
            Repair invalid polygons instead of refusing them.
        expected_bounds
            lon/lat box the data should fall in; used to detect swapped
            latitude/longitude.
        clip
            Areas only: cut overlaps with sibling areas out of the later area
            instead of refusing the file.

        Returns
        -------
        LoadReport

        Raises
        ------
        geo.errors.InputError
            Naming the source, row and field of every problem found.
        ValueError
            ``clip`` with a kind other than ``"areas"``.

        Examples
        --------
        ::

            estate = gpd.read_file("estate.gpkg")
            ws.load("households", estate, source="estate.gpkg",
                    columns={"household_id": "uprn"}, from_gcj02=True)
        """
        prepared = prepare(
            frame,
            kind,
            source=source,
            columns=columns,
            defaults=defaults,
            extra=extra,
            from_gcj02=from_gcj02,
            make_valid=make_valid,
            expected_bounds=expected_bounds,
            from_bd09=from_bd09,
        )
        with self.session() as s:
            return load(s, prepared, clip=clip)

    def load_sample(
        self, households: int = 5_000, *, seed: int = 0
    ) -> list[LoadReport]:
        """Generate the seeded sample county and load it (:func:`geo.services.load_sample`).

        Parameters
        ----------
        households
            About how many households the county has.
        seed
            The same seed gives the same county.

        Returns
        -------
        list of LoadReport
            One each for areas, people and households.

        Examples
        --------
        ::

            ws.load_sample(households=5_000)
            ws.areas("township")
        """
        bar = _progress(3, "loading sample county")

        def step(stage: str, fraction: float) -> None:
            if bar is not None and fraction > 0:
                bar.update(1)

        with self.session() as s:
            out = services.load_sample(s, households, seed=seed, progress=step)
        if bar is not None:
            bar.update(1)
            bar.close()
        return out

    def areas(self, level: str | None = None) -> pd.DataFrame:
        """Admin areas with the households in them and below them.

        Parameters
        ----------
        level
            Only areas of this level (``"province"``, ``"city"``, ``"county"``,
            ``"township"``, ``"village"``, ``"community"``); default all.

        Returns
        -------
        pandas.DataFrame
            ``code, name, level, parent_code, households`` (households in the
            area and every area below it).

        Examples
        --------
        ::

            ws.areas("township")
        """
        with self.engine.connect() as conn:
            return area_table(conn, level)

    def area(self, code: str) -> AreaData:
        """An area with everything below it, its households and the published
        plan in force there.

        That is the area's own published plan, or else the grids inside the area
        of the plan published for an area above it (a township covered by its
        county's plan): ``plan`` then holds only those grids and their
        households, while ``plan_id`` and ``plan_info`` are the wider plan's
        (``plan_info["area_code"]`` says whose), so ``ws.draft(area.plan_id)``
        drafts the whole of it and a draft saved for this area with
        ``parent_id=area.plan_id`` replaces its part when published.

        Parameters
        ----------
        code
            The area's code (e.g. a township ``"330803100000"``).

        Returns
        -------
        AreaData
            ``plan``, ``plan_id`` and ``plan_info`` are None when no published
            plan answers for the whole area (none is published for it or above
            it, or the plan above has a grid crossing its boundary, or a plan of
            an area inside it is published).

        Raises
        ------
        geo.errors.NotFound
            No area has this code.

        Examples
        --------
        ::

            area = ws.area("330803100000")
            len(area.households), area.plan_id
        """
        with self.session() as s:
            areas, households = area_frames(s, code)
            plan_id = plan_in_force(s, code)
            plan = info = None
            if plan_id is not None:  # its own, or its grids in a wider plan
                wider = plan_row(s, plan_id)["area_code"] != code
                plan, info = load_plan(s, plan_id, within=code if wider else None)
        return AreaData(code, areas, households, plan, plan_id, info)

    def buildings(self, area: AreaData | str) -> gpd.GeoDataFrame:
        """Approximate building footprints of an area, as offline map context.

        Parameters
        ----------
        area
            An :class:`AreaData` (from :meth:`area`) or an area code.

        Returns
        -------
        geopandas.GeoDataFrame
            ``building_id``, ``households`` and a polygon per building: the
            hull of its households' points widened by 6 m (households carry no
            footprint), in EPSG:4326.

        Examples
        --------
        ::

            import maps
            area = ws.area("330803100000")
            ctx = maps.Context(areas=area.areas, buildings=ws.buildings(area))
            maps.coverage_map(area.plan, area.households, context=ctx)
        """
        code = area.code if isinstance(area, AreaData) else area
        with self.session() as s:
            return building_footprints(s, code)

    def plan(self, plan_id: int) -> tuple[GridPlan, dict[str, Any]]:
        """A stored plan as a :class:`~geo.plan.GridPlan` and its info.

        Parameters
        ----------
        plan_id
            The plan's id (see :meth:`plans`).

        Returns
        -------
        tuple of (GridPlan, dict)
            The plan with its grid workers and covering members, and
            ``id, area_code, status, version, lock_version, metrics``.

        Raises
        ------
        geo.errors.NotFound
            There is no such plan.

        Examples
        --------
        ::

            plan, info = ws.plan(plan_id)
            info["status"], info["lock_version"]
        """
        with self.session() as s:
            return load_plan(s, plan_id)

    def people(self) -> pd.DataFrame:
        """Grid workers, grid leaders and party members with their work phones.

        Returns
        -------
        pandas.DataFrame
            ``person_id, name, role, work_phone, area_code``.

        Examples
        --------
        ::

            ws.people().groupby("role").size()
        """
        with self.engine.connect() as conn:
            return people_table(conn)

    # -- planning ----------------------------------------------------------------

    def staff(self, plan: GridPlan, area: AreaData) -> GridPlan:
        """Give each grid a grid worker and each household a covering party member.

        See :func:`geo.services.staff`; the people are read from the database.

        Parameters
        ----------
        plan
            A plan of ``area`` (e.g. from :meth:`generate`).
        area
            The area (its households are divided into micro-grids).

        Returns
        -------
        GridPlan
            With ``grids.worker_id`` and ``assignments.member_id``.

        Examples
        --------
        ::

            plan = ws.staff(ws.generate(area), area)
            plan.assignments["member_id"].notna().mean()
        """
        with self.session() as s:
            return services.staff(s, plan, area.households)

    def generate(
        self,
        area: AreaData,
        *,
        min_households: float = 200,
        max_households: float = 300,
        target: float | None = None,
        respect_level: str = "village",
        barriers: gpd.GeoDataFrame | None = None,
        weight: str | None = None,
        seed: int = 0,
        code_digits: int = 2,
    ) -> GridPlan:
        """Draw grids for the area; nothing is stored (see :meth:`save_draft`).

        Parameters
        ----------
        area
            From :meth:`area`.
        min_households, max_households, target
            The band and the preferred size (default: the middle of the band).
        respect_level
            ``"village"`` (villages and communities) or ``"township"``.
        barriers
            Rivers, main roads, railways that grids should not cross.
        weight
            Household column giving each household's workload (default 1 each).
        seed
            Only breaks exact ties.
        code_digits
            Digits of the sequence appended to the area code.

        Returns
        -------
        GridPlan

        Raises
        ------
        ValueError
            An impossible band or a target outside it.

        See Also
        --------
        geo.gridding.generate.generate_grids : the algorithm, on GeoDataFrames.

        Examples
        --------
        ::

            plan = ws.generate(area, min_households=150, max_households=250)
            plan.report["metrics"]["in_band_share"]
        """
        return generate_grids(
            area.households,
            area.areas,
            min_households=min_households,
            max_households=max_households,
            target=target,
            respect_level=respect_level,
            barriers=barriers,
            weight=weight,
            seed=seed,
            code_digits=code_digits,
        )

    def rebalance(
        self,
        area: AreaData,
        *,
        min_households: float = 200,
        max_households: float = 300,
        locked: Collection[str] = (),
        weight: str | None = None,
        seed: int = 0,
    ) -> Rebalanced:
        """Rebalance the area's published plan against today's households.

        Codes retired by the plan's ancestors stay retired. Nothing is stored:
        save ``result.plan`` with :meth:`save_draft` (``parent_id=area.plan_id``).

        Parameters
        ----------
        area
            From :meth:`area`, with a published plan.
        min_households, max_households
            The band.
        locked
            Grid codes that must not change.
        weight
            Household column giving each household's workload (default 1 each).
        seed
            Only breaks exact ties.

        Returns
        -------
        Rebalanced

        Raises
        ------
        ValueError
            The area has no published plan.

        See Also
        --------
        geo.gridding.rebalance.rebalance : the algorithm, on GeoDataFrames.

        Examples
        --------
        ::

            result = ws.rebalance(area, locked=["33080310000101"])
            result.report["moved_households"]
            ws.save_draft(area, result.plan, parent_id=area.plan_id)
        """
        if area.plan is None:
            raise ValueError(f"area {area.code} has no published plan to rebalance")
        retired = list(
            (area.plan_info or {}).get("metrics", {}).get("retired_codes", [])
        )
        return rebalance(
            area.plan.grids,
            area.plan.assignments,
            area.households,
            min_households=min_households,
            max_households=max_households,
            locked=tuple(locked),
            weight=weight,
            retired_codes=retired,
            seed=seed,
        )

    @staticmethod
    def diff(old: GridPlan, new: GridPlan) -> PlanDiff:
        """What changed between two plans (households, grids, moved boundaries).

        Pure: no database is needed (see :func:`geo.gridding.diff.diff_plans`).

        Parameters
        ----------
        old, new
            The two plans, e.g. ``area.plan`` and ``result.plan``.

        Returns
        -------
        PlanDiff

        Examples
        --------
        >>> import geopandas as gpd, pandas as pd, shapely
        >>> from geo.plan import GridPlan
        >>> old = GridPlan(
        ...     gpd.GeoDataFrame({"grid_code": ["V01"]},
        ...         geometry=[shapely.box(0, 0, 0.01, 0.01)], crs=4326),
        ...     pd.DataFrame({"household_id": ["h1", "h2"], "grid_code": ["V01", "V01"]}))
        >>> new = GridPlan(
        ...     gpd.GeoDataFrame({"grid_code": ["V01", "V02"]},
        ...         geometry=[shapely.box(0, 0, 0.005, 0.01), shapely.box(0.005, 0, 0.01, 0.01)],
        ...         crs=4326),
        ...     pd.DataFrame({"household_id": ["h1", "h2"], "grid_code": ["V01", "V02"]}))
        >>> d = Workspace.diff(old, new)
        >>> d.households[["household_id", "old_grid_code", "new_grid_code"]].values.tolist()
        [['h2', 'V01', 'V02']]
        >>> d.summary["created"], d.summary["reshaped"], d.unchanged_households
        (['V02'], ['V01'], 1)
        """
        return diff_plans(old.grids, old.assignments, new.grids, new.assignments)

    def save_draft(
        self,
        area: AreaData | str,
        plan: GridPlan,
        *,
        parent_id: int | None = None,
        created_by: str | None = "notebook",
    ) -> int:
        """Store a plan as a new draft of the area.

        Parameters
        ----------
        area
            The area (or its code) the plan divides.
        plan
            From :meth:`generate`, :meth:`staff`, :meth:`rebalance` or an edit
            (:mod:`geo.gridding.edits`).
        parent_id
            The plan this one was derived from (e.g. the rebalanced plan).
        created_by
            Recorded with the plan.

        Returns
        -------
        int
            The new draft's id.

        Raises
        ------
        geo.errors.InputError
            The plan does not fit the area (unknown area, grids not in
            EPSG:4326, unknown households …); nothing is stored.

        Examples
        --------
        ::

            plan_id = ws.save_draft(area, plan)
            ws.publish(plan_id)
        """
        code = area.code if isinstance(area, AreaData) else area
        with self.session() as s:
            return save_generated_plan(
                s, code, plan, parent_id=parent_id, created_by=created_by
            )

    def save_edit(self, plan_id: int, plan: GridPlan, *, expected_version: int) -> int:
        """Save an edited draft over itself (optimistic lock).

        Parameters
        ----------
        plan_id
            A draft plan.
        plan
            The edited plan (e.g. from :func:`geo.gridding.edits.merge_grids`).
        expected_version
            The draft's ``lock_version`` when it was loaded (``info`` of
            :meth:`plan`).

        Returns
        -------
        int
            The draft's new ``lock_version``.

        Raises
        ------
        geo.errors.PlanConflictError
            The plan is no longer a draft, or someone saved it since
            ``expected_version``; nothing is written.
        geo.errors.NotFound
            There is no such plan.

        Examples
        --------
        ::

            plan, info = ws.plan(plan_id)
            edited = merge_grids(plan, ["V01", "V02"], allow_out_of_band=True)
            ws.save_edit(plan_id, edited, expected_version=info["lock_version"])
        """
        with self.session() as s:
            return update_draft(
                s,
                plan_id,
                plan.grids,
                plan.assignments,
                expected_lock_version=expected_version,
                metrics=plan.report.get("metrics"),
            )

    def generate_on_dask(
        self,
        area_code: str,
        *,
        scheduler: str | None = None,
        workers: int | None = None,
        min_households: float = 200,
        max_households: float = 300,
        target: float | None = None,
        respect_level: str = "village",
        weight: str | None = None,
        seed: int = 0,
        with_staff: bool = False,
        name: str | None = None,
    ) -> services.SavedPlan:
        """Draw grids for a large area on Dask, one task per township or county,
        into a new draft (stored as it goes; shows a progress bar per unit).

        Parameters
        ----------
        area_code
            A county, city or province (anything with townships below it).
        scheduler, workers
            A Dask scheduler address (default :attr:`scheduler`, from
            ``GRIDMAP_DASK_SCHEDULER``), or the number of local worker processes.
        min_households, max_households, target, respect_level, weight, seed
            As for :meth:`generate`.
        with_staff
            Also staff the grids (on the workers).
        name
            Recorded with the plan.

        Returns
        -------
        geo.services.SavedPlan
            ``plan_id``, the combined ``plan.report`` (no grids in memory: read
            them with :meth:`plan`) and ``fanout.failed`` (unit → error).

        Examples
        --------
        ::

            saved = ws.generate_on_dask("330800000000", workers=2)
            saved.fanout.failed            # {} when every township finished
            ws.publish(saved.plan_id)
        """
        scheduler = scheduler or (None if workers else self.scheduler)
        if scheduler is None and workers is None:
            raise ValueError(
                "give scheduler= or workers= (or set GRIDMAP_DASK_SCHEDULER)"
            )
        bar = _progress(1000, f"drawing {area_code}")
        done = [0]

        def step(stage: str, fraction: float) -> None:
            if bar is None:
                return
            if stage.startswith("Dask dashboard:"):
                bar.write(stage)
                return
            n = int(fraction * 1000)
            bar.set_description(stage)
            bar.update(n - done[0])
            done[0] = n

        try:
            with self.session() as s:
                return services.generate_and_save(
                    s,
                    area_code,
                    scheduler=scheduler,
                    workers=workers,
                    with_staff=with_staff,
                    name=name,
                    created_by="workspace",
                    progress=step,
                    min_households=min_households,
                    max_households=max_households,
                    target=target,
                    respect_level=respect_level,
                    weight=weight,
                    seed=seed,
                )
        finally:
            if bar is not None:
                bar.close()

    def retry(
        self,
        plan_id: int,
        *,
        scheduler: str | None = None,
        workers: int | None = None,
        units: Collection[str] | None = None,
    ) -> Any:
        """Re-run the units of a draft drawn on Dask that failed (or ``units``).

        Parameters
        ----------
        plan_id
            A draft from :meth:`generate_on_dask`.
        scheduler, workers
            As for :meth:`generate_on_dask` (default one local worker).
        units
            Unit codes to re-run; default those that did not finish.

        Returns
        -------
        geo.fanout.FanOutRun
            ``failed`` is empty when the draft is complete.

        Examples
        --------
        ::

            ws.retry(saved.plan_id).failed
        """
        with self.session() as s:
            return services.retry_units(
                s,
                plan_id,
                scheduler=scheduler or (None if workers else self.scheduler),
                workers=workers,
                units=None if units is None else list(units),
            )

    def publish(
        self,
        plan_id: int,
        *,
        exclude: Collection[str] = (),
        allow_unstaffed: bool = False,
    ) -> None:
        """Publish a draft (the area's previous plan is archived in the same step).

        Parameters
        ----------
        plan_id
            A draft plan.
        exclude
            Units of a draft drawn on Dask to leave out explicitly (recorded).
        allow_unstaffed
            Publish even when some grids have no grid worker (refused otherwise).

        Raises
        ------
        geo.errors.NotFound
            There is no such plan.
        geo.errors.PlanConflictError
            The plan is not a draft, or another plan of the area was published
            at the same moment.
        geo.errors.UnstaffedPlanError
            Some grids have no grid worker and ``allow_unstaffed`` is false.

        Examples
        --------
        ::

            ws.publish(ws.save_draft(area, plan))
        """
        with self.session() as s:
            services.publish(
                s,
                plan_id,
                exclude=list(exclude),
                allow_unstaffed=allow_unstaffed,
                actor="notebook",
            )

    def draft(
        self, plan_id: int, *, new: bool = True, area: str | None = None
    ) -> Draft:
        """Redraw a plan by hand: a new draft copied from ``plan_id`` (or, with
        ``new=False``, the draft ``plan_id`` itself) as a :class:`~geo.editing.Draft`.

        Each of its edits (``move``, ``split``, ``merge``, ``lock``,
        ``rebalance``, ``assign_worker``, ``undo``, ``redo``) is one committed
        step of the draft's history, checked by the rules of
        :mod:`geo.gridding.edits`, exactly as over HTTP and in the viewer.

        Parameters
        ----------
        plan_id
            The plan to copy (published or draft), or the draft to open.
        new
            Copy ``plan_id`` into a new draft (default), or open it as it is.
        area
            Copy only the plan's grids inside this area (a township of the
            county's plan, ``ws.area(code).plan_id``) into a draft of the area:
            publishing it replaces that part of the plan and leaves the rest,
            and the published plans of other townships, as they are.

        Returns
        -------
        geo.editing.Draft
            Holds the version it saw; each edit moves it on.

        Examples
        --------
        ::

            d = ws.draft(ws.area("330803001000").plan_id, area="330803001000")
            d.move(households=["H330803001001-00017"], to_grid="33080300100102")
            d.validate().problems
        """
        if area is not None and not new:
            raise ValueError("area: only a new draft copies part of a plan (new=True)")
        with self.session() as s:
            if new:
                plan_id, version = editing.start_draft(
                    s, plan_id, actor="notebook", area=area
                )
            else:
                version = editing.drafts.lock_draft(
                    s, plan_id, expected_version=None
                ).version
        return editing.Draft(self.engine, plan_id, version, "notebook")

    def plans(self) -> pd.DataFrame:
        """Every plan: area, version, status, dates, grids.

        Returns
        -------
        pandas.DataFrame
            ``id, area_code, version, status, parent_id, valid_from, valid_to,
            lock_version, grids``.

        Examples
        --------
        ::

            ws.plans().query("status == 'draft'")
        """
        with self.engine.connect() as conn:
            return plans_table(conn)

    def coverage(self, plan_id: int) -> pd.DataFrame:
        """Households per grid with the grid worker and covering party members.

        Parameters
        ----------
        plan_id
            Any stored plan.

        Returns
        -------
        pandas.DataFrame
            One row per grid: ``grid_code, grid_worker, work_phone, households,
            households_with_member, party_members``.

        Examples
        --------
        ::

            cov = ws.coverage(area.plan_id)
            cov[cov["grid_worker"].isna()]           # grids nobody works
        """
        with self.engine.connect() as conn:
            return coverage_table(conn, plan_id)
