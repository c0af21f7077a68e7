"""Coverage map: which grid, grid worker and party member covers each household."""

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
from geo.plan import GridPlan
from maps.basemap import Basemap, Context, resolve_basemap
from maps.colouring import GRID_PALETTE, MEMBER_PALETTE
from maps.data import person_html, plan_parts, rep_points
from maps.events import EventLayer, event_counts
from maps.layers import (
    AreaGroup,
    GridLayer,
    HouseholdLayer,
    Labels,
    Legend,
    LineLayer,
    add_context,
    area_names,
    base_map,
    encode_households,
    grid_colours,
    label_priority,
    short_labels,
    swatch,
    to_geojson,
    village_names,
)

__all__ = ["coverage_map", "household_layers", "household_zoom", "label_level"]

#: Above this many households, households are drawn only from this zoom on.
_ALWAYS_DRAWN = 20_000
_HOUSE_ZOOM = 14
_LABEL_ZOOM = 13
_TOWNSHIP_ZOOM = 11
#: Zoom from which a coverage label's second line (households, worker) shows.
_DETAIL_ZOOM = 15
_BARRIER_COLOURS = {"river": "#4a90c2", "main_road": "#d08b2c", "railway": "#555555"}


def household_zoom(n_households: int) -> int:
    """Zoom from which households are drawn: always for small areas, else 14.

    Examples
    --------
    >>> household_zoom(3_000), household_zoom(200_000)
    (0, 14)
    """
    return 0 if n_households <= _ALWAYS_DRAWN else _HOUSE_ZOOM


def label_level(n_grids: int) -> int:
    """Zoom from which grid labels are shown: always for a few grids, from township
    zoom (11) up to 2,000 grids, else 13. Labels that would overlap give way
    (gridmap.js), so a township's labels never cover each other.

    Examples
    --------
    >>> label_level(40), label_level(800), label_level(5_000)
    (0, 11, 13)
    """
    if n_grids <= 60:
        return 0
    return _TOWNSHIP_ZOOM if n_grids <= 2_000 else _LABEL_ZOOM


def _people_index(people: pd.DataFrame | None) -> pd.DataFrame:
    if people is None:
        return pd.DataFrame(columns=["name", "role", "work_phone", "area_code"])
    need = {"person_id", "name", "role"}
    if missing := need - set(people.columns):
        raise ValueError(f"people need columns {sorted(missing)}")
    out = people.copy()
    for col in ("work_phone", "area_code"):
        if col not in out.columns:
            out[col] = None
    return out.set_index(out["person_id"].astype(str))


def _workers(grids: gpd.GeoDataFrame, ppl: pd.DataFrame) -> list[list[tuple[Any, Any]]]:
    """(name, phone) of each grid's worker(s)."""
    if "worker_id" in grids.columns:
        out = []
        for wid in grids["worker_id"]:
            if isinstance(wid, str) and wid in ppl.index:
                row = ppl.loc[wid]
                out.append([(row["name"], row["work_phone"])])
            else:
                out.append([])
        return out
    # no recorded worker: the grid workers of the grid's village
    gw = ppl[ppl["role"] == "grid_worker"]
    by_area = {
        str(a): list(zip(g["name"], g["work_phone"], strict=True))
        for a, g in gw.groupby("area_code")
    }
    area = grids["area_code"] if "area_code" in grids.columns else [None] * len(grids)
    return [by_area.get(str(a), []) for a in area]


