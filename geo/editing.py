"""A planner's redraw of a draft, once for the HTTP API, the viewer, the CLI and notebooks.

Every edit reads only the grids it touches (and their households), applies
the pure rule of :mod:`geo.gridding.edits`, carries the staff through
(:func:`geo.gridding.restaff.carry_staff`), writes the touched rows back and
appends a step to the draft's history with the touched grids' state before and
after — so undo and redo are exact and an edit costs what it touches, whatever
the size of the county.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.errors import EditError, InputError, NotFound
from geo.gridding import edits as rules
from geo.gridding.restaff import carry_staff
from geo.plan import Band, GridPlan
from geo.store import drafts
from geo.store.queries import people_table

__all__ = [
    "Draft",
    "Edit",
    "EditResult",
    "GridChange",
    "apply_edit",
    "history",
    "neighbours",
    "redo",
    "start_draft",
    "undo",
]

Op = Literal["move", "split", "merge", "lock", "unlock", "rebalance", "assign_worker"]

#: Polsby-Popper below this is reported as a sliver (a warning, not a refusal).
SLIVER_PP = 0.1


@dataclass(frozen=True)
class Edit:
    """One edit of a draft (see :func:`apply_edit`).

    ``move``: ``households`` and/or ``buildings`` to ``to_grid``;
    ``split``: ``grid`` into ``parts`` (by the engine) or along ``line``
    (lon/lat points); ``merge``: ``grids``; ``lock``/``unlock``: ``grids``;
    ``rebalance``: the unlocked grids of the draft; ``assign_worker``: ``grid``
    gets ``person_id``.
    """

    op: Op
    households: tuple[str, ...] = ()
    buildings: tuple[str, ...] = ()
    to_grid: str | None = None
    grid: str | None = None
    parts: int = 2
    line: tuple[tuple[float, float], ...] | None = None
    grids: tuple[str, ...] = ()
    person_id: str | None = None
    allow_out_of_band: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The non-default fields (what the history records)."""
        out: dict[str, Any] = {"op": self.op}
        for k in (
            "households",
            "buildings",
            "to_grid",
            "grid",
            "line",
            "grids",
            "person_id",
        ):
            v = getattr(self, k)
            if v:
                out[k] = list(v) if isinstance(v, tuple) else v
        if self.op == "split" and not self.line:
            out["parts"] = self.parts
        if self.allow_out_of_band:
            out["allow_out_of_band"] = True
        return out


@dataclass(frozen=True)
class GridChange:
    """A grid an edit changed: its new state (``status`` ``retired``: gone)."""

    code: str
    status: Literal["changed", "created", "retired"]
    households: int
    in_band: bool
    cause: str | None
    worker_id: str | None
    locked: bool
    geometry: Any


@dataclass(frozen=True)
class EditResult:
    """What an edit, undo or redo did to the draft."""

    plan_id: int
    version: int
    edit_id: int
    summary: str
    grids: list[GridChange]
    problems: list[str] = field(default_factory=list)
    staff: dict[str, Any] = field(default_factory=dict)


def band_of(info: drafts.DraftInfo) -> Band:
    p = info.params or {}
    return Band(
        float(p.get("min_households", 200)), float(p.get("max_households", 300))
    )


def _locked(attrs: Any) -> bool:
    return bool((attrs or {}).get("locked"))


def _part_of(session: Any, plan_id: int, area: str) -> int:
    """The id of ``area`` when plan ``plan_id``'s grids inside it can be drafted
    on their own (it lies inside the plan's area and no grid crosses it)."""
    from geo.store.plans import plan_row
    from geo.store.queries import grids_cross

    plan_area = str(plan_row(session, plan_id)["area_code"])
    ids = drafts.area_ids(session, [area, plan_area])
    if area not in ids:
        raise NotFound(f"There is no admin area {area!r}.", what="area")
    if area != plan_area and not drafts.is_inside(session, ids[area], ids[plan_area]):
        raise InputError.one(
            "draft",
            f"area {area} is not inside plan {plan_id}'s area {plan_area}",
            params=("area",),
        )
    if not drafts.grids_inside(session, plan_id, ids[area]):
        raise InputError.one(
            "draft",
            f"plan {plan_id} has no grid in area {area} (a plan of the area itself "
            "holds them once it is published)",
            params=("area",),
        )
    if grids_cross(session, plan_id, area):
        raise InputError.one(
            "draft",
            f"a grid of plan {plan_id} holds households both inside and outside "
            f"area {area}: draft the whole plan, or the area above",
            params=("area",),
        )
    return ids[area]


