"""CRS rules in one place: storage CRS, transformers, metric CRS, GCJ-02, BD-09, axis order."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final

import numpy as np
import pyproj
import shapely
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "CHINA_BOUNDS",
    "GCJ02_A",
    "GCJ02_EE",
    "STORAGE_CRS",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "bd09_to_wgs84_geoms",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "gcj02_to_wgs84_geoms",
    "looks_swapped",
    "metric_crs_for",
    "to_metric",
    "transformer",
    "utm_epsg",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
    "wgs84_to_gcj02_geoms",
]

#: CRS of every stored geometry: WGS 84 longitude/latitude, always in
#: (x=lon, y=lat) order.
STORAGE_CRS: Final = "EPSG:4326"

#: Semi-major axis of the Krasovsky 1940 ellipsoid used by the GCJ-02 offset.
GCJ02_A: Final = 6378245.0
#: First eccentricity squared of the Krasovsky 1940 ellipsoid.
GCJ02_EE: Final = 0.00669342162296594323
#: (min_lon, min_lat, max_lon, max_lat) of the usual "in mainland China" box;
#: GCJ-02 is the identity outside it.
CHINA_BOUNDS: Final = (72.004, 0.8293, 137.8347, 55.8271)

CrsLike = Any  # anything pyproj.CRS.from_user_input accepts


# ---------------------------------------------------------------------------
# Transformers
# ---------------------------------------------------------------------------


def _crs_cache_key(crs: CrsLike) -> str | int:
    if isinstance(crs, str | int) and not isinstance(crs, bool):
        return crs
    return pyproj.CRS.from_user_input(crs).to_wkt()


@lru_cache(maxsize=256)
def _cached_transformer(src: str | int, dst: str | int) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(src, dst, always_xy=True)


def transformer(src: CrsLike, dst: CrsLike) -> pyproj.Transformer:
    """Return a cached ``pyproj.Transformer`` from ``src`` to ``dst``.

    The transformer is always built with ``always_xy=True``: geographic
    coordinates go in and come out as (longitude, latitude), projected ones
    as (easting, northing), whatever the axis order of the CRS definition.
    Transformers are cached by CRS (strings and EPSG codes as given, other
    inputs by their WKT); pyproj transformers are thread-safe since 3.1.

    Parameters
    ----------
    src, dst : str, int, pyproj.CRS or any ``CRS.from_user_input`` value
        Source and target CRS.

    Returns
    -------
    pyproj.Transformer

    Examples
    --------
    >>> t = transformer(STORAGE_CRS, "EPSG:32650")
    >>> x, y = t.transform(117.0, 0.0)
    >>> round(x, 3), round(y, 3)
    (500000.0, 0.0)
    >>> transformer(STORAGE_CRS, "EPSG:32650") is t
    True
    """
    return _cached_transformer(_crs_cache_key(src), _crs_cache_key(dst))


# ---------------------------------------------------------------------------
# Metric CRS
# ---------------------------------------------------------------------------


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 / UTM zone containing a lon/lat point.

    Includes the standard exceptions (zone 32V for south-west Norway and the
    Svalbard zones 31X-37X).

    Parameters
    ----------
    lon, lat : float
        Longitude and latitude in degrees.

    Returns
    -------
    int
        ``326zz`` north of the equator, ``327zz`` south of it.

    Examples
    --------
    >>> utm_epsg(9.5, 47.1), utm_epsg(118.87, 28.94), utm_epsg(-70.0, -33.0)
    (32632, 32650, 32719)
    """
    if not (math.isfinite(lon) and math.isfinite(lat)) or abs(lat) > 90:
        raise ValueError(f"not a valid lon/lat position: ({lon!r}, {lat!r})")
    lon = (lon + 180.0) % 360.0 - 180.0
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    if 56.0 <= lat < 64.0 and 3.0 <= lon < 12.0:
        zone = 32
    elif 72.0 <= lat < 84.0 and 0.0 <= lon < 42.0:
        zone = 31 if lon < 9.0 else 33 if lon < 21.0 else 35 if lon < 33.0 else 37
    return (32600 if lat >= 0 else 32700) + zone


