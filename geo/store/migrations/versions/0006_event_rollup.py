"""Events: a rollup kept by triggers, so the statistics need not scan every event.

Three tables, keyed by the event's grid, area, village and township (0 for
none, so the keys are plain primary keys):

* ``event_rollup``: events by ``status``, ``tier``, ``escalated`` and
  ``settled`` (``settled_at IS NOT NULL``), with the sum and count of ratings:
  every count and share of the statistics derives from it;
* ``event_open_deadlines``: open events by the UTC day of their deadline (the
  overdue ones at any moment are the days before today plus today's events
  past their deadline, counted directly);
* ``event_settle_hist``: settled events by hours from report to settlement in
  buckets (0.1 h under a day, 1 h under 30 days, 24 h beyond), for the median.

Statement-level ``AFTER INSERT/UPDATE/DELETE`` triggers with transition tables
add the new rows' contributions and subtract the old rows' in the same
transaction as the write (one upsert per table and statement, keys in order so
concurrent writers cannot deadlock); ``TRUNCATE events`` empties them. Existing
events are counted once here.

Revision ID: 0006_event_rollup
Revises: 0005_events
Create Date: 2026-12-01 17:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_event_rollup"
down_revision = "0005_events"
branch_labels = None
depends_on = None

# as of this revision
OPEN = "('reported', 'sorted', 'in_hand', 'returned')"
SETTLED = "('settled', 'evaluated', 'closed')"
AREA_KEYS = ("grid_id", "area_id", "village_id", "township_id")


def _keys(alias: str) -> str:
    return ", ".join(f"coalesce({alias}.{k}, 0)" for k in AREA_KEYS)


def _upserts(source: str) -> str:
    """The statements adding ``source`` (rows of events with a ``sign``) to the rollup."""
    areas = ", ".join(AREA_KEYS)
    plus = ", ".join(f"{c} = t.{c} + EXCLUDED.{c}" for c in ("n", "sat_sum", "sat_n"))
    return (
        # events by status, tier, escalated, settled
        f"INSERT INTO event_rollup AS t ({areas}, status, tier, escalated, settled, "
        "n, sat_sum, sat_n) "
        f"SELECT {_keys('s')}, s.status, s.tier, s.escalated, "
        "s.settled_at IS NOT NULL, sum(s.sign), coalesce(sum(s.sign * s.satisfaction), 0), "
        "coalesce(sum(s.sign) FILTER (WHERE s.satisfaction IS NOT NULL), 0) "
        f"FROM ({source}) s GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 "
        "HAVING sum(s.sign) <> 0 OR sum(s.sign * s.satisfaction) <> 0 "
        "OR sum(s.sign) FILTER (WHERE s.satisfaction IS NOT NULL) <> 0 "
        "ORDER BY 1, 2, 3, 4, 5, 6, 7, 8 "
        f"ON CONFLICT ({areas}, status, tier, escalated, settled) DO UPDATE SET "
        f"{plus}; "
        # open events by the UTC day of their deadline
        f"INSERT INTO event_open_deadlines AS t ({areas}, day, n) "
        f"SELECT {_keys('s')}, (s.deadline AT TIME ZONE 'UTC')::date, sum(s.sign) "
        f"FROM ({source}) s WHERE s.status IN {OPEN} GROUP BY 1, 2, 3, 4, 5 "
        "HAVING sum(s.sign) <> 0 ORDER BY 1, 2, 3, 4, 5 "
        f"ON CONFLICT ({areas}, day) DO UPDATE SET n = t.n + EXCLUDED.n; "
        # settled events by hours to settle
        f"INSERT INTO event_settle_hist AS t ({areas}, bucket, n) "
        f"SELECT {_keys('s')}, event_settle_bucket(s.reported_at, s.settled_at), "
        f"sum(s.sign) FROM ({source}) s WHERE s.settled_at IS NOT NULL "
        f"AND s.status IN {SETTLED} GROUP BY 1, 2, 3, 4, 5 "
        "HAVING sum(s.sign) <> 0 ORDER BY 1, 2, 3, 4, 5 "
        f"ON CONFLICT ({areas}, bucket) DO UPDATE SET n = t.n + EXCLUDED.n;"
    )


_COLS = (
    "grid_id, area_id, village_id, township_id, status, tier, escalated, "
    "settled_at, satisfaction, deadline, reported_at"
)


def _area_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [sa.Column(k, sa.Integer(), nullable=False) for k in AREA_KEYS]


def upgrade() -> None:
    op.create_table(
        "event_rollup",
        *_area_columns(),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tier", sa.String(length=16), nullable=False),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        sa.Column("settled", sa.Boolean(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("sat_sum", sa.BigInteger(), nullable=False),
        sa.Column("sat_n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*AREA_KEYS, "status", "tier", "escalated", "settled"),
    )
    op.create_table(
        "event_open_deadlines",
        *_area_columns(),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*AREA_KEYS, "day"),
    )
    op.create_table(
        "event_settle_hist",
        *_area_columns(),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*AREA_KEYS, "bucket"),
    )
    # the bucket of a duration, as its lower bound in tenths of an hour: 0.1 h
    # wide under a day, 1 h under 30 days, 24 h beyond (exact: numeric seconds)
    op.execute(
        "CREATE FUNCTION event_settle_bucket(reported timestamptz, settled timestamptz) "
        "RETURNS int LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ "
        # one expression (no FROM): inlined into the triggers' statements
        "SELECT (CASE WHEN extract(epoch FROM settled - reported) < 86400 "
        "THEN floor(extract(epoch FROM settled - reported) / 360) "
        "WHEN extract(epoch FROM settled - reported) < 2592000 "
        "THEN floor(extract(epoch FROM settled - reported) / 3600) * 10 "
        "ELSE floor(extract(epoch FROM settled - reported) / 86400) * 240 END)::int $$"
    )
    new = f"SELECT {_COLS}, 1 AS sign FROM new_rows"
    old = f"SELECT {_COLS}, -1 AS sign FROM old_rows"
    for name, source in (
        ("insert", new),
        ("update", f"{new} UNION ALL {old}"),
        ("delete", old),
    ):
        op.execute(
            f"CREATE FUNCTION event_rollup_{name}() RETURNS trigger LANGUAGE plpgsql "
            f"AS $$ BEGIN {_upserts(source)} RETURN NULL; END $$"
        )
    op.execute(
        "CREATE TRIGGER event_rollup_insert AFTER INSERT ON events "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION event_rollup_insert()"
    )
    op.execute(
        "CREATE TRIGGER event_rollup_update AFTER UPDATE ON events "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION event_rollup_update()"
    )
    op.execute(
        "CREATE TRIGGER event_rollup_delete AFTER DELETE ON events "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION event_rollup_delete()"
    )
    op.execute(
        "CREATE FUNCTION event_rollup_truncate() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN TRUNCATE event_rollup, event_open_deadlines, event_settle_hist; "
        "RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER event_rollup_truncate AFTER TRUNCATE ON events "
        "FOR EACH STATEMENT EXECUTE FUNCTION event_rollup_truncate()"
    )
    # the events there are now, counted once
    op.execute(_upserts(f"SELECT {_COLS}, 1 AS sign FROM events"))


def downgrade() -> None:
    for name in ("insert", "update", "delete", "truncate"):
        op.execute(f"DROP TRIGGER event_rollup_{name} ON events")
        op.execute(f"DROP FUNCTION event_rollup_{name}()")
    op.execute("DROP FUNCTION event_settle_bucket(timestamptz, timestamptz)")
    op.drop_table("event_settle_hist")
    op.drop_table("event_open_deadlines")
    op.drop_table("event_rollup")