def coverage_map(
    plan_or_grids: GridPlan | gpd.GeoDataFrame,
    households: gpd.GeoDataFrame | None,
    *,
    people: pd.DataFrame | None = None,
    assignments: pd.DataFrame | None = None,
    areas: gpd.GeoDataFrame | None = None,
    barriers: gpd.GeoDataFrame | None = None,
    basemap: str | Mapping[str, Any] | Basemap | None = None,
    context: Context | None = None,
    house_zoom: int | None = None,
    label_zoom: int | None = None,
    title: str = "网格与联户",
    lookup_url: str | None = None,
    households_url: str | None = None,
    plan_id: int | None = None,
    events: pd.DataFrame | None = None,
    events_url: str | None = None,
    event_points_url: str | None = None,
    width: str | int = "100%",
    height: str | int = "100%",
) -> folium.Map:
    """Map of grids, households and the people who cover them.

    Grids are filled so that no two touching grids share a colour and labelled
    with their village and number (``中渡村 3``); households are canvas points filled with their grid's
    colour and ringed with their covering party member's (a legend switch fills
    them by member instead). Households at one point (an apartment building)
    are one marker whose popup lists them. Tooltips and popups show the
    address, grid, grid worker and covering member with their work phones —
    nothing else about residents. One layer group per village/community (grids,
    labels and households together) in a layer control; search by grid code
    or address; fullscreen, measure and scale controls; a legend.

    Everything is inlined (see :func:`maps.save_html`): no CDN is used. Large
    counties stay usable: households are drawn village by village, only in
    view, from ``house_zoom`` on.

    Parameters
    ----------
    plan_or_grids
        A :class:`~geo.gridding.generate.GridPlan`, or grids (``grid_code``, optional
        ``area_code``, ``worker_id``) with ``assignments`` given or computed by
        containment.
    households
        Points with ``household_id`` and ``address``; ``None`` for a public page
        with no household in it (grids, their workers and household counts only,
        counts from the plan's assignments).
    people
        ``person_id``, ``name``, ``role``, ``work_phone``, ``area_code``. Names and
        phones of ``grids.worker_id`` and ``assignments.member_id``; without a
        ``worker_id`` column, a grid shows its village's grid workers.
    assignments
        ``household_id``, ``grid_code`` and optional ``member_id`` (overrides the
        plan's).
    areas
        Admin areas (``code``, ``name``, ``parent_code``) to name the layer groups.
    barriers
        Rivers, roads, railways (``kind``, ``name``) drawn as context.
    basemap
        ``None`` (plain background, offline), a preset (``"amap"``, ``"osm"``), an
        XYZ URL (WGS84), or ``{"url", "crs": "gcj02" | "wgs84", "attribution"}``.
        Over a GCJ-02 basemap every layer is shifted to GCJ-02 when drawn.
    context
        Offline context under the grids (:class:`maps.Context`): admin area
        outlines and building footprints from the database, with or without a
        basemap.
    house_zoom
        Zoom from which households are drawn (default: always up to 20,000
        households, else 14).
    label_zoom
        Zoom from which grid labels are shown (default: always up to 60 grids,
        from 11 up to 2,000, else 13). A label is the village's name and the grid's number in it
        (``中渡村 3``; the full code is in the popup), with the households and
        the grid worker on a second line from zoom 15; labels that would
        overlap a larger grid's are hidden until zooming in makes room.
    lookup_url
        Served pages only: a same-origin path of the lookup API (``"/lookup"``).
        Typed addresses are then resolved by ``GET {lookup_url}?address=…`` (any
        spelling the API normalises; ranked candidates to pick from; its 404
        message) instead of the in-page search. Saved files keep the in-page one.
    households_url, plan_id
        Served public pages only (with ``households=None``): a same-origin path
        that answers :func:`household_layers` of plan ``plan_id`` to a viewer
        API key. The page gets a key box; the key is sent in an ``X-API-Key``
        header and households are drawn once they arrive.
    events
        Matters (三事分流) to show as a layer of open events per grid, overdue
        ones marked: one row per event (``grid_code``, optional ``status`` and
        ``overdue``) or counts per grid (``grid_code``, ``open``, ``overdue``;
        :func:`geo.store.event_views.open_events_by_grid`). Counts only: no
        resident, address or description reaches the map.
    events_url, event_points_url
        Served pages only: same-origin paths the page fetches the per-grid counts
        from (public) and, with a worker's or planner's key typed in the key box,
        the open events themselves (``?plan=plan_id``).
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
    >>> m = coverage_map(generate_grids(c.households, c.areas), c.households,
    ...                  people=c.people, areas=c.areas)
    >>> type(m).__name__
    'OfflineMap'
    """
    bm = resolve_basemap(basemap)
    grids, asg, _ = plan_parts(
        plan_or_grids, assignments=assignments, households=households
    )
    if households is not None and "household_id" not in households.columns:
        raise ValueError("households need a 'household_id' column")
    ppl = _people_index(people)
    names = village_names(areas)

    # ---- grids: colours on true geometry, drawn shifted for the basemap
    colours = grid_colours(grids.geometry.values)
    shown = bm.shift_geoms(np.asarray(grids.geometry.values, dtype=object))
    table, props, labels = _grid_table(
        grids, asg, ppl, names, colours, shown, short=area_names(areas)
    )
    area_col = _area_col(grids)

    # ---- households with their grid and member (none on a public page)
    if households is not None:
        hh, members = _household_frame(households, grids, asg, ppl, bm)
        n_hh = len(hh)
    else:
        hh, members = _household_frame(None, grids, None, ppl, bm)
        n_hh = len(asg) if asg is not None else 0
    config: dict[str, Any] = {}
    if households is None and households_url:
        config = {"housesUrl": households_url, "planId": plan_id}
    if events_url or event_points_url:
        config.update(
            {
                "eventsUrl": events_url,
                "eventPointsUrl": event_points_url,
                "planId": plan_id,
            }
        )
    hz = household_zoom(n_hh) if house_zoom is None else int(house_zoom)
    bounds = _bounds(shown, hh)
    m = base_map(
        bounds,
        bm,
        config={
            "grids": table,
            "members": members,
            "houseZoom": hz,
            "labelZoom": (
                lz := label_level(len(grids)) if label_zoom is None else label_zoom
            ),
            "labelDetailZoom": max(lz, _DETAIL_ZOOM),
            "lookupUrl": lookup_url,
            **config,
        },
        width=width,
        height=height,
    )
    add_context(m, context, bm)
    if barriers is not None and len(barriers):
        fg = folium.FeatureGroup(name="河流与主要道路", show=True)
        b = barriers.to_crs(STORAGE_CRS)
        kinds = b["kind"] if "kind" in b.columns else pd.Series([""] * len(b))
        LineLayer(
            to_geojson(
                bm.shift_geoms(np.asarray(b.geometry.values, dtype=object)),
                [
                    {
                        "line": _BARRIER_COLOURS.get(str(k), "#777"),
                        "w": 3 if k == "river" else 2,
                        "op": 0.7,
                        "dash": "6 4" if k == "railway" else None,
                    }
                    for k in kinds
                ],
            )
        ).add_to(fg)
        fg.add_to(m)

    # ---- one group per village/community: its grids, labels and households
    by_group_grids = pd.Series(range(len(grids))).groupby(area_col.to_numpy())
    hh_groups = dict(tuple(hh.groupby("group", sort=False)))
    order = sorted(
        set(area_col) | set(hh_groups),
        key=lambda a: (a == "__outside__", names.get(a, a)),
    )
    for area in order:
        name = (
            "未入格住户"
            if area == "__outside__"
            else (f"{names[area]} ({area})" if area in names else area)
        )
        fg = folium.FeatureGroup(name=name, show=True)
        AreaGroup(area).add_to(fg)
        if area in by_group_grids.groups:
            idx = list(by_group_grids.groups[area])
            GridLayer(to_geojson(shown[idx], [props[i] for i in idx])).add_to(fg)
            Labels([labels[i] for i in idx]).add_to(fg)
        if area in hh_groups:
            HouseholdLayer(_encode_group(hh_groups[area])).add_to(fg)
        fg.add_to(m)
    if events is not None or events_url:
        fg = folium.FeatureGroup(name="未办结事件（按网格）", show=True)
        EventLayer(event_counts(events) if events is not None else None).add_to(fg)
        fg.add_to(m)
    folium.LayerControl(collapsed=True, position="topright").add_to(m)
    Legend(
        _legend_html(
            title,
            n_grids=len(grids),
            n_households=n_hh,
            colours=colours,
            with_members=bool(members) or bool(households_url and households is None),
            house_zoom=hz,
            gcj02=bm.gcj02,
            public=households is None,
            key_box=bool(households_url and households is None),
        )
    ).add_to(m)
    return m


