"""Shared setup of the notebook editor's tests: a published sample county and the
household counts of grids as the database holds them."""

from __future__ import annotations

from sqlalchemy import text

from geo.workspace import Workspace


def published_sample(url: str) -> tuple[Workspace, int, str]:
    """The 3,000-household sample county in the empty database ``url``, its plan
    generated, staffed and published: the workspace, the plan id, a township."""
    ws = Workspace.connect(url)
    ws.load_sample(households=3_000, seed=5)
    county = ws.areas(level="county")["code"].iloc[0]
    area = ws.area(county)
    pid = ws.save_draft(area, ws.staff(ws.generate(area), area))
    ws.publish(pid)
    return ws, pid, str(ws.areas(level="township")["code"].iloc[0])


def grid_counts(ws: Workspace, plan_id: int, codes: list[str]) -> dict[str, int]:
    """Households per grid ``codes`` of the plan, counted from its assignments."""
    with ws.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT g.code, count(x.*) FROM grids g LEFT JOIN assignments x "
                "ON x.grid_id = g.id WHERE g.plan_id = :p AND g.code = ANY(:c) "
                "GROUP BY g.code"
            ),
            {"p": plan_id, "c": codes},
        ).all()
    return {str(c): int(n) for c, n in rows}
