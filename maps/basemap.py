"""Basemaps: none (offline), any WGS84 XYZ server, or a GCJ-02 one (data shifted on render)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from geo.crs import wgs84_to_gcj02, wgs84_to_gcj02_geoms

__all__ = ["PRESETS", "Basemap", "resolve_basemap"]

#: Named tile servers. ``amap``/``gaode`` tiles are GCJ-02 (data is shifted
#: to match them at render time); OpenStreetMap tiles are WGS84.
PRESETS: dict[str, dict[str, Any]] = {
    "amap": {
        "url": "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}",
        "crs": "gcj02",
        "attribution": "&copy; 高德地图 AutoNavi",
        "subdomains": "1234",
        "max_zoom": 18,
    },
    "osm": {
        "url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        "crs": "wgs84",
        "attribution": "&copy; OpenStreetMap contributors",
        "max_zoom": 19,
    },
}
PRESETS["gaode"] = PRESETS["amap"]


@dataclass(frozen=True)
class Basemap:
    """A resolved basemap: ``url`` is None for the plain offline background."""

    url: str | None = None
    crs: str = "wgs84"
    attribution: str = ""
    subdomains: str = "abc"
    max_zoom: int = 19
    background: str = "#f3f1ec"

    @property
    def gcj02(self) -> bool:
        return self.crs == "gcj02"

    def shift_geoms(self, geoms: Any) -> Any:
        """Geometries as drawn over this basemap (GCJ-02 when it is; never stored)."""
        return wgs84_to_gcj02_geoms(geoms) if self.gcj02 else geoms

    def shift_xy(
        self, lon: NDArray[np.float64], lat: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Coordinates as drawn over this basemap."""
        if not self.gcj02:
            return lon, lat
        x, y = wgs84_to_gcj02(lon, lat)
        return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


def resolve_basemap(basemap: str | Mapping[str, Any] | Basemap | None) -> Basemap:
    """Turn the ``basemap=`` argument of the map functions into a :class:`Basemap`.

    ``None`` (plain background, no network), a preset name (``"amap"``,
    ``"gaode"``, ``"osm"``), an XYZ URL template (taken as WGS84) or a dict
    ``{"url": ..., "crs": "wgs84" | "gcj02", "attribution": ..., "subdomains": ...,
    "max_zoom": ...}``.

    Parameters
    ----------
    basemap
        ``None``, a preset name, an XYZ URL template, a dict as above, or a
        :class:`Basemap` (returned as it is).

    Returns
    -------
    Basemap

    Raises
    ------
    ValueError
        An unknown preset, a URL without ``{x}``, ``{y}`` and ``{z}``, unknown
        dict keys, or a ``crs`` other than WGS84 or GCJ-02.

    Examples
    --------
    >>> resolve_basemap(None).url is None
    True
    >>> resolve_basemap("amap").gcj02
    True
    >>> resolve_basemap({"url": "http://10.0.0.5/t/{z}/{x}/{y}.png"}).crs
    'wgs84'
    >>> resolve_basemap({"url": "http://10.0.0.5/t/{z}/{x}/{y}.png", "crs": "GCJ-02"}).gcj02
    True
    >>> resolve_basemap("https://example.org/tiles.png")
    Traceback (most recent call last):
    ...
    ValueError: basemap 'https://example.org/tiles.png' is neither a preset (amap, osm, gaode) nor an XYZ URL with {x}, {y} and {z}
    """
    if basemap is None:
        return Basemap()
    if isinstance(basemap, Basemap):
        return basemap
    if isinstance(basemap, str):
        if basemap in PRESETS:
            return resolve_basemap(PRESETS[basemap])
        if "{x}" in basemap and "{y}" in basemap and "{z}" in basemap:
            return Basemap(url=basemap)
        raise ValueError(
            f"basemap {basemap!r} is neither a preset ({', '.join(PRESETS)}) "
            "nor an XYZ URL with {x}, {y} and {z}"
        )
    spec = dict(basemap)
    unknown = set(spec) - {
        "url",
        "crs",
        "attribution",
        "subdomains",
        "max_zoom",
        "background",
    }
    if unknown:
        raise ValueError(f"unknown basemap keys: {sorted(unknown)}")
    crs = str(spec.get("crs", "wgs84")).lower().replace("-", "")
    if crs in {"epsg:4326", "4326", "wgs84", "epsg4326"}:
        crs = "wgs84"
    if crs not in {"wgs84", "gcj02"}:
        raise ValueError(f"basemap crs must be 'wgs84' or 'gcj02', got {spec['crs']!r}")
    url = spec.get("url")
    return Basemap(
        url=str(url) if url else None,
        crs=crs,
        attribution=str(spec.get("attribution", "")),
        subdomains=str(spec.get("subdomains", "abc")),
        max_zoom=int(spec.get("max_zoom", 19)),
        background=str(spec.get("background", Basemap.background)),
    )