def start_draft(
    session: Any, plan_id: int, *, actor: str | None, area: str | None = None
) -> tuple[int, int]:
    """A new draft copied from plan ``plan_id`` (published or draft); ``(id, version)``.

    Grids, households' grids, workers and party members are copied; published
    plans are never edited in place. The copy is the first step of its history.
    ``area``: copy only the plan's grids inside that area (a township of a county
    plan) into a draft of the area, whose publication replaces that part of the
    plan; refused when the area is not inside the plan's, or a grid of the plan
    crosses its boundary.
    """
    if plan_id is None or isinstance(plan_id, bool) or not isinstance(plan_id, int):
        raise InputError.one(
            "draft",
            f"plan_id must be a plan's id (a whole number), got {plan_id!r}"
            + (
                ": no published plan answers for that area (ws.area(code).plan_id "
                "is None); generate and publish one, or draft the plan of the area "
                "above it"
                if plan_id is None
                else ""
            ),
            params=("plan_id",),
        )
    if not 0 < plan_id < 2**31:
        raise NotFound(f"There is no plan {plan_id}.", what="plan")
    area_id = None if area is None else _part_of(session, plan_id, area)
    new_id = drafts.copy_to_draft(session, plan_id, created_by=actor, area_id=area_id)
    info = drafts.lock_draft(session, new_id, expected_version=None)
    drafts.record(
        session,
        new_id,
        kind="draft",
        op={"op": "draft", "from_plan": plan_id},
        actor=actor,
        version=info.version,
        summary={"text": f"draft copied from plan {plan_id}"},
    )
    return new_id, info.version


def touched_plan(t: drafts.Touched) -> tuple[GridPlan, gpd.GeoDataFrame]:
    counts = t.households.groupby("grid_code").size()
    grids = gpd.GeoDataFrame(
        {
            "grid_code": t.grids["grid_code"].astype(str).to_numpy(),
            "area_code": t.grids["area_code"].astype(str).to_numpy(),
            "households": t.grids["grid_code"]
            .map(counts)
            .fillna(0)
            .astype(int)
            .to_numpy(),
        },
        geometry=list(t.grids.geometry.values),
        crs=4326,
    )
    assignments = pd.DataFrame(
        {
            "household_id": t.households["household_id"].astype(str).to_numpy(),
            "grid_code": t.households["grid_code"].astype(str).to_numpy(),
        }
    )
    hh = t.households[["household_id", "building_id", "unit", "geometry"]].copy()
    hh["household_id"] = hh["household_id"].astype(str)
    return GridPlan(grids, assignments, {}), gpd.GeoDataFrame(hh, crs=4326)


def _after(
    before: drafts.Touched,
    new: GridPlan,
    band: Band,
    actor: str | None,
    allow: bool,
) -> drafts.Touched:
    """The touched state after the pure edit: polygons and households from ``new``,
    names, kinds and attrs carried from ``before`` by code, counts and causes fresh."""
    old = before.grids.set_index(before.grids["grid_code"].astype(str))
    g = new.grids.to_crs(4326)
    counts = new.assignments.groupby("grid_code").size()
    attrs, names, kinds = [], [], []
    for code, area in zip(g["grid_code"].astype(str), g["area_code"], strict=True):
        a = dict(old["attrs"].get(code) or {}) if code in old.index else {}
        n = int(counts.get(code, 0))
        prev = a.get("households")
        a["households"] = n
        a["load"] = float(n)
        if band.contains(n):
            a["exception"] = a["cause"] = None
        elif prev != n or not a.get("exception"):
            a["cause"] = None  # a cause proven of the grid before the edit
            a["exception"] = (
                f"{n} households after an edit by {actor or 'a planner'}, outside "
                f"{band.min:g}–{band.max:g}, accepted with allow_out_of_band"
                if allow
                else f"{n} households, outside {band.min:g}–{band.max:g}"
            )
        a.setdefault("areas", area)
        attrs.append(a)
        names.append(old["name"].get(code) if code in old.index else None)
        kinds.append(old["kind"].get(code) if code in old.index else "comprehensive")
    grids = gpd.GeoDataFrame(
        {
            "grid_code": g["grid_code"].astype(str).to_numpy(),
            "area_code": g["area_code"].astype(str).to_numpy(),
            "name": names,
            "kind": kinds,
            "worker_id": [None] * len(g),
            "attrs": attrs,
        },
        geometry=list(g.geometry.values),
        crs=4326,
    )
    of = new.assignments.set_index(new.assignments["household_id"].astype(str))[
        "grid_code"
    ]
    hh = before.households.copy()
    hh["grid_code"] = hh["household_id"].astype(str).map(of).astype(str).to_numpy()
    return drafts.Touched(grids, hh)


