"""GridMap map rendering (Folium, offline): coverage, balance and plan-diff maps."""

from maps.assets import OfflineMap, save_html
from maps.balance import balance_map
from maps.basemap import PRESETS, Basemap, resolve_basemap
from maps.coverage import coverage_map
from maps.data import sample_coverage
from maps.diff import PlanDiff, diff_map, plan_diff

__all__ = [
    "PRESETS",
    "Basemap",
    "OfflineMap",
    "PlanDiff",
    "balance_map",
    "coverage_map",
    "diff_map",
    "plan_diff",
    "resolve_basemap",
    "sample_coverage",
    "save_html",
]
