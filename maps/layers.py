"""Map building blocks: compact household encoding and the folium elements that draw it."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from html import escape
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import MacroElement
from folium.template import Template

from maps.assets import (
    MeasureTool,
    OfflineFullscreen,
    OfflineMap,
    SearchControl,
)
from maps.basemap import Basemap, Context
from maps.colouring import GRID_PALETTE, adjacency, greedy_colouring

__all__ = [
    "AreaGroup",
    "GridLayer",
    "HouseholdLayer",
    "InitialView",
    "Labels",
    "Legend",
    "LineLayer",
    "Setup",
    "add_context",
    "area_names",
    "base_map",
    "encode_households",
    "grid_colours",
    "grid_sequence",
    "label_priority",
    "short_labels",
    "swatch",
    "to_geojson",
    "village_names",
]

#: Coordinates are written with 6 decimals (~0.1 m).
_SCALE = 1_000_000


def _js(obj: Any) -> str:
    """JSON for inline ``<script>``: compact, UTF-8, never closing the element."""
    return (
        json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
        .replace("</", "<\\/")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _round(geoms: Any, decimals: int = 6) -> Any:
    return shapely.transform(geoms, lambda c: np.round(c, decimals))


def to_geojson(geoms: Any, props: list[dict[str, Any]]) -> dict[str, Any]:
    """A FeatureCollection of ``geoms`` (rounded to 6 decimals) with ``props``."""
    arr = _round(np.asarray(geoms, dtype=object))
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": p,
                "geometry": shapely.geometry.mapping(g),
            }
            for g, p in zip(arr, props, strict=True)
            if g is not None and not g.is_empty
        ],
    }


def _rle(values: np.ndarray) -> list[int]:
    """``[value, run, value, run, ...]`` of an integer array."""
    if len(values) == 0:
        return []
    values = np.asarray(values, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    runs = np.diff(np.r_[starts, len(values)])
    out = np.empty(2 * len(starts), dtype=np.int64)
    out[0::2] = values[starts]
    out[1::2] = runs
    return out.tolist()


def encode_households(
    lon: np.ndarray,
    lat: np.ndarray,
    address: np.ndarray,
    grid: np.ndarray,
    *,
    member: np.ndarray | None = None,
    old_grid: np.ndarray | None = None,
) -> dict[str, Any]:
    """Pack the households of one layer for ``GridMap.HouseLayer`` (gridmap.js).

    Households at the same point (an apartment building) become one marker.
    Points are delta-encoded micro-degrees; grid, member and old-grid indexes
    and per-point counts are run-length encoded; addresses are front-coded
    (characters shared with the previous address, then the rest). A county of
    200,000 households packs into about 30 bytes a household.

    Examples
    --------
    >>> d = encode_households(np.array([118.9, 118.9, 118.91]), np.array([29.0, 29.0, 29.01]),
    ...     np.array(["衢江区金坞街8号1幢101室", "衢江区金坞街8号1幢102室", "衢江区前埠村3组1号"]),
    ...     np.array([0, 0, 1]))
    >>> d["n"], d["g"], d["p"], d["s"]
    ([2, 1, 1, 1], [0, 2, 1, 1], [0, 12, 3], ['衢江区金坞街8号1幢101室', '2室', '前埠村3组1号'])
    """
    n = len(lon)
    px = np.round(np.asarray(lon, dtype=float) * _SCALE).astype(np.int64)
    py = np.round(np.asarray(lat, dtype=float) * _SCALE).astype(np.int64)
    addr = np.asarray(pd.Series(address).fillna("").astype(str), dtype=object)
    grid = np.asarray(grid, dtype=np.int64)
    df = pd.DataFrame({"px": px, "py": py, "a": addr, "g": grid})
    pt = df.groupby(["px", "py"], sort=False).ngroup().to_numpy()
    df["pt"] = pt
    df["pg"] = df.groupby("pt")["g"].transform("min")
    df["pa"] = df.groupby("pt")["a"].transform("min")
    order = df.sort_values(["pg", "pa", "pt", "a"], kind="stable").index.to_numpy()
    s = df.loc[order]
    first = np.r_[True, s["pt"].to_numpy()[1:] != s["pt"].to_numpy()[:-1]]
    pts = s[first]
    counts = np.diff(np.r_[np.flatnonzero(first), n])
    xs, ys = pts["px"].to_numpy(), pts["py"].to_numpy()
    a = s["a"].tolist()
    prefix = [0] * n
    suffix = [""] * n
    prev = ""
    for i, cur in enumerate(a):
        k = len(os.path.commonprefix([prev, cur]))  # noqa: RUF071 (characters)
        prefix[i], suffix[i] = k, cur[k:]
        prev = cur
    out: dict[str, Any] = {
        "b": [
            float(py.min()) / _SCALE,
            float(px.min()) / _SCALE,
            float(py.max()) / _SCALE,
            float(px.max()) / _SCALE,
        ]
        if n
        else [0, 0, 0, 0],
        "x": np.diff(np.r_[0, xs]).tolist(),
        "y": np.diff(np.r_[0, ys]).tolist(),
        "n": _rle(counts),
        "g": _rle(s["g"].to_numpy()),
        "p": prefix,
        "s": suffix,
    }
    if member is not None:
        out["m"] = _rle(np.asarray(member, dtype=np.int64)[order])
    if old_grid is not None:
        out["o"] = _rle(np.asarray(old_grid, dtype=np.int64)[order])
    return out


def grid_colours(geoms: Any, palette: tuple[str, ...] = GRID_PALETTE) -> list[str]:
    """A palette colour per grid such that touching grids differ."""
    idx = greedy_colouring(adjacency(geoms), len(palette))
    return [palette[i] for i in idx]


# --------------------------------------------------------------------------- elements


class Setup(MacroElement):
    """``GridMap.setup``: the shared canvas renderer and the grid/member tables.

    ``grids`` rows are ``[code, colour, info_html, lat, lng]`` (``info_html``:
    table rows shown in popups), ``members`` rows ``[colour, info_html,
    short_html]``. Must be the map's first child.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            GridMap.setup({{ this._parent.get_name() }}, {{ this.config_json }});
        {% endmacro %}
        """
    )

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self._name = "GridMapSetup"
        self.config = config

    @property
    def config_json(self) -> str:
        return _js(self.config)


class InitialView(MacroElement):
    """``GridMap.fit``: the map's initial extent, set without animation before the
    page signals ready (folium's ``fit_bounds`` animates, and its end would undo a
    view set meanwhile)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            GridMap.fit({{ this._parent.get_name() }}, {{ this.bounds_json }});
        {% endmacro %}
        """
    )

    def __init__(self, bounds: list[list[float]]) -> None:
        super().__init__()
        self._name = "GridMapView"
        self.bounds = bounds

    @property
    def bounds_json(self) -> str:
        return _js(self.bounds)


class _GeoJsonElement(MacroElement):
    """A GeoJSON FeatureCollection handed to a ``GridMap`` drawing function."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__()
        self._name = type(self).__name__
        self.data = data

    @property
    def data_json(self) -> str:
        return _js(self.data)


