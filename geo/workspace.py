"""The planner's Python API for notebooks: connect, load, generate, rebalance, save, publish."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from geo import services
from geo.gridding.diff import diff_plans
from geo.gridding.generate import generate_grids
from geo.gridding.rebalance import Rebalanced, rebalance
from geo.io import prepare
from geo.plan import GridPlan, PlanDiff
from geo.store.db import database_url, make_engine, session_scope, upgrade
from geo.store.loading import LoadReport, load
from geo.store.plans import area_frames, save_generated_plan, update_draft
from geo.store.queries import (
    area_table,
    coverage_table,
    load_plan,
    people_table,
    plans_table,
    published_plan_id,
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
        plan_id = ws.save_draft(area, plan)
        ws.publish(plan_id)
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def connect(
        cls, url: str | None = None, *, settings: Settings | None = None
    ) -> Workspace:
        """Connect (starting the embedded database if needed) and migrate the schema."""
        settings = settings or Settings()
        if url is None:
            url = database_url(settings, start=True)
        upgrade(url)
        return cls(make_engine(url))

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on error."""
        with session_scope(self.engine) as s:
            yield s

    # -- data ------------------------------------------------------------------

    def load(self, kind: str, frame: pd.DataFrame, **options: Any) -> LoadReport:
        """Validate and load areas, households or people from a (Geo)DataFrame."""
        with self.session() as s:
            return load(s, prepare(frame, kind, **options))

    def load_sample(
        self, households: int = 5_000, *, seed: int = 0
    ) -> list[LoadReport]:
        """Generate the seeded sample county and load it (:func:`geo.services.load_sample`)."""
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
        """Admin areas with the households in them and below them (optionally one level)."""
        with self.engine.connect() as conn:
            return area_table(conn, level)

    def area(self, code: str) -> AreaData:
        """An area with everything below it, its households and its published plan."""
        with self.session() as s:
            areas, households = area_frames(s, code)
            plan_id = published_plan_id(s, code)
            plan = info = None
            if plan_id is not None:
                plan, info = load_plan(s, plan_id)
        return AreaData(code, areas, households, plan, plan_id, info)

    def plan(self, plan_id: int) -> tuple[GridPlan, dict[str, Any]]:
        """A stored plan as a :class:`~geo.gridding.generate.GridPlan` and its info."""
        with self.session() as s:
            return load_plan(s, plan_id)

    def people(self) -> pd.DataFrame:
        """Grid workers, grid leaders and party members with their work phones."""
        with self.engine.connect() as conn:
            return people_table(conn)

    # -- planning ----------------------------------------------------------------

    def staff(self, plan: GridPlan, area: AreaData) -> GridPlan:
        """Give each grid a grid worker and each household a covering party member.

        See :func:`geo.services.staff`.
        """
        with self.session() as s:
            return services.staff(s, plan, area.households)

    def generate(self, area: AreaData, **options: Any) -> GridPlan:
        """Draw grids for the area (see :func:`geo.gridding.generate.generate_grids`)."""
        return generate_grids(area.households, area.areas, **options)

    def rebalance(self, area: AreaData, **options: Any) -> Rebalanced:
        """Rebalance the area's published plan against today's households."""
        if area.plan is None:
            raise ValueError(f"area {area.code} has no published plan to rebalance")
        retired = list(
            (area.plan_info or {}).get("metrics", {}).get("retired_codes", [])
        )
        return rebalance(
            area.plan.grids,
            area.plan.assignments,
            area.households,
            retired_codes=retired,
            **options,
        )

    @staticmethod
    def diff(old: GridPlan, new: GridPlan) -> PlanDiff:
        """What changed between two plans (households, grids, moved boundaries)."""
        return diff_plans(old.grids, old.assignments, new.grids, new.assignments)

    def save_draft(
        self,
        area: AreaData | str,
        plan: GridPlan,
        *,
        parent_id: int | None = None,
        created_by: str | None = "notebook",
    ) -> int:
        """Store a plan as a new draft of the area; returns its id."""
        code = area.code if isinstance(area, AreaData) else area
        with self.session() as s:
            return save_generated_plan(
                s, code, plan, parent_id=parent_id, created_by=created_by
            )

    def save_edit(self, plan_id: int, plan: GridPlan, *, expected_version: int) -> int:
        """Save an edited draft; refused if someone saved it since ``expected_version``."""
        with self.session() as s:
            return update_draft(
                s,
                plan_id,
                plan.grids,
                plan.assignments,
                expected_lock_version=expected_version,
                metrics=plan.report.get("metrics"),
            )

    def publish(self, plan_id: int) -> None:
        """Publish a draft (the area's previous plan is archived in the same step)."""
        with self.session() as s:
            services.publish(s, plan_id)

    def plans(self) -> pd.DataFrame:
        """Every plan: area, version, status, dates, grids."""
        with self.engine.connect() as conn:
            return plans_table(conn)

    def coverage(self, plan_id: int) -> pd.DataFrame:
        """Households per grid with the grid worker and covering party members."""
        with self.engine.connect() as conn:
            return coverage_table(conn, plan_id)