def polsby_popper(geom: Any) -> float:
    lat = shapely.centroid(geom).y
    scaled = shapely.affinity.scale(
        geom, xfact=math.cos(math.radians(lat)), origin=(0, 0)
    )
    p = scaled.length
    return 4 * math.pi * scaled.area / (p * p) if p > 0 else 0.0


def _changes(
    before: drafts.Touched, after: drafts.Touched, band: Band
) -> tuple[list[GridChange], list[str]]:
    old_codes = set(before.grids["grid_code"].astype(str))
    out, problems = [], []
    for r in after.grids.itertuples():
        code = str(r.grid_code)
        n = int((r.attrs or {}).get("households", 0))
        parts = len(shapely.get_parts(r.geometry))
        if parts > 1:
            problems.append(f"grid {code} is in {parts} separate parts")
        pp = polsby_popper(r.geometry)
        if pp < SLIVER_PP:
            problems.append(
                f"grid {code} is a sliver (Polsby-Popper {pp:.2f} < {SLIVER_PP}); "
                "a warning, not a refusal"
            )
        if not band.contains(n):
            problems.append(
                f"grid {code} holds {n} households, outside {band.min:g}–{band.max:g}"
            )
        if r.worker_id is None or (
            isinstance(r.worker_id, float) and np.isnan(r.worker_id)
        ):
            problems.append(f"grid {code} has no grid worker (assign_worker)")
        out.append(
            GridChange(
                code=code,
                status="changed" if code in old_codes else "created",
                households=n,
                in_band=band.contains(n),
                cause=(r.attrs or {}).get("exception"),
                worker_id=None if pd.isna(r.worker_id) else str(r.worker_id),
                locked=_locked(r.attrs),
                geometry=r.geometry,
            )
        )
    for code in sorted(old_codes - set(after.grids["grid_code"].astype(str))):
        out.append(GridChange(code, "retired", 0, False, None, None, False, None))
    return out, problems


def _commit(
    session: Any,
    info: drafts.DraftInfo,
    before: drafts.Touched,
    after: drafts.Touched,
    *,
    kind: str,
    op: dict[str, Any],
    text: str,
    actor: str | None,
    staff: dict[str, Any] | None = None,
    state: str = "done",
    target_id: int | None = None,
) -> EditResult:
    band = band_of(info)
    version = drafts.write_touched(
        session,
        info.plan_id,
        before.grids["grid_code"].astype(str).tolist(),
        after,
        before=before,
    )
    changes, problems = _changes(before, after, band)
    counts_before = {
        str(c): int((a or {}).get("households", 0))
        for c, a in zip(before.grids["grid_code"], before.grids["attrs"], strict=True)
    }
    summary = {
        "text": text,
        "before": counts_before,
        "after": {c.code: c.households for c in changes if c.status != "retired"},
        "problems": problems,
        **({"staff": staff} if staff else {}),
    }
    edit_id = drafts.record(
        session,
        info.plan_id,
        kind=kind,
        op=op,
        actor=actor,
        version=version,
        summary=summary,
        before=before.snapshot() if kind == "edit" else None,
        after=after.snapshot() if kind == "edit" else None,
        state=state if kind == "edit" else "log",
        target_id=target_id,
    )
    return EditResult(
        info.plan_id, version, edit_id, text, changes, problems, staff or {}
    )