def _area_col(grids: gpd.GeoDataFrame) -> pd.Series:
    return (
        grids["area_code"].astype(str)
        if "area_code" in grids.columns
        else pd.Series([""] * len(grids))
    )


def _grid_table(
    grids: gpd.GeoDataFrame,
    asg: pd.DataFrame | None,
    ppl: pd.DataFrame,
    names: dict[str, str],
    colours: list[str],
    shown: np.ndarray,
    *,
    short: dict[str, str],
) -> tuple[list[list[Any]], list[dict[str, Any]], list[list[Any]]]:
    """The grid table of the page config, the grids' GeoJSON properties and their
    labels (the village's name and the grid's number; households and worker on a
    second line, from a closer zoom)."""
    reps = rep_points(shown)
    brief = short_labels(grids["grid_code"], _area_col(grids), short)
    priority = label_priority(shown)
    workers = _workers(grids, ppl)
    area_col = _area_col(grids)
    counts = (
        asg.groupby("grid_code")
        .size()
        .reindex(grids["grid_code"])
        .fillna(0)
        .astype(int)
        if asg is not None
        else pd.Series(0, index=grids["grid_code"])
    )
    table = []
    props = []
    labels = []
    for i, code in enumerate(grids["grid_code"]):
        village = names.get(area_col.iloc[i], area_col.iloc[i])
        who = "、".join(str(n) for n, _ in workers[i][:1] if isinstance(n, str))
        detail = f"{int(counts.iloc[i])} 户" + (f" · {who}" if who else "")
        labels.append(
            [
                round(reps[i].y, 6),
                round(reps[i].x, 6),
                brief[i],
                "",
                detail,
                priority[i],
            ]
        )
        info = f"<tr><th>网格</th><td>{escape(code)}</td></tr>"
        if village:
            info += f"<tr><th>村/社区</th><td>{escape(village)}</td></tr>"
        info += "".join(person_html("网格员", n, p) for n, p in workers[i])
        table.append([code, colours[i], info, round(reps[i].y, 6), round(reps[i].x, 6)])
        props.append(
            {
                "grid_code": code,
                "fill": colours[i],
                "tip": f"{brief[i]} · 网格 {code} · {int(counts.iloc[i])} 户",
                "pop": '<div class="gm-pop"><table>'
                + info
                + f"<tr><th>户数</th><td>{int(counts.iloc[i])}</td></tr></table></div>",
            }
        )
    return table, props, labels


