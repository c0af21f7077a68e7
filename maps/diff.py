"""Diff map between two plans: households that change grid and boundaries that moved."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from geo.crs import STORAGE_CRS
from geo.plan import GridPlan
from maps.basemap import Basemap, resolve_basemap
from maps.coverage import household_zoom, label_level
from maps.data import plan_parts, rep_points
from maps.layers import (
    GridLayer,
    HouseholdLayer,
    Labels,
    Legend,
    LineLayer,
    base_map,
    encode_households,
    grid_colours,
    swatch,
    to_geojson,
)

__all__ = ["PlanDiff", "diff_map", "plan_diff"]

_ADDED, _REMOVED = "#d62728", "#7f7f7f"
_METRES_PER_DEGREE = 111_320.0


@dataclass(frozen=True)
class PlanDiff:
    """What changed between two plans.

    Attributes
    ----------
    households
        One row per household whose grid changed or that is in one plan only:
        ``household_id``, ``old_grid``, ``new_grid`` (None when absent),
        ``change`` (``moved``, ``added``, ``removed``).
    added_boundaries, removed_boundaries
        Grid boundary lines of the new plan not in the old one, and of the old
        not in the new (EPSG:4326; empty geometries when none).
    changed_grids
        Codes of new grids that did not exist or whose polygon changed.
    unchanged_households
        Households in the same grid in both plans.
    """

    households: pd.DataFrame
    added_boundaries: BaseGeometry
    removed_boundaries: BaseGeometry
    changed_grids: list[str]
    unchanged_households: int


def _lines(geoms: np.ndarray) -> BaseGeometry:
    if len(geoms) == 0:
        return shapely.MultiLineString()
    return shapely.line_merge(shapely.union_all(shapely.boundary(geoms)))


def _minus(a: BaseGeometry, b: BaseGeometry, tol: float) -> BaseGeometry:
    if a.is_empty:
        return a
    if b.is_empty:
        return a
    rest = a.difference(b.buffer(tol, cap_style="flat"))
    parts = [p for p in shapely.get_parts(rest) if p.length > 2 * tol]
    return (
        shapely.MultiLineString(
            [q for p in parts for q in shapely.get_parts(shapely.line_merge(p))]
        )
        if parts
        else shapely.MultiLineString()
    )


def plan_diff(
    old_grids: gpd.GeoDataFrame,
    old_assignments: pd.DataFrame,
    new_grids: gpd.GeoDataFrame,
    new_assignments: pd.DataFrame,
    *,
    tol_m: float = 1.0,
) -> PlanDiff:
    """Compare two plans (pure): households that change grid, boundaries that moved.

    A household "changes grid" when its grid code differs (or it is in one plan
    only). Boundaries are compared as lines with a tolerance of ``tol_m``.

    Examples
    --------
    >>> import geopandas as gpd, pandas as pd, shapely
    >>> old = gpd.GeoDataFrame({"grid_code": ["A", "B"]},
    ...     geometry=[shapely.box(0, 0, 0.01, 0.01), shapely.box(0.01, 0, 0.02, 0.01)], crs=4326)
    >>> new = gpd.GeoDataFrame({"grid_code": ["A", "B"]},
    ...     geometry=[shapely.box(0, 0, 0.012, 0.01), shapely.box(0.012, 0, 0.02, 0.01)], crs=4326)
    >>> a0 = pd.DataFrame({"household_id": ["h1", "h2"], "grid_code": ["A", "B"]})
    >>> a1 = pd.DataFrame({"household_id": ["h1", "h2"], "grid_code": ["A", "A"]})
    >>> d = plan_diff(old, a0, new, a1)
    >>> d.households[["household_id", "old_grid", "new_grid", "change"]].values.tolist()
    [['h2', 'B', 'A', 'moved']]
    >>> round(d.added_boundaries.length, 3), round(d.removed_boundaries.length, 3), d.changed_grids
    (0.01, 0.01, ['A', 'B'])
    """
    og = old_grids.to_crs(STORAGE_CRS)
    ng = new_grids.to_crs(STORAGE_CRS)
    a = old_assignments[["household_id", "grid_code"]].astype(str)
    b = new_assignments[["household_id", "grid_code"]].astype(str)
    both = a.merge(b, on="household_id", how="outer", suffixes=("_old", "_new"))
    both = both.rename(
        columns={"grid_code_old": "old_grid", "grid_code_new": "new_grid"}
    )
    change = np.select(
        [both["old_grid"].isna(), both["new_grid"].isna()],
        ["added", "removed"],
        default=np.where(both["old_grid"] == both["new_grid"], "same", "moved"),
    )
    both["change"] = change
    same = int((both["change"] == "same").sum())
    moved = (
        both[both["change"] != "same"]
        .sort_values("household_id")
        .reset_index(drop=True)
    )
    moved = moved.astype(object).where(moved.notna(), None)

    tol = tol_m / _METRES_PER_DEGREE
    old_l = _lines(np.asarray(og.geometry.values, dtype=object))
    new_l = _lines(np.asarray(ng.geometry.values, dtype=object))
    added = _minus(new_l, old_l, tol)
    removed = _minus(old_l, new_l, tol)

    old_geom = dict(zip(og["grid_code"].astype(str), og.geometry.values, strict=True))
    changed = []
    for code, g in zip(ng["grid_code"].astype(str), ng.geometry.values, strict=True):
        o = old_geom.get(code)
        if o is None or o.symmetric_difference(g).area > tol * tol * 100:
            changed.append(code)
    return PlanDiff(
        households=moved,
        added_boundaries=added,
        removed_boundaries=removed,
        changed_grids=sorted(changed),
        unchanged_households=same,
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
    Pure over the two plans (see :func:`plan_diff`); plans may be
    :class:`~geo.gridding.generate.GridPlan` objects (assignments then ``None``).

    Examples
    --------
    >>> from geo.sample import generate_county
    >>> from geo.generate import generate_grids
    >>> c = generate_county(2_000, seed=1)
    >>> a = generate_grids(c.households, c.areas)
    >>> b = generate_grids(c.households, c.areas, min_households=150, max_households=250)
    >>> m = diff_map(a, None, b, None, c.households)
    >>> type(m).__name__
    'OfflineMap'
    """
    bm = resolve_basemap(basemap)
    og, oa = _parts(old_grids, old_assignments, households)
    ng, na = _parts(new_grids, new_assignments, households)
    d = plan_diff(og, oa, ng, na, tol_m=tol_m)

    changed = set(d.changed_grids)
    colours = grid_colours(ng.geometry.values)
    shown = bm.shift_geoms(np.asarray(ng.geometry.values, dtype=object))
    reps = rep_points(shown)
    counts = na.groupby("grid_code").size()
    moved_in = d.households.groupby("new_grid").size()
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
    mv["g"] = mv["new_grid"].map(idx).fillna(-1).astype(int)
    mv["o"] = mv["old_grid"].map(idx).fillna(-1).astype(int)
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
    fg = folium.FeatureGroup(
        name=f"调整后网格（{len(ng)}，变动 {len(changed)}）", show=True
    )
    GridLayer(to_geojson(shown, props)).add_to(fg)
    Labels([[t[3], t[4], t[0], ""] for t in table if t[3] is not None]).add_to(fg)
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
    n_moved = int((d.households["change"] == "moved").sum())
    fg = folium.FeatureGroup(name=f"变更网格的住户（{len(mv)}）", show=True)
    for _, part in mv.groupby("group", sort=True):
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
    folium.LayerControl(collapsed=False, position="topright").add_to(m)
    legend = [
        f"<h4>{escape(title)}</h4>",
        f"<div>调整后 {len(ng)} 个网格（原 {len(og)} 个），变动 {len(changed)} 个</div>",
        f"<div>变更网格的住户 {n_moved:,} 户；新增 {int((d.households['change'] == 'added').sum())}，"
        f"移除 {int((d.households['change'] == 'removed').sum())}；未变 {d.unchanged_households:,} 户</div>",
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