def _expand_buildings(before: drafts.Touched, ids: list[str]) -> list[str]:
    """Households of one building move together: add their building-mates."""
    hh = before.households
    sel = hh["household_id"].astype(str).isin(ids)
    buildings = set(hh.loc[sel, "building_id"].dropna().astype(str))
    mates = hh["building_id"].astype(str).isin(buildings) & hh["building_id"].notna()
    return sorted(set(ids) | set(hh.loc[mates, "household_id"].astype(str)))


def _staffed(
    session: Any,
    info: drafts.DraftInfo,
    before: drafts.Touched,
    after: drafts.Touched,
) -> tuple[drafts.Touched, dict[str, Any]]:
    touched = before.grids["grid_code"].astype(str).tolist()
    was = before.households.set_index(before.households["household_id"].astype(str))
    now = after.households["grid_code"].astype(str).to_numpy()
    ids = after.households["household_id"].astype(str)
    changed = ids[was["grid_code"].astype(str).reindex(ids).to_numpy() != now]
    areas = set(before.grids["area_code"].astype(str)) | set(
        after.grids["area_code"].astype(str)
    )
    people, busy = drafts.staff_pool(session, info.plan_id, sorted(areas), touched)
    grids, hh, churn = carry_staff(
        before.grids,
        before.households,
        after.grids,
        after.households,
        people,
        busy_workers=busy,
        origin=drafts.parent_staff(session, info.plan_id, changed.tolist()),
    )
    return drafts.Touched(gpd.GeoDataFrame(grids, crs=4326), hh), churn.as_dict()


def apply_edit(
    session: Any,
    plan_id: int,
    edit: Edit,
    *,
    expected_version: int,
    actor: str | None,
) -> EditResult:
    """Apply one edit to a draft, all or nothing.

    Parameters
    ----------
    session
        The caller's transaction (nothing is committed here; on an error the
        caller rolls back and nothing is written).
    plan_id
        A draft.
    edit
        What to do.
    expected_version
        The draft's version the planner saw; another version is refused with
        :class:`~geo.errors.StaleDraft` (409 over HTTP).
    actor
        Who edits (recorded in the history).

    Returns
    -------
    EditResult
        The new version and every grid that changed (counts, band, cause,
        worker, polygon), with problems (out of band, slivers, unstaffed).

    Raises
    ------
    geo.errors.EditError
        The edit breaks a rule (not adjacent, would split a grid, unknown ids,
        a locked grid, not a draft); the message says which.
    """
    info = drafts.lock_draft(session, plan_id, expected_version=expected_version)
    band = band_of(info)
    if edit.op == "move":
        return _move(session, info, edit, band, actor)
    if edit.op in ("split", "merge"):
        return _split_merge(session, info, edit, band, actor)
    if edit.op in ("lock", "unlock"):
        return _lock(session, info, edit, actor)
    if edit.op == "assign_worker":
        return _assign_worker(session, info, edit, actor)
    if edit.op == "rebalance":
        return _rebalance(session, info, edit, band, actor)
    raise EditError(f"unknown edit {edit.op!r}")


def _refuse_locked(before: drafts.Touched, codes: set[str], what: str) -> None:
    for code, attrs in zip(
        before.grids["grid_code"], before.grids["attrs"], strict=True
    ):
        if str(code) in codes and _locked(attrs):
            raise EditError(f"grid {code} is locked: {what}; unlock it first")