def _household_frame(
    households: gpd.GeoDataFrame | None,
    grids: gpd.GeoDataFrame,
    asg: pd.DataFrame | None,
    ppl: pd.DataFrame,
    bm: Basemap,
) -> tuple[pd.DataFrame, list[list[str]]]:
    """Households (id, address, shown lon/lat, grid index ``g``, member index
    ``m``, layer ``group``) and the member table ``[colour, info, short]``."""
    grid_idx = {c: i for i, c in enumerate(grids["grid_code"])}
    area_col = _area_col(grids)
    if households is None:
        households = gpd.GeoDataFrame(
            {"household_id": pd.Series([], dtype=str)},
            geometry=gpd.GeoSeries([], crs=STORAGE_CRS),
        )
    hh = households.to_crs(STORAGE_CRS)
    hh = pd.DataFrame(
        {
            "household_id": hh["household_id"].astype(str).to_numpy(),
            "address": (
                hh["address"].astype(str).to_numpy()
                if "address" in hh.columns
                else hh["household_id"].astype(str).to_numpy()
            ),
            "lon": shapely.get_x(hh.geometry.values),
            "lat": shapely.get_y(hh.geometry.values),
        }
    )
    if asg is not None:
        cols = ["household_id", "grid_code"] + (
            ["member_id"] if "member_id" in asg.columns else []
        )
        hh = hh.merge(
            asg[cols].assign(household_id=asg["household_id"].astype(str)),
            on="household_id",
            how="left",
        )
    else:
        hh["grid_code"] = None
    hh["g"] = hh["grid_code"].map(grid_idx).fillna(-1).astype(int)
    members: list[list[str]] = []
    if "member_id" in hh.columns and len(ppl):
        mids = hh["member_id"].where(hh["member_id"].isin(ppl.index))
        # colour members by their rank among the members of their grid
        first = (
            hh.assign(mid=mids)
            .dropna(subset=["mid"])
            .drop_duplicates("mid")
            .sort_values(["g", "mid"])
        )
        first["rank"] = first.groupby("g").cumcount()
        m_idx = {mid: k for k, mid in enumerate(first["mid"])}
        for mid, rank in zip(first["mid"], first["rank"], strict=True):
            row = ppl.loc[mid]
            members.append(
                [
                    MEMBER_PALETTE[int(rank) % len(MEMBER_PALETTE)],
                    person_html("联户党员", row["name"], row["work_phone"]),
                    escape(str(row["name"]))
                    + (
                        f" {escape(str(row['work_phone']))}"
                        if isinstance(row["work_phone"], str)
                        else ""
                    ),
                ]
            )
        hh["m"] = mids.map(m_idx).fillna(-1).astype(int)
    lon, lat = bm.shift_xy(hh["lon"].to_numpy(), hh["lat"].to_numpy())
    hh["lon"], hh["lat"] = lon, lat
    hh["group"] = np.where(
        hh["g"] >= 0, area_col.to_numpy()[hh["g"].clip(lower=0)], "__outside__"
    )
    return hh, members


def _encode_group(d: pd.DataFrame) -> dict[str, Any]:
    return encode_households(
        d["lon"].to_numpy(),
        d["lat"].to_numpy(),
        d["address"].to_numpy(),
        d["g"].to_numpy(),
        member=d["m"].to_numpy() if "m" in d.columns else None,
    )


