"""The edit history of drafts: every edit, undo, redo, worker assignment and publish.

Revision ID: 0007_plan_edits
Revises: 0006_event_rollup
Create Date: 2026-12-06 19:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007_plan_edits"
down_revision = "0006_event_rollup"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plan_edits",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("op", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "state",
            sa.String(length=16),
            server_default=sa.text("'done'"),
            nullable=False,
        ),
        sa.Column("target_id", sa.BigInteger(), nullable=True),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column(
            "at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("summary", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint(
            "kind IN ('draft', 'edit', 'undo', 'redo', 'publish')", name="kind_known"
        ),
        sa.CheckConstraint(
            "state IN ('done', 'undone', 'dropped', 'log')", name="state_known"
        ),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("plan_id", "seq", name="uq_plan_edits_plan_seq"),
    )


def downgrade() -> None:
    op.drop_table("plan_edits")
