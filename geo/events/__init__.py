"""Matters (三事分流): the pure rules of events — statuses, transitions, tiers, catalogue.

No database here: :mod:`geo.store.events` stores and routes events with these rules.
"""

from geo.events.catalogue import Category, default_catalogue_path, read_catalogue
from geo.events.flow import (
    ACTIONS,
    FINAL_STATUSES,
    OPEN_STATUSES,
    REPORTER_KINDS,
    STATUSES,
    TIER_NAMES,
    TIERS,
    TRANSITIONS,
    allowed_actions,
    check_transition,
    lower_tier,
    next_status,
    upper_tier,
)

__all__ = [
    "ACTIONS",
    "FINAL_STATUSES",
    "OPEN_STATUSES",
    "REPORTER_KINDS",
    "STATUSES",
    "TIERS",
    "TIER_NAMES",
    "TRANSITIONS",
    "Category",
    "allowed_actions",
    "check_transition",
    "default_catalogue_path",
    "lower_tier",
    "next_status",
    "read_catalogue",
    "upper_tier",
]
