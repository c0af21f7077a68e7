"""The words the domain shares: admin levels, people's roles, plan and event statuses, tiers.

Plain constants with no imports: the readers (:mod:`geo.io`), the algorithms
(:mod:`geo.gridding`), the rules of matters (:mod:`geo.events`) and the database
(:mod:`geo.store`, whose check constraints are built from them) all read them here,
so none reaches into another's layer for a word.

Examples
--------
>>> AREA_LEVELS.index("township") < AREA_LEVELS.index("village")
True
>>> set(VILLAGE_LEVELS) <= set(AREA_LEVELS)
True
>>> set(OPEN_STATUSES) | set(SETTLED_STATUSES) == set(EVENT_STATUSES)
True
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "AREA_LEVELS",
    "EVENT_STATUSES",
    "FINAL_STATUSES",
    "GRID_KINDS",
    "OPEN_STATUSES",
    "PERSON_ROLES",
    "PLAN_STATUSES",
    "REPORTER_KINDS",
    "SETTLED_STATUSES",
    "TIERS",
    "TIER_NAMES",
    "VILLAGE_LEVELS",
]

# -- areas and people -------------------------------------------------------------

#: Admin levels from the top down; a child's level ranks below its parent's.
AREA_LEVELS: Final = ("province", "city", "county", "township", "village", "community")
#: The levels of the smallest areas, the ones grids are drawn in (a village or an
#: urban community).
VILLAGE_LEVELS: Final = ("village", "community")
#: The roles of the people who cover households and handle matters.
PERSON_ROLES: Final = (
    "grid_worker",
    "grid_leader",
    "party_member",
    "village_committee",
    "township_office",
)

# -- plans ------------------------------------------------------------------------

#: A plan's life: drawn, published (in force), archived (replaced).
PLAN_STATUSES: Final = ("draft", "published", "archived")
#: A grid is comprehensive (全科) or dedicated (专属).
GRID_KINDS: Final = ("comprehensive", "dedicated")

# -- matters (三事分流) -----------------------------------------------------------

#: Every status of an event, in the order of its life (``returned`` last).
EVENT_STATUSES: Final = (
    "reported",
    "sorted",
    "in_hand",
    "settled",
    "evaluated",
    "closed",
    "returned",
)
#: Statuses of events still waiting for someone (they can become overdue).
OPEN_STATUSES: Final = ("reported", "sorted", "in_hand", "returned")
#: Statuses of settled events (counted as settled in the statistics).
SETTLED_STATUSES: Final = ("settled", "evaluated", "closed")
FINAL_STATUSES: Final = ("closed",)

#: Tiers from the lowest up: 民事 / 村事 / 政事.
TIERS: Final = ("grid", "village", "township")
TIER_NAMES: Final = {"grid": "民事", "village": "村事", "township": "政事"}

#: ``person``: a person of GridMap reported it; ``resident``: a grid worker
#: took a resident's report (the resident's name and phone are private).
REPORTER_KINDS: Final = ("person", "resident")
