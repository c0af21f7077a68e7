"""BD-09 (Baidu maps) conversions in geo.crs, against published reference points."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from geo.crs import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    bd09_to_wgs84_geoms,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)


def test_gcj02_to_bd09_published_reference_point() -> None:
    # wandergis/coordtransform's documented example (also hutool's
    # CoordinateUtilTest): gcj02tobd09(116.404, 39.915) ->
    # [116.41036949371029, 39.92133699351021]
    lon, lat = gcj02_to_bd09(116.404, 39.915)
    assert lon == pytest.approx(116.41036949371029, abs=1e-12)
    assert lat == pytest.approx(39.92133699351021, abs=1e-12)
    back = bd09_to_gcj02(lon, lat)
    assert back[0] == pytest.approx(116.404, abs=1e-9)
    assert back[1] == pytest.approx(39.915, abs=1e-9)


def test_bd09_to_gcj02_published_reference_point() -> None:
    # Same sources: bd09togcj02(116.404, 39.915) ->
    # [116.39762729119315, 39.90865673957631] with the one-step closed formula;
    # GridMap refines that formula (it is only an approximate inverse), which
    # moves the answer by less than 5e-7 degrees (5 cm).
    lon, lat = bd09_to_gcj02(116.404, 39.915)
    assert lon == pytest.approx(116.39762729119315, abs=5e-7)
    assert lat == pytest.approx(39.90865673957631, abs=5e-7)
    # ... and the refined answer maps back onto the Baidu point exactly.
    fwd = gcj02_to_bd09(lon, lat)
    assert fwd[0] == pytest.approx(116.404, abs=1e-10)
    assert fwd[1] == pytest.approx(39.915, abs=1e-10)


def test_beijing_railway_station_pair() -> None:
    # Beijing railway station as published (e.g. the R package "cst" docs):
    # GCJ-02 (116.42703, 39.90245), BD-09 (116.43351, 39.90851), 5 decimals.
    lon, lat = bd09_to_gcj02(116.43351, 39.90851)
    assert lon == pytest.approx(116.42703, abs=1e-5)
    assert lat == pytest.approx(39.90245, abs=1e-5)
    blon, blat = gcj02_to_bd09(116.42703, 39.90245)
    assert blon == pytest.approx(116.43351, abs=1e-5)
    assert blat == pytest.approx(39.90851, abs=1e-5)


def test_bd09_shift_is_about_1_km_east_north_of_wgs84() -> None:
    lon, lat = 118.87, 28.94  # Quzhou, Zhejiang
    blon, blat = wgs84_to_bd09(lon, lat)
    # GCJ-02 and then BD-09 both move the point to the north-east (~1.2 km).
    assert 0.008 < blon - lon < 0.02
    assert 0.002 < blat - lat < 0.012


def test_round_trip_wgs84_bd09_wgs84_within_1e_6_degrees() -> None:
    rng = np.random.default_rng(7)
    lon = rng.uniform(74.0, 134.0, 5000)
    lat = rng.uniform(18.0, 53.0, 5000)
    blon, blat = wgs84_to_bd09(lon, lat)
    wlon, wlat = bd09_to_wgs84(blon, blat)
    assert np.max(np.abs(np.asarray(wlon) - lon)) < 1e-6
    assert np.max(np.abs(np.asarray(wlat) - lat)) < 1e-6


def test_one_step_closed_formula_alone_would_not_round_trip() -> None:
    # Why bd09_to_gcj02 refines: with a single step, gcj -> bd -> gcj is off
    # by up to ~2e-6 degrees; the refined inverse is far below 1e-9.
    rng = np.random.default_rng(3)
    lon = rng.uniform(74.0, 134.0, 2000)
    lat = rng.uniform(18.0, 53.0, 2000)
    blon, blat = gcj02_to_bd09(lon, lat)
    one_lon, one_lat = bd09_to_gcj02(blon, blat, max_iter=0)
    one_err = np.hypot(np.asarray(one_lon) - lon, np.asarray(one_lat) - lat)
    assert np.max(one_err) > 1e-6
    g_lon, g_lat = bd09_to_gcj02(blon, blat)
    assert np.max(np.abs(np.asarray(g_lon) - lon)) < 1e-9
    assert np.max(np.abs(np.asarray(g_lat) - lat)) < 1e-9


def test_bd09_is_gcj02_then_wgs84() -> None:
    blon, blat = 118.8832, 28.9476
    glon, glat = bd09_to_gcj02(blon, blat)
    assert bd09_to_wgs84(blon, blat) == gcj02_to_wgs84(glon, glat)
    assert wgs84_to_bd09(118.87, 28.94) == gcj02_to_bd09(*wgs84_to_gcj02(118.87, 28.94))


def test_vectorised_nan_and_empty() -> None:
    lon, _ = bd09_to_gcj02(np.array([np.nan, 116.404]), np.array([39.9, 39.915]))
    assert np.isnan(lon[0]) and not np.isnan(lon[1])
    assert lon[1] == pytest.approx(bd09_to_gcj02(116.404, 39.915)[0], abs=1e-12)
    e_lon, e_lat = bd09_to_wgs84(np.array([]), np.array([]))
    assert e_lon.shape == e_lat.shape == (0,)
    s = bd09_to_wgs84(116.404, 39.915)
    assert isinstance(s[0], float) and isinstance(s[1], float)


def test_geoms() -> None:
    pts = shapely.points([118.8832, 116.404], [28.9476, 39.915])
    out = bd09_to_wgs84_geoms(pts)
    want = bd09_to_wgs84(np.array([118.8832, 116.404]), np.array([28.9476, 39.915]))
    np.testing.assert_allclose(shapely.get_x(out), want[0], atol=1e-12)
    np.testing.assert_allclose(shapely.get_y(out), want[1], atol=1e-12)
