"""Balance map: grids shaded by household count against the band, exceptions flagged."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.plan import GridPlan
from maps.basemap import Basemap, Context, resolve_basemap
from maps.coverage import label_level
from maps.data import plan_parts, rep_points
from maps.layers import (
    GridLayer,
    Labels,
    Legend,
    add_context,
    area_names,
    base_map,
    label_priority,
    short_labels,
    swatch,
    to_geojson,
)

__all__ = ["balance_bins", "balance_map", "grid_exceptions"]

#: Under the band: blues (dark far under); over it: reds (dark far over).
_BELOW_FAR, _BELOW, _ABOVE, _ABOVE_FAR = "#2166ac", "#92c5de", "#f4a582", "#b2182b"
#: In the band: a diverging ramp, green at the low end, light at the target, purple
#: at the high end (PRGn), so 200 and 300 never look alike, nor like out of band.
_IN_BAND = ("#1b7837", "#a6dba0", "#f7f7f7", "#c2a5cf", "#762a83")
_FLAG = "#b00020"
_NOTE = "#e08214"


def balance_bins(
    lo: float, hi: float, *, target: float | None = None
) -> list[tuple[float, float, str, str]]:
    """Shading bins ``(from, to, colour, label)`` around the band ``lo``–``hi``.

    Out of band: two blues below (more than 25 % under ``lo``, and under ``lo``)
    and two reds above. In band: five steps of a diverging ramp, light at
    ``target`` (default the middle of the band) and darkest, in two different
    hues, at the two ends.

    Examples
    --------
    >>> [b[3] for b in balance_bins(200, 300)]
    ['< 150', '150–199', '200–219', '220–239', '240–259', '260–279', '280–300', '301–375', '> 375']
    >>> len({b[2] for b in balance_bins(200, 300)})  # nine distinct colours
    9
    >>> [b[3] for b in balance_bins(200, 300, target=220)][2:7]
    ['200–207', '208–215', '216–235', '236–267', '268–300']
    """
    mid = (lo + hi) / 2 if target is None else float(min(max(target, lo), hi))
    # the light step centred on the target, two steps on each side of it
    w_lo, w_hi = (mid - lo) / 2.5, (hi - mid) / 2.5
    edges = [lo, lo + w_lo, lo + 2 * w_lo, mid + w_hi / 2, hi - w_hi, hi + 1e-9]
    far_lo, far_hi = lo * 0.75, hi * 1.25
    fmt = lambda v: f"{v:.0f}"  # noqa: E731
    out = [
        (-np.inf, far_lo, _BELOW_FAR, f"< {fmt(far_lo)}"),
        (far_lo, lo, _BELOW, f"{fmt(far_lo)}–{fmt(np.ceil(lo) - 1)}"),
    ]
    for k, colour in enumerate(_IN_BAND):
        a, b = edges[k], edges[k + 1]
        top = hi if k == len(_IN_BAND) - 1 else np.ceil(b) - 1
        out.append((a, b, colour, f"{fmt(np.ceil(a))}–{fmt(top)}"))
    out += [
        (hi + 1e-9, far_hi + 1e-9, _ABOVE, f"{fmt(hi + 1)}–{fmt(far_hi)}"),
        (far_hi + 1e-9, np.inf, _ABOVE_FAR, f"> {fmt(far_hi)}"),
    ]
    return out


def _shade(value: float, bins: list[tuple[float, float, str, str]]) -> str:
    for lo, hi, colour, _ in bins:
        if lo <= value < hi:
            return colour
    return bins[-1][2]


def grid_exceptions(
    grids: gpd.GeoDataFrame, report: Mapping[str, Any] | None
) -> tuple[list[list[str]], list[list[str]]]:
    """``(reasons, notes)`` per grid.

    ``reasons``: the grid's ``exception`` column and the report's exceptions that
    name it (``grid_code``) — the grid is flagged. ``notes``: report exceptions
    about one of its areas without naming a grid (a merged village, a part
    joined across a barrier, a split building) — shown, not flagged.
    """
    reasons: list[list[str]] = [[] for _ in range(len(grids))]
    notes: list[list[str]] = [[] for _ in range(len(grids))]
    if "exception" in grids.columns:
        for i, e in enumerate(grids["exception"]):
            if isinstance(e, str) and e:
                reasons[i].append(e)
    by_code = {c: i for i, c in enumerate(grids["grid_code"])}
    areas = [
        set(str(a).split(";")) if isinstance(a, str) else set()
        for a in (grids["areas"] if "areas" in grids.columns else [None] * len(grids))
    ]
    if "area_code" in grids.columns:
        for s, a in zip(areas, grids["area_code"], strict=True):
            if isinstance(a, str):
                s.add(a)
    for ex in (report or {}).get("exceptions", []) or []:
        reason = str(ex.get("reason") or ex.get("kind") or "")
        code = ex.get("grid_code")
        if code is not None and str(code) in by_code:
            targets, into = [by_code[str(code)]], reasons
        elif ex.get("area_code") is not None:
            targets = [i for i, s in enumerate(areas) if str(ex["area_code"]) in s]
            into = notes
        else:
            targets, into = [], notes
        for i in targets:
            if reason and reason not in into[i]:
                into[i].append(reason)
    return reasons, notes


def balance_map(
    plan_or_grids: GridPlan | gpd.GeoDataFrame,
    *,
    report: Mapping[str, Any] | None = None,
    min_households: float | None = None,
    max_households: float | None = None,
    count: str = "households",
    areas: gpd.GeoDataFrame | None = None,
    basemap: str | Mapping[str, Any] | Basemap | None = None,
    context: Context | None = None,
    label_zoom: int | None = None,
    title: str = "网格规模",
    width: str | int = "100%",
    height: str | int = "100%",
) -> folium.Map:
    """Grids shaded by household count against the band; exceptions flagged.

    Grids under the band are blue, over it red, and in band on a diverging
    ramp (green at the low end, light at the target, purple at the high end,
    so that 200 and 300 never share a colour); grids out of band
    or with an exception (``grids.exception`` or the plan report's
    ``exceptions``, matched by grid code or area) get a thick dashed red
    outline, a ``!`` in their label and their reasons in the popup.

    Parameters
    ----------
    plan_or_grids
        A :class:`~geo.gridding.generate.GridPlan` or grids with ``grid_code`` and the
        ``count`` column.
    report
        A plan report (default: the plan's).
    min_households, max_households
        The band (default: the report's params, else 200–300).
    count
        Column to shade by (``households``, or ``load`` for weighted plans).
    areas
        Admin areas (``code``, ``name``): their names label the grids
        (``中渡村 3``: the village and the grid's number in it; the full code is
        in the popup). Without them a label is the village code's last digits
        and the grid's number.
    basemap
        As for :func:`maps.coverage_map` (default: plain background, offline).
    context
        Offline context under the grids (:class:`maps.Context`): admin area
        outlines and building footprints from the database, with or without a
        basemap.
    label_zoom
        Zoom from which grid codes are shown (default: by the number of grids).
    title
        Heading of the legend.
    width, height
        Size of the map (CSS, or pixels as an int).

    Returns
    -------
    folium.Map
        Displays inline in a notebook; save with :func:`maps.save_html`.

    Examples
    --------
    >>> from geo.sample import generate_county
    >>> from geo.gridding.generate import generate_grids
    >>> c = generate_county(2_000, seed=1)
    >>> m = balance_map(generate_grids(c.households, c.areas))
    >>> type(m).__name__
    'OfflineMap'
    """
    bm = resolve_basemap(basemap)
    grids, _, plan_report = plan_parts(plan_or_grids)
    rep = report if report is not None else plan_report
    params = (rep or {}).get("params", {}) if rep else {}
    lo = float(
        min_households
        if min_households is not None
        else params.get("min_households", 200)
    )
    hi = float(
        max_households
        if max_households is not None
        else params.get("max_households", 300)
    )
    if count not in grids.columns:
        raise ValueError(f"grids have no {count!r} column to shade by")
    values = pd.to_numeric(grids[count], errors="coerce").fillna(0).to_numpy()
    tgt = params.get("target")
    target = float(tgt) if isinstance(tgt, int | float) and lo <= tgt <= hi else None
    bins = balance_bins(lo, hi, target=target)
    target = (lo + hi) / 2 if target is None else target
    reasons, notes = grid_exceptions(grids, rep)
    shown = bm.shift_geoms(np.asarray(grids.geometry.values, dtype=object))
    reps = rep_points(shown)
    area_col = (
        grids["area_code"] if "area_code" in grids.columns else [None] * len(grids)
    )
    brief = short_labels(grids["grid_code"], area_col, area_names(areas))
    priority = label_priority(shown)

    props, table, labels = [], [], []
    n_out = n_flag = 0
    n_note = sum(bool(n) for n in notes)
    for i, code in enumerate(grids["grid_code"]):
        v = float(values[i])
        out_of_band = not (lo <= v <= hi)
        why = list(reasons[i])
        if out_of_band:
            n_out += 1
            side = "低于" if v < lo else "高于"
            why.insert(0, f"{v:g} 户，{side}标准 {lo:g}–{hi:g}")
        flagged = bool(why)
        n_flag += flagged
        info = (
            f"<tr><th>网格</th><td>{escape(code)}</td></tr>"
            f"<tr><th>户数</th><td>{v:g}（标准 {lo:g}–{hi:g}）</td></tr>"
        )
        if why:
            info += "".join(
                f'<tr><th class="gm-flag">例外</th><td class="gm-flag">{escape(w)}</td></tr>'
                for w in why
            )
        info += "".join(f"<tr><th>说明</th><td>{escape(w)}</td></tr>" for w in notes[i])
        props.append(
            {
                "grid_code": code,
                "households": v,
                "in_band": not out_of_band,
                "flagged": flagged,
                "reasons": why,
                "notes": notes[i],
                "fill": _shade(v, bins),
                "fo": 0.7,
                "line": _FLAG if flagged else (_NOTE if notes[i] else "#4d4d4d"),
                "w": 3 if flagged else (2 if notes[i] else 1),
                "dash": "6 4" if flagged else ("1 4" if notes[i] else None),
                "tip": f"{brief[i]} · 网格 {code} · {v:g} 户"
                + (" · 例外" if flagged else ""),
                "pop": f'<div class="gm-pop"><table>{info}</table></div>',
            }
        )
        table.append(
            [code, _shade(v, bins), info, round(reps[i].y, 6), round(reps[i].x, 6)]
        )
        labels.append(
            [
                round(reps[i].y, 6),
                round(reps[i].x, 6),
                brief[i] + (" !" if flagged else ""),
                "gm-flag" if flagged else "",
                f"{v:g} 户",
                # flagged grids keep their labels first, then the larger grids
                priority[i] + (1e12 if flagged else 0),
            ]
        )

    m = base_map(
        _bounds(shown),
        bm,
        config={
            "grids": table,
            "members": [],
            "houseZoom": 99,
            "labelZoom": (
                lz := label_level(len(grids)) if label_zoom is None else label_zoom
            ),
            "labelDetailZoom": lz,
        },
        width=width,
        height=height,
    )
    add_context(m, context, bm)
    flagged_idx = [i for i, p in enumerate(props) if p["flagged"]]
    ok_idx = [i for i, p in enumerate(props) if not p["flagged"]]
    for name, idx in (("标准内网格", ok_idx), ("例外/超出标准的网格", flagged_idx)):
        fg = folium.FeatureGroup(name=f"{name}（{len(idx)}）", show=True)
        if idx:
            GridLayer(to_geojson(shown[idx], [props[i] for i in idx])).add_to(fg)
            Labels([labels[i] for i in idx]).add_to(fg)
        fg.add_to(m)
    folium.LayerControl(collapsed=False, position="topright").add_to(m)
    legend = [
        f"<h4>{escape(title)}</h4>",
        f"<div>{len(grids)} 个网格 · 标准 {lo:g}–{hi:g} 户</div>",
        '<div class="gm-note">低于标准（蓝）· 标准内（绿—浅—紫，'
        f"{target:g} 户最浅）· 高于标准（红）</div>",
        *[
            swatch(c, f"{label} 户" + (" · 标准内" if lo <= a <= hi else ""))
            for a, _, c, label in bins
        ],
        swatch(
            _FLAG,
            f"例外或超出标准：{n_flag} 个（超出标准 {n_out} 个）",
            kind="line",
            extra="dashed",
        ),
        swatch(
            _NOTE,
            f"所在村有说明（合并、跨越河流道路等）：{n_note} 个",
            kind="line",
            extra="dotted",
        ),
        '<div class="gm-note">标注：村/社区 + 网格序号与户数（完整编码见弹窗）；'
        "重叠的标注自动隐藏</div>",
        '<div class="gm-note">点击网格查看原因</div>',
    ]
    if bm.gcj02:
        legend.append(
            '<div class="gm-note">底图为 GCJ-02，图层已按 GCJ-02 偏移显示</div>'
        )
    Legend("".join(legend)).add_to(m)
    return m


def _bounds(geoms: np.ndarray) -> tuple[float, float, float, float]:
    b = shapely.total_bounds(geoms) if len(geoms) else (118.8, 28.9, 119.0, 29.1)
    return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
