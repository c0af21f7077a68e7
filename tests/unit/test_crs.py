"""Tests for geo.crs: transformers, metric CRS, GCJ-02 and axis-order checks."""

from __future__ import annotations

import doctest

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import shapely
from shapely import LineString, Point, Polygon, box

import geo.crs
from geo.crs import (
    CHINA_BOUNDS,
    STORAGE_CRS,
    gcj02_to_wgs84,
    gcj02_to_wgs84_geoms,
    looks_swapped,
    metric_crs_for,
    to_metric,
    transformer,
    utm_epsg,
    wgs84_to_gcj02,
    wgs84_to_gcj02_geoms,
)

GEOD = pyproj.Geod(ellps="WGS84")


# ---------------------------------------------------------------------------
# GCJ-02
# ---------------------------------------------------------------------------


def test_gcj02_published_reference_point() -> None:
    # wandergis/coordtransform's documented example (test/app.js):
    # wgs84togcj02(116.404, 39.915) -> [116.41024449916938, 39.91640428150164]
    lon, lat = wgs84_to_gcj02(116.404, 39.915)
    assert lon == pytest.approx(116.41024449916938, abs=1e-12)
    assert lat == pytest.approx(39.91640428150164, abs=1e-12)


def test_gcj02_tiananmen_pair() -> None:
    # The commonly cited Tiananmen pair WGS84 (116.397128, 39.916527) ->
    # GCJ-02 ~(116.403370, 39.917926).  The formula gives (116.4033725,
    # 39.9179307): the cited values are rounded/approximate (< 0.6 m apart).
    lon, lat = wgs84_to_gcj02(116.397128, 39.916527)
    assert lon == pytest.approx(116.403370, abs=1e-5)
    assert lat == pytest.approx(39.917926, abs=1e-5)
    assert lon == pytest.approx(116.40337249402477, abs=1e-12)
    assert lat == pytest.approx(39.91793074924595, abs=1e-12)
    back = gcj02_to_wgs84(lon, lat)
    assert back[0] == pytest.approx(116.397128, abs=1e-9)
    assert back[1] == pytest.approx(39.916527, abs=1e-9)


def test_gcj02_zhejiang_shift_is_about_500_m() -> None:
    lon, lat = 118.87, 28.94  # Quzhou, Zhejiang
    glon, glat = wgs84_to_gcj02(lon, lat)
    _, _, dist = GEOD.inv(lon, lat, glon, glat)
    assert 450.0 < dist < 700.0
    assert glon > lon and glat < lat  # shifted east and south here


def test_gcj02_round_trip_random_grid_in_china() -> None:
    rng = np.random.default_rng(20240601)
    lon = rng.uniform(75.0, 135.0, 10_000)
    lat = rng.uniform(18.0, 53.0, 10_000)
    glon, glat = wgs84_to_gcj02(lon, lat)
    assert np.all(np.hypot(glon - lon, glat - lat) > 1e-4)  # really shifted
    wlon, wlat = gcj02_to_wgs84(glon, glat)
    assert np.max(np.abs(wlon - lon)) < 1e-6
    assert np.max(np.abs(wlat - lat)) < 1e-6
    # in fact far better than required
    assert np.max(np.abs(wlon - lon)) < 1e-9
    assert np.max(np.abs(wlat - lat)) < 1e-9


def test_gcj02_inverse_is_better_than_single_subtraction() -> None:
    glon, glat = 118.87477665149686, 28.936875794640905
    wlon, wlat = gcj02_to_wgs84(glon, glat)
    crude_lon = 2 * glon - wgs84_to_gcj02(glon, glat)[0]
    assert abs(wlon - 118.87) < 1e-9 and abs(wlat - 28.94) < 1e-9
    assert abs(crude_lon - 118.87) > 1e-7  # the crude method is off


@pytest.mark.parametrize(
    ("lon", "lat"),
    [
        (9.5209, 47.1410),  # Vaduz
        (-74.0, 40.7),  # New York
        (139.7, 35.7),  # Tokyo: east of the box
        (100.0, 0.5),  # south of the box
        (60.0, 40.0),  # west of the box
        (120.0, 60.0),  # north of the box
    ],
)
def test_gcj02_identity_outside_china(lon: float, lat: float) -> None:
    assert wgs84_to_gcj02(lon, lat) == (lon, lat)
    assert gcj02_to_wgs84(lon, lat) == (lon, lat)