def _lonlat_center(data: Any) -> tuple[float, float]:
    """Centre (lon, lat) of geometries, a GeoSeries/GeoDataFrame or bounds."""
    if isinstance(data, shapely.Geometry):
        if data.is_empty:
            raise ValueError("cannot choose a metric CRS for an empty geometry")
        c = data.centroid
        return float(c.x), float(c.y)
    if hasattr(data, "total_bounds") and hasattr(data, "crs"):
        if data.crs is None:
            raise ValueError(
                f"data has no CRS; set it first (stored data is {STORAGE_CRS}, lon/lat)"
            )
        x0, y0, x1, y1 = (float(v) for v in data.total_bounds)
        crs = pyproj.CRS.from_user_input(data.crs)
        if all(math.isfinite(v) for v in (x0, y0, x1, y1)) and not crs.equals(
            pyproj.CRS.from_user_input(STORAGE_CRS), ignore_axis_order=True
        ):
            x0, y0, x1, y1 = transformer(crs, STORAGE_CRS).transform_bounds(
                x0, y0, x1, y1
            )
        bounds = (x0, y0, x1, y1)
    else:
        arr = np.asarray(data, dtype=object)
        if (
            arr.ndim == 1
            and arr.size == 4
            and all(isinstance(v, int | float | np.integer | np.floating) for v in arr)
        ):
            x0, y0, x1, y1 = (float(v) for v in arr)
        else:
            x0, y0, x1, y1 = (float(v) for v in shapely.total_bounds(arr))
        bounds = (x0, y0, x1, y1)
    minx, miny, maxx, maxy = bounds
    if not all(math.isfinite(v) for v in bounds):
        raise ValueError("cannot choose a metric CRS for empty data")
    return (minx + maxx) / 2.0, (miny + maxy) / 2.0


def metric_crs_for(geom_or_bounds: Any) -> pyproj.CRS:
    """Projected CRS for measuring area and distance around some data.

    The WGS 84 / UTM zone (EPSG:326zz north, 327zz south) containing the
    centre of the data: the centroid of a single geometry, the centre of the
    bounding box otherwise.  Within one zone (6 degrees of longitude) the
    scale error is below 0.1 %, which is plenty for grid sizes and areas.

    Parameters
    ----------
    geom_or_bounds : shapely geometry, array of geometries, GeoSeries,
        GeoDataFrame or ``(min_lon, min_lat, max_lon, max_lat)``
        Plain geometries and bounds are taken as lon/lat
        (:data:`STORAGE_CRS`); GeoSeries and GeoDataFrames are taken in their
        own CRS, which must be set.

    Returns
    -------
    pyproj.CRS

    Raises
    ------
    ValueError
        For empty data, a GeoDataFrame without a CRS, or an impossible
        latitude (often swapped axes, see :func:`looks_swapped`).

    Examples
    --------
    >>> metric_crs_for((9.47, 47.05, 9.64, 47.27)).to_epsg()  # Liechtenstein
    32632
    >>> from shapely import Point
    >>> metric_crs_for(Point(118.87, 28.94)).to_epsg()  # Quzhou
    32650
    """
    lon, lat = _lonlat_center(geom_or_bounds)
    return pyproj.CRS.from_epsg(utm_epsg(lon, lat))


def to_metric(gdf: Any) -> Any:
    """Reproject a GeoDataFrame (or GeoSeries) to :func:`metric_crs_for` it.

    Parameters
    ----------
    gdf : geopandas.GeoDataFrame or geopandas.GeoSeries
        Data with a CRS set.

    Returns
    -------
    geopandas.GeoDataFrame or geopandas.GeoSeries
        A reprojected copy in metres.

    Examples
    --------
    >>> import geopandas as gpd
    >>> from shapely import box
    >>> g = gpd.GeoSeries([box(118.87, 28.94, 118.88, 28.95)], crs=STORAGE_CRS)
    >>> m = to_metric(g)
    >>> m.crs.to_epsg(), round(float(m.area.iloc[0]) / 1e6, 2)  # km2
    (32650, 1.08)
    """
    return gdf.to_crs(metric_crs_for(gdf))