def _move(
    session: Any, info: drafts.DraftInfo, edit: Edit, band: Band, actor: str | None
) -> EditResult:
    if not edit.to_grid:
        raise EditError("a move needs to_grid")
    if not edit.households and not edit.buildings:
        raise EditError("a move needs households or buildings")
    if not drafts.has_grid(session, info.plan_id, edit.to_grid):
        raise EditError(f"plan {info.plan_id} has no grid {edit.to_grid!r}")
    where = drafts.grids_of(
        session,
        info.plan_id,
        households=list(edit.households),
        buildings=list(edit.buildings),
    )
    unknown = [h for h in edit.households if f"h:{h}" not in where] + [
        b for b in edit.buildings if f"b:{b}" not in where
    ]
    if unknown:
        raise EditError(
            f"unknown household(s) or building(s): {', '.join(unknown[:10])}"
        )
    sources = {c for c in where.values() if c != "*"}
    if "*" in where.values():  # a building already split over grids: read them all
        sources |= set(
            drafts.grids_of(
                session, info.plan_id, buildings=list(edit.buildings)
            ).values()
        ) - {"*"}
    touched = sorted(sources | {edit.to_grid})
    before = drafts.read_touched(session, info.plan_id, touched)
    in_building = before.households["building_id"].astype(str).isin(set(edit.buildings))
    ids = set(edit.households) | set(
        before.households.loc[in_building, "household_id"].astype(str)
    )
    ids_l = _expand_buildings(before, sorted(ids))
    of = before.households.set_index(before.households["household_id"].astype(str))[
        "grid_code"
    ]
    moving = [h for h in ids_l if of[h] != edit.to_grid]
    if not moving:
        raise EditError(f"every named household is already in {edit.to_grid}")
    _refuse_locked(
        before, {str(of[h]) for h in moving}, "households cannot be taken from it"
    )
    plan, hh = touched_plan(before)
    new = rules.move_households(
        plan,
        hh,
        moving,
        edit.to_grid,
        min_households=band.min,
        max_households=band.max,
        allow_out_of_band=edit.allow_out_of_band,
    )
    after = _after(before, new, band, actor, edit.allow_out_of_band)
    after, staff = _staffed(session, info, before, after)
    return _commit(
        session,
        info,
        before,
        after,
        kind="edit",
        op=edit.as_dict(),
        text=f"moved {len(moving)} household(s) to {edit.to_grid}",
        actor=actor,
        staff=staff,
    )


def _retired(info: drafts.DraftInfo) -> tuple[str, ...]:
    return tuple((info.metrics or {}).get("retired_codes", []))


def _split_merge(
    session: Any, info: drafts.DraftInfo, edit: Edit, band: Band, actor: str | None
) -> EditResult:
    codes = drafts.draft_codes(session, info.plan_id)
    if edit.op == "split":
        if not edit.grid or edit.grid not in codes:
            raise EditError(f"plan {info.plan_id} has no grid {edit.grid!r}")
        touched = [edit.grid]
    else:
        unknown = [c for c in edit.grids if c not in codes]
        if unknown or len(set(edit.grids)) < 2:
            raise EditError(
                "a merge needs two or more grids of the plan"
                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            )
        touched = sorted(set(edit.grids))
    before = drafts.read_touched(session, info.plan_id, touched)
    done = {"split": "split", "merge": "merged"}[edit.op]
    _refuse_locked(before, set(touched), f"it cannot be {done}")
    plan, hh = touched_plan(before)
    opts: dict[str, Any] = {
        "min_households": band.min,
        "max_households": band.max,
        "allow_out_of_band": edit.allow_out_of_band,
    }
    if edit.op == "split":
        taken = tuple(set(codes) - set(touched)) + _retired(info)
        if edit.line:
            new = rules.split_along(
                plan, hh, edit.grid or "", edit.line, retired_codes=taken, **opts
            )
        else:
            if edit.parts < 2:
                raise EditError("a split needs parts of 2 or more")
            new = rules.split_grid(
                plan, hh, edit.grid or "", parts=edit.parts, retired_codes=taken, **opts
            )
        made = sorted(set(new.grids["grid_code"]) - {edit.grid})
        text = f"split {edit.grid} into {edit.grid}, {', '.join(made)}"
    else:
        new = rules.merge_grids(plan, list(touched), **opts)
        text = new.report["edits"][-1]
    after = _after(before, new, band, actor, edit.allow_out_of_band)
    after, staff = _staffed(session, info, before, after)
    return _commit(
        session,
        info,
        before,
        after,
        kind="edit",
        op=edit.as_dict(),
        text=text,
        actor=actor,
        staff=staff,
    )