class GridLayer(_GeoJsonElement):
    """Grid polygons (GeoJSON, properties ``fill``, ``tip``, ``pop``…) in a group."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            GridMap.grids({{ this._parent._parent.get_name() }}, {{ this._parent.get_name() }}, {{ this.data_json }});
        {% endmacro %}
        """
    )


class LineLayer(_GeoJsonElement):
    """Non-interactive lines (barriers, boundaries that moved)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            GridMap.lines({{ this._parent._parent.get_name() }}, {{ this._parent.get_name() }}, {{ this.data_json }});
        {% endmacro %}
        """
    )


class HouseholdLayer(MacroElement):
    """Households of one group, drawn lazily on canvas (see :func:`encode_households`)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            GridMap.houses({{ this._parent._parent.get_name() }}, {{ this._parent.get_name() }}, {{ this.data_json }});
        {% endmacro %}
        """
    )

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__()
        self._name = "HouseholdLayer"
        self.data = data

    @property
    def households(self) -> int:
        """Number of households packed in this layer."""
        n = self.data["n"]
        return int(sum(c * r for c, r in zip(n[0::2], n[1::2], strict=True)))

    @property
    def data_json(self) -> str:
        return _js(self.data)


class AreaGroup(MacroElement):
    """Registers its layer group as the one of an area code (``GridMap.area``):
    household layers loaded later by a served page join their village's group."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            GridMap.area({{ this._parent._parent.get_name() }}, {{ this._parent.get_name() }}, {{ this.code_json }});
        {% endmacro %}
        """
    )

    def __init__(self, code: str) -> None:
        super().__init__()
        self._name = "AreaGroup"
        self.code = code

    @property
    def code_json(self) -> str:
        return _js(self.code)


