"""One validator for stored plans: band and causes, contiguity, tiling, households, staffing, slivers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text as _sql

from geo.editing import SLIVER_PP, band_of, polsby_popper, touched_plan
from geo.errors import NotFound
from geo.gridding.checks import check_plan
from geo.plan import GridPlan
from geo.store import drafts

__all__ = ["Validation", "validate"]


@dataclass(frozen=True)
class Validation:
    """Every rule a plan breaks (``problems``), what it only warns of, and its exceptions."""

    plan_id: int
    version: int
    problems: list[str]
    warnings: list[str]
    exceptions: dict[str, str]
    grids: int
    households: int

    @property
    def valid(self) -> bool:
        """No broken rule (warnings and listed exceptions allowed)."""
        return not self.problems


def validate(session: Any, plan_id: int) -> Validation:
    """Check a stored plan (draft or published) as a whole: one validator.

    Band (out-of-band grids must carry a cause), contiguity, no overlaps,
    tiling of the plan's area, every household of the area exactly once and
    inside its grid (:func:`geo.gridding.checks.check_plan`, the rules the
    engine's plans are tested against), staffing (a
    worker per grid, no worker on two grids, every household covered by a
    party member) and slivers (Polsby-Popper below ``SLIVER_PP``: a warning).
    """
    from geo.store.plans import area_frames

    row = session.execute(
        _sql(
            "SELECT a.code, p.lock_version, p.params, p.metrics FROM plans p "
            "JOIN admin_areas a ON a.id = p.area_id WHERE p.id = :p"
        ),
        {"p": plan_id},
    ).first()
    if row is None:
        raise NotFound(f"There is no plan {plan_id}.", what="plan")
    area_code, version, params, metrics = row
    info = drafts.DraftInfo(plan_id, area_code, "", int(version), params or {}, {})
    band = band_of(info)
    codes = list(drafts.draft_codes(session, plan_id))
    state = drafts.read_touched(session, plan_id, codes)
    areas, households = area_frames(session, area_code)
    exceptions = {
        str(c): str(a["exception"])
        for c, a in zip(state.grids["grid_code"], state.grids["attrs"], strict=True)
        if (a or {}).get("exception")
    }
    plan, _ = touched_plan(state)
    # the proofs generation or rebalancing wrote, for grids the edits left as
    # they were (an edited grid's old proof is about another grid)
    proven = [
        e
        for e in (metrics or {}).get("exceptions", [])
        if e.get("grid_code") in exceptions
        and "allow_out_of_band" not in exceptions[str(e.get("grid_code"))]
    ]
    plan = GridPlan(plan.grids, plan.assignments, {"exceptions": proven})
    problems = [
        f"{v.rule}: {v.detail}"
        for v in check_plan(
            plan, households, areas, min_households=band.min, max_households=band.max
        )
    ]
    warnings: list[str] = []
    for code, geom in zip(
        state.grids["grid_code"], state.grids.geometry.values, strict=True
    ):
        pp = polsby_popper(geom)
        if pp < SLIVER_PP:
            warnings.append(f"grid {code} is a sliver (Polsby-Popper {pp:.2f})")
    workers = state.grids["worker_id"]
    none = state.grids.loc[workers.isna(), "grid_code"].astype(str).tolist()
    if none:
        problems.append(
            f"{len(none)} grid(s) have no grid worker: {', '.join(none[:10])}"
        )
    twice = (
        workers.dropna()[workers.dropna().duplicated()].astype(str).unique().tolist()
    )
    for w in twice:
        on = state.grids.loc[workers == w, "grid_code"].astype(str).tolist()
        problems.append(f"worker {w} is on {len(on)} grids: {', '.join(on)}")
    bare = int(state.households["member_id"].isna().sum())
    if bare:
        warnings.append(f"{bare} household(s) have no covering party member")
    return Validation(
        plan_id,
        int(version),
        problems,
        warnings,
        {c: r for c, r in exceptions.items()},
        len(state.grids),
        len(state.households),
    )
