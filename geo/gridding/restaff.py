"""Staff carried through a plan change: workers stay with their grids, members with their households."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import shapely

__all__ = ["StaffChurn", "carry_staff"]


@dataclass(frozen=True)
class StaffChurn:
    """What a plan change did to the staff (counted over the households it touched).

    Attributes
    ----------
    members_kept
        Households that changed grid and kept their covering party member.
    members_changed
        Households that changed grid and got another party member.
    members_lost
        Households left with no party member (no member of their new grid had room).
    workers_kept, workers_freed, workers_assigned
        Grid workers staying on a surviving grid; freed by a retired grid; put on
        a new grid.
    unstaffed_grids
        New or surviving grids with no worker (``assign_worker`` them).
    """

    members_kept: int = 0
    members_changed: int = 0
    members_lost: int = 0
    workers_kept: int = 0
    workers_freed: list[str] = field(default_factory=list)
    workers_assigned: dict[str, str] = field(default_factory=dict)
    unstaffed_grids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {
            "members_kept": self.members_kept,
            "members_changed": self.members_changed,
            "members_lost": self.members_lost,
            "workers_kept": self.workers_kept,
            "workers_freed": list(self.workers_freed),
            "workers_assigned": dict(self.workers_assigned),
            "unstaffed_grids": list(self.unstaffed_grids),
        }


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def carry_staff(
    before_grids: pd.DataFrame,
    before_households: pd.DataFrame,
    after_grids: pd.DataFrame,
    after_households: pd.DataFrame,
    people: pd.DataFrame,
    *,
    busy_workers: set[str] | frozenset[str] = frozenset(),
    member_cap: int = 30,
    origin: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, StaffChurn]:
    """Staff the grids and households a change touched, keeping what still holds.

    A grid whose code survives keeps its worker; a new grid gets a grid worker
    of its area who is on no grid (``busy_workers`` and the touched grids'
    workers excluded), or none. A household that stays in its grid keeps its
    party member. A household that changed grid keeps its member when the
    member's other households are (mostly) in the same new grid; otherwise it
    takes the member of the nearest household of its new grid whose member
    covers fewer than ``member_cap`` households, or none. Nothing outside the
    touched households changes, so a redraw of one street cannot reshuffle the
    party-member links of a county.

    Parameters
    ----------
    before_grids, after_grids
        The touched grids before and after: ``grid_code``, ``area_code``,
        ``worker_id`` (before; person external id or None).
    before_households, after_households
        The households of those grids: ``household_id``, ``grid_code``,
        ``member_id`` (before), points as ``geometry`` (after).
    people
        ``person_id``, ``role``, ``area_code``.
    busy_workers
        Workers on grids of the plan that the change did not touch.
    member_cap
        Most households one party member covers (the micro-grid band's top).
    origin
        ``grid_code, member_id`` by ``household_id`` in the plan the draft
        started from: a household back in its original grid gets its original
        member back (when that member still covers that grid), so a move and
        its reversal in two edits change no link.

    Returns
    -------
    tuple
        ``(after_grids with worker_id, after_households with member_id, churn)``.

    Examples
    --------
    >>> import pandas as pd, shapely
    >>> bg = pd.DataFrame({"grid_code": ["A", "B"], "area_code": "V", "worker_id": ["w1", "w2"]})
    >>> bh = pd.DataFrame({"household_id": ["h1", "h2", "h3"], "grid_code": ["A", "A", "B"],
    ...                    "member_id": ["m1", "m1", "m2"]})
    >>> ag = bg[["grid_code", "area_code"]]
    >>> ah = pd.DataFrame({"household_id": ["h1", "h2", "h3"], "grid_code": ["A", "B", "B"],
    ...                    "geometry": shapely.points([0, 1, 1.1], [0, 0, 0])})
    >>> people = pd.DataFrame({"person_id": ["w1", "w2", "m1", "m2"],
    ...     "role": ["grid_worker"] * 2 + ["party_member"] * 2, "area_code": "V"})
    >>> g, h, churn = carry_staff(bg, bh, ag, ah, people)
    >>> g["worker_id"].tolist(), h["member_id"].tolist()
    (['w1', 'w2'], ['m1', 'm2', 'm2'])
    >>> churn.members_changed, churn.members_kept
    (1, 0)
    """
    old_worker = {
        str(c): (None if _missing(w) else str(w))
        for c, w in zip(
            before_grids["grid_code"], before_grids["worker_id"], strict=True
        )
    }
    grids = after_grids.copy()
    surviving = [str(c) for c in grids["grid_code"] if str(c) in old_worker]
    kept_workers = {old_worker[c] for c in surviving if old_worker[c] is not None}
    freed = sorted(
        w
        for c, w in old_worker.items()
        if w is not None and w not in kept_workers and c not in set(surviving)
    )
    taken = set(busy_workers) | kept_workers
    pool = people[people["role"] == "grid_worker"]
    by_area: dict[str, list[str]] = {
        str(a): [str(p) for p in g["person_id"]] for a, g in pool.groupby("area_code")
    }
    workers: list[str | None] = []
    assigned: dict[str, str] = {}
    unstaffed: list[str] = []
    for code, area in zip(grids["grid_code"], grids["area_code"], strict=True):
        code = str(code)
        if code in old_worker and old_worker[code] is not None:
            workers.append(old_worker[code])
            continue
        pick = next((p for p in by_area.get(str(area), []) if p not in taken), None)
        if pick is None:
            unstaffed.append(code)
        else:
            taken.add(pick)
            assigned[code] = pick
        workers.append(pick)
    grids["worker_id"] = workers

    old = before_households.set_index(before_households["household_id"].astype(str))
    hh = after_households.copy()
    ids = hh["household_id"].astype(str).to_numpy()
    new_grid = hh["grid_code"].astype(str).to_numpy()
    old_grid = old["grid_code"].astype(str).reindex(ids).to_numpy()
    old_member = old["member_id"].reindex(ids).to_numpy(dtype=object)
    old_member = np.array(
        [None if _missing(m) else str(m) for m in old_member], dtype=object
    )
    stays = old_grid == new_grid
    member = old_member.copy()
    # the grid each member's households are mostly in after the change
    home: dict[str, str] = {}
    votes: dict[str, Counter[str]] = {}
    for m, g in zip(old_member, new_grid, strict=True):
        if m is not None:
            votes.setdefault(m, Counter())[g] += 1
    for m, c in votes.items():
        home[m] = c.most_common(1)[0][0]
    kept = changed = lost = 0
    load: Counter[str] = Counter(m for m in old_member if m is not None)
    geoms = np.asarray(
        hh.geometry.values if hasattr(hh, "geometry") else hh["geometry"]
    )
    first = origin.reindex(ids) if origin is not None and len(origin) else None
    for i in np.flatnonzero(~stays):
        m = member[i]
        if first is not None:
            og, om = first["grid_code"].iloc[i], first["member_id"].iloc[i]
            if (
                not _missing(om)
                and str(og) == new_grid[i]
                and home.get(str(om), str(og)) == new_grid[i]
                and (str(om) == m or load[str(om)] < member_cap)
            ):
                if m is not None and m != str(om):
                    load[m] -= 1
                    load[str(om)] += 1
                member[i] = str(om)
                kept += 1
                continue
        if m is not None and home.get(m) == new_grid[i]:
            kept += 1
            continue
        if m is not None:
            load[m] -= 1
        # members already covering households of the new grid, nearest first
        same = np.flatnonzero(new_grid == new_grid[i])
        cand = np.array(
            [
                j
                for j in same
                if j != i
                and member[j] is not None
                and home.get(member[j]) == new_grid[i]
                and load[member[j]] < member_cap
            ],
            dtype=np.int64,
        )
        pick = None
        if len(cand):
            d = shapely.distance(geoms[cand], geoms[i])
            pick = member[cand[int(np.argmin(d))]]
        member[i] = pick
        if pick is None:
            lost += 1
        else:
            load[pick] += 1
            changed += 1 if pick != old_member[i] else 0
            kept += 1 if pick == old_member[i] else 0
    hh["member_id"] = member
    churn = StaffChurn(
        members_kept=kept,
        members_changed=changed,
        members_lost=lost,
        workers_kept=len([c for c in surviving if old_worker[c] is not None]),
        workers_freed=freed,
        workers_assigned=assigned,
        unstaffed_grids=unstaffed,
    )
    return grids, hh, churn
