"""The planner's Python API for notebooks: connect, load, generate, rebalance, save, publish."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import pandas as pd
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geo.gridding.diff import diff_plans
from geo.gridding.generate import generate_grids
from geo.gridding.rebalance import Rebalanced, rebalance
from geo.io import prepare
from geo.plan import GridPlan, PlanDiff
from geo.store.db import database_url, make_engine, session_scope, upgrade
from geo.store.loading import LoadReport, load
from geo.store.plans import (
    area_frames,
    plan_frames,
    publish_plan,
    save_generated_plan,
    update_draft,
)
from geo.store.settings import Settings

__all__ = ["AreaData", "Workspace", "load_plan"]


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
        """Generate the seeded sample county and load it."""
        from geo.sample import generate_county

        county = generate_county(households, seed=seed)
        bar = _progress(3, "loading sample county")
        out = []
        with self.session() as s:
            for kind, frame in (
                ("areas", county.areas),
                ("people", county.people),
                ("households", county.households),
            ):
                out.append(load(s, prepare(frame, kind, source=f"sample {kind}")))
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
        return out

    def areas(self, level: str | None = None) -> pd.DataFrame:
        """Admin areas with the households in them and below them (optionally one level)."""
        sql = (
            "WITH RECURSIVE tree(root, id) AS (SELECT id, id FROM admin_areas "
            "UNION ALL SELECT t.root, a.id FROM admin_areas a JOIN tree t ON a.parent_id = t.id), "
            "n AS (SELECT root, count(h.id) AS households FROM tree "
            "LEFT JOIN households h ON h.area_id = tree.id GROUP BY root) "
            "SELECT a.code, a.name, a.level, p.code AS parent_code, n.households "
            "FROM admin_areas a LEFT JOIN admin_areas p ON p.id = a.parent_id "
            "JOIN n ON n.root = a.id "
            + ("WHERE a.level = :l " if level else "")
            + "ORDER BY a.code"
        )
        with self.engine.connect() as conn:
            return pd.read_sql_query(text(sql), conn, params={"l": level})

    def area(self, code: str) -> AreaData:
        """An area with everything below it, its households and its published plan."""
        with self.session() as s:
            areas, households = area_frames(s, code)
            row = s.execute(
                text(
                    "SELECT p.id FROM plans p JOIN admin_areas a ON a.id = p.area_id "
                    "WHERE a.code = :c AND p.status = 'published'"
                ),
                {"c": code},
            ).first()
            plan = info = None
            if row is not None:
                plan, info = self._plan(s, int(row[0]))
        return AreaData(
            code, areas, households, plan, info["id"] if info else None, info
        )

    def plan(self, plan_id: int) -> tuple[GridPlan, dict[str, Any]]:
        """A stored plan as a :class:`~geo.gridding.generate.GridPlan` and its info."""
        with self.session() as s:
            return self._plan(s, plan_id)

    @staticmethod
    def _plan(s: Session, plan_id: int) -> tuple[GridPlan, dict[str, Any]]:
        return load_plan(s, plan_id)

    def people(self) -> pd.DataFrame:
        """Grid workers, grid leaders and party members with their work phones."""
        sql = (
            "SELECT p.external_id AS person_id, p.name, p.role, p.work_phone, "
            "a.code AS area_code FROM people p LEFT JOIN admin_areas a ON a.id = p.area_id "
            "ORDER BY p.external_id"
        )
        with self.engine.connect() as conn:
            return pd.read_sql_query(text(sql), conn)

    # -- planning ----------------------------------------------------------------

    def staff(self, plan: GridPlan, area: AreaData) -> GridPlan:
        """Give each grid a grid worker and each household a covering party member.

        Grids get workers of their own village; each grid is divided into
        micro-grids of 10–30 households (党员联户) and each micro-grid gets one
        party member of the village. Returns the plan with ``grids.worker_id``
        and ``assignments.member_id`` filled in where people are available.
        """
        from dataclasses import replace

        from geo.gridding.staffing import (
            assign_members,
            assign_workers,
            generate_micro_grids,
        )

        people = self.people()
        grids = assign_workers(plan.grids, people)
        micro = generate_micro_grids(plan, area.households)
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
        report = dict(plan.report)
        report["micro_grids"] = micro.report["metrics"]
        return replace(plan, grids=grids, assignments=assignments, report=report)

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
            publish_plan(s, plan_id)

    def plans(self) -> pd.DataFrame:
        """Every plan: area, version, status, dates, grids."""
        sql = (
            "SELECT p.id, a.code AS area_code, p.version, p.status, p.parent_id, "
            "p.valid_from, p.valid_to, p.lock_version, count(g.id) AS grids "
            "FROM plans p JOIN admin_areas a ON a.id = p.area_id "
            "LEFT JOIN grids g ON g.plan_id = p.id GROUP BY p.id, a.code ORDER BY p.id"
        )
        with self.engine.connect() as conn:
            return pd.read_sql_query(text(sql), conn)

    def coverage(self, plan_id: int) -> pd.DataFrame:
        """Households per grid with the grid worker and covering party members."""
        sql = (
            "SELECT g.code AS grid_code, w.name AS grid_worker, w.work_phone, "
            "count(x.household_id) AS households, "
            "count(x.member_id) AS households_with_member, "
            "count(DISTINCT x.member_id) AS party_members "
            "FROM grids g LEFT JOIN people w ON w.id = g.worker_id "
            "LEFT JOIN assignments x ON x.grid_id = g.id "
            "WHERE g.plan_id = :p GROUP BY g.code, w.name, w.work_phone ORDER BY g.code"
        )
        with self.engine.connect() as conn:
            return pd.read_sql_query(text(sql), conn, params={"p": plan_id})


def load_plan(s: Session, plan_id: int) -> tuple[GridPlan, dict[str, Any]]:
    """A stored plan with its grid workers and covering members, and its info."""
    grids, assignments, info = plan_frames(s, plan_id)
    workers = s.execute(
        text(
            "SELECT g.code, p.external_id FROM grids g JOIN people p ON p.id = g.worker_id "
            "WHERE g.plan_id = :p"
        ),
        {"p": plan_id},
    ).all()
    grids["worker_id"] = grids["grid_code"].map(dict(workers))
    members = s.execute(
        text(
            "SELECT h.external_id, p.external_id FROM assignments x "
            "JOIN households h ON h.id = x.household_id "
            "JOIN people p ON p.id = x.member_id WHERE x.plan_id = :p"
        ),
        {"p": plan_id},
    ).all()
    assignments["member_id"] = assignments["household_id"].map(dict(members))
    grids["load"] = grids["households"].astype(float)
    metrics = dict(info.get("metrics") or {})
    report = {"metrics": metrics, "exceptions": metrics.get("exceptions", [])}
    return GridPlan(grids=grids, assignments=assignments, report=report), info
