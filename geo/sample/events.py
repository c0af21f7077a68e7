"""A seeded year of matters (三事分流) for the households of the sample county.

:func:`generate_events` returns the rows of an events file (the columns of
:data:`geo.events.rows.ROW_COLUMNS`, as text), so the sample goes through the
same checks and the same set-based import as any file of past events
(:func:`geo.events.rows.prepare_event_rows`, :func:`geo.store.events.import_events`).
No database here.

The mix imitates what grid reports describe: most matters are 民事 settled by
the grid worker within a day or two, fewer are 村事 and 政事 which take days or
weeks; most are settled, rated (1–5, mostly 4–5) and closed; a few are still
open past their deadline (those escalate when loaded), a few were returned.
Some villages raise many more matters than others.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.events.catalogue import Category, read_catalogue
from geo.events.flow import TIERS
from geo.sample._county_households import _person_names, _phones

__all__ = ["CLASS_WEIGHTS", "generate_events"]

#: How often each catalogue class is raised (shares of all matters).
CLASS_WEIGHTS: Final = {
    "01": 0.22,  # 矛盾纠纷
    "02": 0.07,  # 社会治安
    "03": 0.15,  # 安全隐患
    "04": 0.21,  # 环境卫生
    "05": 0.18,  # 民生服务
    "06": 0.10,  # 基础设施
    "07": 0.05,  # 政策咨询
    "08": 0.02,  # 其他
}
#: Within a class, items usually settled lower are raised more often.
_TIER_WEIGHT: Final = {"grid": 5.0, "village": 1.2, "township": 0.5}
#: Median hours from report to settlement, per tier (log-normal around it).
_MEDIAN_HOURS: Final = {"grid": 20.0, "village": 90.0, "township": 230.0}
_DEADLINE_HOURS: Final = {"grid": 72, "village": 168, "township": 360}
#: Satisfaction 1..5 of rated matters settled in time (late ones rate lower).
_RATINGS: Final = np.array([0.02, 0.03, 0.09, 0.32, 0.54])
_RATINGS_LATE: Final = np.array([0.08, 0.12, 0.25, 0.33, 0.22])
_HOW: Final = ("居民反映", "网格员巡查发现", "电话报告", "群众来访", "微信群反映")
_COMMENTS_GOOD: Final = ("处理及时，满意", "网格员很负责", "问题已解决", "谢谢")
_COMMENTS_BAD: Final = ("处理太慢", "问题没有根本解决", "希望加强回访")
_CST: Final = dt.timezone(dt.timedelta(hours=8))


def generate_events(
    households: gpd.GeoDataFrame,
    *,
    end: dt.datetime,
    seed: int = 0,
    per_household: float = 0.2,
    catalogue: Sequence[Category] | None = None,
) -> pd.DataFrame:
    """A year of matters up to ``end`` at the given households, as an events table.

    Parameters
    ----------
    households
        Points with ``household_id``, ``address`` and ``area_code`` (the
        village/community), optional ``people`` (more people, more matters).
    end
        The moment the year ends (timezone-aware): matters are reported in
        ``[end - 365 days, end)`` and their state is the state at ``end``.
    seed
        The same ``(households, end, seed)`` always gives the same table.
    per_household
        Matters per household and year (0.2: 4,000 for 20,000 households).
    catalogue
        The categories to draw from (the shipped catalogue by default); each
        matter is sorted to its item's tier, sometimes one tier up or down.

    Returns
    -------
    pandas.DataFrame
        One row per matter with the columns of an events file (``event_id``,
        ``reported_at``, ``category``, ``description``, ``address``, ``lon``,
        ``lat``, ``resident_name``, ``resident_phone``, ``tier``, ``status``,
        ``settled_at``, ``closed_at``, ``satisfaction``, ``comment``), text
        like a CSV file, oldest first.

    Examples
    --------
    >>> from geo.sample import generate_county
    >>> c = generate_county(1_000, seed=1)
    >>> end = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    >>> ev = generate_events(c.households, end=end, seed=1)
    >>> len(ev), bool(ev["status"].isin(["settled", "evaluated", "closed"]).mean() > 0.8)
    (200, True)
    """
    if end.tzinfo is None:
        raise ValueError("end must be timezone-aware (e.g. datetime.now(UTC))")
    if per_household <= 0:
        raise ValueError(f"per_household must be positive, got {per_household!r}")
    if len(households) == 0:
        raise ValueError("households is empty: there is nowhere to place matters")
    missing = {"household_id", "address", "area_code"} - set(households.columns)
    if missing:
        raise ValueError(f"households need column(s) {sorted(missing)}")
    cats = list(catalogue) if catalogue is not None else read_catalogue()
    rng = np.random.default_rng([seed, 13])
    n = max(1, round(len(households) * per_household))

    # ---- where: households weighted by size, some villages raise many more
    area = households["area_code"].astype(str).to_numpy()
    villages, v_idx = np.unique(area, return_inverse=True)
    v_factor = rng.lognormal(0.0, 0.6, len(villages))
    people = (
        pd.to_numeric(households["people"], errors="coerce").fillna(2).to_numpy()
        if "people" in households.columns
        else np.full(len(households), 2.0)
    )
    w = v_factor[v_idx] * (0.5 + np.clip(people, 0, 8) / 4)
    at = rng.choice(len(households), n, p=w / w.sum())
    pts = households.geometry.to_crs(4326).to_numpy()[at]

    # ---- what: class by share, item by its usual tier
    cw = np.array(
        [
            CLASS_WEIGHTS.get(c.class_code, 0.02)
            * _TIER_WEIGHT[c.default_tier]
            / sum(
                _TIER_WEIGHT[d.default_tier]
                for d in cats
                if d.class_code == c.class_code
            )
            for c in cats
        ]
    )
    ci = rng.choice(len(cats), n, p=cw / cw.sum())
    tier_i = np.array([TIERS.index(cats[i].default_tier) for i in ci])
    move = rng.random(n)
    tier_i = np.where(move < 0.08, np.minimum(tier_i + 1, 2), tier_i)
    tier_i = np.where(move > 0.96, np.maximum(tier_i - 1, 0), tier_i)
    tiers = np.array(TIERS)[tier_i]

    # ---- when: over the year, more in summer, in the daytime (China time)
    day = rng.beta(1.05, 1.0, n) * 365  # a slight rise towards the end
    hour = np.clip(rng.normal(13.5, 3.2, n), 7, 21.9)
    start = end.astimezone(_CST).replace(hour=0, minute=0, second=0, microsecond=0)
    offs = np.floor(day) * 86400 + hour * 3600 + rng.integers(0, 60, n)
    offs = np.sort(offs - 365 * 86400)  # before the end's day, oldest first
    reported = np.array([start + dt.timedelta(seconds=float(s)) for s in offs])
    too_late = np.array([r >= end for r in reported])
    if too_late.any():  # the end's own day: keep them in [end - 1 year, end)
        reported[too_late] = [
            end - dt.timedelta(seconds=float(s))
            for s in rng.uniform(60, 6 * 3600, int(too_late.sum()))
        ]

    # ---- how long: log-normal around the tier's median; a few get stuck
    median = np.array([_MEDIAN_HOURS[t] for t in tiers])
    hours = median * rng.lognormal(0.0, 0.8, n)
    stuck = rng.random(n) < 0.03
    hours = np.where(stuck, hours * 8, hours)
    deadline_h = np.array(
        [
            cats[i].deadline_hours or _DEADLINE_HOURS[t]
            for i, t in zip(ci, tiers, strict=True)
        ]
    )
    late = hours > deadline_h
    settled_at = [
        r + dt.timedelta(hours=float(h)) for r, h in zip(reported, hours, strict=True)
    ]
    eval_after = rng.uniform(2, 72, n)
    close_after = rng.uniform(1, 48, n)
    rated = rng.random(n) < 0.9
    sat = np.where(
        late,
        rng.choice(5, n, p=_RATINGS_LATE) + 1,
        rng.choice(5, n, p=_RATINGS) + 1,
    )
    returned = rng.random(n) < 0.1  # of the open ones
    comment_pick = rng.random(n)

    status: list[str] = []
    out_settled: list[str | None] = []
    out_closed: list[str | None] = []
    out_sat: list[str | None] = []
    out_comment: list[str | None] = []
    for k in range(n):
        s_at = settled_at[k]
        st, s_txt, c_txt, r_txt, com = "", None, None, None, None
        if s_at < end:
            s_txt = _iso(s_at)
            e_at = s_at + dt.timedelta(hours=float(eval_after[k]))
            c_at = e_at + dt.timedelta(hours=float(close_after[k]))
            if e_at >= end:
                st = "settled"
            elif not rated[k]:
                # closed without the resident's rating (not reached)
                st, c_txt = "closed", _iso(e_at)
            else:
                r_txt = str(int(sat[k]))
                if comment_pick[k] < 0.35:
                    pool = _COMMENTS_BAD if sat[k] <= 3 else _COMMENTS_GOOD
                    com = pool[int(comment_pick[k] * 100) % len(pool)]
                if c_at >= end:
                    st = "evaluated"
                else:
                    st, c_txt = "closed", _iso(c_at)
        elif returned[k]:
            st = "returned"
        else:
            age_h = (end - reported[k]).total_seconds() / 3600
            st = "reported" if age_h < 4 else ("sorted" if age_h < 20 else "in_hand")
        status.append(st)
        out_settled.append(s_txt)
        out_closed.append(c_txt)
        out_sat.append(r_txt)
        out_comment.append(com)
    # a matter still waiting to be sorted is with the grid worker (tier grid)
    tiers = np.where(np.array(status) == "reported", "grid", tiers)

    resident = rng.random(n) < 0.45
    n_res = int(resident.sum())
    names = iter(_person_names(rng, n_res))
    phones = iter(_phones(rng, np.zeros(n_res)))
    how = rng.integers(0, len(_HOW), n)
    hh = households.iloc[at]
    return pd.DataFrame(
        {
            "event_id": [f"SAMPLE-{seed}-{k + 1:06d}" for k in range(n)],
            "reported_at": [_iso(r) for r in reported],
            "category": [cats[i].code for i in ci],
            "description": [
                f"{_HOW[h]}：{cats[i].name}" for h, i in zip(how, ci, strict=True)
            ],
            "address": hh["address"].astype(str).to_numpy(),
            "lon": [f"{x:.7f}" for x in shapely.get_x(pts)],
            "lat": [f"{y:.7f}" for y in shapely.get_y(pts)],
            "resident_name": [next(names) if r else None for r in resident],
            "resident_phone": [next(phones) if r else None for r in resident],
            "tier": tiers,
            "status": status,
            "settled_at": out_settled,
            "closed_at": out_closed,
            "satisfaction": out_sat,
            "comment": out_comment,
        }
    )


def _iso(t: dt.datetime) -> str:
    return t.astimezone(_CST).isoformat(timespec="seconds")