def test_gcj02_box_edges() -> None:
    min_lon, min_lat, max_lon, max_lat = CHINA_BOUNDS
    assert wgs84_to_gcj02(min_lon - 1e-9, 30.0) == (min_lon - 1e-9, 30.0)
    assert wgs84_to_gcj02(min_lon, 30.0) != (min_lon, 30.0)
    assert wgs84_to_gcj02(110.0, max_lat + 1e-9) == (110.0, max_lat + 1e-9)
    assert wgs84_to_gcj02(110.0, min_lat - 1e-9) == (110.0, min_lat - 1e-9)
    assert wgs84_to_gcj02(max_lon + 1e-9, 30.0) == (max_lon + 1e-9, 30.0)
    assert wgs84_to_gcj02(max_lon, 30.0) != (max_lon, 30.0)


def test_gcj02_vectorised_shapes_and_types() -> None:
    lon, lat = wgs84_to_gcj02(116.404, 39.915)
    assert isinstance(lon, float) and isinstance(lat, float)

    lons = np.array([[116.404, 9.5], [118.87, 121.47]])
    lats = np.array([[39.915, 47.1], [28.94, 31.23]])
    glon, glat = wgs84_to_gcj02(lons, lats)
    assert (
        isinstance(glon, np.ndarray) and glon.shape == (2, 2) and glat.shape == (2, 2)
    )
    assert glon[0, 0] == pytest.approx(116.41024449916938, abs=1e-12)
    assert (glon[0, 1], glat[0, 1]) == (9.5, 47.1)
    wlon, wlat = gcj02_to_wgs84(glon, glat)
    np.testing.assert_allclose(wlon, lons, atol=1e-9)
    np.testing.assert_allclose(wlat, lats, atol=1e-9)

    # lists and broadcasting of a scalar against an array
    glon, glat = wgs84_to_gcj02([116.404, 118.87], 30.0)
    assert glon.shape == (2,) and glat.shape == (2,)

    # NaN in, NaN out; empty in, empty out
    glon, glat = wgs84_to_gcj02(np.array([np.nan, 116.404]), np.array([30.0, np.nan]))
    assert np.isnan(glon[0]) and np.isnan(glat[1])
    wlon, wlat = gcj02_to_wgs84(np.array([np.nan, 116.404]), np.array([30.0, 39.9]))
    assert np.isnan(wlon[0]) and np.isfinite(wlon[1])
    glon, glat = wgs84_to_gcj02(np.array([]), np.array([]))
    assert glon.shape == (0,)
    wlon, wlat = gcj02_to_wgs84(np.array([]), np.array([]))
    assert wlon.shape == (0,)


def test_gcj02_geometries() -> None:
    poly = Polygon([(118.86, 28.93), (118.88, 28.93), (118.88, 28.95), (118.86, 28.93)])
    geoms = np.array(
        [Point(118.87, 28.94), poly, LineString([(9.5, 47.1), (9.6, 47.2)])]
    )
    moved = wgs84_to_gcj02_geoms(geoms)
    assert isinstance(moved, np.ndarray) and moved.shape == (3,)
    expected = wgs84_to_gcj02(118.87, 28.94)
    assert moved[0].x == pytest.approx(expected[0]) and moved[0].y == pytest.approx(
        expected[1]
    )
    assert moved[2].equals(geoms[2])  # outside China: unchanged
    back = gcj02_to_wgs84_geoms(moved)
    for a, b in zip(back, geoms, strict=True):
        np.testing.assert_allclose(
            shapely.get_coordinates(a), shapely.get_coordinates(b), atol=1e-9
        )

    # single geometry in, single geometry out; Z values are kept
    p3 = wgs84_to_gcj02_geoms(Point(118.87, 28.94, 55.0))
    assert isinstance(p3, Point) and p3.has_z and p3.z == 55.0

    # GeoSeries keeps index, name and CRS label
    s = gpd.GeoSeries(geoms, index=[10, 20, 30], crs=STORAGE_CRS, name="g")
    out = wgs84_to_gcj02_geoms(s)
    assert isinstance(out, gpd.GeoSeries)
    assert list(out.index) == [10, 20, 30] and out.crs == s.crs and out.name == "g"
    assert out.iloc[0].equals_exact(moved[0], 0)


