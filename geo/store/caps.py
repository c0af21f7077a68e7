"""The collection caps' shared counts (table ``cap_reveals``).

Each server process counts the distinct households it reveals to each holder (a
key, a client address) in a sliding window; :func:`sync_reveals` writes what it
revealed since the last call and answers, per holder it asks about, how many
distinct households *all* processes revealed to that holder within the window.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

__all__ = ["sync_reveals"]


def sync_reveals(
    session: Session,
    revealed: Sequence[tuple[str, str, dt.datetime]],
    holders: Sequence[str],
    window_s: float,
) -> dict[str, int]:
    """Write ``revealed`` (holder, household, when; one row per holder and
    household), drop rows older than the window, and return the distinct
    households per holder of ``holders`` within it (holders with none are left
    out); the caller commits.
    """
    if revealed:
        session.execute(
            text(
                "INSERT INTO cap_reveals (holder, household, at) "
                "SELECT h, x, t FROM unnest(CAST(:h AS text[]), "
                "CAST(:x AS text[]), CAST(:t AS timestamptz[])) AS r(h, x, t) "
                "ON CONFLICT (holder, household) DO UPDATE SET at = "
                "greatest(cap_reveals.at, EXCLUDED.at)"
            ),
            {
                "h": [r[0] for r in revealed],
                "x": [r[1] for r in revealed],
                "t": [r[2] for r in revealed],
            },
        )
    session.execute(
        text("DELETE FROM cap_reveals WHERE at < now() - make_interval(secs => :w)"),
        {"w": window_s},
    )
    if not holders:
        return {}
    rows = session.execute(
        text(
            "SELECT holder, count(*) FROM cap_reveals "
            "WHERE holder = ANY(CAST(:hs AS text[])) "
            "AND at >= now() - make_interval(secs => :w) GROUP BY holder"
        ),
        {"hs": list(holders), "w": window_s},
    ).all()
    return {str(h): int(n) for h, n in rows}