class Labels(MacroElement):
    """Permanent text labels ``[lat, lng, text, css_class, detail, priority]``.

    ``detail`` (optional) is a second line shown from the map's ``labelDetailZoom``;
    labels are hidden below ``labelZoom``, and a label whose box overlaps one of
    higher ``priority`` (a larger grid) is hidden until zooming in frees its place
    (``GridMap.labels`` in gridmap.js, after every zoom).
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            GridMap.labels({{ this._parent._parent.get_name() }}, {{ this._parent.get_name() }}, {{ this.rows_json }});
        {% endmacro %}
        """
    )

    def __init__(self, rows: list[list[Any]]) -> None:
        super().__init__()
        self._name = "Labels"
        self.rows = rows

    @property
    def rows_json(self) -> str:
        return _js(self.rows)


class Legend(MacroElement):
    """A legend control; ``html`` is trusted markup built by GridMap (values escaped)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            GridMap.legend({{ this._parent.get_name() }}, {{ this.html_json }}, {{ this.position|tojson }});
        {% endmacro %}
        """
    )

    def __init__(self, html: str, *, position: str = "bottomright") -> None:
        super().__init__()
        self._name = "Legend"
        self.html = html
        self.position = position

    @property
    def html_json(self) -> str:
        return _js(self.html)


def swatch(colour: str, label: str, *, kind: str = "sw", extra: str = "") -> str:
    """One legend row (``kind``: ``sw`` box, ``dot`` marker, ``line``)."""
    style = (
        f"background:{colour}"
        if kind != "line"
        else f"border-top:3px {extra or 'solid'} {colour}"
    )
    if kind == "dot" and extra:
        style += f";border-color:{extra}"
    return f'<div><span class="gm-{kind}" style="{style}"></span>{escape(label)}</div>'


# --------------------------------------------------------------------------- the map


def base_map(
    bounds: tuple[float, float, float, float],
    basemap: Basemap,
    *,
    config: dict[str, Any],
    search: bool = True,
    measure: bool = True,
    fullscreen: bool = True,
    width: str | int = "100%",
    height: str | int = "100%",
) -> OfflineMap:
    """An :class:`OfflineMap` fitted to ``bounds`` (lon/lat, already shifted for the
    basemap) with the GridMap setup, the basemap and the standard controls."""
    minx, miny, maxx, maxy = bounds
    m = OfflineMap(
        location=[(miny + maxy) / 2, (minx + maxx) / 2],
        tiles=None,
        zoom_start=12,
        prefer_canvas=True,
        control_scale=True,
        width=width,
        height=height,
    )
    m.options["max_zoom"] = basemap.max_zoom  # folium gives max_zoom to tiles only
    cfg = {"background": None if basemap.url else basemap.background, **config}
    m.add_child(Setup(cfg), name="gridmap_setup")
    if basemap.url:
        folium.TileLayer(
            tiles=basemap.url,
            attr=basemap.attribution or " ",
            name="底图",
            subdomains=basemap.subdomains,
            max_zoom=basemap.max_zoom,
            overlay=False,
            control=False,
        ).add_to(m)
    m.add_child(InitialView([[miny, minx], [maxy, maxx]]), name="gridmap_view")
    if fullscreen:
        OfflineFullscreen(
            position="topleft", title="全屏", title_cancel="退出全屏"
        ).add_to(m)
    if measure:
        MeasureTool(position="topleft").add_to(m)
    if search:
        SearchControl(placeholder="搜索网格编码或地址…", zoom=17).add_to(m)
    return m


def grid_sequence(code: str, area_code: str | None) -> str:
    """The grid's number within its village: what follows the area code in its code.

    Examples
    --------
    >>> grid_sequence("33080310020103", "330803100201"), grid_sequence("LI-949002", None)
    ('3', '2')
    """
    tail = (
        code[len(area_code) :]
        if area_code and code.startswith(area_code) and len(code) > len(area_code)
        else code[-2:]
    )
    tail = tail.lstrip("-_.")
    return str(int(tail)) if tail.isdigit() else tail or code


