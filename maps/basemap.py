"""Basemaps: none (offline), any WGS84 XYZ server, or a GCJ-02 one (data shifted on render);
and offline context drawn from the database (admin area outlines, building footprints)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
from numpy.typing import NDArray

from geo.crs import wgs84_to_gcj02, wgs84_to_gcj02_geoms

__all__ = ["PRESETS", "Basemap", "Context", "resolve_basemap"]

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
        """Whether the tiles are GCJ-02 (layers are then shifted when drawn).

        Examples
        --------
        >>> Basemap().gcj02, Basemap(url="https://t/{z}/{x}/{y}.png", crs="gcj02").gcj02
        (False, True)
        """
        return self.crs == "gcj02"

    def shift_geoms(self, geoms: Any) -> Any:
        """Geometries as drawn over this basemap (GCJ-02 when it is; never stored).

        Parameters
        ----------
        geoms
            WGS84 shapely geometries (an array).

        Returns
        -------
        numpy.ndarray
            ``geoms`` itself over a WGS84 basemap, else shifted copies.

        Examples
        --------
        >>> import numpy as np, shapely
        >>> pts = np.array([shapely.Point(118.9, 28.95)])
        >>> Basemap().shift_geoms(pts) is pts
        True
        >>> shifted = resolve_basemap("amap").shift_geoms(pts)
        >>> bool(0.003 < shapely.distance(shifted[0], pts[0]) < 0.01)  # a few hundred metres
        True
        """
        return wgs84_to_gcj02_geoms(geoms) if self.gcj02 else geoms

    def shift_xy(
        self, lon: NDArray[np.float64], lat: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Coordinates as drawn over this basemap.

        Parameters
        ----------
        lon, lat
            WGS84 longitudes and latitudes.

        Returns
        -------
        tuple of numpy.ndarray
            ``(lon, lat)`` unchanged over a WGS84 basemap, else in GCJ-02.

        Examples
        --------
        >>> import numpy as np
        >>> lon, lat = np.array([118.9]), np.array([28.95])
        >>> Basemap().shift_xy(lon, lat) == (lon, lat)
        True
        >>> x, y = resolve_basemap("amap").shift_xy(lon, lat)
        >>> x.round(4).tolist(), y.round(4).tolist()
        ([118.9048], [28.9469])
        """
        if not self.gcj02:
            return lon, lat
        x, y = wgs84_to_gcj02(lon, lat)
        return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


@dataclass(frozen=True)
class Context:
    """Offline context under the grids, in place of (or over) tiles.

    ``areas``: admin areas (``code``, ``level``; polygons) drawn as outlines,
    townships and counties bolder than villages. ``buildings``: building
    polygons (e.g. :meth:`geo.workspace.Workspace.buildings`, footprints
    approximated from the households' points) drawn in grey. Either may be
    None. Both come from the database, so the map needs no tile server at all.
    """

    areas: gpd.GeoDataFrame | None = None
    buildings: gpd.GeoDataFrame | None = None


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