# ---------------------------------------------------------------------------
# GCJ-02
# ---------------------------------------------------------------------------

FloatOrArray = float | NDArray[np.float64]


def _gcj02_offset(
    lon: NDArray[np.float64], lat: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The GCJ-02 offset (dlon, dlat) in degrees at WGS 84 positions."""
    x = lon - 105.0
    y = lat - 35.0
    pi = np.pi
    common = (20.0 * np.sin(6.0 * x * pi) + 20.0 * np.sin(2.0 * x * pi)) * 2.0 / 3.0
    sqrt_abs_x = np.sqrt(np.abs(x))
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x
    dlat += common
    dlat += (20.0 * np.sin(y * pi) + 40.0 * np.sin(y / 3.0 * pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * pi) + 320.0 * np.sin(y * pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x
    dlon += common
    dlon += (20.0 * np.sin(x * pi) + 40.0 * np.sin(x / 3.0 * pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * pi) + 300.0 * np.sin(x / 30.0 * pi)) * 2.0 / 3.0
    rad_lat = lat / 180.0 * pi
    magic = 1.0 - GCJ02_EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((GCJ02_A * (1.0 - GCJ02_EE)) / (magic * sqrt_magic) * pi)
    dlon = (dlon * 180.0) / (GCJ02_A / sqrt_magic * np.cos(rad_lat) * pi)
    return dlon, dlat


def _in_china(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> NDArray[np.bool_]:
    min_lon, min_lat, max_lon, max_lat = CHINA_BOUNDS
    return (lon >= min_lon) & (lon <= max_lon) & (lat >= min_lat) & (lat <= max_lat)


def _as_float_arrays(
    lon: ArrayLike, lat: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], bool]:
    scalar = np.ndim(lon) == 0 and np.ndim(lat) == 0
    lon_a, lat_a = np.broadcast_arrays(
        np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    )
    return lon_a, lat_a, scalar


def _result(
    lon: NDArray[np.float64], lat: NDArray[np.float64], scalar: bool
) -> tuple[FloatOrArray, FloatOrArray]:
    if scalar:
        return float(lon), float(lat)
    return lon, lat


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatOrArray, FloatOrArray]:
    """Convert WGS 84 lon/lat to GCJ-02 ("Mars coordinates").

    The standard published offset formula on the Krasovsky ellipsoid
    (``a = 6378245.0``, ``ee = 0.00669342162296594323``).  Points outside
    :data:`CHINA_BOUNDS` are returned unchanged; NaN stays NaN.

    Parameters
    ----------
    lon, lat : float or array_like
        WGS 84 longitude and latitude in degrees; broadcast together.

    Returns
    -------
    tuple of (float, float) or (ndarray, ndarray)
        GCJ-02 longitude and latitude; floats for scalar input.

    Examples
    --------
    >>> lon, lat = wgs84_to_gcj02(116.404, 39.915)
    >>> round(lon, 8), round(lat, 8)
    (116.4102445, 39.91640428)
    >>> wgs84_to_gcj02(9.52, 47.14)  # Vaduz: outside China, unchanged
    (9.52, 47.14)
    """
    lon_a, lat_a, scalar = _as_float_arrays(lon, lat)
    with np.errstate(invalid="ignore"):
        dlon, dlat = _gcj02_offset(lon_a, lat_a)
        inside = _in_china(lon_a, lat_a)
    out_lon = np.where(inside, lon_a + dlon, lon_a)
    out_lat = np.where(inside, lat_a + dlat, lat_a)
    return _result(out_lon, out_lat, scalar)


def gcj02_to_wgs84(
    lon: ArrayLike,
    lat: ArrayLike,
    *,
    tol: float = 1e-10,
    max_iter: int = 20,
) -> tuple[FloatOrArray, FloatOrArray]:
    """Convert GCJ-02 lon/lat back to WGS 84 by fixed-point iteration.

    Solves ``wgs84_to_gcj02(w) = g`` with ``w <- g - offset(w)``, starting
    from ``w = g``.  Each step gains about two to three digits; the default
    tolerance is reached after 4-5 steps, far below 1e-7 degrees (1 cm).
    Points whose GCJ-02 position is outside :data:`CHINA_BOUNDS` are returned
    unchanged.

    Parameters
    ----------
    lon, lat : float or array_like
        GCJ-02 longitude and latitude in degrees; broadcast together.
    tol : float, optional
        Stop when no coordinate moved more than this (degrees).
    max_iter : int, optional
        Upper bound on the number of iterations.

    Returns
    -------
    tuple of (float, float) or (ndarray, ndarray)
        WGS 84 longitude and latitude; floats for scalar input.

    Examples
    --------
    >>> lon, lat = gcj02_to_wgs84(116.41024449916938, 39.91640428150164)
    >>> round(lon, 9), round(lat, 9)
    (116.404, 39.915)
    """
    g_lon, g_lat, scalar = _as_float_arrays(lon, lat)
    inside = _in_china(g_lon, g_lat)
    w_lon = np.array(g_lon, dtype=np.float64, copy=True)
    w_lat = np.array(g_lat, dtype=np.float64, copy=True)
    if inside.any():
        gi_lon, gi_lat = g_lon[inside], g_lat[inside]
        wi_lon, wi_lat = gi_lon.copy(), gi_lat.copy()
        for _ in range(max_iter):
            dlon, dlat = _gcj02_offset(wi_lon, wi_lat)
            new_lon = gi_lon - dlon
            new_lat = gi_lat - dlat
            step = max(
                float(np.max(np.abs(new_lon - wi_lon))),
                float(np.max(np.abs(new_lat - wi_lat))),
            )
            wi_lon, wi_lat = new_lon, new_lat
            if step <= tol:
                break
        w_lon[inside] = wi_lon
        w_lat[inside] = wi_lat
    return _result(w_lon, w_lat, scalar)


def _geoms_transform(
    geoms: Any, fn: Callable[[ArrayLike, ArrayLike], tuple[FloatOrArray, FloatOrArray]]
) -> Any:
    def apply(coords: NDArray[np.float64]) -> NDArray[np.float64]:
        out = coords.copy()
        lon, lat = fn(coords[:, 0], coords[:, 1])
        out[:, 0] = lon
        out[:, 1] = lat
        return out

    gpd = sys.modules.get("geopandas")
    if gpd is not None and isinstance(geoms, gpd.GeoSeries):
        values = shapely.transform(np.asarray(geoms.values), apply, include_z=None)
        return gpd.GeoSeries(values, index=geoms.index, crs=geoms.crs, name=geoms.name)
    return shapely.transform(geoms, apply, include_z=None)


def wgs84_to_gcj02_geoms(geoms: Any) -> Any:
    """Apply :func:`wgs84_to_gcj02` to every vertex of shapely geometries.

    Parameters
    ----------
    geoms : shapely geometry, array_like of geometries, or GeoSeries
        Geometries in WGS 84 lon/lat.  Z values are kept.

    Returns
    -------
    Same kind as the input
        A geometry, an ndarray of geometries, or a GeoSeries with the same
        index and CRS label (GCJ-02 has no EPSG code; the label is kept).

    Examples
    --------
    >>> from shapely import Point
    >>> p = wgs84_to_gcj02_geoms(Point(116.404, 39.915))
    >>> round(p.x, 6), round(p.y, 6)
    (116.410244, 39.916404)
    """
    return _geoms_transform(geoms, wgs84_to_gcj02)


def gcj02_to_wgs84_geoms(geoms: Any) -> Any:
    """Apply :func:`gcj02_to_wgs84` to every vertex of shapely geometries.

    Parameters
    ----------
    geoms : shapely geometry, array_like of geometries, or GeoSeries
        Geometries in GCJ-02 lon/lat (e.g. digitised on AMap / Tencent
        tiles).  Z values are kept.

    Returns
    -------
    Same kind as the input
        A geometry, an ndarray of geometries, or a GeoSeries.

    Examples
    --------
    >>> from shapely import LineString
    >>> line = gcj02_to_wgs84_geoms(LineString([(116.41, 39.92), (9.5, 47.1)]))
    >>> [tuple(round(v, 4) for v in xy) for xy in line.coords]
    [(116.4038, 39.9186), (9.5, 47.1)]
    """
    return _geoms_transform(geoms, gcj02_to_wgs84)


# ---------------------------------------------------------------------------
# BD-09 (Baidu maps): a rotation and shift of GCJ-02
# ---------------------------------------------------------------------------

_BD09_X_PI: Final = math.pi * 3000.0 / 180.0


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatOrArray, FloatOrArray]:
    """Convert GCJ-02 lon/lat to BD-09 (Baidu maps), the standard formula.

    ``z = sqrt(x² + y²) + 0.00002·sin(y·π·3000/180)``,
    ``θ = atan2(y, x) + 0.000003·cos(x·π·3000/180)``,
    ``bd = (z·cos θ + 0.0065, z·sin θ + 0.006)``.  Applied everywhere (Baidu
    shifts points outside China too); NaN stays NaN.

    Examples
    --------
    >>> lon, lat = gcj02_to_bd09(116.404, 39.915)
    >>> round(lon, 8), round(lat, 8)
    (116.41036949, 39.92133699)
    """
    x, y, scalar = _as_float_arrays(lon, lat)
    z = np.hypot(x, y) + 0.00002 * np.sin(y * _BD09_X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _BD09_X_PI)
    return _result(z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006, scalar)


def bd09_to_gcj02(
    lon: ArrayLike, lat: ArrayLike, *, tol: float = 1e-10, max_iter: int = 10
) -> tuple[FloatOrArray, FloatOrArray]:
    """Convert BD-09 lon/lat to GCJ-02.

    Starts from the standard closed formula (``x = lon - 0.0065``,
    ``y = lat - 0.006``, ``z = sqrt(x² + y²) - 0.00002·sin(y·π·3000/180)``,
    ``θ = atan2(y, x) - 0.000003·cos(x·π·3000/180)``, ``gcj = (z·cos θ,
    z·sin θ)``), which is only an approximate inverse of
    :func:`gcj02_to_bd09` (off by up to 2e-6 degrees, about 0.2 m), then
    refines it by fixed-point iteration on :func:`gcj02_to_bd09` until no
    coordinate moves more than ``tol`` degrees.

    Examples
    --------
    >>> lon, lat = bd09_to_gcj02(116.41036949371029, 39.92133699351021)
    >>> round(lon, 9), round(lat, 9)
    (116.404, 39.915)
    """
    b_lon, b_lat, scalar = _as_float_arrays(lon, lat)
    x = b_lon - 0.0065
    y = b_lat - 0.006
    z = np.hypot(x, y) - 0.00002 * np.sin(y * _BD09_X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _BD09_X_PI)
    g_lon = z * np.cos(theta)
    g_lat = z * np.sin(theta)
    if g_lon.size:
        with np.errstate(invalid="ignore"):
            for _ in range(max_iter):
                f_lon, f_lat = gcj02_to_bd09(g_lon, g_lat)
                d_lon = b_lon - np.asarray(f_lon)
                d_lat = b_lat - np.asarray(f_lat)
                g_lon = g_lon + d_lon
                g_lat = g_lat + d_lat
                step = np.nanmax(
                    np.abs(np.concatenate([d_lon.ravel(), d_lat.ravel()])), initial=0.0
                )
                if not step > tol:
                    break
    return _result(g_lon, g_lat, scalar)


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatOrArray, FloatOrArray]:
    """WGS 84 → GCJ-02 → BD-09 (see :func:`wgs84_to_gcj02`, :func:`gcj02_to_bd09`)."""
    g_lon, g_lat = wgs84_to_gcj02(lon, lat)
    return gcj02_to_bd09(g_lon, g_lat)


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatOrArray, FloatOrArray]:
    """BD-09 → GCJ-02 → WGS 84 (see :func:`bd09_to_gcj02`, :func:`gcj02_to_wgs84`).

    Examples
    --------
    >>> lon, lat = bd09_to_wgs84(*wgs84_to_bd09(118.87, 28.94))
    >>> round(lon, 9), round(lat, 9)
    (118.87, 28.94)
    """
    g_lon, g_lat = bd09_to_gcj02(lon, lat)
    return gcj02_to_wgs84(g_lon, g_lat)


def bd09_to_wgs84_geoms(geoms: Any) -> Any:
    """Apply :func:`bd09_to_wgs84` to every vertex of shapely geometries.

    Parameters
    ----------
    geoms : shapely geometry, array_like of geometries, or GeoSeries
        Geometries in BD-09 lon/lat (picked on Baidu maps).  Z values are kept.

    Returns
    -------
    Same kind as the input
        A geometry, an ndarray of geometries, or a GeoSeries.
    """
    return _geoms_transform(geoms, bd09_to_wgs84)


# ---------------------------------------------------------------------------
# Axis order
# ---------------------------------------------------------------------------


def looks_swapped(
    x: ArrayLike,
    y: ArrayLike,
    *,
    bounds: tuple[float, float, float, float] | None = None,
) -> bool:
    """Tell whether lon/lat coordinates look like they are in (lat, lon) order.

    Two rules, on the finite pairs only:

    1. Without any expectation: every ``|x| <= 90`` while some
       ``90 < |y| <= 180``.  A latitude can never exceed 90, so ``y`` must be
       holding longitudes.  (Data where both fit in +-90, like China or
       Europe, cannot be judged this way: use ``bounds``.)
    2. With ``bounds = (min_lon, min_lat, max_lon, max_lat)`` of where the
       data is expected (e.g. the known admin areas): most points (more than
       half) fall outside the box while most swapped points ``(y, x)`` fall
       inside it.

    Projected coordinates (``|y| > 180``) never count as swapped.

    Parameters
    ----------
    x, y : array_like
        The coordinates as given (supposed to be lon, lat).
    bounds : tuple of 4 floats, optional
        Expected lon/lat box.

    Returns
    -------
    bool
        True if the axes look swapped; False when they look fine or cannot
        be judged (no finite points).

    Examples
    --------
    >>> looks_swapped([47.1, 47.2], [9.5, 170.0])  # lat, lon order
    True
    >>> looks_swapped([28.9, 29.0], [118.8, 118.9])  # Quzhou, swapped
    True
    >>> quzhou = (118.0, 28.0, 119.5, 29.5)
    >>> looks_swapped([47.1], [9.5], bounds=(9.47, 47.05, 9.64, 47.27))
    True
    >>> looks_swapped([118.8, 118.9], [28.9, 29.0], bounds=quzhou)
    False
    """
    xs = np.asarray(x, dtype=np.float64).ravel()
    ys = np.asarray(y, dtype=np.float64).ravel()
    xs, ys = np.broadcast_arrays(xs, ys)
    finite = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[finite], ys[finite]
    if xs.size == 0:
        return False
    ax, ay = np.abs(xs), np.abs(ys)
    if (
        bool(np.all(ax <= 90.0))
        and bool(np.all(ay <= 180.0))
        and bool(np.any(ay > 90.0))
    ):
        return True
    if bounds is not None:
        min_lon, min_lat, max_lon, max_lat = bounds
        inside = (xs >= min_lon) & (xs <= max_lon) & (ys >= min_lat) & (ys <= max_lat)
        swapped = (ys >= min_lon) & (ys <= max_lon) & (xs >= min_lat) & (xs <= max_lat)
        return bool(inside.mean() < 0.5 and swapped.mean() > 0.5)
    return False
