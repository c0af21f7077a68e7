"""The one place for CRS rules: storage CRS, metric CRS, transformers, GCJ-02."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS, Transformer

__all__ = [
    "STORAGE_CRS",
    "gcj02_to_wgs84",
    "gcj02_to_wgs84_geoms",
    "looks_swapped",
    "metric_crs_for",
    "to_metric",
    "transformer",
    "wgs84_to_gcj02",
    "wgs84_to_gcj02_geoms",
]

#: Everything is stored and served in WGS84, longitude first.
STORAGE_CRS = "EPSG:4326"

_A = 6378245.0  # Krasovsky 1940 semi-major axis used by GCJ-02
_EE = 0.00669342162296594323


@lru_cache(maxsize=64)
def transformer(src: Any, dst: Any) -> Transformer:
    """A cached transformer that always takes and gives (x=lon/easting, y=lat/northing).

    Examples
    --------
    >>> x, y = transformer("EPSG:4326", "EPSG:32650").transform(117.0, 0.0)
    >>> round(x), round(y)
    (500000, 0)
    """
    return Transformer.from_crs(
        CRS.from_user_input(src), CRS.from_user_input(dst), always_xy=True
    )


def metric_crs_for(geom_or_bounds: Any) -> CRS:
    """A projected CRS (UTM zone on WGS84) for measuring near the given lon/lat data.

    Parameters
    ----------
    geom_or_bounds
        A shapely geometry, a GeoDataFrame/GeoSeries in EPSG:4326, or a
        ``(minx, miny, maxx, maxy)`` tuple in degrees.

    Examples
    --------
    >>> metric_crs_for((9.47, 47.05, 9.64, 47.27)).to_epsg()
    32632
    >>> metric_crs_for((118.7, 28.8, 119.2, 29.2)).to_epsg()
    32650
    """
    if isinstance(geom_or_bounds, gpd.GeoDataFrame | gpd.GeoSeries):
        minx, miny, maxx, maxy = geom_or_bounds.to_crs(STORAGE_CRS).total_bounds
    elif isinstance(geom_or_bounds, shapely.Geometry):
        minx, miny, maxx, maxy = geom_or_bounds.bounds
    else:
        minx, miny, maxx, maxy = geom_or_bounds
    lon, lat = (minx + maxx) / 2, (miny + maxy) / 2
    zone = int(np.floor((lon + 180) / 6)) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def to_metric(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """``gdf`` in the metric CRS of :func:`metric_crs_for` (for areas and distances)."""
    return gdf.to_crs(metric_crs_for(gdf))


def _out_of_china(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _delta(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = lon - 105.0, lat - 35.0
    sq = np.sqrt(np.abs(x))
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sq
    dlat += (
        (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    )
    dlat += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    dlat += (
        (160.0 * np.sin(y / 12.0 * np.pi) + 320 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    )
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sq
    dlon += (
        (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    )
    dlon += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    dlon += (
        (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi))
        * 2.0
        / 3.0
    )
    rad = lat / 180.0 * np.pi
    magic = 1 - _EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad) * np.pi)
    return dlon, dlat


def wgs84_to_gcj02(lon: Any, lat: Any) -> tuple[Any, Any]:
    """WGS84 → GCJ-02 (the shifted coordinates of Gaode/AMap, Tencent); vectorised.

    Points outside mainland China's box are returned unchanged.

    Examples
    --------
    >>> lon, lat = wgs84_to_gcj02(116.397128, 39.916527)
    >>> round(float(lon), 5), round(float(lat), 5)
    (116.40337, 39.91793)
    """
    lon_a = np.asarray(lon, dtype="float64")
    lat_a = np.asarray(lat, dtype="float64")
    dlon, dlat = _delta(lon_a, lat_a)
    out = _out_of_china(lon_a, lat_a)
    return np.where(out, lon_a, lon_a + dlon), np.where(out, lat_a, lat_a + dlat)


def gcj02_to_wgs84(
    lon: Any, lat: Any, *, tol_deg: float = 1e-9, max_iter: int = 30
) -> tuple[Any, Any]:
    """GCJ-02 → WGS84 by fixed-point iteration of the forward formula (< 1e-7° error).

    Examples
    --------
    >>> lon, lat = gcj02_to_wgs84(116.403370, 39.917926)
    >>> round(float(lon), 5), round(float(lat), 5)
    (116.39713, 39.91652)
    """
    g_lon = np.asarray(lon, dtype="float64")
    g_lat = np.asarray(lat, dtype="float64")
    w_lon, w_lat = g_lon.copy(), g_lat.copy()
    for _ in range(max_iter):
        f_lon, f_lat = wgs84_to_gcj02(w_lon, w_lat)
        e_lon, e_lat = f_lon - g_lon, f_lat - g_lat
        w_lon = w_lon - e_lon
        w_lat = w_lat - e_lat
        if np.all(np.abs(e_lon) < tol_deg) and np.all(np.abs(e_lat) < tol_deg):
            break
    return w_lon, w_lat


def _transform_geoms(geoms: Any, fn: Any) -> np.ndarray:
    arr = np.asarray(geoms, dtype=object)

    def apply(coords: np.ndarray) -> np.ndarray:
        x, y = fn(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(arr, apply)


def gcj02_to_wgs84_geoms(geoms: Any) -> np.ndarray:
    """GCJ-02 → WGS84 for an array of shapely geometries."""
    return _transform_geoms(geoms, gcj02_to_wgs84)


def wgs84_to_gcj02_geoms(geoms: Any) -> np.ndarray:
    """WGS84 → GCJ-02 for an array of shapely geometries (for rendering only)."""
    return _transform_geoms(geoms, wgs84_to_gcj02)


def looks_swapped(
    x: np.ndarray,
    y: np.ndarray,
    *,
    bounds: tuple[float, float, float, float] | None = None,
) -> bool:
    """True when coordinates look like (lat, lon) given as (lon, lat).

    Either every ``|x| ≤ 90`` while some ``|y| > 90`` (a latitude cannot exceed
    90), or, with ``bounds`` (the lon/lat box the data should fall in, e.g. the
    loaded admin areas), fewer than half the points fall in the box as given
    but at least 90 % do once swapped.

    Examples
    --------
    >>> import numpy as np
    >>> looks_swapped(np.array([28.9]), np.array([118.9]))
    True
    >>> looks_swapped(np.array([47.1]), np.array([9.5]), bounds=(9.4, 47.0, 9.7, 47.3))
    True
    >>> looks_swapped(np.array([9.5]), np.array([47.1]), bounds=(9.4, 47.0, 9.7, 47.3))
    False
    """
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    if x.size == 0:
        return False
    if np.all(np.abs(x) <= 90) and np.any(np.abs(y) > 90):
        return True
    if bounds is None:
        return False
    minx, miny, maxx, maxy = bounds
    pad_x, pad_y = (maxx - minx) * 0.1, (maxy - miny) * 0.1

    def share(px: np.ndarray, py: np.ndarray) -> float:
        inside = (
            (px >= minx - pad_x)
            & (px <= maxx + pad_x)
            & (py >= miny - pad_y)
            & (py <= maxy + pad_y)
        )
        return float(inside.mean())

    return share(x, y) < 0.5 and share(y, x) >= 0.9