def _lock(
    session: Any, info: drafts.DraftInfo, edit: Edit, actor: str | None
) -> EditResult:
    codes = drafts.draft_codes(session, info.plan_id)
    unknown = [c for c in edit.grids if c not in codes]
    if unknown or not edit.grids:
        raise EditError(
            f"{edit.op} needs grids of the plan"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    before = drafts.read_touched(session, info.plan_id, sorted(set(edit.grids)))
    grids = before.grids.copy()
    grids["attrs"] = [
        {**(a or {}), "locked": edit.op == "lock"} for a in grids["attrs"]
    ]
    after = drafts.Touched(grids, before.households)
    return _commit(
        session,
        info,
        before,
        after,
        kind="edit",
        op=edit.as_dict(),
        text=f"{edit.op}ed {', '.join(sorted(set(edit.grids)))}",
        actor=actor,
    )


def _assign_worker(
    session: Any, info: drafts.DraftInfo, edit: Edit, actor: str | None
) -> EditResult:
    codes = drafts.draft_codes(session, info.plan_id)
    if not edit.grid or edit.grid not in codes:
        raise EditError(f"plan {info.plan_id} has no grid {edit.grid!r}")
    people = people_table(session, roles=["grid_worker", "grid_leader"])
    person = people[people["person_id"].astype(str) == str(edit.person_id)]
    if person.empty:
        raise EditError(f"there is no grid worker {edit.person_id!r}")
    busy = [
        c for c, v in codes.items() if v["worker"] == edit.person_id and c != edit.grid
    ]
    if busy:
        raise EditError(
            f"{edit.person_id} is already the worker of grid {busy[0]}; a worker looks "
            "after one grid (assign that grid someone else first)"
        )
    before = drafts.read_touched(session, info.plan_id, [edit.grid])
    grids = before.grids.copy()
    grids["worker_id"] = [str(edit.person_id)]
    after = drafts.Touched(grids, before.households)
    old = before.grids["worker_id"].iloc[0]
    return _commit(
        session,
        info,
        before,
        after,
        kind="edit",
        op=edit.as_dict(),
        text=f"{edit.person_id} is the worker of {edit.grid}"
        + ("" if pd.isna(old) else f" (was {old})"),
        actor=actor,
    )


def _rebalance(
    session: Any, info: drafts.DraftInfo, edit: Edit, band: Band, actor: str | None
) -> EditResult:
    from geo.gridding.rebalance import rebalance
    from geo.store.plans import area_frames, plan_frames

    codes = drafts.draft_codes(session, info.plan_id)
    locked = sorted(c for c, v in codes.items() if _locked(v["attrs"]))
    grids, assignments, _ = plan_frames(session, info.plan_id)
    _, households = area_frames(session, info.area_code)
    result = rebalance(
        grids,
        assignments,
        households,
        min_households=band.min,
        max_households=band.max,
        locked=locked,
        retired_codes=list(_retired(info)),
        redraw_accepted=True,
    )
    new = result.plan
    old_of = assignments.set_index("household_id")["grid_code"]
    new_of = new.assignments.set_index("household_id")["grid_code"]
    moved = new_of.index[new_of.reindex(old_of.index).to_numpy() != old_of.to_numpy()]
    old_geom = dict(zip(grids["grid_code"], grids.geometry.values, strict=True))
    ng = new.grids.to_crs(4326)
    changed = {
        str(c)
        for c, g in zip(ng["grid_code"], ng.geometry.values, strict=True)
        if c not in old_geom
        or not shapely.equals_exact(g, old_geom[c], tolerance=1e-12)
    }
    changed |= set(old_of.reindex(moved).astype(str)) | set(
        new_of.reindex(moved).astype(str)
    )
    gone = set(old_geom) - set(ng["grid_code"])
    touched_old = sorted((changed | gone) & set(old_geom))
    if not changed and not gone:
        raise EditError(
            "rebalance found nothing to change: every unlocked grid is in band or "
            "cannot be brought into it by the engine (see validate)"
        )
    before = drafts.read_touched(session, info.plan_id, touched_old)
    keep = ng["grid_code"].astype(str).isin(changed)
    sub = GridPlan(
        ng[keep].reset_index(drop=True),
        new.assignments[new.assignments["grid_code"].astype(str).isin(changed)],
        new.report,
    )
    after = _after(before, sub, band, actor, allow=False)
    after, staff = _staffed(session, info, before, after)
    return _commit(
        session,
        info,
        before,
        after,
        kind="edit",
        op=edit.as_dict(),
        text=(
            f"rebalanced the unlocked grids: {len(moved)} household(s) moved, "
            f"{len(changed | gone)} grid(s) changed"
            + (f", {len(locked)} locked kept" if locked else "")
        ),
        actor=actor,
        staff=staff,
    )


def _step(
    session: Any, plan_id: int, *, expected_version: int, actor: str | None, redo: bool
) -> EditResult:
    info = drafts.lock_draft(session, plan_id, expected_version=expected_version)
    target = drafts.undo_target(session, plan_id, redo=redo)
    if target is None:
        raise EditError(f"nothing to {'redo' if redo else 'undo'} in plan {plan_id}")
    src, dst = ("before", "after") if redo else ("after", "before")
    now = drafts.Touched.from_snapshot(target[src])
    then = drafts.Touched.from_snapshot(target[dst])
    current = drafts.read_touched(
        session, plan_id, now.grids["grid_code"].astype(str).tolist()
    )
    drafts.mark(session, target["id"], "done" if redo else "undone")
    word = "redid" if redo else "undid"
    what = (target["op"] or {}).get("op", "edit")
    res = _commit(
        session,
        info,
        current,
        then,
        kind="redo" if redo else "undo",
        op={"op": "redo" if redo else "undo", "edit_id": target["id"]},
        text=f"{word} the {what} (step {target['id']})",
        actor=actor,
        target_id=target["id"],
    )
    return res


def undo(
    session: Any, plan_id: int, *, expected_version: int, actor: str | None
) -> EditResult:
    """Revert the draft's last edit exactly (its touched grids as they were)."""
    return _step(
        session, plan_id, expected_version=expected_version, actor=actor, redo=False
    )


def redo(
    session: Any, plan_id: int, *, expected_version: int, actor: str | None
) -> EditResult:
    """Re-apply the edit undone last (a new edit after an undo drops the redo tail)."""
    return _step(
        session, plan_id, expected_version=expected_version, actor=actor, redo=True
    )


def history(session: Any, plan_id: int) -> list[dict[str, Any]]:
    """The draft's steps, oldest first (who, when, what, before/after counts)."""
    return drafts.history(session, plan_id)


def neighbours(session: Any, plan_id: int, grid: str) -> list[str]:
    """Codes of the grids sharing a boundary with ``grid`` in the plan."""
    return drafts.grid_neighbours(session, plan_id, grid)


class Draft:
    """A draft being redrawn from Python: each call is one edit, committed on return.

    It keeps the version it saw, so an edit made meanwhile by someone else (the
    viewer, the API) is refused with :class:`~geo.errors.StaleDraft` instead of
    being overwritten; :meth:`reload` takes the current version. Made by
    :meth:`geo.workspace.Workspace.draft`.

    Examples
    --------
    ::

        d = ws.draft(published_id)             # a new draft copied from the plan
        r = d.move(buildings=["B330803001001-0001"], to_grid="33080300100102")
        r.grids[0].households, r.problems
        d.undo(); d.redo(); d.validate().problems
        ws.publish(d.plan_id)
    """

    def __init__(self, engine: Any, plan_id: int, version: int, actor: str) -> None:
        self.engine = engine
        self.plan_id = plan_id
        self.version = version
        self.actor = actor
        #: every result of this object's edits, newest last (for displays)
        self.results: list[EditResult] = []

    def __repr__(self) -> str:
        return f"Draft(plan_id={self.plan_id}, version={self.version})"

    def _run(self, fn: Any) -> EditResult:
        from geo.store.db import session_scope

        with session_scope(self.engine) as s:
            res: EditResult = fn(s)
        self.version = res.version
        self.results.append(res)
        return res

    def edit(self, edit: Edit) -> EditResult:
        """Apply one :class:`Edit` (see :func:`apply_edit`)."""
        return self._run(
            lambda s: apply_edit(
                s, self.plan_id, edit, expected_version=self.version, actor=self.actor
            )
        )

    def move(
        self,
        *,
        to_grid: str,
        households: tuple[str, ...] | list[str] = (),
        buildings: tuple[str, ...] | list[str] = (),
        allow_out_of_band: bool = False,
    ) -> EditResult:
        """Move households or whole buildings into the neighbouring grid ``to_grid``."""
        return self.edit(
            Edit(
                "move",
                households=tuple(households),
                buildings=tuple(buildings),
                to_grid=to_grid,
                allow_out_of_band=allow_out_of_band,
            )
        )

    def split(
        self,
        grid: str,
        *,
        parts: int = 2,
        line: Any = None,
        allow_out_of_band: bool = False,
    ) -> EditResult:
        """Split ``grid`` into ``parts`` by the engine, or along ``line`` (lon/lat)."""
        pts = None if line is None else tuple(tuple(p) for p in line)
        return self.edit(
            Edit(
                "split",
                grid=grid,
                parts=parts,
                line=pts,  # type: ignore[arg-type]
                allow_out_of_band=allow_out_of_band,
            )
        )

    def merge(self, grids: list[str], *, allow_out_of_band: bool = False) -> EditResult:
        """Merge adjacent grids (the one with most households keeps its code)."""
        return self.edit(
            Edit("merge", grids=tuple(grids), allow_out_of_band=allow_out_of_band)
        )

    def lock(self, grids: list[str]) -> EditResult:
        """Lock grids: nothing can be taken from them, rebalance leaves them."""
        return self.edit(Edit("lock", grids=tuple(grids)))

    def unlock(self, grids: list[str]) -> EditResult:
        """Unlock grids."""
        return self.edit(Edit("unlock", grids=tuple(grids)))

    def rebalance(self) -> EditResult:
        """Bring the unlocked grids into band around the edits (the rebalance engine)."""
        return self.edit(Edit("rebalance"))

    def assign_worker(self, grid: str, person_id: str) -> EditResult:
        """Make ``person_id`` the grid worker of ``grid``."""
        return self.edit(Edit("assign_worker", grid=grid, person_id=person_id))

    def undo(self) -> EditResult:
        """Revert the last edit."""
        return self._run(
            lambda s: undo(
                s, self.plan_id, expected_version=self.version, actor=self.actor
            )
        )

    def redo(self) -> EditResult:
        """Re-apply the edit undone last."""
        return self._run(
            lambda s: redo(
                s, self.plan_id, expected_version=self.version, actor=self.actor
            )
        )

    def reload(self) -> int:
        """Take the draft's current version (after someone else edited it)."""
        from geo.store.db import session_scope

        with session_scope(self.engine) as s:
            self.version = drafts.lock_draft(
                s, self.plan_id, expected_version=None
            ).version
        return self.version

    def validate(self) -> Any:
        """Every rule the draft breaks (a :class:`geo.validation.Validation`)."""
        from geo.store.db import session_scope
        from geo.validation import validate

        with session_scope(self.engine) as s:
            return validate(s, self.plan_id)

    def history(self) -> pd.DataFrame:
        """The draft's steps as a table (seq, kind, state, actor, at, version, text)."""
        from geo.store.db import session_scope

        with session_scope(self.engine) as s:
            rows = history(s, self.plan_id)
        return pd.DataFrame(
            [
                {
                    "seq": r["seq"],
                    "kind": r["kind"],
                    "state": r["state"],
                    "actor": r["actor"],
                    "at": r["at"],
                    "version": r["version"],
                    "text": (r["summary"] or {}).get("text"),
                }
                for r in rows
            ]
        )

    def neighbours(self, grid: str) -> list[str]:
        """Codes of the grids sharing a boundary with ``grid``."""
        from geo.store.db import session_scope

        with session_scope(self.engine) as s:
            return neighbours(s, self.plan_id, grid)

    def border(
        self, grid: str, to_grid: str, *, limit: int = 10
    ) -> list[tuple[str, int]]:
        """The buildings of ``grid`` nearest ``to_grid`` (the first a planner would
        move there), nearest first, as ``(building id, households)``; a household
        without a building is ``h:<household id>``."""
        from geo.gridding.edits import border_units
        from geo.store.db import session_scope

        with session_scope(self.engine) as s:
            t = drafts.read_touched(s, self.plan_id, [grid, to_grid])
        geoms = dict(
            zip(t.grids["grid_code"].astype(str), t.grids.geometry, strict=True)
        )
        for c in (grid, to_grid):
            if c not in geoms:
                raise NotFound(f"plan {self.plan_id} has no grid {c}", what="grid")
        mine = t.households["grid_code"].astype(str) == grid
        own = t.households[mine]
        # a building already split between the two grids moves household by household
        shared = set(t.households.loc[~mine, "building_id"].dropna().astype(str))
        units = border_units(geoms[grid], geoms[to_grid], own)
        return [(u, n) for u, n in units if u not in shared][:limit]