# ---------------------------------------------------------------------------
# Transformers and metric CRS
# ---------------------------------------------------------------------------


def test_transformer_axis_order_and_known_utm_coordinate() -> None:
    t = transformer(STORAGE_CRS, "EPSG:32650")
    # On the central meridian of zone 50 (117 E): easting is the false
    # easting and northing is k0 * meridian arc; the WGS84 arc to 45 deg is
    # 4 984 944.378 m, times 0.9996 = 4 982 950.400 m.
    x, y = t.transform(117.0, 45.0)
    assert x == pytest.approx(500_000.0, abs=1e-3)
    assert y == pytest.approx(4_982_950.400, abs=1e-2)
    # EPSG:4326 is lat/lon by definition; always_xy means lon comes first.
    assert t.transform(117.0, 0.0) == pytest.approx((500_000.0, 0.0), abs=1e-6)
    # lat/lon order would be nonsense for this zone
    bad = t.transform(45.0, 117.0)
    assert not np.isfinite(bad[0]) or abs(bad[0] - 500_000.0) > 1e6

    # back: metres in, lon/lat out
    inv = transformer("EPSG:32650", STORAGE_CRS)
    lon, lat = inv.transform(x, y)
    assert (lon, lat) == pytest.approx((117.0, 45.0), abs=1e-9)


def test_transformer_is_cached_and_accepts_crs_objects() -> None:
    assert transformer(STORAGE_CRS, "EPSG:32632") is transformer(
        STORAGE_CRS, "EPSG:32632"
    )
    a = transformer(pyproj.CRS.from_epsg(4326), pyproj.CRS.from_epsg(32632))
    assert a is transformer(pyproj.CRS.from_epsg(4326), pyproj.CRS.from_epsg(32632))
    x, _ = a.transform(9.0, 47.0)  # central meridian of zone 32
    assert x == pytest.approx(500_000.0, abs=1e-3)
    assert transformer(4326, 32632).transform(9.0, 0.0) == pytest.approx(
        (500_000.0, 0.0), abs=1e-6
    )


@pytest.mark.parametrize(
    ("lon", "lat", "epsg"),
    [
        (9.5, 47.1, 32632),  # Liechtenstein
        (118.87, 28.94, 32650),  # Quzhou
        (116.4, 39.9, 32650),  # Beijing
        (121.47, 31.23, 32651),  # Shanghai
        (-70.0, -33.0, 32719),  # Santiago, south
        (-180.0, 10.0, 32601),
        (179.99, 10.0, 32660),
        (180.0, 10.0, 32601),  # wraps
        (5.0, 60.0, 32632),  # Norway exception (32V)
        (15.0, 78.0, 32633),  # Svalbard exception
    ],
)
def test_utm_epsg(lon: float, lat: float, epsg: int) -> None:
    assert utm_epsg(lon, lat) == epsg


def test_utm_epsg_rejects_bad_positions() -> None:
    with pytest.raises(ValueError):
        utm_epsg(47.1, 118.0)  # latitude > 90: swapped?
    with pytest.raises(ValueError):
        utm_epsg(float("nan"), 10.0)


def test_metric_crs_for_liechtenstein_and_quzhou() -> None:
    li = metric_crs_for((9.47, 47.05, 9.64, 47.27))
    assert li.to_epsg() == 32632 and li.is_projected
    assert li.axis_info[0].unit_name == "metre"
    assert metric_crs_for(Point(9.5, 47.1)).to_epsg() == 32632
    assert metric_crs_for(box(118.5, 28.6, 119.2, 29.3)).to_epsg() == 32650
    geoms = np.array([Point(118.87, 28.94), Point(118.9, 29.0)])
    assert metric_crs_for(geoms).to_epsg() == 32650


