"""Households revealed per holder, shared by the server processes.

The collection caps (5,000 distinct households per key, 10,000 per client
address and hour by default) are counted in each server process and, about
once a second, written here and read back: each process learns how many
distinct households all processes revealed to a holder within the window, so
the cap holds for the service, not per process. Rows older than the window are deleted as it moves.
Not part of the audit (which keeps every read): a working table.

Revision ID: 0012_cap_reveals
Revises: 0011_key_expiry
Create Date: 2026-12-07 01:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_cap_reveals"
down_revision = "0011_key_expiry"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cap_reveals",
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("household", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("holder", "household"),
    )
    op.create_index("ix_cap_reveals_at", "cap_reveals", ["at"])


def downgrade() -> None:
    op.drop_table("cap_reveals")