def household_layers(
    plan_or_grids: GridPlan | gpd.GeoDataFrame,
    households: gpd.GeoDataFrame,
    *,
    people: pd.DataFrame | None = None,
    assignments: pd.DataFrame | None = None,
    basemap: str | Mapping[str, Any] | Basemap | None = None,
    ids: bool = False,
) -> dict[str, Any]:
    """The household layers of a public :func:`coverage_map` page, for key holders.

    ``{"grids": [codes], "members": [[colour, info, short]], "groups": [{"area",
    "n", "bbox", "data"}]}``: ``data`` is :func:`~maps.layers.encode_households`
    of the ``n`` households of each village (``"__outside__"``: not in any grid),
    inside ``bbox`` (lon/lat as drawn), with grid indexes into ``grids`` (the
    page's grids, by code) and member indexes into ``members``; with ``ids``
    each group also lists its ``households`` (ids, for the server's caps and
    audit, not for the page). Addresses, locations and covering members: serve
    it to viewer keys only.
    """
    bm = resolve_basemap(basemap)
    grids, asg, _ = plan_parts(
        plan_or_grids, assignments=assignments, households=households
    )
    hh, members = _household_frame(households, grids, asg, _people_index(people), bm)
    return {
        "grids": grids["grid_code"].tolist(),
        "members": members,
        "groups": [
            {
                "area": str(area),
                "n": len(d),
                "bbox": [
                    round(float(d["lon"].min()), 6),
                    round(float(d["lat"].min()), 6),
                    round(float(d["lon"].max()), 6),
                    round(float(d["lat"].max()), 6),
                ],
                "data": _encode_group(d),
                **({"households": d["household_id"].tolist()} if ids else {}),
            }
            for area, d in hh.groupby("group", sort=True)
        ],
    }


def _bounds(shown: np.ndarray, hh: pd.DataFrame) -> tuple[float, float, float, float]:
    boxes = []
    if len(shown):
        boxes.append(shapely.total_bounds(shown))
    if len(hh):
        boxes.append(
            (hh["lon"].min(), hh["lat"].min(), hh["lon"].max(), hh["lat"].max())
        )
    if not boxes:
        return (118.8, 28.9, 119.0, 29.1)
    b = np.asarray(boxes, dtype=float)
    return (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())


def _legend_html(
    title: str,
    *,
    n_grids: int,
    n_households: int,
    colours: list[str],
    with_members: bool,
    house_zoom: int,
    gcj02: bool,
    public: bool = False,
    key_box: bool = False,
) -> str:
    used = [c for c in GRID_PALETTE if c in set(colours)]
    rows = [
        f"<h4>{escape(title)}</h4>",
        f"<div>{n_grids} 个网格 · {n_households:,} 户</div>",
        f'<div class="gm-note">网格填色：相邻网格颜色不同（共 {len(used)} 色）</div>',
        '<div class="gm-note">标注：村/社区 + 网格序号（完整编码见弹窗），'
        f"放大到 {_DETAIL_ZOOM} 级显示户数与网格员；重叠的标注自动隐藏</div>",
        "<div>"
        + "".join(
            f'<span class="gm-sw" style="background:{c}"></span>' for c in used[:8]
        )
        + "</div>",
    ]
    if public and not key_box:
        rows.append('<div class="gm-note">本图不含住户</div>')
        return "".join(rows)
    if key_box:
        # households are not in the page: a viewer key loads them (gridmap.js)
        rows.append(
            '<form class="gm-keybox"><div class="gm-note">住户图层需查看密钥'
            "（viewer API key）</div>"
            '<input type="password" name="key" placeholder="gm_…" '
            'autocomplete="off" aria-label="API key"> '
            '<button type="submit">加载住户</button>'
            '<div class="gm-keybox-msg"></div></form>'
        )
    rows += [
        swatch("#8dd3c7", "住户：填充色 = 所属网格", kind="dot", extra="#555"),
    ]
    if with_members:
        rows.append(
            swatch(
                "#ffffff", "外圈颜色 = 联户党员", kind="dot", extra=MEMBER_PALETTE[1]
            )
        )
        rows.append(
            '<div><label><input type="radio" name="gm-mode" value="grid" checked> 按网格着色</label> '
            '<label><input type="radio" name="gm-mode" value="member"> 按联户党员着色</label></div>'
        )
    rows.append('<div class="gm-note">多户同点（楼栋）为较大圆点，点击查看各户</div>')
    if house_zoom > 0:
        rows.append(
            f'<div class="gm-zoom-hint">放大到 {house_zoom} 级以上显示住户</div>'
        )
    if gcj02:
        rows.append(
            '<div class="gm-note">底图为 GCJ-02，图层已按 GCJ-02 偏移显示</div>'
        )
    return "".join(rows)
