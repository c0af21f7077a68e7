"""GridMap map rendering (Folium, offline): coverage, balance and plan-diff maps."""

from maps.assets import OfflineMap, save_html
from maps.balance import balance_map
from maps.basemap import PRESETS, Basemap, Context, resolve_basemap
from maps.coverage import coverage_map
from maps.data import sample_coverage
from maps.diff import diff_map

__all__ = [
    "PRESETS",
    "Basemap",
    "Context",
    "OfflineMap",
    "balance_map",
    "coverage_map",
    "diff_map",
    "resolve_basemap",
    "sample_coverage",
    "save_html",
]