def test_metric_crs_for_geodataframes() -> None:
    gdf = gpd.GeoDataFrame(
        {"name": ["a", "b"]},
        geometry=[Point(118.87, 28.94), Point(118.9, 29.0)],
        crs=STORAGE_CRS,
    )
    assert metric_crs_for(gdf).to_epsg() == 32650
    # projected input is brought back to lon/lat before choosing
    assert metric_crs_for(gdf.to_crs("EPSG:3857")).to_epsg() == 32650
    assert metric_crs_for(gdf.geometry).to_epsg() == 32650

    with pytest.raises(ValueError, match="no CRS"):
        metric_crs_for(gpd.GeoDataFrame(geometry=[Point(1, 1)]))
    with pytest.raises(ValueError):
        metric_crs_for(gpd.GeoDataFrame(geometry=[], crs=STORAGE_CRS))
    with pytest.raises(ValueError):
        metric_crs_for(Point())


def test_to_metric_measures_in_metres() -> None:
    # 0.01 x 0.01 degree cell at Quzhou: ~977 m x ~1112 m
    gdf = gpd.GeoDataFrame(
        {"id": [1]}, geometry=[box(118.87, 28.94, 118.88, 28.95)], crs=STORAGE_CRS
    )
    m = to_metric(gdf)
    assert m.crs.to_epsg() == 32650
    area = float(m.area.iloc[0])
    _, _, width = GEOD.inv(118.87, 28.945, 118.88, 28.945)
    _, _, height = GEOD.inv(118.875, 28.94, 118.875, 28.95)
    assert area == pytest.approx(width * height, rel=2e-3)
    assert list(m["id"]) == [1]


# ---------------------------------------------------------------------------
# Axis order
# ---------------------------------------------------------------------------

LIECHTENSTEIN = (9.47, 47.04, 9.64, 47.28)
QUZHOU = (118.0, 28.2, 119.5, 29.5)


def test_looks_swapped_without_bounds() -> None:
    # lat/lon order where longitudes exceed 90: detectable without bounds
    assert looks_swapped(np.array([28.94, 29.0]), np.array([118.87, 118.9]))
    assert not looks_swapped(np.array([118.87, 118.9]), np.array([28.94, 29.0]))
    # both axes within +-90 (Europe): cannot tell without bounds
    assert not looks_swapped(np.array([47.1]), np.array([9.5]))
    assert not looks_swapped(np.array([9.5]), np.array([47.1]))
    # projected metres are not "swapped"
    assert not looks_swapped(np.array([500_000.0]), np.array([4_982_950.0]))
    assert not looks_swapped(np.array([50.0]), np.array([4_982_950.0]))
    # nothing finite: cannot judge
    assert not looks_swapped(np.array([]), np.array([]))
    assert not looks_swapped(np.array([np.nan]), np.array([np.nan]))
    # NaNs are ignored
    assert looks_swapped(np.array([np.nan, 29.0]), np.array([5.0, 118.9]))


def test_looks_swapped_with_bounds() -> None:
    rng = np.random.default_rng(1)
    lon = rng.uniform(9.5, 9.6, 100)
    lat = rng.uniform(47.1, 47.2, 100)
    assert not looks_swapped(lon, lat, bounds=LIECHTENSTEIN)
    assert looks_swapped(lat, lon, bounds=LIECHTENSTEIN)
    # a few stray points do not flip the verdict either way
    lat_mixed = lat.copy()
    lat_mixed[:10] = 0.0
    assert not looks_swapped(lon, lat_mixed, bounds=LIECHTENSTEIN)
    # outside the box, but not swapped into it either: not "swapped"
    assert not looks_swapped(lon + 20.0, lat, bounds=LIECHTENSTEIN)
    # Quzhou, both orders
    qlon = rng.uniform(118.5, 119.0, 50)
    qlat = rng.uniform(28.5, 29.0, 50)
    assert not looks_swapped(qlon, qlat, bounds=QUZHOU)
    assert looks_swapped(qlat, qlon, bounds=QUZHOU)
    # lists work too
    assert looks_swapped([47.1], [9.5], bounds=LIECHTENSTEIN)


def test_doctests() -> None:
    result = doctest.testmod(geo.crs, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