def short_labels(
    codes: Any, area_codes: Any, names: Mapping[str, str] | None = None
) -> list[str]:
    """Short grid labels: the village's own name and the grid's number in it.

    ``names`` maps area codes to names (:func:`area_names`); a village without a
    name shows the last three digits of its code instead.

    Examples
    --------
    >>> short_labels(["33080310020103"], ["330803100201"], {"330803100201": "中渡村"})
    ['中渡村 3']
    >>> short_labels(["33080310020103"], ["330803100201"])
    ['201-3']
    """
    names = names or {}
    out = []
    for code, area in zip(codes, area_codes, strict=True):
        area = str(area) if isinstance(area, str) and area else None
        seq = grid_sequence(str(code), area)
        name = names.get(area) if area else None
        if name:
            out.append(f"{name} {seq}")
        elif area:
            out.append(f"{area[-3:]}-{seq}")
        else:
            out.append(str(code))
    return out


def area_names(areas: gpd.GeoDataFrame | None) -> dict[str, str]:
    """``code → name`` of each area (empty without areas)."""
    if areas is None or "code" not in areas.columns or "name" not in areas.columns:
        return {}
    return dict(zip(areas["code"].astype(str), areas["name"].astype(str), strict=True))


def label_priority(geoms: Any) -> list[float]:
    """A label's priority: its grid's area in square degrees × 10⁶ (larger first)."""
    return [
        round(float(a) * 1e6, 3) for a in shapely.area(np.asarray(geoms, dtype=object))
    ]


#: Outline styles by admin level: (colour, weight, dash).
_OUTLINE: dict[str, tuple[str, float, str | None]] = {
    "province": ("#333333", 3.5, None),
    "city": ("#333333", 3.0, None),
    "county": ("#3d3d3d", 3.0, None),
    "township": ("#555555", 2.2, None),
}
_VILLAGE_OUTLINE: tuple[str, float, str | None] = ("#7a7a7a", 1.0, "4 3")


def add_context(m: folium.Map, context: Context | None, basemap: Basemap) -> None:
    """Draw ``context`` (admin outlines, building footprints) on ``m``, under
    what is added after it, shifted for ``basemap``; one layer each."""
    if context is None:
        return
    from geo.crs import STORAGE_CRS

    if context.buildings is not None and len(context.buildings):
        b = context.buildings.to_crs(STORAGE_CRS)
        geoms = basemap.shift_geoms(np.asarray(b.geometry.values, dtype=object))
        fg = folium.FeatureGroup(name=f"建筑（{len(b):,}）", show=True)
        LineLayer(
            to_geojson(geoms, [{"line": "#8c8c8c", "w": 0.8, "op": 0.9}] * len(b))
        ).add_to(fg)
        fg.add_to(m)
    if context.areas is not None and len(context.areas):
        a = context.areas.to_crs(STORAGE_CRS)
        levels = (
            a["level"].astype(str)
            if "level" in a.columns
            else pd.Series(["village"] * len(a))
        )
        lines = shapely.boundary(
            basemap.shift_geoms(np.asarray(a.geometry.values, dtype=object))
        )
        props: list[dict[str, Any]] = []
        weights: list[float] = []
        for level in levels:
            colour, w, dash = _OUTLINE.get(level, _VILLAGE_OUTLINE)
            props.append({"line": colour, "w": w, "op": 0.85, "dash": dash})
            weights.append(w)
        # thinnest first, so that township and county lines are drawn over villages'
        order = sorted(range(len(a)), key=lambda i: weights[i])
        fg = folium.FeatureGroup(name="行政区划界线", show=True)
        LineLayer(to_geojson(lines[order], [props[i] for i in order])).add_to(fg)
        fg.add_to(m)


def village_names(areas: gpd.GeoDataFrame | None) -> dict[str, str]:
    """``code → "township village"`` for layer names (codes alone without areas)."""
    if areas is None or "code" not in areas.columns:
        return {}
    names = dict(
        zip(
            areas["code"].astype(str),
            areas.get("name", areas["code"]).astype(str),
            strict=True,
        )
    )
    parents = (
        dict(zip(areas["code"].astype(str), areas["parent_code"], strict=True))
        if "parent_code" in areas.columns
        else {}
    )
    out = {}
    for code, name in names.items():
        parent = parents.get(code)
        pname = names.get(str(parent)) if isinstance(parent, str) else None
        out[code] = f"{pname} {name}" if pname else name
    return out
