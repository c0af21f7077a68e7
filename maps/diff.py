"""Diff map between two plans: households that change grid and boundaries that moved."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.crs import STORAGE_CRS
from geo.gridding.diff import diff_plans
from geo.plan import GridPlan
from maps.basemap import Basemap, Context, resolve_basemap
from maps.coverage import household_zoom, label_level
from maps.data import plan_parts, rep_points
from maps.layers import (
    GridLayer,
    HouseholdLayer,
    Labels,
    Legend,
    LineLayer,
    add_context,
    base_map,
    encode_households,
    grid_colours,
    label_priority,
    short_labels,
    swatch,
    to_geojson,
)

__all__ = ["diff_map"]

_METRES_PER_DEGREE = 111_320.0

_ADDED, _REMOVED = "#d62728", "#7f7f7f"

#: Households by kind of change (``diff_plans``' ``change``): one layer each.
_KINDS = (
    ("moved", "变更网格的住户"),
    ("added", "新增住户"),
    ("removed", "移除住户"),
)


def _parts(
    x: GridPlan | gpd.GeoDataFrame,
    asg: pd.DataFrame | None,
    households: gpd.GeoDataFrame,
):
    grids, assignments, _ = plan_parts(x, assignments=asg, households=households)
    if assignments is None:
        raise ValueError("assignments are needed")
    return grids, assignments


def diff_map(
    old_grids: GridPlan | gpd.GeoDataFrame,
    old_assignments: pd.DataFrame | None,
    new_grids: GridPlan | gpd.GeoDataFrame,
    new_assignments: pd.DataFrame | None,
    households: gpd.GeoDataFrame,
    *,
    basemap: str | Mapping[str, Any] | Basemap | None = None,
    context: Context | None = None,
    tol_m: float = 1.0,
    house_zoom: int | None = None,
    label_zoom: int | None = None,
    title: str = "网格调整对比",
    width: str | int = "100%",
    height: str | int = "100%",
) -> folium.Map:
    """Map what changes from one plan to another.

    The new grids are drawn (changed ones filled, unchanged ones pale), with the
    boundaries that were added (red) and removed (grey dashed), and the
    households whose grid changes as red-ringed points filled with their new
    grid's colour; their popup shows the address, the new grid and the old one.
    Households in one plan only (added, removed) have layers of their own; each
    count in the legend is the number of households its layer draws.
    Pure over the two plans (see :func:`geo.gridding.diff.diff_plans`); plans may be
    :class:`~geo.gridding.generate.GridPlan` objects (assignments then ``None``).

    Parameters
    ----------
    old_grids, new_grids
        The two plans: :class:`~geo.plan.GridPlan` objects, or grids
        (``grid_code``, optional ``area_code``) with their assignments.
    old_assignments, new_assignments
        ``household_id, grid_code``; ``None`` for a plan's own (or, for bare
        grids, computed by containment).
    households
        Points with ``household_id`` and optional ``address`` (shown in the
        popups of the households that change grid).
    basemap
        As for :func:`maps.coverage_map` (default: plain background, offline).
    context
        Offline context under the grids (:class:`maps.Context`): admin area
        outlines and building footprints from the database, with or without a
        basemap.
    tol_m
        Boundary lines closer than this many metres count as unchanged.
    house_zoom
        Zoom from which households are drawn (default: by their number).
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

    Raises
    ------
    ValueError
        A plan's assignments are missing and cannot be computed.

    Examples
    --------
    >>> from geo.sample import generate_county
    >>> from geo.gridding.diff import diff_plans
    >>> from geo.gridding.generate import generate_grids
    >>> c = generate_county(2_000, seed=1)
    >>> a = generate_grids(c.households, c.areas)
    >>> b = generate_grids(c.households, c.areas, min_households=150, max_households=250)
    >>> m = diff_map(a, None, b, None, c.households)
    >>> type(m).__name__
    'OfflineMap'

    The legend counts the households that change grid, as its layer draws them
    (households added or removed get layers and counts of their own):

    >>> moved = diff_plans(a.grids, a.assignments, b.grids, b.assignments)
    >>> n = int((moved.households["change"] == "moved").sum())
    >>> n > 0, f"变更网格的住户 {n:,} 户" in m.get_root().render()
    (True, True)
    """
    bm = resolve_basemap(basemap)
    og, oa = _parts(old_grids, old_assignments, households)
    ng, na = _parts(new_grids, new_assignments, households)
    d = diff_plans(og, oa, ng, na, tol_m=tol_m)

    changed = set(d.changed_grids)
    colours = grid_colours(ng.geometry.values)
    shown = bm.shift_geoms(np.asarray(ng.geometry.values, dtype=object))
    reps = rep_points(shown)
    counts = na.groupby("grid_code").size()
    moved_in = d.households.groupby("new_grid_code").size()
    table: list[list[Any]] = []
    props = []
    for i, code in enumerate(ng["grid_code"]):
        n_in = int(moved_in.get(code, 0))
        info = (
            f"<tr><th>网格</th><td>{escape(code)}"
            + ("（变动）" if code in changed else "")
            + f"</td></tr><tr><th>户数</th><td>{int(counts.get(code, 0))}</td></tr>"
            + f"<tr><th>调入住户</th><td>{n_in}</td></tr>"
        )
        table.append([code, colours[i], info, round(reps[i].y, 6), round(reps[i].x, 6)])
        props.append(
            {
                "grid_code": code,
                "changed": code in changed,
                "fill": colours[i] if code in changed else "#eeeeee",
                "fo": 0.45 if code in changed else 0.3,
                "line": "#9a9a9a",
                "tip": f"网格 {code}" + (" · 变动" if code in changed else ""),
                "pop": f'<div class="gm-pop"><table>{info}</table></div>',
            }
        )
    idx = {c: i for i, c in enumerate(ng["grid_code"])}
    for code in sorted(set(og["grid_code"]) - set(idx)):
        idx[code] = len(table)
        table.append(
            [
                code,
                "#999999",
                f"<tr><th>原网格</th><td>{escape(code)}（已撤销）</td></tr>",
                None,
                None,
            ]
        )

    hh = households.to_crs(STORAGE_CRS)
    hh = pd.DataFrame(
        {
            "household_id": hh["household_id"].astype(str).to_numpy(),
            "address": hh["address"].astype(str).to_numpy()
            if "address" in hh.columns
            else hh["household_id"].astype(str).to_numpy(),
            "lon": shapely.get_x(hh.geometry.values),
            "lat": shapely.get_y(hh.geometry.values),
        }
    )
    mv = d.households.merge(hh, on="household_id", how="inner")
    mv["g"] = mv["new_grid_code"].map(idx).fillna(-1).astype(int)
    mv["o"] = mv["old_grid_code"].map(idx).fillna(-1).astype(int)
    mv["lon"], mv["lat"] = bm.shift_xy(mv["lon"].to_numpy(), mv["lat"].to_numpy())
    area = (
        ng["area_code"].astype(str).to_numpy()
        if "area_code" in ng.columns
        else np.full(len(ng), "", dtype=object)
    )
    mv["group"] = np.where(
        mv["g"].between(0, len(ng) - 1),
        area[mv["g"].clip(0, max(len(ng) - 1, 0))],
        "__none__",
    )

    hz = household_zoom(len(mv)) if house_zoom is None else int(house_zoom)
    b = shapely.total_bounds(shown) if len(shown) else (118.8, 28.9, 119.0, 29.1)
    m = base_map(
        (float(b[0]), float(b[1]), float(b[2]), float(b[3])),
        bm,
        config={
            "grids": table,
            "members": [],
            "houseZoom": hz,
            "labelZoom": label_level(len(ng)) if label_zoom is None else label_zoom,
        },
        width=width,
        height=height,
    )
    add_context(m, context, bm)
    fg = folium.FeatureGroup(
        name=f"调整后网格（{len(ng)}，变动 {len(changed)}）", show=True
    )
    GridLayer(to_geojson(shown, props)).add_to(fg)
    brief = short_labels(
        ng["grid_code"],
        ng["area_code"] if "area_code" in ng.columns else [None] * len(ng),
    )
    priority = label_priority(shown)
    Labels(
        [
            [
                t[3],
                t[4],
                brief[i],
                "",
                "",
                priority[i] + (1e12 if t[0] in changed else 0),
            ]
            for i, t in enumerate(table[: len(ng)])
        ]
    ).add_to(fg)
    fg.add_to(m)
    for name, geom, colour, dash, w in (
        ("取消的原边界", d.removed_boundaries, _REMOVED, "5 5", 2.5),
        ("新划的边界", d.added_boundaries, _ADDED, None, 3),
    ):
        fg = folium.FeatureGroup(
            name=f"{name}（{geom.length * _METRES_PER_DEGREE / 1000:.1f} km）",
            show=True,
        )
        if not geom.is_empty:
            LineLayer(
                to_geojson(
                    [bm.shift_geoms(geom)], [{"line": colour, "w": w, "dash": dash}]
                )
            ).add_to(fg)
        fg.add_to(m)
    # one layer per kind of change; the legend counts what each layer draws
    drawn: dict[str, int] = {}
    for kind, label in _KINDS:
        part_all = mv[mv["change"] == kind]
        drawn[kind] = len(part_all)
        if kind != "moved" and part_all.empty:
            continue
        fg = folium.FeatureGroup(name=f"{label}（{len(part_all):,} 户）", show=True)
        for _, part in part_all.groupby("group", sort=True):
            HouseholdLayer(
                encode_households(
                    part["lon"].to_numpy(),
                    part["lat"].to_numpy(),
                    part["address"].to_numpy(),
                    part["g"].to_numpy(),
                    old_grid=part["o"].to_numpy(),
                )
            ).add_to(fg)
        fg.add_to(m)
    listed = d.households["change"].value_counts()
    unplaced = {k: int(listed.get(k, 0)) - drawn[k] for k, _ in _KINDS}
    folium.LayerControl(collapsed=False, position="topright").add_to(m)
    legend = [
        f"<h4>{escape(title)}</h4>",
        f"<div>调整后 {len(ng)} 个网格（原 {len(og)} 个），变动 {len(changed)} 个</div>",
        *[
            f"<div>{label} {drawn[kind]:,} 户"
            + (f"（另 {unplaced[kind]:,} 户无位置，未画出）" if unplaced[kind] else "")
            + "</div>"
            for kind, label in _KINDS
            if kind == "moved" or drawn[kind] or unplaced[kind]
        ],
        f"<div>未变 {d.unchanged_households:,} 户</div>",
        swatch(_ADDED, "新划的边界", kind="line"),
        swatch(_REMOVED, "取消的原边界", kind="line", extra="dashed"),
        swatch("#8dd3c7", "变更网格的住户（填充 = 新网格）", kind="dot", extra=_ADDED),
        swatch("#eeeeee", "未变动的网格"),
    ]
    if hz > 0:
        legend.append(f'<div class="gm-zoom-hint">放大到 {hz} 级以上显示住户</div>')
    if bm.gcj02:
        legend.append(
            '<div class="gm-note">底图为 GCJ-02，图层已按 GCJ-02 偏移显示</div>'
        )
    Legend("".join(legend)).add_to(m)
    return m
